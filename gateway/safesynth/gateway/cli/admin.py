"""Local-only commands: `safesynth serve | init | token ... | dataset register|list|show`.

They act on the data home directly (``--home`` / ``$SAFESYNTH_HOME``), so they need file access to it:
the home is 0700, readable by its owner only. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from safesynth.gateway.service.gateway import Gateway
    from safesynth.gateway.settings import GatewaySettings

__all__ = ["dataset", "init", "serve", "token"]

_HOME_HELP = "The gateway's data home (default: $SAFESYNTH_HOME, else ~/.safesynth)."
_CONFIG_HELP = "A TOML config file (default: $SAFESYNTH_CONFIG, else <home>/config.toml if present)."


def _fail(exc: Exception) -> None:
    code = getattr(exc, "code", "error")
    message = getattr(exc, "message", None) or str(exc)
    click.echo(f"error [{code}]: {message}", err=True)
    sys.exit(2)


def _settings(home: Path | None, config: Path | None, **values: Any) -> GatewaySettings:
    from safesynth.gateway.settings import load_settings

    os.umask(0o077)  # every file this process creates in the home is private (0600 / 0700)

    given = {k: v for k, v in values.items() if v is not None}
    if home is not None:
        given["home"] = home
    return load_settings(config, **given)


@contextmanager
def _gateway(home: Path | None, config: Path | None) -> Iterator[Gateway]:
    from safesynth.gateway.service.gateway import Gateway

    gateway = Gateway(_settings(home, config), recover_jobs=False)
    try:
        yield gateway
    finally:
        gateway.close(grace_seconds=0.0)


def _errors() -> tuple[type[Exception], ...]:
    from safesynth.gateway.service.errors import ServiceError
    from safesynth.gateway.settings import SettingsError

    return (ServiceError, SettingsError)


def _home_option(func: Any) -> Any:
    func = click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SAFESYNTH_CONFIG",
        help=_CONFIG_HELP,
    )(func)
    return click.option(
        "--home", type=click.Path(path_type=Path, file_okay=False), envvar="SAFESYNTH_HOME", help=_HOME_HELP
    )(func)


# ------------------------------------------------------------------------------------------ serve
@click.command()
@_home_option
@click.option("--host", help="Bind address (default 127.0.0.1; a public address needs TLS).")
@click.option("--port", type=int, help="TCP port (default 8765).")
@click.option(
    "--tls-certfile", type=click.Path(path_type=Path, dir_okay=False), help="PEM certificate chain."
)
@click.option("--tls-keyfile", type=click.Path(path_type=Path, dir_okay=False), help="PEM private key.")
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
def serve(
    home: Path | None,
    config: Path | None,
    host: str | None,
    port: int | None,
    tls_certfile: Path | None,
    tls_keyfile: Path | None,
    log_level: str,
) -> None:
    """Run the gateway (HTTP API) on 127.0.0.1 until interrupted."""
    try:
        settings = _settings(
            home, config, host=host, port=port, tls_certfile=tls_certfile, tls_keyfile=tls_keyfile
        )
        from safesynth.gateway.api.app import serve as run
        from safesynth.gateway.settings import check_permissions

        check_permissions(settings)
        if not settings.state_path.exists():
            raise click.ClickException(f"{settings.home} is not initialized: run `safesynth init` first")
        scheme = "https" if settings.is_tls else "http"
        click.echo(
            f"SafeSynth gateway on {scheme}://{settings.host}:{settings.port} (home {settings.home})",
            err=True,
        )
        run(settings, log_level=log_level)
    except _errors() as exc:
        _fail(exc)


# ------------------------------------------------------------------------------------------ init
@click.command()
@_home_option
@click.option("--admin-name", default="admin", show_default=True, help="Name of the first admin token.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(home: Path | None, config: Path | None, admin_name: str, as_json: bool) -> None:
    """Create the data home (0700), the ledger and its signing key (0600), and a first admin token.

    The admin token is printed ONCE: only its hash is stored.
    """
    import base64

    try:
        from safesynth.gateway.service.home import init_home

        settings = _settings(home, config)
        result = init_home(settings, admin_name=admin_name)
    except _errors() as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(
            json.dumps(
                {
                    "home": str(settings.home),
                    "admin_token_id": result.admin.id,
                    "admin_token": result.admin_token,
                    "ledger_public_key": base64.b64encode(result.public_key).decode(),
                }
            )
        )
        return
    click.echo(f"Initialized {settings.home}")
    click.echo(f"Ledger public key: {settings.public_key_path}")
    click.echo("Admin token (shown once; store it safely, e.g. as SAFESYNTH_TOKEN):")
    click.echo(result.admin_token)


# ------------------------------------------------------------------------------------------ tokens
@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens (local, on the data home)."""


@token.command("create")
@_home_option
@click.option("--name", required=True, help="A name for the token (who or what uses it).")
@click.option(
    "--role", type=click.Choice(["admin", "analyst", "auditor"]), required=True, help="The token's role."
)
@click.option("--dataset", "datasets", multiple=True, help="A dataset an analyst may use (repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def token_create(
    home: Path | None, config: Path | None, name: str, role: str, datasets: tuple[str, ...], as_json: bool
) -> None:
    """Create a token; the secret is printed once."""
    from safesynth.sdk.models import TokenCreate

    try:
        with _gateway(home, config) as gateway:
            created = gateway.create_token(None, TokenCreate(name=name, role=role, datasets=datasets))
    except _errors() as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(created.model_dump_json())
        return
    click.echo(f"token {created.info.id} ({created.info.role}) created; secret (shown once):")
    click.echo(created.token)


@token.command("list")
@_home_option
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
def token_list(home: Path | None, config: Path | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    try:
        with _gateway(home, config) as gateway:
            tokens = gateway.list_tokens(None)
    except _errors() as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(tokens.model_dump_json())
        return
    for info in tokens.tokens:
        state = "revoked" if info.revoked else "active"
        grants = ",".join(info.datasets) or "-"
        click.echo(f"{info.id}  {info.role:<8} {state:<8} {grants:<20} {info.name}")


@token.command("revoke")
@_home_option
@click.argument("token_id")
def token_revoke(home: Path | None, config: Path | None, token_id: str) -> None:
    """Revoke a token by id."""
    try:
        with _gateway(home, config) as gateway:
            info = gateway.revoke_token(None, token_id)
    except _errors() as exc:
        _fail(exc)
        return
    click.echo(f"token {info.id} revoked")


# ------------------------------------------------------------------------------------------ datasets
@click.group()
def dataset() -> None:
    """Register, list and describe datasets (local, on the data home)."""


@dataset.command("register")
@_home_option
@click.argument("dataset_id")
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The private table (.csv or .parquet).",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The public schema as JSON (DatasetSchema).",
)
@click.option("--epsilon-total", type=float, required=True, help="The dataset's total epsilon budget.")
@click.option("--delta-total", type=float, default=1e-6, show_default=True, help="The total delta budget.")
@click.option("--description", default="", help="A public description.")
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of rows kept aside for release audits (0 for none).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the dataset as JSON.")
def dataset_register(
    home: Path | None,
    config: Path | None,
    dataset_id: str,
    file: Path,
    schema_file: Path,
    epsilon_total: float,
    delta_total: float,
    description: str,
    holdout_fraction: float,
    as_json: bool,
) -> None:
    """Register DATASET_ID from a local file with its schema and budget."""
    from pydantic import ValidationError

    from safesynth.sdk.models import BudgetSpec, DatasetCreate

    try:
        body = DatasetCreate(
            id=dataset_id,
            dataset_schema=json.loads(schema_file.read_text()),
            budget=BudgetSpec(epsilon_total=epsilon_total, delta_total=delta_total),
            description=description,
            holdout_fraction=holdout_fraction,
        )
    except (ValidationError, ValueError) as exc:
        click.echo(f"error [invalid_request]: {exc}", err=True)
        sys.exit(2)
    try:
        with _gateway(home, config) as gateway:
            info = gateway.register_dataset(None, body, upload=file.read_bytes(), filename=file.name)
    except _errors() as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(info.model_dump_json())
        return
    click.echo(f"dataset {info.id} registered: {info.row_count_bucket} rows, epsilon_total={epsilon_total}")


def _admin_principal() -> Any:
    from safesynth.gateway.service.tokens import Principal, Role

    return Principal("local", "local-admin", Role.ADMIN)


@dataset.command("list")
@_home_option
@click.option("--json", "as_json", is_flag=True, help="Print the datasets as JSON.")
def dataset_list(home: Path | None, config: Path | None, as_json: bool) -> None:
    """List datasets: id, row-count bucket, budget spent/total."""
    try:
        with _gateway(home, config) as gateway:
            listing = gateway.list_datasets(_admin_principal())
    except _errors() as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(listing.model_dump_json())
        return
    for info in listing.datasets:
        spent = f"{info.epsilon_spent:.4g}/{info.budget.epsilon_total:g}"
        click.echo(f"{info.id:<24} rows {info.row_count_bucket:<12} epsilon {spent}")


@dataset.command("show")
@_home_option
@click.argument("dataset_id")
def dataset_show(home: Path | None, config: Path | None, dataset_id: str) -> None:
    """Show one dataset (schema, row-count bucket, budget) as JSON."""
    try:
        with _gateway(home, config) as gateway:
            info = gateway.get_dataset(_admin_principal(), dataset_id)
    except _errors() as exc:
        _fail(exc)
        return
    click.echo(info.model_dump_json(indent=2))
