"""Run blocking calls on worker threads from the event loop, with less overhead than an executor.

``loop.run_in_executor(ThreadPoolExecutor, fn)`` wraps every call in a ``concurrent.futures.Future``
chained to an asyncio future (locks, callbacks, a state copy on each side). :class:`ThreadHandoff`
does what the DP-statistics fast path needs and no more: the call and an asyncio future go on a
``queue.SimpleQueue``; a worker runs the call and settles the future through
``loop.call_soon_threadsafe``. Same semantics as the executor for its user: at most ``threads`` calls
run at once (threads start on demand), a call whose future was cancelled before a worker took it
never runs, an exception (any ``BaseException``) is raised by the awaiting coroutine, and
:meth:`ThreadHandoff.close` lets the calls already queued finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ThreadHandoff"]

T = TypeVar("T")

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]] | None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop's thread: give the awaiting coroutine the call's outcome (unless it gave up)."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class ThreadHandoff:
    """At most ``threads`` worker threads (daemons, named ``name-N``) running calls for the loop."""

    def __init__(self, threads: int, *, name: str = "safesynth-worker") -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self.name = name
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    async def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker thread; its result or exception here."""
        if self._closed:
            raise RuntimeError("the thread handoff is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, fn))
        self._spawn_if_needed()
        return await future

    def _spawn_if_needed(self) -> None:
        """Claim an idle worker for the call just queued, or start one (below ``threads``)."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                return
            if len(self._workers) >= self.threads or self._closed:
                return  # every worker is busy: the call waits for the first one free
            worker = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, future, fn = item
            if not future.cancelled():  # like an executor: a call cancelled while queued never runs
                try:
                    outcome: tuple[Any, BaseException | None] = (fn(), None)
                except BaseException as exc:  # handed to the awaiting coroutine, as an executor does
                    outcome = (None, exc)
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                    loop.call_soon_threadsafe(_settle, future, *outcome)
                del outcome
            del item, future, fn  # keep nothing of a finished call alive while idle
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Stop the workers once the calls already queued are done (does not wait). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = len(self._workers)
        for _ in range(count):
            self._queue.put(None)
