"""Run the gateway on a loopback port in a background thread (the demo and end-to-end tests use it).

Clients reach it over real TCP, exactly as in production; uvicorn installs no signal handlers off the
main thread, so the caller stays in control of shutdown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from safesynth.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from safesynth.gateway.service.gateway import Gateway

__all__ = ["serve_in_background"]


@contextmanager
def serve_in_background(
    settings: GatewaySettings,
    *,
    gateway: Gateway | None = None,
    startup_timeout: float = 60.0,
    graceful_shutdown: int = 10,
) -> Iterator[str]:
    """Start ``create_app(settings)`` on ``settings.host`` (port 0 picks a free one); yield its base URL.

    ``gateway``: an already open service to serve (tests); it stays open afterwards.
    """
    import uvicorn

    from safesynth.gateway.api.app import create_app

    config = uvicorn.Config(
        create_app(settings, gateway=gateway),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="safesynth-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the gateway did not start (see the log above)")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{settings.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        if thread.is_alive():
            raise RuntimeError("the gateway did not shut down within 60 s")
