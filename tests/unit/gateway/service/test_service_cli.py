"""The local admin commands: init, token create/list/revoke, dataset register/list/show, serve's refusals."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from gw_fixtures import SCHEMA, csv_bytes, require_dp

from safesynth.gateway.cli import main

require_dp()


def _run(runner: CliRunner, home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, list(args), env={"SAFESYNTH_HOME": str(home)}, catch_exceptions=False)
    return result.exit_code, result.output


def test_init_tokens_and_datasets(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "home"
    code, out = _run(runner, home, "init", "--json")
    assert code == 0, out
    init = json.loads(out)
    assert init["admin_token"].startswith("ssk_")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "ledger.key").stat().st_mode) == 0o600
    assert init["admin_token"] not in (home / "gateway.sqlite").read_bytes().decode("latin-1")

    code, out = _run(runner, home, "init")
    assert code == 2 and "already initialized" in out  # never overwrites a home

    data = tmp_path / "d.csv"
    data.write_bytes(csv_bytes(120))
    schema = tmp_path / "schema.json"
    schema.write_text(SCHEMA.model_dump_json())
    code, out = _run(
        runner,
        home,
        "dataset",
        "register",
        "d1",
        "--file",
        str(data),
        "--schema",
        str(schema),
        "--epsilon-total",
        "2",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["row_count_bucket"] == "100-999"
    code, out = _run(runner, home, "dataset", "list")
    assert code == 0 and "d1" in out and "100-999" in out
    code, out = _run(runner, home, "dataset", "show", "d1")
    assert code == 0 and json.loads(out)["id"] == "d1"
    code, out = _run(runner, home, "dataset", "show", "nope")
    assert code == 2 and "not_found" in out

    code, out = _run(
        runner, home, "token", "create", "--name", "ana", "--role", "analyst", "--dataset", "d1", "--json"
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["info"]["datasets"] == ["d1"]
    code, out = _run(runner, home, "token", "list", "--json")
    listed = json.loads(out)["tokens"]
    assert {t["role"] for t in listed} == {"admin", "analyst"}
    assert created["token"] not in out  # secrets are never listed
    code, out = _run(runner, home, "token", "revoke", created["info"]["id"])
    assert code == 0 and "revoked" in out
    code, out = _run(runner, home, "token", "create", "--name", "x", "--role", "admin", "--dataset", "d1")
    assert code == 2 and "invalid_request" in out


def test_serve_refuses_unsafe_settings(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "home"
    assert _run(runner, home, "init", "--json")[0] == 0
    code, out = _run(runner, home, "serve", "--host", "0.0.0.0")
    assert code == 2 and "unsafe" in out
    home.chmod(0o755)
    code, out = _run(runner, home, "serve")
    assert code == 2 and "chmod go-rwx" in out  # a group/world-readable home is refused
    home.chmod(0o700)
    code, out = _run(runner, tmp_path / "empty", "serve")
    assert code != 0
