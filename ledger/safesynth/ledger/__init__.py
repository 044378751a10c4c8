"""SafeSynth ledger: an append-only, signed, RFC 6962 Merkle-tree transparency log. Knows nothing of DP.

Entries (kind, payload, timestamp, actor) are canonical RFC 8785 JSON; the tree is RFC 6962/9162;
checkpoints are Ed25519 C2SP signed notes; the store is SQLite (sqlite-utils is imported only when a
store is opened, so the offline verifier runs on the base install).
"""

import importlib
from typing import TYPE_CHECKING, Any

from safesynth.ledger.checkpoint import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    open_checkpoint,
    sign_checkpoint,
)
from safesynth.ledger.entry import ENTRY_TAG, Entry, canonical_json, decimal_string, parse_entry_json
from safesynth.ledger.errors import (
    AppenderClosedError,
    ForkDetectedError,
    InvalidCheckpointError,
    InvalidEntryError,
    InvalidKeyError,
    InvalidProofError,
    LedgerError,
    LedgerVerificationError,
    NonCanonicalNumberError,
    ReadOnlyLedgerError,
    StoreExistsError,
    StoreIntegrityError,
    StoreNotFoundError,
)
from safesynth.ledger.keyhistory import ROTATION_KIND, KeyHistory, KeyPeriod
from safesynth.ledger.keys import Signer, Verifier, load_verifier
from safesynth.ledger.proofs import ConsistencyProof, InclusionProof, SignedCheckpoint, verify_proof_bundle

if TYPE_CHECKING:
    from safesynth.ledger.appender import Appender
    from safesynth.ledger.store import AppendRequest, AppendResult, LedgerStore
    from safesynth.ledger.view import LedgerView, Projection

_LAZY = {
    "Appender": "safesynth.ledger.appender",
    "AppendRequest": "safesynth.ledger.store",
    "AppendResult": "safesynth.ledger.store",
    "LedgerStore": "safesynth.ledger.store",
    "LedgerView": "safesynth.ledger.view",
    "Projection": "safesynth.ledger.view",
}


def __getattr__(name: str) -> Any:
    """Load the store (and sqlite3) only when it is used: verification needs neither."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENTRY_TAG",
    "ROTATION_KIND",
    "AppendRequest",
    "AppendResult",
    "Appender",
    "AppenderClosedError",
    "Checkpoint",
    "ConsistencyProof",
    "Entry",
    "ForkDetectedError",
    "InclusionProof",
    "InvalidCheckpointError",
    "InvalidEntryError",
    "InvalidKeyError",
    "InvalidProofError",
    "KeyHistory",
    "KeyPeriod",
    "LedgerError",
    "LedgerStore",
    "LedgerVerificationError",
    "LedgerView",
    "NonCanonicalNumberError",
    "NoteSignature",
    "Projection",
    "ReadOnlyLedgerError",
    "SignedCheckpoint",
    "SignedNote",
    "Signer",
    "StoreExistsError",
    "StoreIntegrityError",
    "StoreNotFoundError",
    "Verifier",
    "canonical_json",
    "decimal_string",
    "load_verifier",
    "open_checkpoint",
    "parse_entry_json",
    "sign_checkpoint",
    "verify_proof_bundle",
]
