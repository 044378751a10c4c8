"""Admission: charge a request's privacy events to a dataset's budget in ONE ledger transaction.

``admit`` appends a ``spend/v1`` entry whose ``check`` runs inside the ledger's ``BEGIN IMMEDIATE``
transaction: it brings the dataset's :class:`~safesynth.gateway.dp.filter.FilterState` up to date with
the spends appended since the cached state (so re-checking costs O(new entries), not O(history)),
asks the privacy filter, and raises :class:`~safesynth.gateway.dp.errors.BudgetExceeded` when the
events are not admitted, in which case nothing is appended. Concurrent requests (threads or
processes) are serialized by the transaction, so the committed spends are exactly a sequence the
filter admits. A refusal appends a ``refusal/v1`` entry and raises
:class:`~safesynth.gateway.service.errors.BudgetExhausted` carrying what remains. A spend is never refunded.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from safesynth.gateway.dp.accountant import PrivacyCost, compose
from safesynth.gateway.dp.errors import BudgetExceeded, InvalidParameter
from safesynth.gateway.dp.events import DpEvent, event_from_json
from safesynth.gateway.dp.filter import FilterState, PrivacyFilter
from safesynth.gateway.service.errors import BudgetExhausted
from safesynth.gateway.service.ledger_io import LockedLedger
from safesynth.ledger.entry import decimal_string

__all__ = ["Admission", "BudgetStatus", "SpendReceipt", "query_cost", "spend_events"]

SPEND = "spend/v1"
REFUSAL = "refusal/v1"


@dataclass(frozen=True)
class SpendReceipt:
    """An admitted spend: its ledger seq and what it cost."""

    seq: int
    epsilon: float
    delta: float
    rule: str
    epsilon_spent: float
    epsilon_remaining: float


@dataclass(frozen=True)
class BudgetStatus:
    """A dataset's budget as the filter sees the committed spends."""

    epsilon_total: float
    delta_total: float
    epsilon_spent: float
    delta_spent: float
    epsilon_remaining: float
    delta_remaining: float
    rule: str


#: A nominal delta for pure-DP requests (the accountant needs delta > 0; a pure cost spends none).
NOMINAL_DELTA = 1e-12
#: Methods for per-request costs: PLD is skipped (slow, and never better than "pure" for one request).
FAST_METHODS = ("gdp", "rdp", "pure", "basic")


_COSTS: dict[tuple[tuple[DpEvent, ...], float], PrivacyCost] = {}
_COSTS_LOCK = threading.Lock()
_COSTS_SIZE = 1024


def query_cost(events: Sequence[DpEvent], delta: float) -> PrivacyCost:
    """The accountant's cost of a request's events; a pure-DP result spends delta 0.

    A pure function of public inputs: memoized (repeated request shapes cost one composition).
    """
    key = (tuple(events), float(delta))
    try:
        with _COSTS_LOCK:
            cached = _COSTS.get(key)
    except TypeError:  # an unhashable event: compute every time
        return _query_cost(events, delta)
    if cached is None:
        cached = _query_cost(events, delta)
        with _COSTS_LOCK:
            _COSTS[key] = cached
            while len(_COSTS) > _COSTS_SIZE:
                _COSTS.pop(next(iter(_COSTS)))
    return cached


def _query_cost(events: Sequence[DpEvent], delta: float) -> PrivacyCost:
    d = delta if delta > 0 else NOMINAL_DELTA
    try:  # pure-DP requests: the exact sum of epsilons, no curve to evaluate
        cost = compose(list(events), delta=d, methods=("pure",))
    except InvalidParameter:
        try:
            cost = compose(list(events), delta=d, methods=FAST_METHODS)
        except InvalidParameter:  # a method that does not apply to this mix: the others still do
            cost = compose(list(events), delta=d, methods=("rdp", "pure", "basic"))
    if cost.method in ("pure", "empty"):
        return PrivacyCost(cost.epsilon, 0.0, cost.method, cost.terms, cost.candidates)
    return cost


def spend_events(payload: Mapping[str, Any]) -> list[DpEvent]:
    """The privacy events recorded in a ``spend/v1`` payload."""
    return [event_from_json(obj) for obj in payload.get("events", [])]


class Admission:
    """Admits events against per-dataset privacy filters, with a cache of filter states."""

    def __init__(self, ledger: LockedLedger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        # dataset -> (ledger size covered, state after every spend of the dataset below that size)
        self._cache: dict[str, tuple[int, FilterState]] = {}
        # spend_id -> filter state right after that spend (spends admitted by this process)
        self._after: dict[str, FilterState] = {}
        # dataset -> (ledger size right after, spend_id, state after) of the last spend checked here
        self._tail: dict[str, tuple[int, str, FilterState]] = {}
        # budget -> filter (building one precomputes its bound curves: reuse them)
        self._filters: dict[tuple[float, float], PrivacyFilter] = {}

    def filter(self, epsilon_total: float, delta_total: float) -> PrivacyFilter:
        """The (cached) privacy filter of a budget."""
        key = (float(epsilon_total), float(delta_total))
        with self._lock:
            flt = self._filters.get(key)
            if flt is None:
                flt = self._filters[key] = PrivacyFilter(*key)
            return flt

    # ------------------------------------------------------------------------------------ state
    def _cached(self, dataset: str, flt: PrivacyFilter) -> tuple[int, FilterState]:
        with self._lock:
            return self._cache.get(dataset) or (0, flt.empty_state())

    def _start(self, dataset: str, flt: PrivacyFilter, view: Any) -> tuple[int, FilterState]:
        """Where a check starts folding: the committed cache, or the state after the last spend of
        ``dataset`` this process checked, if that spend is in ``view`` (perhaps not yet committed:
        an earlier request of the same group commit).

        Without the second, the i-th request of a group commit would re-read the i - 1 entries
        before it (quadratic in the batch). The hint is used only after checking that the entry
        just before its size is that very spend (a rolled-back transaction leaves a hint whose
        spend is not there: it is then ignored).
        """
        size0, state = self._cached(dataset, flt)
        if size0 > view.size:  # a cache from another ledger: start over
            return 0, flt.empty_state()
        with self._lock:
            tail = self._tail.get(dataset)
        if tail is not None and size0 < tail[0] <= view.size:
            after, spend_id, tail_state = tail
            try:
                if view.payload_value(after - 1, "spend_id") == spend_id:
                    return after, tail_state
            except Exception:  # noqa: S110 - any doubt: fold from the committed cache instead
                pass
        return size0, state

    def _remember(self, dataset: str, size: int, state: FilterState) -> None:
        with self._lock:
            current = self._cache.get(dataset)
            if current is None or current[0] < size:
                self._cache[dataset] = (size, state)

    def _fold(
        self, flt: PrivacyFilter, state: FilterState, entries: Iterable[Any], dataset: str
    ) -> FilterState:
        """Add the spends of ``dataset`` among ``entries`` (already admitted) to ``state``.

        A spend this process admitted is looked up by its ``spend_id`` (the state after it does not
        depend on who folds it: the ledger is one sequence); others are re-decided.
        """
        for entry in entries:
            payload = entry.payload
            if payload.get("dataset") != dataset:
                continue
            with self._lock:
                after = self._after.get(str(payload.get("spend_id")))
            if after is not None:
                state = after
                continue
            decision = flt.decide(state, spend_events(payload))
            if not decision.admitted:
                # A committed spend the filter would not admit again (e.g. a budget recorded with a
                # different rule): refuse everything from now on rather than guess.
                raise BudgetExceeded("the dataset's recorded spends exceed its budget under the current rule")
            state = decision.new_state
        return state

    def state(self, dataset: str, flt: PrivacyFilter) -> FilterState:
        """The dataset's filter state over the committed ledger (outside any transaction)."""
        size0, state = self._cached(dataset, flt)
        size = self._ledger.size
        state = self._fold(flt, state, self._ledger.entries(start_seq=size0, kinds=[SPEND]), dataset)
        self._remember(dataset, size, state)
        return state

    def status(self, dataset: str, epsilon_total: float, delta_total: float) -> BudgetStatus:
        """Spent and remaining budget of ``dataset``."""
        flt = self.filter(epsilon_total, delta_total)
        state = self.state(dataset, flt)
        decision = flt.decide(state, ())
        delta_spent = float(getattr(state, "delta_spent", 0.0))
        return BudgetStatus(
            epsilon_total=epsilon_total,
            delta_total=delta_total,
            epsilon_spent=max(0.0, float(decision.epsilon_spent)),
            delta_spent=delta_spent,
            epsilon_remaining=max(0.0, float(decision.epsilon_remaining)),
            delta_remaining=max(0.0, delta_total - delta_spent),
            rule=decision.rule,
        )

    def would_admit(
        self, dataset: str, epsilon_total: float, delta_total: float, events: Sequence[DpEvent]
    ) -> tuple[bool, BudgetStatus]:
        """Dry run: would ``events`` be admitted now? (No ledger write.)"""
        flt = self.filter(epsilon_total, delta_total)
        decision = flt.decide(self.state(dataset, flt), tuple(events))
        status = self.status(dataset, epsilon_total, delta_total)
        if decision.admitted:
            delta_after = float(getattr(decision.new_state, "delta_spent", 0.0))
            status = BudgetStatus(
                epsilon_total,
                delta_total,
                status.epsilon_spent,
                status.delta_spent,
                max(0.0, float(decision.epsilon_remaining)),
                max(0.0, delta_total - delta_after),
                decision.rule,
            )
        return bool(decision.admitted), status

    # ------------------------------------------------------------------------------------ admit
    def admit(
        self,
        *,
        dataset: str,
        epsilon_total: float,
        delta_total: float,
        events: Sequence[DpEvent],
        delta: float,
        actor: str,
        details: Mapping[str, Any],
        cost: PrivacyCost | None = None,
    ) -> SpendReceipt:
        """Append the spend if the filter admits ``events``; else a refusal and BudgetExhausted.

        ``cost`` is the accountant's composition of ``events`` at ``delta`` (computed here if None);
        it is recorded for information: admission is the filter's decision.
        """
        flt = self.filter(epsilon_total, delta_total)
        events = tuple(events)
        if cost is None:
            cost = query_cost(events, delta)
        rule = str(getattr(flt, "rule", "")) or flt.decide(flt.empty_state(), ()).rule
        spend_id = secrets.token_hex(12)
        seen: dict[str, Any] = {}

        def check(view: Any) -> None:
            size0, state = self._start(dataset, flt, view)
            state = self._fold(flt, state, view.entries(start_seq=size0, kinds=[SPEND]), dataset)
            seen["size"], seen["state"] = view.size, state
            decision = flt.decide(state, events)
            seen["decision"] = decision
            if not decision.admitted:
                raise BudgetExceeded("the privacy filter does not admit these events")
            with self._lock:  # used only if this entry commits (its spend_id is unique)
                self._after[spend_id] = decision.new_state
                self._tail[dataset] = (view.size + 1, spend_id, decision.new_state)
                while len(self._after) > 10_000:
                    self._after.pop(next(iter(self._after)))

        payload: dict[str, Any] = {
            "dataset": dataset,
            "spend_id": spend_id,
            "events": [event.to_json() for event in events],
            "epsilon": decimal_string(float(cost.epsilon)),
            "delta": decimal_string(float(cost.delta)),
            "accounting": cost.method,
            "filter": {
                "rule": rule,
                "epsilon_total": decimal_string(epsilon_total),
                "delta_total": decimal_string(delta_total),
            },
            **dict(details),
        }
        try:
            result = self._ledger.append(SPEND, payload, actor=actor, check=check)
        except BudgetExceeded:
            # The refused check's state is NOT cached: it may include entries of the same group commit
            # that are not durable yet. Only committed spends (after a successful append) are cached.
            state = seen.get("state")
            decision = seen.get("decision")
            remaining_eps = max(0.0, float(decision.epsilon_remaining)) if decision is not None else 0.0
            spent_delta = float(getattr(state, "delta_spent", 0.0)) if state is not None else delta_total
            remaining_delta = max(0.0, delta_total - spent_delta)
            refusal = {
                "dataset": dataset,
                "events": payload["events"],
                "epsilon": payload["epsilon"],
                "delta": payload["delta"],
                "reason": "budget_exhausted",
                "filter": payload["filter"],
                "epsilon_remaining": decimal_string(remaining_eps),
                "delta_remaining": decimal_string(remaining_delta),
                **dict(details),
            }
            self._ledger.append(REFUSAL, refusal, actor=actor)
            raise BudgetExhausted(
                f"the budget of dataset {dataset!r} does not admit this request "
                f"(it would cost epsilon={float(cost.epsilon):.6g}; remaining: epsilon={remaining_eps:.6g}, "
                f"delta={remaining_delta:.3g}); nothing was spent",
                extra={"epsilon_remaining": remaining_eps, "delta_remaining": remaining_delta},
            ) from None
        decision = seen["decision"]
        self._remember(dataset, result.seq + 1, decision.new_state)
        return SpendReceipt(
            seq=result.seq,
            epsilon=float(cost.epsilon),
            delta=float(cost.delta),
            rule=decision.rule,
            epsilon_spent=float(decision.epsilon_spent),
            epsilon_remaining=max(0.0, float(decision.epsilon_remaining)),
        )
