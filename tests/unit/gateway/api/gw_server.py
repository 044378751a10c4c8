"""A real uvicorn server on a free loopback port, in a thread, for the gateway's integration tests."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from safesynth.gateway.api.background import serve_in_background
from safesynth.gateway.service.gateway import Gateway
from safesynth.gateway.service.home import init_home
from safesynth.gateway.settings import GatewaySettings, load_settings


def settings_for(home: Path, **overrides: Any) -> GatewaySettings:
    """Settings for a test home: generous rate limits unless overridden, audits off unless asked."""
    values: dict[str, Any] = {
        "home": home,
        "port": 0,
        "rate_limit_per_second": 100_000.0,
        "rate_limit_burst": 100_000,
        "run_audits": False,
        **overrides,
    }
    return load_settings(**values)


def init(settings: GatewaySettings) -> str:
    """Initialize the home; the admin token."""
    return init_home(settings).admin_token


def running(settings: GatewaySettings, *, gateway: Gateway | None = None) -> AbstractContextManager[str]:
    """Serve ``settings`` on a loopback port in a thread (the library's own helper); yield the base URL.

    ``gateway``: an already open service to serve (it stays open afterwards).
    """
    return serve_in_background(settings, gateway=gateway, startup_timeout=30, graceful_shutdown=5)
