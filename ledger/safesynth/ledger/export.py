"""The export bundle: a directory a regulator can verify offline with the log's public key.

Layout (every file is strictly formatted, so a changed byte never goes unnoticed)::

    manifest.json      format, origin, tree size, root hash, checkpoint interval, sha256 of each file
    entries.jsonl      one entry per line: its RFC 8785 canonical JSON (the exact bytes that are hashed)
    checkpoints.jsonl  {"note": <signed checkpoint>, "size": n} per line, ascending by size
    keys.json          the key history (see :mod:`safesynth.ledger.keyhistory`)

``checkpoints.jsonl`` holds the checkpoint of every tree size that is a multiple of the checkpoint
interval (1 = every checkpoint the store ever signed), plus the latest, the ones around each key
rotation and every witnessed one. The manifest is not signed: it is a table of contents; the
authority is the signed latest checkpoint, which commits to every entry. Every manifest field is
checked by the verifier (nothing in it is unverifiable decoration), and the exported checkpoint set
must be exactly the one the interval rule gives.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safesynth.ledger.errors import LedgerError

__all__ = [
    "CHECKPOINTS_FILE",
    "ENTRIES_FILE",
    "EXPORT_FORMAT",
    "KEYS_FILE",
    "MANIFEST_FILE",
    "ExportSummary",
    "dump_json_line",
    "dump_manifest",
    "write_export",
]

EXPORT_FORMAT = "safesynth-ledger-export/v1"
MANIFEST_FILE = "manifest.json"
ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
KEYS_FILE = "keys.json"


def dump_json_line(obj: Any) -> bytes:
    """The one accepted serialisation of a JSON line (sorted keys, no spaces, UTF-8, newline)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def dump_manifest(obj: Any) -> bytes:
    """The one accepted serialisation of the manifest (sorted keys, indent 2, newline)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class ExportSummary:
    """What was exported."""

    out_dir: Path
    tree_size: int
    root_hash: str
    checkpoints: int
    manifest: dict[str, Any]


class _HashingWriter:
    def __init__(self, path: Path) -> None:
        self._f = path.open("xb")
        self._h = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._h.update(data)
        self.count += len(data)

    def close(self) -> dict[str, Any]:
        self._f.close()
        return {"sha256": self._h.hexdigest(), "bytes": self.count}


def write_export(
    out_dir: Path,
    *,
    origin: str,
    tree_size: int,
    root_hash_b64: str,
    checkpoint_interval: int,
    entries: Iterable[bytes],
    checkpoints: Iterable[tuple[int, str]],
    key_history: dict[str, Any],
) -> ExportSummary:
    """Write the bundle into ``out_dir`` (created; must be empty or absent)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise LedgerError(f"export directory {out_dir} is not empty")
    files: dict[str, Any] = {}
    w = _HashingWriter(out_dir / ENTRIES_FILE)
    try:
        n = 0
        for body in entries:
            w.write(body + b"\n")
            n += 1
    finally:
        files[ENTRIES_FILE] = w.close()
    if n != tree_size:
        raise LedgerError(f"exported {n} entries for a tree of {tree_size}")
    w = _HashingWriter(out_dir / CHECKPOINTS_FILE)
    count = 0
    try:
        for size, note in checkpoints:
            w.write(dump_json_line({"size": size, "note": note}))
            count += 1
    finally:
        files[CHECKPOINTS_FILE] = w.close()
    w = _HashingWriter(out_dir / KEYS_FILE)
    try:
        w.write(dump_json_line(key_history))
    finally:
        files[KEYS_FILE] = w.close()
    manifest = {
        "format": EXPORT_FORMAT,
        "origin": origin,
        "tree_size": tree_size,
        "root_hash": root_hash_b64,
        "checkpoint_interval": checkpoint_interval,
        "files": files,
    }
    (out_dir / MANIFEST_FILE).write_bytes(dump_manifest(manifest))
    return ExportSummary(out_dir, tree_size, root_hash_b64, count, manifest)
