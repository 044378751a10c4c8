"""The fork guard: the last signed checkpoint, also kept in a small side file next to the store.

The side file is written after each commit, atomically (temporary file, fsync, rename), under an
advisory lock and only forwards (a larger tree size replaces a smaller one).
On open, a store that is behind the side file (an old copy restored over the live one) or whose
checkpoint at the side file's size differs from it (a fork) is refused.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["guard_path", "read_guard", "write_guard"]

try:  # POSIX advisory locks; elsewhere the write order is still crash-safe, only not race-free.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def guard_path(store_path: Path) -> Path:
    """``<store>.checkpoint``."""
    return store_path.with_name(store_path.name + ".checkpoint")


@functools.lru_cache(maxsize=64)
def _paths(store_path: Path, pid: int) -> tuple[str, str, str]:
    """(side file, its lock file, this process's temporary file) as strings: built once per store."""
    path = guard_path(store_path)
    return str(path), f"{path}.lock", f"{path}.tmp.{pid}"


def _size_of(note_text: str) -> int:
    lines = note_text.split("\n", 2)
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        return -1


@contextlib.contextmanager
def _locked(lock: str) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_guard(store_path: Path) -> str | None:
    """The side file's signed note text, or None if there is none."""
    return _read(_paths(store_path, os.getpid())[0])


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:  # noqa: PTH123 - a str path: no Path per commit
            return file.read()
    except FileNotFoundError:
        return None


def write_guard(store_path: Path, note_text: str) -> None:
    """Replace the side file with ``note_text`` if it is for a larger tree (atomic, durable)."""
    path, lock, tmp = _paths(store_path, os.getpid())
    with _locked(lock):
        current = _read(path)
        if current is not None and _size_of(current) >= _size_of(note_text):
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, note_text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        # No fsync of the directory: if a crash loses the rename, the side file is simply the previous
        # checkpoint, still behind the store (whose COMMIT was durable before this write began), which
        # is safe. The data fsync above is what matters: a surviving name never points at a torn file.
        os.replace(tmp, path)  # noqa: PTH105 - str paths, built once per store
