"""One self-contained HTML page for a release's audit and quality reports (Jinja2, inline SVG plots).

The page shows aggregates only, as the reports do: attack AUCs with their intervals, the verdict and
its rule, the risks, per-column marginal errors, utility bars. No real-data marginal is drawn.
"""

from __future__ import annotations

import io
import math
from typing import Any

from safesynth.gateway.audit.quality import QualityReport
from safesynth.gateway.audit.report import AuditReport

__all__ = ["render_html"]

_TEMPLATE_NAME = "report.html.j2"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.3f}"
    return str(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def _audit_svg(audit: AuditReport) -> str:
    import matplotlib.pyplot as plt

    rows = [a for a in audit.attacks if a.subset == "all"]
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1))
    y = list(range(len(rows)))
    ax.errorbar(
        [a.auc for a in rows],
        y,
        xerr=[[a.auc - a.auc_low for a in rows], [a.auc_high - a.auc for a in rows]],
        fmt="o",
        color="#1f5fa8",
    )
    ax.axvline(0.5, color="#888", linestyle="--", linewidth=1)
    ax.set_yticks(y, [a.attack for a in rows])
    ax.set_xlabel("membership AUC (95% CI); 0.5 = no better than a coin")
    ax.set_xlim(min(0.4, *[a.auc_low for a in rows]) - 0.02, max(0.6, *[a.auc_high for a in rows]) + 0.02)
    return _svg(fig)


def _tvd_svg(quality: QualityReport) -> str:
    import matplotlib.pyplot as plt

    if not quality.tvd_1way:
        return ""
    names = list(quality.tvd_1way)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1))
    ax.barh(names, [quality.tvd_1way[n] for n in names], color="#4a8f4a")
    ax.set_xlabel("1-way marginal TVD, real vs synthetic (0 = identical)")
    ax.invert_yaxis()
    return _svg(fig)


def _utility_svg(quality: QualityReport) -> str:
    import matplotlib.pyplot as plt

    rows = [u for u in quality.utility if u.metric in ("accuracy", "r2") and u.value is not None]
    if not rows:
        return ""
    labels = sorted({u.model for u in rows})
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1))
    for k, (src, color) in enumerate((("synthetic", "#c07020"), ("real", "#1f5fa8"))):
        vals = [
            next((u.value for u in rows if u.model == m and u.trained_on == src), 0.0) or 0.0 for m in labels
        ]
        ax.barh(
            [i + 0.4 * k for i in range(len(labels))],
            vals,
            height=0.4,
            color=color,
            label=f"trained on {src}",
        )
    ax.set_yticks([i + 0.2 for i in range(len(labels))], labels)
    ax.set_xlabel(f"{rows[0].metric} on real held-out rows")
    ax.legend(loc="lower right")
    return _svg(fig)


def render_html(*reports: AuditReport | QualityReport, title: str = "SafeSynth release report") -> str:
    """An HTML page for an audit report, a quality report, or both (in any order)."""
    import jinja2
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "safesynth"  # deterministic SVG ids
    audit = next((r for r in reports if isinstance(r, AuditReport)), None)
    quality = next((r for r in reports if isinstance(r, QualityReport)), None)
    if audit is None and quality is None:
        raise TypeError("render_html needs an AuditReport and/or a QualityReport")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    from importlib.resources import files

    template = env.from_string(files("safesynth.gateway.audit").joinpath(_TEMPLATE_NAME).read_text("utf-8"))
    return template.render(
        title=title,
        audit=audit,
        quality=quality,
        fmt=_fmt,
        pct=_pct,
        audit_svg=_audit_svg(audit) if audit else "",
        tvd_svg=_tvd_svg(quality) if quality else "",
        utility_svg=_utility_svg(quality) if quality and quality.utility else "",
    )
