"""`safesynth ledger ...` end to end on real files; verification loads no sqlite-utils or numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from safesynth.ledger.cli import ledger


def _run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(ledger, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + (result.stderr or "")
    return result


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAFESYNTH_LEDGER", str(tmp_path / "l.db"))
    monkeypatch.setenv("SAFESYNTH_LEDGER_KEY", str(tmp_path / "k"))
    _run("keygen", "--out", str(tmp_path / "k"))
    _run("init", "--origin", "cli.example/log")
    for i in range(5):
        _run("append", "--kind", "spend/v1", "--payload", json.dumps({"i": i, "eps": "0.5"}), "--actor", "me")
    return tmp_path


def test_export_verify_and_tamper(home: Path) -> None:
    out = json.loads(_run("export", "--out", str(home / "ex"), "--checkpoint-interval", "1").output)
    assert out["tree_size"] == 5 and out["checkpoints"] == 6
    report = json.loads(_run("verify", str(home / "ex"), "--public-key", str(home / "k.pub")).output)
    assert report["ok"] and report["tree_size"] == 5
    serial = _run("verify", str(home / "ex"), "--public-key", str(home / "k.pub"), "--workers", "0")
    assert json.loads(serial.output)["root_hash"] == report["root_hash"]
    entries = home / "ex" / "entries.jsonl"
    entries.write_bytes(entries.read_bytes().replace(b'"i":2', b'"i":7'))
    bad = _run("verify", str(home / "ex"), "--public-key", str(home / "k.pub"), ok=False)
    assert bad.exit_code == 1
    err = json.loads(bad.stderr)
    assert err["code"] == "verification_failed" and err["step"] == "1-manifest"


def test_floats_refused(home: Path) -> None:
    bad = _run("append", "--kind", "spend/v1", "--payload", '{"eps": 0.5}', "--actor", "me", ok=False)
    assert bad.exit_code == 2 and json.loads(bad.stderr)["code"] == "float_in_payload"


def test_prove_and_verify_bundles(home: Path) -> None:
    _run("prove", "--seq", "2", "--out", str(home / "p.json"))
    res = json.loads(_run("verify", str(home / "p.json"), "--public-key", str(home / "k.pub")).output)
    assert res == {"ok": True, "type": "inclusion", "seq": 2, "tree_size": 5}
    (home / "c.json").write_text(_run("prove", "--consistency", "2", "5").output)
    res = json.loads(_run("verify", str(home / "c.json"), "--public-key", str(home / "k.pub")).output)
    assert res["type"] == "consistency"
    bundle = json.loads((home / "p.json").read_text())
    bundle["proof"][0] = bundle["proof"][1]
    (home / "p.json").write_text(json.dumps(bundle))
    bad = _run("verify", str(home / "p.json"), "--public-key", str(home / "k.pub"), ok=False)
    assert bad.exit_code == 1 and json.loads(bad.stderr)["step"] == "2-proof"
    usage = _run("prove", ok=False)
    assert usage.exit_code == 2


def test_rotate_cosign_status(home: Path) -> None:
    _run("keygen", "--out", str(home / "k2"), "--name", "log-2")
    _run("keygen", "--out", str(home / "w"), "--name", "dpo")
    _run("rotate-key", "--new-key", str(home / "k2"), "--actor", "admin")
    status = json.loads(_run("status", "--full").output)
    assert status["size"] == 6 and [k["from_size"] for k in status["keys"]] == [0, 6]
    (home / "cp.txt").write_text(status["checkpoint"])
    cosigned = _run(
        "cosign", str(home / "cp.txt"), "--key", str(home / "w"), "--public-key", str(home / "k2.pub")
    )
    (home / "cosigned.txt").write_text(cosigned.output)
    _run("add-cosignature", str(home / "cosigned.txt"), "--witness-key", str(home / "w.pub"))
    _run("export", "--out", str(home / "ex"))
    args = [
        "verify",
        str(home / "ex"),
        "--public-key",
        str(home / "k.pub"),
        "--witness-key",
        str(home / "w.pub"),
    ]
    report = json.loads(_run(*args, "--require-witness").output)
    assert list(report["witnessed_sizes"].values()) == [[6]]
    old_receipt = home / "receipt.txt"
    old_receipt.write_text(status["checkpoint"])
    _run(
        "verify",
        str(home / "ex"),
        "--public-key",
        str(home / "k2.pub"),
        "--expect-checkpoint",
        str(old_receipt),
    )


def test_verify_needs_only_the_base_install(home: Path) -> None:
    _run("export", "--out", str(home / "ex"))
    ex, pub = str(home / "ex"), str(home / "k.pub")
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from safesynth.ledger.cli import ledger\n"
        f"r = CliRunner().invoke(ledger, ['verify', {ex!r}, '--public-key', {pub!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('sqlite_utils', 'numpy', 'pandas', 'sqlite3')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "print(json.dumps(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []
