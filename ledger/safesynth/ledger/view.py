"""Reading entries: the read-only :class:`LedgerView` and derived, non-authoritative projections.

A :class:`LedgerView` is what a conditional append's ``check`` sees: the committed entries plus those
appended earlier in the same transaction, read through the writer's connection while it holds the
write lock. It is valid only during the call.

A :class:`Projection` folds entries into a summary (for example the budget spent per dataset). It is a
cache: it remembers the last entry it folded (seq and leaf hash) and refolds from scratch if that entry
changed. The ledger stays the only authority.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from safesynth.ledger.entry import Entry, parse_entry_json
from safesynth.ledger.errors import LedgerError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["EntrySource", "LedgerView", "Projection", "read_entries", "read_entry"]

S = TypeVar("S")

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class EntrySource(Protocol):
    """Anything that lists entries: a LedgerView, a LedgerStore."""

    @property
    def size(self) -> int:
        """Number of entries."""
        ...

    def entries(self, start_seq: int = 0, kinds: Collection[str] | None = None) -> Iterator[Entry]:
        """Entries with seq >= start_seq (of the given kinds), in seq order."""
        ...

    def leaf_hash(self, seq: int) -> bytes:
        """The leaf hash of entry ``seq``."""
        ...


def _row_entry(body: bytes) -> Entry:
    return parse_entry_json(body, check_canonical=False)


def read_entries(
    conn: sqlite3.Connection,
    start_seq: int,
    end_seq: int,
    kinds: Collection[str] | None,
    lock: AbstractContextManager[Any] | None = None,
) -> Iterator[Entry]:
    """Entries with start_seq <= seq < end_seq, optionally filtered by kind, read in pages.

    With ``lock``, each page is fetched while holding it (the store's lock: never mid-transaction).
    """
    page = 1000
    guard: AbstractContextManager[Any] = lock if lock is not None else contextlib.nullcontext()
    seq = max(0, start_seq)
    kind_list = sorted(set(kinds)) if kinds is not None else None
    while seq < end_seq:
        if kind_list is None:
            with guard:
                rows = conn.execute(
                    "SELECT seq, body FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?",
                    (seq, end_seq, page),
                ).fetchall()
        else:
            if not kind_list:
                return
            marks = ",".join("?" * len(kind_list))
            with guard:
                rows = conn.execute(
                    f"SELECT seq, body FROM entries WHERE kind IN ({marks}) AND seq >= ? AND seq < ? "  # noqa: S608
                    "ORDER BY seq LIMIT ?",
                    (*kind_list, seq, end_seq, page),
                ).fetchall()
        if not rows:
            return
        for _, body in rows:
            yield _row_entry(body)
        seq = rows[-1][0] + 1


def read_entry(conn: sqlite3.Connection, seq: int) -> Entry | None:
    """One entry, or None."""
    row = conn.execute("SELECT body FROM entries WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else _row_entry(row[0])


class LedgerView:
    """Read-only access to the ledger inside the append transaction."""

    def __init__(self, conn: sqlite3.Connection, size: int) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._size = size

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("a LedgerView is only valid during the check that received it")
        return self._conn

    def close(self) -> None:
        """Invalidate the view (called when the check returns)."""
        self._conn = None

    @property
    def size(self) -> int:
        """Number of entries visible (the seq the new entry will get)."""
        return self._size

    def entries(self, start_seq: int = 0, kinds: Collection[str] | None = None) -> Iterator[Entry]:
        """Entries with seq >= start_seq, optionally of the given kinds, in order."""
        return read_entries(self._c(), start_seq, self._size, kinds)

    def get(self, seq: int) -> Entry:
        """The entry at ``seq``."""
        entry = read_entry(self._c(), seq) if 0 <= seq < self._size else None
        if entry is None:
            raise LedgerError(f"no entry {seq}")
        return entry

    def payload_value(self, seq: int, name: str) -> Any:
        """One top-level field of entry ``seq``'s payload (None if absent), read by SQLite's JSON
        functions without parsing the whole entry in Python (a check's cheap look at one field)."""
        if not _FIELD_RE.match(name):
            raise LedgerError(f"{name!r} is not a plain payload field name")
        row = (
            self._c()
            .execute(
                "SELECT json_extract(body, '$.payload.' || ?) FROM entries WHERE seq = ?",
                (name, seq),
            )
            .fetchone()
            if 0 <= seq < self._size
            else None
        )
        if row is None:
            raise LedgerError(f"no entry {seq}")
        return row[0]

    def leaf_hash(self, seq: int) -> bytes:
        """The leaf hash of entry ``seq``."""
        row = self._c().execute("SELECT leaf_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is None or seq >= self._size:
            raise LedgerError(f"no entry {seq}")
        return bytes(row[0])


class Projection(Generic[S]):
    """A derived view: ``state = step(state, entry)`` folded over entries of ``kinds``.

    ``update(source)`` folds only the entries added since the last update, so a check inside an append
    transaction costs O(new entries). Never authoritative: rebuilt from the entries when in doubt.
    """

    def __init__(
        self, initial: Callable[[], S], step: Callable[[S, Entry], S], kinds: Collection[str] | None = None
    ) -> None:
        self._initial = initial
        self._step = step
        self._kinds = None if kinds is None else frozenset(kinds)
        self.state: S = initial()
        self.next_seq = 0
        self._last: tuple[int, bytes] | None = None

    def reset(self) -> None:
        """Forget everything folded so far."""
        self.state = self._initial()
        self.next_seq = 0
        self._last = None

    def update(self, source: EntrySource) -> S:
        """Fold the entries of ``source`` not yet seen; return the state."""
        if source.size < self.next_seq:
            self.reset()
        elif self._last is not None:
            seq, digest = self._last
            if source.leaf_hash(seq) != digest:
                self.reset()
        for entry in source.entries(self.next_seq, self._kinds):
            self.state = self._step(self.state, entry)
            self._last = (entry.seq, entry.leaf_hash)
        self.next_seq = source.size
        return self.state
