"""Benchmark of the text engine (Private Evolution) against zero-shot, real data and a NOT-DP baseline.

Reproduce (from the repository root, after `make test` built .venv), one locked run of <= 15 min per data
set / seed / epsilon (A fills the cache with the public zero-shot candidates, P runs the engine with its
defaults and reuses them, N is the NOT-DP baseline, S the output-selection study on the training split):

    C=/tmp/tbench/cache.jsonl; L="flock /tmp/safesynth-bench.lock .venv/bin/python benchmarks/text.py"
    $L --cache $C --out /tmp/tbench/A --skip-baseline --datasets sms_spam --seeds 0 --zero-shot-only
    $L --cache $C --out /tmp/tbench/P --skip-baseline --skip-real --skip-zero-shot --datasets sms_spam \
        --seeds 0 --epsilons 4
    $L --cache $C --out /tmp/tbench/N --only-baseline --skip-real --datasets sms_spam --seeds 0 \
        --baseline-rows 250
    $L --cache $C --out /tmp/tbench/S --selection-study --skip-real --datasets sms_spam --seeds 0,1,2 \
        --epsilons 1,4,10
    ... the same for sentiment, seeds 1 and 2, epsilons 1 and 10, then
    .venv/bin/python benchmarks/text.py merge benchmarks/results /tmp/tbench/*/text.json

The engine runs with its defaults (T = 1, 1.2 candidates per row, balanced label mix, proportional output
selection, hashing embedding with the CSLS hubness correction); the benchmark passes only the public label
descriptions and a length budget of 24 generated tokens (flags override single options and the row's
method names them).

Data: tests/data/sms_spam.csv and sentiment_sentences.csv (copies of /work/shared/data; provenance in
tests/data/SOURCES.md, both CC BY 4.0, UCI), de-duplicated on the text, a fixed stratified 80/20 split
(random_state 12345); the test split is capped at 1000 texts.
For each data set: a TF-IDF (word 1-2-grams) + logistic regression classifier trained on
(a) the real training split, (b) 500 real training texts, (c) zero-shot texts (the same public prompts,
no private data, epsilon 0), (d) the text engine at each epsilon, (e) the paper-style in-context
baseline, which is NOT DP; all tested on the real test split (accuracy, macro-F1). Also: the distance
between real and synthetic embedding distributions (linear-kernel MMD in the hashing space and in the
model's embedding space), generation time and tokens/s, and what each method copies from the
training texts (exact copies, texts sharing an 8-word n-gram with a training text).

The initial random population of a run is a public, seed-determined function of the prompts, so the
runner is wrapped in a cache keyed by (prompt, seed, sampling parameters), optionally on disk
(``--cache``): zero-shot is exactly the first candidates of the engine's first population for the same
seed. A run's "cold" time adds to its wall time the wall time that the reused generations took when
they were made.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "gateway"), str(ROOT / "sdk"), str(ROOT / "ledger"), str(ROOT / "benchmarks")]

from safesynth.gateway.dp.rng import RandomSource  # noqa: E402
from safesynth.gateway.engines.base import EngineContext, SynthesisRequest  # noqa: E402
from safesynth.gateway.engines.text.embed import HashingEmbedder  # noqa: E402
from safesynth.gateway.engines.text.engine import TextEngine, post_processing_generator  # noqa: E402
from safesynth.gateway.engines.text.generate import CandidateGenerator, GenerationBudget  # noqa: E402
from safesynth.gateway.engines.text.prompts import PromptBuilder  # noqa: E402
from safesynth.gateway.engines.text.selection import allocate  # noqa: E402
from safesynth.sdk.schema import ColumnKind, ColumnSpec, DatasetSchema  # noqa: E402
from text_baseline_notdp import paper_baseline  # noqa: E402

DATASETS: dict[str, dict[str, Any]] = {
    "sms_spam": {
        "file": "sms_spam.csv",
        "description": "SMS text messages sent between mobile phones",
        "labels": {
            "ham": "a normal personal text message between friends, family or colleagues",
            "spam": "an unsolicited advertising or scam text message (prizes, offers, premium numbers)",
        },
        "max_chars": 160,
    },
    "sentiment": {
        "file": "sentiment_sentences.csv",
        "description": "single-sentence reviews of products, movies and restaurants",
        "labels": {"0": "a negative review sentence", "1": "a positive review sentence"},
        "max_chars": 160,
    },
}


class CachingRunner:
    """Wraps a Runner: generate_batch results cached per (prompt, item seed, sampling parameters).

    With ``path``, the cache is also a JSON-lines file, so later processes reuse the public candidates
    of earlier ones (one locked run per data set and seed). ``hit_seconds`` sums the original
    generation time of the cached results served, so a run's cold time can be reported.
    """

    def __init__(self, runner: Any, path: str | None = None) -> None:
        self._runner = runner
        self._cache: dict[str, Any] = {}
        self._wall: dict[str, float] = {}
        self.info = runner.info
        self.hits = 0
        self.hit_seconds = 0.0
        self._path = Path(path) if path else None
        if self._path is not None and self._path.exists():
            from safesynth.gateway.llm.results import Generation

            for line in self._path.read_text().splitlines():
                if line.strip():
                    key, value, wall = json.loads(line)
                    self._cache[key] = Generation(**value)
                    self._wall[key] = float(wall)

    def embed(self, texts: Sequence[str]) -> Any:
        return self._runner.embed(texts)

    def _store(self, key: str, g: Any, wall: float) -> None:
        from dataclasses import asdict

        self._cache[key] = g
        self._wall[key] = wall
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a") as fh:
                fh.write(json.dumps([key, asdict(g), wall], default=str) + "\n")

    def _batch(self, prompts: Sequence[Any], keys: Sequence[str], **kw: Any) -> None:
        started = time.perf_counter()
        got = self._runner.generate_batch(list(prompts), **kw)
        share = (time.perf_counter() - started) / max(1, len(keys))  # wall time per item (pool-parallel)
        for k, g in zip(keys, got, strict=True):
            self._store(k, g, share)

    def generate_batch(self, prompts: Sequence[Any], **kw: Any) -> list[Any]:
        seed = kw.get("seed")
        params = json.dumps({k: v for k, v in kw.items() if k != "seed"}, sort_keys=True, default=str)
        keys = [
            json.dumps([p, None if seed is None else seed + i, params], sort_keys=True)
            for i, p in enumerate(prompts)
        ]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if len(missing) == len(keys):
            self._batch(prompts, keys, **kw)
        elif missing:
            # item seeds must stay seed + i: generate each contiguous run of misses as one batch
            runs: list[list[int]] = []
            for i in missing:
                if runs and runs[-1][-1] == i - 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            for run in runs:
                part = dict(kw, seed=None if seed is None else seed + run[0])
                self._batch([prompts[i] for i in run], [keys[i] for i in run], **part)
        self.hits += len(keys) - len(missing)
        missing_set = set(missing)
        out = []
        for i, k in enumerate(keys):
            g = self._cache[k]
            if i in missing_set:
                out.append(g)
            else:
                self.hit_seconds += self._wall[k]
                out.append(_zero_time(g))
        return out


def _zero_time(g: Any) -> Any:
    from dataclasses import replace

    return replace(g, seconds=0.0)


def load(name: str, data_dir: Path, test_size: float, max_test: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(data_dir / DATASETS[name]["file"])
    frame = frame[["text", "label"]].astype({"label": str})
    frame = frame.drop_duplicates(subset="text").reset_index(drop=True)
    train, test = train_test_split(frame, test_size=test_size, random_state=12345, stratify=frame["label"])
    if len(test) > max_test:
        test, _ = train_test_split(test, train_size=max_test, random_state=12345, stratify=test["label"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def schema_for(name: str) -> DatasetSchema:
    spec = DATASETS[name]
    return DatasetSchema(
        columns=(
            ColumnSpec(name="label", kind=ColumnKind.CATEGORICAL, categories=tuple(spec["labels"])),
            ColumnSpec(
                name="text",
                kind=ColumnKind.TEXT,
                description=spec["description"],
                max_length=spec["max_chars"],
            ),
        )
    )


def classify(train_texts: Sequence[str], train_labels: Sequence[str], test: pd.DataFrame) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(test["label"].unique())
    if len(set(train_labels)) < 2:
        majority = train_labels[0] if train_labels else labels[0]
        pred = [majority] * len(test)
    else:
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        x = vec.fit_transform(list(train_texts))
        clf = LogisticRegression(max_iter=2000, C=10.0)
        clf.fit(x, list(train_labels))
        pred = clf.predict(vec.transform(test["text"].tolist())).tolist()
    return {
        "accuracy": round(float(accuracy_score(test["label"], pred)), 4),
        "macro_f1": round(float(f1_score(test["label"], pred, average="macro", labels=labels)), 4),
    }


def mmd_linear(a: Any, b: Any) -> float:
    """Squared distance of the mean embeddings (linear-kernel MMD^2) of unit-norm rows."""
    ma = np.asarray(a.mean(axis=0)).ravel()
    mb = np.asarray(b.mean(axis=0)).ravel()
    return round(float(np.sum((ma - mb) ** 2)), 5)


_WORD = re.compile(r"\w+")


def leakage(texts: Sequence[str], train_texts: Sequence[str], n: int = 8) -> dict[str, float]:
    train_set = {t.strip().lower() for t in train_texts}
    grams: set[tuple[str, ...]] = set()
    for t in train_texts:
        words = _WORD.findall(t.lower())
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    exact = sum(t.strip().lower() in train_set for t in texts)
    shared = 0
    for t in texts:
        words = _WORD.findall(t.lower())
        if any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1)):
            shared += 1
    total = max(1, len(texts))
    return {"exact_copy_share": round(exact / total, 4), f"shared_{n}gram_share": round(shared / total, 4)}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from safesynth.gateway.llm import RunnerConfig, get_runner

        self.args = args
        self.raw_runner = get_runner(config=RunnerConfig(pool_size=args.pool, n_threads=args.threads))
        self.runner = CachingRunner(self.raw_runner, args.cache or None)
        self.hashing = HashingEmbedder()
        self.results: dict[str, Any] = {
            "command": " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_at_start": os.getloadavg()[0],
                "shared": "2 cores shared with 5 other helpers (benchmarks under a lock)",
            },
            "versions": {p: version(p) for p in ("llama-cpp-python", "numpy", "scikit-learn", "safesynth")},
            "model": {"path": str(self.raw_runner.info.path), "sha256": self.raw_runner.info.sha256},
            "config": vars(args),
            "dp_core": os.environ.get(
                "SAFESYNTH_BENCH_DP_CORE", "safesynth.gateway.dp (mechanisms + accountant)"
            ),
            "runs": [],
        }
        self.data: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self.real_emb: dict[str, tuple[Any, Any]] = {}

    def dataset(self, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if name not in self.data:
            train, test = load(name, Path(self.args.data_dir), 0.2, self.args.max_test)
            self.data[name] = (train, test)
            sample = test["text"].tolist()[: self.args.embed_sample]
            model_emb = self.raw_runner.embed(sample) if self.args.model_distance else None
            self.real_emb[name] = (self.hashing.embed(test["text"].tolist()), model_emb)
        return self.data[name]

    def record(
        self,
        name: str,
        method: str,
        seed: int,
        epsilon: float | None,
        texts: list[str],
        labels: list[str],
        extra: Mapping[str, Any],
    ) -> None:
        train, test = self.dataset(name)
        row: dict[str, Any] = {
            "dataset": name,
            "method": method,
            "seed": seed,
            "epsilon": epsilon,
            "n_texts": len(texts),
            **classify(texts, labels, test),
        }
        hashing_real, model_real = self.real_emb[name]
        if texts:
            row["mmd_hashing"] = mmd_linear(hashing_real, self.hashing.embed(texts))
            if model_real is not None:
                row["mmd_model"] = mmd_linear(
                    model_real, self.raw_runner.embed(texts[: self.args.embed_sample])
                )
            row.update(leakage(texts, train["text"].tolist()))
            row["mean_chars"] = round(float(np.mean([len(t) for t in texts])), 1)
            row["examples"] = {
                lab: [t for t, lab2 in zip(texts, labels, strict=True) if lab2 == lab][:3]
                for lab in sorted(set(labels))
            }
        row.update(extra)
        self.results["runs"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("examples", "report")}), flush=True)
        self.save()

    def save(self) -> None:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        self.results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.results["load_now"] = os.getloadavg()[0]
        (out / "text.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (out / "text.md").write_text(markdown(self.results))

    # -------------------------------------------------------------------------------- methods
    def real(self, name: str) -> None:
        train, _ = self.dataset(name)
        self.record(name, "real (full train)", 0, None, train["text"].tolist(), train["label"].tolist(), {})
        sub = train.sample(n=min(self.args.rows, len(train)), random_state=0)
        self.record(
            name, f"real ({len(sub)} train texts)", 0, None, sub["text"].tolist(), sub["label"].tolist(), {}
        )

    def embedding_probe(self, name: str, n_train: int = 1000, n_test: int = 300) -> None:
        """Which public space routes votes better: 1-NN label agreement of real test texts to real train
        texts (a private text votes for its nearest candidate: same-label neighbours mean useful votes)."""
        from safesynth.gateway.engines.text.embed import ModelEmbedder, top_k_neighbours

        train, test = self.dataset(name)
        tr = train.sample(n=min(n_train, len(train)), random_state=1)
        te = test.sample(n=min(n_test, len(test)), random_state=1)
        spaces = {"hashing": self.hashing, "model": ModelEmbedder(self.raw_runner, "SmolLM2-135M")}
        for space, embedder in spaces.items():
            started = time.perf_counter()
            nn = top_k_neighbours(embedder.embed(te["text"].tolist()), embedder.embed(tr["text"].tolist()), 1)
            pred = tr["label"].to_numpy()[nn[:, 0]]
            truth = te["label"].to_numpy()
            labels = sorted(set(truth))
            recalls = [float(np.mean(pred[truth == lab] == lab)) for lab in labels]
            row = {
                "dataset": name,
                "method": f"embedding probe: {space}",
                "seed": 1,
                "epsilon": None,
                "n_texts": len(tr),
                "accuracy": round(float(np.mean(pred == truth)), 4),
                "macro_f1": round(float(np.mean(recalls)), 4),
                "note": "1-NN accuracy / balanced accuracy (macro-F1 column) of test->train in this space",
                "seconds": round(time.perf_counter() - started, 1),
            }
            self.results["runs"].append(row)
            print(json.dumps(row), flush=True)
            self.save()

    def _generator(self, name: str) -> CandidateGenerator:
        spec = DATASETS[name]
        prompts = PromptBuilder(spec["description"], spec["labels"], max_chars=spec["max_chars"])
        budget = GenerationBudget(max_tokens=self.args.max_tokens, max_chars=spec["max_chars"])
        return CandidateGenerator(self.runner, prompts, budget)

    def zero_shot(self, name: str, seed: int) -> None:
        gen = self._generator(name)
        labels = list(DATASETS[name]["labels"])
        per = allocate(self.args.rows, [1.0] * len(labels))  # no private data: equal (public) shares
        # the same public random stream as the engine's first population for this seed (shared cache)
        rng = post_processing_generator(RandomSource.seeded(seed))
        label_gens = [np.random.default_rng(int(rng.integers(0, 2**63))) for _ in labels]
        started = time.perf_counter()
        cached0 = self.runner.hit_seconds
        texts: list[str] = []
        out_labels: list[str] = []
        for lab, n, label_gen in zip(labels, per, label_gens, strict=True):
            got = gen.random(lab, n, label_gen)
            texts += got
            out_labels += [lab] * len(got)
        self.record(
            name,
            "zero-shot (no private data)",
            seed,
            0.0,
            texts,
            out_labels,
            {
                "seconds": round(time.perf_counter() - started, 1),
                "cached_generation_seconds": round(self.runner.hit_seconds - cached0, 1),
                "generation": gen.stats.to_json(),
            },
        )

    def pe(
        self, name: str, seed: int, epsilon: float, embedding: str = "hashing", iterations: int = 0
    ) -> None:
        train, _ = self.dataset(name)
        spec = DATASETS[name]
        # only what a user passes: the public label descriptions and the length budget; every other
        # option is the engine's default unless a flag overrides it (then it is recorded in the row)
        options: dict[str, Any] = {"label_descriptions": spec["labels"], "max_tokens": self.args.max_tokens}
        overrides = {
            "iterations": iterations or self.args.iterations,
            "embedding": None if embedding == "hashing" else embedding,
            "label_mix": self.args.label_mix,
            "output_selection": self.args.output_selection,
            "threshold_sigmas": self.args.threshold_sigmas,
            "candidates": self.args.candidates or None,
        }
        options.update({k: v for k, v in overrides.items() if v is not None})
        request = SynthesisRequest(
            engine="text", epsilon=epsilon, delta=self.args.delta, rows=self.args.rows, options=options
        )
        engine = TextEngine()
        schema = schema_for(name)
        plan = engine.plan(schema, request)
        ctx = EngineContext(rng=RandomSource.seeded(seed), runner=self.runner)  # type: ignore[arg-type]
        started = time.perf_counter()
        cached0 = self.runner.hit_seconds
        out = engine.run(plan, schema, train, ctx)
        seconds = time.perf_counter() - started
        cached = self.runner.hit_seconds - cached0
        report = dict(out.report)
        non_default = sorted(set(options) - {"label_descriptions", "max_tokens"})
        method = (
            "private evolution (engine defaults)"
            if not non_default
            else ("private evolution (" + ", ".join(f"{k}={options[k]}" for k in non_default) + ")")
        )
        self.record(
            name,
            method,
            seed,
            epsilon,
            out.table["text"].tolist(),
            out.table["label"].tolist(),
            {
                "seconds": round(seconds, 1),
                "cached_generation_seconds": round(cached, 1),
                "generation": report["generation"],
                "options": {k: v for k, v in options.items() if k != "label_descriptions"},
                "resolved": {
                    k: plan.options["resolved"][k]
                    for k in ("iterations", "output_selection", "label_mix", "embedding", "hubness")
                },
                "candidates_planned": plan.options["derived"]["candidates"],
                "sigma_vote": round(report["sigma_vote"], 3),
                "sigma_count": round(report["sigma_count"], 3) if report["sigma_count"] else None,
                "accountant_epsilon": round(float(plan.cost.epsilon), 4),
                "candidates": report["per_label"],
                "noisy_label_counts": report["noisy_label_counts"],
            },
        )

    def selection_study(self, name: str, seed: int, epsilons: Sequence[float], repeats: int = 3) -> None:
        """Output selection rules on the TRAINING split only (no test data): half of it votes, the other
        half is the evaluation set. The population is the engine's first population for ``seed`` (public,
        from the cache); votes are the engine's (hashing + CSLS), scaled by 2 so that their signal to noise
        matches a full-size run, with the engine's noise for each epsilon; a repeated pick is counted as a
        duplicate of its candidate (the classifier's weight), not a fresh variation (no generation)."""
        from sklearn.model_selection import train_test_split

        from safesynth.gateway.engines.text.accounting import calibrate
        from safesynth.gateway.engines.text.embed import hubness_penalty
        from safesynth.gateway.engines.text.selection import apply_threshold, select_output
        from safesynth.gateway.engines.text.vote import PrivateCorpus

        train, _ = self.dataset(name)
        votes, held = train_test_split(train, test_size=0.5, random_state=777, stratify=train["label"])
        labels = list(DATASETS[name]["labels"])
        corpus = PrivateCorpus({lab: votes.loc[votes["label"] == lab, "text"].tolist() for lab in labels})
        per_label = self.args.rows // len(labels)
        gen = self._generator(name)
        rng = post_processing_generator(RandomSource.seeded(seed))
        label_gens = [np.random.default_rng(int(rng.integers(0, 2**63))) for _ in labels]
        cands = allocate(int(np.ceil(1.2 * self.args.rows)), [1.0] * len(labels))
        pops = [
            list(dict.fromkeys(gen.random(lab, m, g)))
            for lab, m, g in zip(labels, cands, label_gens, strict=True)
        ]
        embedded = [self.hashing.embed(p) for p in pops]
        scale = len(train) / len(votes)
        hists = [
            corpus.vote_histogram(lab, e, embedder=self.hashing, k=1, penalty=hubness_penalty(e)) * scale
            for lab, e in zip(labels, embedded, strict=True)
        ]

        def score(texts: list[str], labs: list[str]) -> float:
            return classify(texts, labs, held)["macro_f1"]

        row: dict[str, Any] = {
            "dataset": name,
            "seed": seed,
            "zero_shot": score(
                [t for p in pops for t in p[:per_label]],
                [lab for lab, p in zip(labels, pops, strict=True) for _ in p[:per_label]],
            ),
        }
        for eps in epsilons:
            noise = calibrate(
                epsilon=eps, delta=self.args.delta, iterations=1, sensitivity=1, count_share=0.1
            )
            scores: dict[str, list[float]] = {"proportional": [], "rank": [], "sample": []}
            for rep in range(repeats):
                noise_gen = np.random.default_rng([seed, rep, int(eps * 1000)])
                noisy = [h + noise_gen.normal(0.0, noise.sigma_vote, h.shape[0]) for h in hists]
                for mode, got in scores.items():
                    texts: list[str] = []
                    labs: list[str] = []
                    for lab, pop, h in zip(labels, pops, noisy, strict=True):
                        weights = apply_threshold(h, noise.sigma_vote)
                        picks, _ = select_output(weights, per_label, mode, noise_gen)  # type: ignore[arg-type]
                        texts += [pop[int(i)] for i in picks]
                        labs += [lab] * len(picks)
                    got.append(score(texts, labs))
            for mode, got in scores.items():
                row[f"{mode}@{eps:g}"] = round(float(np.mean(got)), 4)
        self.results.setdefault("selection_study", []).append(row)
        print(json.dumps(row), flush=True)
        self.save()

    def baseline(self, name: str, seed: int, epsilon: float) -> None:
        train, _ = self.dataset(name)
        spec = DATASETS[name]
        gen = self._generator(name)
        by_label = {lab: train.loc[train["label"] == lab, "text"].tolist() for lab in spec["labels"]}
        started = time.perf_counter()
        texts, labels, info = paper_baseline(
            gen,
            by_label,
            rows=self.args.baseline_rows or self.args.rows,
            epsilon=epsilon,
            description=spec["description"],
            label_descriptions=spec["labels"],
            seed=seed,
            label_mix=self.args.label_mix or "balanced",
        )
        self.record(
            name,
            "paper-style in-context baseline (NOT DP)",
            seed,
            epsilon,
            texts,
            labels,
            {
                "seconds": round(time.perf_counter() - started, 1),
                "generation": gen.stats.to_json(),
                "not_dp": True,
                "requested": self.args.baseline_rows or self.args.rows,
                "dropped_outputs": info["dropped"],
            },
        )


def _ms(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return ""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape[0] == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def summary(results: Mapping[str, Any]) -> list[str]:
    """One row per (data set, method, epsilon): mean ± sd over seeds."""
    groups: dict[tuple[str, str, Any], list[Mapping[str, Any]]] = {}
    for r in results["runs"]:
        if r["method"].startswith("embedding probe"):
            continue
        groups.setdefault((r["dataset"], r["method"], r["epsilon"]), []).append(r)
    lines = [
        "| data set | method | epsilon | seeds | texts | accuracy | macro-F1 | mmd hashing | exact copy | "
        "8-gram | wall s | cold s | tok/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, method, eps), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv[0]))):
        walls = [r["seconds"] for r in rows if "seconds" in r]
        colds = [r["seconds"] + r.get("cached_generation_seconds", 0.0) for r in rows if "seconds" in r]
        toks = [r["generation"]["tokens_per_second"] for r in rows if r.get("generation")]
        lines.append(
            f"| {name} | {method} | {'' if eps is None else f'{eps:g}'} | {len(rows)} | "
            f"{_ms([r['n_texts'] for r in rows], 0)} | {_ms([r['accuracy'] for r in rows])} | "
            f"{_ms([r['macro_f1'] for r in rows])} | "
            f"{_ms([r['mmd_hashing'] for r in rows if 'mmd_hashing' in r], 4)} | "
            f"{_ms([r['exact_copy_share'] for r in rows if 'exact_copy_share' in r])} | "
            f"{_ms([r['shared_8gram_share'] for r in rows if 'shared_8gram_share' in r])} | "
            f"{_ms(walls, 0)} | {_ms(colds, 0)} | {_ms(toks, 1)} |"
        )
    return lines


def _order(key: tuple[str, str, Any]) -> tuple[int, float]:
    _, method, eps = key
    rank = 0 if method.startswith("zero") else 1 if method.startswith("private") else 2
    rank = 3 if method.startswith("real") else rank
    return rank, -1.0 if eps is None else float(eps)


def goal_check(results: Mapping[str, Any]) -> list[str]:
    """PE at epsilon 4 against zero-shot, paired by seed (the same public candidates)."""
    lines = []
    for name in sorted({r["dataset"] for r in results["runs"]}):
        zero = {
            r["seed"]: r for r in results["runs"] if r["dataset"] == name and r["method"].startswith("zero")
        }
        pe4 = {
            r["seed"]: r
            for r in results["runs"]
            if r["dataset"] == name and r["method"].startswith("private evolution") and r["epsilon"] == 4.0
        }
        seeds = sorted(set(zero) & set(pe4))
        if not seeds:
            lines.append(f"- {name}: not measured")
            continue
        d_f1 = [pe4[s]["macro_f1"] - zero[s]["macro_f1"] for s in seeds]
        d_acc = [pe4[s]["accuracy"] - zero[s]["accuracy"] for s in seeds]
        walls = [pe4[s]["seconds"] + pe4[s].get("cached_generation_seconds", 0.0) for s in seeds]
        lines.append(
            f"- {name} ({len(seeds)} seeds {seeds}): macro-F1 PE - zero-shot per seed "
            f"{', '.join(f'{d:+.3f}' for d in d_f1)} (mean {np.mean(d_f1):+.3f}); accuracy "
            f"{', '.join(f'{d:+.3f}' for d in d_acc)} (mean {np.mean(d_acc):+.3f}); PE cold wall time "
            f"{', '.join(f'{w:.0f}' for w in walls)} s"
        )
    return lines


def selection_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The output-selection study (validation split of the training data): macro-F1 per rule."""
    if not rows:
        return []
    keys = [k for k in rows[0] if "@" in k]
    lines = [
        "",
        "## Output selection study (training split only: half votes, half evaluates)",
        "",
        "macro-F1 on the held-out half of the TRAINING split, mean of 3 noise draws; repeated picks counted "
        "as duplicates (no variations generated).",
        "",
        "| data set | seed | zero-shot | " + " | ".join(keys) + " |",
        "|---|---:|---:|" + "---:|" * len(keys),
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['zero_shot']:.3f} | "
            + " | ".join(f"{r[k]:.3f}" for k in keys)
            + " |"
        )
    for name in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == name]
        means = " | ".join(f"{np.mean([r[k] for r in sub]):.3f}" for k in keys)
        lines.append(f"| {name} | mean | {np.mean([r['zero_shot'] for r in sub]):.3f} | {means} |")
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    lines = [
        "# Text engine benchmark (Private Evolution)",
        "",
        f"Command: `{results['command']}`; started {results['started']}, "
        f"last update {results.get('finished')}.",
        f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} cores, Python "
        f"{results['machine']['python']}; load average {results['machine']['load_at_start']:.2f} at start, "
        f"{results.get('load_now', 0):.2f} at the last update. **The 2 cores were shared with other "
        "helpers' builds and tests during the run: times are pessimistic and noisy.**",
        f"Versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}.",
        f"Model: `{Path(results['model']['path']).name}` sha256 `{results['model']['sha256']}`.",
        f"DP core used: {results.get('dp_core')}.",
        f"Configuration: {json.dumps({k: v for k, v in results['config'].items() if k != 'out'})}.",
        "",
        "Classifier: TF-IDF (word 1-2-grams, sublinear tf) + logistic regression (C=10), trained on "
        "the texts of the row, tested on the real test split. mmd = squared distance of mean unit-norm "
        "embeddings (hashing space; model space on the first texts). leak = share of texts that are exact "
        "copies / share an 8-word n-gram with a training text.",
        "",
        "## Summary (mean ± sd over seeds)",
        "",
        "wall s = measured wall time of the run; cold s = wall time plus the original generation time of "
        "the public candidates it reused from the cache (what the run costs alone).",
        "",
        *summary(results),
        "",
        "## Every run",
        "",
        "| data set | method | epsilon | seed | texts | accuracy | macro-F1 | mmd hashing | mmd model | "
        "exact copy | 8-gram | gen s | tok/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        g = r.get("generation") or {}
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:g}"
        lines.append(
            f"| {r['dataset']} | {r['method']} | {eps} | {r['seed']} | {r['n_texts']} | "
            f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r.get('mmd_hashing', '')} | {r.get('mmd_model', '')} | {r.get('exact_copy_share', '')} | "
            f"{r.get('shared_8gram_share', '')} | {r.get('seconds', '')} | {g.get('tokens_per_second', '')} |"
        )
    lines += ["", "## Goal check: private evolution at epsilon 4 against zero-shot", ""]
    lines += goal_check(results)
    lines += selection_table(results.get("selection_study") or [])
    if results.get("notes"):
        lines += ["", "## What was run, and reading", "", *results["notes"]]
    lines += ["", "## Examples (first texts of each label)", ""]
    for r in results["runs"]:
        if "examples" in r and not r["method"].startswith("real"):
            lines.append(f"**{r['dataset']} / {r['method']} / epsilon {r['epsilon']}**")
            for lab, ex in r["examples"].items():
                for t in ex:
                    lines.append(f"- `{lab}`: {t}")
            lines.append("")
    return "\n".join(lines) + "\n"


def merge(paths: Sequence[str], out: str) -> None:
    """Merge the text.json of several partial runs (e.g. one process per data set) into one report."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(parts[0])
    merged["command"] = " ; ".join(p["command"] for p in parts)
    seen: set[tuple[str, str, Any, Any]] = set()
    merged["runs"] = []
    for part in parts:
        for run in part["runs"]:
            key = (run["dataset"], run["method"], run["seed"], run["epsilon"])
            if key not in seen:  # the real-data rows are computed by every partial run
                seen.add(key)
                run.setdefault("dp_core", part.get("dp_core"))
                merged["runs"].append(run)
    merged["selection_study"] = [row for part in parts for row in part.get("selection_study") or []]
    merged["dp_core"] = " | ".join(sorted({str(p.get("dp_core")) for p in parts}))
    merged["load_now"] = max(p.get("load_now", 0.0) for p in parts)
    merged["finished"] = max(p.get("finished", "") for p in parts)
    merged["partials"] = list(paths)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "text.json").write_text(json.dumps(merged, indent=2, default=str) + "\n")
    (Path(out) / "text.md").write_text(markdown(merged))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        merge(sys.argv[3:], sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT / "tests" / "data"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--datasets", default="sms_spam,sentiment")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epsilons", default="4,1,10")
    parser.add_argument("--delta", type=float, default=1e-5)
    # engine options: None = the engine's default (what a user gets)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=None, help="candidates per iteration, all labels")
    parser.add_argument("--label-mix", default=None, choices=("balanced", "dp_shares"))
    parser.add_argument("--output-selection", default=None, choices=("proportional", "rank", "sample"))
    parser.add_argument("--threshold-sigmas", type=float, default=None)
    parser.add_argument(
        "--baseline-rows", type=int, default=0, help="texts of the NOT-DP baseline (0: --rows)"
    )
    parser.add_argument(
        "--cache", default="/tmp/safesynth_text_bench_cache.jsonl", help="JSON-lines cache of generations"
    )
    parser.add_argument("--baseline-seeds", default="0", help="seeds of the NOT-DP baseline")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-zero-shot", action="store_true")
    parser.add_argument(
        "--zero-shot-only", action="store_true", help="only zero-shot (fills the cache for a later PE run)"
    )
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--max-test", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embed-sample", type=int, default=300)
    parser.add_argument(
        "--model-distance", action="store_true", help="also the model-space distance (slower)"
    )
    parser.add_argument(
        "--model-embedding", action="store_true", help="also PE at eps 4 with model embeddings"
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-main", action="store_true", help="only the requested studies")
    parser.add_argument("--embedding-probe", action="store_true", help="only the 1-NN embedding probe")
    parser.add_argument("--probe-train", type=int, default=1000)
    parser.add_argument("--probe-test", type=int, default=300)
    parser.add_argument("--only-baseline", action="store_true", help="only the NOT-DP paper-style baseline")
    parser.add_argument(
        "--selection-study", action="store_true", help="only the output-selection study (training split only)"
    )
    parser.add_argument(
        "--embedding-study", action="store_true", help="PE at eps 4 with T=1, hashing vs model embedding"
    )
    args = parser.parse_args()
    bench = Bench(args)
    names = args.datasets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    epsilons = [float(e) for e in args.epsilons.split(",")]
    for name in [] if args.skip_real else names:
        bench.real(name)
    if args.embedding_probe:
        for name in names:
            bench.embedding_probe(name, args.probe_train, args.probe_test)
        bench.save()
        return
    if args.selection_study:
        for seed in seeds:
            for name in names:
                bench.selection_study(name, seed, epsilons)
        bench.save()
        return
    if args.only_baseline:
        for seed in seeds:
            for name in names:
                bench.baseline(name, seed, 4.0)
        bench.save()
        return
    if args.embedding_study:
        for seed in seeds:
            for name in names:
                for embedding in ("hashing", "model"):
                    bench.pe(name, seed, 4.0, embedding=embedding, iterations=1)
    if args.zero_shot_only:
        for seed in seeds:
            for name in names:
                bench.zero_shot(name, seed)
        bench.save()
        return
    for seed in [] if args.skip_main else seeds:
        for name in names:
            # the first epsilon runs cold (its wall time is the one to read); zero-shot and the other
            # epsilons reuse its public candidates (same prompts and seeds) from the cache
            bench.pe(name, seed, epsilons[0])
            if not args.skip_zero_shot:
                bench.zero_shot(name, seed)
            for eps in epsilons[1:]:
                bench.pe(name, seed, eps)
    for seed in [] if args.skip_baseline else [int(x) for x in args.baseline_seeds.split(",") if x]:
        for name in names:
            bench.baseline(name, seed, 4.0)
        if args.model_embedding:
            for name in names:
                bench.pe(name, seed, 4.0, embedding="model")
    bench.save()


if __name__ == "__main__":
    main()
