"""`safesynth model ...`: the on-premise llama.cpp model."""

from __future__ import annotations

import click

__all__ = ["model"]


@click.group()
def model() -> None:
    """Inspect and run the on-premise model."""
