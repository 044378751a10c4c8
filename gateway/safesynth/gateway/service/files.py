"""Private files: directories 0700, files 0600, written atomically (temp file + rename)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["ensure_private_dir", "private_temp_path", "write_private"]


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and set it to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_temp_path(directory: Path, suffix: str = "") -> Path:
    """A fresh, not yet existing path in ``directory`` (for atomic writes)."""
    return directory / f".tmp-{secrets.token_hex(8)}{suffix}"


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600, atomically."""
    tmp = private_temp_path(path.parent, path.suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
