"""Self-contained proof bundles (JSON) and their verification with only a public key.

An inclusion bundle holds the entry (its canonical JSON), its leaf index, the audit path and the signed
checkpoint of the tree size the path leads to. A consistency bundle holds two signed checkpoints and
the consistency proof between them. Both verify with the base install and a verifier key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safesynth.ledger.checkpoint import Checkpoint, SignedNote, open_checkpoint
from safesynth.ledger.entry import Entry, entry_leaf_hash, parse_entry_json
from safesynth.ledger.errors import InvalidEntryError, InvalidProofError, LedgerError
from safesynth.ledger.keys import Verifier
from safesynth.ledger.merkle import verify_consistency, verify_inclusion

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "SignedCheckpoint",
    "proof_from_json",
    "verify_proof_bundle",
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64_list(items: Any) -> list[bytes]:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise InvalidProofError("a proof is a list of base64 hashes")
    try:
        return [base64.b64decode(x, validate=True) for x in items]
    except binascii.Error as exc:
        raise InvalidProofError("a proof hash is not valid base64") from exc


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint together with its signed note (``text`` is what is stored and exported)."""

    checkpoint: Checkpoint
    note: SignedNote

    @property
    def size(self) -> int:
        """Tree size."""
        return self.checkpoint.size

    @property
    def root_hash(self) -> bytes:
        """Root hash."""
        return self.checkpoint.root_hash

    @property
    def text(self) -> str:
        """The signed note text."""
        return self.note.text()

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> SignedCheckpoint:
        """Parse without verifying signatures."""
        note = SignedNote.parse(text)
        return cls(Checkpoint.parse(note.body), note)


@dataclass(frozen=True)
class InclusionProof:
    """Entry ``entry.seq`` is leaf ``entry.seq`` of the tree in ``checkpoint``."""

    entry: Entry
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def to_json(self) -> dict[str, Any]:
        """The bundle as JSON."""
        return {
            "type": "inclusion/v1",
            "entry": self.entry.canonical_bytes.decode("utf-8"),
            "leaf_index": self.entry.seq,
            "tree_size": self.tree_size,
            "proof": [_b64(h) for h in self.hashes],
            "checkpoint": self.checkpoint.text,
        }

    def verify(self, verifiers: Sequence[Verifier], *, origin: str | None = None) -> Checkpoint:
        """Check signature, sizes and audit path; return the checkpoint. Raises a LedgerError."""
        cp, _ = open_checkpoint(self.checkpoint.text, verifiers, origin=origin)
        if cp.size != self.tree_size:
            raise InvalidProofError("the proof's tree size is not the checkpoint's")
        verify_inclusion(
            entry_leaf_hash(self.entry.canonical_bytes), self.entry.seq, cp.size, self.hashes, cp.root_hash
        )
        return cp


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree in ``old`` is a prefix of the tree in ``new``."""

    old: SignedCheckpoint
    new: SignedCheckpoint
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The bundle as JSON."""
        return {
            "type": "consistency/v1",
            "old_size": self.old.size,
            "new_size": self.new.size,
            "proof": [_b64(h) for h in self.hashes],
            "old_checkpoint": self.old.text,
            "new_checkpoint": self.new.text,
        }

    def verify(
        self, verifiers: Sequence[Verifier], *, origin: str | None = None
    ) -> tuple[Checkpoint, Checkpoint]:
        """Check both signatures and the proof. Raises a LedgerError."""
        old, _ = open_checkpoint(self.old.text, verifiers, origin=origin)
        new, _ = open_checkpoint(self.new.text, verifiers, origin=origin)
        if old.origin != new.origin:
            raise InvalidProofError("the two checkpoints are from different logs")
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, self.hashes)
        return old, new


def proof_from_json(obj: Any) -> InclusionProof | ConsistencyProof:
    """Parse an inclusion or consistency bundle."""
    if not isinstance(obj, dict):
        raise InvalidProofError("a proof bundle is a JSON object")
    kind = obj.get("type")
    try:
        if kind == "inclusion/v1":
            if set(obj) != {"type", "entry", "leaf_index", "tree_size", "proof", "checkpoint"}:
                raise InvalidProofError(
                    "an inclusion bundle has entry, leaf_index, tree_size, proof, checkpoint"
                )
            entry = parse_entry_json(str(obj["entry"]).encode("utf-8"))
            if obj["leaf_index"] != entry.seq or not isinstance(obj["tree_size"], int):
                raise InvalidProofError("the bundle's leaf index is not the entry's seq")
            return InclusionProof(
                entry,
                obj["tree_size"],
                tuple(_unb64_list(obj["proof"])),
                SignedCheckpoint.parse(obj["checkpoint"]),
            )
        if kind == "consistency/v1":
            keys = {"type", "old_size", "new_size", "proof", "old_checkpoint", "new_checkpoint"}
            if set(obj) != keys:
                raise InvalidProofError("a consistency bundle has old/new sizes and checkpoints and a proof")
            old = SignedCheckpoint.parse(obj["old_checkpoint"])
            new = SignedCheckpoint.parse(obj["new_checkpoint"])
            if (old.size, new.size) != (obj["old_size"], obj["new_size"]):
                raise InvalidProofError("the bundle's sizes are not its checkpoints' sizes")
            return ConsistencyProof(old, new, tuple(_unb64_list(obj["proof"])))
    except InvalidEntryError as exc:
        raise InvalidProofError(f"the bundle's entry is malformed: {exc}") from exc
    except (TypeError, AttributeError) as exc:
        raise InvalidProofError(f"malformed proof bundle: {exc}") from exc
    raise InvalidProofError(f"unknown proof bundle type {kind!r}")


def verify_proof_bundle(
    obj: Any, verifiers: Sequence[Verifier], *, origin: str | None = None
) -> InclusionProof | ConsistencyProof:
    """Parse and verify a bundle; raises a LedgerError subclass on any failure."""
    proof = proof_from_json(obj)
    try:
        proof.verify(verifiers, origin=origin)
    except LedgerError:
        raise
    return proof
