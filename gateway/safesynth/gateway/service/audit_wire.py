"""Audit report dictionaries as wire pieces: attack results, the empirical bound and the metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from safesynth.sdk import models as wire

__all__ = ["AUDIT_METRIC_KEYS", "membership_wire", "num", "prob"]

#: the release audit's scalar figures shown on the wire
AUDIT_METRIC_KEYS = ("max_auc", "max_advantage", "permutation_p", "combined_p", "power", "runtime_seconds")


def num(value: Any) -> float | None:
    """A finite number as float, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return None
    return float(value)


def prob(value: Any) -> float | None:
    """:func:`num` clipped to [0, 1]."""
    number = num(value)
    return None if number is None else min(1.0, max(0.0, number))


def membership_wire(
    audit: Mapping[str, Any],
) -> tuple[tuple[wire.AttackResult, ...], float | None, dict[str, float | None]]:
    """(attack results (at most 64), empirical epsilon lower bound or None, metrics) of an audit report."""
    attacks = []
    for item in audit.get("attacks", []) or []:
        if not isinstance(item, Mapping) or prob(item.get("auc")) is None:
            continue
        points = []
        for fpr, key in ((0.01, "tpr_at_fpr_1pct"), (0.1, "tpr_at_fpr_10pct")):
            tpr = prob(item.get(key))
            if tpr is not None:
                low, high = prob(item.get(f"{key}_low")), prob(item.get(f"{key}_high"))
                points.append(wire.TprAtFpr(fpr=fpr, tpr=tpr, tpr_ci_low=low, tpr_ci_high=high))
        attacks.append(
            wire.AttackResult(
                name=f"{item.get('attack', '?')}/{item.get('subset', 'all')}"[:200],
                auc=prob(item.get("auc")) or 0.0,
                auc_ci_low=prob(item.get("auc_low")),
                auc_ci_high=prob(item.get("auc_high")),
                tpr_at_fpr=tuple(points),
            )
        )
    bound = audit.get("epsilon_bound")
    lower = num(bound.get("value")) if isinstance(bound, Mapping) else None
    metrics = {key: num(audit.get(key)) for key in AUDIT_METRIC_KEYS if key in audit}
    return tuple(attacks[:64]), (lower if lower is not None and lower >= 0 else None), metrics
