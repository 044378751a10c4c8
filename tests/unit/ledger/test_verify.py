"""Offline verification and tamper evidence: any changed byte, any structural edit, any wrong key fails."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safesynth.ledger import (
    Appender,
    InclusionProof,
    LedgerError,
    LedgerStore,
    LedgerVerificationError,
    NoteSignature,
    Signer,
    verify_proof_bundle,
)
from safesynth.ledger import leaves as leaves_module
from safesynth.ledger.checkpoint import SignedNote
from safesynth.ledger.export import dump_manifest
from safesynth.ledger.verify import verify_export

FILES = ("entries.jsonl", "checkpoints.jsonl", "keys.json", "manifest.json")


class Bundle:
    """A small ledger (with a key rotation and a witnessed checkpoint) and its full export."""

    def __init__(self, root: Path, n: int = 12) -> None:
        self.log = Signer.generate("log")
        self.log2 = Signer.generate("log2")
        self.witness = Signer.generate("dpo")
        store = LedgerStore.create(root / "l.db", self.log, origin="test.example/ledger")
        for i in range(n):
            if i == n // 2:
                store.rotate_key(self.log2, actor="admin")
            store.append("spend/v1", {"i": i, "dataset": "d1", "epsilon": "0.125"}, actor=f"u{i % 2}")
        cp = store.latest_checkpoint()
        cosig = NoteSignature("dpo", self.witness.cosignature(cp.note.body, int(time.time())))
        store.add_cosignature(cp.note.with_signatures([cosig]).text(), self.witness.witness_verifier())
        self.size = store.size
        self.proof = store.inclusion_proof(3, n)  # a size that carries no cosignature
        self.old_checkpoint = store.checkpoint(4).text
        store.export(root / "export", checkpoint_interval=1)
        store.export(root / "sparse", checkpoint_interval=5)
        store.close()
        self.dir = root / "export"
        self.pristine = {name: (self.dir / name).read_bytes() for name in FILES}

    def restore(self) -> None:
        for name, data in self.pristine.items():
            (self.dir / name).write_bytes(data)

    def refresh_manifest(self) -> None:
        """Recompute the manifest's file hashes (an attacker can: the manifest is unsigned)."""
        manifest = json.loads((self.dir / "manifest.json").read_bytes())
        for name in manifest["files"]:
            data = (self.dir / name).read_bytes()
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (self.dir / "manifest.json").write_bytes(dump_manifest(manifest))

    def verify(self) -> object:
        return verify_export(self.dir, self.log.verifier(), witnesses=[self.witness.witness_verifier()])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle(tmp_path_factory.mktemp("ledger"))


def test_clean_export_verifies(bundle: Bundle) -> None:
    bundle.restore()
    report = verify_export(
        bundle.dir,
        bundle.log.verifier(),
        witnesses=[bundle.witness.witness_verifier()],
        require_witness=True,
        expected_checkpoint=bundle.old_checkpoint,
    )
    assert report.tree_size == bundle.size
    assert report.checkpoints_verified == bundle.size + 1
    assert report.witnessed_sizes[bundle.witness.witness_verifier().vkey()] == [bundle.size]
    assert report.steps[-1] == "8-expected"
    # any key of the history is a trust anchor, also as raw public key bytes
    verify_export(bundle.dir, bundle.log2.verifier().vkey())
    verify_export(bundle.dir, bundle.log.public_key_bytes())
    verify_export(bundle.dir.parent / "sparse", bundle.log.verifier())


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_fails(bundle: Bundle, data: st.DataObject) -> None:
    bundle.restore()
    name = data.draw(st.sampled_from(FILES))
    raw = bytearray(bundle.pristine[name])
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    (bundle.dir / name).write_bytes(bytes(raw))
    if name != "manifest.json" and data.draw(st.booleans()):
        bundle.refresh_manifest()
    with pytest.raises(LedgerVerificationError):
        bundle.verify()


def _edit_lines(bundle: Bundle, name: str, edit) -> None:  # type: ignore[no-untyped-def]
    bundle.restore()
    lines = bundle.pristine[name].splitlines(keepends=True)
    (bundle.dir / name).write_bytes(b"".join(edit(lines)))
    bundle.refresh_manifest()


@pytest.mark.parametrize(
    ("name", "edit", "step"),
    [
        ("entries.jsonl", lambda ls: ls[:2] + ls[3:], "3-entries"),  # delete
        ("entries.jsonl", lambda ls: [ls[1], ls[0], *ls[2:]], "3-entries"),  # reorder
        ("entries.jsonl", lambda ls: ls[:-1], "5-checkpoints"),  # truncate: last checkpoint is beyond
        ("entries.jsonl", lambda ls: [*ls[:3], ls[2], *ls[3:]], "3-entries"),  # duplicate
        ("entries.jsonl", lambda ls: [*ls, ls[-1]], "3-entries"),  # append a copy
        ("checkpoints.jsonl", lambda ls: ls[:3] + ls[4:], "6-complete"),  # drop a checkpoint
        ("checkpoints.jsonl", lambda ls: [ls[1], ls[0], *ls[2:]], "5-checkpoints"),
        ("checkpoints.jsonl", lambda ls: [*ls[:3], ls[2], *ls[3:]], "5-checkpoints"),
        ("checkpoints.jsonl", lambda ls: ls[:-1], "6-complete"),
    ],
)
def test_structural_edits_fail(bundle: Bundle, name: str, edit, step: str) -> None:  # type: ignore[no-untyped-def]
    _edit_lines(bundle, name, edit)
    with pytest.raises(LedgerVerificationError) as info:
        bundle.verify()
    assert info.value.step == step


def test_truncating_entries_and_checkpoints_together_is_caught_by_an_earlier_receipt(bundle: Bundle) -> None:
    bundle.restore()
    n = bundle.size
    entries = bundle.pristine["entries.jsonl"].splitlines(keepends=True)[: n - 2]
    cps = bundle.pristine["checkpoints.jsonl"].splitlines(keepends=True)[: n - 1]
    (bundle.dir / "entries.jsonl").write_bytes(b"".join(entries))
    (bundle.dir / "checkpoints.jsonl").write_bytes(b"".join(cps))
    manifest = json.loads(bundle.pristine["manifest.json"])
    manifest["tree_size"] = n - 2
    root_line = json.loads(cps[-1])["note"].split("\n")[2]
    manifest["root_hash"] = root_line
    (bundle.dir / "manifest.json").write_bytes(dump_manifest(manifest))
    bundle.refresh_manifest()
    bundle.verify()  # a consistent shorter log verifies on its own ...
    latest = json.loads(bundle.pristine["checkpoints.jsonl"].splitlines()[-1])["note"]
    with pytest.raises(LedgerVerificationError) as info:  # ... but not against a receipt for the longer one
        verify_export(bundle.dir, bundle.log.verifier(), expected_checkpoint=latest)
    assert info.value.step == "8-expected"


def test_checkpoint_signed_by_an_unknown_key_fails(bundle: Bundle) -> None:
    impostor = Signer.generate("log")  # same name, different key

    def resign(lines: list[bytes]) -> list[bytes]:
        out = []
        for line in lines:
            obj = json.loads(line)
            note = SignedNote.parse(obj["note"])
            obj["note"] = SignedNote(
                note.body, (NoteSignature("log", impostor.note_signature(note.body)),)
            ).text()
            out.append(
                json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            )
        return out

    _edit_lines(bundle, "checkpoints.jsonl", resign)
    with pytest.raises(LedgerVerificationError) as info:
        bundle.verify()
    assert info.value.step == "5-checkpoints"


def test_unknown_extra_signature_fails(bundle: Bundle) -> None:
    stranger = Signer.generate("stranger")

    def add_sig(lines: list[bytes]) -> list[bytes]:
        obj = json.loads(lines[2])
        note = SignedNote.parse(obj["note"])
        sig = NoteSignature("stranger", stranger.note_signature(note.body))
        obj["note"] = note.with_signatures([sig]).text()
        line = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        return [*lines[:2], line, *lines[3:]]

    _edit_lines(bundle, "checkpoints.jsonl", add_sig)
    with pytest.raises(LedgerVerificationError, match="unknown key"):
        bundle.verify()


def test_wrong_trust_anchor_fails(bundle: Bundle) -> None:
    bundle.restore()
    with pytest.raises(LedgerVerificationError) as info:
        verify_export(bundle.dir, Signer.generate("log").verifier())
    assert info.value.step == "2-keys"


def test_missing_and_extra_files(bundle: Bundle, tmp_path: Path) -> None:
    bundle.restore()
    copy = tmp_path / "copy"
    shutil.copytree(bundle.dir, copy)
    (copy / "keys.json").unlink()
    with pytest.raises(LedgerVerificationError) as info:
        verify_export(copy, bundle.log.verifier())
    assert info.value.step == "1-manifest"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_in_a_proof_bundle_fails(bundle: Bundle, data: st.DataObject) -> None:
    obj = bundle.proof.to_json()
    field = data.draw(st.sampled_from(["entry", "checkpoint", "proof"]))
    if field == "proof":
        k = data.draw(st.integers(0, len(obj["proof"]) - 1))
        raw = bytearray(obj["proof"][k].encode())
    else:
        raw = bytearray(obj[field].encode())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 127))
    text = raw.decode("utf-8", errors="replace")
    if field == "proof":
        obj["proof"][k] = text
    else:
        obj[field] = text
    with pytest.raises(LedgerError):
        verify_proof_bundle(obj, [bundle.log2.verifier(), bundle.witness.witness_verifier()])


def test_proof_bundle_round_trip(bundle: Bundle) -> None:
    proof = verify_proof_bundle(json.loads(json.dumps(bundle.proof.to_json())), [bundle.log2.verifier()])
    assert isinstance(proof, InclusionProof) and proof.entry.seq == 3
    obj = bundle.proof.to_json()
    obj["leaf_index"] = 4
    with pytest.raises(LedgerError):
        verify_proof_bundle(obj, [bundle.log2.verifier()])


# ----------------------------------------------------------------- entry lines checked in workers
# The same verdict, step and entry as the serial path, with the entries file cut every ~300 bytes.


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle(tmp_path_factory.mktemp("parallel"), n=40)


_FRESH = "SAFESYNTH_TEST_FRESH_PROCESS"
_fresh_run: dict[str, subprocess.CompletedProcess[str]] = {}


def _in_fresh_process(request: pytest.FixtureRequest) -> None:
    """The worker path forks only from a single-threaded process. In a full test run other tests'
    daemon threads (e.g. an ASGI test client's portal) can outlive them, so the worker tests of this
    module are run once in a fresh interpreter instead, and must pass there."""
    if "run" not in _fresh_run:
        _fresh_run["run"] = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(request.path),
                "-k",
                "workers or serial_error",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, _FRESH: "1"},
            timeout=600,
            check=False,
        )
    done = _fresh_run["run"]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    pytest.skip("passed in a fresh single-threaded interpreter (other tests' threads are alive here)")


@pytest.fixture
def parallel_calls(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> list[int]:
    """Cut the entries file every ~300 bytes and count the calls of the parallel path."""
    if threading.active_count() != 1 and not os.environ.get(_FRESH):
        _in_fresh_process(request)
    monkeypatch.setattr(leaves_module, "_CHUNK_BYTES", 300)
    calls: list[int] = []
    real = leaves_module._parallel

    def spy(path: Path, size: int, workers: int) -> Generator[Any, None, None]:
        calls.append(workers)
        return real(path, size, workers)

    monkeypatch.setattr(leaves_module, "_parallel", spy)
    assert threading.active_count() == 1, threading.enumerate()  # else the workers would not fork
    return calls


def _outcome(verify: Callable[[], object]) -> tuple[str, int | None] | None:
    try:
        verify()
    except LedgerVerificationError as exc:
        return exc.step, exc.seq
    return None


def _both(bundle: Bundle) -> tuple[tuple[str, int | None] | None, tuple[str, int | None] | None]:
    def run(workers: int) -> object:
        return verify_export(
            bundle.dir, bundle.log.verifier(), witnesses=[bundle.witness.witness_verifier()], workers=workers
        )

    return _outcome(lambda: run(0)), _outcome(lambda: run(2))


def test_clean_export_in_workers(chunked: Bundle, parallel_calls: list[int]) -> None:
    chunked.restore()
    serial = verify_export(chunked.dir, chunked.log.verifier(), workers=0)
    parallel = verify_export(chunked.dir, chunked.log.verifier(), workers=2)
    assert parallel_calls == [2]
    assert (parallel.tree_size, parallel.root_hash, parallel.checkpoints_verified) == (
        serial.tree_size,
        serial.root_hash,
        serial.checkpoints_verified,
    )
    entries = chunked.dir / "entries.jsonl"
    assert len(leaves_module._ranges(entries, entries.stat().st_size)) > 5  # several chunks


@pytest.mark.parametrize(
    "edit",
    [
        lambda ls: ls[:9] + ls[10:],  # delete (lands at a chunk cut for some lines)
        lambda ls: [*ls[:5], ls[6], ls[5], *ls[7:]],  # swap
        lambda ls: [*ls[:20], ls[20], *ls[20:]],  # duplicate
        lambda ls: [*ls[:-1], ls[-1].rstrip(b"\n")],  # no final newline
        lambda ls: [*ls[:12], b"{}\n", *ls[13:]],  # malformed line
        lambda ls: [*ls[:30], ls[30].replace(b'"0.125"', b"0.125"), *ls[31:]],  # a float
        lambda ls: ls[:-3],  # truncation
    ],
)
def test_structural_edits_give_the_serial_error(
    chunked: Bundle, parallel_calls: list[int], edit: Callable[[list[bytes]], list[bytes]]
) -> None:
    chunked.restore()
    lines = chunked.pristine["entries.jsonl"].splitlines(keepends=True)
    (chunked.dir / "entries.jsonl").write_bytes(b"".join(edit(lines)))
    chunked.refresh_manifest()
    serial, parallel = _both(chunked)
    assert serial is not None and serial == parallel
    assert parallel_calls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_give_the_serial_error(
    chunked: Bundle, parallel_calls: list[int], data: st.DataObject
) -> None:
    chunked.restore()
    raw = bytearray(chunked.pristine["entries.jsonl"])
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    (chunked.dir / "entries.jsonl").write_bytes(bytes(raw))
    chunked.refresh_manifest()
    serial, parallel = _both(chunked)
    assert serial is not None and serial == parallel


def test_an_appender_written_store_exports_and_verifies_in_workers(
    tmp_path: Path, parallel_calls: list[int]
) -> None:
    signer = Signer.generate("log")
    with LedgerStore.create(tmp_path / "l.db", signer, origin="test.example/p") as store:
        with Appender(store, max_batch=8) as appender:
            futures = [appender.submit("spend/v1", {"i": i}, actor="a") for i in range(60)]
        assert [f.result().seq for f in futures] == list(range(60))
        store.export(tmp_path / "export", checkpoint_interval=4)
    assert verify_export(tmp_path / "export", signer.verifier(), workers=2).tree_size == 60
    assert parallel_calls == [2]
