"""The ledger's typed errors: one small hierarchy, each class with a stable string ``code``."""

from __future__ import annotations

__all__ = [
    "AppenderClosedError",
    "ForkDetectedError",
    "InvalidCheckpointError",
    "InvalidEntryError",
    "InvalidKeyError",
    "InvalidProofError",
    "LedgerError",
    "LedgerVerificationError",
    "NonCanonicalNumberError",
    "ReadOnlyLedgerError",
    "StoreExistsError",
    "StoreIntegrityError",
    "StoreNotFoundError",
]


class LedgerError(Exception):
    """Base class of every ledger error; ``code`` is stable and machine-readable."""

    code: str = "ledger_error"


class InvalidEntryError(LedgerError, ValueError):
    """An entry (kind, payload, actor, timestamp) is malformed or not representable canonically."""

    code = "invalid_entry"


class NonCanonicalNumberError(InvalidEntryError):
    """A payload holds a float (or another number that does not round-trip): use a decimal string."""

    code = "float_in_payload"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"payload value at {path} is a float; privacy figures travel as decimal strings "
            "(see safesynth.ledger.decimal_string)"
        )


class InvalidProofError(LedgerError, ValueError):
    """An inclusion or consistency proof does not verify, or cannot be built for the given sizes."""

    code = "invalid_proof"


class InvalidCheckpointError(LedgerError, ValueError):
    """A checkpoint / signed note is malformed or its signature does not verify."""

    code = "invalid_checkpoint"


class InvalidKeyError(LedgerError, ValueError):
    """A key file or verifier key string is malformed, or a key is not the one expected."""

    code = "invalid_key"


class StoreNotFoundError(LedgerError, FileNotFoundError):
    """No ledger store exists at the given path."""

    code = "ledger_not_found"


class StoreExistsError(LedgerError, FileExistsError):
    """``LedgerStore.create`` was asked to create a store where one already exists."""

    code = "ledger_exists"


class StoreIntegrityError(LedgerError):
    """The store failed its self-check (triggers changed, root mismatch, bad signature, ...)."""

    code = "ledger_integrity"


class ForkDetectedError(StoreIntegrityError):
    """The store is behind, or disagrees with, the last checkpoint recorded in the fork-guard side file."""

    code = "ledger_fork"


class ReadOnlyLedgerError(LedgerError):
    """An append or rotation was attempted on a store opened without a signer."""

    code = "ledger_read_only"


class AppenderClosedError(LedgerError):
    """A request was submitted to an :class:`~safesynth.ledger.appender.Appender` after ``close()``."""

    code = "appender_closed"


class LedgerVerificationError(LedgerError):
    """Offline verification failed at a numbered ``step`` (and, where known, entry ``seq``)."""

    code = "verification_failed"

    def __init__(self, step: str, seq: int | None, message: str) -> None:
        self.step = step
        self.seq = seq
        self.message = message
        where = f" (entry {seq})" if seq is not None else ""
        super().__init__(f"step {step}{where}: {message}")
