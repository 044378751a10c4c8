"""The text engine: DP synthetic text by Private Evolution (Lin et al. ICLR 2024; Xie et al. ICML 2024).

``plan`` (no data): resolve the options, calibrate the noise of the label count and of the T vote
histograms with the DP core's accountant, apply the size gate when a public lower bound or an earlier
DP count of the rows is known, and write the transcript.

``run``: the private table is wrapped in :class:`~safesynth.gateway.engines.text.vote.PrivateCorpus`,
the only reader of private texts, and touched exactly ``1 + T`` times (or ``T``), each time as the
input of a planned Gaussian mechanism. Everything else - prompts, candidates, variations, embeddings of
candidates, selection - is computed from public inputs and from the noisy outputs (post-processing):

1. noisy label counts -> rows and candidates per label (largest remainder on the clipped shares);
2. per label: ``M_l`` random candidates from public prompts;
3. for t = 1..T: embed the candidates (public embedding), vote histograms of all labels -> one
   Gaussian mechanism -> threshold; if t < T the next population keeps each sampled parent once and
   replaces repeated picks by variations; at t = T the output rows are chosen by ``output_selection``
   (default: rows per candidate proportional to its noisy votes; repeated rows become variations).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.base import (
    DataMismatch,
    EngineContext,
    EngineOutput,
    ModelUnavailable,
    Plan,
    PlanMismatch,
    SynthesisRequest,
    TranscriptItem,
)
from safesynth.gateway.engines.text.accounting import (
    NoisePlan,
    calibrate,
    gdp_epsilon,
    max_candidates,
    noise_events,
)
from safesynth.gateway.engines.text.embed import Embedder, hubness_penalty, make_embedder
from safesynth.gateway.engines.text.errors import SizeGateFailed
from safesynth.gateway.engines.text.generate import CandidateGenerator, GenerationBudget, GenerationRunner
from safesynth.gateway.engines.text.options import TextOptions, resolve_options
from safesynth.gateway.engines.text.prompts import PromptBuilder
from safesynth.gateway.engines.text.selection import allocate, apply_threshold, select_output
from safesynth.gateway.engines.text.vote import PrivateCorpus

if TYPE_CHECKING:
    import pandas as pd

    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.sdk.schema import DatasetSchema

__all__ = ["ENGINE_NAME", "TextEngine", "post_processing_generator", "schema_fingerprint"]

ENGINE_NAME = "text"


def schema_fingerprint(schema: DatasetSchema) -> str:
    """sha256 of the schema's canonical JSON (ties a plan to its schema)."""
    canonical = json.dumps(schema.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def post_processing_generator(rng: RandomSource) -> np.random.Generator:
    """A numpy generator for NON-privacy randomness (prompts, seeds, selection), seeded from ``rng``."""
    return np.random.default_rng([int(w) for w in rng.words(4).tolist()])


def _gaussian(
    values: npt.NDArray[np.float64], noise_sigma: float, sensitivity: int, rng: RandomSource
) -> Any:
    from safesynth.gateway.dp import mechanisms

    return mechanisms.gaussian_mechanism(values, sensitivity=float(sensitivity), sigma=noise_sigma, rng=rng)


class TextEngine:
    """Private Evolution for a corpus of short texts with optional public labels."""

    name = ENGINE_NAME

    # ------------------------------------------------------------------ plan (public inputs only)
    def plan(self, schema: DatasetSchema, request: SynthesisRequest) -> Plan:
        """Fix the noise, the events and the size gate from the schema and the request alone."""
        opts = resolve_options(schema, request.options, request.rows)
        has_size = opts.dp_count is not None or opts.min_rows is not None
        need_count = (
            opts.labels is not None or not has_size or (request.rows is None and opts.dp_count is None)
        )
        sensitivity = opts.max_rows_per_person
        noise = calibrate(
            epsilon=request.epsilon,
            delta=request.delta,
            iterations=opts.iterations,
            sensitivity=sensitivity,
            count_share=opts.count_share if need_count else None,
        )
        gate = self._size_gate(opts, noise, request)
        events = noise_events(noise)
        from safesynth.gateway.dp.accountant import compose

        cost = compose(list(events), delta=request.delta)
        transcript = self._transcript(opts, noise, events)
        derived = {
            "sigma_vote": noise.sigma_vote,
            "sigma_count": noise.sigma_count,
            "threshold": opts.threshold_sigmas * noise.sigma_vote,
            "gdp_mu": noise.mu,
            "gdp_epsilon": gdp_epsilon(noise.mu, request.delta),
            "need_count": need_count,
            "candidates": gate["candidates"],
            "size_gate": gate,
            "rows": request.rows if request.rows is not None else opts.dp_count,
        }
        return Plan(
            engine=self.name,
            request=request,
            events=events,
            transcript=transcript,
            cost=cost,
            options={"resolved": opts.to_json(), "derived": derived},
            schema_fingerprint=schema_fingerprint(schema),
        )

    def _size_gate(self, opts: TextOptions, noise: NoisePlan, request: SynthesisRequest) -> dict[str, Any]:
        n_labels = len(opts.label_keys)
        floor_m = opts.min_candidates_per_label * n_labels
        wanted = opts.candidates if opts.candidates is not None else max(opts.max_candidates, floor_m)
        n_public = opts.dp_count if opts.dp_count is not None else opts.min_rows
        if n_public is None:
            return {
                "status": "deferred",
                "reason": "no public lower bound or DP count: candidates are sized from the DP label count",
                "candidates": wanted,
                "gate_factor": opts.gate_factor,
            }
        m_max = max_candidates(n_public, noise.sigma_vote, opts.gate_factor)
        if m_max < floor_m or (opts.candidates is not None and opts.candidates > m_max):
            raise SizeGateFailed(
                f"too few private rows for the noise: with n >= {n_public} rows and sigma = "
                f"{noise.sigma_vote:.3g}, at most {m_max} candidates get "
                f"{opts.gate_factor:g} sigma of expected "
                f"votes each; the run needs at least {max(floor_m, opts.candidates or 0)}",
                proposals=self._proposals(
                    opts, request, noise, n_public, max(floor_m, opts.candidates or floor_m)
                ),
            )
        candidates = opts.candidates if opts.candidates is not None else max(floor_m, min(m_max, wanted))
        return {
            "status": "passed",
            "n_rows_bound": n_public,
            "candidates": candidates,
            "expected_votes_per_candidate": n_public / candidates,
            "sigma_vote": noise.sigma_vote,
            "gate_factor": opts.gate_factor,
        }

    def _proposals(
        self, opts: TextOptions, request: SynthesisRequest, noise: NoisePlan, n_rows: int, needed: int
    ) -> dict[str, Any]:
        """Settings that pass the gate: fewer candidates/rows, T = 1, or the epsilon that would do."""
        current = max_candidates(n_rows, noise.sigma_vote, opts.gate_factor)
        proposals: dict[str, Any] = {"max_candidates": current, "max_rows": current}
        count_share = opts.count_share if noise.sigma_count is not None else None
        if opts.iterations > 1:
            one = calibrate(
                epsilon=request.epsilon,
                delta=request.delta,
                iterations=1,
                sensitivity=noise.sensitivity,
                count_share=count_share,
            )
            proposals["iterations_1_max_candidates"] = max_candidates(
                n_rows, one.sigma_vote, opts.gate_factor
            )
        if opts.gate_factor > 0:
            # the noise scales as one multiplier: sigma_vote needed -> that multiplier -> its epsilon
            scale = (n_rows / (opts.gate_factor * needed)) / noise.sigma_vote
            if scale > 0:
                from safesynth.gateway.dp.accountant import compose

                target = NoisePlan(
                    sigma_vote=noise.sigma_vote * scale,
                    sigma_count=None if noise.sigma_count is None else noise.sigma_count * scale,
                    iterations=noise.iterations,
                    sensitivity=noise.sensitivity,
                )
                needed_eps = float(compose(list(noise_events(target)), delta=request.delta).epsilon)
                proposals["epsilon_needed"] = round(needed_eps * 1.001 + 1e-4, 4)
        return proposals

    def _transcript(
        self, opts: TextOptions, noise: NoisePlan, events: Sequence[Any]
    ) -> tuple[TranscriptItem, ...]:
        items: list[TranscriptItem] = []
        label_cols = (opts.label_column,) if opts.label_column is not None else ()
        vote_event = events[-1]
        count_share = 0.0
        if noise.sigma_count is not None:
            count_share = (noise.sensitivity / noise.sigma_count) ** 2 / noise.mu**2
        if noise.sigma_count is not None:
            items.append(
                TranscriptItem(
                    step="text.label_count",
                    mechanism="gaussian",
                    columns=label_cols or (opts.text_column,),
                    noise={"sigma": noise.sigma_count, "sensitivity": float(noise.sensitivity)},
                    share=count_share,
                    event=events[0],
                )
            )
        items.append(
            TranscriptItem(
                step="text.vote_histogram",
                mechanism="gaussian",
                columns=(opts.text_column, *label_cols),
                noise={
                    "sigma": noise.sigma_vote,
                    "sensitivity": float(noise.sensitivity),
                    "threshold": opts.threshold_sigmas * noise.sigma_vote,
                    "k": float(opts.k),
                },
                share=1.0 - count_share,
                event=vote_event,
                count=noise.iterations,
            )
        )
        return tuple(items)

    # ------------------------------------------------------------------ run
    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        """Run exactly the planned mechanisms; everything else is post-processing."""
        if plan.engine != self.name or plan.schema_fingerprint != schema_fingerprint(schema):
            raise PlanMismatch("this plan was not made by the text engine for this schema")
        opts = TextOptions.from_json(plan.options["resolved"])
        derived = dict(plan.options["derived"])
        for column in (opts.text_column, opts.label_column, opts.person_column):
            if column is not None and column not in data.columns:
                raise DataMismatch(f"the table has no column {column!r}", column=column)
        if ctx.runner is None:
            raise ModelUnavailable("the text engine needs the language model (no runner in the context)")
        runner: Any = ctx.runner
        started = time.perf_counter()
        corpus = PrivateCorpus.from_frame(
            data,
            text_column=opts.text_column,
            label_column=opts.label_column,
            labels=opts.labels,
            max_chars=opts.max_chars,
            person_column=opts.person_column,
            max_rows_per_person=opts.max_rows_per_person,
        )
        del data  # nothing below reads the table
        run = _Run(opts, derived, corpus, runner, ctx)
        texts, labels = run.execute()
        import pandas as pd

        columns: dict[str, list[Any]] = {opts.text_column: texts}
        if opts.label_column is not None:
            columns[opts.label_column] = labels
        table = pd.DataFrame(columns)
        report = run.report(plan, seconds=time.perf_counter() - started)
        return EngineOutput(table=table, report=report)


class _Run:
    """One execution of a plan (holds the per-run state; not part of the public API)."""

    def __init__(
        self,
        opts: TextOptions,
        derived: dict[str, Any],
        corpus: PrivateCorpus,
        runner: Any,
        ctx: EngineContext,
    ) -> None:
        self.opts = opts
        self.derived = derived
        self.corpus = corpus
        self.ctx = ctx
        self.rng = ctx.rng
        self.gen = post_processing_generator(ctx.rng)
        self.sigma_vote = float(derived["sigma_vote"])
        sc = derived["sigma_count"]
        self.sigma_count = None if sc is None else float(sc)
        self.threshold = float(derived["threshold"])
        self.sensitivity = opts.max_rows_per_person
        self.mechanisms_run: list[dict[str, Any]] = []
        self.model = _model_facts(runner)
        self.embedder: Embedder = make_embedder(opts.embedding, runner, self.model.get("name", "model"))
        prompts = PromptBuilder(
            corpus_description=opts.corpus_description,
            label_descriptions=opts.label_descriptions,
            topics=opts.topics,
            styles=opts.styles,
            tones=opts.tones,
            max_chars=opts.max_chars,
        )
        budget = GenerationBudget(
            max_tokens=opts.max_tokens, max_chars=opts.max_chars, temperature=opts.temperature
        )
        self._done = 0
        self._expected = 1
        self.generator = CandidateGenerator(
            runner=_as_generation_runner(runner), prompts=prompts, budget=budget, on_batch=self._tick
        )
        self.per_label: dict[str, dict[str, Any]] = {}
        self.noisy_counts: list[float] | None = None
        self.rows = 0

    def _tick(self, n: int) -> None:
        self._done += n
        self.ctx.check_cancelled()
        self.ctx.progress("text.generate", min(0.99, self._done / max(1, self._expected)))

    def _measure(self, values: npt.NDArray[np.float64], sigma: float, step: str) -> npt.NDArray[np.float64]:
        noisy = np.asarray(_gaussian(values, sigma, self.sensitivity, self.rng), dtype=np.float64)
        self.mechanisms_run.append({"step": step, "sigma": sigma, "sensitivity": self.sensitivity})
        return noisy

    def _sizes(self) -> tuple[list[int], list[int]]:
        """Rows and candidates per label, from the noisy count (or the public size) only."""
        keys = self.opts.label_keys
        requested_rows = self.derived["rows"]
        planned_m = int(self.derived["candidates"])
        if self.sigma_count is None:
            rows = int(requested_rows)
            self.rows = rows
            return [rows], [planned_m]
        noisy = self._measure(self.corpus.label_counts(keys), self.sigma_count, "text.label_count")
        self.noisy_counts = [float(x) for x in noisy]
        clipped = np.clip(noisy, 0.0, None)
        rows = (
            int(requested_rows)
            if requested_rows is not None
            else min(self.opts.max_rows, round(clipped.sum()))
        )
        self.rows = rows
        shares = clipped.tolist()
        if self.opts.label_mix == "balanced":
            # a public choice applied to the DP counts (post-processing): equal rows and candidates for
            # every label the noisy count says exists
            shares = [1.0 if c > 0 else 0.0 for c in shares]
        rows_l = allocate(rows, shares)
        cand_l = allocate(planned_m, shares)
        out_m: list[int] = []
        for label_rows, m, n_l in zip(rows_l, cand_l, clipped.tolist(), strict=True):
            if label_rows == 0:
                out_m.append(0)
                continue
            gate_m = max_candidates(n_l, self.sigma_vote, self.opts.gate_factor)
            out_m.append(max(self.opts.min_candidates_per_label, min(m, gate_m)))
        return rows_l, out_m

    def execute(self) -> tuple[list[str], list[str | None]]:
        keys = self.opts.label_keys
        self.ctx.progress("text.count", 0.0)
        rows_l, cand_l = self._sizes()
        t_total = self.opts.iterations
        self._expected = sum(cand_l) * t_total + sum(rows_l)
        # one generator per label, drawn before any generation: the random population of a label is a
        # prefix-stable function of (seed, label), whatever the noisy sizes turn out to be
        label_gens = [np.random.default_rng(int(self.gen.integers(0, 2**63))) for _ in keys]
        populations: list[list[str]] = []
        for key, m, label_gen in zip(keys, cand_l, label_gens, strict=True):
            populations.append(_dedupe(self.generator.random(key, m, label_gen)))
        out_texts: list[str] = []
        out_labels: list[str | None] = []
        for t in range(1, t_total + 1):
            embeddings = [self.embedder.embed(p) if p else None for p in populations]
            clean = [
                self.corpus.vote_histogram(
                    key, emb, embedder=self.embedder, k=self.opts.k, penalty=self._penalty(emb)
                )
                if emb is not None
                else np.zeros(0, dtype=np.float64)
                for key, emb in zip(keys, embeddings, strict=True)
            ]
            sizes = [c.shape[0] for c in clean]
            joint = np.concatenate(clean) if clean else np.zeros(0)
            noisy_joint = self._measure(joint, self.sigma_vote, f"text.vote_histogram[{t}]")
            noisy = np.split(noisy_joint, np.cumsum(sizes)[:-1])
            for li, (key, pop, h) in enumerate(zip(keys, populations, noisy, strict=True)):
                stats = self.per_label.setdefault(
                    _key_name(key), {"candidates": [], "positive_after_threshold": []}
                )
                stats["candidates"].append(len(pop))
                weights = apply_threshold(h, self.threshold)
                stats["positive_after_threshold"].append(int((weights > 0).sum()))
                n_next = cand_l[li] if t < t_total else rows_l[li]
                mode = self.opts.selection if t < t_total else self.opts.output_selection
                picks, repeat = select_output(weights, n_next if pop else 0, mode, self.gen)  # type: ignore[arg-type]
                chosen = self._offspring(pop, picks, repeat, key)
                if t < t_total:
                    populations[li] = _dedupe(chosen)
                else:
                    out_texts.extend(chosen)
                    out_labels.extend([key] * len(chosen))
            self.ctx.check_cancelled()
        self.ctx.progress("text.done", 1.0)
        return out_texts, out_labels

    def _penalty(self, embeddings: Any) -> npt.NDArray[np.float64] | None:
        """The hubness correction of one label's candidates (public: candidates only)."""
        if self.opts.hubness == "none":
            return None
        return hubness_penalty(embeddings)

    def _offspring(
        self, pop: Sequence[str], picks: npt.NDArray[np.int64], repeat: npt.NDArray[np.bool_], key: str | None
    ) -> list[str]:
        """First picks keep the candidate; repeated picks become variations of it."""
        out = [pop[int(i)] for i in picks]
        to_vary = [int(j) for j in np.flatnonzero(repeat)]
        if to_vary:
            varied = self.generator.variations([out[j] for j in to_vary], key, self.gen)
            for j, text in zip(to_vary, varied, strict=True):
                out[j] = text
        return out

    def report(self, plan: Plan, *, seconds: float) -> dict[str, Any]:
        """Aggregate facts only: the noise, the sizes, the model, the embedding, the timings."""
        cost = plan.cost
        return {
            "engine": ENGINE_NAME,
            "algorithm": "private-evolution/v1 (Lin et al. ICLR 2024; Xie et al. ICML 2024)",
            "privacy": {
                "epsilon": float(cost.epsilon),
                "delta": float(cost.delta),
                "method": cost.method,
                "gdp_mu": self.derived["gdp_mu"],
                "gdp_epsilon": self.derived["gdp_epsilon"],
                "composition": "Gaussian DP over T iterations (exact); parallel over labels (max, not sum)",
                "sensitivity": self.sensitivity,
            },
            "sigma_vote": self.sigma_vote,
            "sigma_count": self.sigma_count,
            "threshold": self.threshold,
            "iterations": self.opts.iterations,
            "k": self.opts.k,
            "selection": self.opts.selection,
            "output_selection": self.opts.output_selection,
            "label_mix": self.opts.label_mix,
            "candidates_planned": self.derived["candidates"],
            "per_label": self.per_label,
            "noisy_label_counts": self.noisy_counts,
            "rows": self.rows,
            "size_gate": self.derived["size_gate"],
            "mechanisms_run": list(self.mechanisms_run),
            "model": self.model,
            "embedding": self.embedder.name,
            "hubness": self.opts.hubness,
            "generation": self.generator.stats.to_json(),
            "length_budget": {"max_tokens": self.opts.max_tokens, "max_chars": self.opts.max_chars},
            "seconds": round(seconds, 3),
        }


def _key_name(key: str | None) -> str:
    return "" if key is None else key


def _dedupe(texts: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _model_facts(runner: Any) -> dict[str, Any]:
    info = getattr(runner, "info", None)
    if info is None:
        return {"name": type(runner).__name__}
    path = getattr(info, "path", None)
    return {
        "name": getattr(path, "name", str(path)),
        "path": str(path),
        "sha256": getattr(info, "sha256", None),
    }


def _as_generation_runner(runner: Any) -> GenerationRunner:
    generate: Callable[..., Any] = runner.generate_batch
    if not callable(generate):
        raise ModelUnavailable("the runner cannot generate text")
    result: GenerationRunner = runner
    return result
