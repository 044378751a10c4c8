"""End-to-end fixtures: `safesynth init` on a fresh home, then a real uvicorn server on a loopback port.

The server runs the gateway's own ``create_app(settings)`` in a background thread of the test process
(uvicorn installs no signal handlers off the main thread); clients reach it over real TCP, so the SDK,
the CLI subprocesses and the server talk exactly as they would in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from e2e_helpers import Gateway, cli_env, safesynth_cli


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from safesynth.gateway.api.background import serve_in_background
    from safesynth.gateway.settings import load_settings

    home = tmp_path_factory.mktemp("e2e") / "home"
    init = safesynth_cli("init", "--home", str(home), "--json", env=cli_env())
    facts = json.loads(init.stdout)
    settings = load_settings(None, home=home, port=0, job_workers=2)
    with serve_in_background(settings, startup_timeout=30) as url:
        yield Gateway(url, home, facts["admin_token"], facts["ledger_public_key"])
