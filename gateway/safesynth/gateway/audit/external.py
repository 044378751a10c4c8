"""Audits of an *external* table (made by another tool) against a registered dataset.

An external table was not generated under the dataset's audit design: its generator may have seen any
of the registered rows, including the gateway's holdout and the audit pool's non-members (whose split is
private to the gateway). What stays meaningful:

* **verbatim copies vs the natural duplicate rate** (``copy check``): the share of external rows equal
  to some registered row, against the share of registered rows equal to another registered row (what a
  fresh sample of the population shows by chance). Valid whatever the generator saw; Fisher's exact
  test, one-sided.
* **the membership comparison of the registration split** (every attack of :func:`run_audit`, members =
  training split, non-members = the never-seen rows): the membership coins are fair and the external
  tool never saw them, so a significant signal still means the table depends on *which* rows are in the
  gateway's training split (its false-alarm rate stays at most alpha). But it has **power only if the
  generator was trained without the gateway's holdout** rows: a tool trained on the whole table makes
  every row a member and the comparison cannot see its copying. A "no signal" result is therefore
  INCONCLUSIVE, never PASS.
* **a claimed epsilon** (optional, the external tool's own DP claim): the one-run lower bound refutes it
  only under the same assumption; it is reported, labelled so.

The result is labelled ``scope = "external-table/v1"`` with the lists of meaningful figures and caveats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from safesynth.gateway.audit.design import AuditDesign
from safesynth.gateway.audit.encoding import MixedEncoder, check_columns
from safesynth.gateway.audit.errors import InvalidAuditInput
from safesynth.gateway.audit.report import AuditReport, Verdict, _clean, _decimals
from safesynth.gateway.audit.runner import AuditOptions, run_audit
from safesynth.sdk.schema import DatasetSchema

__all__ = [
    "CAVEATS",
    "EXTERNAL_SCOPE",
    "MEANINGFUL",
    "CopyCheck",
    "ExternalAuditReport",
    "copy_check",
    "run_external_audit",
]

EXTERNAL_SCOPE = "external-table/v1"

#: What an external audit's figures mean (shown with every result).
MEANINGFUL: tuple[str, ...] = (
    "copy check: external rows equal to a registered row vs the natural duplicate rate of the registered "
    "table (valid whatever data the external tool saw)",
    "membership comparison on the registration split (training vs never-seen rows): a significant signal "
    "means the table depends on which rows are in the gateway's training split (false-alarm rate <= alpha)",
)
CAVEATS: tuple[str, ...] = (
    "the external table was not generated under this dataset's audit design: the membership attacks have "
    "power only if its generator never saw the gateway's holdout rows, which are private to the gateway; "
    "a generator trained on the whole table makes every row a member, so 'no signal' is INCONCLUSIVE",
    "the epsilon lower bound refutes a claimed epsilon only under that same assumption",
    "the internal power figure measures copying of training-split rows only",
    "near-copies (jittered rows) are not caught by the copy check; the distance attacks see them only "
    "under the assumption above",
)


@dataclass(frozen=True)
class CopyCheck:
    """External rows that equal a registered row, against the registered table's own duplicate rate."""

    external_rows: int
    external_copies: int
    copy_share: float
    registered_rows: int
    natural_duplicates: int
    natural_duplicate_share: float
    fisher_p: float


def copy_check(registered: pd.DataFrame, external: pd.DataFrame, schema: DatasetSchema) -> CopyCheck:
    """Verbatim copies of registered rows in ``external`` vs registered rows duplicated in ``registered``."""
    from scipy.stats import fisher_exact

    encoder = MixedEncoder(schema, registered, [registered, external])
    reg = encoder.encode(registered).row_hash
    ext = encoder.encode(external).row_hash
    counts = pd.Series(reg).value_counts().to_numpy()
    dup = int(counts[counts >= 2].sum())
    copies = int(np.isin(ext, reg).sum())
    n_ext, n_reg = len(ext), len(reg)
    if n_ext and n_reg:
        _, p = fisher_exact([[copies, n_ext - copies], [dup, n_reg - dup]], alternative="greater")
        p_value = float(p)
    else:
        p_value = 1.0
    return CopyCheck(
        external_rows=n_ext,
        external_copies=copies,
        copy_share=copies / n_ext if n_ext else 0.0,
        registered_rows=n_reg,
        natural_duplicates=dup,
        natural_duplicate_share=dup / n_reg if n_reg else 0.0,
        fisher_p=p_value,
    )


@dataclass(frozen=True)
class ExternalAuditReport:
    """An external table's audit: the split-based membership audit, the copy check, and a verdict."""

    verdict: Verdict
    rule: str
    reason: str
    combined_p: float
    membership: AuditReport
    copies: CopyCheck
    claimed_epsilon: float | None
    ignored_columns: tuple[str, ...] = ()
    scope: str = EXTERNAL_SCOPE
    meaningful: tuple[str, ...] = MEANINGFUL
    caveats: tuple[str, ...] = CAVEATS

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (aggregates only)."""
        out = {
            "scope": self.scope,
            "verdict": str(self.verdict),
            "rule": self.rule,
            "reason": self.reason,
            "combined_p": self.combined_p,
            "claimed_epsilon": self.claimed_epsilon,
            "copy_check": asdict(self.copies),
            "membership": self.membership.to_json(),
            "ignored_columns": list(self.ignored_columns),
            "meaningful": list(self.meaningful),
            "caveats": list(self.caveats),
        }
        cleaned: dict[str, Any] = _clean(out)
        return cleaned

    def to_ledger_json(self) -> dict[str, Any]:
        """The ``audit/v1`` report: the same aggregates, floats as decimal strings (no caveat texts)."""
        out = self.to_json()
        out.pop("meaningful")
        out.pop("caveats")
        payload: dict[str, Any] = _decimals(out)
        return payload


def run_external_audit(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    external: pd.DataFrame,
    schema: DatasetSchema,
    design: AuditDesign,
    claimed_epsilon: float | None = None,
    claimed_delta: float = 0.0,
    options: AuditOptions | None = None,
) -> ExternalAuditReport:
    """Audit ``external`` against the registered table's split (``split(table, design)``).

    Columns of ``external`` that the schema does not name are ignored (and listed); a missing schema
    column is :class:`ColumnsMismatch`. Raises :class:`AuditError` subclasses on bad input.
    """
    opts = options or AuditOptions()
    if not isinstance(external, pd.DataFrame):
        raise InvalidAuditInput("external must be a pandas DataFrame", detail={"parameter": "external"})
    if claimed_epsilon is not None and not (math.isfinite(claimed_epsilon) and claimed_epsilon >= 0):
        raise InvalidAuditInput("claimed_epsilon must be finite and >= 0", detail={"parameter": "epsilon"})
    known = {c.name for c in schema.columns}
    ignored = tuple(str(c) for c in external.columns if str(c) not in known)
    table = external[[c for c in external.columns if str(c) in known]]
    check_columns(table, schema, role="external")
    membership = run_audit(
        train=train,
        holdout=holdout,
        synthetic=table,
        schema=schema,
        design=design,
        accountant_epsilon=claimed_epsilon,
        delta=claimed_delta,
        options=opts,
    )
    registered = pd.concat([train, holdout])
    copies = copy_check(registered, table, schema)
    p = min(1.0, 2.0 * min(membership.combined_p, copies.fisher_p))
    if membership.rule == "pool-too-small":
        verdict, rule, reason = Verdict.INCONCLUSIVE, membership.rule, membership.reason
    elif membership.rule == "dp-claim-refuted":
        verdict, rule = Verdict.FAIL, "claimed-epsilon-refuted"
        reason = membership.reason + " (valid if the external tool never saw the gateway's holdout rows)"
    elif p <= opts.alpha_fail and copies.fisher_p <= membership.combined_p:
        verdict, rule = Verdict.FAIL, "verbatim-copies"
        reason = (
            f"{copies.copy_share:.2%} of the external rows equal a registered row, against a natural "
            f"duplicate rate of {copies.natural_duplicate_share:.2%} (combined p-value {p:.3g})"
        )
    elif p <= opts.alpha_fail:
        verdict, rule = Verdict.FAIL, "membership-signal"
        reason = (
            f"the table depends on which rows are in the gateway's training split (combined p-value {p:.3g};"
            f" strongest: {membership.permutation_top or 'exact match'})"
        )
    elif p <= opts.alpha_warn:
        verdict, rule = Verdict.WARN, "weak-signal"
        reason = f"combined p-value {p:.3g} <= {opts.alpha_warn}"
    else:
        verdict, rule = Verdict.INCONCLUSIVE, "external-no-signal"
        reason = (
            f"no verbatim copying beyond the natural duplicate rate and no dependence on the training split "
            f"(combined p-value {p:.3g}); the membership attacks have power only if the external tool never "
            "saw the gateway's holdout rows"
        )
    return ExternalAuditReport(
        verdict=verdict,
        rule=rule,
        reason=reason,
        combined_p=p,
        membership=membership,
        copies=copies,
        claimed_epsilon=claimed_epsilon,
        ignored_columns=ignored,
    )
