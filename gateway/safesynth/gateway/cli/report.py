"""`safesynth report`: the compliance report (GDPR Art. 30 / DPIA annex / CCPA) from the ledger."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SAFESYNTH_HOME",
    help="The gateway's data home; the report reads its ledger read-only. [env: SAFESYNTH_HOME]",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Build from a ledger export instead (verified with --public-key first).",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The ledger's public key file (needed with --export).",
)
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--controller", default=None, help="Art. 30(1)(a): the controller's name.")
@click.option("--contact", default=None, help="Art. 30(1)(a): the controller's contact.")
@click.option("--dpo", default=None, help="Art. 30(1)(a): the data protection officer.")
def report(
    home: Path | None,
    export_dir: Path | None,
    public_key: Path | None,
    fmt: str,
    out: Path | None,
    controller: str | None,
    contact: str | None,
    dpo: str | None,
) -> None:
    """Build the compliance report from the ledger, bound to its latest signed checkpoint.

    Reads either the gateway's own ledger (--home) or an export verified offline
    (--export DIR --public-key FILE). Every figure comes from ledger entries.
    """
    from dataclasses import replace

    from safesynth.gateway.reports.build import build_report
    from safesynth.gateway.reports.model import ControllerInfo
    from safesynth.gateway.reports.render import render_html, render_json
    from safesynth.gateway.reports.source import from_export, from_store
    from safesynth.ledger import LedgerError

    try:
        if export_dir is not None:
            if public_key is None:
                raise click.UsageError("--export needs --public-key")
            snapshot = from_export(export_dir, public_key)
        else:
            from safesynth.gateway.settings import GatewaySettings

            settings = GatewaySettings() if home is None else GatewaySettings(home=home)
            snapshot = from_store(settings.ledger_path)
    except LedgerError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from exc
    info = ControllerInfo()
    given = {"controller": controller, "contact": contact, "dpo": dpo}
    info = replace(info, **{k: v for k, v in given.items() if v})
    built = build_report(
        snapshot.entries,
        checkpoint=snapshot.checkpoint,
        tree_size=snapshot.tree_size,
        root_hash=snapshot.root_hash,
        controller=info,
    )
    text = render_html(built) if fmt == "html" else render_json(built)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(text)} bytes, tree size {snapshot.tree_size})", err=True)
