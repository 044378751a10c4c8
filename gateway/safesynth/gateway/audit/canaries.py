"""Canary audits: a separate, audit-only engine run that makes the one-run epsilon lower bound meaningful.

A release audit's lower bound uses real pool records, which a DP engine barely depends on: the bound
stays near 0 whatever the engine does. Canaries are *synthetic, atypical* records made from the public
schema only (never from private data): unseen category tokens, numeric values spread over the public
bounds, random text tokens. Each canary enters the engine's input independently with probability 1/2
(Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run"); the engine runs once on
the training rows plus the included canaries; each canary is scored by how closely the output
reproduces it; the number of correct "included" guesses gives an epsilon lower bound, compared with the
accountant's epsilon. A lower bound above it refutes the DP claim (a broken mechanism or engine).

Privacy: the canary run reads the private training rows, so the service charges it like any synthesis
(the plan's cost, through the same admission); its output is never released. The scoring reads only the
canaries, the coins and the engine's (DP) output, never a private row: the figures published are
post-processing of that DP output and cost nothing beyond the charge.

The design (canaries, coins, salt) is committed with a salted SHA-256 before the engine runs, as for the
audit pool; :meth:`CanaryDesign.to_ledger_json` has only public parts (commitment, count, probability).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.audit.encoding import _canon_series, check_columns
from safesynth.gateway.audit.errors import DesignMismatch, InvalidAuditInput
from safesynth.gateway.audit.report import EpsilonBound, Verdict, _clean, _decimals
from safesynth.gateway.audit.stats import auc_delong, tpr_at_fpr
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

if TYPE_CHECKING:
    from safesynth.gateway.engines.base import Engine, EngineContext, Plan

__all__ = [
    "CANARY_DESIGN_VERSION",
    "CANARY_REPORT_VERSION",
    "CanaryAuditReport",
    "CanaryDesign",
    "canary_scores",
    "make_canaries",
    "make_canary_design",
    "run_canary_audit",
    "score_canary_audit",
    "with_canaries",
]

CANARY_DESIGN_VERSION = "canary-design/v1"
CANARY_REPORT_VERSION = "canary-audit/v1"
_DOMAIN = b"safesynth/canary-design/v1\x00"
_TOKEN_PREFIX = "cnry"  # noqa: S105 (a marker in canary values, not a secret)
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _hex(gen: np.random.Generator, n: int = 10) -> str:
    return "".join(f"{int(b):02x}" for b in gen.integers(0, 256, size=(n + 1) // 2))[:n]


def _numeric_value(spec: ColumnSpec, gen: np.random.Generator) -> float:
    if spec.lower is not None and spec.upper is not None:
        # Uniform over the public range: spread out, so that no two canaries (or a canary and a real
        # row) share every value by chance; the combination with fresh tokens makes them atypical.
        value = spec.lower + float(gen.random()) * (spec.upper - spec.lower)
    elif spec.lower is not None:
        value = spec.lower + float(10 ** gen.uniform(0.0, 6.0))
    elif spec.upper is not None:
        value = spec.upper - float(10 ** gen.uniform(0.0, 6.0))
    else:  # no public scale: a spread of magnitudes, both signs
        value = float(gen.choice([-1.0, 1.0]) * 10 ** gen.uniform(0.0, 6.0))
    if spec.integer:
        value = float(math.floor(value)) if spec.upper is None else float(min(math.floor(value), spec.upper))
        if spec.lower is not None:
            value = max(value, math.ceil(spec.lower))
    return value


def make_canaries(schema: DatasetSchema, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` atypical records from the public ``schema`` alone (no private data is read).

    Categorical: a fresh token (or, with public categories, a uniformly random category, so that the
    combination is rare); numeric: uniform over the public bounds (or of random magnitude); text: random
    tokens; identifier and person columns: a fresh unique id. Every canary is distinct.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InvalidAuditInput("n_canaries must be an integer >= 2", detail={"parameter": "n_canaries"})
    person = schema.privacy_unit.person_column
    columns: dict[str, list[Any]] = {}
    for spec in schema.columns:
        values: list[Any] = []
        for i in range(n):
            if spec.name == person or spec.kind is ColumnKind.IDENTIFIER:
                if spec.kind is ColumnKind.NUMERIC:
                    values.append(float(10**12 + i))
                else:
                    values.append(f"{_TOKEN_PREFIX}-id-{i}-{_hex(rng, 12)}")
            elif spec.kind is ColumnKind.CATEGORICAL:
                if spec.categories:
                    values.append(spec.categories[int(rng.integers(0, len(spec.categories)))])
                else:
                    values.append(f"{_TOKEN_PREFIX}-{_hex(rng, 10)}")
            elif spec.kind is ColumnKind.NUMERIC:
                values.append(_numeric_value(spec, rng))
            else:  # text
                words = " ".join(f"{_TOKEN_PREFIX}{_hex(rng, 8)}" for _ in range(8))
                limit = spec.max_length or len(words)
                values.append(words[:limit])
        columns[spec.name] = values
    out = pd.DataFrame(columns)
    for spec in schema.columns:
        if spec.kind is ColumnKind.NUMERIC:
            out[spec.name] = out[spec.name].astype("float64")
        else:
            out[spec.name] = out[spec.name].astype("object")
    return out


def _commitment(salt: bytes, canaries: pd.DataFrame, inclusion: B) -> str:
    body = json.dumps(
        {
            "canaries": json.loads(canaries.to_json(orient="split", index=False, double_precision=15)),
            "inclusion": "".join("1" if b else "0" for b in inclusion),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(_DOMAIN + salt + body).hexdigest()


@dataclass(frozen=True, eq=False)
class CanaryDesign:
    """Canaries and their inclusion coins. Private: ``canaries``, ``inclusion``, ``salt``."""

    canaries: pd.DataFrame
    inclusion: B
    salt: bytes
    tiebreak_seed: int
    commitment: str = field(default="")
    version: str = CANARY_DESIGN_VERSION

    def __post_init__(self) -> None:
        inclusion = np.array(self.inclusion, dtype=np.bool_, copy=True)
        inclusion.setflags(write=False)
        object.__setattr__(self, "inclusion", inclusion)
        if inclusion.shape != (len(self.canaries),):
            raise DesignMismatch("canaries and inclusion coins have different lengths")
        expected = _commitment(self.salt, self.canaries, inclusion)
        if not self.commitment:
            object.__setattr__(self, "commitment", expected)
        elif not hmac.compare_digest(self.commitment, expected):
            raise DesignMismatch("the commitment does not match the canary design")

    @property
    def n(self) -> int:
        """Number of canaries."""
        return len(self.canaries)

    @property
    def included(self) -> pd.DataFrame:
        """The canaries that go into the engine's input."""
        return self.canaries[self.inclusion]

    def to_ledger_json(self) -> dict[str, Any]:
        """Public parts, for the ``audit.design/v1`` ledger entry (no canaries, coins or salt)."""
        return {
            "version": self.version,
            "commitment": {"scheme": "sha256(domain || salt32 || canonical-json)", "digest": self.commitment},
            "n_canaries": self.n,
            "inclusion_probability": "0.5",
            "source": "public schema only",
        }

    def to_private_json(self) -> dict[str, Any]:
        """Everything (the gateway's private state; never the ledger or a client)."""
        return {
            **self.to_ledger_json(),
            "canaries": json.loads(self.canaries.to_json(orient="split", index=False, double_precision=15)),
            "dtypes": {str(c): str(t) for c, t in self.canaries.dtypes.items()},
            "inclusion": "".join("1" if b else "0" for b in self.inclusion),
            "salt": self.salt.hex(),
            "tiebreak_seed": self.tiebreak_seed,
        }

    @classmethod
    def from_private_json(cls, obj: dict[str, Any]) -> CanaryDesign:
        """Inverse of :meth:`to_private_json` (checks the commitment)."""
        try:
            split = obj["canaries"]
            frame = pd.DataFrame(split["data"], columns=split["columns"])
            for name, dtype in obj["dtypes"].items():
                frame[name] = frame[name].astype(dtype)
            return cls(
                canaries=frame,
                inclusion=np.asarray([c == "1" for c in obj["inclusion"]], dtype=np.bool_),
                salt=bytes.fromhex(obj["salt"]),
                tiebreak_seed=int(obj["tiebreak_seed"]),
                commitment=str(obj["commitment"]["digest"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DesignMismatch(f"malformed canary design: {exc}") from exc


def make_canary_design(
    schema: DatasetSchema, n_canaries: int = 500, *, rng: np.random.Generator | None = None
) -> CanaryDesign:
    """Canaries from the public schema and fair inclusion coins (OS CSPRNG unless ``rng``; tests only)."""
    if isinstance(n_canaries, bool) or not isinstance(n_canaries, int) or not 10 <= n_canaries <= 10_000:
        raise InvalidAuditInput("n_canaries must be in [10, 10000]", detail={"parameter": "n_canaries"})
    gen = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    canaries = make_canaries(schema, n_canaries, gen)
    inclusion = gen.random(n_canaries) < 0.5
    return CanaryDesign(
        canaries=canaries,
        inclusion=inclusion,
        salt=secrets.token_bytes(32),
        tiebreak_seed=int(gen.integers(0, 2**31 - 1)),
    )


def with_canaries(train: pd.DataFrame, design: CanaryDesign) -> pd.DataFrame:
    """The engine's input of the canary run: ``train`` plus the included canaries (new index labels)."""
    extra = design.included.copy()
    start = int(train.index.max()) + 1 if len(train) and pd.api.types.is_integer_dtype(train.index) else 0
    extra.index = pd.RangeIndex(start, start + len(extra))
    cols = [c for c in train.columns]
    missing = [c for c in cols if c not in extra.columns]
    if missing:
        raise InvalidAuditInput(f"canaries lack columns {missing}", detail={"parameter": "train"})
    out = pd.concat([train, extra[cols].astype({c: train[c].dtype for c in cols}, errors="ignore")])
    if len(train) and not pd.api.types.is_integer_dtype(train.index):
        out = out.reset_index(drop=True)
    return out


def _tokens(text: object) -> set[str]:
    if not isinstance(text, str):
        return set()
    return {t for t in text.lower().split() if t}


def canary_scores(canaries: pd.DataFrame, synthetic: pd.DataFrame, schema: DatasetSchema) -> F64:
    """How closely the output reproduces each canary (higher: more likely included).

    Per canary: the largest number of matching tabular columns over the output's rows (categorical equal;
    numeric in the same cell of
    width 0.1% of the column's spread over canaries and output), plus, per text column, the share
    of the canary's tokens found anywhere in the output's text. Reads no private rows.
    """
    m = len(canaries)
    if m == 0:
        return np.zeros(0)
    skip = {schema.privacy_unit.person_column}
    tab = [
        s
        for s in schema.columns
        if s.kind in (ColumnKind.CATEGORICAL, ColumnKind.NUMERIC)
        and s.name not in skip
        and s.name in synthetic
    ]
    texts = [s for s in schema.columns if s.kind is ColumnKind.TEXT and s.name in synthetic]
    score = np.zeros(m)
    if tab and len(synthetic):
        can_codes = np.zeros((m, len(tab)), dtype=np.int64)
        syn_codes = np.zeros((len(synthetic), len(tab)), dtype=np.int64)
        for j, spec in enumerate(tab):
            if spec.kind is ColumnKind.CATEGORICAL:
                both = pd.Index(
                    np.concatenate([_canon_series(canaries[spec.name]), _canon_series(synthetic[spec.name])])
                )
                codes, _ = pd.factorize(both)
                can_codes[:, j], syn_codes[:, j] = codes[:m], codes[m:]
            else:
                c = pd.to_numeric(canaries[spec.name], errors="coerce").to_numpy(dtype=np.float64)
                s = pd.to_numeric(synthetic[spec.name], errors="coerce").to_numpy(dtype=np.float64)
                allv = np.concatenate([c, s])
                finite = allv[np.isfinite(allv)]
                spread = float(finite.max() - finite.min()) if finite.size else 1.0
                width = max(spread * 0.001, 1e-9)
                # a match is |a - b| <= width: compare both the floor cell and the nearest cell boundary
                can_codes[:, j] = np.where(np.isfinite(c), np.floor(np.nan_to_num(c) / width), -(2**62))
                syn_codes[:, j] = np.where(np.isfinite(s), np.floor(np.nan_to_num(s) / width), -(2**62) + 1)
        best = np.zeros(m)
        chunk = max(1, 2_000_000 // max(1, len(synthetic) * len(tab)))
        for start in range(0, m, chunk):
            block = can_codes[start : start + chunk]
            eq = (block[:, None, :] == syn_codes[None, :, :]).sum(axis=2)
            best[start : start + chunk] = eq.max(axis=1)
        score += best
    for spec in texts:
        vocab: set[str] = set()
        for t in synthetic[spec.name].tolist():
            vocab |= _tokens(t)
        for i, t in enumerate(canaries[spec.name].tolist()):
            toks = _tokens(t)
            if toks:
                score[i] += len(toks & vocab) / len(toks)
    return score


@dataclass(frozen=True)
class CanaryAuditReport:
    """The canary audit's aggregates (no canary, score or coin)."""

    verdict: Verdict
    rule: str
    reason: str
    design_commitment: str
    n_canaries: int
    n_included: int
    auc: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_10pct: float
    epsilon_bound: EpsilonBound
    accountant_epsilon: float
    delta: float
    synthetic_rows: int
    runtime_seconds: float
    notes: tuple[str, ...] = ()
    version: str = CANARY_REPORT_VERSION

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        out = asdict(self)
        out["verdict"] = str(self.verdict)
        out["notes"] = list(self.notes)
        cleaned: dict[str, Any] = _clean(out)
        return cleaned

    def to_ledger_json(self) -> dict[str, Any]:
        """The ``audit/v1`` payload's report: floats as decimal strings."""
        payload: dict[str, Any] = _decimals(self.to_json())
        return payload


def score_canary_audit(
    design: CanaryDesign,
    synthetic: pd.DataFrame,
    schema: DatasetSchema,
    *,
    accountant_epsilon: float,
    delta: float,
    confidence: float = 0.95,
    started: float | None = None,
) -> CanaryAuditReport:
    """Score the canaries against an engine's output and bound epsilon from below (one run)."""
    from safesynth.gateway.audit.runner import epsilon_lower_bound

    t0 = time.perf_counter() if started is None else started
    if not (math.isfinite(accountant_epsilon) and accountant_epsilon >= 0):
        raise InvalidAuditInput("accountant_epsilon must be finite and >= 0", detail={"parameter": "epsilon"})
    if not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise InvalidAuditInput("delta must be in [0, 1)", detail={"parameter": "delta"})
    labels = design.inclusion
    scores = canary_scores(design.canaries, synthetic, schema)
    notes: list[str] = []
    bound, note = epsilon_lower_bound(
        {"canary_match": scores},
        labels,
        accountant_epsilon=accountant_epsilon,
        delta=delta,
        confidence=confidence,
        rng=np.random.default_rng(design.tiebreak_seed),
    )
    if note:
        notes.append(note)
    if len(synthetic) == 0:
        notes.append("the engine's output is empty: nothing to score")
    auc, _ = auc_delong(scores, labels)
    t1, _, _ = tpr_at_fpr(scores, labels, 0.01)
    t10, _, _ = tpr_at_fpr(scores, labels, 0.10)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 < 2 or n0 < 2:
        verdict, rule = Verdict.INCONCLUSIVE, "too-few-canaries"
        reason = f"{n1} canaries were included and {n0} left out; at least 2 of each are needed"
    elif bound.value > accountant_epsilon:
        verdict, rule = Verdict.FAIL, "dp-claim-refuted"
        reason = (
            f"canary epsilon lower bound {bound.value:.3g} ({confidence:.0%} confidence) exceeds the "
            f"accountant's epsilon {accountant_epsilon:.3g}: the engine leaks more than it is charged for"
        )
    else:
        verdict, rule = Verdict.PASS, "bound-below-claim"
        reason = (
            f"canary epsilon lower bound {bound.value:.3g} <= the accountant's epsilon "
            f"{accountant_epsilon:.3g} ({n1 + n0} canaries; the largest bound this many canaries "
            f"can show is about {_max_bound(n1 + n0, confidence, delta):.3g})"
        )
    return CanaryAuditReport(
        verdict=verdict,
        rule=rule,
        reason=reason,
        design_commitment=design.commitment,
        n_canaries=design.n,
        n_included=n1,
        auc=auc,
        tpr_at_fpr_1pct=t1,
        tpr_at_fpr_10pct=t10,
        epsilon_bound=bound,
        accountant_epsilon=float(accountant_epsilon),
        delta=float(delta),
        synthetic_rows=len(synthetic),
        runtime_seconds=time.perf_counter() - t0,
        notes=tuple(notes),
    )


def _max_bound(m: int, confidence: float, delta: float) -> float:
    """The one-run bound if every one of ``m`` guesses were right (the audit's ceiling)."""
    from safesynth.gateway.audit.runner import GRID_TESTS_PER_ATTACK
    from safesynth.gateway.audit.stats import one_run_epsilon

    beta = (1.0 - confidence - 2.0 * m * delta) / GRID_TESTS_PER_ATTACK
    return one_run_epsilon(m, m, beta=beta) if beta > 0 else 0.0


def run_canary_audit(
    engine: Engine,
    plan: Plan,
    schema: DatasetSchema,
    train: pd.DataFrame,
    design: CanaryDesign,
    ctx: EngineContext,
    *,
    confidence: float = 0.95,
    progress: Callable[[str, float], None] | None = None,
) -> CanaryAuditReport:
    """Run ``engine`` on ``train`` plus the included canaries with ``plan``; score; discard the output.

    The caller must have charged ``plan`` (the run reads private data) and committed ``design`` first.
    """
    t0 = time.perf_counter()
    check_columns(train, schema, role="train")
    data = with_canaries(train, design)
    if progress is not None:
        progress("canary run", 0.0)
    output = engine.run(plan, schema, data, ctx)
    if progress is not None:
        progress("canary scoring", 0.9)
    return score_canary_audit(
        design,
        output.table,
        schema,
        accountant_epsilon=float(plan.cost.epsilon),
        delta=float(plan.cost.delta),
        confidence=confidence,
        started=t0,
    )
