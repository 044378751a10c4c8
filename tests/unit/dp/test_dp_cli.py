"""`safesynth dp cost` and `safesynth dp calibrate`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from safesynth.gateway.cli import main

EVENTS = [
    {"kind": "gaussian/v1", "sigma": "5", "sensitivity": "1", "count": 10},
    {"kind": "exponential/v1", "epsilon": "0.1", "count": 3},
]


def test_cost_from_stdin() -> None:
    res = CliRunner().invoke(main, ["dp", "cost", "--delta", "1e-6"], input=json.dumps(EVENTS))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["method"] in {"rdp", "pld"}
    assert float(out["epsilon"]) > 0 and out["delta"] == "1e-06"
    assert len(out["terms"]) == 2


def test_cost_from_file_with_epsilon(tmp_path: Path) -> None:
    p = tmp_path / "events.json"
    p.write_text(json.dumps(EVENTS))
    res = CliRunner().invoke(main, ["dp", "cost", "--events", str(p), "--epsilon", "3", "--method", "rdp"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["method"] == "rdp" and 0 < float(out["delta"]) < 1e-3


def test_cost_errors_are_typed() -> None:
    res = CliRunner().invoke(
        main, ["dp", "cost", "--delta", "1e-6"], input='[{"kind": "gaussian/v1", "sigma": "nan"}]'
    )
    assert res.exit_code == 2
    assert '"invalid_parameter"' in res.output
    res = CliRunner().invoke(main, ["dp", "cost"], input="[]")
    assert res.exit_code == 2


def test_calibrate_gaussian() -> None:
    res = CliRunner().invoke(
        main,
        [
            "dp",
            "calibrate",
            "--mechanism",
            "gaussian",
            "--epsilon",
            "1",
            "--delta",
            "1e-6",
            "--sensitivity",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert 4.22 < float(out["sigma"]) < 4.23  # analytic Gaussian (Balle & Wang 2018)
    res = CliRunner().invoke(main, ["dp", "calibrate", "--mechanism", "laplace", "--epsilon", "0.5"])
    assert json.loads(res.output)["scale"] == "2.0"
    res = CliRunner().invoke(main, ["dp", "calibrate", "--epsilon", "1"])
    assert res.exit_code == 2
