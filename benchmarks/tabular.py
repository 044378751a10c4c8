"""Benchmark of the tabular engine on UCI Adult (fit on the UCI train split, evaluate on the test split).

Reproduce (from the repository root):

    .venv/bin/pip install -e ".[gateway,bench]"        # bench adds mbi (private-pgm) for MST
    .venv/bin/python benchmarks/tabular.py              # full run -> benchmarks/results/tabular.*
    .venv/bin/python benchmarks/tabular.py --quick      # epsilon 1, one seed, no MST, no text

Split over short locked runs (as for the published results; then ``--merge DIR ...``):

    flock /tmp/safesynth-bench.lock .venv/bin/python benchmarks/tabular.py --epsilons 1.0 --no-mst \
        --no-text --no-private-schema --seeds 3 --floor-seeds 1 --out /tmp/g1.0      # one per epsilon
    flock /tmp/safesynth-bench.lock .venv/bin/python benchmarks/tabular.py --epsilons --no-text \
        --no-private-schema --mst-seeds 1 --seed-start 2 --mst-epsilons 1.0 --mst-iters 1000 --out /tmp/m2

Methods, side by side in the same run and on the same public schema (category lists and numeric bounds
treated as public, as in the DP synthesis literature):

* ``ours``: the tabular engine with its default options (``model="adaptive"``: AIM-style rounds,
  exponential-mechanism selection of 2- and 3-way marginals, Gaussian measurements, a Bayesian network
  of degree 2 whose refined columns combine several measured tables by iterative proportional fitting,
  its rows raked to the combined 1-way estimates at the end);
* ``tree``: the tabular engine with ``model="tree"`` (MST-style spanning tree model in numpy);
* ``independent``: the same engine with ``model="independent"`` (1-way marginals only): the floor;
* ``mst``: MST (McKenna, Miklau & Sheldon 2021) with Private-PGM (``mbi`` 2.0, JAX), the reference
  algorithm ported to mbi's 2.0 API (rho/3 each for the 1-ways, the selection and the 2-ways; a group of k
  measurements shares its third: sigma * sqrt(k)), noise calibrated with our accountant to the same
  (epsilon, delta).

Metrics: mean 1-, 2- and 3-way total variation distance to the training data (numeric columns in 10
quantile bins of the real training data; every column pair / triple), train-on-synthetic test-on-real
accuracy and ROC AUC for ``income`` (LogisticRegression and HistGradientBoosting), fit+sample time,
peak memory (each fit runs in a fresh process; peak RSS above the process's baseline after loading).
Also the text columns: rows per second of the local model writing ``review`` on the drug-review sample.

Second table (``--second-table``): the same TVD metrics on ``pums_1000.csv`` (1,000 rows, 6 columns; public
bounds age 0-100, income 0-500,000; categories as listed) for ours, tree and MST: every choice made on
Adult is checked there.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for sub in ("gateway", "sdk", "ledger"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

DATA = Path(os.environ.get("SAFESYNTH_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"
TARGET = "income"
POSITIVE = ">50K"
DELTA = 1e-6
#: Public bounds of Adult's numeric columns (UCI documentation ranges, rounded outward).
PUBLIC_BOUNDS = {
    "age": (17, 90),
    "fnlwgt": (10_000, 1_500_000),
    "education_num": (1, 16),
    "capital_gain": (0, 99_999),
    "capital_loss": (0, 4_500),
    "hours_per_week": (1, 99),
}


# ------------------------------------------------------------------------------------------- data
def load_adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    """UCI's train and test splits (the ``split`` column of the shared copy)."""
    df = pd.read_csv(DATA / "adult.csv")
    train = df[df["split"] == "train"].drop(columns="split").reset_index(drop=True)
    test = df[df["split"] == "test"].drop(columns="split").reset_index(drop=True)
    return train, test


def adult_schema(train: pd.DataFrame, test: pd.DataFrame, *, public: bool = True) -> Any:
    """The public schema: bounds from the UCI documentation, category lists as published by UCI
    (here: the values of train and test together, which are those lists)."""
    from safesynth.sdk.schema import ColumnSpec, DatasetSchema

    both = pd.concat([train, test])
    cols = []
    for name in train.columns:
        if name in PUBLIC_BOUNDS:
            lo, hi = PUBLIC_BOUNDS[name]
            cols.append(
                ColumnSpec(
                    name=name,
                    kind="numeric",
                    integer=True,
                    lower=float(lo) if public else None,
                    upper=float(hi) if public else None,
                )
            )
        else:
            cats = tuple(sorted(str(v) for v in both[name].dropna().unique()))
            cols.append(ColumnSpec(name=name, kind="categorical", categories=cats if public else None))
    return DatasetSchema(columns=tuple(cols), description="UCI Adult census income")


# ----------------------------------------------------------------------------------------- metrics
def eval_codes(real: pd.DataFrame, frames: list[pd.DataFrame], numeric: Any = None) -> list[np.ndarray]:
    """Discretize for TVD: numeric (``numeric``, default Adult's) in 10 quantile bins of ``real``,
    categorical by ``real``'s values (unseen values and nulls get codes of their own)."""
    numeric = PUBLIC_BOUNDS if numeric is None else numeric
    outs = [np.zeros((len(f), real.shape[1]), dtype=np.int64) for f in frames]
    sizes = []
    for j, name in enumerate(real.columns):
        if name in numeric:
            edges = np.unique(np.quantile(real[name].astype(float), np.linspace(0, 1, 11))[1:-1])
            for out, f in zip(outs, frames, strict=True):
                v = pd.to_numeric(f[name], errors="coerce").astype(float).to_numpy()
                out[:, j] = np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
            sizes.append(len(edges) + 2)
        else:
            cats = {c: i for i, c in enumerate(sorted(str(v) for v in real[name].dropna().unique()))}
            for out, f in zip(outs, frames, strict=True):
                vals = f[name].astype(object).to_numpy()
                out[:, j] = [
                    len(cats) + 1
                    if (v is None or (isinstance(v, float) and math.isnan(v)))
                    else cats.get(str(v), len(cats))
                    for v in vals
                ]
            sizes.append(len(cats) + 2)
    return [*outs, np.array(sizes)]  # type: ignore[list-item]


def tvd(real: pd.DataFrame, synth: pd.DataFrame, numeric: Any = None) -> dict[str, float]:
    """Mean k-way TVD over all column sets of size 1, 2, 3."""
    r, s, sizes = eval_codes(real, [real, synth], numeric)
    out = {}
    d = r.shape[1]
    for k in (1, 2, 3):
        errs = []
        for cols in itertools.combinations(range(d), k):
            flat_r = np.zeros(len(r), dtype=np.int64)
            flat_s = np.zeros(len(s), dtype=np.int64)
            size = 1
            for c in cols:
                flat_r = flat_r * sizes[c] + r[:, c]
                flat_s = flat_s * sizes[c] + s[:, c]
                size *= int(sizes[c])
            pr = np.bincount(flat_r, minlength=size) / max(len(r), 1)
            ps = np.bincount(flat_s, minlength=size) / max(len(s), 1)
            errs.append(0.5 * np.abs(pr - ps).sum())
        out[f"tvd_{k}way"] = float(np.mean(errs))
    return out


def _features(frame: pd.DataFrame, schema_cols: list[str]) -> pd.DataFrame:
    x = frame[schema_cols].copy()
    for c in schema_cols:
        if c in PUBLIC_BOUNDS:
            x[c] = pd.to_numeric(x[c], errors="coerce").astype(float)
        else:
            x[c] = x[c].astype(object).where(x[c].notna(), "NA").astype(str)
    return x


def tstr(train_synth: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """Train on synthetic, test on real: accuracy and AUC of LR and HGB for ``income``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    feats = [c for c in test.columns if c != TARGET]
    num = [c for c in feats if c in PUBLIC_BOUNDS]
    cat = [c for c in feats if c not in PUBLIC_BOUNDS]
    ok = train_synth[TARGET].astype(object).isin(["<=50K", ">50K"]).to_numpy()
    synth = train_synth[ok]
    y = (synth[TARGET].astype(str) == POSITIVE).astype(int).to_numpy()
    y_test = (test[TARGET].astype(str) == POSITIVE).astype(int).to_numpy()
    out: dict[str, float] = {}
    if len(np.unique(y)) < 2:
        for m in ("lr", "hgb"):
            out[f"{m}_accuracy"] = float(accuracy_score(y_test, np.full_like(y_test, y[0] if len(y) else 0)))
            out[f"{m}_auc"] = 0.5
        return out
    x = _features(synth, feats)
    x_test = _features(test, feats)
    models = {
        "lr": LogisticRegression(max_iter=2000),
        "hgb": HistGradientBoostingClassifier(random_state=0),
    }
    for name, clf in models.items():
        pre = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat),
            ]
        )
        pipe = make_pipeline(pre, clf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(x, y)
            proba = pipe.predict_proba(x_test)[:, 1]
        out[f"{name}_accuracy"] = float(accuracy_score(y_test, (proba >= 0.5).astype(int)))
        out[f"{name}_auc"] = float(roc_auc_score(y_test, proba))
    return out


# ------------------------------------------------------------------------------------------ methods
def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (MB); ru_maxrss when unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux: clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


#: Benchmark method -> the engine's ``model`` option ("ours" is the engine's default).
MODELS = {"ours": "adaptive", "adaptive": "adaptive", "tree": "tree", "independent": "independent"}


def run_ours(train: pd.DataFrame, schema: Any, epsilon: float, seed: int, model: str) -> pd.DataFrame:
    """Plan and run the tabular engine (rows: the DP count of the original)."""
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines import get_engine
    from safesynth.gateway.engines.base import EngineContext, SynthesisRequest

    engine = get_engine("tabular")
    plan = engine.plan(schema, SynthesisRequest("tabular", epsilon, DELTA, options={"model": model}))
    out = engine.run(plan, schema, train, EngineContext(rng=RandomSource.seeded(seed)))
    return out.table


def _mst_discretizer(train: pd.DataFrame, schema: Any) -> tuple[dict[str, np.ndarray], dict[str, int], Any]:
    """MST's public discretization: integer columns with a range <= 128 as is; others in 64 equal-width
    bins of the public bounds with 0 as a value of its own; categories by the public list (+ null)."""
    codes: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    decoders: dict[str, Any] = {}
    for spec in schema.columns:
        col = train[spec.name]
        if spec.kind == "numeric":
            lo, hi = spec.lower, spec.upper
            v = np.clip(col.astype(float).to_numpy(), lo, hi)
            if hi - lo + 1 <= 128:
                codes[spec.name] = (v - lo).astype(np.int64)
                sizes[spec.name] = int(hi - lo + 1)
                decoders[spec.name] = ("int", lo)
            else:
                edges = np.linspace(max(lo, 0.0), hi, 65)
                c = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, 63) + 1
                c = np.where(v == 0, 0, c)
                codes[spec.name] = c.astype(np.int64)
                sizes[spec.name] = 65
                decoders[spec.name] = ("bins", edges)
        else:
            cats = list(spec.categories)
            index = {c: i for i, c in enumerate(cats)}
            vals = col.astype(object).to_numpy()
            codes[spec.name] = np.array(
                [len(cats) if pd.isna(x) else index.get(str(x), len(cats)) for x in vals], dtype=np.int64
            )
            sizes[spec.name] = len(cats) + 1
            decoders[spec.name] = ("cat", cats)
    return codes, sizes, decoders


def run_mst(train: pd.DataFrame, schema: Any, epsilon: float, seed: int, iters: int) -> pd.DataFrame:
    """MST with Private-PGM (mbi 2.0): the reference algorithm (examples/mst.py) on mbi's 2.0 API."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mbi import Dataset, Domain, LinearMeasurement, estimation
    from safesynth.gateway.dp import events
    from safesynth.gateway.engines.base import calibrate_noise_multiplier

    gen = np.random.default_rng(seed)
    codes, sizes, decoders = _mst_discretizer(train, schema)
    names = list(codes)
    d = len(names)

    # MST's split: rho/3 for the d 1-ways, rho/3 for the d-1 2-ways, rho/3 for selection ((d-1)
    # exponential mechanisms). As in the reference ``measure``, a group of k measurements shares its
    # rho/3: each has sigma * sqrt(k), sigma = sqrt(3 / (2 rho)).
    def mst_events(m: float) -> list[Any]:
        rho = 1.0 / m**2
        sigma = math.sqrt(3.0 / (2.0 * rho))
        eps_sel = math.sqrt(8.0 * (rho / 3.0) / (d - 1))
        return [
            events.GaussianEvent(sigma=sigma * math.sqrt(d), count=d),
            events.GaussianEvent(sigma=sigma * math.sqrt(d - 1), count=d - 1),
            events.ExponentialEvent(epsilon=eps_sel, count=d - 1),
        ]

    m = calibrate_noise_multiplier(mst_events, epsilon=epsilon, delta=DELTA)
    rho = 1.0 / m**2
    sigma1 = math.sqrt(3.0 / (2.0 * rho)) * math.sqrt(d)
    sigma2 = math.sqrt(3.0 / (2.0 * rho)) * math.sqrt(d - 1)
    eps_sel = math.sqrt(8.0 * (rho / 3.0) / (d - 1))

    # 1-ways and MST's domain compression.
    supports = {}
    log1 = []
    comp_codes = {}
    comp_sizes = {}
    for name in names:
        x = np.bincount(codes[name], minlength=sizes[name]).astype(float)
        y = x + gen.normal(0, sigma1, x.size)
        sup = y >= 3 * sigma1
        supports[name] = sup
        if sup.all():
            mapping = np.arange(x.size)
            y2 = y
            weights = np.ones(y.size)
        else:
            mapping = np.full(x.size, int(sup.sum()))
            mapping[sup] = np.arange(int(sup.sum()))
            g = float((~sup).sum())
            y2 = np.append(y[sup], y[~sup].sum() / math.sqrt(g))
            weights = np.ones(y2.size)
            weights[-1] = 1.0 / math.sqrt(g)
        comp_codes[name] = mapping[codes[name]]
        comp_sizes[name] = int(mapping.max() + 1)
        query = None if (weights == 1).all() else __import__("mbi").WeightedQuery(weights)
        log1.append(
            LinearMeasurement(y2, (name,), stddev=sigma1)
            if query is None
            else LinearMeasurement(y2, (name,), stddev=sigma1, query=query)
        )
    domain = Domain(names, [comp_sizes[n] for n in names])
    data = Dataset(comp_codes, domain)
    est = estimation.MirrorDescent().estimate(domain, log1, iters=iters // 5)
    weights_e = {}
    for a, b in itertools.combinations(names, 2):
        xhat = np.asarray(est.project([a, b]).datavector())
        x = np.asarray(data.project([a, b]).datavector())
        weights_e[(a, b)] = float(np.abs(x - xhat).sum())
    parent = {n: n for n in names}

    def find(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    edges = []
    for _ in range(d - 1):
        cand = [e for e in weights_e if find(e[0]) != find(e[1])]
        q = np.array([weights_e[e] for e in cand])
        s = 0.5 * eps_sel * (q - q.max())
        p = np.exp(s - np.log(np.exp(s).sum()))
        e = cand[int(gen.choice(len(cand), p=p / p.sum()))]
        edges.append(e)
        parent[find(e[0])] = find(e[1])
    log2 = []
    for a, b in edges:
        x = np.asarray(data.project([a, b]).datavector())
        log2.append(LinearMeasurement(x + gen.normal(0, sigma2, x.size), (a, b), stddev=sigma2))
    model = estimation.MirrorDescent().estimate(domain, log1 + log2, iters=iters)
    synth = model.synthetic_data()
    out = {}
    for name in names:
        c = np.asarray(synth.data[name]).astype(np.int64)
        sup = supports[name]
        idx, extra = np.flatnonzero(sup), np.flatnonzero(~sup)
        orig = np.empty(c.size, dtype=np.int64)
        rare = c == idx.size
        orig[~rare] = idx[c[~rare]]
        if rare.any():
            orig[rare] = extra[gen.integers(0, extra.size, int(rare.sum()))]
        kind, info = decoders[name]
        if kind == "int":
            out[name] = orig + info
        elif kind == "bins":
            lo_e, hi_e = info[np.maximum(orig - 1, 0)], info[np.minimum(orig, 64)]
            vals = np.rint(lo_e + gen.random(orig.size) * (hi_e - lo_e))
            out[name] = np.where(orig == 0, 0, vals)
        else:
            labels = np.array([*info, None], dtype=object)
            out[name] = labels[orig]
    return pd.DataFrame(out)


def _child(job: dict[str, Any], queue: Any) -> None:
    """Runs one fit+sample in a fresh process and reports time and peak memory."""
    try:
        train, _ = load_adult()
        schema = adult_schema(*load_adult(), public=job["public"])
        if job["method"] == "mst":  # import JAX before the baseline so its import is not counted
            import jax  # noqa: F401

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import mbi  # noqa: F401
        else:
            from safesynth.gateway.engines.tabular import engine  # noqa: F401
        _reset_peak()
        base = _status_mb("VmRSS")
        start = time.perf_counter()
        if job["method"] == "mst":
            synth = run_mst(train, schema, job["epsilon"], job["seed"], job["mst_iters"])
        else:
            synth = run_ours(train, schema, job["epsilon"], job["seed"], MODELS[job["method"]])
        seconds = time.perf_counter() - start
        queue.put(
            {"ok": True, "synth": synth, "seconds": seconds, "peak_mb": max(_status_mb("VmHWM") - base, 0.0)}
        )
    except Exception as exc:  # report, do not hang the parent
        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run_job(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(job, queue))
    proc.start()
    try:
        result: dict[str, Any] = queue.get(timeout=timeout)
    except Exception:
        result = {"ok": False, "error": f"timeout after {timeout} s"}
    proc.join(timeout=30)
    if proc.is_alive():
        proc.kill()
    return result


# ---------------------------------------------------------------------------------- second table
PUMS_BOUNDS = {"age": (0, 100), "income": (0, 500_000)}


def load_pums() -> tuple[pd.DataFrame, Any]:
    """``pums_1000.csv`` with its public schema (bounds above; categories as listed, as strings)."""
    from safesynth.sdk.schema import ColumnSpec, DatasetSchema

    df = pd.read_csv(DATA / "pums_1000.csv")
    cols = []
    for name in df.columns:
        if name in PUMS_BOUNDS:
            lo, hi = PUMS_BOUNDS[name]
            cols.append(ColumnSpec(name=name, kind="numeric", integer=True, lower=float(lo), upper=float(hi)))
        else:
            df[name] = df[name].astype(str)
            cats = tuple(sorted(df[name].unique()))
            cols.append(ColumnSpec(name=name, kind="categorical", categories=cats))
    return df, DatasetSchema(columns=tuple(cols), description="PUMS sample")


def bench_second_table(epsilons: list[float], seeds: int, mst_iters: int) -> list[dict[str, Any]]:
    """TVD of ours (default), tree and MST on the PUMS sample (in this process; one fit at a time)."""
    df, schema = load_pums()
    rows = []
    for eps in epsilons:
        for method in ("ours", "tree", "mst"):
            for seed in range(1, seeds + 1):
                start = time.perf_counter()
                if method == "mst":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        synth = run_mst(df, schema, eps, seed, mst_iters)
                else:
                    synth = run_ours(df, schema, eps, seed, MODELS[method])
                row = {"method": method, "epsilon": eps, "seed": seed, "ok": True}
                row.update(tvd(df, synth, PUMS_BOUNDS))
                row["seconds"] = time.perf_counter() - start
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- text
def bench_text(rows: int) -> dict[str, Any]:
    """Synthesize the drug-review sample with its review text written by the bundled model."""
    from safesynth.gateway.dp.rng import RandomSource
    from safesynth.gateway.engines.base import EngineContext
    from safesynth.gateway.engines.tabular.demo import drug_reviews_schema, run_tabular_demo
    from safesynth.gateway.llm import get_runner

    df = pd.read_csv(DATA / "drug_reviews_sample.csv")
    runner = get_runner()
    schema = drug_reviews_schema()
    ctx = EngineContext(rng=RandomSource.seeded(7), runner=runner)
    start = time.perf_counter()
    result = run_tabular_demo(df, schema, epsilon=1.0, delta=DELTA, rows=rows, ctx=ctx)
    seconds = time.perf_counter() - start
    text = result.report.get("text") or {}
    lengths = result.table["review"].astype(str).str.len()
    return {
        "rows": rows,
        "seconds_total": round(seconds, 2),
        "seconds_text": text.get("seconds"),
        "rows_per_second_text": round(rows / text["seconds"], 3) if text.get("seconds") else None,
        "completion_tokens": text.get("completion_tokens"),
        "mean_chars": float(lengths.mean()),
        "max_chars": int(lengths.max()),
        "budget_chars": schema.column("review").max_length,
    }


# --------------------------------------------------------------------------------------------- main
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "pandas", "scikit-learn", "mbi", "jax", "llama_cpp_python"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (method, epsilon)."""
    df = pd.DataFrame([r for r in rows if r.get("ok")])
    if df.empty:
        return []
    metrics = [
        c
        for c in df.columns
        if c.startswith(("tvd_", "lr_", "hgb_")) or c in ("seconds", "peak_mb", "load_1min")
    ]
    out = []
    for (method, eps), g in df.groupby(["method", "epsilon"], sort=True):
        item: dict[str, Any] = {"method": method, "epsilon": eps, "seeds": len(g)}
        for m in metrics:
            item[m] = round(float(g[m].mean()), 4)
            item[f"{m}_sd"] = round(float(g[m].std(ddof=1)), 4) if len(g) > 1 else 0.0
        out.append(item)
    return out


LABELS = {
    "ours": "ours, adaptive (default)",
    "tree": "ours, tree",
    "adaptive": "ours, adaptive",
    "independent": "independent floor",
    "mst": "MST (mbi)",
    "mst-variant": "MST variant (non-reference split)",
}


ORDER = ["ours", "mst", "mst-variant", "tree", "adaptive", "independent"]


def write_markdown(payload: dict[str, Any], path: Path) -> None:
    s = payload["summary"]
    lines = [
        "# Tabular engine benchmark (UCI Adult)",
        "",
        f"Machine: {payload['machine']}; {payload['note']}",
        f"Versions: {', '.join(f'{k} {v}' for k, v in payload['versions'].items())}",
        f"Command: `{payload['command']}`; delta = {DELTA}; fit on UCI train ({payload['n_train']} rows), "
        f"evaluate on UCI test ({payload['n_test']} rows); public schema (UCI category lists, bounds).",
        "",
        "Real-data ceiling (train on real train): "
        + ", ".join(f"{k} {v:.3f}" for k, v in payload["real"].items()),
        "",
        "| method | epsilon | seeds | 1-way TVD | 2-way TVD | 3-way TVD | LR acc | LR AUC | HGB acc "
        "| HGB AUC | fit+sample s | peak MB | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(s, key=lambda r: (r["epsilon"], ORDER.index(r["method"]) if r["method"] in ORDER else 9)):
        load = r.get("load_1min")
        load_text = "-" if load is None or load != load else f"{load:.1f}"
        lines.append(
            f"| {LABELS.get(r['method'], r['method'])} | {r['epsilon']} | {r['seeds']} | "
            f"{r['tvd_1way']:.4f} | {r['tvd_2way']:.4f} | "
            f"{r['tvd_3way']:.4f} | {r['lr_accuracy']:.3f} | {r['lr_auc']:.3f} | {r['hgb_accuracy']:.3f} | "
            f"{r['hgb_auc']:.3f} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {load_text} |"
        )
    if payload.get("second_table"):
        lines += [
            "",
            "Second table: `pums_1000.csv` (1,000 rows, 6 columns), mean k-way TVD to the table itself "
            "(no ML split: too small):",
            "",
            "| method | epsilon | seeds | 1-way TVD | 2-way TVD | 3-way TVD | fit+sample s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in payload["second_table"]:
            lines.append(
                f"| {LABELS.get(r['method'], r['method'])} | {r['epsilon']} | {r['seeds']} | "
                f"{r['tvd_1way']:.4f} | {r['tvd_2way']:.4f} | {r['tvd_3way']:.4f} | {r['seconds']:.2f} |"
            )
    if payload.get("private_schema"):
        lines += ["", "Private schema (DP bounds, bins and category selection paid from epsilon):", ""]
        for r in payload["private_schema"]:
            lines.append(
                f"- ours (default model), epsilon {r['epsilon']}, seeds {r['seeds']}: 1-/2-/3-way TVD "
                f"{r['tvd_1way']:.4f} / {r['tvd_2way']:.4f} / {r['tvd_3way']:.4f}, "
                f"LR acc {r['lr_accuracy']:.3f} / AUC {r['lr_auc']:.3f}, "
                f"HGB acc {r['hgb_accuracy']:.3f} / AUC {r['hgb_auc']:.3f}, "
                f"{r['seconds']:.2f} s (unselected categories become `__other__`, which the TVD counts as a "
                "category of its own)"
            )
    if payload.get("failures"):
        lines += ["", "Failures: " + "; ".join(payload["failures"])]
    if payload.get("text"):
        t = payload["text"]
        lines += [
            "",
            f"Text columns (drug-review sample, `review` written by the bundled SmolLM2-135M, budget "
            f"{t['budget_chars']} chars): {t['rows']} rows in {t['seconds_text']} s of text writing = "
            f"{t['rows_per_second_text']} rows/s ({t['completion_tokens']} tokens; "
            f"mean {t['mean_chars']:.0f} chars).",
        ]
    lines += ["", "Plot: `tabular.png` (utility vs epsilon, utility vs seconds).", ""]
    if payload.get("notes"):
        lines += ["## Notes", *payload["notes"], ""]
    path.write_text("\n".join(lines))


def plot(summary: list[dict[str, Any]], real: dict[str, float], path: Path) -> None:
    """Utility vs epsilon (1-way TVD, 2-way TVD, HGB AUC) and utility vs seconds (HGB AUC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    methods = [m for m in ORDER if any(r["method"] == m for r in summary)]
    for m in methods:
        rs = sorted((r for r in summary if r["method"] == m), key=lambda r: r["epsilon"])
        eps = [r["epsilon"] for r in rs]
        for ax, key in zip(axes[:3], ("tvd_1way", "tvd_2way", "hgb_auc"), strict=True):
            ax.errorbar(
                eps,
                [r[key] for r in rs],
                yerr=[r[f"{key}_sd"] for r in rs],
                marker="o",
                label=LABELS.get(m, m),
            )
        axes[3].scatter([r["seconds"] for r in rs], [r["hgb_auc"] for r in rs], label=LABELS.get(m, m))
        for r in rs:
            axes[3].annotate(f"eps {r['epsilon']}", (r["seconds"], r["hgb_auc"]), fontsize=7)
    axes[2].axhline(real["hgb_auc"], color="grey", ls="--", label="real data")
    axes[3].axhline(real["hgb_auc"], color="grey", ls="--")
    for ax in axes[:3]:
        ax.set_xscale("log")
        ax.set_xlabel("epsilon (delta 1e-6)")
    axes[0].set_yscale("log")
    axes[3].set_xscale("log")
    axes[3].set_xlabel("fit + sample seconds (2 shared cores)")
    axes[0].set_ylabel("mean 1-way TVD (lower is better)")
    axes[1].set_ylabel("mean 2-way TVD (lower is better)")
    axes[2].set_ylabel("HGB AUC, train synthetic / test real")
    axes[3].set_ylabel("HGB AUC")
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle("Tabular engine on UCI Adult (mean of seeds, error bars: sd)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def merge(dirs: list[Path], out: Path, notes: list[str] | None = None) -> None:
    """Combine the results of several partial runs (e.g. one process per epsilon) into one;
    ``notes`` (Markdown lines) go at the end of the report."""
    parts = [json.loads((d / "tabular.json").read_text()) for d in dirs]
    runs = [r for p in parts for r in p["runs"]]
    main_runs = [r for r in runs if r["method"] != "ours-private-schema"]
    private = [r for r in runs if r["method"] == "ours-private-schema"]
    payload = dict(parts[0])
    payload.update(
        {
            "command": "; ".join(p["command"] for p in parts) + f"; merged with --merge into {out}",
            "runs": runs,
            "summary": summarize(main_runs),
            "private_schema": summarize(private),
            "text": next((p["text"] for p in parts if p.get("text")), None),
            "second_table": next((p["second_table"] for p in parts if p.get("second_table")), None),
            "failures": [f for p in parts for f in p.get("failures", [])],
            "notes": notes,
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tabular.json").write_text(json.dumps(payload, indent=2, default=str))
    write_markdown(payload, out / "tabular.md")
    if payload["summary"]:
        plot(payload["summary"], payload["real"], out / "tabular.png")
    print((out / "tabular.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="epsilon 1, one seed, no MST, no text")
    parser.add_argument("--epsilons", type=float, nargs="*", default=[0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mst-seeds", type=int, default=None, help="seeds for MST (default: --seeds)")
    parser.add_argument("--mst-iters", type=int, default=5000, help="mirror descent iterations (MST: 5000)")
    parser.add_argument("--floor-seeds", type=int, default=None, help="seeds of the floor (default --seeds)")
    parser.add_argument("--no-floor", action="store_true", help="skip the independent-marginals floor")
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=None, help="merge the tabular.json of these result dirs"
    )
    parser.add_argument("--real-json", type=Path, default=None, help="cache of the real-data ceiling")
    parser.add_argument("--no-mst", action="store_true")
    parser.add_argument("--mst-epsilons", type=float, nargs="*", default=None, help="default: --epsilons")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per fit before giving up")
    parser.add_argument("--no-text", action="store_true")
    parser.add_argument(
        "--second-table", action="store_true", help="only the PUMS check (ours, tree, MST; TVD)"
    )
    parser.add_argument("--no-private-schema", action="store_true")
    parser.add_argument("--text-rows", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--notes", type=Path, default=None, help="with --merge: Markdown notes to append")
    parser.add_argument("--seed-start", type=int, default=1, help="first seed (split seeds over locked runs)")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=["ours", "tree", "independent"],
        help="our methods to run: ours (the default model, adaptive), tree, independent (the floor)",
    )
    args = parser.parse_args()
    if args.quick:
        args.epsilons, args.seeds, args.no_mst, args.no_text, args.no_private_schema = (
            [1.0],
            1,
            True,
            True,
            True,
        )
    if args.merge:
        merge(args.merge, args.out, args.notes.read_text().splitlines() if args.notes else None)
        return
    mst_seeds = args.mst_seeds if args.mst_seeds is not None else args.seeds
    if args.second_table:
        second = bench_second_table(args.epsilons, args.seeds, args.mst_iters)
        args.out.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "second_table": summarize(second),
            "second_table_runs": second,
            "runs": [],
            "command": "python benchmarks/tabular.py " + " ".join(sys.argv[1:]),
        }
        (args.out / "tabular.json").write_text(json.dumps(payload, indent=2, default=str))
        print(json.dumps(payload["second_table"], indent=1))
        return
    train, test = load_adult()
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    if args.real_json is not None and args.real_json.exists():
        real = json.loads(args.real_json.read_text())
    else:
        real = tstr(train, test)
        if args.real_json is not None:
            args.real_json.write_text(json.dumps(real))
    print("real", real, flush=True)
    private_rows: list[dict[str, Any]] = []
    text: dict[str, Any] | None = None

    def flush() -> None:
        """Write the results so far (JSON, Markdown, plot)."""
        payload = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "note": "2 cores shared with other work while measuring: times are indicative.",
            "versions": _versions(),
            "command": "python benchmarks/tabular.py " + " ".join(sys.argv[1:]),
            "n_train": len(train),
            "n_test": len(test),
            "delta": DELTA,
            "real": real,
            "runs": rows + private_rows,
            "summary": summarize(rows),
            "private_schema": summarize(private_rows),
            "text": text,
            "failures": failures,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tabular.json").write_text(json.dumps(payload, indent=2, default=str))
        write_markdown(payload, args.out / "tabular.md")
        if payload["summary"]:
            plot(payload["summary"], real, args.out / "tabular.png")

    def run_and_record(method: str, eps: float, seed: int) -> None:
        job = {"method": method, "epsilon": eps, "seed": seed, "public": True, "mst_iters": args.mst_iters}
        load = os.getloadavg()[0]
        res = run_job(job, timeout=args.timeout)
        if not res["ok"]:
            failures.append(f"{method} eps={eps} seed={seed}: {res['error']}")
            print("FAILED", failures[-1], flush=True)
            flush()
            return
        row = {"method": method, "epsilon": eps, "seed": seed, "ok": True}
        row.update(tvd(train, res["synth"]))
        row.update(tstr(res["synth"], test))
        row["seconds"] = res["seconds"]
        row["peak_mb"] = res["peak_mb"]
        row["load_1min"] = load
        row["utc"] = time.strftime("%H:%M:%S", time.gmtime())
        rows.append(row)
        print(json.dumps(row), flush=True)
        flush()

    for eps in args.epsilons:
        methods = [m for m in args.methods if not (args.no_floor and m == "independent")]
        for method in methods:
            n_seeds = args.seeds if method != "independent" else (args.floor_seeds or args.seeds)
            for seed in range(args.seed_start, args.seed_start + n_seeds):
                run_and_record(method, eps, seed)
    if not args.no_private_schema:
        for seed in range(1, args.seeds + 1):
            job = {"method": "ours", "epsilon": 1.0, "seed": seed, "public": False, "mst_iters": 0}
            res = run_job(job, timeout=1800)
            if res["ok"]:
                row = {"method": "ours-private-schema", "epsilon": 1.0, "seed": seed, "ok": True}
                row.update(tvd(train, res["synth"]))
                row.update(tstr(res["synth"], test))
                row["seconds"], row["peak_mb"] = res["seconds"], res["peak_mb"]
                private_rows.append(row)
                print(json.dumps(row), flush=True)
            else:
                failures.append(f"private schema seed={seed}: {res['error']}")
            flush()
    if not args.no_text:
        text = bench_text(args.text_rows)
        print("text", text, flush=True)
        flush()
    if not args.no_mst:
        for eps in args.mst_epsilons or args.epsilons:
            for seed in range(args.seed_start, args.seed_start + mst_seeds):
                run_and_record("mst", eps, seed)
    flush()
    print((args.out / "tabular.md").read_text())


if __name__ == "__main__":
    main()
