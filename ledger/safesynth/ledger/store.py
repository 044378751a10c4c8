"""The ledger store: SQLite through sqlite-utils, WAL, ``synchronous=FULL``, append-only.

Writers run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before anything is read,
so a conditional append's ``check`` and the append itself see and change one state, and two
processes can never both pass a check on the same state. Every entry gets its own signed checkpoint.

Appends from several threads of one process are *group-committed*: whoever holds the write lock
takes every request queued so far and runs them in one transaction, in order, each with its own
check, entry and checkpoint; the one fsync at COMMIT makes them all durable before any caller
returns. ``append_many`` does the same for a list given at once.

Opening a store runs a fast self-check (schema and triggers unchanged, the latest checkpoint signed
by the current key, the stored frontier's root equal to its root, the fork-guard side file not ahead
of or different from the store); :meth:`LedgerStore.full_check` recomputes everything.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safesynth.ledger.checkpoint import Checkpoint, SignedNote, open_checkpoint, sign_checkpoint
from safesynth.ledger.entry import Entry, entry_leaf_hash, utc_now
from safesynth.ledger.errors import (
    ForkDetectedError,
    InvalidCheckpointError,
    InvalidKeyError,
    InvalidProofError,
    LedgerError,
    ReadOnlyLedgerError,
    StoreExistsError,
    StoreIntegrityError,
    StoreNotFoundError,
)
from safesynth.ledger.export import ExportSummary, write_export
from safesynth.ledger.forkguard import guard_path, read_guard, write_guard
from safesynth.ledger.keyhistory import ROTATION_KIND, KeyHistory, KeyPeriod, rotation_payload
from safesynth.ledger.keys import Signer, Verifier
from safesynth.ledger.merkle import (
    Coord,
    Frontier,
    consistency_proof,
    frontier_coords,
    inclusion_proof,
)
from safesynth.ledger.proofs import ConsistencyProof, InclusionProof, SignedCheckpoint
from safesynth.ledger.schema import FORMAT, create_schema, schema_problems
from safesynth.ledger.view import LedgerView, read_entries, read_entry

__all__ = ["AppendRequest", "AppendResult", "LedgerStore"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

Check = Callable[[LedgerView], None]


@dataclass(frozen=True)
class AppendRequest:
    """One append: kind, payload, actor and an optional check run inside the transaction."""

    kind: str
    payload: Mapping[str, Any]
    actor: str
    check: Check | None = None


@dataclass(frozen=True)
class AppendResult:
    """What an append produced: the entry, its leaf hash and the signed checkpoint that includes it."""

    seq: int
    entry_hash: bytes
    checkpoint: SignedCheckpoint
    entry: Entry


class _Pending:
    __slots__ = ("done", "error", "request", "result")

    def __init__(self, request: AppendRequest) -> None:
        self.request = request
        self.done = False
        self.result: AppendResult | None = None
        self.error: BaseException | None = None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def _database(conn: sqlite3.Connection) -> Any:
    import sqlite_utils  # the [gateway] extra; imported only to create a store

    return sqlite_utils.Database(conn, execute_plugins=False)


class LedgerStore:
    """An append-only, signed Merkle-tree log in one SQLite file. Thread-safe; multi-process safe."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, signer: Signer | None, *, fork_guard: bool
    ) -> None:
        self.path = path
        self._conn = conn
        self._signer = signer
        self._fork_guard = fork_guard
        self._lock = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._frontier: Frontier | None = None
        self._guard_lock = threading.Lock()
        self._guard_written = -1
        self._newest: tuple[int, str] | None = None
        self._lock_fd: int | None = None
        self._keys_cache: tuple[int, KeyHistory] | None = None
        self._verifier_cache: tuple[Signer, Verifier] | None = None
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT or "origin" not in meta:
            raise StoreIntegrityError(f"{path} is not a SafeSynth ledger store ({FORMAT})")
        self.origin: str = meta["origin"]

    # ----------------------------------------------------------------- create / open / close

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], signer: Signer, *, origin: str, fork_guard: bool = True
    ) -> LedgerStore:
        """Create a new store (atomically: built beside ``path`` and renamed into place)."""
        path = Path(path)
        if path.exists():
            raise StoreExistsError(f"a ledger already exists at {path}")
        Checkpoint(origin=origin, size=0, root_hash=Frontier().root())  # validates the origin
        tmp = path.with_name(f".{path.name}.creating.{os.getpid()}")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        conn = _connect(tmp)
        try:
            db = _database(conn)
            create_schema(db)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", FORMAT), ("origin", origin), ("created", utc_now())],
            )
            conn.execute(
                "INSERT INTO keys (idx, vkey, from_size, rotation_seq) VALUES (0, ?, 0, NULL)",
                (signer.verifier().vkey(),),
            )
            note = sign_checkpoint(Checkpoint(origin, 0, Frontier().root()), [signer])
            conn.execute("INSERT INTO checkpoints (size, note) VALUES (0, ?)", (note.text(),))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        tmp.replace(path)
        if fork_guard:
            guard_path(path).unlink(missing_ok=True)
            write_guard(path, note.text())
        return cls.open(path, signer, fork_guard=fork_guard)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], signer: Signer | None = None, *, fork_guard: bool = True
    ) -> LedgerStore:
        """Open an existing store and self-check it. Without a signer the store is read-only.

        With ``fork_guard`` (the default) a writer refuses a store whose side file is missing, and
        every opener refuses a store behind or different from its side file.
        """
        path = Path(path)
        if not path.is_file():
            raise StoreNotFoundError(f"no ledger at {path}")
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            raise StoreIntegrityError(f"{path} is not a readable ledger store: {exc}") from exc
        try:
            store = cls(path, conn, signer, fork_guard=fork_guard)
            store.self_check()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreIntegrityError(f"{path} is not a readable ledger store: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    @property
    def signer(self) -> Signer | None:
        """The current signing key (None when read-only)."""
        return self._signer

    @property
    def size(self) -> int:
        """Number of entries (committed)."""
        with self._lock:
            return self._size()

    def _size(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM entries").fetchone()
        return int(row[0])

    def entries(self, start_seq: int = 0, kinds: Collection[str] | None = None) -> Iterator[Entry]:
        """Committed entries with seq >= start_seq (optionally of some kinds), in order."""
        with self._lock:
            end = self._size()
        return read_entries(self._conn, start_seq, end, kinds, self._lock)

    def get(self, seq: int) -> Entry:
        """The entry at ``seq``."""
        with self._lock:
            entry = read_entry(self._conn, seq)
        if entry is None:
            raise LedgerError(f"no entry {seq}")
        return entry

    def leaf_hash(self, seq: int) -> bytes:
        """The leaf hash of entry ``seq``."""
        with self._lock:
            row = self._conn.execute("SELECT leaf_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise LedgerError(f"no entry {seq}")
        return bytes(row[0])

    def key_history(self) -> KeyHistory:
        """The log keys and the tree sizes they sign."""
        with self._lock:
            return self._key_history()

    def _key_history(self) -> KeyHistory:
        count = self._conn.execute("SELECT COUNT(*) FROM keys").fetchone()[0]
        if self._keys_cache is not None and self._keys_cache[0] == count:
            return self._keys_cache[1]
        rows = self._conn.execute("SELECT vkey, from_size, rotation_seq FROM keys ORDER BY idx").fetchall()
        history = KeyHistory([KeyPeriod(Verifier.from_vkey(v), f, r) for v, f, r in rows])
        self._keys_cache = (count, history)
        return history

    def witnesses(self) -> list[Verifier]:
        """The witness keys whose cosignatures this store holds."""
        with self._lock:
            rows = self._conn.execute("SELECT vkey FROM witnesses ORDER BY idx").fetchall()
        return [Verifier.from_vkey(r[0]) for r in rows]

    def checkpoint(self, size: int) -> SignedCheckpoint:
        """The signed checkpoint of tree ``size`` (with any witness cosignatures added)."""
        with self._lock:
            row = self._conn.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
            if row is None:
                raise LedgerError(f"no checkpoint for tree size {size}")
            lines = [
                r[0]
                for r in self._conn.execute(
                    "SELECT line FROM cosignatures WHERE size = ? ORDER BY id", (size,)
                )
            ]
        cp = SignedCheckpoint.parse(row[0])
        if lines:
            extra = SignedNote.parse(cp.note.body + "\n" + "".join(lines)).signatures
            cp = SignedCheckpoint(cp.checkpoint, cp.note.with_signatures(extra))
        return cp

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The checkpoint of the current tree."""
        with self._lock:
            return self.checkpoint(self._size())

    def _lookup(self, coords: Sequence[Coord]) -> dict[Coord, bytes]:
        out: dict[Coord, bytes] = {}
        for level, idx in coords:
            if level == 0:
                row = self._conn.execute("SELECT leaf_hash FROM entries WHERE seq = ?", (idx,)).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, idx)
                ).fetchone()
            if row is not None:
                out[(level, idx)] = bytes(row[0])
        return out

    def _load_frontier(self, size: int) -> Frontier:
        coords = frontier_coords(size)
        nodes = self._lookup(coords)
        if len(nodes) != len(coords):
            raise StoreIntegrityError(f"stored tree nodes for size {size} are missing")
        return Frontier(size, [nodes[c] for c in coords])

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``seq`` is in the tree of ``tree_size`` (default: the current tree)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                size = self._size() if tree_size is None else tree_size
                if not 0 <= seq < size or size > self._size():
                    raise InvalidProofError(f"entry {seq} is not in a tree of size {size}")
                hashes = inclusion_proof(seq, size, self._lookup)
                entry = read_entry(self._conn, seq)
                cp = self.checkpoint(size)
            finally:
                self._conn.execute("COMMIT")
        assert entry is not None
        return InclusionProof(entry, size, tuple(hashes), cp)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``old_size`` is a prefix of the tree of ``new_size`` (default: current)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                size = self._size()
                new = size if new_size is None else new_size
                if not 0 <= old_size <= new <= size:
                    raise InvalidProofError(f"no consistency proof from {old_size} to {new} (size {size})")
                hashes = consistency_proof(old_size, new, self._lookup)
                old_cp, new_cp = self.checkpoint(old_size), self.checkpoint(new)
            finally:
                self._conn.execute("COMMIT")
        return ConsistencyProof(old_cp, new_cp, tuple(hashes))

    def export(self, out_dir: str | os.PathLike[str], *, checkpoint_interval: int = 1000) -> ExportSummary:
        """Write the export bundle (a consistent snapshot) into ``out_dir``; see :mod:`.export`.

        ``checkpoint_interval=1`` exports every checkpoint ever signed; the default keeps every
        1000th plus the latest, those around key rotations and every witnessed one.
        """
        if checkpoint_interval < 1:
            raise LedgerError("checkpoint_interval must be at least 1")
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                size = self._size()
                latest = self.checkpoint(size)
                history = self._key_history()
                keep = {size}
                for period in history.periods[1:]:
                    keep.update((period.from_size - 1, period.from_size))
                witnessed = {r[0] for r in self._conn.execute("SELECT DISTINCT size FROM cosignatures")}
                keep.update(witnessed)

                def entries() -> Iterator[bytes]:
                    cur = self._conn.cursor()
                    for (body,) in cur.execute(
                        "SELECT body FROM entries WHERE seq < ? ORDER BY seq", (size,)
                    ):
                        yield bytes(body)

                def checkpoints() -> Iterator[tuple[int, str]]:
                    cur = self._conn.cursor()
                    rows = cur.execute(
                        "SELECT size, note FROM checkpoints WHERE size <= ? AND (size % ? = 0 OR size IN "
                        "(SELECT value FROM json_each(?))) ORDER BY size",
                        (size, checkpoint_interval, json.dumps(sorted(keep))),
                    )
                    for cp_size, note in rows:
                        if cp_size in witnessed:
                            note = self.checkpoint(cp_size).text
                        yield cp_size, note

                return write_export(
                    Path(out_dir),
                    origin=self.origin,
                    tree_size=size,
                    root_hash_b64=base64.b64encode(latest.root_hash).decode("ascii"),
                    checkpoint_interval=checkpoint_interval,
                    entries=entries(),
                    checkpoints=checkpoints(),
                    key_history={
                        **history.to_json(),
                        "witnesses": [
                            r[0] for r in self._conn.execute("SELECT vkey FROM witnesses ORDER BY idx")
                        ],
                    },
                )
            finally:
                self._conn.execute("COMMIT")

    # ----------------------------------------------------------------- self-checks

    def self_check(self) -> SignedCheckpoint:
        """The fast check run on open. Raises StoreIntegrityError / ForkDetectedError."""
        with self._lock:
            guard = read_guard(self.path)  # before the snapshot: the side file only trails commits
            self._conn.execute("BEGIN")
            try:
                latest = self._self_check(guard)
            finally:
                self._conn.execute("COMMIT")
        return latest

    def _verify_checkpoint(self, text: str, history: KeyHistory, size: int) -> Checkpoint:
        required = history.signers_for(size)
        try:
            cp, _ = open_checkpoint(text, required, origin=self.origin, require_all=True)
        except InvalidCheckpointError as exc:
            raise StoreIntegrityError(f"checkpoint {size}: {exc}") from exc
        if cp.size != size:
            raise StoreIntegrityError(f"checkpoint stored for size {size} says size {cp.size}")
        return cp

    def _self_check(self, guard: str | None) -> SignedCheckpoint:
        problems = schema_problems(self._conn)
        if problems:
            raise StoreIntegrityError("ledger schema was altered: " + "; ".join(problems))
        history = self._key_history()
        if self._signer is not None and self._signer.verifier() != history.current:
            raise InvalidKeyError(
                f"the signing key {self._signer.verifier().vkey()} is not the ledger's current key "
                f"{history.current.vkey()}"
            )
        size = self._size()
        # The insert guard keeps checkpoint sizes dense from 0, so MIN and MAX (index lookups) suffice.
        row = self._conn.execute("SELECT MIN(size), MAX(size) FROM checkpoints").fetchone()
        if row[0] != 0 or row[1] != size:
            raise StoreIntegrityError(f"checkpoints ({row[0]}..{row[1]}) do not match {size} entries")
        note_row = self._conn.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        cp = self._verify_checkpoint(note_row[0], history, size)
        if size:
            body, leaf = self._conn.execute(
                "SELECT body, leaf_hash FROM entries WHERE seq = ?", (size - 1,)
            ).fetchone()
            if entry_leaf_hash(bytes(body)) != bytes(leaf):
                raise StoreIntegrityError(f"entry {size - 1} does not match its leaf hash")
        frontier = self._load_frontier(size)
        if frontier.root() != cp.root_hash:
            raise StoreIntegrityError("the stored tree's root differs from the latest signed checkpoint")
        self._frontier = frontier
        self._check_fork_guard(guard, history, size)
        return SignedCheckpoint.parse(note_row[0])

    def _check_fork_guard(self, text: str | None, history: KeyHistory, size: int) -> None:
        if not self._fork_guard:
            return
        if text is None:
            if self._signer is not None:
                raise ForkDetectedError(
                    f"the fork-guard file {guard_path(self.path)} is missing; refusing to write "
                    "(restore it, or open with fork_guard=False after checking the store by hand)"
                )
            return
        try:
            guard = SignedCheckpoint.parse(text)
        except InvalidCheckpointError as exc:
            raise ForkDetectedError(f"the fork-guard file is unreadable: {exc}") from exc
        if guard.size > size:
            raise ForkDetectedError(
                f"the store holds {size} entries but its fork guard saw a tree of {guard.size}: "
                "the store was rolled back or replaced"
            )
        stored = self._conn.execute("SELECT note FROM checkpoints WHERE size = ?", (guard.size,)).fetchone()
        if stored is None or SignedNote.parse(stored[0]).body != guard.note.body:
            raise ForkDetectedError(f"the store disagrees with its fork guard at tree size {guard.size}")
        self._verify_checkpoint(text, history, guard.size)

    def full_check(self) -> SignedCheckpoint:
        """Recompute every leaf and stored node, and verify every checkpoint. O(n); for audits."""
        with self._lock:
            guard = read_guard(self.path)
            self._conn.execute("BEGIN")
            try:
                latest = self._self_check(guard)
                history = self._key_history()
                frontier = Frontier()
                nodes = self._conn.execute("SELECT level, idx, hash FROM nodes ORDER BY idx, level")
                expected: dict[Coord, bytes] = {}
                checkpoints = self._conn.execute("SELECT size, note FROM checkpoints ORDER BY size")
                size0, note0 = next(checkpoints)
                if self._verify_checkpoint(note0, history, size0).root_hash != frontier.root():
                    raise StoreIntegrityError("checkpoint 0 is not the empty tree")
                cur = self._conn.cursor()
                for seq, body, leaf in cur.execute("SELECT seq, body, leaf_hash FROM entries ORDER BY seq"):
                    if entry_leaf_hash(bytes(body)) != bytes(leaf):
                        raise StoreIntegrityError(f"entry {seq} does not match its leaf hash")
                    for level, idx, h in frontier.append(bytes(leaf)):
                        expected[(level, idx)] = h
                    size, note = next(checkpoints)
                    if self._verify_checkpoint(note, history, size).root_hash != frontier.root():
                        raise StoreIntegrityError(f"checkpoint {size} does not match the entries")
                count = 0
                for level, idx, h in nodes:
                    count += 1
                    if expected.get((level, idx)) != bytes(h):
                        raise StoreIntegrityError(f"stored tree node ({level}, {idx}) is wrong")
                if count != len(expected):
                    raise StoreIntegrityError("stored tree nodes are missing")
            finally:
                self._conn.execute("COMMIT")
        return latest

    # ----------------------------------------------------------------- appending

    def append(
        self, kind: str, payload: Mapping[str, Any], *, actor: str, check: Check | None = None
    ) -> AppendResult:
        """Append one entry (after ``check`` passes, in the same transaction) and sign a checkpoint.

        If ``check`` raises, nothing is appended and its exception propagates unchanged.
        """
        pending = _Pending(AppendRequest(kind, payload, actor, check))
        with self._queue_lock:
            self._queue.append(pending)
        with self._lock:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run_batch(batch)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        self._sync_guard(pending.result.checkpoint.size)
        return pending.result

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        """Append several entries in one transaction, in order, each with its check and checkpoint.

        A request whose check (or entry validation) fails is skipped and its exception returned in
        its place; the others are appended. One COMMIT (one fsync) makes them all durable.
        """
        batch = [_Pending(r) for r in requests]
        with self._lock:
            failure = self._run_batch(batch)
        if failure is not None:
            raise failure
        sizes = [p.result.checkpoint.size for p in batch if p.result is not None]
        if sizes:
            self._sync_guard(max(sizes))
        out: list[AppendResult | Exception] = []
        for p in batch:
            if p.result is not None:
                out.append(p.result)
            elif isinstance(p.error, Exception):
                out.append(p.error)
            else:
                assert p.error is not None
                raise p.error
        return out

    def rotate_key(self, new_signer: Signer, *, actor: str) -> AppendResult:
        """Append a key-rotation entry signed by the current and the new key; switch to the new key."""
        if new_signer.verifier() == (self._signer.verifier() if self._signer else None):
            raise InvalidKeyError("the new key is the current key")
        pending = _Pending(AppendRequest(ROTATION_KIND, {}, actor, None))
        with self._lock:
            self._run_batch([pending], rotate_to=new_signer)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        self._sync_guard(pending.result.checkpoint.size)
        return pending.result

    def add_cosignature(self, note_text: str, witness: Verifier) -> SignedCheckpoint:
        """Store a witness's cosignature on one of this log's checkpoints (verified first)."""
        note = SignedNote.parse(note_text)
        cp = Checkpoint.parse(note.body)
        if cp.origin != self.origin:
            raise InvalidCheckpointError("the cosigned checkpoint is from another log")
        if not note.verified_by([witness]):
            raise InvalidCheckpointError(f"the note carries no valid signature by witness {witness.name}")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT note FROM checkpoints WHERE size = ?", (cp.size,)).fetchone()
                if row is None or SignedNote.parse(row[0]).body != note.body:
                    raise InvalidCheckpointError("the witness cosigned a checkpoint this log never issued")
                known = {r[0] for r in self._conn.execute("SELECT vkey FROM witnesses")}
                if witness.vkey() not in known:
                    self._conn.execute(
                        "INSERT INTO witnesses (idx, vkey) VALUES ((SELECT COUNT(*) FROM witnesses), ?)",
                        (witness.vkey(),),
                    )
                have = {
                    r[0]
                    for r in self._conn.execute("SELECT line FROM cosignatures WHERE size = ?", (cp.size,))
                }
                for sig in note.signatures:
                    if sig.name == witness.name and sig.key_id == witness.key_id and sig.line() not in have:
                        self._conn.execute(
                            "INSERT INTO cosignatures (id, size, line) VALUES "
                            "((SELECT COALESCE(MAX(id), -1) + 1 FROM cosignatures), ?, ?)",
                            (cp.size, sig.line()),
                        )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.checkpoint(cp.size)

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """An inter-process writer lock taken before BEGIN IMMEDIATE.

        SQLite's busy handler makes a waiting writer sleep in growing steps (up to 100 ms); a blocking
        ``flock`` wakes the next writer as soon as the lock is released, so several processes share the
        store at close to single-process throughput. BEGIN IMMEDIATE still guards correctness (and
        anyone writing without this lock). POSIX only; elsewhere SQLite's locking alone is used.
        """
        locked = False
        if fcntl is not None:
            if self._lock_fd is None:
                self._lock_fd = os.open(
                    self.path.with_name(self.path.name + ".writer-lock"), os.O_RDWR | os.O_CREAT, 0o600
                )
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            locked = True
        try:
            yield
        finally:
            if locked and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _run_batch(self, batch: list[_Pending], rotate_to: Signer | None = None) -> Exception | None:
        """Run queued requests in one BEGIN IMMEDIATE transaction (caller holds self._lock).

        Returns the exception that aborted the whole transaction (also set on every request), if any.
        """
        with self._writer_lock():
            return self._run_batch_locked(batch, rotate_to)

    def _run_batch_locked(self, batch: list[_Pending], rotate_to: Signer | None) -> Exception | None:
        if self._signer is None:
            error = ReadOnlyLedgerError("this ledger was opened without a signing key")
            for p in batch:
                p.error, p.done = error, True
            return error
        conn = self._conn
        last_text: str | None = None
        # An entry and its checkpoint are inserted one after the other (the checkpoint insert guard
        # requires it); the new tree nodes are buffered and written with one executemany per batch
        # (their guard is per level), before COMMIT and before any rotation.
        node_rows: list[tuple[int, int, bytes]] = []
        insert_entry = (
            "INSERT INTO entries (seq, kind, actor, timestamp, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?)"
        )
        insert_cp = "INSERT INTO checkpoints (size, note) VALUES (?, ?)"

        def flush() -> None:
            if node_rows:
                conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", node_rows)
                node_rows.clear()

        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                size = self._size()
                history = self._key_history()
                if history.current != self._signer_verifier():
                    raise InvalidKeyError("the ledger's key was rotated by another process; reopen it")
                frontier = self._frontier
                if frontier is None or frontier.size != size:
                    frontier = self._load_frontier(size)
                frontier = frontier.copy()
                results: list[tuple[_Pending, AppendResult]] = []
                signers = [self._signer] if rotate_to is None else [self._signer, rotate_to]
                origin = self.origin
                for p in batch:
                    req = p.request
                    try:
                        if req.check is not None:
                            view = LedgerView(conn, size)
                            try:
                                req.check(view)
                            finally:
                                view.close()
                        payload = req.payload
                        if rotate_to is not None:
                            payload = rotation_payload(origin, size, self._signer, rotate_to)
                        entry = Entry.build(seq=size, kind=req.kind, payload=payload, actor=req.actor)
                    except Exception as exc:  # the caller's check or bad input: skip this request only
                        p.error = exc
                        continue
                    leaf = entry.leaf_hash
                    conn.execute(
                        insert_entry,
                        (size, entry.kind, entry.actor, entry.timestamp, entry.canonical_bytes, leaf),
                    )
                    node_rows.extend(frontier.append(leaf))
                    size += 1
                    head = Checkpoint(origin, size, frontier.root())
                    note = sign_checkpoint(head, signers)
                    last_text = note.text()
                    conn.execute(insert_cp, (size, last_text))
                    if rotate_to is not None:
                        flush()
                        conn.execute(
                            "INSERT INTO keys (idx, vkey, from_size, rotation_seq) VALUES "
                            "((SELECT COUNT(*) FROM keys), ?, ?, ?)",
                            (rotate_to.verifier().vkey(), size, size - 1),
                        )
                    cp = SignedCheckpoint(head, note)
                    results.append((p, AppendResult(entry.seq, leaf, cp, entry)))
                flush()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._frontier = None
                raise
        except BaseException as exc:
            for p in batch:
                if not p.done:
                    p.error, p.done = exc, True
            if not isinstance(exc, Exception):
                raise
            return exc
        self._frontier = frontier
        if rotate_to is not None and results:
            self._signer = rotate_to
            self._verifier_cache = None
        for p, result in results:
            p.result = result
        for p in batch:
            p.done = True
        if last_text is not None:
            self._newest = (size, last_text)
        return None

    def _signer_verifier(self) -> Verifier:
        """The current signer's verifier, cached (building one parses the public key)."""
        assert self._signer is not None
        cached = self._verifier_cache
        if cached is None or cached[0] is not self._signer:
            cached = (self._signer, self._signer.verifier())
            self._verifier_cache = cached
        return cached[1]

    def _sync_guard(self, size: int) -> None:
        """Make the fork-guard side file hold a checkpoint of at least ``size`` before returning.

        Runs after the write lock is released, so the next transaction's COMMIT overlaps this
        write; concurrent callers coalesce (one write of the newest checkpoint serves them all).
        """
        if not self._fork_guard:
            return
        with self._guard_lock:
            if self._guard_written >= size:
                return
            with self._lock:
                newest = self._newest
            if newest is None:
                return
            write_guard(self.path, newest[1])
            self._guard_written = newest[0]
