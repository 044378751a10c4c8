"""Jobs: bounded queue and per-principal limits, progress/ETA, cancel, failure codes, restart recovery."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import NotFound, QueueFull
from safesynth.gateway.service.jobs import MAX_STAGES, JobHandle, JobManager, JobRecord, add_stage_time


def _record(manager: JobManager, principal: str = "p1") -> JobRecord:
    return JobRecord(
        id=manager.new_id(), dataset="d", principal=principal, kind="synthesis", engine="e", state="queued"
    )


def _wait_done(manager: JobManager, job_id: str, timeout: float = 10.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    record = manager.get(job_id)
    while not record.done and time.monotonic() < deadline:
        record = manager.wait_change(job_id, record.version, 0.5)
    return record


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(tmp_path / "state.sqlite")


def test_job_runs_reports_progress_and_succeeds(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=2)
    seen: list[float] = []

    def work(handle: JobHandle) -> str:
        for i in range(1, 5):
            handle.progress("fitting", i / 5)
            seen.append(manager.get(handle.job_id).progress)
        return "f" * 64

    manager.reserve("p1")
    record = manager.submit(_record(manager), work)
    final = _wait_done(manager, record.id)
    assert final.state == "succeeded" and final.release_id == "f" * 64 and final.progress == 1.0
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.8)
    # persisted: a fresh manager on the same db sees it
    assert JobManager(db, workers=1, queue_size=1, per_principal=1).get(record.id).state == "succeeded"
    manager.shutdown(grace_seconds=1)


def test_states_are_stored_and_stages_stay_in_memory(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=2)
    inside = threading.Event()
    go_on = threading.Event()

    def work(handle: JobHandle) -> str:
        handle.progress("fitting", 0.5)
        inside.set()
        assert go_on.wait(10)
        return "e" * 64

    manager.reserve("p1")
    record = manager.submit(_record(manager), work)
    assert inside.wait(10)
    live, stored = (
        manager.get(record.id),
        JobManager(db, workers=1, queue_size=1, per_principal=1).get(record.id),
    )
    assert (live.state, live.stage, live.progress) == ("running", "fitting", 0.5)
    assert (stored.state, stored.stage, stored.progress) == ("running", "starting", 0.0)
    go_on.set()
    assert _wait_done(manager, record.id).state == "succeeded"
    stored = JobManager(db, workers=1, queue_size=1, per_principal=1).get(record.id)
    assert (stored.state, stored.stage, stored.release_id) == ("succeeded", "done", "e" * 64)
    manager.shutdown(grace_seconds=1)


def test_stage_seconds_time_each_stage_in_order_and_are_stored(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=2)

    def work(handle: JobHandle) -> str:
        for stage, pause in (("fit", 0.12), ("sample", 0.06), ("fit", 0.05)):
            handle.progress(stage, 0.5)
            time.sleep(pause)
        return "a" * 64

    manager.reserve("p1")
    start = time.perf_counter()
    record = manager.submit(_record(manager), work)
    final = _wait_done(manager, record.id)
    wall = time.perf_counter() - start
    stages = dict(final.stage_seconds)
    assert [name for name, _ in final.stage_seconds] == ["queued", "starting", "fit", "sample"]
    # time.sleep sleeps at least as long as asked; the stages together are the job's life
    assert stages["fit"] >= 0.17 and stages["sample"] >= 0.06
    assert sum(stages.values()) == pytest.approx(wall, abs=0.05)
    stored = JobManager(db, workers=1, queue_size=1, per_principal=1).get(record.id)
    assert stored.stage_seconds == final.stage_seconds  # from the database, as tuples
    manager.shutdown(grace_seconds=1)


def test_a_failed_job_keeps_the_time_of_the_stage_it_failed_in(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=2)

    def work(handle: JobHandle) -> str:
        handle.progress("fit", 0.2)
        time.sleep(0.05)
        raise RuntimeError("boom")

    manager.reserve("p1")
    final = _wait_done(manager, manager.submit(_record(manager), work).id)
    assert final.state == "failed" and dict(final.stage_seconds)["fit"] >= 0.05
    manager.shutdown(grace_seconds=1)


@given(st.lists(st.tuples(st.sampled_from([f"s{i}" for i in range(50)] + ["other"]), st.floats(0, 10))))
def test_add_stage_time_keeps_every_second_and_at_most_max_stages(
    steps: list[tuple[str, float]],
) -> None:
    stages: tuple[tuple[str, float], ...] = ()
    for name, seconds in steps:
        stages = add_stage_time(stages, name, seconds)
    names = [name for name, _ in stages]
    assert len(names) == len(set(names)) <= MAX_STAGES
    assert sum(v for _, v in stages) == pytest.approx(sum(v for _, v in steps))
    first_seen = [name for name in dict.fromkeys(name for name, _ in steps) if name != "other"]
    kept = [name for name in names if name != "other"]
    assert kept == first_seen[: len(kept)]  # the first names keep their own entries, in order
    assert len(kept) == len(first_seen) or len(names) >= MAX_STAGES - 1  # folded only at the cap


def test_failure_keeps_code_and_message(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=4)

    class Boom(Exception):
        code = "data_mismatch"
        message = "column x is missing"

    def work(handle: JobHandle) -> str:
        raise Boom()

    manager.reserve("p1")
    final = _wait_done(manager, manager.submit(_record(manager), work).id)
    assert (
        final.state == "failed"
        and final.error_code == "data_mismatch"
        and "column x" in (final.error_message or "")
    )
    manager.shutdown(grace_seconds=1)


def test_queue_and_principal_limits(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=3, per_principal=2)
    release = threading.Event()

    def work(handle: JobHandle) -> None:
        release.wait(10)

    manager.reserve("p1")
    manager.submit(_record(manager, "p1"), work)
    manager.reserve("p1")
    manager.submit(_record(manager, "p1"), work)
    with pytest.raises(QueueFull):
        manager.reserve("p1")  # per-principal limit
    manager.reserve("p2")
    with pytest.raises(QueueFull) as err:
        manager.reserve("p3")  # queue full (2 active + 1 reserved)
    assert err.value.status == 429
    manager.release_reservation("p2")
    manager.reserve("p3")
    manager.release_reservation("p3")
    release.set()
    manager.shutdown(grace_seconds=5)


def test_cancel_queued_and_running(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=4)
    started = threading.Event()

    def slow(handle: JobHandle) -> None:
        started.set()
        for _ in range(200):
            handle.check()
            time.sleep(0.01)

    manager.reserve("p1")
    running = manager.submit(_record(manager), slow)
    manager.reserve("p1")
    queued = manager.submit(_record(manager), slow)
    assert started.wait(5)
    assert manager.cancel(queued.id).state == "cancelled"
    manager.cancel(running.id)
    final = _wait_done(manager, running.id)
    assert final.state == "cancelled" and final.error_code == "cancelled"
    manager.shutdown(grace_seconds=1)


def test_restart_marks_running_jobs_failed(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=4)
    manager._save(_record(manager))  # a job left queued by a process that died
    running = JobRecord(
        id="job-x", dataset="d", principal="p", kind="synthesis", engine="e", state="running", spend_seq=7
    )
    manager._save(running)
    fresh = JobManager(db, workers=1, queue_size=4, per_principal=4)
    assert fresh.recover() == 2
    after = fresh.get("job-x")
    assert after.state == "failed" and after.error_code == "gateway_restarted" and after.spend_seq == 7
    with pytest.raises(NotFound):
        fresh.get("job-nope")


def test_shutdown_fails_unfinished_jobs(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=4)
    block = threading.Event()

    def stuck(handle: JobHandle) -> None:
        block.wait(3)  # ignores cancellation

    manager.reserve("p1")
    job = manager.submit(_record(manager), stuck)
    time.sleep(0.1)
    manager.shutdown(grace_seconds=0.2)
    assert manager.get(job.id).state == "failed"
    assert manager.get(job.id).error_code == "gateway_shutdown"
    block.set()
    with pytest.raises(QueueFull):
        manager.reserve("p1")


def test_subscribers_hear_every_change_until_they_unsubscribe(db: StateDB) -> None:
    manager = JobManager(db, workers=1, queue_size=4, per_principal=4)
    gate = threading.Event()
    heard: list[int] = []

    def work(handle: JobHandle) -> str:
        gate.wait(10)
        handle.progress("fitting", 0.5)
        return "a" * 64

    def broken() -> None:  # e.g. a closed event loop: must not break the job
        raise RuntimeError("listener gone")

    manager.reserve("p1")
    record = manager.submit(_record(manager), work)
    unsubscribe = manager.subscribe(record.id, lambda: heard.append(manager.get(record.id).version))
    manager.subscribe(record.id, broken)
    gate.set()
    final = _wait_done(manager, record.id)
    assert final.state == "succeeded"
    # (running ->) progress -> succeeded: every change after subscribing, in order, the last one final
    assert len(heard) >= 2 and heard == sorted(heard) and heard[-1] == final.version
    unsubscribe()
    unsubscribe()  # twice is harmless
    count = len(heard)
    manager._update(record.id, stage="after")  # a change nobody listens to
    assert len(heard) == count
    manager.shutdown(grace_seconds=1)


def test_a_record_stored_before_stage_timings_reads_back_without_them() -> None:
    stored = JobRecord(id="job-0", dataset="d", principal="p", kind="synthesis", engine="e", state="failed")
    old_form = {k: v for k, v in stored.to_json().items() if k != "stage_seconds"}
    assert JobRecord.from_json(old_form) == stored and stored.stage_seconds == ()
