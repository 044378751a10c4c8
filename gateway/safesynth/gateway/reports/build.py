"""Fold ledger entries into a compliance report. Reads entries only: the ledger is the authority."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from safesynth.gateway.dp.errors import DPError
from safesynth.gateway.dp.events import DpEvent, event_from_json
from safesynth.gateway.dp.filter import FilterState, PrivacyFilter
from safesynth.gateway.reports.model import (
    AuditRow,
    ComplianceReport,
    ControllerInfo,
    DatasetSection,
    PrincipalPurposeRow,
    RefusalRow,
    ReleaseRow,
    SpendPoint,
)

__all__ = ["EntryLike", "build_report"]

_AUDIT_FIGURES = ("verdict", "rule", "max_advantage", "max_auc", "empirical_epsilon_lower_bound", "p_value")


class EntryLike(Protocol):
    """What the report reads of a ledger entry (``safesynth.ledger.Entry`` fits)."""

    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def timestamp(self) -> str: ...
    @property
    def actor(self) -> str: ...


@dataclass
class _Acc:
    entry: EntryLike
    flt: PrivacyFilter | None
    state: FilterState | None
    spent: str = "0"
    spends: list[SpendPoint] = field(default_factory=list)
    refusals: list[RefusalRow] = field(default_factory=list)
    releases: list[ReleaseRow] = field(default_factory=list)
    audits: list[AuditRow] = field(default_factory=list)
    admitted: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)


def _text(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key, default)
    return default if value is None else str(value)


def _filter_for(payload: Mapping[str, Any]) -> tuple[PrivacyFilter | None, FilterState | None]:
    budget = payload.get("budget") or {}
    try:
        flt = PrivacyFilter(float(budget["epsilon_total"]), float(budget["delta_total"]))
    except (KeyError, TypeError, ValueError, DPError):
        return None, None
    return flt, flt.empty_state()


def _events(payload: Mapping[str, Any]) -> tuple[DpEvent, ...]:
    return tuple(event_from_json(obj) for obj in payload.get("events", ()))


def _spend(acc: _Acc, entry: EntryLike) -> None:
    p = entry.payload
    cumulative = acc.spent
    if acc.flt is not None and acc.state is not None:
        try:
            decision = acc.flt.decide(acc.state, _events(p))
            acc.state = decision.new_state
            cumulative = f"{float(decision.epsilon_spent):.6g}"
        except DPError:
            cumulative = "unknown"
    acc.spent = cumulative
    filt = p.get("filter") or {}
    acc.spends.append(
        SpendPoint(
            seq=entry.seq,
            timestamp=entry.timestamp,
            requester=_text(p, "requester", entry.actor),
            purpose=_text(p, "purpose"),
            engine=_text(p, "engine") or _text(p, "query_kind"),
            epsilon=_text(p, "epsilon"),
            delta=_text(p, "delta"),
            cumulative_epsilon=cumulative,
            accounting=_text(p, "accounting"),
            filter_rule=_text(filt, "rule"),
            events=tuple(dict(e) for e in p.get("events", ())),
        )
    )
    acc.admitted[(_text(p, "requester", entry.actor), _text(p, "purpose"))] += 1


def _refusal(acc: _Acc, entry: EntryLike) -> None:
    p = entry.payload
    acc.refusals.append(
        RefusalRow(
            seq=entry.seq,
            timestamp=entry.timestamp,
            requester=_text(p, "requester", entry.actor),
            purpose=_text(p, "purpose"),
            reason=_text(p, "reason"),
            epsilon_requested=_text(p, "epsilon"),
            epsilon_remaining=_text(p, "epsilon_remaining"),
        )
    )
    acc.refused[(_text(p, "requester", entry.actor), _text(p, "purpose"))] += 1


def _release(acc: _Acc, entry: EntryLike) -> None:
    p = entry.payload
    spend_seq = p.get("spend_seq")
    acc.releases.append(
        ReleaseRow(
            seq=entry.seq,
            timestamp=entry.timestamp,
            sha256=_text(p, "sha256"),
            rows=int(p.get("rows") or 0),
            engine=_text(p, "engine"),
            spend_seq=int(spend_seq) if isinstance(spend_seq, int) else None,
        )
    )


def _audit(acc: _Acc, entry: EntryLike) -> None:
    p = entry.payload
    report = p.get("report") or {}
    summary = {k: report[k] for k in _AUDIT_FIGURES if isinstance(report, Mapping) and k in report}
    acc.audits.append(
        AuditRow(
            seq=entry.seq,
            timestamp=entry.timestamp,
            release=_text(p, "release"),
            verdict=_text(p, "verdict"),
            summary=summary,
        )
    )


_HANDLERS = {"spend/v1": _spend, "refusal/v1": _refusal, "release/v1": _release, "audit/v1": _audit}


def _section(name: str, acc: _Acc) -> DatasetSection:
    p = acc.entry.payload
    budget = p.get("budget") or {}
    keys = sorted(set(acc.admitted) | set(acc.refused))
    return DatasetSection(
        dataset=name,
        registered_seq=acc.entry.seq,
        registered_at=acc.entry.timestamp,
        registered_by=acc.entry.actor,
        columns=tuple({"name": str(c.get("name")), "kind": str(c.get("kind"))} for c in p.get("columns", ())),
        privacy_unit=dict(p.get("privacy_unit") or {}),
        epsilon_total=_text(budget, "epsilon_total"),
        delta_total=_text(budget, "delta_total"),
        epsilon_spent=acc.spent,
        spends=tuple(acc.spends),
        refusals=tuple(acc.refusals),
        releases=tuple(acc.releases),
        audits=tuple(acc.audits),
        requests=tuple(
            PrincipalPurposeRow(who, why, acc.admitted[(who, why)], acc.refused[(who, why)])
            for who, why in keys
        ),
    )


def build_report(
    entries: Iterable[EntryLike],
    *,
    checkpoint: str,
    tree_size: int,
    root_hash: str,
    controller: ControllerInfo | None = None,
) -> ComplianceReport:
    """Fold ``entries`` (in ledger order, up to the checkpoint) into a compliance report.

    The cumulative epsilon of each dataset is recomputed from the recorded events by the same privacy
    filter the gateway admits with, so a report cannot disagree with the ledger's own history.
    """
    datasets: dict[str, _Acc] = {}
    other: Counter[str] = Counter()
    orphans: defaultdict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.kind == "dataset.registered/v1":
            name = _text(entry.payload, "dataset")
            flt, state = _filter_for(entry.payload)
            datasets[name] = _Acc(entry=entry, flt=flt, state=state)
            continue
        handler = _HANDLERS.get(entry.kind)
        name = _text(entry.payload, "dataset")
        if handler is None:
            other[entry.kind] += 1
        elif name in datasets:
            handler(datasets[name], entry)
        else:
            orphans[entry.kind] += 1
    other.update({f"{kind} (unknown dataset)": n for kind, n in orphans.items()})
    return ComplianceReport(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        checkpoint=checkpoint,
        tree_size=tree_size,
        root_hash=root_hash,
        controller=controller or ControllerInfo(),
        datasets=tuple(_section(name, acc) for name, acc in datasets.items()),
        other_entries=dict(sorted(other.items())),
    )
