"""`safesynth demo`: what `make demo` runs, on the embedded defaults."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command()
def demo() -> None:
    """Run the end-to-end demo on the embedded defaults."""
    click.echo("SafeSynth demo: nothing to show yet.")
