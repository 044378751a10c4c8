"""Render a compliance report as HTML (Jinja2, autoescaped) with inline SVG charts, or as JSON."""

from __future__ import annotations

import json
from importlib.resources import files

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from safesynth.gateway.reports.charts import epsilon_chart_svg
from safesynth.gateway.reports.model import ComplianceReport

__all__ = ["render_html", "render_json"]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def render_json(report: ComplianceReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.to_json(), indent=2, sort_keys=True)


def render_html(report: ComplianceReport) -> str:
    """The report as one self-contained HTML page."""
    env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
    template = env.from_string((files(__package__) / "templates" / "compliance.html.j2").read_text("utf-8"))
    charts: dict[str, Markup] = {}
    for section in report.datasets:
        points = [
            (s.timestamp, v) for s in section.spends if (v := _number(s.cumulative_epsilon)) is not None
        ]
        svg = epsilon_chart_svg(
            points, budget=_number(section.epsilon_total), title=f"{section.dataset}: epsilon spent"
        )
        charts[section.dataset] = Markup(svg)  # noqa: S704 (matplotlib's own SVG output, no user text unescaped)
    purposes = sorted({s.purpose for d in report.datasets for s in d.spends if s.purpose})
    recipients = sorted({s.requester for d in report.datasets for s in d.spends})
    return template.render(report=report, charts=charts, purposes=purposes, recipients=recipients)
