"""The tabular engine: DP schema step, an MST-style tree model, sampling, text columns.

``plan`` (see :mod:`.planning`) fixes every mechanism from the public schema and the request.
``run`` then, in the plan's order:

1. bounds the privacy unit's contribution (``person`` units: at most ``max_rows_per_person`` rows each);
2. the DP row count (when ``rows`` is None);
3. the schema step: DP bounds (noisy histogram on a public log grid) and DP quantile bins (noisy
   histogram on a fine grid) for numeric columns without public facts; DP category selection
   (partition selection) for categorical columns without a public list. Unselected values become
   ``"__other__"``; nulls are a value of their own. A public category list is complete: ``"__other__"``
   is never produced for it, and a value outside it (which the schema says does not exist) counts as null;
4. noisy 1-way marginals (Gaussian), MST's domain compression;
5. by default (``model="adaptive"``), AIM-style rounds (exponential mechanism, then a Gaussian 2- or
   3-way marginal) growing a Bayesian network (:mod:`.adaptive`);
6. or, with ``model="tree"``, MST's spanning tree (n-1 exponential mechanisms on its independence-error
   scores) and noisy 2-way marginals on the tree's edges;
7. with option ``text_keywords`` > 0: per text column, a DP vocabulary (partition selection over
   words, each privacy unit contributing at most ``text_keywords``) that guides the prompts;
8. post-processing: the consistent tree model (or the adaptive network), sampling; for the adaptive
   network a final raking of the rows to every column's best 1-way estimate (its noisy 1-way and the
   margins of every measured table, :mod:`.raking`); numeric values drawn inside their bins (DP quantile
   bins and within-bin shape from the simplex projection of the noisy fine histogram, see
   :func:`.grids.within_bin_weights`), identifiers regenerated as opaque ids, text cells written by the
   local model from the synthetic row only.

Documented behaviour on odd data (no data-dependent refusal, so nothing leaks through an error):
an empty or one-row table is synthesized like any other (the output is then mostly noise, and with
``rows`` None the DP count may be 0: an empty table with the schema's columns); an all-null column
yields (almost) all nulls; NaN and unparsable numbers are nulls; +-inf are clamped to the bounds like
any out-of-range value; a column with very many distinct values keeps only the DP-selected ones.
Missing columns and unknown column kinds are typed errors, raised before anything is spent
(``validate_data`` and ``plan``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from safesynth.gateway.engines.base import (
    CodedColumn,
    DataMismatch,
    EngineContext,
    EngineOutput,
    ModelUnavailable,
    Plan,
    PlanMismatch,
    SynthesisRequest,
)
from safesynth.gateway.engines.tabular.adaptive import BayesNet, fit_adaptive
from safesynth.gateway.engines.tabular.domains import (
    CategoricalDomain,
    Compression,
    NumericDomain,
    compress,
    to_float,
)
from safesynth.gateway.engines.tabular.execution import NoiseBackend, PlannedMechanisms
from safesynth.gateway.engines.tabular.grids import (
    bounds_from_histogram,
    fine_grid,
    log_grid,
    project_histogram,
    quantile_bins,
    within_bin_weights,
)
from safesynth.gateway.engines.tabular.model import (
    Measurement,
    fit_tree_model,
    independence_scores,
    project_simplex,
    select_tree,
)
from safesynth.gateway.engines.tabular.options import TabularOptions, parse_options
from safesynth.gateway.engines.tabular.planning import (
    ENGINE_NAME,
    adaptive_rounds,
    column_roles,
    make_plan,
    schema_fingerprint,
)
from safesynth.gateway.engines.tabular.raking import combine_one_way, rake_rows
from safesynth.gateway.engines.tabular.text import keyword_counts, write_text_columns
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema

if TYPE_CHECKING:
    from safesynth.gateway.dp.rng import RandomSource

__all__ = ["TabularEngine", "bound_contributions"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Domain = CategoricalDomain | NumericDomain


def bound_contributions(data: pd.DataFrame, schema: DatasetSchema, gen: np.random.Generator) -> pd.DataFrame:
    """For a ``person`` privacy unit, keep at most ``max_rows_per_person`` random rows per person
    (rows with a null person id count as one person each). Row units pass through unchanged."""
    unit = schema.privacy_unit
    if unit.kind != "person" or unit.person_column is None:
        return data
    key = data[unit.person_column]
    order = gen.permutation(len(data))
    shuffled = data.iloc[order]
    skey = key.iloc[order]
    rank = shuffled.groupby(skey, dropna=True, sort=False).cumcount()
    keep = skey.isna() | (rank.reindex(shuffled.index) < unit.max_rows_per_person)
    return shuffled[keep.to_numpy()].sort_index()


class _Run:
    """One run's state (private; see ``TabularEngine.run``)."""

    def __init__(
        self,
        plan: Plan,
        schema: DatasetSchema,
        data: pd.DataFrame,
        ctx: EngineContext,
        noise: NoiseBackend | None,
    ) -> None:
        self.plan = plan
        self.schema = schema
        self.ctx = ctx
        self.options: TabularOptions = parse_options(
            {k: v for k, v in plan.options.items() if k != "noise_multiplier"}
        )
        self.roles = column_roles(schema)
        self.rng: RandomSource = ctx.rng
        self.gen: np.random.Generator = ctx.rng.generator
        self.mech = PlannedMechanisms(plan, ctx.rng, noise)
        self.data = bound_contributions(data, schema, self.gen)
        self.report: dict[str, Any] = {}
        #: Per numeric column, the noisy fine histogram summed into its bins (a DP release, null code
        #: unmeasured): a second 1-way measurement for the final raking (post-processing).
        self.bin_sums: dict[str, Measurement] = {}
        person = schema.privacy_unit.person_column
        self.persons: pd.Series | None = self.data[person] if person is not None else None

    # -- schema step -------------------------------------------------------------------------------
    def numeric_domain(self, spec: ColumnSpec) -> NumericDomain:
        values = to_float(self.data[spec.name])
        present = values[~np.isnan(values)]
        lower, upper = spec.lower, spec.upper
        if self.mech.has(f"bounds:{spec.name}"):
            grid = log_grid()
            step = f"bounds:{spec.name}"
            noisy = self.mech.histogram(
                step, np.bincount(grid.assign(present), minlength=grid.size).astype(float)
            )
            lo, hi = bounds_from_histogram(grid, noisy, self.mech.sigma(step), tail=self.options.bounds_tail)
            lower = lo if lower is None else lower
            upper = hi if upper is None else upper
            if upper <= lower:
                upper = lower + (1.0 if spec.integer else max(abs(lower) * 1e-3, 1e-3))
        assert lower is not None and upper is not None
        grid_f = fine_grid(lower, upper, integer=spec.integer, cells=self.options.fine_cells)
        step = f"bins:{spec.name}"
        if self.mech.has(step):
            counts = np.bincount(grid_f.assign(present), minlength=grid_f.size).astype(float)
            noisy = self.mech.histogram(step, counts)
            cleaned = project_histogram(noisy)
            weights = noisy  # projected bin by bin below (within_bin_weights)
        else:  # uniform bins on public bounds: no measurement
            cleaned = np.diff(np.concatenate([grid_f.edges, [grid_f.edges[-1]]]))[: grid_f.size]
            cleaned = np.where(cleaned > 0, cleaned, 1.0)
            cleaned[grid_f.n_interval :] = 0.0
            weights = cleaned
        cell_to_bin = quantile_bins(grid_f, cleaned, self.options.numeric_bins)
        if self.mech.has(step):
            sigma_f = self.mech.sigma(step)
            n_bins = int(cell_to_bin.max()) + 1
            sums = np.bincount(cell_to_bin, weights=noisy, minlength=n_bins)
            cells = np.bincount(cell_to_bin, minlength=n_bins).astype(np.float64)
            self.bin_sums[spec.name] = Measurement(
                values=np.concatenate([sums, [0.0]]), variance=np.concatenate([cells * sigma_f**2, [np.inf]])
            )
            weights = within_bin_weights(weights, cell_to_bin, sigma_f)
        self.report.setdefault("bounds", {})[spec.name] = [grid_f.lower, grid_f.upper]
        return NumericDomain(name=spec.name, grid=grid_f, cell_to_bin=cell_to_bin, cell_weights=weights)

    def categorical_domain(self, spec: ColumnSpec) -> CategoricalDomain:
        if spec.categories is not None:
            return CategoricalDomain(name=spec.name, categories=tuple(spec.categories), closed=True)
        column = self.data[spec.name]
        notnull = column.notna().to_numpy()
        values = [_text(v) for v in column.to_numpy()[notnull]]
        if self.persons is None:
            counts: dict[str, int] = dict(Counter(values))
        else:
            ids = self.persons.to_numpy()[notnull]
            pairs = {(v, _person_key(p, i)) for i, (v, p) in enumerate(zip(values, ids, strict=True))}
            counts = dict(Counter(v for v, _ in pairs))
        selected = self.mech.partition(f"categories:{spec.name}", counts)
        categories = tuple(sorted(str(v) for v in selected))
        self.report.setdefault("categories_selected", {})[spec.name] = len(categories)
        return CategoricalDomain(name=spec.name, categories=categories)

    # -- the whole run -----------------------------------------------------------------------------
    def execute(self, requested_rows: int | None) -> EngineOutput:
        started = time.perf_counter()
        ctx = self.ctx
        ctx.progress("measure", 0.0)
        n_private = len(self.data)
        total_estimates: list[tuple[float, float]] = []
        n_out = requested_rows
        if self.mech.has("count"):
            noisy_n = self.mech.count("count", n_private)
            total_estimates.append((float(noisy_n), self.mech.sigma("count") ** 2))
            n_out = max(noisy_n, 0)
        assert n_out is not None

        domains: list[Domain] = []
        for spec in self.roles.modelled:
            ctx.check_cancelled()
            if spec.kind == ColumnKind.NUMERIC:
                domains.append(self.numeric_domain(spec))
            else:
                domains.append(self.categorical_domain(spec))
        ctx.progress("measure", 0.3)

        d = len(domains)
        codes = np.zeros((n_private, d), dtype=np.int64)
        for i, dom in enumerate(domains):
            column = self.data[dom.name]
            codes[:, i] = (
                dom.encode(to_float(column)) if isinstance(dom, NumericDomain) else dom.encode(column)
            )

        # 1-way marginals and MST's compression.
        compressions: list[Compression] = []
        one_way: dict[int, Measurement] = {}
        for i, dom in enumerate(domains):
            step = f"one_way:{dom.name}"
            sigma = self.mech.sigma(step)
            noisy = self.mech.histogram(step, np.bincount(codes[:, i], minlength=dom.size).astype(float))
            comp = compress(noisy, sigma)
            compressions.append(comp)
            group = np.bincount(comp.mapping(), minlength=comp.size).astype(float)
            one_way[i] = Measurement(values=comp.compress_values(noisy), variance=sigma**2 * group)
            codes[:, i] = comp.mapping()[codes[:, i]]
        sizes = [c.size for c in compressions]
        ctx.progress("measure", 0.5)

        # The tree: MST's selection with the exponential mechanism.
        edges: list[tuple[int, int]] = []
        if d >= 2 and self.options.model == "tree":
            est_total = _total(total_estimates, one_way)
            probs = []
            for i in range(d):
                p = project_simplex(one_way[i].values, est_total)
                probs.append(p / p.sum() if p.sum() > 0 else np.full(sizes[i], 1.0 / sizes[i]))
            pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]

            def true_counts(i: int, j: int) -> FloatArray:
                flat = codes[:, i] * sizes[j] + codes[:, j]
                return (
                    np.bincount(flat, minlength=sizes[i] * sizes[j]).reshape(sizes[i], sizes[j]).astype(float)
                )

            scores = dict(
                zip(pairs, independence_scores(pairs, true_counts, probs, est_total).tolist(), strict=True)
            )
            rounds = iter(range(1, d))
            edges = select_tree(d, scores, lambda s: self.mech.select(f"select:{next(rounds)}", s))
            two_way: dict[tuple[int, int], Measurement] = {}
            for r, (i, j) in enumerate(edges, start=1):
                ctx.check_cancelled()
                step = f"two_way:{r}"
                sigma = self.mech.sigma(step)
                noisy2 = self.mech.histogram(step, true_counts(i, j))
                two_way[(i, j)] = Measurement(values=noisy2, variance=np.full(noisy2.shape, sigma**2))
        else:
            two_way = {}
        network: BayesNet | None = None
        if d >= 2 and self.options.model == "adaptive":
            est_total = _total(total_estimates, one_way)
            network = fit_adaptive(
                codes,
                sizes,
                [one_way[i] for i in range(d)],
                est_total,
                [self.mech.sigma(f"measure:{r}") for r in range(1, adaptive_rounds(d, self.options) + 1)],
                lambda r, s: self.mech.select(f"select:{r + 1}", s),
                lambda r, counts: self.mech.histogram(f"measure:{r + 1}", counts),
                self.gen,
            )
        keywords: dict[str, list[str]] = {}
        for spec in self.roles.text:
            step = f"keywords:{spec.name}"
            if self.mech.has(step):
                counts = keyword_counts(
                    list(self.data[spec.name].to_numpy()),
                    None if self.persons is None else list(self.persons.to_numpy()),
                    self.options.text_keywords,
                    self.gen,
                )
                keywords[spec.name] = [str(w) for w in self.mech.partition(step, counts)]
        if keywords:
            self.report["keywords_selected"] = {name: len(words) for name, words in keywords.items()}
        self.mech.finish()
        measured = time.perf_counter()
        ctx.progress("sample", 0.8)  # measuring is done; the stage from here is the post-processing

        # Post-processing: model, sample, decode.
        table = pd.DataFrame(index=pd.RangeIndex(n_out))
        coded: dict[str, CodedColumn] = {}  # categorical columns: table[name] == labels[codes]
        if d:
            if network is not None:
                sample = network.sample(n_out, self.gen)
                if n_out > 0:  # final raking to every measurement (post-processing, .raking)
                    est_total = _total(total_estimates, one_way)
                    one_ways = [one_way[i] for i in range(d)]
                    extra = [
                        (i, _compressed(self.bin_sums[dom.name], compressions[i]))
                        for i, dom in enumerate(domains)
                        if dom.name in self.bin_sums
                    ]
                    targets = combine_one_way(sizes, one_ways, network.measured, est_total, extra=extra)
                    goals = [((i,), t) for i, t in enumerate(targets)]
                    sample = rake_rows(sample, sizes, goals, n_out, self.gen)
            else:
                sample = fit_tree_model(sizes, one_way, two_way, total_estimates).sample(n_out, self.gen)
            for i, dom in enumerate(domains):
                original = compressions[i].expand(sample[:, i], self.gen)
                if isinstance(dom, NumericDomain):
                    values = dom.decode(original, self.gen)
                    spec = self.schema.column(dom.name)
                    if spec.integer:
                        table[dom.name] = pd.array(
                            np.where(np.isnan(values), np.nan, np.rint(values)), dtype="Float64"
                        ).astype("Int64")
                    else:
                        table[dom.name] = values
                else:
                    table[dom.name] = pd.Series(dom.decode(original), dtype=object)
                    coded[dom.name] = CodedColumn(codes=original, labels=dom.labels)
        for spec in self.roles.identifiers:
            ids = self.gen.integers(0, 2**62, size=n_out)
            table[spec.name] = pd.Series([f"id-{int(x):016x}" for x in ids], dtype=object)
        sampled = time.perf_counter()
        ctx.progress("sample", 1.0)

        text_report: dict[str, Any] | None = None
        if self.roles.text and n_out > 0:
            if ctx.runner is None:
                raise ModelUnavailable("the schema has text columns but no language model is available")
            stats = write_text_columns(
                table,
                self.schema,
                self.roles.text,
                self.roles.modelled,
                ctx.runner,
                seed=int(self.gen.integers(0, 2**31 - 1)),
                batch_size=self.options.text_batch_size,
                temperature=self.options.text_temperature,
                progress=lambda f: ctx.progress("text", f),
                check_cancelled=ctx.check_cancelled,
                keywords=keywords,
            )
            text_report = stats.to_json()
        elif self.roles.text:
            for spec in self.roles.text:
                table[spec.name] = pd.Series([], dtype=object)
        finished = time.perf_counter()

        table = table[[c.name for c in self.schema.columns]]
        names = [dom.name for dom in domains]
        self.report.update(
            {
                "engine": ENGINE_NAME,
                "rows": int(n_out),
                "tree": [[names[i], names[j]] for i, j in edges],
                "network": None
                if network is None
                else [
                    {"columns": [names[c] for c in cols], "parents": [names[p] for p in pars]}
                    for cols, pars in network.parents()
                ],
                "domain_sizes": {dom.name: dom.size for dom in domains},
                "compressed_sizes": dict(zip(names, sizes, strict=True)),
                "steps_run": len(self.mech.ran),
                "epsilon": repr(float(self.plan.cost.epsilon)),
                "delta": repr(float(self.plan.cost.delta)),
                "seconds": {
                    "measure": round(measured - started, 3),
                    "model_and_sample": round(sampled - measured, 3),
                    "text": round(finished - sampled, 3),
                },
                "text": text_report,
            }
        )
        return EngineOutput(table=table, report=self.report, coded_columns=coded)


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _person_key(person: object, index: int) -> object:
    """A null person id is a person of its own."""
    return (
        ("__row__", index) if person is None or (isinstance(person, float) and person != person) else person
    )


def _compressed(m: Measurement, comp: Compression) -> Measurement:
    """A 1-way measurement over a domain's codes, summed into the compressed codes."""
    return Measurement(values=comp.compress_values(m.values), variance=comp.compress_values(m.variance))


def _total(estimates: list[tuple[float, float]], one_way: dict[int, Measurement]) -> float:
    items = [*estimates, *[(float(m.values.sum()), float(m.variance.sum())) for m in one_way.values()]]
    w = np.array([1.0 / max(v, 1e-12) for _, v in items])
    x = np.array([val for val, _ in items])
    return max(float((w * x).sum() / w.sum()), 1.0)


class TabularEngine:
    """Mixed tables (categorical, numeric, text, identifier columns); see the module docstring."""

    name = ENGINE_NAME

    def __init__(self, noise: NoiseBackend | None = None) -> None:
        self._noise = noise

    def plan(self, schema: DatasetSchema, request: SynthesisRequest) -> Plan:
        """Fix every mechanism and its noise from public inputs only (no data argument)."""
        return make_plan(schema, request)

    def validate_data(self, schema: DatasetSchema, data: pd.DataFrame) -> None:
        """Structural checks only (columns present): safe to run before charging the plan."""
        roles = column_roles(schema)
        needed = [c.name for c in roles.modelled]
        if schema.privacy_unit.person_column is not None:
            needed.append(schema.privacy_unit.person_column)
        missing = [name for name in needed if name not in data.columns]
        if missing:
            raise DataMismatch(f"the table lacks the schema's columns {missing}", column=missing[0])

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        """Run the planned mechanisms on ``data``, fit the tree model, sample, write text columns."""
        if plan.engine != ENGINE_NAME or plan.schema_fingerprint != schema_fingerprint(schema):
            raise PlanMismatch("the plan was not made by the tabular engine for this schema")
        self.validate_data(schema, data)
        if self.plan_needs_model(plan, schema) and ctx.runner is None:
            raise ModelUnavailable("the schema has text columns but no language model is available")
        return _Run(plan, schema, data, ctx, self._noise).execute(plan.request.rows)

    @staticmethod
    def plan_needs_model(plan: Plan, schema: DatasetSchema) -> bool:
        """Whether running the plan needs the language model (text columns present)."""
        return bool(column_roles(schema).text)
