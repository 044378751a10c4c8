"""`safesynth dp ...`: privacy cost and noise calibration from the DP core."""

from __future__ import annotations

import click

__all__ = ["dp"]


@click.group()
def dp() -> None:
    """Privacy cost of events and noise calibration."""
