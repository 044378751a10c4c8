"""The release gate: from an audit report and the dataset's policy, release or withhold, and why.

The service does the withholding (the spend stays spent) and writes the refusal to the ledger; this
module only decides. A policy limit counts only where the evidence is statistical, not noise: the AUC
limit compares the *lower* end of an attack's 95% interval, and the advantage limit applies when the
membership signal is significant (combined p-value <= ``significance``). Otherwise the maximum over a
dozen attacks would exceed a tight limit by chance on honest releases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from safesynth.gateway.audit.errors import InvalidAuditInput
from safesynth.gateway.audit.report import AuditReport, Verdict

__all__ = ["GateDecision", "GatePolicy", "gate"]


@dataclass(frozen=True)
class GatePolicy:
    """A dataset's release policy. All limits optional; FAIL verdicts are withheld by default."""

    max_advantage: float | None = None
    max_auc: float | None = None
    withhold_on_fail: bool = True
    withhold_on_inconclusive: bool = False
    significance: float = 0.05

    def __post_init__(self) -> None:
        if self.max_advantage is not None and not (0.0 <= self.max_advantage <= 1.0):
            raise InvalidAuditInput("max_advantage must be in [0, 1]", detail={"parameter": "max_advantage"})
        if self.max_auc is not None and not (0.5 <= self.max_auc <= 1.0):
            raise InvalidAuditInput("max_auc must be in [0.5, 1]", detail={"parameter": "max_auc"})
        if not (math.isfinite(self.significance) and 0.0 < self.significance < 1.0):
            raise InvalidAuditInput("significance must be in (0, 1)", detail={"parameter": "significance"})

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> GatePolicy:
        """Build from JSON (unknown keys refused with InvalidAuditInput)."""
        known = {"max_advantage", "max_auc", "withhold_on_fail", "withhold_on_inconclusive", "significance"}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise InvalidAuditInput(f"unknown gate policy keys: {unknown}", detail={"parameter": "policy"})
        try:
            return cls(
                max_advantage=None if obj.get("max_advantage") is None else float(obj["max_advantage"]),
                max_auc=None if obj.get("max_auc") is None else float(obj["max_auc"]),
                withhold_on_fail=bool(obj.get("withhold_on_fail", True)),
                withhold_on_inconclusive=bool(obj.get("withhold_on_inconclusive", False)),
                significance=float(obj.get("significance", 0.05)),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidAuditInput(f"bad gate policy: {exc}", detail={"parameter": "policy"}) from exc

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """``release`` False means withhold; ``rule`` is stable, ``reason`` human-readable."""

    release: bool
    rule: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The decision as JSON values."""
        return asdict(self)


def gate(report: AuditReport, policy: GatePolicy | None = None) -> GateDecision:
    """Decide whether the audited release may go out under ``policy``."""
    pol = policy or GatePolicy()
    if report.verdict is Verdict.FAIL and pol.withhold_on_fail:
        return GateDecision(False, f"audit-fail:{report.rule}", f"audit verdict FAIL: {report.reason}")
    if report.verdict is Verdict.INCONCLUSIVE and pol.withhold_on_inconclusive:
        return GateDecision(False, "audit-inconclusive", f"audit inconclusive: {report.reason}")
    if pol.max_auc is not None:
        over = [a for a in report.attacks if a.subset == "all" and a.auc_low > pol.max_auc]
        if over:
            worst = max(over, key=lambda a: a.auc_low)
            return GateDecision(
                False,
                "max-auc",
                f"attack {worst.attack}: AUC {worst.auc:.3f} (95% CI lower end {worst.auc_low:.3f}) "
                f"exceeds the dataset's limit {pol.max_auc}",
            )
    if (
        pol.max_advantage is not None
        and report.max_advantage > pol.max_advantage
        and report.combined_p <= pol.significance
    ):
        return GateDecision(
            False,
            "max-advantage",
            f"membership advantage {report.max_advantage:.3f} exceeds the dataset's limit "
            f"{pol.max_advantage} and the signal is significant (p = {report.combined_p:.3g})",
        )
    return GateDecision(True, "within-policy", f"audit verdict {report.verdict}; within the dataset's policy")
