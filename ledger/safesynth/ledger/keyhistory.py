"""The key history: which log key signs the checkpoints of which tree sizes, and key rotation.

A rotation is an entry of kind ``ledger.key-rotation/v1`` at some ``seq``; its payload names the old
and new verifier keys and carries a signature by *each* of them over :func:`rotation_statement`.
Checkpoints of sizes ``<= seq`` are signed by the old key, of sizes ``> seq`` by the new key, and the
transition checkpoint (size ``seq + 1``) by both. Because both keys sign the rotation, trust in any
key of the history extends to the whole chain.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from safesynth.ledger.errors import InvalidKeyError
from safesynth.ledger.keys import ALG_ED25519, Signer, Verifier

__all__ = [
    "ROTATION_KIND",
    "KeyHistory",
    "KeyPeriod",
    "rotation_payload",
    "rotation_statement",
    "verify_rotation_payload",
]

ROTATION_KIND = "ledger.key-rotation/v1"


def rotation_statement(origin: str, seq: int, old_vkey: str, new_vkey: str) -> bytes:
    """The bytes both keys sign for a rotation at ``seq``."""
    return f"safesynth-ledger key-rotation/v1\n{origin}\n{seq}\n{old_vkey}\n{new_vkey}\n".encode()


def rotation_payload(origin: str, seq: int, old: Signer, new: Signer) -> dict[str, str]:
    """The payload of a rotation entry, signed by the old and the new key."""
    old_v, new_v = old.verifier().vkey(), new.verifier().vkey()
    statement = rotation_statement(origin, seq, old_v, new_v)
    return {
        "old_key": old_v,
        "new_key": new_v,
        "old_signature": base64.b64encode(old.sign(statement)).decode("ascii"),
        "new_signature": base64.b64encode(new.sign(statement)).decode("ascii"),
    }


def verify_rotation_payload(origin: str, seq: int, payload: Mapping[str, Any]) -> tuple[Verifier, Verifier]:
    """Check a rotation payload; return ``(old, new)`` verifiers. Raises InvalidKeyError."""
    if set(payload) != {"old_key", "new_key", "old_signature", "new_signature"}:
        raise InvalidKeyError("a key rotation payload has old_key, new_key, old_signature, new_signature")
    fields = [payload[k] for k in ("old_key", "new_key", "old_signature", "new_signature")]
    if not all(isinstance(f, str) for f in fields):
        raise InvalidKeyError("key rotation fields must be strings")
    old, new = Verifier.from_vkey(fields[0]), Verifier.from_vkey(fields[1])
    if old.alg != ALG_ED25519 or new.alg != ALG_ED25519 or old == new:
        raise InvalidKeyError("a rotation goes between two different Ed25519 note keys")
    statement = rotation_statement(origin, seq, fields[0], fields[1])
    for verifier, sig_text in ((old, fields[2]), (new, fields[3])):
        try:
            sig = base64.b64decode(sig_text, validate=True)
        except binascii.Error as exc:
            raise InvalidKeyError("rotation signature is not base64") from exc
        if not verifier.verify(statement, sig):
            raise InvalidKeyError(f"rotation signature by {verifier.name} does not verify")
    return old, new


@dataclass(frozen=True)
class KeyPeriod:
    """A log key and the first tree size whose checkpoint it signs."""

    verifier: Verifier
    from_size: int
    rotation_seq: int | None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"vkey": self.verifier.vkey(), "from_size": self.from_size, "rotation_seq": self.rotation_seq}


class KeyHistory:
    """The ordered log keys. ``periods[0].from_size == 0``; later ones start after a rotation."""

    def __init__(self, periods: Sequence[KeyPeriod]) -> None:
        if not periods or periods[0].from_size != 0 or periods[0].rotation_seq is not None:
            raise InvalidKeyError("the key history must start with the genesis key at size 0")
        for prev, cur in itertools.pairwise(periods):
            if cur.rotation_seq is None or cur.from_size != cur.rotation_seq + 1:
                raise InvalidKeyError("a rotated key starts right after its rotation entry")
            if cur.from_size <= prev.from_size:
                raise InvalidKeyError("key periods must be in increasing order")
        self.periods = tuple(periods)

    @property
    def current(self) -> Verifier:
        """The key that signs new checkpoints."""
        return self.periods[-1].verifier

    def __contains__(self, verifier: object) -> bool:
        return any(p.verifier == verifier for p in self.periods)

    def signers_for(self, size: int) -> list[Verifier]:
        """The key(s) that must have signed the checkpoint of ``size`` (two at a rotation)."""
        idx = 0
        for i, period in enumerate(self.periods):
            if period.from_size <= size:
                idx = i
        required = [self.periods[idx].verifier]
        if idx > 0 and self.periods[idx].from_size == size:
            required.insert(0, self.periods[idx - 1].verifier)
        return required

    def with_rotation(self, seq: int, new: Verifier) -> KeyHistory:
        """The history after a rotation entry at ``seq``."""
        return KeyHistory([*self.periods, KeyPeriod(new, seq + 1, seq)])

    def to_json(self) -> dict[str, Any]:
        """JSON form (``{"keys": [...]}``)."""
        return {"keys": [p.to_json() for p in self.periods]}

    @classmethod
    def from_json(cls, obj: Any) -> KeyHistory:
        """Parse the JSON form."""
        if not isinstance(obj, dict) or set(obj) != {"keys"} or not isinstance(obj["keys"], list):
            raise InvalidKeyError('a key history is {"keys": [...]}')
        periods = []
        for item in obj["keys"]:
            if not isinstance(item, dict) or set(item) != {"vkey", "from_size", "rotation_seq"}:
                raise InvalidKeyError("a key period has vkey, from_size, rotation_seq")
            vkey, from_size, rot = item["vkey"], item["from_size"], item["rotation_seq"]
            if not isinstance(vkey, str) or not isinstance(from_size, int) or isinstance(from_size, bool):
                raise InvalidKeyError("malformed key period")
            if rot is not None and (not isinstance(rot, int) or isinstance(rot, bool)):
                raise InvalidKeyError("malformed key period")
            periods.append(KeyPeriod(Verifier.from_vkey(vkey), from_size, rot))
        return cls(periods)
