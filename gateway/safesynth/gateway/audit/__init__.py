"""Privacy and quality audits of synthetic releases.

Public API:

* :func:`make_design` / :func:`split` / :class:`AuditDesign`: the audit plan fixed at registration;
* :func:`run_audit` -> :class:`AuditReport` (aggregates only; ``.verdict``, ``.to_json()``,
  ``.to_ledger_json()``);
* :func:`gate` with a :class:`GatePolicy` -> :class:`GateDecision` (release or withhold, and why);
* :func:`quality_report` -> :class:`QualityReport`; :func:`render_html` for either report;
* :func:`run_external_audit` -> :class:`ExternalAuditReport`: a table made elsewhere, against the
  registration split (labelled ``external-table/v1``; see :mod:`safesynth.gateway.audit.external`);
* :func:`make_canary_design` / :func:`run_canary_audit` -> :class:`CanaryAuditReport`: the audit-only
  canary run and its one-run epsilon lower bound (:mod:`safesynth.gateway.audit.canaries`).
"""

from safesynth.gateway.audit.canaries import (
    CanaryAuditReport,
    CanaryDesign,
    make_canary_design,
    run_canary_audit,
    score_canary_audit,
)
from safesynth.gateway.audit.design import DEFAULT_ATTACKS, AuditDesign, make_design, split
from safesynth.gateway.audit.errors import (
    AuditError,
    ColumnsMismatch,
    DatasetTooSmall,
    DesignMismatch,
    InvalidAuditInput,
)
from safesynth.gateway.audit.external import CopyCheck, ExternalAuditReport, run_external_audit
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
    "CanaryAuditReport",
    "CanaryDesign",
    "ColumnsMismatch",
    "CopyCheck",
    "DatasetTooSmall",
    "DesignMismatch",
    "EpsilonBound",
    "ExactMatchTest",
    "ExternalAuditReport",
    "GateDecision",
    "GatePolicy",
    "InvalidAuditInput",
    "QualityReport",
    "RiskEstimate",
    "TextQuality",
    "UtilityResult",
    "Verdict",
    "gate",
    "make_canary_design",
    "make_design",
    "quality_report",
    "render_html",
    "run_audit",
    "run_canary_audit",
    "run_external_audit",
    "score_canary_audit",
    "split",
]
