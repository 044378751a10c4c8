"""The `safesynth` command line: a thin layer, one module per command group, imported lazily.

Every option can also be given as a ``SAFESYNTH_...`` environment variable: explicit names for the
common ones (``SAFESYNTH_MODEL_PATH``, ``SAFESYNTH_URL``, ``SAFESYNTH_TOKEN``, ``SAFESYNTH_HOME``), and
``SAFESYNTH_<COMMAND>_<OPTION>`` for the rest (click's ``auto_envvar_prefix``).
"""

from __future__ import annotations

from importlib.metadata import version

import click

from safesynth.gateway.cli._lazy import LazyGroup

__all__ = ["COMMANDS", "main"]

#: command name -> "module:attribute"; each module imports its heavy dependencies inside functions.
COMMANDS: dict[str, str] = {
    "demo": "safesynth.gateway.cli.demo:demo",
    "model": "safesynth.gateway.cli.model:model",
    "dp": "safesynth.gateway.cli.dp:dp",
    "ledger": "safesynth.ledger.cli:ledger",
    "report": "safesynth.gateway.cli.report:report",
    "synth": "safesynth.gateway.cli.client:synth",
    "plan": "safesynth.gateway.cli.client:plan",
    "query": "safesynth.gateway.cli.client:query",
    "budget": "safesynth.gateway.cli.client:budget",
    "jobs": "safesynth.gateway.cli.client:jobs",
    "release": "safesynth.gateway.cli.client:release",
    "audit": "safesynth.gateway.cli.client:audit",
    "serve": "safesynth.gateway.cli.admin:serve",
    "init": "safesynth.gateway.cli.admin:init",
    "token": "safesynth.gateway.cli.admin:token",
    "dataset": "safesynth.gateway.cli.admin:dataset",
}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=COMMANDS,
    context_settings={"auto_envvar_prefix": "SAFESYNTH", "help_option_names": ["-h", "--help"]},
)
@click.version_option(version("safesynth"), "--version", prog_name="safesynth")
def main() -> None:
    """SafeSynth: differentially private synthetic data behind a privacy gateway."""
