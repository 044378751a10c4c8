"""Privacy and quality audits of synthetic releases.

Public API:

* :func:`make_design` / :func:`split` / :class:`AuditDesign`: the audit plan fixed at registration;
* :func:`run_audit` -> :class:`AuditReport` (aggregates only; ``.verdict``, ``.to_json()``,
  ``.to_ledger_json()``);
* :func:`gate` with a :class:`GatePolicy` -> :class:`GateDecision` (release or withhold, and why);
* :func:`quality_report` -> :class:`QualityReport`; :func:`render_html` for either report.
"""

from safesynth.gateway.audit.design import DEFAULT_ATTACKS, AuditDesign, make_design, split
from safesynth.gateway.audit.errors import (
    AuditError,
    ColumnsMismatch,
    DatasetTooSmall,
    DesignMismatch,
    InvalidAuditInput,
)
from safesynth.gateway.audit.gate import GateDecision, GatePolicy, gate
from safesynth.gateway.audit.html import render_html
from safesynth.gateway.audit.quality import QualityReport, TextQuality, UtilityResult, quality_report
from safesynth.gateway.audit.report import AttackResult, AuditReport, EpsilonBound, ExactMatchTest, Verdict
from safesynth.gateway.audit.risks import RiskEstimate
from safesynth.gateway.audit.runner import AuditOptions, run_audit

__all__ = [
    "DEFAULT_ATTACKS",
    "AttackResult",
    "AuditDesign",
    "AuditError",
    "AuditOptions",
    "AuditReport",
    "ColumnsMismatch",
    "DatasetTooSmall",
    "DesignMismatch",
    "EpsilonBound",
    "ExactMatchTest",
    "GateDecision",
    "GatePolicy",
    "InvalidAuditInput",
    "QualityReport",
    "RiskEstimate",
    "TextQuality",
    "UtilityResult",
    "Verdict",
    "gate",
    "make_design",
    "quality_report",
    "render_html",
    "run_audit",
    "split",
]
