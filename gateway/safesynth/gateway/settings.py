"""The gateway's settings: ``SAFESYNTH_*`` environment variables, an optional TOML file, explicit values.

Precedence, highest first: values passed to :func:`load_settings`, environment variables
(``SAFESYNTH_HOME``, ``SAFESYNTH_PORT``, ...), the TOML config file (``--config`` or
``SAFESYNTH_CONFIG``; by default ``<home>/config.toml`` when it exists), then the defaults below.

Unsafe values are refused with typed errors rather than silently accepted:

- a non-loopback bind address without TLS (:class:`UnsafeSettings`, code ``unsafe_bind``);
- seeded (reproducible) DP noise (``seeded_noise``): the gateway always draws noise from the OS CSPRNG;
- a home directory, signing key or data file readable by group or others (``insecure_permissions``,
  checked by :func:`check_permissions` when the gateway starts).
"""

from __future__ import annotations

import ipaddress
import os
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "GatewaySettings",
    "InvalidSettings",
    "SettingsError",
    "UnsafeSettings",
    "check_permissions",
    "check_settings",
    "default_home",
    "load_settings",
]

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("safesynth_config_file", default=None)


class SettingsError(Exception):
    """Base of the settings errors; ``code`` is stable."""

    code: str = "settings_error"

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting


class InvalidSettings(SettingsError):
    """A value has the wrong type or range, or the config file cannot be read."""

    code = "invalid_settings"


class UnsafeSettings(SettingsError):
    """A value is well-formed but would weaken the gateway's guarantees; ``reason`` says which."""

    code = "unsafe_settings"

    def __init__(self, message: str, *, setting: str | None = None, reason: str = "unsafe") -> None:
        super().__init__(message, setting=setting)
        self.reason = reason


def default_home() -> Path:
    """``$SAFESYNTH_HOME`` or ``~/.safesynth``."""
    env = os.environ.get("SAFESYNTH_HOME")
    return Path(env) if env else Path.home() / ".safesynth"


class GatewaySettings(BaseSettings):
    """Everything the gateway process is configured with. Immutable once loaded."""

    model_config = SettingsConfigDict(
        env_prefix="SAFESYNTH_", extra="forbid", frozen=True, validate_default=True, env_ignore_empty=True
    )

    home: Path = Field(default_factory=default_home, description="The data home (0700): ledger, keys, data.")
    host: str = Field(default="127.0.0.1", description="Bind address; loopback unless TLS is configured.")
    port: int = Field(default=8765, ge=0, le=65535, description="TCP port (0: any free port).")
    tls_certfile: Path | None = Field(default=None, description="PEM certificate chain for HTTPS.")
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS.")
    allowed_data_roots: tuple[Path, ...] = Field(
        default=(), description="Directories from which datasets may be registered by server-side path."
    )
    max_request_bytes: int = Field(default=1 << 20, ge=1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(default=256 << 20, ge=1024, description="Largest dataset upload.")
    max_dataset_rows: int = Field(default=5_000_000, ge=10, description="Most rows in a registered dataset.")
    max_field_chars: int = Field(default=100_000, ge=16, description="Longest cell in a registered dataset.")
    max_synthetic_rows: int = Field(
        default=1_000_000, ge=1, description="Most rows one synthesis may ask for."
    )
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=0.9, description="Share kept back for audits.")
    request_threads: int = Field(
        default=64, ge=1, le=1024, description="Threads for blocking request handlers (AnyIO's limiter)."
    )
    job_workers: int = Field(default=1, ge=1, le=64, description="Synthesis jobs running at once.")
    job_queue_size: int = Field(default=16, ge=1, le=10_000, description="Jobs queued or running at once.")
    jobs_per_principal: int = Field(default=4, ge=1, le=1000, description="Active jobs per token.")
    rate_limit_per_second: float = Field(default=200.0, gt=0, description="Requests/s per token (sustained).")
    rate_limit_burst: int = Field(default=400, ge=1, description="Requests per token in a burst.")
    run_audits: bool = Field(default=True, description="Run the audit suite after each release.")
    idempotency_ttl_hours: float = Field(default=24.0, gt=0, description="How long retries are recognised.")
    model_path: Path | None = Field(default=None, description="GGUF model; default: the bundled model.")
    noise_seed: int | None = Field(default=None, description="Refused: DP noise is never seeded.")
    ledger_origin: str = Field(default="safesynth.local/ledger", min_length=1, max_length=200)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the TOML file (if any)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # ----------------------------------------------------------------------------- derived paths
    @property
    def is_tls(self) -> bool:
        """Whether HTTPS is configured."""
        return self.tls_certfile is not None and self.tls_keyfile is not None

    @property
    def ledger_path(self) -> Path:
        """The ledger's SQLite file."""
        return self.home / "ledger.sqlite"

    @property
    def signing_key_path(self) -> Path:
        """The ledger's Ed25519 signing key (0600)."""
        return self.home / "ledger.key"

    @property
    def public_key_path(self) -> Path:
        """The ledger's public key, for auditors."""
        return self.home / "ledger.pub"

    @property
    def state_path(self) -> Path:
        """The gateway's own SQLite file: tokens, datasets, jobs, caches."""
        return self.home / "gateway.sqlite"

    @property
    def datasets_dir(self) -> Path:
        """Where private dataset copies live (0700, files 0600)."""
        return self.home / "datasets"

    @property
    def releases_dir(self) -> Path:
        """Content-addressed releases."""
        return self.home / "releases"


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: GatewaySettings) -> GatewaySettings:
    """Refuse unsafe values that need no file system access; return ``settings`` when fine."""
    if settings.noise_seed is not None:
        raise UnsafeSettings(
            "noise_seed is refused: the gateway draws DP noise from the operating system's CSPRNG only",
            setting="noise_seed",
            reason="seeded_noise",
        )
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise InvalidSettings("tls_certfile and tls_keyfile must be given together", setting="tls_certfile")
    if not _is_loopback(settings.host) and not settings.is_tls:
        raise UnsafeSettings(
            f"binding {settings.host!r} (not loopback) needs TLS: set tls_certfile and tls_keyfile, "
            "or bind 127.0.0.1 behind a TLS-terminating proxy",
            setting="host",
            reason="unsafe_bind",
        )
    return settings


def _refuse_open(path: Path, setting: str, what: str) -> None:
    if not path.exists():
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnsafeSettings(
            f"{what} {path} has mode {mode:o}: group/others may access it; run `chmod go-rwx {path}`",
            setting=setting,
            reason="insecure_permissions",
        )


def check_permissions(settings: GatewaySettings) -> None:
    """Refuse a home, signing key or private data readable by group or others."""
    _refuse_open(settings.home, "home", "the data home")
    _refuse_open(settings.signing_key_path, "home", "the ledger signing key")
    _refuse_open(settings.datasets_dir, "home", "the datasets directory")
    if settings.tls_keyfile is not None:
        _refuse_open(settings.tls_keyfile, "tls_keyfile", "the TLS private key")


def load_settings(config_file: Path | str | None = None, **values: Any) -> GatewaySettings:
    """Load and check settings; typed errors (:class:`InvalidSettings`, :class:`UnsafeSettings`).

    ``config_file``: a TOML file; default ``$SAFESYNTH_CONFIG``, else ``<home>/config.toml`` if it exists.
    """
    path: Path | None = Path(config_file) if config_file is not None else None
    if path is None and os.environ.get("SAFESYNTH_CONFIG"):
        path = Path(os.environ["SAFESYNTH_CONFIG"])
    if path is None:
        home = Path(values["home"]) if values.get("home") else default_home()
        candidate = home / "config.toml"
        path = candidate if candidate.is_file() else None
    if path is not None and not path.is_file():
        raise InvalidSettings(f"config file {path} does not exist", setting="config")
    token = _CONFIG_FILE.set(path)
    try:
        settings = GatewaySettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidSettings(f"invalid setting {where or '?'}: {first.get('msg')}", setting=where) from None
    except (OSError, ValueError) as exc:
        raise InvalidSettings(f"cannot read config file {path}: {exc}", setting="config") from None
    finally:
        _CONFIG_FILE.reset(token)
    return check_settings(settings)
