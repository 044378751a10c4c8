"""`safesynth ledger ...`: export, verify and prove; verification needs only the base install."""

from __future__ import annotations

import click

__all__ = ["ledger"]


@click.group()
def ledger() -> None:
    """Export, verify and prove the privacy ledger."""
