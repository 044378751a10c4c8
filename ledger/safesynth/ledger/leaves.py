"""The leaf stream of an export's ``entries.jsonl``: each line checked and hashed, serially or in workers.

Step ``3-entries`` of offline verification: every line is a well-formed entry whose ``seq`` equals
its line number, and its leaf hash is ``SHA-256(0x00 || ENTRY_TAG || line)``. For a large file the
lines are checked and hashed by worker processes, a byte range (cut at line ends) each, while the
calling process feeds the leaves into the tree in order. A worker that meets a bad line stops
there and reports it; the caller re-checks that one line itself, so the error raised, and the
point at which it is raised, are exactly those of the serial path (the first bad line, after every
earlier leaf and checkpoint was checked).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from safesynth.ledger.entry import ENTRY_TAG, scan_entry_json
from safesynth.ledger.errors import LedgerError, LedgerVerificationError, NonCanonicalNumberError
from safesynth.ledger.keyhistory import ROTATION_KIND

__all__ = ["PARALLEL_MIN_BYTES", "check_line", "iter_leaves"]

#: Entries files at least this large are checked by worker processes when ``workers`` is automatic.
PARALLEL_MIN_BYTES = 64 << 20
_CHUNK_BYTES = 8 << 20
_STEP = "3-entries"
_TAG = b"\x00" + ENTRY_TAG

#: (leaf hash, the entry object if it is a key rotation else None)
Leaf = tuple[bytes, dict[str, Any] | None]


def check_line(raw: bytes, seq: int) -> tuple[bytes, dict[str, Any], str]:
    """Check line ``seq`` (with its newline); return ``(body, entry object, kind)`` or raise."""
    if raw[-1:] != b"\n":
        raise LedgerVerificationError(_STEP, seq, "the entries file does not end with a newline")
    body = raw[:-1]
    try:
        obj, entry_seq, kind = scan_entry_json(body)
    except NonCanonicalNumberError as exc:
        raise LedgerVerificationError(
            _STEP, seq, "entry holds a float; privacy figures must be decimal strings"
        ) from exc
    except LedgerError as exc:
        raise LedgerVerificationError(_STEP, seq, f"malformed entry: {exc}") from exc
    if entry_seq != seq:
        raise LedgerVerificationError(
            _STEP, seq, f"line {seq} holds entry {entry_seq}: entries are missing, reordered or duplicated"
        )
    return body, obj, kind


def _serial(path: Path) -> Generator[Leaf, None, None]:
    sha256 = hashlib.sha256
    with path.open("rb") as f:
        for seq, raw in enumerate(f):
            body, obj, kind = check_line(raw, seq)
            yield sha256(_TAG + body).digest(), (obj if kind == ROTATION_KIND else None)


ChunkResult = tuple[int, bytes, list[tuple[int, dict[str, Any]]], int | None]


def _scan_chunk(job: tuple[str, int, int]) -> ChunkResult:
    """Worker: check and hash the lines in ``[start, end)``.

    Returns ``(seq of the first line, concatenated leaf hashes, rotations as (index, object), the
    index of the first bad line or None)``. Lines are numbered from the first line's own ``seq``;
    the caller checks that this is where the previous chunk ended.
    """
    name, start, end = job
    with Path(name).open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the range ends with a newline
    sha256 = hashlib.sha256
    leaves: list[bytes] = []
    rotations: list[tuple[int, dict[str, Any]]] = []
    first = -1
    for i, line in enumerate(lines):
        try:
            if i == 0:
                first = scan_entry_json(line)[1]
            body, obj, kind = check_line(line + b"\n", first + i)
        except LedgerError:
            return first, b"".join(leaves), rotations, i
        if kind == ROTATION_KIND:
            rotations.append((i, obj))
        leaves.append(sha256(_TAG + body).digest())
    return first, b"".join(leaves), rotations, (len(lines) if tail else None)


def _ranges(path: Path, size: int) -> list[tuple[int, int]]:
    bounds = [0]
    with path.open("rb") as f:
        pos = _CHUNK_BYTES
        while pos < size:
            f.seek(pos)
            f.readline()
            cut = f.tell()
            if cut >= size:
                break
            if cut > bounds[-1]:
                bounds.append(cut)
            pos = cut + _CHUNK_BYTES
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _line_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.readline()


def _parallel(path: Path, size: int, workers: int) -> Generator[Leaf, None, None]:
    ranges = _ranges(path, size)
    jobs = [(str(path), start, end) for start, end in ranges]
    # fork, and only from a single-threaded process (see iter_leaves): spawn would re-import the
    # caller's __main__ in every worker. A worker that dies raises BrokenProcessPool (no hang).
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        seq = 0
        for (start, _), (first, leaves, rotations, bad) in zip(
            ranges, pool.map(_scan_chunk, jobs), strict=True
        ):
            count = len(leaves) // 32
            if (count or bad is not None) and first != seq:  # a gap, duplicate or swap at the cut
                check_line(_line_at(path, start), seq)
                raise LedgerVerificationError(_STEP, seq, "entries are missing, reordered or duplicated")
            rot = dict(rotations)
            for i in range(count):
                yield leaves[32 * i : 32 * i + 32], rot.get(i)
            seq += count
            if bad is not None:
                with path.open("rb") as f:  # the bad line: skip the good ones
                    f.seek(start)
                    for _ in range(count):
                        f.readline()
                    raw = f.readline()
                check_line(raw, seq)
                raise LedgerVerificationError(_STEP, seq, "malformed entry")
    except BrokenProcessPool as exc:
        raise LedgerError(f"an entry-checking worker process died: {exc}") from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def iter_leaves(path: Path, workers: int | None = None) -> Generator[Leaf, None, None]:
    """The checked leaf hashes of ``path`` in order (raises LedgerVerificationError at a bad line).

    ``workers``: processes to check and hash with; ``None`` picks ``os.cpu_count()`` (at most 4) for
    files of at least :data:`PARALLEL_MIN_BYTES` and none otherwise; ``0`` or ``1`` checks serially.
    Workers are forked, so a process with other threads running (forking it could copy a lock in
    use) or without ``fork`` checks serially too; the result is the same either way.
    """
    size = path.stat().st_size
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if size >= PARALLEL_MIN_BYTES else 0
    if workers < 2 or size == 0 or threading.active_count() > 1 or not hasattr(os, "fork"):
        return _serial(path)
    return _parallel(path, size, workers)
