"""The audit report: aggregates only.

Nothing here is per record: no scores, no membership labels, no row indices, no canary identities.
:meth:`AuditReport.to_json` is what a client sees; :meth:`AuditReport.to_ledger_json` is the ``audit/v1``
ledger payload (the same aggregates, numbers as decimal strings, privacy numbers included).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from safesynth.gateway.audit.risks import RiskEstimate

__all__ = [
    "REPORT_VERSION",
    "AttackResult",
    "AuditReport",
    "EpsilonBound",
    "ExactMatchTest",
    "Verdict",
    "decimal",
]

REPORT_VERSION = "audit/v1"


class Verdict(StrEnum):
    """The audit's conclusion."""

    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    WARN = "WARN"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


def decimal(x: float | None) -> str | None:
    """A float as a short decimal string (6 significant digits); None stays None."""
    if x is None:
        return None
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return f"{x:.6g}"


@dataclass(frozen=True)
class AttackResult:
    """One attack on one subset of the audit pool ("all" or "isolated": the 10% most isolated)."""

    attack: str
    subset: str
    n_members: int
    n_non_members: int
    auc: float
    auc_low: float
    auc_high: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_1pct_low: float
    tpr_at_fpr_1pct_high: float
    tpr_at_fpr_10pct: float
    tpr_at_fpr_10pct_low: float
    tpr_at_fpr_10pct_high: float
    advantage: float


@dataclass(frozen=True)
class ExactMatchTest:
    """Verbatim copies: how many training vs never-seen rows (or texts) appear in the release."""

    column: str  # "<row>" for whole tabular rows, else the text column's name
    train_matched: int
    train_total: int
    holdout_matched: int
    holdout_total: int
    fisher_p: float
    synthetic_copy_share: float  # share of release rows equal to some training row


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on epsilon, valid with probability ``confidence``."""

    value: float
    confidence: float
    method: str
    attack: str
    accountant_epsilon: float | None
    delta: float


@dataclass(frozen=True)
class AuditReport:
    """The result of :func:`safesynth.gateway.audit.run_audit`."""

    verdict: Verdict
    rule: str
    reason: str
    design_commitment: str
    sizes: dict[str, int]
    attacks: tuple[AttackResult, ...]
    risks: tuple[RiskEstimate, ...]
    exact_matches: tuple[ExactMatchTest, ...]
    text_overlap: dict[str, dict[str, float]]
    permutation_p: float
    permutation_top: str
    combined_p: float
    max_advantage: float
    max_auc: float
    epsilon_bound: EpsilonBound
    power: float
    power_definition: str
    thresholds: dict[str, float]
    runtime_seconds: float
    notes: tuple[str, ...] = field(default=())
    version: str = REPORT_VERSION

    def attack(self, name: str, subset: str = "all") -> AttackResult:
        """The result of one attack (KeyError if it did not run)."""
        for a in self.attacks:
            if a.attack == name and a.subset == subset:
                return a
        raise KeyError(f"{name}/{subset}")

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values (floats as numbers)."""
        out = asdict(self)
        out["verdict"] = str(self.verdict)
        out["attacks"] = [asdict(a) for a in self.attacks]
        out["risks"] = [asdict(r) for r in self.risks]
        out["exact_matches"] = [asdict(e) for e in self.exact_matches]
        out["notes"] = list(self.notes)
        cleaned: dict[str, Any] = _clean(out)
        return cleaned

    def to_ledger_json(self) -> dict[str, Any]:
        """The ``audit/v1`` ledger payload: the same aggregates, every float as a decimal string."""
        payload: dict[str, Any] = _decimals(self.to_json())
        return payload


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _decimals(obj: Any) -> Any:
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, float):
        return decimal(obj)
    if isinstance(obj, dict):
        return {k: _decimals(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decimals(v) for v in obj]
    return obj
