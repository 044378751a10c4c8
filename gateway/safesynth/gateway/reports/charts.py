"""Inline SVG charts for reports (matplotlib, no display)."""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["epsilon_chart_svg"]


def epsilon_chart_svg(points: Sequence[tuple[str, float]], *, budget: float | None, title: str) -> str:
    """A step chart of cumulative epsilon per spend, with the budget as a line; returns SVG text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    try:
        xs = list(range(1, len(points) + 1))
        ys = [value for _, value in points]
        if xs:
            ax.step([0, *xs], [0.0, *ys], where="post", color="#1f5fa8", label="epsilon spent")
            ax.plot(xs, ys, "o", color="#1f5fa8", markersize=3)
        if budget is not None:
            ax.axhline(budget, color="#b22222", linestyle="--", linewidth=1, label="budget")
        ax.set_xlabel("admitted request (in ledger order)")
        ax.set_ylabel("epsilon")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]
