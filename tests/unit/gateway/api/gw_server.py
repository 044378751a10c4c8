"""A real uvicorn server on a free loopback port, in a thread, for the gateway's integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from safesynth.gateway.api.app import create_app
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


@contextmanager
def running(settings: GatewaySettings, *, gateway: Gateway | None = None) -> Iterator[str]:
    """Serve ``settings`` with uvicorn in a thread; yield the base URL; stop cleanly.

    ``gateway``: an already open service to serve (it stays open afterwards).
    """
    config = uvicorn.Config(
        create_app(settings, gateway=gateway),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
