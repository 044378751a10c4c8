"""Checkpoints in the C2SP ``tlog-checkpoint`` format, carried as C2SP ``signed-note`` notes.

A checkpoint body is three lines (plus optional extension lines)::

    <origin>
    <tree size, decimal>
    <base64 root hash>

A signed note is ``body + "\\n" + signature lines``; each line is ``"— <key name> <base64(blob)>\\n"``
where ``blob`` is ``key id (4 bytes) || Ed25519 signature`` over the body (or, for cosignature/v1
witnesses, ``key id || 8-byte timestamp || signature``). Signatures by unknown keys are ignored, as
the spec asks; at least one signature by an expected key must verify.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from safesynth.ledger.errors import InvalidCheckpointError
from safesynth.ledger.keys import Signer, Verifier, validate_key_name
from safesynth.ledger.merkle import HASH_SIZE

__all__ = [
    "Checkpoint",
    "NoteSignature",
    "SignedNote",
    "open_checkpoint",
    "sign_checkpoint",
]

_DASH = "\u2014"
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_MAX_SIGNATURES = 100
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidCheckpointError(f"{what} is not valid base64") from exc
    if _b64(raw) != text:
        raise InvalidCheckpointError(f"{what} is not canonical base64")
    return raw


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin (the log's name), tree size and root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or not self.origin.isprintable():
            raise InvalidCheckpointError("checkpoint origin must be a non-empty printable line")
        if self.size < 0:
            raise InvalidCheckpointError("checkpoint size must be non-negative")
        if len(self.root_hash) != HASH_SIZE:
            raise InvalidCheckpointError("checkpoint root hash must be 32 bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext or not ext.isprintable():
                raise InvalidCheckpointError("checkpoint extension lines must be non-empty printable lines")

    def body(self) -> str:
        """The checkpoint text that is signed."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body strictly (canonical base64, no leading zeros)."""
        if not body.endswith("\n"):
            raise InvalidCheckpointError("checkpoint body must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidCheckpointError("checkpoint body needs origin, size and root hash lines")
        origin, size_text, root_text, *ext = lines
        if not _SIZE_RE.match(size_text):
            raise InvalidCheckpointError(f"checkpoint size {size_text!r} is not a decimal number")
        root = _unb64(root_text, "checkpoint root hash")
        cp = cls(origin=origin, size=int(size_text), root_hash=root, extensions=tuple(ext))
        if cp.body() != body:
            raise InvalidCheckpointError("checkpoint body is not in canonical form")
        return cp


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    blob: bytes

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id that opens the blob."""
        return self.blob[:4]

    def line(self) -> str:
        """``— <name> <base64 blob>\\n``."""
        return f"{_DASH} {self.name} {_b64(self.blob)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note body and its signatures."""

    body: str
    signatures: tuple[NoteSignature, ...]

    def text(self) -> str:
        """The serialised note."""
        return self.body + "\n" + "".join(sig.line() for sig in self.signatures)

    @classmethod
    def parse(cls, text: str) -> SignedNote:
        """Parse a signed note strictly."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise InvalidCheckpointError("a signed note must end with a newline")
        if _CONTROL.search(text):
            raise InvalidCheckpointError("a signed note must not contain control characters")
        split = text.rfind("\n\n")
        if split < 0:
            raise InvalidCheckpointError("a signed note needs a blank line before its signatures")
        body, sig_text = text[: split + 1], text[split + 2 :]
        sig_lines = sig_text[:-1].split("\n") if sig_text else []
        if not sig_lines:
            raise InvalidCheckpointError("a signed note has no signatures")
        if len(sig_lines) > _MAX_SIGNATURES:
            raise InvalidCheckpointError("a signed note has too many signatures")
        sigs = []
        for line in sig_lines:
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != _DASH:
                raise InvalidCheckpointError(f"malformed note signature line {line!r}")
            try:
                validate_key_name(parts[1])
            except ValueError as exc:
                raise InvalidCheckpointError(f"malformed signer name in {line!r}") from exc
            blob = _unb64(parts[2], "note signature")
            if len(blob) < 5:
                raise InvalidCheckpointError("note signature is too short")
            sigs.append(NoteSignature(parts[1], blob))
        note = cls(body=body, signatures=tuple(sigs))
        if note.text() != text:
            raise InvalidCheckpointError("signed note is not in canonical form")
        return note

    def with_signatures(self, extra: Iterable[NoteSignature]) -> SignedNote:
        """A copy with more signatures appended (duplicates dropped)."""
        sigs = list(self.signatures)
        for sig in extra:
            if sig not in sigs:
                sigs.append(sig)
        return SignedNote(self.body, tuple(sigs))

    def verified_by(self, verifiers: Iterable[Verifier]) -> list[Verifier]:
        """The verifiers whose signature is present and valid.

        A signature that names a known key (same name and key id) but does not verify is an error,
        not an omission: it raises InvalidCheckpointError.
        """
        good: list[Verifier] = []
        for verifier in verifiers:
            for sig in self.signatures:
                if sig.name != verifier.name or sig.key_id != verifier.key_id:
                    continue
                if not verifier.verify_note_signature(self.body, sig.blob):
                    raise InvalidCheckpointError(f"signature by key {verifier.name} does not verify")
                if verifier not in good:
                    good.append(verifier)
        return good


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> SignedNote:
    """Sign a checkpoint with each of ``signers`` (Ed25519 note signatures)."""
    if not signers:
        raise InvalidCheckpointError("a checkpoint needs at least one signer")
    body = checkpoint.body()
    return SignedNote(body, tuple(NoteSignature(s.name, s.note_signature(body)) for s in signers))


def open_checkpoint(
    text: str, verifiers: Sequence[Verifier], *, origin: str | None = None, require_all: bool = False
) -> tuple[Checkpoint, SignedNote]:
    """Parse a signed checkpoint, verify it is signed by one (or all) of ``verifiers``, parse the body."""
    note = SignedNote.parse(text)
    good = note.verified_by(verifiers)
    if not good or (require_all and len(good) != len(set(verifiers))):
        names = ", ".join(v.name for v in verifiers)
        raise InvalidCheckpointError(f"checkpoint is not signed by the expected key(s): {names}")
    cp = Checkpoint.parse(note.body)
    if origin is not None and cp.origin != origin:
        raise InvalidCheckpointError(f"checkpoint origin {cp.origin!r} is not the log's origin {origin!r}")
    return cp, note
