"""``run_audit``: every attack, the statistics, the verdict and the audit's measured power.

Verdict rules, in order (the first that fires is the report's ``rule``):

1. ``pool-too-small`` (INCONCLUSIVE): fewer than 2 pool members or non-members.
2. ``dp-claim-refuted`` (FAIL): the empirical epsilon lower bound exceeds the accountant's epsilon.
3. ``membership-signal`` (FAIL): combined p-value <= ``alpha_fail``. The combined p-value is the
   Bonferroni minimum of the permutation p-value over all attacks and the Fisher exact tests of
   verbatim copies (training vs never-seen rows). Under a release independent of the pool's
   membership (and of the holdout draw) it is a valid p-value, so the false-FAIL rate is <= alpha_fail.
4. ``weak-membership-signal`` (WARN): combined p-value <= ``alpha_warn``.
5. ``low-power`` (INCONCLUSIVE): the audit's power is below ``min_power``. Power is measured on an
   internal positive control: the same release with ``power_copy_fraction`` of the training rows added
   verbatim (pool members copied with that probability, the copy-sensitive attacks' scores updated,
   the others left as they are, which understates the power); it is the share of
   ``power_replicates`` such controls that rule 3 flags.
6. ``no-signal`` (PASS).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.audit import attacks as atk
from safesynth.gateway.audit import text_attacks as txt
from safesynth.gateway.audit.design import AuditDesign
from safesynth.gateway.audit.distances import scan
from safesynth.gateway.audit.encoding import EncodedTable, MixedEncoder, check_columns
from safesynth.gateway.audit.errors import DatasetTooSmall, DesignMismatch, InvalidAuditInput
from safesynth.gateway.audit.report import AttackResult, AuditReport, EpsilonBound, ExactMatchTest, Verdict
from safesynth.gateway.audit.risks import RiskEstimate, risk_from_rates, singling_out
from safesynth.gateway.audit.stats import (
    PermutationTest,
    StatColumn,
    advantage,
    auc_delong,
    clopper_pearson,
    cp_epsilon,
    one_run_epsilon,
    tpr_at_fpr,
)
from safesynth.sdk.schema import DatasetSchema

__all__ = ["GRID_TESTS_PER_ATTACK", "AuditOptions", "epsilon_lower_bound", "run_audit"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
_Z95 = 1.959963984540054
_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
#: Tests per attack in the epsilon lower bound (grid of guess fractions x 3 bounds; Bonferroni).
GRID_TESTS_PER_ATTACK = len(_GRID) * 3


@dataclass(frozen=True)
class AuditOptions:
    """Tunable thresholds and effort; the defaults are the gateway's policy."""

    alpha_fail: float = 0.01
    alpha_warn: float = 0.05
    min_power: float = 0.8
    power_copy_fraction: float = 0.05
    power_replicates: int = 20
    power_permutations: int = 199
    isolated_fraction: float = 0.1
    epsilon_confidence: float = 0.95
    max_secrets: int = 8
    singling_out_queries: int = 300
    threads: int | None = None


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _fisher(tm: int, tt: int, hm: int, ht: int) -> float:
    from scipy.stats import fisher_exact

    if tt == 0 or ht == 0:
        return 1.0
    _, p = fisher_exact([[tm, tt - tm], [hm, ht - hm]], alternative="greater")
    return float(p)


@dataclass
class _Scores:
    """Per-record scores of the pool (private to the run; never leaves this module)."""

    columns: dict[str, F64]
    copy_values: dict[str, F64]  # the score each record would get if copied verbatim


def _attack_result(name: str, subset: str, scores: F64, labels: B) -> AttackResult:
    auc, se = auc_delong(scores, labels)
    t1, k1, n1 = tpr_at_fpr(scores, labels, 0.01)
    t10, k10, _ = tpr_at_fpr(scores, labels, 0.10)
    lo1, hi1 = clopper_pearson(k1, n1, 0.05)
    lo10, hi10 = clopper_pearson(k10, n1, 0.05)
    return AttackResult(
        attack=name,
        subset=subset,
        n_members=int(labels.sum()),
        n_non_members=int((~labels).sum()),
        auc=auc,
        auc_low=max(0.0, auc - _Z95 * se),
        auc_high=min(1.0, auc + _Z95 * se),
        tpr_at_fpr_1pct=t1,
        tpr_at_fpr_1pct_low=lo1,
        tpr_at_fpr_1pct_high=hi1,
        tpr_at_fpr_10pct=t10,
        tpr_at_fpr_10pct_low=lo10,
        tpr_at_fpr_10pct_high=hi10,
        advantage=advantage(scores, labels),
    )


def _stat_columns(scores: dict[str, F64], isolated: B, labels: B) -> list[StatColumn]:
    everyone = np.ones(labels.size, dtype=np.bool_)
    cols = [StatColumn(name, s, everyone) for name, s in scores.items()]
    if labels[isolated].sum() >= 2 and (~labels[isolated]).sum() >= 2:
        cols += [StatColumn(f"{name}@isolated", s, isolated) for name, s in scores.items()]
    return cols


def epsilon_lower_bound(
    scores: dict[str, F64],
    labels: B,
    *,
    accountant_epsilon: float | None,
    delta: float,
    confidence: float,
    rng: np.random.Generator,
) -> tuple[EpsilonBound, str | None]:
    """The best epsilon lower bound over attacks and guess counts (Bonferroni over all of them).

    Guesses rank records by score (ties broken by ``rng``); returns the bound and a note (or None).
    """
    m = labels.size
    n1, n0 = int(labels.sum()), int((~labels).sum())
    beta = 1.0 - confidence
    tests = max(1, len(scores) * GRID_TESTS_PER_ATTACK)
    beta_each = (beta - 2.0 * m * delta) / tests
    best, method, best_attack = 0.0, "none", ""
    note = None
    if beta_each <= 0:
        note = "delta too large for an epsilon lower bound at this pool size"
    else:
        for name, s in scores.items():
            order = np.lexsort((rng.random(m), -s))
            for frac in _GRID:
                k = max(1, round(frac * m))
                top = order[:k]
                tp = int(labels[top].sum())
                candidates = [
                    (
                        one_run_epsilon(tp, k, beta=beta_each),
                        "one-run (Steinke et al. 2023), positive guesses",
                    ),
                    (cp_epsilon(tp, n1, k - tp, n0, beta=beta_each, delta=delta), "Clopper-Pearson TPR/FPR"),
                ]
                if 2 * k <= m:
                    correct = tp + int((~labels[order[-k:]]).sum())
                    candidates.append(
                        (
                            one_run_epsilon(correct, 2 * k, beta=beta_each),
                            "one-run (Steinke et al. 2023), both sides",
                        )
                    )
                for value, how in candidates:
                    if value > best:
                        best, method, best_attack = value, how, name
    return (
        EpsilonBound(
            value=best,
            confidence=confidence,
            method=method,
            attack=best_attack,
            accountant_epsilon=accountant_epsilon,
            delta=delta,
        ),
        note,
    )


def _isolated_mask(isolation: F64, fraction: float, rng: np.random.Generator) -> B:
    m = isolation.size
    k = max(1, math.ceil(fraction * m))
    order = np.lexsort((rng.random(m), -isolation))
    mask = np.zeros(m, dtype=np.bool_)
    mask[order[:k]] = True
    return mask


def run_audit(
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: DatasetSchema,
    design: AuditDesign,
    accountant_epsilon: float | None = None,
    delta: float = 0.0,
    options: AuditOptions | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> AuditReport:
    """Audit one release against the training rows and the never-seen rows.

    ``train`` and ``holdout`` are :func:`split` of the registered table (index = row position);
    ``synthetic`` is the release. ``accountant_epsilon``/``delta`` are the release's DP claim (None for
    a release without one). Raises :class:`AuditError` subclasses on bad input; returns aggregates only.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    opts = options or AuditOptions()
    t0 = time.perf_counter()
    if accountant_epsilon is not None and not (math.isfinite(accountant_epsilon) and accountant_epsilon >= 0):
        raise InvalidAuditInput(
            "accountant_epsilon must be finite and >= 0", detail={"parameter": "accountant_epsilon"}
        )
    if not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise InvalidAuditInput("delta must be in [0, 1)", detail={"parameter": "delta"})
    for role, df in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        if not isinstance(df, pd.DataFrame):
            raise InvalidAuditInput(f"{role} must be a pandas DataFrame", detail={"parameter": role})
        check_columns(df, schema, role=role)
    if len(synthetic) == 0:
        raise InvalidAuditInput("the release has no rows", detail={"parameter": "synthetic"})
    with threadpool_limits(limits=opts.threads or _cores()):
        return _run(train, holdout, synthetic, schema, design, accountant_epsilon, delta, opts, t0, progress)


def _locate_pool(
    train: pd.DataFrame, holdout: pd.DataFrame, design: AuditDesign
) -> tuple[pd.DataFrame, B, pd.DataFrame]:
    if not train.index.is_unique or not holdout.index.is_unique:
        raise DesignMismatch("train and holdout need unique indexes (the row positions from split())")
    members, non_members = design.members, design.non_members
    if not (
        train.index.isin(members).sum() == members.size
        and holdout.index.isin(non_members).sum() == non_members.size
    ):
        raise DesignMismatch(
            "the pool rows are not where the design puts them: pass split(table, design) unchanged"
        )
    if train.index.isin(non_members).any() or holdout.index.isin(members).any():
        raise DesignMismatch("a pool non-member is in the training data or a member in the holdout")
    pool_df = pd.concat([train.loc[members], holdout.loc[non_members]])
    labels = np.r_[np.ones(members.size, dtype=np.bool_), np.zeros(non_members.size, dtype=np.bool_)]
    reference = holdout[~holdout.index.isin(design.pool)]
    if len(reference) < 1:
        raise DatasetTooSmall("the reference holdout is empty")
    return pool_df, labels, reference


def _run(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: DatasetSchema,
    design: AuditDesign,
    accountant_epsilon: float | None,
    delta: float,
    opts: AuditOptions,
    t0: float,
    progress: Callable[[str, float], None] | None,
) -> AuditReport:
    def step(name: str, frac: float) -> None:
        if progress is not None:
            progress(name, frac)

    pool_df, labels, reference_df = _locate_pool(train, holdout, design)
    run = set(design.attacks)
    notes: list[str] = []
    rng = np.random.default_rng(design.attack_seed)
    step("encode", 0.0)
    encoder = MixedEncoder(schema, reference_df, [train, holdout, synthetic])
    enc_pool = encoder.encode(pool_df)
    enc_ref = encoder.encode(reference_df)
    enc_syn = encoder.encode(synthetic)
    enc_train = encoder.encode(train)
    enc_hold = encoder.encode(holdout)

    scores: dict[str, F64] = {}
    copy_values: dict[str, F64] = {}
    risks: list[RiskEstimate] = []
    exact: list[ExactMatchTest] = []
    text_overlap: dict[str, dict[str, float]] = {}
    isolation: F64 | None = None

    if encoder.slices:
        step("tabular attacks", 0.1)
        if "exact_match" in run:
            syn_hash = enc_syn.row_hash
            scores["exact_match"] = np.isin(enc_pool.row_hash, syn_hash).astype(np.float64)
            copy_values["exact_match"] = np.ones(enc_pool.n)
            tm = int(np.isin(enc_train.row_hash, syn_hash).sum())
            hm = int(np.isin(enc_hold.row_hash, syn_hash).sum())
            exact.append(
                ExactMatchTest(
                    column="<row>",
                    train_matched=tm,
                    train_total=enc_train.n,
                    holdout_matched=hm,
                    holdout_total=enc_hold.n,
                    fisher_p=_fisher(tm, enc_train.n, hm, enc_hold.n),
                    synthetic_copy_share=float(np.isin(syn_hash, enc_train.row_hash).mean()),
                )
            )
        pre = scan(enc_pool.embedding, enc_ref.embedding, bandwidth=1.0)
        d_ref = pre.nearest_distance
        isolation = d_ref
        h = max(float(np.median(d_ref)), 0.05)
        ref_scan = scan(enc_pool.embedding, enc_ref.embedding, bandwidth=h)
        cols = encoder.tabular_columns
        n_secrets = min(opts.max_secrets, len(cols)) if len(cols) >= 2 and "inference" in run else 0
        secret_names = sorted(rng.choice(cols, n_secrets, replace=False).tolist()) if n_secrets else []
        secret_slices = [s for s in encoder.slices if s.name in secret_names]
        split_cols = atk.link_split(encoder) if "linkability" in run else None
        syn_scan = scan(
            enc_pool.embedding, enc_syn.embedding, bandwidth=h, secrets=secret_slices, link_split=split_cols
        )
        c = 0.05 * h
        if "dcr" in run:
            scores["dcr"] = -syn_scan.nearest_distance
            copy_values["dcr"] = np.zeros(enc_pool.n)
        if "dcr_calibrated" in run:
            scores["dcr_calibrated"] = np.log(d_ref + c) - np.log(syn_scan.nearest_distance + c)
            copy_values["dcr_calibrated"] = np.log(d_ref + c) - math.log(c)
        if "domias_kde" in run:
            scores["domias_kde"] = syn_scan.log_density - ref_scan.log_density
        if "classifier" in run:
            step("classifier attack", 0.3)
            try:
                cs = atk.classifier_scores(encoder, enc_pool, enc_syn, enc_ref, seed=design.attack_seed)
            except ValueError as exc:  # a degenerate table scikit-learn refuses; the other attacks stand
                cs = None
                notes.append(f"classifier attack failed: {exc}")
            if cs is None:
                notes.append("classifier attack skipped: too few rows")
            else:
                scores["classifier"] = cs
        if secret_names:
            ok = atk.inference_success(encoder, enc_pool, enc_syn, syn_scan)
            base = atk.inference_baseline(encoder, enc_pool, enc_syn, secret_names, rng)
            stacked = np.column_stack([ok[c_] for c_ in secret_names])
            scores["inference"] = stacked.mean(axis=1)
            risks.append(
                risk_from_rates(
                    "inference",
                    stacked[labels].ravel(),
                    stacked[~labels].ravel(),
                    np.column_stack([base[c_] for c_ in secret_names])[labels].ravel(),
                )
            )
        link = atk.linkability_success(syn_scan)
        if link is not None:
            scores["linkability"] = link.astype(np.float64)
            base_link = rng.integers(0, enc_syn.n, size=int(labels.sum())) == rng.integers(
                0, enc_syn.n, size=int(labels.sum())
            )
            risks.append(risk_from_rates("linkability", link[labels], link[~labels], base_link))
        if "singling_out" in run:
            step("singling out", 0.45)
            so = singling_out(
                encoder, enc_syn, enc_train, enc_hold, n_queries=opts.singling_out_queries, rng=rng
            )
            if so is not None:
                risks.append(so)

    if encoder.text:
        step("text attacks", 0.5)
        for col in encoder.text:
            iso = _text_attacks(
                col,
                enc_pool,
                enc_ref,
                enc_syn,
                enc_train,
                enc_hold,
                run,
                scores,
                copy_values,
                exact,
                text_overlap,
                rng,
            )
            if isolation is None:
                isolation = iso

    if not scores:
        notes.append("no attack could run on this schema")
    isolated = _isolated_mask(
        isolation if isolation is not None else np.zeros(labels.size), opts.isolated_fraction, rng
    )
    step("statistics", 0.6)
    results: list[AttackResult] = []
    for name, s in scores.items():
        results.append(_attack_result(name, "all", s, labels))
        if labels[isolated].sum() >= 2 and (~labels[isolated]).sum() >= 2:
            results.append(_attack_result(name, "isolated", s[isolated], labels[isolated]))
    perm_rng = np.random.default_rng(design.permutation_seed)
    ptest = PermutationTest(labels, n_permutations=design.n_permutations, rng=perm_rng)
    columns = _stat_columns(scores, isolated, labels)
    p_perm, top = ptest.pvalue(columns) if columns else (1.0, "")
    fisher_ps = [e.fisher_p for e in exact]
    k_tests = 1 + len(fisher_ps)
    p_comb = min(1.0, k_tests * min([p_perm, *fisher_ps]))
    bound, note = epsilon_lower_bound(
        scores,
        labels,
        accountant_epsilon=accountant_epsilon,
        delta=delta,
        confidence=opts.epsilon_confidence,
        rng=np.random.default_rng(design.attack_seed + 1),
    )
    if note:
        notes.append(note)

    step("power", 0.75)
    power = _power(scores, copy_values, isolated, labels, exact, k_tests, opts, ptest, perm_rng)

    all_results = [r for r in results if r.subset == "all"]
    max_adv = max((r.advantage for r in all_results), default=0.0)
    max_auc = max((r.auc for r in all_results), default=0.5)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 < 2 or n0 < 2 or not scores:
        verdict, rule = Verdict.INCONCLUSIVE, "pool-too-small"
        reason = f"the audit pool has {n1} members and {n0} non-members; at least 2 of each are needed"
    elif accountant_epsilon is not None and bound.value > accountant_epsilon:
        verdict, rule = Verdict.FAIL, "dp-claim-refuted"
        reason = (
            f"empirical epsilon lower bound {bound.value:.3g} ({bound.confidence:.0%} confidence, "
            f"{bound.attack}) exceeds the accountant's epsilon {accountant_epsilon:.3g}"
        )
    elif p_comb <= opts.alpha_fail:
        verdict, rule = Verdict.FAIL, "membership-signal"
        strongest = top or "exact match"
        reason = f"combined membership p-value {p_comb:.3g} <= {opts.alpha_fail} (strongest: {strongest})"
    elif p_comb <= opts.alpha_warn:
        verdict, rule = Verdict.WARN, "weak-membership-signal"
        reason = f"combined membership p-value {p_comb:.3g} <= {opts.alpha_warn}"
    elif power < opts.min_power:
        verdict, rule = Verdict.INCONCLUSIVE, "low-power"
        reason = (
            f"no membership signal, but the audit detects {opts.power_copy_fraction:.0%} verbatim copying "
            f"only {power:.0%} of the time at this sample size (< {opts.min_power:.0%})"
        )
    else:
        verdict, rule = Verdict.PASS, "no-signal"
        reason = f"no membership signal (combined p-value {p_comb:.3g}); power {power:.0%}"
    step("done", 1.0)
    return AuditReport(
        verdict=verdict,
        rule=rule,
        reason=reason,
        design_commitment=design.commitment,
        sizes={
            "train": len(train),
            "holdout": len(holdout),
            "reference": len(reference_df),
            "synthetic": len(synthetic),
            "pool_members": n1,
            "pool_non_members": n0,
            "isolated": int(isolated.sum()),
        },
        attacks=tuple(results),
        risks=tuple(risks),
        exact_matches=tuple(exact),
        text_overlap=text_overlap,
        permutation_p=p_perm,
        permutation_top=top,
        combined_p=p_comb,
        max_advantage=max_adv,
        max_auc=max_auc,
        epsilon_bound=bound,
        power=power,
        power_definition=(
            f"share of {opts.power_replicates} internal positive controls ({opts.power_copy_fraction:.0%} of "
            f"training rows copied verbatim into this release) flagged at alpha {opts.alpha_fail}"
        ),
        thresholds={
            "alpha_fail": opts.alpha_fail,
            "alpha_warn": opts.alpha_warn,
            "min_power": opts.min_power,
            "power_copy_fraction": opts.power_copy_fraction,
        },
        runtime_seconds=time.perf_counter() - t0,
        notes=tuple(notes),
    )


def _text_attacks(
    col: str,
    pool: EncodedTable,
    ref: EncodedTable,
    syn: EncodedTable,
    train: EncodedTable,
    hold: EncodedTable,
    run: set[str],
    scores: dict[str, F64],
    copy_values: dict[str, F64],
    exact: list[ExactMatchTest],
    overlap: dict[str, dict[str, float]],
    rng: np.random.Generator,
) -> F64:
    p_txt, s_txt, r_txt = pool.texts[col], syn.texts[col], ref.texts[col]
    m = len(p_txt)
    if "text_exact" in run:
        scores[f"text_exact:{col}"] = txt.exact_in(p_txt, s_txt).astype(np.float64)
        copy_values[f"text_exact:{col}"] = np.ones(m)
        tr = [t for t in train.texts[col] if t]
        ho = [t for t in hold.texts[col] if t]
        tm, hm = int(txt.exact_in(tr, s_txt).sum()), int(txt.exact_in(ho, s_txt).sum())
        train_set = set(tr)
        exact.append(
            ExactMatchTest(
                column=col,
                train_matched=tm,
                train_total=len(tr),
                holdout_matched=hm,
                holdout_total=len(ho),
                fisher_p=_fisher(tm, len(tr), hm, len(ho)),
                synthetic_copy_share=float(np.mean([t in train_set for t in s_txt])) if s_txt else 0.0,
            )
        )
    grams = txt.ngram_set(s_txt)
    if "text_ngram" in run:
        scores[f"text_ngram:{col}"] = txt.ngram_overlap(p_txt, grams)
        copy_values[f"text_ngram:{col}"] = np.ones(m)

        def sample(texts: list[str]) -> list[str]:
            if len(texts) <= 5000:
                return texts
            return [texts[i] for i in rng.choice(len(texts), 5000, replace=False)]

        overlap[col] = {
            "train_ngram_overlap": float(txt.ngram_overlap(sample(train.texts[col]), grams).mean()),
            "holdout_ngram_overlap": float(txt.ngram_overlap(sample(hold.texts[col]), grams).mean())
            if hold.n
            else 0.0,
            "ngram": float(txt.NGRAM),
        }
    vp, vs, vr = txt.hashing_vectors(p_txt), txt.hashing_vectors(s_txt), txt.hashing_vectors(r_txt)
    sim_syn = txt.max_similarity(vp, vs)
    sim_ref = txt.max_similarity(vp, vr)
    nonempty = np.asarray([bool(t) for t in p_txt])
    if "text_nn" in run:
        scores[f"text_nn:{col}"] = sim_syn
        copy_values[f"text_nn:{col}"] = np.where(nonempty, 1.0, sim_syn)
    if "text_nn_calibrated" in run:
        scores[f"text_nn_calibrated:{col}"] = sim_syn - sim_ref
        copy_values[f"text_nn_calibrated:{col}"] = np.where(nonempty, 1.0 - sim_ref, sim_syn - sim_ref)
    return 1.0 - sim_ref


def _power(
    scores: dict[str, F64],
    copy_values: dict[str, F64],
    isolated: B,
    labels: B,
    exact: list[ExactMatchTest],
    k_tests: int,
    opts: AuditOptions,
    ptest: PermutationTest,
    rng: np.random.Generator,
) -> float:
    """Share of internal positive controls (verbatim copies added) that rule 3 would flag.

    The unchanged attacks' permutation statistics are reused from the main test (first
    ``power_permutations`` permutations); only the copy-sensitive attacks are recomputed.
    """
    if not scores or labels.sum() < 2 or (~labels).sum() < 2:
        return 0.0
    unchanged = _stat_columns({k: v for k, v in scores.items() if k not in copy_values}, isolated, labels)
    hits = 0
    for _ in range(opts.power_replicates):
        copied = labels & (rng.random(labels.size) < opts.power_copy_fraction)
        mod = {
            name: np.where(copied, np.maximum(scores[name], value), scores[name])
            for name, value in copy_values.items()
            if name in scores
        }
        p_perm, _ = ptest.pvalue(
            unchanged, changed=_stat_columns(mod, isolated, labels), rows=opts.power_permutations
        )
        ps = [p_perm]
        for e in exact:
            extra = int(rng.binomial(e.train_total - e.train_matched, opts.power_copy_fraction))
            ps.append(_fisher(e.train_matched + extra, e.train_total, e.holdout_matched, e.holdout_total))
        hits += min(1.0, k_tests * min(ps)) <= opts.alpha_fail
    return hits / opts.power_replicates
