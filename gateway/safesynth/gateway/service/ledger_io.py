"""The gateway's handle on the ledger: one thread-safe store per process.

The store is thread-safe and multi-process safe (``BEGIN IMMEDIATE``; concurrent appends from the
process's threads are group-committed, each with its own ``check``). This wrapper materializes entry
pages and offers :func:`ledger_safe` (the ledger refuses floats: they become decimal strings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from safesynth.ledger import LedgerStore, Signer
from safesynth.ledger.entry import decimal_string

__all__ = ["LockedLedger", "ledger_safe"]


def ledger_safe(value: Any) -> Any:
    """A JSON value the ledger accepts: floats become decimal strings (NaN/inf become None)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= (1 << 53) - 1 else str(value)
    if isinstance(value, float | Decimal):
        try:
            return decimal_string(value)
        except Exception:
            return None
    if isinstance(value, Mapping):
        return {str(k): ledger_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [ledger_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return ledger_safe(value.item())
    return str(value)


class LockedLedger:
    """A :class:`~safesynth.ledger.LedgerStore` with paging helpers.

    No lock of its own: the store is thread-safe, and a wrapper lock around appends would serialize
    the threads and defeat the store's group commit (concurrent appends sharing one transaction and
    one fsync). The name is kept for the modules that import it.
    """

    def __init__(self, store: LedgerStore, signer: Signer) -> None:
        self.store = store
        self.signer = signer

    @classmethod
    def open(cls, path: Path, signer: Signer) -> LockedLedger:
        """Open the existing ledger at ``path``."""
        return cls(LedgerStore.open(path, signer), signer)

    @property
    def size(self) -> int:
        """Number of entries."""
        return int(self.store.size)

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        actor: str,
        check: Callable[[Any], None] | None = None,
    ) -> Any:
        """Append one entry (``check`` runs inside the ledger transaction); group-committed."""
        return self.store.append(kind, payload, actor=actor, check=check)

    def entries(
        self, start_seq: int = 0, kinds: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Any]:
        """Entries from ``start_seq`` (of ``kinds``), at most ``limit``."""
        out: list[Any] = []
        iterator: Iterable[Any] = self.store.entries(start_seq=start_seq, kinds=kinds)
        for entry in iterator:
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
        return out

    def get(self, seq: int) -> Any:
        """Entry ``seq``."""
        return self.store.get(seq)

    def latest_checkpoint(self) -> Any:
        """The latest signed checkpoint."""
        return self.store.latest_checkpoint()

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> Any:
        """RFC 6962 inclusion proof of ``seq``."""
        return self.store.inclusion_proof(seq, tree_size=tree_size)

    def consistency_proof(self, old: int, new: int) -> Any:
        """RFC 6962 consistency proof."""
        return self.store.consistency_proof(old, new)

    def export(self, out_dir: Path) -> Any:
        """Write the export bundle into ``out_dir``."""
        return self.store.export(out_dir)

    def close(self) -> None:
        """Close the store if it can be closed."""
        close = getattr(self.store, "close", None)
        if callable(close):
            close()
