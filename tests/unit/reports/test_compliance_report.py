"""The compliance report is built from ledger entries alone and says what the ledger says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from safesynth.gateway.cli import main
from safesynth.gateway.dp.accountant import compose
from safesynth.gateway.dp.events import GaussianEvent, LaplaceEvent
from safesynth.gateway.reports.build import build_report
from safesynth.gateway.reports.render import render_html, render_json
from safesynth.gateway.reports.source import from_export, from_store
from safesynth.ledger import LedgerStore, Signer, decimal_string

BUDGET = {"epsilon_total": "3", "delta_total": "0.000001"}


def _spend(dataset: str, who: str, purpose: str, sigma: float) -> dict[str, object]:
    events = [GaussianEvent(sigma=sigma, sensitivity=1.0, count=4), LaplaceEvent(scale=5.0, sensitivity=1.0)]
    cost = compose(events, delta=1e-6)
    return {
        "dataset": dataset,
        "events": [e.to_json() for e in events],
        "epsilon": decimal_string(float(cost.epsilon)),
        "delta": decimal_string(float(cost.delta)),
        "accounting": cost.method,
        "filter": {"rule": "test", **BUDGET},
        "requester": who,
        "purpose": purpose,
        "engine": "tabular",
    }


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[Path, Signer]:
    signer = Signer.generate("safesynth.test/ledger")
    path = tmp_path / "ledger.sqlite"
    with LedgerStore.create(path, signer, origin="safesynth.test/ledger") as store:
        store.append(
            "dataset.registered/v1",
            {
                "dataset": "patients",
                "columns": [{"name": "age", "kind": "numeric"}, {"name": "note<script>", "kind": "text"}],
                "privacy_unit": {"kind": "row", "person_column": None, "max_rows_per_person": 1},
                "budget": BUDGET,
            },
            actor="admin:alice",
        )
        first = store.append(
            "spend/v1", _spend("patients", "analyst:bob", "churn model", 8.0), actor="analyst:bob"
        )
        store.append(
            "release/v1",
            {
                "dataset": "patients",
                "sha256": "ab" * 32,
                "rows": 100,
                "engine": "tabular",
                "spend_seq": first.seq,
            },
            actor="gateway",
        )
        store.append(
            "audit/v1",
            {"dataset": "patients", "release": "ab" * 32, "verdict": "PASS", "report": {"verdict": "PASS"}},
            actor="gateway",
        )
        store.append("spend/v1", _spend("patients", "analyst:bob", "churn model", 6.0), actor="analyst:bob")
        store.append(
            "refusal/v1",
            {
                "dataset": "patients",
                "requester": "analyst:eve",
                "purpose": "x",
                "reason": "budget_exhausted",
                "epsilon": "9",
                "epsilon_remaining": "0.5",
            },
            actor="analyst:eve",
        )
        store.append("token.created/v1", {"role": "auditor"}, actor="admin:alice")
    return path, signer


def test_report_folds_every_entry_kind(ledger: tuple[Path, Signer]) -> None:
    snapshot = from_store(ledger[0])
    report = build_report(
        snapshot.entries,
        checkpoint=snapshot.checkpoint,
        tree_size=snapshot.tree_size,
        root_hash=snapshot.root_hash,
    )
    assert report.tree_size == 7
    (section,) = report.datasets
    assert [s.seq for s in section.spends] == [1, 4]
    cumulative = [float(s.cumulative_epsilon) for s in section.spends]
    assert 0 < cumulative[0] < cumulative[1] <= 3.0
    # The running total equals the composed cost of both requests' events (same accountant).
    assert cumulative[1] >= float(section.spends[1].epsilon)
    assert [r.reason for r in section.refusals] == ["budget_exhausted"]
    assert section.releases[0].spend_seq == 1 and section.audits[0].verdict == "PASS"
    assert {(r.principal, r.admitted, r.refused) for r in section.requests} == {
        ("analyst:bob", 2, 0),
        ("analyst:eve", 0, 1),
    }
    assert report.other_entries == {"token.created/v1": 1}
    assert json.loads(render_json(report))["tree_size"] == 7


def test_html_is_escaped_and_bound_to_the_checkpoint(ledger: tuple[Path, Signer]) -> None:
    snapshot = from_store(ledger[0])
    html = render_html(
        build_report(
            snapshot.entries,
            checkpoint=snapshot.checkpoint,
            tree_size=snapshot.tree_size,
            root_hash=snapshot.root_hash,
        )
    )
    assert "<script>" not in html and "note&lt;script&gt;" in html
    assert snapshot.checkpoint.splitlines()[0] in html and "<svg" in html
    assert "Art. 30" in html and "1798.140" in html


def test_cli_reads_a_verified_export(ledger: tuple[Path, Signer], tmp_path: Path) -> None:
    path, signer = ledger
    with LedgerStore.open(path) as store:
        store.export(tmp_path / "export")
    signer.save_public(tmp_path / "ledger.pub")
    out = tmp_path / "report.json"
    args = ["report", "--export", str(tmp_path / "export"), "--public-key", str(tmp_path / "ledger.pub")]
    result = CliRunner().invoke(main, [*args, "--format", "json", "--out", str(out), "--controller", "ACME"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["controller"]["controller"] == "ACME"
    assert data["datasets"][0]["dataset"] == "patients"
    assert from_export(tmp_path / "export", tmp_path / "ledger.pub").tree_size == 7


def test_cli_refuses_a_tampered_export(ledger: tuple[Path, Signer], tmp_path: Path) -> None:
    path, signer = ledger
    with LedgerStore.open(path) as store:
        store.export(tmp_path / "export")
    signer.save_public(tmp_path / "ledger.pub")
    entries = tmp_path / "export" / "entries.jsonl"
    entries.write_bytes(entries.read_bytes().replace(b"churn model", b"churn modem", 1))
    args = ["report", "--export", str(tmp_path / "export"), "--public-key", str(tmp_path / "ledger.pub")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "verif" in result.output.lower()
