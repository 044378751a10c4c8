"""The compliance report's content: plain frozen records built from ledger entries only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "AuditRow",
    "ComplianceReport",
    "ControllerInfo",
    "DatasetSection",
    "PrincipalPurposeRow",
    "RefusalRow",
    "ReleaseRow",
    "SpendPoint",
]


@dataclass(frozen=True)
class ControllerInfo:
    """Art. 30(1)(a) fields the ledger cannot know; given by the data owner when the report is made."""

    controller: str = "(controller name not given)"
    contact: str = "(contact not given)"
    dpo: str = "(data protection officer not given)"
    retention: str = "Synthetic releases: as set by the recipient; private data: until deregistered."
    transfers: str = "None: the gateway runs on premise; only DP releases leave it."


@dataclass(frozen=True)
class SpendPoint:
    """One admitted spend and the dataset's cumulative cost after it."""

    seq: int
    timestamp: str
    requester: str
    purpose: str
    engine: str
    epsilon: str
    delta: str
    cumulative_epsilon: str
    accounting: str
    filter_rule: str
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class RefusalRow:
    """A refused request: nothing was spent."""

    seq: int
    timestamp: str
    requester: str
    purpose: str
    reason: str
    epsilon_requested: str
    epsilon_remaining: str


@dataclass(frozen=True)
class ReleaseRow:
    """A release and the spend that paid for it."""

    seq: int
    timestamp: str
    sha256: str
    rows: int
    engine: str
    spend_seq: int | None


@dataclass(frozen=True)
class AuditRow:
    """The recorded verdict of an audit of one release (aggregates only)."""

    seq: int
    timestamp: str
    release: str
    verdict: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class PrincipalPurposeRow:
    """How many requests one principal made for one purpose, and how many were refused."""

    principal: str
    purpose: str
    admitted: int
    refused: int


@dataclass(frozen=True)
class DatasetSection:
    """Everything the ledger says about one dataset."""

    dataset: str
    registered_seq: int
    registered_at: str
    registered_by: str
    columns: tuple[dict[str, str], ...]
    privacy_unit: dict[str, Any]
    epsilon_total: str
    delta_total: str
    epsilon_spent: str
    spends: tuple[SpendPoint, ...] = ()
    refusals: tuple[RefusalRow, ...] = ()
    releases: tuple[ReleaseRow, ...] = ()
    audits: tuple[AuditRow, ...] = ()
    requests: tuple[PrincipalPurposeRow, ...] = ()


@dataclass(frozen=True)
class ComplianceReport:
    """A GDPR Art. 30 record with DPIA annex and CCPA statement, bound to one signed checkpoint."""

    generated_at: str
    checkpoint: str
    tree_size: int
    root_hash: str
    controller: ControllerInfo
    datasets: tuple[DatasetSection, ...]
    other_entries: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (for machines); the same content as the HTML page."""
        return asdict(self)
