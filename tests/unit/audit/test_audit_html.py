"""The HTML page: both reports, inline SVG, escaped text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safesynth.gateway.audit import make_design, quality_report, render_html, run_audit, split
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

EVIL = "<script>alert(1)</script>"
SCHEMA = DatasetSchema(
    columns=(
        ColumnSpec(name="x", kind=ColumnKind.NUMERIC),
        ColumnSpec(name=EVIL, kind=ColumnKind.CATEGORICAL),
        ColumnSpec(name="y", kind=ColumnKind.CATEGORICAL),
    )
)


def _table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    x = rng.normal(size=n)
    return pd.DataFrame(
        {"x": x, EVIL: rng.choice(["a", "b"], n), "y": np.where(x + rng.normal(size=n) > 0, "hi", "lo")}
    )


def test_render_html_with_both_reports() -> None:
    rng = np.random.default_rng(0)
    reg = _table(800, rng)
    design = make_design(len(reg), rng=rng)
    train, holdout = split(reg, design)
    release = _table(400, rng)
    audit = run_audit(train=train, holdout=holdout, synthetic=release, schema=SCHEMA, design=design)
    quality = quality_report(train, holdout, release, SCHEMA, target="y")
    page = render_html(audit, quality, title="release <1>")
    assert page.startswith("<!doctype html>")
    assert str(audit.verdict) in page and audit.rule in page
    assert page.count("<svg") >= 3
    assert EVIL not in page and "&lt;script&gt;" in page
    assert "release &lt;1&gt;" in page
    only_quality = render_html(quality)
    assert "Privacy audit" not in only_quality and "Quality" in only_quality
    with pytest.raises(TypeError):
        render_html()
