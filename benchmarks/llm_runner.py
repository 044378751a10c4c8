"""Benchmark of the llama.cpp runner against raw llama-cpp-python, in the same process and run.

Reproduce:  .venv/bin/python benchmarks/llm_runner.py --reps 9 --threads 1   (the recorded run)
            .venv/bin/python benchmarks/llm_runner.py            (or: make bench; default threads)
            .venv/bin/python benchmarks/llm_runner.py --reps 3 --quick --no-omp   (a shorter run)
Writes benchmarks/results/llm_runner.json and benchmarks/results/llm_runner.md.

What is measured (the bundled SmolLM2-135M-Instruct Q4_1 unless SAFESYNTH_MODEL_PATH is set):
- single: one greedy completion (a 72-token prompt, 32 new tokens), through ``Runner.complete`` and
  through ``Llama.create_completion`` on the same llama.cpp instance, with the KV cache cleared
  before each call so both evaluate the whole prompt. Same prompt, same output, same token counts.
- batch: 8 chat prompts sharing a system prompt (24 new tokens each, seeded sampling), through
  ``Runner.generate_batch`` and through a loop of ``Llama.create_chat_completion``.
- pool: the same batch through runners with 1 instance x 2 threads, 1 x 1 and 2 instances x 1 thread.
- OpenMP wait policy: greedy completions with 2 threads in fresh processes under
  ``OMP_WAIT_POLICY=PASSIVE`` (the runner's default) and ``ACTIVE`` (spinning).
``--threads 1`` for the overhead comparison keeps llama.cpp's own thread synchronisation out of the
runner-vs-raw difference on a loaded machine; the pool section covers the thread layouts.
Variants are interleaved (the order alternates each repetition) and medians are reported, because
other processes share the machine's cores.

Overhead of the runner = median over repetitions of runner/raw for adjacent pairs - 1, on process CPU
time (and, noisier, on wall time). Target: <= 5 %.
Prompt tokens/s come from llama.cpp's own prompt timer; generated tokens/s are completion tokens per
wall second of the call (prompt included), the number a caller sees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from safesynth.gateway.llm import Runner, RunnerConfig, inspect_model, resolve_model_path
from safesynth.gateway.llm.backend import cpu_count, import_llama_cpp

RESULTS = Path(__file__).resolve().parent / "results"

SINGLE_PROMPT = (
    "The following is a short report about a small town library. The library opened in 1952 and "
    "has served readers of all ages ever since. It holds about forty thousand books, a local history "
    "archive and a room for children. Volunteers run reading groups every week, and the staff organise "
    "an exhibition each spring. Summary of the report in one paragraph:"
)
SYSTEM = "You are a concise assistant. Answer in one short sentence."
BATCH_PROMPTS = [
    "Name a fruit.",
    "Describe the sea.",
    "What is a library?",
    "Give a city name.",
    "Suggest a hobby.",
    "Name an animal.",
    "What is rain?",
    "Describe a chair.",
]


def _perf(llama: Any) -> tuple[float, int, float, int]:
    llama_cpp = import_llama_cpp()
    data = llama_cpp.llama_perf_context(llama.ctx)
    return data.t_p_eval_ms / 1000.0, int(data.n_p_eval), data.t_eval_ms / 1000.0, int(data.n_eval)


def _perf_reset(llama: Any) -> None:
    import_llama_cpp().llama_perf_context_reset(llama.ctx)


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores_usable": cpu_count(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def bench_single(runner: Runner, reps: int, max_tokens: int) -> dict[str, Any]:
    """Runner.complete vs Llama.create_completion on the same instance, cold KV cache each call."""
    llama = runner._slots[0].llama
    samples: dict[str, list[dict[str, float]]] = {"runner": [], "raw": []}

    def via_runner() -> dict[str, float]:
        llama.reset()
        started, cpu = time.perf_counter(), time.process_time()
        g = runner.complete(SINGLE_PROMPT, max_tokens=max_tokens, temperature=0.0, seed=1)
        return {
            "wall": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens,
            "prompt_seconds": g.prompt_seconds,
            "eval_seconds": g.eval_seconds,
        }

    def via_raw() -> dict[str, float]:
        llama.reset()
        _perf_reset(llama)
        started, cpu = time.perf_counter(), time.process_time()
        out = llama.create_completion(SINGLE_PROMPT, max_tokens=max_tokens, temperature=0.0, seed=1, stop=[])
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        p_s, _, e_s, _ = _perf(llama)
        return {
            "wall": wall,
            "cpu": cpu,
            "prompt_tokens": out["usage"]["prompt_tokens"],
            "completion_tokens": out["usage"]["completion_tokens"],
            "prompt_seconds": p_s,
            "eval_seconds": e_s,
        }

    variants: dict[str, Callable[[], dict[str, float]]] = {"runner": via_runner, "raw": via_raw}
    via_runner()  # warm-up
    via_raw()
    for rep in range(reps):
        order = ["runner", "raw"] if rep % 2 == 0 else ["raw", "runner"]
        for name in order:
            samples[name].append(variants[name]())
    return _summarise(samples)


def bench_batch(runner: Runner, reps: int, max_tokens: int) -> dict[str, Any]:
    """Runner.generate_batch vs a loop of Llama.create_chat_completion (same instance)."""
    llama = runner._slots[0].llama
    samples: dict[str, list[dict[str, float]]] = {"runner": [], "raw": []}

    def via_runner() -> dict[str, float]:
        llama.reset()
        started, cpu = time.perf_counter(), time.process_time()
        batch = runner.generate_batch(
            BATCH_PROMPTS, max_tokens=max_tokens, temperature=0.7, seed=100, system=SYSTEM
        )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        u = batch.usage
        return {
            "wall": wall,
            "cpu": cpu,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "prompt_seconds": u.prompt_seconds,
            "eval_seconds": u.eval_seconds,
            "cached_prompt_tokens": u.cached_prompt_tokens,
        }

    def via_raw() -> dict[str, float]:
        llama.reset()
        totals = {
            "prompt_tokens": 0.0,
            "completion_tokens": 0.0,
            "prompt_seconds": 0.0,
            "eval_seconds": 0.0,
            "cached_prompt_tokens": 0.0,
        }
        started, cpu = time.perf_counter(), time.process_time()
        for i, prompt in enumerate(BATCH_PROMPTS):
            _perf_reset(llama)
            out = llama.create_chat_completion(
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                max_tokens=max_tokens,
                temperature=0.7,
                seed=100 + i,
            )
            p_s, n_p, e_s, _ = _perf(llama)
            prompt_tokens = out["usage"]["prompt_tokens"]
            totals["cached_prompt_tokens"] += max(0, prompt_tokens - n_p) if n_p else 0
            totals["prompt_tokens"] += prompt_tokens
            totals["completion_tokens"] += out["usage"]["completion_tokens"]
            totals["prompt_seconds"] += p_s
            totals["eval_seconds"] += e_s
        return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu, **totals}

    variants: dict[str, Callable[[], dict[str, float]]] = {"runner": via_runner, "raw": via_raw}
    via_runner()  # warm-up
    for rep in range(reps):
        order = ["runner", "raw"] if rep % 2 == 0 else ["raw", "runner"]
        for name in order:
            samples[name].append(variants[name]())
    return _summarise(samples)


def bench_pool(path: Path, reps: int, max_tokens: int) -> dict[str, Any]:
    """Batch wall time for pool/thread layouts: does a second instance help on this machine?"""
    layouts = {
        "1 instance x 2 threads": RunnerConfig(pool_size=1, n_threads=2),
        "1 instance x 1 thread": RunnerConfig(pool_size=1, n_threads=1),
        "2 instances x 1 thread": RunnerConfig(pool_size=2, n_threads=1),
    }
    runners = {name: Runner(path, config) for name, config in layouts.items()}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in layouts}
    names = list(layouts)
    for runner in runners.values():  # warm-up
        runner.generate_batch(BATCH_PROMPTS[:2], max_tokens=4, temperature=0.7, seed=1, system=SYSTEM)
    for rep in range(reps):
        order = names if rep % 2 == 0 else list(reversed(names))
        for name in order:
            cpu = time.process_time()
            batch = runners[name].generate_batch(
                BATCH_PROMPTS, max_tokens=max_tokens, temperature=0.7, seed=100, system=SYSTEM
            )
            samples[name].append(
                {
                    "wall": batch.usage.seconds,
                    "cpu": time.process_time() - cpu,
                    "prompt_tokens": batch.usage.prompt_tokens,
                    "completion_tokens": batch.usage.completion_tokens,
                    "prompt_seconds": batch.usage.prompt_seconds,
                    "eval_seconds": batch.usage.eval_seconds,
                }
            )
    for runner in runners.values():
        runner.close()
    return _summarise(samples)


_OMP_CHILD = """
import json, sys, time
from safesynth.gateway.llm import Runner, RunnerConfig
runner = Runner(None, RunnerConfig(n_threads=2, pool_size=1))
runner.complete("warm", max_tokens=2, temperature=0.0)
walls = []
for _ in range(int(sys.argv[1])):
    runner._slots[0].llama.reset()
    started = time.perf_counter()
    runner.complete(sys.argv[2], max_tokens=24, temperature=0.0)
    walls.append(time.perf_counter() - started)
print(json.dumps(walls))
"""


def bench_omp_policy(reps: int) -> dict[str, Any]:
    """Greedy 24-token completions with 2 threads under each libgomp wait policy (fresh processes,
    alternating): the runner sets PASSIVE by default because the default (spinning) collapses when
    other processes compete for the cores."""
    import subprocess

    walls: dict[str, list[float]] = {"PASSIVE": [], "ACTIVE": []}
    for rep in range(reps):
        for policy in ("PASSIVE", "ACTIVE") if rep % 2 == 0 else ("ACTIVE", "PASSIVE"):
            env = {**os.environ, "OMP_WAIT_POLICY": policy}
            done = subprocess.run(
                [sys.executable, "-c", _OMP_CHILD, "2", SINGLE_PROMPT],
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
                check=True,
            )
            walls[policy].extend(json.loads(done.stdout))
    return {
        policy: {
            "calls": len(values),
            "median_wall_seconds": round(_median(values), 3),
            "max_wall_seconds": round(max(values), 3),
        }
        for policy, values in walls.items()
    }


def _summarise(samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rows in samples.items():
        walls = [r["wall"] for r in rows]
        out[name] = {
            "reps": len(rows),
            "median_wall_seconds": round(_median(walls), 4),
            "median_cpu_seconds": round(_median([r["cpu"] for r in rows]), 4),
            "min_wall_seconds": round(min(walls), 4) if walls else 0.0,
            "max_wall_seconds": round(max(walls), 4) if walls else 0.0,
            "prompt_tokens": rows[0]["prompt_tokens"] if rows else 0,
            "completion_tokens_median": _median([r["completion_tokens"] for r in rows]),
            "prompt_tokens_per_second_median": round(
                _median(
                    [
                        (r["prompt_tokens"] - r.get("cached_prompt_tokens", 0)) / r["prompt_seconds"]
                        for r in rows
                        if r["prompt_seconds"] > 0
                    ]
                ),
                1,
            ),
            "generated_tokens_per_second_median": round(
                _median([r["completion_tokens"] / r["wall"] for r in rows if r["wall"] > 0]), 1
            ),
            "eval_tokens_per_second_median": round(
                _median([r["completion_tokens"] / r["eval_seconds"] for r in rows if r["eval_seconds"] > 0]),
                1,
            ),
        }
    if "runner" in out and "raw" in out:
        # Paired: repetition i of the runner ran right next to repetition i of raw (same load).
        pairs = list(zip(samples["runner"], samples["raw"], strict=True))
        cpu_ratios = [a["cpu"] / b["cpu"] for a, b in pairs if b["cpu"] > 0]
        wall_ratios = [a["wall"] / b["wall"] for a, b in pairs if b["wall"] > 0]
        out["runner_overhead_pct"] = round(100.0 * (_median(cpu_ratios) - 1.0), 2)
        out["runner_overhead_wall_pct"] = round(100.0 * (_median(wall_ratios) - 1.0), 2)
        out["paired_cpu_ratios"] = [round(r, 4) for r in cpu_ratios]
        out["paired_wall_ratios"] = [round(r, 4) for r in wall_ratios]
    return out


def _markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# llama.cpp runner benchmark",
        "",
        f"Command: `{result['command']}` ({result['timestamp']}).",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['platform']}, Python {m['python']}; "
        f"load average {m['load_average_start'][0]:.2f} at start, {m['load_average_end'][0]:.2f} at end.",
        "**The 2 cores were shared with other work during this run** (other helpers building and testing): "
        "absolute numbers are noisy and low; the variants were interleaved and medians are reported.",
        f"Versions: llama-cpp-python {result['versions']['llama_cpp_python']}, numpy "
        f"{result['versions']['numpy']}, safesynth {result['versions']['safesynth']}.",
        f"Model: `{Path(result['model']['path']).name}`, {result['model']['size']:,} bytes, "
        f"sha256 `{result['model']['sha256']}`, {result['model']['n_parameters']:,} parameters.",
        f"Runner under test: {result['runner_threads']} thread(s), 1 instance.",
        "",
        "Overhead = median over repetitions of (runner / raw) for adjacent pairs, on process CPU time "
        "(robust to other processes taking the cores) and on wall time (noisy here).",
        "",
        "| workload | path | median wall s | median CPU s | prompt tok/s | generated tok/s (wall) "
        "| eval tok/s | overhead CPU | overhead wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in ("single", "batch"):
        block = result[workload]
        for path in ("raw", "runner"):
            row = block[path]
            overhead = (
                f"{block['runner_overhead_pct']:+.2f} % | {block['runner_overhead_wall_pct']:+.2f} %"
                if path == "runner"
                else " | "
            )
            lines.append(
                f"| {workload} | {path} | {row['median_wall_seconds']:.3f} | "
                f"{row['median_cpu_seconds']:.3f} | "
                f"{row['prompt_tokens_per_second_median']:.1f} | "
                f"{row['generated_tokens_per_second_median']:.1f} | "
                f"{row['eval_tokens_per_second_median']:.1f} | {overhead} |"
            )
    lines += [
        "",
        "Pool and threads (the same 8-prompt batch through runners of each layout):",
        "",
        "| layout | median wall s | median CPU s | generated tok/s (wall) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["pool"].items():
        if isinstance(row, dict):
            lines.append(
                f"| {name} | {row['median_wall_seconds']:.3f} | {row['median_cpu_seconds']:.3f} | "
                f"{row['generated_tokens_per_second_median']:.1f} |"
            )
    if "omp_wait_policy" in result:
        lines += [
            "",
            "OpenMP wait policy (greedy 24-token completion, 2 threads, fresh process each; the runner "
            "sets `OMP_WAIT_POLICY=PASSIVE` unless the operator set it):",
            "",
            "| OMP_WAIT_POLICY | calls | median wall s | max wall s |",
            "|---|---:|---:|---:|",
        ]
        for policy, row in result["omp_wait_policy"].items():
            lines.append(
                f"| {policy} | {row['calls']} | {row['median_wall_seconds']:.3f} | "
                f"{row['max_wall_seconds']:.3f} |"
            )
    worst = max(result["single"]["runner_overhead_pct"], result["batch"]["runner_overhead_pct"])
    lines += [
        "",
        "Target (runner adds <= 5 % over raw llama-cpp-python): "
        f"**{'met' if result['meets_target'] else 'NOT met'}** "
        f"(worst paired median CPU-time overhead {worst:+.2f} %; negative = runner cheaper, i.e. noise).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions per variant (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="shorter outputs (16 tokens) for a fast check")
    parser.add_argument("--threads", type=int, default=None, help="threads of the runner under test")
    parser.add_argument("--no-omp", action="store_true", help="skip the OpenMP wait-policy comparison")
    args = parser.parse_args()
    max_single = 16 if args.quick else 32
    max_batch = 12 if args.quick else 24
    path = resolve_model_path()
    info = inspect_model(path)
    started = time.time()
    runner = Runner(path, RunnerConfig(n_threads=args.threads))
    result: dict[str, Any] = {
        "command": "python benchmarks/llm_runner.py " + " ".join(sys.argv[1:]),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": _machine(),
        "versions": {
            "llama_cpp_python": version("llama-cpp-python"),
            "numpy": version("numpy"),
            "safesynth": version("safesynth"),
        },
        "model": info.to_json(),
        "runner_threads": runner.config.threads_per_instance(),
        "reps": args.reps,
        "load_seconds": round(runner.load_seconds, 3),
    }
    print("single ...", file=sys.stderr, flush=True)
    result["single"] = bench_single(runner, args.reps, max_single)
    print("batch ...", file=sys.stderr, flush=True)
    result["batch"] = bench_batch(runner, args.reps, max_batch)
    runner.close()
    print("pool ...", file=sys.stderr, flush=True)
    result["pool"] = bench_pool(path, max(3, args.reps // 2), max_batch)
    if not args.no_omp:
        print("OpenMP wait policy ...", file=sys.stderr, flush=True)
        result["omp_wait_policy"] = bench_omp_policy(1)
    result["machine"]["load_average_end"] = os.getloadavg()
    result["seconds_total"] = round(time.time() - started, 1)
    result["meets_target"] = (
        result["single"]["runner_overhead_pct"] <= 5.0 and result["batch"]["runner_overhead_pct"] <= 5.0
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "llm_runner.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "llm_runner.md").write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
