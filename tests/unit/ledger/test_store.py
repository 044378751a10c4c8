"""The SQLite store: appends, conditional appends, triggers, self-check, fork guard, rotation, witnesses."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from safesynth.ledger import (
    AppendRequest,
    ForkDetectedError,
    InvalidCheckpointError,
    InvalidKeyError,
    LedgerError,
    LedgerStore,
    LedgerView,
    NoteSignature,
    Projection,
    ReadOnlyLedgerError,
    SignedNote,
    Signer,
    StoreExistsError,
    StoreIntegrityError,
    StoreNotFoundError,
    open_checkpoint,
)
from safesynth.ledger.entry import Entry


def _fill(store: LedgerStore, n: int) -> None:
    for i in range(n):
        store.append("spend/v1", {"i": i, "epsilon": "0.25"}, actor=f"user{i % 3}")


def test_create_open_and_errors(tmp_path: Path, signer: Signer, store: LedgerStore) -> None:
    assert store.size == 0
    assert store.latest_checkpoint().size == 0
    with pytest.raises(StoreExistsError):
        LedgerStore.create(store.path, signer, origin="x")
    with pytest.raises(StoreNotFoundError):
        LedgerStore.open(tmp_path / "nope.db", signer)
    with pytest.raises(InvalidKeyError):
        LedgerStore.open(store.path, Signer.generate("test-log"))
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreIntegrityError):
        LedgerStore.open(tmp_path / "junk.db")


def test_appends_checkpoints_and_proofs(store: LedgerStore, signer: Signer) -> None:
    results = [store.append("spend/v1", {"i": i}, actor="a") for i in range(37)]
    assert [r.seq for r in results] == list(range(37))
    for r in results:
        cp, _ = open_checkpoint(r.checkpoint.text, [signer.verifier()], origin=store.origin)
        assert cp.size == r.seq + 1
        assert store.checkpoint(cp.size).text == r.checkpoint.text
    for seq in (0, 1, 17, 36):
        for size in (seq + 1, 37):
            store.inclusion_proof(seq, size).verify([signer.verifier()])
    for old in (0, 1, 5, 16, 36, 37):
        store.consistency_proof(old, 37).verify([signer.verifier()])
    assert store.get(5).payload == {"i": 5}
    assert [e.seq for e in store.entries(30)] == list(range(30, 37))
    assert store.full_check().size == 37
    with pytest.raises(LedgerError):
        store.inclusion_proof(37)


def test_conditional_append(store: LedgerStore) -> None:
    _fill(store, 3)
    seen: list[int] = []
    kept: list[LedgerView] = []

    def check(view: LedgerView) -> None:
        seen.append(view.size)
        kept.append(view)
        assert [e.seq for e in view.entries(kinds=["spend/v1"])] == [0, 1, 2]
        assert view.get(2).payload["i"] == 2

    store.append("spend/v1", {"i": 3}, actor="a", check=check)
    assert seen == [3]
    with pytest.raises(LedgerError):
        list(kept[0].entries())  # the view dies with the check

    class Refused(Exception):
        pass

    err = Refused("budget exhausted")

    def refuse(view: LedgerView) -> None:
        raise err

    with pytest.raises(Refused) as info:
        store.append("spend/v1", {"i": 99}, actor="a", check=refuse)
    assert info.value is err
    assert store.size == 4
    store.full_check()


def test_append_many_runs_checks_in_order(store: LedgerStore) -> None:
    def at_most(n: int):  # type: ignore[no-untyped-def]
        def check(view: LedgerView) -> None:
            if view.size >= n:
                raise ValueError("full")

        return check

    reqs = [AppendRequest("spend/v1", {"i": i}, "a", at_most(3)) for i in range(5)]
    reqs.append(AppendRequest("bad kind", {}, "a"))
    out = store.append_many(reqs)
    assert [type(x).__name__ for x in out] == ["AppendResult"] * 3 + [
        "ValueError",
        "ValueError",
        "InvalidEntryError",
    ]
    assert store.size == 3
    store.full_check()


def test_float_payload_refused_and_nothing_written(store: LedgerStore) -> None:
    with pytest.raises(LedgerError) as info:
        store.append("spend/v1", {"epsilon": 0.5}, actor="a")
    assert info.value.code == "float_in_payload"
    assert store.size == 0


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE entries SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 2",
        "INSERT OR REPLACE INTO entries VALUES (1, 'a/v1', 'm', 't', x'00', x'00')",
        "INSERT INTO entries VALUES (9, 'a/v1', 'm', 't', x'00', x'00')",
        "UPDATE checkpoints SET note = 'x' WHERE size = 1",
        "DELETE FROM checkpoints",
        "INSERT OR REPLACE INTO checkpoints VALUES (2, 'x')",
        "UPDATE nodes SET hash = x'00'",
        "DELETE FROM nodes",
        "INSERT OR REPLACE INTO nodes VALUES (1, 0, x'00')",
        "UPDATE keys SET vkey = 'x'",
        "DELETE FROM meta",
        "INSERT OR REPLACE INTO meta VALUES ('origin', 'other')",
    ],
)
def test_triggers_refuse_rewriting_history(store: LedgerStore, sql: str) -> None:
    _fill(store, 3)
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(sql)
    finally:
        conn.close()
    store.full_check()


def test_self_check_refuses_changed_triggers(tmp_path: Path, signer: Signer, store: LedgerStore) -> None:
    _fill(store, 2)
    store.close()
    conn = sqlite3.connect(store.path)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN SELECT 1; END")
    conn.commit()
    conn.close()
    with pytest.raises(StoreIntegrityError, match="entries_no_update"):
        LedgerStore.open(store.path, signer)


def test_self_check_and_full_check_detect_edits(signer: Signer, store: LedgerStore) -> None:
    _fill(store, 6)
    store.close()
    conn = sqlite3.connect(store.path)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute(
        "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'user0', 'userX') AS BLOB) WHERE seq = 0"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreIntegrityError):  # the trigger is gone
        LedgerStore.open(store.path, signer)
    conn = sqlite3.connect(store.path)
    conn.execute(
        "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
        "BEGIN SELECT RAISE(ABORT, 'ledger table entries is append-only'); END"
    )
    conn.commit()
    conn.close()
    reopened = LedgerStore.open(store.path, signer)  # fast check: last entry and frontier are intact
    with pytest.raises(StoreIntegrityError, match="entry 0"):
        reopened.full_check()
    reopened.close()


def test_fork_guard_refuses_a_rolled_back_store(tmp_path: Path, signer: Signer, store: LedgerStore) -> None:
    _fill(store, 4)
    store.close()
    shutil.copy(store.path, tmp_path / "backup.db")
    s = LedgerStore.open(store.path, signer)
    _fill(s, 2)
    s.close()
    shutil.copy(tmp_path / "backup.db", store.path)
    with pytest.raises(ForkDetectedError, match="rolled back"):
        LedgerStore.open(store.path, signer)
    with pytest.raises(ForkDetectedError):
        LedgerStore.open(store.path)


def test_fork_guard_refuses_a_fork_and_a_missing_guard(tmp_path: Path, signer: Signer) -> None:
    a = LedgerStore.create(tmp_path / "a.db", signer, origin="o")
    b = LedgerStore.create(tmp_path / "b.db", signer, origin="o")
    a.append("x/v1", {"v": "a"}, actor="a")
    b.append("x/v1", {"v": "b"}, actor="a")
    a.close()
    b.close()
    shutil.copy(tmp_path / "b.db.checkpoint", tmp_path / "a.db.checkpoint")
    with pytest.raises(ForkDetectedError, match="disagrees"):
        LedgerStore.open(tmp_path / "a.db", signer)
    (tmp_path / "a.db.checkpoint").unlink()
    with pytest.raises(ForkDetectedError, match="missing"):
        LedgerStore.open(tmp_path / "a.db", signer)
    LedgerStore.open(tmp_path / "a.db").close()  # read-only is allowed without the guard
    LedgerStore.open(tmp_path / "a.db", signer, fork_guard=False).close()


def test_read_only_store_cannot_append(store: LedgerStore) -> None:
    ro = LedgerStore.open(store.path)
    with pytest.raises(ReadOnlyLedgerError):
        ro.append("x/v1", {}, actor="a")
    ro.close()


def test_key_rotation(store: LedgerStore, signer: Signer) -> None:
    _fill(store, 3)
    new = Signer.generate("test-log-2")
    result = store.rotate_key(new, actor="admin")
    assert result.seq == 3 and result.entry.kind == "ledger.key-rotation/v1"
    open_checkpoint(result.checkpoint.text, [signer.verifier(), new.verifier()], require_all=True)
    after = store.append("x/v1", {}, actor="a")
    open_checkpoint(after.checkpoint.text, [new.verifier()])
    with pytest.raises(InvalidCheckpointError):
        open_checkpoint(after.checkpoint.text, [signer.verifier()])
    store.full_check()
    store.close()
    with pytest.raises(InvalidKeyError):
        LedgerStore.open(store.path, signer)
    s = LedgerStore.open(store.path, new)
    assert [p.from_size for p in s.key_history().periods] == [0, 4]
    s.close()


def test_witness_cosignatures(store: LedgerStore) -> None:
    _fill(store, 2)
    witness = Signer.generate("dpo")
    cp = store.latest_checkpoint()
    cosig = NoteSignature("dpo", witness.cosignature(cp.note.body, int(time.time())))
    stored = store.add_cosignature(cp.note.with_signatures([cosig]).text(), witness.witness_verifier())
    assert witness.witness_verifier() in stored.note.verified_by([witness.witness_verifier()])
    assert store.checkpoint(2).text == stored.text
    forged_body = cp.note.body.replace("\n2\n", "\n1\n")
    forged = SignedNote(forged_body, (NoteSignature("dpo", witness.cosignature(forged_body, 1)),))
    with pytest.raises(InvalidCheckpointError):
        store.add_cosignature(forged.text(), witness.witness_verifier())


def test_projection_folds_incrementally(store: LedgerStore) -> None:
    def step(total: int, e: Entry) -> int:
        return total + int(e.payload["i"])

    proj: Projection[int] = Projection(lambda: 0, step, kinds=["spend/v1"])
    _fill(store, 4)
    store.append("other/v1", {"i": 100}, actor="a")
    assert proj.update(store) == 0 + 1 + 2 + 3
    _fill(store, 2)
    assert proj.update(store) == 6 + 0 + 1

    def check(view: LedgerView) -> None:
        assert proj.update(view) == 7

    store.append("spend/v1", {"i": 5}, actor="a", check=check)


def test_threads_are_group_committed(store: LedgerStore) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                store.append("spend/v1", {"t": k, "i": i}, actor=f"t{k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.size == 160
    assert store.full_check().size == 160


def test_a_check_reads_one_payload_field_of_an_earlier_entry_of_its_batch(store: LedgerStore) -> None:
    """LedgerView.payload_value: the field as parsed from the entry (strings, integers, absent), for
    committed entries and for earlier entries of the same group commit; nothing past the view."""
    from safesynth.ledger.errors import LedgerError
    from safesynth.ledger.store import AppendRequest

    store.append("spend/v1", {"spend_id": "ab12", "n": 7, "nested": {"spend_id": "x"}}, actor="a")
    seen: list[object] = []

    def look(view: LedgerView) -> None:
        for seq in range(view.size):
            entry = view.get(seq)
            assert view.payload_value(seq, "spend_id") == entry.payload.get("spend_id")
            seen.append(view.payload_value(seq, "spend_id"))
        assert view.payload_value(0, "n") == 7
        assert view.payload_value(0, "missing") is None
        with pytest.raises(LedgerError):
            view.payload_value(view.size, "spend_id")
        with pytest.raises(LedgerError):
            view.payload_value(0, "a.b")  # not a plain field name

    results = store.append_many(
        [
            AppendRequest("spend/v1", {"spend_id": "cd34"}, "a", None),
            AppendRequest("spend/v1", {"other": "1"}, "a", look),
        ]
    )
    assert all(not isinstance(r, Exception) for r in results)
    assert seen == ["ab12", "cd34"]
