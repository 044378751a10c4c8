"""A small server-sent-events reader for job progress (``text/event-stream``, WHATWG format)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from pydantic import ValidationError

from safesynth.sdk.errors import InvalidResponse
from safesynth.sdk.models import Job

__all__ = ["SseParser", "aiter_sse_jobs", "iter_sse_jobs"]


class SseParser:
    """Feeds lines, returns complete ``(event, data)`` pairs; comments and ids are ignored."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """One line (without its newline); a blank line ends an event and returns it."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def _job(data: str) -> Job:
    try:
        return Job.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidResponse(f"job event is not a valid Job: {exc.errors()[0]['msg']}") from exc


def iter_sse_jobs(lines: Iterable[str]) -> Iterator[Job]:
    """Jobs from ``job`` (or unnamed) events, stopping after the first final one."""
    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is None or event[0] not in ("job", "message"):
            continue
        job = _job(event[1])
        yield job
        if job.done:
            return


async def aiter_sse_jobs(lines: AsyncIterator[str]) -> AsyncIterator[Job]:
    """The async twin of :func:`iter_sse_jobs`."""
    parser = SseParser()
    async for line in lines:
        event = parser.feed(line)
        if event is None or event[0] not in ("job", "message"):
            continue
        job = _job(event[1])
        yield job
        if job.done:
            return
