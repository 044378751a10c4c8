"""Audits of an *external* table (made by another tool) against a registered dataset.

An external table was not generated under the dataset's audit design: its generator may have seen any
of the registered rows, including the gateway's holdout and the audit pool's non-members (whose split is
private to the gateway). What stays meaningful:

* **verbatim copies vs the natural duplicate rate** (``copy check``): the share of external rows equal
  to some registered row, against the share of registered rows equal to another registered row (what a
  fresh sample of the population shows by chance). Valid whatever the generator saw; Fisher's exact
  test, one-sided.
* **near copies vs natural nearest-neighbour distances** (``near-copy check``, :func:`near_copy_check`):
  external rows nearer to the registered rows than 99% of real rows are to each other, against held-out
  real rows (numbers as z-scores, so a small jitter stays near). Catches jittered copies; valid whatever
  the generator saw (a generator that only makes very typical rows could raise it).
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
import numpy.typing as npt
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
    "NearCopyCheck",
    "copy_check",
    "near_copy_check",
    "run_external_audit",
]

EXTERNAL_SCOPE = "external-table/v1"

#: What an external audit's figures mean (shown with every result).
MEANINGFUL: tuple[str, ...] = (
    "copy check: external rows equal to a registered row vs the natural duplicate rate of the registered "
    "table (valid whatever data the external tool saw)",
    "near-copy check: external rows closer to the registered rows than 99% of real rows are to each other "
    "(split-half nearest-neighbour distances; valid whatever data the external tool saw)",
    "membership comparison on the registration split (training vs never-seen rows): a significant signal "
    "means the table depends on which rows are in the gateway's training split (false-alarm rate <= alpha)",
)
CAVEATS: tuple[str, ...] = (
    "the external table was not generated under this dataset's audit design: the membership attacks have "
    "power only if its generator never saw the gateway's holdout rows, which are private to the gateway; "
    "a generator trained on the whole table makes every row a member, so 'no signal' is INCONCLUSIVE",
    "the epsilon lower bound refutes a claimed epsilon only under that same assumption",
    "the internal power figure measures copying of training-split rows only",
    "the near-copy check compares with real rows' distances to each other: a generator that only makes "
    "very typical rows can look near without copying",
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
class NearCopyCheck:
    """External rows nearer to registered rows than real rows are to each other (split halves)."""

    quantile: float
    external_rows: int
    near_share: float  # the larger of the two halves' shares of near external rows
    natural_share: float  # the same share among held-out real rows (what a fresh sample shows)
    fisher_p: float  # the smaller of the two one-sided Fisher tests, times 2 (Bonferroni)


def _z_embedding(encoder: MixedEncoder, df: pd.DataFrame, reference: pd.DataFrame) -> npt.NDArray[np.float32]:
    """The audit embedding with numbers as z-scores (the reference's mean and std) instead of ranks.

    Ranks make a small jitter of a zero-inflated column (capital gains) a large move; z-scores keep
    a near copy near. One unit of distance is still about one differing categorical column.
    """
    emb = encoder.encode(df).embedding.copy()
    for sl in encoder.slices:
        if sl.kind != "numeric":
            continue
        ref = pd.to_numeric(reference[sl.name], errors="coerce").to_numpy(dtype=np.float64)
        ref = ref[np.isfinite(ref)]
        mean, std = (float(ref.mean()), float(ref.std())) if ref.size else (0.0, 1.0)
        x = pd.to_numeric(df[sl.name], errors="coerce").to_numpy(dtype=np.float64)
        z = np.where(np.isfinite(x), (np.nan_to_num(x) - mean) / (std if std > 0 else 1.0), 0.0)
        emb[:, sl.start] = np.clip(z, -50.0, 50.0).astype(np.float32)
    return emb


def near_copy_check(
    registered: pd.DataFrame,
    external: pd.DataFrame,
    schema: DatasetSchema,
    *,
    seed: int,
    quantile: float = 0.01,
    max_rows: int = 10_000,
) -> NearCopyCheck | None:
    """The split-half near-copy test (None when the schema has no tabular column or too few rows).

    The registered rows are split at random into halves A and B, and B into B1 and B2. The cut is the
    ``quantile`` of B1's distances to A; the share of external rows nearer to A than the cut is
    compared (Fisher, one-sided) with the share of B2's real rows nearer than the cut: B2 rows are
    fresh draws for A, so the test is exact under "the external rows are drawn independently of the
    registered rows". The same with A and B swapped catches copies of B's rows; Bonferroni over both.
    At most ``max_rows`` external rows (a random subsample) are tested.
    """
    from scipy.stats import fisher_exact

    from safesynth.gateway.audit.distances import scan

    encoder = MixedEncoder(schema, registered, [registered, external])
    if not encoder.slices or len(registered) < 8 or len(external) == 0:
        return None
    gen = np.random.default_rng(seed)
    if len(external) > max_rows:  # a random subsample keeps the test valid and bounds its cost
        external = external.iloc[np.sort(gen.choice(len(external), max_rows, replace=False))]
    reg = _z_embedding(encoder, registered, registered)
    ext = _z_embedding(encoder, external, registered)
    order = gen.permutation(reg.shape[0])
    half = reg.shape[0] // 2
    parts = (order[:half], order[half:])
    shares: list[tuple[float, float, float]] = []
    for base_idx, other_idx in (parts, parts[::-1]):
        base, other = reg[base_idx], reg[other_idx]
        q_part, test_part = other[: other.shape[0] // 2], other[other.shape[0] // 2 :]
        cut = float(np.quantile(scan(q_part, base, bandwidth=1.0).nearest_distance, quantile))
        k_ext = int((scan(ext, base, bandwidth=1.0).nearest_distance < cut).sum())
        k_nat = int((scan(test_part, base, bandwidth=1.0).nearest_distance < cut).sum())
        n_ext, n_nat = ext.shape[0], test_part.shape[0]
        _, p = fisher_exact([[k_ext, n_ext - k_ext], [k_nat, n_nat - k_nat]], alternative="greater")
        shares.append((k_ext / n_ext, k_nat / n_nat, float(p)))
    best = min(shares, key=lambda t: t[2])
    return NearCopyCheck(
        quantile=quantile,
        external_rows=int(ext.shape[0]),
        near_share=max(t[0] for t in shares),
        natural_share=best[1],
        fisher_p=min(1.0, 2.0 * best[2]),
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
    near: NearCopyCheck | None
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
            "near_copy_check": None if self.near is None else asdict(self.near),
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
    near = near_copy_check(registered, table, schema, seed=design.attack_seed)
    near_p = 1.0 if near is None else near.fisher_p
    p = min(1.0, 3.0 * min(membership.combined_p, copies.fisher_p, near_p))
    if membership.rule == "pool-too-small":
        verdict, rule, reason = Verdict.INCONCLUSIVE, membership.rule, membership.reason
    elif membership.rule == "dp-claim-refuted":
        verdict, rule = Verdict.FAIL, "claimed-epsilon-refuted"
        reason = membership.reason + " (valid if the external tool never saw the gateway's holdout rows)"
    elif p <= opts.alpha_fail and copies.fisher_p <= min(membership.combined_p, near_p):
        verdict, rule = Verdict.FAIL, "verbatim-copies"
        reason = (
            f"{copies.copy_share:.2%} of the external rows equal a registered row, against a natural "
            f"duplicate rate of {copies.natural_duplicate_share:.2%} (combined p-value {p:.3g})"
        )
    elif p <= opts.alpha_fail and near is not None and near_p <= membership.combined_p:
        verdict, rule = Verdict.FAIL, "near-copies"
        reason = (
            f"{near.near_share:.2%} of the external rows are nearer to registered rows than 99% of real rows "
            f"are to each other (real rows: {near.natural_share:.2%}; combined p-value {p:.3g})"
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
            f"no copying or near-copying beyond real rows' own rates and no dependence on the training split "
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
        near=near,
        claimed_epsilon=claimed_epsilon,
        ignored_columns=ignored,
    )
