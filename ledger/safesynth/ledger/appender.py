"""Pipelined appends: ``submit()`` returns a future resolved once the batch holding it is durable.

A producer that does not wait on each acknowledgement lets a background writer thread collect
whatever has been submitted since its last transaction into one batch (up to ``max_batch``): one
``BEGIN IMMEDIATE`` transaction, every request with its own check, entry and **signed checkpoint**,
one COMMIT (one fsync with ``synchronous=FULL``) and one fork-guard write for the whole batch. Only
then are the batch's futures resolved, so every acknowledged entry is durable and its checkpoint
signed; nothing is acknowledged early. This is the sequencer pattern of Trillian and Tessera.

Requests are appended in submission order. A request's ``check`` sees every entry before it,
including the earlier entries of its own batch; if the check (or the entry's validation) raises,
only that request is skipped and its future holds the exception. A producer that waits on each
future before submitting the next gets batches of one, exactly like :meth:`LedgerStore.append`.
Requests still queued when the process dies were never acknowledged and are not appended; call
:meth:`Appender.close` (or leave its ``with`` block) to drain the queue. A ``check`` must not
submit to the same appender and wait (the writer thread would wait on itself).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from safesynth.ledger.errors import AppenderClosedError, LedgerError
from safesynth.ledger.store import AppendRequest, AppendResult, Check, LedgerStore

__all__ = ["Appender"]


class Appender:
    """A pipelined writer for one :class:`LedgerStore` (thread-safe; one writer thread).

    Use it as a context manager, or call :meth:`close` (which waits for everything submitted).
    ``max_batch`` bounds the entries per transaction; ``max_queue`` bounds the requests waiting
    (``submit`` blocks while the queue is full, so a fast producer cannot exhaust memory).
    """

    def __init__(self, store: LedgerStore, *, max_batch: int = 1000, max_queue: int = 10_000) -> None:
        if max_batch < 1 or max_queue < 1:
            raise LedgerError("max_batch and max_queue must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._queue: deque[tuple[AppendRequest, Future[AppendResult]]] = deque()
        self._submitted = 0
        self._finished = 0
        self._closing = False
        self.batches = 0
        """Transactions committed so far (for monitoring and benchmarks)."""
        self._thread = threading.Thread(target=self._run, name="ledger-appender", daemon=True)
        self._thread.start()

    def submit(
        self, kind: str, payload: Mapping[str, Any], *, actor: str, check: Check | None = None
    ) -> Future[AppendResult]:
        """Queue one append; the future resolves to its :class:`AppendResult` once it is durable.

        The future raises the request's own error (a failed ``check``, an invalid entry) or the
        error that aborted its whole batch (then none of that batch was appended).
        """
        future: Future[AppendResult] = Future()
        request = AppendRequest(kind, payload, actor, check)
        with self._cond:
            while len(self._queue) >= self.max_queue and not self._closing:
                self._cond.wait()
            if self._closing:
                raise AppenderClosedError("the appender is closed")
            self._queue.append((request, future))
            self._submitted += 1
            self._cond.notify_all()
        return future

    def flush(self) -> None:
        """Wait until everything submitted so far is resolved (durable, or failed)."""
        with self._cond:
            target = self._submitted
            while self._finished < target:
                self._cond.wait()

    def close(self) -> None:
        """Stop accepting requests, wait for the queued ones, stop the writer thread. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[tuple[AppendRequest, Future[AppendResult]]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._cond.notify_all()  # room in the queue for blocked producers
        return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            # A future cancelled before its batch starts is dropped; after this no cancel succeeds.
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            try:
                if live:
                    outcomes = self.store.append_many([r for r, _ in live])
                    self.batches += 1
                    for (_, future), outcome in zip(live, outcomes, strict=True):
                        if isinstance(outcome, AppendResult):
                            future.set_result(outcome)
                        else:
                            future.set_exception(outcome)
            except BaseException as exc:  # the whole batch failed: none of it was appended
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                with self._cond:
                    self._finished += len(batch)
                    self._cond.notify_all()
