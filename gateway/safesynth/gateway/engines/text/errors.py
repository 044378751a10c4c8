"""Typed errors of the text engine (subclasses of the engines' hierarchy, each with a stable code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safesynth.gateway.engines.base import InvalidRequest, UnsupportedSchema

__all__ = ["InvalidTextOption", "NoTextColumn", "SizeGateFailed"]


class InvalidTextOption(InvalidRequest):
    """An option of the text engine is unknown or out of range (the message names it)."""

    code = "text_invalid_option"


class NoTextColumn(UnsupportedSchema):
    """The schema has no text column, or several and the request did not name one."""

    code = "text_no_text_column"


class SizeGateFailed(InvalidRequest):
    """The corpus is too small for the noise: the vote histogram could say nothing.

    Raised by ``plan`` (before anything is spent). ``proposals`` holds settings that would pass:
    ``max_candidates`` at this epsilon and T, ``max_rows``, ``epsilon_needed`` and ``iterations``.
    """

    code = "text_size_gate"

    def __init__(self, message: str, *, proposals: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.proposals = dict(proposals)
