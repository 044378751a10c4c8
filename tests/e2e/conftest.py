"""End-to-end fixtures: `safesynth init` on a fresh home, then a real uvicorn server on a loopback port.

The server runs the gateway's own ``create_app(settings)`` in a background thread of the test process
(uvicorn installs no signal handlers off the main thread); clients reach it over real TCP, so the SDK,
the CLI subprocesses and the server talk exactly as they would in production.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from e2e_helpers import Gateway, cli_env, safesynth_cli


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import uvicorn

    from safesynth.gateway.api.app import create_app
    from safesynth.gateway.settings import load_settings

    home = tmp_path_factory.mktemp("e2e") / "home"
    init = safesynth_cli("init", "--home", str(home), "--json", env=cli_env())
    facts = json.loads(init.stdout)
    settings = load_settings(None, home=home, port=0, job_workers=2)
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Gateway(f"http://127.0.0.1:{port}", home, facts["admin_token"], facts["ledger_public_key"])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the gateway did not shut down"
