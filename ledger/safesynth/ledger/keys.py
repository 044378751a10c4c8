"""Ed25519 keys in the C2SP signed-note formats.

Public key file (a *verifier key*, one line, as in ``golang.org/x/mod/sumdb/note``)::

    <name>+<key id, 8 hex digits>+<base64(0x01 || 32-byte Ed25519 public key)>

Private key file (mode 0600)::

    PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte Ed25519 seed)>

The key id is the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``. Witness keys use
the C2SP ``tlog-cosignature`` type byte 0x04 (timestamped cosignatures) instead of 0x01.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from safesynth.ledger.errors import InvalidKeyError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "DEFAULT_KEY_NAME",
    "Signer",
    "Verifier",
    "cosignature_message",
    "key_id",
    "load_verifier",
    "validate_key_name",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
DEFAULT_KEY_NAME = "safesynth-ledger"
_NAME_RE = re.compile(r"^[\x21-\x2a\x2c-\x7e]{1,128}$")  # printable ASCII, no space, no '+'


def validate_key_name(name: str) -> str:
    """Key names are 1-128 printable ASCII characters without spaces or '+'."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidKeyError(f"key name {name!r} must be 1-128 printable ASCII characters, no space or '+'")
    return name


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> bytes:
    """The 4-byte note key id: SHA-256(name || 0x0A || alg || public key)[:4]."""
    return hashlib.sha256(name.encode("ascii") + b"\n" + bytes([alg]) + public_key).digest()[:4]


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The message a C2SP cosignature/v1 witness signs for a checkpoint ``body``."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidKeyError(f"{what} is not valid base64") from exc


class Verifier:
    """A public key that checks note signatures (type 0x01) or witness cosignatures (type 0x04)."""

    __slots__ = ("_key", "alg", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes, alg: int = ALG_ED25519) -> None:
        validate_key_name(name)
        if len(public_key) != 32:
            raise InvalidKeyError("an Ed25519 public key is 32 bytes")
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise InvalidKeyError(f"unsupported key type 0x{alg:02x}")
        self.name = name
        self.public_key = bytes(public_key)
        self.alg = alg
        self.key_id = key_id(name, self.public_key, alg)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and self.vkey() == other.vkey()

    def __hash__(self) -> int:
        return hash(self.vkey())

    def __repr__(self) -> str:
        return f"Verifier({self.vkey()!r})"

    @property
    def is_witness(self) -> bool:
        """True for a cosignature/v1 (timestamped witness) key."""
        return self.alg == ALG_COSIGNATURE_V1

    def vkey(self) -> str:
        """The verifier key string ``name+keyid+base64(alg||key)``."""
        blob = base64.b64encode(bytes([self.alg]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        """Parse a verifier key string, checking its key id."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise InvalidKeyError("a verifier key has the form name+keyid+base64key")
        name, hex_id, blob = parts
        raw = _b64decode(blob, "the verifier key")
        if len(raw) != 33:
            raise InvalidKeyError("the verifier key must hold a type byte and a 32-byte Ed25519 key")
        verifier = cls(name, raw[1:], raw[0])
        if verifier.key_id.hex() != hex_id.lower() or len(hex_id) != 8:
            raise InvalidKeyError(f"verifier key id {hex_id!r} does not match the key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature on ``message``."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify_note_signature(self, body: str, blob: bytes) -> bool:
        """Check a note signature blob (``keyid || sig``, or ``keyid || time || sig`` for witnesses)."""
        if blob[:4] != self.key_id:
            return False
        if self.alg == ALG_COSIGNATURE_V1:
            if len(blob) != 4 + 8 + 64:
                return False
            (timestamp,) = struct.unpack(">Q", blob[4:12])
            return self.verify(cosignature_message(body, timestamp), blob[12:])
        return len(blob) == 4 + 64 and self.verify(body.encode("utf-8"), blob[4:])


def load_verifier(path: str | os.PathLike[str]) -> Verifier:
    """Read a public key file (one verifier key line)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise InvalidKeyError(f"public key file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidKeyError(f"cannot read public key file {path}: {exc}") from exc
    return Verifier.from_vkey(text)


class Signer:
    """An Ed25519 signing key with a note name. Keep the private key file at mode 0600."""

    __slots__ = ("_key", "_public", "key_id", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = validate_key_name(name)
        self._key = private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, self._public)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"

    @classmethod
    def generate(cls, name: str = DEFAULT_KEY_NAME) -> Signer:
        """A fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes, name: str = DEFAULT_KEY_NAME) -> Signer:
        """A key from its 32-byte seed."""
        if len(seed) != 32:
            raise InvalidKeyError("an Ed25519 seed is 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_skey(cls, text: str) -> Signer:
        """Parse ``PRIVATE+KEY+name+keyid+base64(0x01||seed)``."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise InvalidKeyError("a private key has the form PRIVATE+KEY+name+keyid+base64key")
        name, hex_id, blob = parts[2:]
        raw = _b64decode(blob, "the private key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise InvalidKeyError("the private key must hold the type byte 0x01 and a 32-byte seed")
        signer = cls.from_seed(raw[1:], name)
        if signer.key_id.hex() != hex_id.lower():
            raise InvalidKeyError("private key id does not match the key")
        return signer

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Signer:
        """Read a private key file written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError as exc:
            raise InvalidKeyError(f"private key file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidKeyError(f"cannot read private key file {path}: {exc}") from exc
        return cls.from_skey(text)

    def skey(self) -> str:
        """The private key string (secret!)."""
        seed = self._key.private_bytes_raw()
        blob = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{blob}"

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the private key with mode 0600 (refuses to overwrite unless asked)."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError as exc:
            raise InvalidKeyError(f"key file {path} already exists") from exc
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self.skey() + "\n")
        Path(path).chmod(0o600)

    def save_public(self, path: str | os.PathLike[str]) -> None:
        """Write the public verifier key file."""
        Path(path).write_text(self.verifier().vkey() + "\n", encoding="ascii")

    def public_key_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public

    def verifier(self) -> Verifier:
        """The matching note verifier (type 0x01)."""
        return Verifier(self.name, self._public, ALG_ED25519)

    def witness_verifier(self) -> Verifier:
        """The matching cosignature/v1 verifier, when this key acts as a witness."""
        return Verifier(self.name, self._public, ALG_COSIGNATURE_V1)

    def sign(self, message: bytes) -> bytes:
        """A raw 64-byte Ed25519 signature."""
        return self._key.sign(message)

    def note_signature(self, body: str) -> bytes:
        """The note signature blob ``keyid || sig`` over ``body``."""
        return self.key_id + self._key.sign(body.encode("utf-8"))

    def cosignature(self, body: str, timestamp: int) -> bytes:
        """A C2SP cosignature/v1 blob ``keyid || time || sig`` over checkpoint ``body``."""
        kid = key_id(self.name, self._public, ALG_COSIGNATURE_V1)
        return kid + struct.pack(">Q", timestamp) + self._key.sign(cosignature_message(body, timestamp))
