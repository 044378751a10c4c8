"""ThreadHandoff: what the fast path relies on (results, errors, a bound on threads, cancellation)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from safesynth.gateway.api.handoff import ThreadHandoff


def test_results_and_errors_reach_the_awaiting_coroutine() -> None:
    handoff = ThreadHandoff(4)

    async def main() -> None:
        assert await handoff.call(lambda: 41 + 1) == 42
        assert await handoff.call(threading.current_thread) is not threading.current_thread()

        def fail() -> None:
            raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            await handoff.call(fail)

    asyncio.run(main())
    handoff.close()


def test_at_most_threads_calls_run_at_once_and_all_finish() -> None:
    handoff = ThreadHandoff(3)
    lock = threading.Lock()
    running, peak = [0], [0]

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i

    async def main() -> list[int]:
        return list(await asyncio.gather(*(handoff.call(lambda i=i: work(i)) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
    assert 1 <= peak[0] <= 3
    assert len(handoff._workers) <= 3
    handoff.close()


def test_a_call_cancelled_while_queued_never_runs() -> None:
    handoff = ThreadHandoff(1)
    gate = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        blocker = asyncio.ensure_future(handoff.call(lambda: gate.wait(5)))
        await asyncio.sleep(0.05)  # the only worker is now busy
        queued = asyncio.ensure_future(handoff.call(lambda: ran.append("queued")))
        await asyncio.sleep(0.01)
        queued.cancel()
        gate.set()
        assert await blocker is True
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await handoff.call(lambda: "after") == "after"  # the worker took the cancelled item

    asyncio.run(main())
    assert ran == []
    handoff.close()


def test_close_lets_queued_calls_finish_and_refuses_new_ones() -> None:
    handoff = ThreadHandoff(1)
    done: list[int] = []

    async def main() -> None:
        calls = [asyncio.ensure_future(handoff.call(lambda i=i: done.append(i))) for i in range(5)]
        await asyncio.sleep(0)
        handoff.close()
        await asyncio.gather(*calls)
        with pytest.raises(RuntimeError, match="closed"):
            await handoff.call(lambda: None)

    asyncio.run(main())
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least 1"):
        ThreadHandoff(0)
