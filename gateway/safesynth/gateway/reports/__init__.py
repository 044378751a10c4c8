"""Compliance reports (GDPR Art. 30 record, DPIA annex, CCPA statement) built from the ledger alone."""

from safesynth.gateway.reports.model import ComplianceReport, ControllerInfo

__all__ = ["ComplianceReport", "ControllerInfo"]
