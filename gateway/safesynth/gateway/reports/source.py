"""Where a report's entries come from: a live ledger store (read-only) or a verified export."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safesynth.ledger import Entry, LedgerStore, load_verifier, parse_entry_json
from safesynth.ledger.export import CHECKPOINTS_FILE, ENTRIES_FILE, MANIFEST_FILE
from safesynth.ledger.verify import verify_export

__all__ = ["LedgerSnapshot", "from_export", "from_store"]


@dataclass(frozen=True)
class LedgerSnapshot:
    """Entries up to a signed checkpoint, and that checkpoint."""

    entries: Sequence[Entry]
    checkpoint: str
    tree_size: int
    root_hash: str


def from_store(path: Path) -> LedgerSnapshot:
    """Read a store without a signer (read-only; the store self-checks on open)."""
    with LedgerStore.open(path) as store:
        signed = store.latest_checkpoint()
        entries = list(store.entries())[: signed.size]
        return LedgerSnapshot(
            entries=entries,
            checkpoint=signed.text,
            tree_size=signed.size,
            root_hash=base64.b64encode(signed.root_hash).decode("ascii"),
        )


def from_export(directory: Path, public_key: Path) -> LedgerSnapshot:
    """Verify an export with the public key first (raises LedgerVerificationError), then read it."""
    verify_export(directory, load_verifier(public_key))
    manifest = json.loads((directory / MANIFEST_FILE).read_text("utf-8"))
    size = int(manifest["tree_size"])
    note = ""
    with (directory / CHECKPOINTS_FILE).open("rb") as lines:
        for line in lines:
            record = json.loads(line)
            if int(record["size"]) == size:
                note = str(record["note"])
    with (directory / ENTRIES_FILE).open("rb") as lines:
        entries = [parse_entry_json(line.rstrip(b"\n")) for line in lines if line.strip()]
    return LedgerSnapshot(
        entries=entries, checkpoint=note, tree_size=size, root_hash=str(manifest["root_hash"])
    )
