"""Typed errors of the DP core, each with a stable string ``code``."""

from __future__ import annotations

__all__ = ["BudgetExceeded", "DPError", "InvalidParameter", "SamplingError"]


class DPError(Exception):
    """Base class of every error raised by :mod:`safesynth.gateway.dp`."""

    code: str = "dp_error"


class InvalidParameter(DPError, ValueError):
    """A privacy or noise parameter is missing, not finite, out of range or of the wrong type.

    ``parameter`` names the offending argument (e.g. ``"sigma"``) so callers can point at it.
    """

    code = "invalid_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class BudgetExceeded(DPError):
    """A request would spend more than the remaining privacy budget."""

    code = "budget_exhausted"

    def __init__(self, message: str, *, rule: str = "", epsilon_requested: float | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.epsilon_requested = epsilon_requested


class SamplingError(DPError):
    """An exact sampler hit a case it cannot represent (practically impossible; never silent)."""

    code = "sampling_error"
