"""Progress reporting while waiting for a job: a one-line bar on stderr, or the caller's callback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from safesynth.sdk.models import Job

__all__ = ["ProgressArg", "StderrProgress", "progress_callback"]

#: What ``synthesize(progress=...)`` accepts: False (silent), True (a bar on stderr) or a callback.
ProgressArg = bool | Callable[[Job], None]


class StderrProgress:
    """Draws ``[#####.....]  52%  fitting  eta 12s`` on one line of a text stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._last = ""

    def render(self, job: Job) -> str:
        """The line for ``job`` (without the carriage return)."""
        filled = round(job.progress * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        eta = f"  eta {job.eta_seconds:.0f}s" if job.eta_seconds is not None and not job.done else ""
        stage = job.stage or job.state
        return f"[{bar}] {job.progress * 100:3.0f}%  {stage}{eta}"

    def __call__(self, job: Job) -> None:
        line = self.render(job)
        if line != self._last:
            pad = " " * max(0, len(self._last) - len(line))
            self._stream.write("\r" + line + pad)
            self._stream.flush()
            self._last = line
        if job.done:
            self._stream.write(f"  {job.state}\n")
            self._stream.flush()


def progress_callback(progress: ProgressArg) -> Callable[[Job], None] | None:
    """The callback for a ``progress`` argument (None when silent)."""
    if progress is True:
        return StderrProgress()
    if progress is False:
        return None
    if not callable(progress):
        raise TypeError("progress must be a bool or a callable taking a Job")
    return progress
