"""Synthesis jobs: a bounded worker pool, a bounded queue, per-principal limits, progress and cancel.

A job is created only after its spend was admitted (the spend is recorded in the ledger first and is
never refunded, whatever happens to the job). Its state lives in memory while the process runs and is
written to the state database at every change of state (queued, running, final); stages and progress
within a run are kept in memory only (polling and server-sent events read them there, and a restart
fails a running job whatever its stage), so a job's work pays no database write per stage. Each job
keeps the seconds it spent in each stage (``stage_seconds``: the gateway's own stages and the engine's,
in the order first entered), so a caller sees where a job's time went. When the
gateway restarts, jobs that were queued or running are marked ``failed`` (code ``gateway_restarted``);
their spend stays.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from safesynth.gateway.service.db import StateDB
from safesynth.gateway.service.errors import NotFound, QueueFull

__all__ = [
    "FINAL_STATES",
    "MAX_STAGES",
    "JobCancelled",
    "JobHandle",
    "JobManager",
    "JobRecord",
    "add_stage_time",
]

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

#: At most this many named stages are timed per job; the time of any further stage goes to "other".
MAX_STAGES = 32

StageSeconds = tuple[tuple[str, float], ...]


def add_stage_time(stages: StageSeconds, stage: str, seconds: float) -> StageSeconds:
    """``stages`` with ``seconds`` added to ``stage`` (a stage entered again adds to its first entry;
    order is that of first entry; beyond :data:`MAX_STAGES` names the time goes to ``"other"``)."""
    seconds = max(0.0, seconds)
    names = [name for name, _ in stages]
    if stage not in names and len(names) >= MAX_STAGES - 1:
        stage = "other"
    if stage in names:
        return tuple((name, value + seconds if name == stage else value) for name, value in stages)
    return (*stages, (stage, seconds))


class JobCancelled(Exception):
    """Raised inside a job's work when cancellation was requested."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRecord:
    """A job's state (immutable snapshot)."""

    id: str
    dataset: str
    principal: str
    kind: str
    engine: str
    state: str
    stage: str = ""
    progress: float = 0.0
    eta_seconds: float | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spend_seq: int | None = None
    epsilon: float | None = None
    delta: float | None = None
    release_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: Seconds spent in each stage, in the order first entered (see the module docstring).
    stage_seconds: StageSeconds = ()
    version: int = 0

    @property
    def done(self) -> bool:
        """Whether the job is final."""
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> JobRecord:
        """Inverse of :meth:`to_json`."""
        values = dict(obj)
        for key in ("created_at", "started_at", "finished_at"):
            if values.get(key) is not None:
                values[key] = datetime.fromisoformat(values[key])
        values["stage_seconds"] = tuple((str(n), float(v)) for n, v in values.get("stage_seconds", ()))
        return cls(**values)


class JobHandle:
    """What a job's work sees: progress reporting and the cancellation flag."""

    def __init__(self, manager: JobManager, job_id: str) -> None:
        self._manager = manager
        self.job_id = job_id
        self.cancel_requested = threading.Event()

    def progress(self, stage: str, fraction: float) -> None:
        """Report ``fraction`` (0..1) of the whole job done, in ``stage``."""
        self._manager._progress(self.job_id, stage, fraction)

    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self.cancel_requested.is_set()

    def check(self) -> None:
        """Raise JobCancelled if cancellation was requested."""
        if self.cancelled():
            raise JobCancelled(self.job_id)


Work = Callable[[JobHandle], str | None]


class JobManager:
    """Runs jobs on a bounded thread pool; states in memory and in the state database."""

    def __init__(self, db: StateDB, *, workers: int, queue_size: int, per_principal: int) -> None:
        self._db = db
        self._queue_size = queue_size
        self._per_principal = per_principal
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._live: dict[str, JobRecord] = {}
        self._handles: dict[str, JobHandle] = {}
        self._futures: dict[str, Future[None]] = {}
        self._reserved: dict[str, int] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        #: job id -> (the stage it is in, perf_counter when it entered it), while the job is not final
        self._clocks: dict[str, tuple[str, float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="safesynth-job")
        self._closed = False

    # ------------------------------------------------------------------------------- lifecycle
    def recover(self) -> int:
        """Mark jobs left queued or running by a previous process as failed; return how many."""
        count = 0
        for row in self._db.query("SELECT record FROM jobs WHERE state IN ('queued', 'running')"):
            record = JobRecord.from_json(json.loads(row["record"]))
            self._save(
                replace(
                    record,
                    state="failed",
                    finished_at=_now(),
                    error_code="gateway_restarted",
                    error_message="the gateway stopped while the job ran; its spend stays recorded",
                    eta_seconds=None,
                )
            )
            count += 1
        return count

    def shutdown(self, *, grace_seconds: float = 5.0) -> None:
        """Stop: cancel queued jobs, ask running ones to stop, wait up to ``grace_seconds``, fail the rest."""
        with self._lock:
            self._closed = True
            handles = list(self._handles.values())
            futures = dict(self._futures)
        for job_id, future in futures.items():
            if future.cancel():
                self._finish(
                    job_id, "failed", "gateway_shutdown", "the gateway shut down before the job started"
                )
        for handle in handles:
            handle.cancel_requested.set()
        deadline = time.monotonic() + grace_seconds
        for future in futures.values():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(Exception):  # outcomes are recorded by the job itself
                future.result(timeout=remaining)
        with self._lock:
            unfinished = [job_id for job_id, record in self._live.items() if not record.done]
        for job_id in unfinished:
            self._finish(job_id, "failed", "gateway_shutdown", "the gateway shut down while the job ran")
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------- admission
    def reserve(self, principal: str) -> None:
        """Reserve a queue slot for ``principal`` (before spending); QueueFull if none."""
        with self._lock:
            if self._closed:
                raise QueueFull("the gateway is shutting down", extra={"retry_after": 5})
            active = [r for r in self._live.values() if not r.done]
            reserved = sum(self._reserved.values())
            if len(active) + reserved >= self._queue_size:
                raise QueueFull("the job queue is full; retry later", extra={"retry_after": 5})
            mine = sum(1 for r in active if r.principal == principal) + self._reserved.get(principal, 0)
            if mine >= self._per_principal:
                raise QueueFull(
                    f"this token already has {mine} active jobs (limit {self._per_principal})",
                    extra={"retry_after": 5},
                )
            self._reserved[principal] = self._reserved.get(principal, 0) + 1

    def release_reservation(self, principal: str) -> None:
        """Give back a reserved slot (the request was refused before a job was made)."""
        with self._lock:
            left = self._reserved.get(principal, 0) - 1
            if left > 0:
                self._reserved[principal] = left
            else:
                self._reserved.pop(principal, None)

    def submit(self, record: JobRecord, work: Work) -> JobRecord:
        """Queue ``work`` for a job whose slot was reserved; returns the queued record."""
        handle = JobHandle(self, record.id)
        with self._lock:
            self._handles[record.id] = handle
            left = self._reserved.get(record.principal, 0) - 1
            if left > 0:
                self._reserved[record.principal] = left
            else:
                self._reserved.pop(record.principal, None)
        self._save(record)
        future = self._pool.submit(self._run, record.id, handle, work)
        with self._lock:
            self._futures[record.id] = future
        return record

    @staticmethod
    def new_id() -> str:
        """A fresh job id."""
        return "job-" + secrets.token_hex(8)

    # ------------------------------------------------------------------------------- running
    def _run(self, job_id: str, handle: JobHandle, work: Work) -> None:
        if handle.cancelled():
            self._finish(job_id, "cancelled", "cancelled", "the job was cancelled before it started")
            return
        self._update(job_id, state="running", started_at=_now(), stage="starting", progress=0.0)
        try:
            release_id = work(handle)
        except Exception as exc:
            code = "cancelled" if isinstance(exc, JobCancelled) else str(getattr(exc, "code", "job_failed"))
            if code == "cancelled" and self._closed:
                self._finish(job_id, "failed", "gateway_shutdown", "the gateway shut down while the job ran")
            elif code == "cancelled":
                self._finish(
                    job_id, "cancelled", "cancelled", "the job was cancelled; its spend stays recorded"
                )
            else:
                message = str(getattr(exc, "message", "")) or type(exc).__name__
                self._finish(job_id, "failed", code, message[:1000])
        else:
            self._update(
                job_id,
                state="succeeded",
                stage="done",
                progress=1.0,
                eta_seconds=0.0,
                finished_at=_now(),
                release_id=release_id,
            )
        finally:
            with self._lock:
                self._futures.pop(job_id, None)
                self._handles.pop(job_id, None)

    def _progress(self, job_id: str, stage: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self._lock:
            record = self._live.get(job_id)
            if record is None or record.done:
                return
            eta: float | None = None
            if record.started_at is not None and fraction > 0.01:
                elapsed = (_now() - record.started_at).total_seconds()
                eta = max(0.0, elapsed / fraction * (1.0 - fraction))
            record = self._clocked(
                replace(
                    record,
                    stage=stage,
                    progress=max(record.progress, fraction),
                    eta_seconds=eta,
                    version=record.version + 1,
                )
            )
            self._live[job_id] = record
            self._changed.notify_all()
            self._notify(job_id)

    def _update(self, job_id: str, **changes: Any) -> JobRecord:
        with self._lock:
            record = self._live.get(job_id) or self.get(job_id)
            record = self._clocked(replace(record, version=record.version + 1, **changes))
            self._live[job_id] = record
            self._changed.notify_all()
            self._notify(job_id)
        self._store(record)
        return record

    def _finish(self, job_id: str, state: str, code: str, message: str) -> None:
        with self._lock:
            record = self._live.get(job_id)
            if record is not None and record.done:
                return
        self._update(
            job_id, state=state, finished_at=_now(), error_code=code, error_message=message, eta_seconds=None
        )

    def _clocked(self, record: JobRecord) -> JobRecord:
        """``record`` with the time of the stage it leaves added (caller holds the lock): when its
        stage changed or it became final."""
        now = time.perf_counter()
        stage = record.stage or record.state
        clock = self._clocks.get(record.id)
        if clock is not None and (clock[0] != stage or record.done):
            record = replace(
                record, stage_seconds=add_stage_time(record.stage_seconds, clock[0], now - clock[1])
            )
            clock = None
        if record.done:
            self._clocks.pop(record.id, None)
        elif clock is None:
            self._clocks[record.id] = (stage, now)
        return record

    def _save(self, record: JobRecord) -> None:
        with self._lock:
            record = self._clocked(record)
            self._live[record.id] = record
            self._changed.notify_all()
            self._notify(record.id)
        self._store(record)

    def _store(self, record: JobRecord) -> None:
        self._db.execute(
            "INSERT INTO jobs (id, dataset, principal, state, record, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET state = excluded.state, record = excluded.record",
            (
                record.id,
                record.dataset,
                record.principal,
                record.state,
                json.dumps(record.to_json()),
                record.created_at.isoformat(),
            ),
        )

    # ------------------------------------------------------------------------------- reading
    def get(self, job_id: str) -> JobRecord:
        """The job's current state; NotFound if there is none."""
        with self._lock:
            record = self._live.get(job_id)
        if record is not None:
            return record
        row = self._db.one("SELECT record FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return JobRecord.from_json(json.loads(row["record"]))

    def list(self, *, principal: str | None = None, limit: int = 1000) -> list[JobRecord]:
        """Jobs (of ``principal`` if given), newest first."""
        if principal is None:
            rows = self._db.query("SELECT id FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = self._db.query(
                "SELECT id FROM jobs WHERE principal = ? ORDER BY created_at DESC LIMIT ?", (principal, limit)
            )
        return [self.get(row["id"]) for row in rows]

    def subscribe(self, job_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from the changing thread, under the manager's lock: it must not block)
        at every change of the job; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.setdefault(job_id, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._listeners.get(job_id)
                if callbacks is not None and callback in callbacks:
                    callbacks.remove(callback)
                    if not callbacks:
                        del self._listeners[job_id]

        return unsubscribe

    def _notify(self, job_id: str) -> None:
        """Tell the job's listeners it changed (caller holds the lock)."""
        for callback in tuple(self._listeners.get(job_id, ())):
            # a listener whose event loop has closed must not break the job
            with contextlib.suppress(Exception):
                callback()

    def wait_change(self, job_id: str, version: int, timeout: float) -> JobRecord:
        """The job once its version differs from ``version`` (or after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                record = self._live.get(job_id)
                if record is None or record.version != version or record.done:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Request cancellation (a queued job is cancelled at once); returns the state."""
        with self._lock:
            handle = self._handles.get(job_id)
            future = self._futures.get(job_id)
        if handle is not None:
            handle.cancel_requested.set()
        if future is not None and future.cancel():
            self._finish(job_id, "cancelled", "cancelled", "the job was cancelled before it started")
            with self._lock:
                self._futures.pop(job_id, None)
                self._handles.pop(job_id, None)
        return self.get(job_id)
