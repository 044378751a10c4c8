"""Offline verification of an export bundle: base install only (no sqlite-utils, no numpy).

The steps, each raising :class:`LedgerVerificationError` with its name and, where known, the entry:

1. ``1-manifest``     the manifest is well formed; every file is present with its recorded sha256.
2. ``2-keys``         the key history is well formed and contains the trusted public key.
3. ``3-entries``      every line is a well-formed entry, ``seq`` equals its position (no gap,
                      duplicate or reordering), no floats; leaf hashes are fed to the tree.
4. ``4-rotation``     each key-rotation entry is signed by the old and the new key and matches the
                      key history.
5. ``5-checkpoints``  every exported checkpoint is strictly formatted, in increasing size order,
                      signed by the key(s) the history requires for its size, carries no signature
                      by any other key than those and the listed witnesses (whose cosignatures must
                      verify), and its root equals the root recomputed from the entries at that size.
6. ``6-complete``     the latest checkpoint covers exactly all entries and matches the manifest;
                      no required checkpoint (interval multiples, rotations) is missing.
7. ``7-witness``      with witness keys (which must be listed in the export): each witness cosigned
                      at least one checkpoint (if required).
8. ``8-expected``     with a previously seen checkpoint: the export contains it (same root at its size).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safesynth.ledger.checkpoint import Checkpoint, SignedNote
from safesynth.ledger.errors import LedgerError, LedgerVerificationError
from safesynth.ledger.export import (
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    EXPORT_FORMAT,
    KEYS_FILE,
    MANIFEST_FILE,
    dump_json_line,
    dump_manifest,
)
from safesynth.ledger.keyhistory import KeyHistory, verify_rotation_payload
from safesynth.ledger.keys import Verifier
from safesynth.ledger.leaves import iter_leaves
from safesynth.ledger.merkle import Frontier

__all__ = ["STEPS", "VerificationReport", "verify_export"]

STEPS = (
    "1-manifest",
    "2-keys",
    "3-entries",
    "4-rotation",
    "5-checkpoints",
    "6-complete",
    "7-witness",
    "8-expected",
)


@dataclass
class VerificationReport:
    """What a successful verification established."""

    origin: str
    tree_size: int
    root_hash: str
    checkpoints_verified: int
    keys: list[str]
    witnessed_sizes: dict[str, list[int]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "ok": True,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "checkpoints_verified": self.checkpoints_verified,
            "keys": self.keys,
            "witnessed_sizes": self.witnessed_sizes,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
        }


def _fail(step: str, message: str, seq: int | None = None) -> LedgerVerificationError:
    return LedgerVerificationError(step, seq, message)


def _trusted(key: Verifier | str | bytes) -> Verifier | bytes:
    if isinstance(key, Verifier):
        return key
    if isinstance(key, bytes) and len(key) == 32:
        return key
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    try:
        return Verifier.from_vkey(text)
    except LedgerError as exc:
        raise _fail("2-keys", f"the trusted public key is malformed: {exc}") from exc


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _read_manifest(root: Path) -> dict[str, Any]:
    step = "1-manifest"
    try:
        raw = (root / MANIFEST_FILE).read_bytes()
        manifest = json.loads(raw)
    except FileNotFoundError as exc:
        raise _fail(step, f"{MANIFEST_FILE} is missing") from exc
    except (OSError, ValueError) as exc:
        raise _fail(step, f"{MANIFEST_FILE} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or dump_manifest(manifest) != raw:
        raise _fail(step, "the manifest is not in its canonical form")
    expected = {"format", "origin", "tree_size", "root_hash", "checkpoint_interval", "files"}
    if set(manifest) != expected or manifest["format"] != EXPORT_FORMAT:
        raise _fail(step, f"the manifest is not a {EXPORT_FORMAT} manifest")
    ints = (manifest["tree_size"], manifest["checkpoint_interval"])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ints) or ints[0] < 0 or ints[1] < 1:
        raise _fail(step, "the manifest's tree size or checkpoint interval is malformed")
    files = manifest["files"]
    if not isinstance(files, dict) or set(files) != {ENTRIES_FILE, CHECKPOINTS_FILE, KEYS_FILE}:
        raise _fail(step, "the manifest must list exactly the entries, checkpoints and keys files")
    for name, info in files.items():
        path = root / name
        if not path.is_file():
            raise _fail(step, f"{name} is missing")
        digest, size = _sha256_file(path)
        if not isinstance(info, dict) or info != {"sha256": digest, "bytes": size}:
            raise _fail(step, f"{name} does not match the sha256 recorded in the manifest")
    return manifest


def _read_keys(root: Path, trusted: Verifier | bytes) -> tuple[KeyHistory, list[Verifier]]:
    step = "2-keys"
    raw = (root / KEYS_FILE).read_bytes()
    try:
        obj = json.loads(raw)
        if dump_json_line(obj) != raw:
            raise _fail(step, "the key history is not in its canonical form")
        if (
            not isinstance(obj, dict)
            or set(obj) != {"keys", "witnesses"}
            or not isinstance(obj["witnesses"], list)
        ):
            raise _fail(step, "the key file holds exactly the log keys and the witness keys")
        history = KeyHistory.from_json({"keys": obj["keys"]})
        witnesses = [Verifier.from_vkey(str(w)) for w in obj["witnesses"]]
        if any(not w.is_witness for w in witnesses) or len(set(witnesses)) != len(witnesses):
            raise _fail(step, "witness keys must be distinct cosignature/v1 keys")
    except LedgerVerificationError:
        raise
    except (ValueError, LedgerError) as exc:
        raise _fail(step, f"the key history is malformed: {exc}") from exc
    for period in history.periods:
        match = (
            period.verifier == trusted
            if isinstance(trusted, Verifier)
            else period.verifier.public_key == trusted
        )
        if match:
            return history, witnesses
    raise _fail(step, "the trusted public key is not in the ledger's key history")


def _checkpoint_lines(root: Path) -> Iterator[tuple[int, str]]:
    step = "5-checkpoints"
    with (root / CHECKPOINTS_FILE).open("rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise _fail(step, f"a checkpoint line is not JSON: {exc}") from exc
            if not isinstance(obj, dict) or set(obj) != {"size", "note"} or dump_json_line(obj) != raw:
                raise _fail(step, "a checkpoint line is not in its canonical form")
            size, note = obj["size"], obj["note"]
            if not isinstance(size, int) or isinstance(size, bool) or not isinstance(note, str):
                raise _fail(step, "a checkpoint line is malformed")
            yield size, note


class _CheckpointVerifier:
    def __init__(self, origin: str, history: KeyHistory, witnesses: Sequence[Verifier]) -> None:
        self.origin = origin
        self.history = history
        self.witnesses = list(witnesses)
        self.witnessed: dict[str, list[int]] = {w.vkey(): [] for w in witnesses}
        self.count = 0
        self.roots: dict[int, bytes] = {}
        self.cosigned: set[int] = set()

    def check(self, size: int, note_text: str, root: bytes) -> None:
        step = "5-checkpoints"
        try:
            note = SignedNote.parse(note_text)
            cp = Checkpoint.parse(note.body)
        except LedgerError as exc:
            raise _fail(step, f"checkpoint {size} is malformed: {exc}", size - 1 if size else None) from exc
        seq = size - 1 if size else None
        if cp.size != size:
            raise _fail(step, f"checkpoint line for size {size} holds a checkpoint of size {cp.size}", seq)
        if cp.origin != self.origin:
            raise _fail(step, f"checkpoint {size} is for origin {cp.origin!r}", seq)
        required = self.history.signers_for(size)
        known = [*required, *self.witnesses]
        for sig in note.signatures:
            if not any(sig.name == v.name and sig.key_id == v.key_id for v in known):
                raise _fail(
                    step, f"checkpoint {size} carries a signature by an unknown key {sig.name!r}", seq
                )
        if len(set(note.signatures)) != len(note.signatures):
            raise _fail(step, f"checkpoint {size} repeats a signature", seq)
        try:
            good = note.verified_by(known)
        except LedgerError as exc:
            raise _fail(step, f"checkpoint {size}: {exc}", seq) from exc
        if len(note.signatures) > len(required):
            self.cosigned.add(size)
        missing = [v.name for v in required if v not in good]
        if missing:
            raise _fail(step, f"checkpoint {size} lacks a valid signature by {', '.join(missing)}", seq)
        for w in self.witnesses:
            if w in good:
                self.witnessed[w.vkey()].append(size)
        if cp.root_hash != root:
            raise _fail(step, f"checkpoint {size}'s root is not the root of the first {size} entries", seq)
        self.count += 1
        self.roots[size] = root


def verify_export(
    directory: str | os.PathLike[str],
    public_key: Verifier | str | bytes,
    *,
    witnesses: Sequence[Verifier] = (),
    require_witness: bool = False,
    expected_checkpoint: str | None = None,
    workers: int | None = None,
) -> VerificationReport:
    """Verify an export bundle against the log's public key; raise LedgerVerificationError on failure.

    ``public_key`` is a :class:`Verifier`, a verifier key string, or the raw 32-byte Ed25519 key;
    it may be any key of the log's history. ``expected_checkpoint`` is a signed checkpoint obtained
    earlier (e.g. a receipt): the export must contain the same tree at that size. ``workers``:
    processes that check and hash entry lines (``None``: automatic, by file size; ``0``: none).
    """
    started = time.perf_counter()
    root = Path(directory)
    trusted = _trusted(public_key)
    manifest = _read_manifest(root)
    steps = ["1-manifest"]
    origin = manifest["origin"]
    history, listed_witnesses = _read_keys(root, trusted)
    for w in witnesses:
        if w not in listed_witnesses:
            raise _fail("7-witness", f"witness {w.name} is not among the export's witnesses")
    steps.append("2-keys")
    expected: Checkpoint | None = None
    expected_root: list[bytes] = []
    if expected_checkpoint is not None:
        try:
            note = SignedNote.parse(expected_checkpoint)
            expected = Checkpoint.parse(note.body)
            good = note.verified_by(history.signers_for(expected.size))
        except LedgerError as exc:
            raise _fail("8-expected", f"the expected checkpoint is malformed: {exc}") from exc
        if not good:
            raise _fail("8-expected", "the expected checkpoint is not signed by the log's key for its size")
    cpv = _CheckpointVerifier(origin, history, listed_witnesses)
    cps = _checkpoint_lines(root)
    pending = next(cps, None)
    last_size = -1
    frontier = Frontier()
    periods = list(history.periods[1:])

    def take_checkpoints() -> None:
        nonlocal pending, last_size
        while pending is not None and pending[0] <= frontier.size:
            size, note = pending
            if size <= last_size:
                raise _fail("5-checkpoints", f"checkpoint {size} is out of order or duplicated")
            if size < frontier.size:
                raise _fail("5-checkpoints", f"checkpoint {size} is out of order")
            cpv.check(size, note, frontier.root())
            last_size = size
            pending = next(cps, None)
        if expected is not None and expected.size == frontier.size:
            expected_root.append(frontier.root())

    take_checkpoints()
    append = frontier.append
    with contextlib.closing(iter_leaves(root / ENTRIES_FILE, workers)) as leaves:
        for seq, (leaf, rotation) in enumerate(leaves):
            if rotation is not None:
                try:
                    _, new = verify_rotation_payload(origin, seq, rotation["payload"])
                except LedgerError as exc:
                    raise _fail("4-rotation", str(exc), seq) from exc
                if not periods or periods[0].rotation_seq != seq or periods[0].verifier != new:
                    raise _fail("4-rotation", "the rotation entry does not match the key history", seq)
                periods.pop(0)
            append(leaf)
            if (pending is not None and pending[0] <= seq + 1) or expected is not None:
                take_checkpoints()
    if periods:
        raise _fail(
            "4-rotation",
            f"the key history names a rotation at entry {periods[0].rotation_seq} that is not there",
        )
    steps.extend(["3-entries", "4-rotation"])
    if pending is not None:
        raise _fail(
            "5-checkpoints", f"checkpoint {pending[0]} is beyond the {frontier.size} exported entries"
        )
    steps.append("5-checkpoints")
    n = frontier.size
    step = "6-complete"
    if last_size != n:
        raise _fail(step, f"the last checkpoint covers {last_size} entries but {n} were exported")
    try:
        manifest_root = base64.b64decode(manifest["root_hash"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise _fail(step, "the manifest's root hash is malformed") from exc
    if manifest["tree_size"] != n or manifest_root != frontier.root():
        raise _fail(step, "the manifest's tree size or root differs from the verified latest checkpoint")
    interval = manifest["checkpoint_interval"]
    required_sizes = set(range(0, n + 1, interval))
    for period in history.periods[1:]:
        required_sizes.update((period.from_size - 1, period.from_size))
    missing = sorted(s for s in required_sizes if s not in cpv.roots)
    if missing:
        raise _fail(step, f"checkpoint {missing[0]} is missing from the export")
    required_sizes.add(n)
    extra = sorted(s for s in cpv.roots if s not in required_sizes and s not in cpv.cosigned)
    if extra:
        raise _fail(step, f"checkpoint {extra[0]} is not one the checkpoint interval {interval} selects")
    steps.append(step)
    witnessed = {k: v for k, v in cpv.witnessed.items()}
    if require_witness:
        if not witnesses:
            raise _fail("7-witness", "witnesses are required but no witness key was given")
        for w in witnesses:
            if not witnessed[w.vkey()]:
                raise _fail("7-witness", f"witness {w.name} cosigned no exported checkpoint")
    if witnesses:
        steps.append("7-witness")
    if expected is not None:
        if expected.origin != origin or expected_root != [expected.root_hash]:
            raise _fail(
                "8-expected", f"the export does not contain the expected tree of size {expected.size}"
            )
        steps.append("8-expected")
    return VerificationReport(
        origin=origin,
        tree_size=n,
        root_hash=base64.b64encode(frontier.root()).decode("ascii"),
        checkpoints_verified=cpv.count,
        keys=[p.verifier.vkey() for p in history.periods],
        witnessed_sizes=witnessed,
        steps=steps,
        seconds=time.perf_counter() - started,
    )
