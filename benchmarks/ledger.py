"""Ledger benchmark: signed appends (synchronous=FULL), batching, 4 writers, proofs and verification at 1e6.

Reproduce (from the repository root), each phase under the benchmark lock (each well under 15 min)::

    L="flock /tmp/safesynth-bench.lock .venv/bin/python benchmarks/ledger.py"
    $L --phase appends
    $L --phase build --big 500000 --fresh --keep /tmp/ledger-big    # resumable: grow in parts
    $L --phase build --big 1000000 --keep /tmp/ledger-big
    $L --phase big --keep /tmp/ledger-big                          # proofs, export, verification
    .venv/bin/python benchmarks/ledger.py --render                 # rewrite ledger.md from ledger.json

Each phase merges its numbers into benchmarks/results/ledger.json and rewrites ledger.md. Every
append goes through the real path (entry validation, RFC 8785, Merkle frontier, an Ed25519-signed
checkpoint per entry, SQLite WAL with synchronous=FULL, fork-guard side file after each commit).
Wall-clock numbers depend on the machine's load (recorded per phase); the writer's own CPU time
per entry is reported next to them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from safesynth.ledger import Appender, AppendRequest, LedgerStore, Signer
from safesynth.ledger.verify import verify_export

RESULTS = Path(__file__).resolve().parent / "results"


def _payload(i: int) -> dict[str, Any]:
    return {
        "dataset": f"ds-{i % 17}",
        "epsilon": "0.125",
        "delta": "0.000001",
        "engine": "aim",
        "events": [{"kind": "gaussian/v1", "sigma": "3.25", "sensitivity": "1", "count": 4}],
        "purpose": "benchmark",
        "n": i,
    }


def _timed(fn: Any) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _fresh(tmp: Path, name: str, signer: Signer) -> LedgerStore:
    return LedgerStore.create(tmp / f"{name}.db", signer, origin=f"bench.example/{name}")


def bench_single(tmp: Path, signer: Signer, n: int, fork_guard: bool = True) -> dict[str, Any]:
    """One append per transaction (one COMMIT + fork-guard write each), one thread."""
    store = LedgerStore.create(tmp / f"single{fork_guard}.db", signer, origin="b", fork_guard=fork_guard)

    def run() -> None:
        for i in range(n):
            store.append("spend/v1", _payload(i), actor="bench")

    wall, cpu = _timed(run)
    store.close()
    return {
        "entries": n,
        "fork_guard": fork_guard,
        "seconds": wall,
        "appends_per_s": n / wall,
        "cpu_us_per_entry": cpu / n * 1e6,
    }


def bench_batched(tmp: Path, signer: Signer, n: int, batch: int) -> dict[str, Any]:
    """append_many: `batch` entries per transaction, each with its own signed checkpoint."""
    store = _fresh(tmp, f"batch{batch}", signer)

    def run() -> None:
        for start in range(0, n, batch):
            reqs = [
                AppendRequest("spend/v1", _payload(i), "bench") for i in range(start, min(n, start + batch))
            ]
            out = store.append_many(reqs)
            assert all(not isinstance(r, Exception) for r in out)

    wall, cpu = _timed(run)
    assert store.size == n
    store.close()
    return {
        "entries": n,
        "batch": batch,
        "seconds": wall,
        "appends_per_s": n / wall,
        "cpu_us_per_entry": cpu / n * 1e6,
    }


def bench_threads(tmp: Path, signer: Signer, threads: int, per_thread: int) -> dict[str, Any]:
    """Concurrent append() calls from threads of one process: group commit batches them."""
    store = _fresh(tmp, "threads", signer)

    def work(k: int) -> None:
        for i in range(per_thread):
            store.append("spend/v1", _payload(i), actor=f"t{k}")

    def run() -> None:
        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    wall, _ = _timed(run)
    n = threads * per_thread
    commits = store.size
    store.close()
    return {"threads": threads, "entries": n, "seconds": wall, "appends_per_s": n / wall, "size": commits}


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_pipelined(
    tmp: Path, signer: Signer, n: int, max_batch: int, window: int | None = None
) -> dict[str, Any]:
    """One producer thread submitting to an Appender; acks are futures resolved after the COMMIT.

    ``window``: at most this many unacknowledged submissions (the producer waits on the oldest);
    None: the producer never waits. Records the submit-to-ack latency of every entry.
    """
    store = _fresh(tmp, f"pipe{max_batch}-{window}", signer)
    submitted: list[float] = []
    acked: list[float] = [0.0] * n
    out: list[Any] = []

    def run() -> None:
        with Appender(store, max_batch=max_batch) as appender:
            for i in range(n):
                submitted.append(time.perf_counter())
                f = appender.submit("spend/v1", _payload(i), actor="bench")
                f.add_done_callback(lambda _f, i=i: acked.__setitem__(i, time.perf_counter()))
                out.append(f)
                if window is not None and i >= window:
                    out[i - window].result()
        out.append(appender.batches)

    wall, cpu = _timed(run)
    batches = out.pop()
    assert [f.result().seq for f in out] == list(range(n))
    assert store.size == n
    store.close()
    lat = sorted(a - s0 for a, s0 in zip(acked, submitted, strict=True))
    return {
        "entries": n,
        "max_batch": max_batch,
        "window": window,
        "transactions": batches,
        "mean_batch": n / batches,
        "seconds": wall,
        "appends_per_s": n / wall,
        "cpu_us_per_entry": cpu / n * 1e6,
        "ack_latency_ms": {"median": statistics.median(lat) * 1e3, "p95": lat[int(len(lat) * 0.95)] * 1e3},
    }


def _proc_writer(path: str, skey: str, n: int, batch: int, barrier: Any) -> None:
    store = LedgerStore.open(path, Signer.from_skey(skey))
    barrier.wait()
    if batch == 0:  # pipelined: an Appender per process
        with Appender(store, max_batch=1000) as appender:
            futures = [appender.submit("spend/v1", _payload(i), actor="p") for i in range(n)]
        assert all(f.exception() is None for f in futures)
    else:
        for start in range(0, n, batch):
            reqs = [AppendRequest("spend/v1", _payload(i), "p") for i in range(start, min(n, start + batch))]
            store.append_many(reqs)
    store.close()


def bench_processes(tmp: Path, signer: Signer, procs: int, per_proc: int, batch: int) -> dict[str, Any]:
    """Several processes appending to one store (BEGIN IMMEDIATE serializes them). batch 0: Appender."""
    path = tmp / f"procs{batch}.db"
    LedgerStore.create(path, signer, origin="bench.example/procs").close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    ps = [
        ctx.Process(target=_proc_writer, args=(str(path), signer.skey(), per_proc, batch, barrier))
        for _ in range(procs)
    ]
    for p in ps:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in ps:
        p.join()
        assert p.exitcode == 0
    wall = time.perf_counter() - t0
    store = LedgerStore.open(path, signer)
    size = store.size
    store.full_check()
    store.close()
    n = procs * per_proc
    assert size == n
    return {"processes": procs, "batch": batch, "entries": n, "seconds": wall, "appends_per_s": n / wall}


def build_big(path: Path, signer: Signer, upto: int) -> dict[str, Any]:
    """Grow the large store to ``upto`` entries through the real path: one producer, an Appender.

    Resumable (the store is reopened, self-checked and extended), so that the build can be split
    into several locked runs of a few minutes each.
    """
    if path.exists():
        store = LedgerStore.open(path, signer)
    else:
        store = LedgerStore.create(path, signer, origin="bench.example/big")
    start = store.size

    def run() -> None:
        with Appender(store, max_batch=2000) as appender:
            for i in range(start, upto):
                appender.submit("spend/v1", _payload(i), actor="bench")
                if i % 100_000 == 99_999:
                    appender.flush()  # bounded memory for the futures
        assert store.size == max(start, upto)

    wall, cpu = _timed(run)
    store.close()
    db_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return {
        "from": start,
        "entries": max(start, upto) - start,
        "seconds": wall,
        "cpu_s": cpu,
        "db_bytes": db_bytes,
    }


def bench_proofs(store: LedgerStore, samples: int) -> dict[str, Any]:
    """Inclusion and consistency proof generation (from stored subtree hashes) and verification."""
    rng = random.Random(7)
    n = store.size
    verifier = store.key_history().current
    inc: list[float] = []
    ver: list[float] = []
    for _ in range(samples):
        seq = rng.randrange(n)
        t0 = time.perf_counter()
        proof = store.inclusion_proof(seq)
        inc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proof.verify([verifier])
        ver.append(time.perf_counter() - t0)
    cons: list[float] = []
    for _ in range(samples // 4):
        old = rng.randrange(1, n)
        t0 = time.perf_counter()
        store.consistency_proof(old, n).verify([verifier])
        cons.append(time.perf_counter() - t0)

    def ms(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {"median_ms": statistics.median(xs) * 1e3, "p95_ms": xs[int(len(xs) * 0.95) - 1] * 1e3}

    return {
        "tree_size": n,
        "samples": samples,
        "inclusion_proof": ms(inc),
        "inclusion_verify": ms(ver),
        "consistency_proof_and_verify": ms(cons),
    }


def bench_open(path: Path, signer: Signer, full: bool) -> dict[str, Any]:
    """Opening (fast self-check) and, optionally, the full O(n) recompute (one signature per entry)."""
    t0 = time.perf_counter()
    store = LedgerStore.open(path, signer)
    out: dict[str, Any] = {"entries": store.size, "open_self_check_ms": (time.perf_counter() - t0) * 1e3}
    if full:
        t0 = time.perf_counter()
        store.full_check()
        out["full_check_s"] = time.perf_counter() - t0
    store.close()
    return out


def bench_export_verify(store: LedgerStore, tmp: Path, signer: Signer) -> dict[str, Any]:
    """Export (every 1000th checkpoint + latest) and offline verification: serial and with workers."""
    out = tmp / "export"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = store.export(out)
    export_s = time.perf_counter() - t0
    export_bytes = sum(p.stat().st_size for p in out.iterdir())
    runs: dict[str, Any] = {}
    for label, workers in (("serial", 0), ("workers", None)):
        w0, c0, k0 = time.perf_counter(), time.process_time(), _cpu_children()
        report = verify_export(out, signer.verifier(), workers=workers)
        runs[label] = {
            "workers": workers,
            "wall_s": time.perf_counter() - w0,
            "cpu_s": time.process_time() - c0,
            "worker_cpu_s": _cpu_children() - k0,
            "checkpoints_verified": report.checkpoints_verified,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        print("verify", label, runs[label], flush=True)
    # the cost per additional exported checkpoint (Ed25519 verification dominates)
    from safesynth.ledger.checkpoint import SignedNote

    note = SignedNote.parse(store.latest_checkpoint().text)
    v = signer.verifier()
    t0 = time.perf_counter()
    for _ in range(2000):
        note.verified_by([v])
    per_cp = (time.perf_counter() - t0) / 2000
    shutil.rmtree(out)
    best = min(r["wall_s"] for r in runs.values())
    return {
        "entries": summary.tree_size,
        "checkpoints_exported": summary.checkpoints,
        "export_s": export_s,
        "export_bytes": export_bytes,
        "verify": runs,
        "per_checkpoint_signature_verify_us": per_cp * 1e6,
        "estimated_verify_all_checkpoints_s": best + per_cp * summary.tree_size,
    }


def raw_fsync_commits(tmp: Path, n: int = 1000) -> float:
    """Small SQLite commits per second with WAL + synchronous=FULL: the disk's fsync ceiling."""
    conn = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, b"x" * 300))
        conn.execute("COMMIT")
    conn.close()
    return n / (time.perf_counter() - t0)


def _load(r: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in r)


def _md(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Ledger benchmark",
        "",
        f"Machine: {m['cpus']} CPUs ({m['platform']}), Python {m['python']}, SQLite {m['sqlite']},"
        f" cryptography {m['cryptography']}. The 2 cores are shared with other helpers; every phase ran"
        " under the benchmark lock (`flock /tmp/safesynth-bench.lock`), and the load average (1, 5, 15"
        " min) is given per phase. CPU µs/entry is the benchmark process's own CPU time (user + system).",
        "",
        "Every append: entry validation + RFC 8785, leaf hash, frontier update and stored subtree nodes, an"
        " Ed25519-signed C2SP checkpoint **per entry**, SQLite WAL `synchronous=FULL`, fork-guard side file"
        " (temp + fsync + rename) after each commit. An acknowledgement (return of `append`/`append_many`,"
        " or a resolved `Appender` future) means: the entry's transaction is COMMITted (fsynced), its own"
        " signed checkpoint is stored, and the fork-guard file holds a checkpoint at least that new.",
    ]
    a = res.get("appends")
    if a:
        lines += [
            "",
            f"## Appends (load average at start {_load(a['loadavg_start'])},"
            f" at end {_load(a['loadavg_end'])})",
            "",
            f"Disk ceiling: **{a['raw_fsync_commits_per_s']:,.0f}** bare SQLite commits/s (one small row"
            " per transaction, WAL, synchronous=FULL).",
            "",
            "| scenario | entries | transactions | appends/s | CPU µs/entry | ack latency median / p95 |",
            "|---|---:|---:|---:|---:|---:|",
        ]

        def row(name: str, r: dict[str, Any], tx: Any = "") -> str:
            cpu = f"{r['cpu_us_per_entry']:.0f}" if "cpu_us_per_entry" in r else ""
            lat = r.get("ack_latency_ms")
            lat_s = f"{lat['median']:.1f} / {lat['p95']:.1f} ms" if lat else ""
            return f"| {name} | {r['entries']:,} | {tx} | {r['appends_per_s']:,.0f} | {cpu} | {lat_s} |"

        s1, ng = a["single_writer"], a["single_writer_no_guard"]
        lines.append(row("1 writer, `append()` one at a time", s1, f"{s1['entries']:,}"))
        lines.append(row("same, without the fork-guard file", ng, f"{ng['entries']:,}"))
        for r in a["batched"]:
            lines.append(
                row(f"1 writer, `append_many` of {r['batch']}", r, f"{-(-r['entries'] // r['batch']):,}")
            )
        for r in a["pipelined"]:
            win = "never waits" if r["window"] is None else f"at most {r['window']} unacknowledged"
            lines.append(
                row(
                    f"**1 writer, `Appender` (max_batch {r['max_batch']}), producer {win}**",
                    r,
                    f"{r['transactions']:,} (mean {r['mean_batch']:.0f})",
                )
            )
        t = a["threads"]
        lines.append(row(f"{t['threads']} threads calling `append()` (group commit)", t))
        for r in a["processes"]:
            how = "`Appender` each" if r["batch"] == 0 else f"`append_many` of {r['batch']}"
            if r["batch"] == 1:
                how = "`append()` one at a time"
            lines.append(row(f"{r['processes']} processes, {how}", r))
        fc = a["full_check"]
        lines += [
            "",
            f"`full_check` (recomputes every leaf and node, verifies one signature per entry):"
            f" {fc['full_check_s']:.2f} s for {fc['entries']:,} entries.",
        ]
    b = res.get("build")
    if b:
        lines += [
            "",
            f"## Build of the {b['entries']:,}-entry store ({len(b['parts'])} locked run(s); load"
            + "; ".join(f" {_load(p['loadavg_start'])} → {_load(p['loadavg_end'])}" for p in b["parts"])
            + ")",
            "",
            f"One producer, `Appender(max_batch=2000)`: {b['appends_per_s']:,.0f} signed appends/s,"
            f" {b['cpu_us_per_entry']:.0f} µs CPU/entry, {b['seconds']:.0f} s,"
            f" store {b['db_bytes'] / 1e6:.0f} MB.",
        ]
    g = res.get("big")
    if g:
        pr, ex, op = g["proofs"], g["export"], g["open"]
        inc, ver = pr["inclusion_proof"], pr["inclusion_verify"]
        con = pr["consistency_proof_and_verify"]
        vs = ex["verify"]
        lines += [
            "",
            f"## At {pr['tree_size']:,} entries (load {_load(g['loadavg_start'])} →"
            f" {_load(g['loadavg_end'])})",
            "",
            f"- inclusion proof (generate from stored subtree hashes): median {inc['median_ms']:.2f} ms,"
            f" p95 {inc['p95_ms']:.2f} ms; verify: median {ver['median_ms']:.2f} ms",
            f"- consistency proof generate + verify: median {con['median_ms']:.2f} ms",
            f"- open with self-check: {op['open_self_check_ms']:.0f} ms",
            f"- export ({ex['checkpoints_exported']:,} checkpoints: every 1000th + latest):"
            f" {ex['export_s']:.1f} s, {ex['export_bytes'] / 1e6:.0f} MB",
        ]
        for r in vs.values():
            how = (
                "one process"
                if r["workers"] == 0
                else "entry lines checked in forked worker processes (auto)"
            )
            lines.append(
                f"- offline verification, {how}: **{r['wall_s']:.1f} s wall**, CPU {r['cpu_s']:.1f} s"
                f" (+ {r['worker_cpu_s']:.1f} s in workers); {r['checkpoints_verified']:,} checkpoint"
                f" signatures verified; load after: {_load(r['loadavg_after'])}"
            )
        lines.append(
            f"- each further exported checkpoint costs one Ed25519 verification"
            f" ({ex['per_checkpoint_signature_verify_us']:.0f} µs): an export of *every* checkpoint"
            f" (`--checkpoint-interval 1`) would take about {ex['estimated_verify_all_checkpoints_s']:.0f} s"
        )
    lines += ["", "## Against the goals", ""]
    if a:
        best = max(a["pipelined"], key=lambda r: r["appends_per_s"])
        lines.append(
            f"- Single writer >= 2,000 durable signed appends/s: **{best['appends_per_s']:,.0f}/s** with"
            f" the pipelined `Appender` (one producer thread, {best['mean_batch']:.0f} entries per"
            f" transaction on average; every entry its own signed checkpoint; acknowledged only after"
            f" its COMMIT). One entry per transaction reaches {a['single_writer']['appends_per_s']:,.0f}/s"
            f" (the fsync of the COMMIT plus the fork-guard file per entry; bare SQLite:"
            f" {a['raw_fsync_commits_per_s']:,.0f} commits/s)."
        )
    if g:
        inc = g["proofs"]["inclusion_proof"]
        best_v = min(g["export"]["verify"].values(), key=lambda r: r["wall_s"])
        lines.append(
            f"- Inclusion proof at {g['proofs']['tree_size']:,} entries < 5 ms: median"
            f" {inc['median_ms']:.2f} ms, p95 {inc['p95_ms']:.2f} ms."
        )
        lines.append(
            f"- Offline verification of a {g['export']['entries']:,}-entry export < 60 s:"
            f" **{best_v['wall_s']:.1f} s wall** (serial: {g['export']['verify']['serial']['wall_s']:.1f} s)."
        )
    if res.get("note"):
        lines += ["", res["note"]]
    return "\n".join(lines) + "\n"


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cryptography": version("cryptography"),
    }


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def phase_appends(tmp: Path, signer: Signer, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"loadavg_start": _loadavg()}
    out["raw_fsync_commits_per_s"] = raw_fsync_commits(tmp)
    print("raw", out["raw_fsync_commits_per_s"], flush=True)
    out["single_writer"] = bench_single(tmp, signer, args.single)
    out["single_writer_no_guard"] = bench_single(tmp, signer, args.single, fork_guard=False)
    print("single", out["single_writer"], out["single_writer_no_guard"], flush=True)
    out["batched"] = [bench_batched(tmp, signer, args.batched, b) for b in (16, 128, 1000)]
    print("batched", out["batched"], flush=True)
    out["pipelined"] = [
        bench_pipelined(tmp, signer, args.batched * 2, 1000),
        bench_pipelined(tmp, signer, args.batched, 1000, window=256),
        bench_pipelined(tmp, signer, args.batched, 1000, window=32),
    ]
    print("pipelined", out["pipelined"], flush=True)
    out["full_check"] = bench_open(tmp / "batch128.db", signer, full=True)
    out["threads"] = bench_threads(tmp, signer, 8, args.batched // 8)
    print("threads", out["threads"], flush=True)
    out["processes"] = [
        bench_processes(tmp, signer, 4, n, b)
        for n, b in ((250, 1), (args.batched // 4, 32), (args.batched, 0))
    ]
    print("processes", out["processes"], flush=True)
    out["loadavg_end"] = _loadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phase", choices=["appends", "build", "big"], help="which measurements to run")
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="build: grow the large store to this many entries"
    )
    parser.add_argument("--single", type=int, default=1000, help="entries for the 1-per-transaction run")
    parser.add_argument("--batched", type=int, default=10000, help="entries for the batched runs")
    parser.add_argument("--fresh", action="store_true", help="build: start a new large store")
    parser.add_argument("--keep", type=Path, default=None, help="directory for the large store (build/big)")
    parser.add_argument("--render", action="store_true", help="only rewrite ledger.md from ledger.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where ledger.json/.md go")
    args = parser.parse_args()
    results = args.results
    path = results / "ledger.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if args.render:
        (results / "ledger.md").write_text(_md(res))
        return
    if res.get("format") != 2:  # results of the previous layout: start over
        res = {"format": 2}
    res["machine"] = _machine()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        if args.phase == "appends":
            res["appends"] = phase_appends(tmp, Signer.generate("bench"), args)
        elif args.phase in ("build", "big"):
            keep = args.keep or tmp
            keep.mkdir(parents=True, exist_ok=True)
            db, key = keep / "big.db", keep / "big.key"
            if args.phase == "build":
                if args.fresh or not key.exists():
                    for old in keep.glob("big.db*"):
                        old.unlink()
                    key.unlink(missing_ok=True)
                    Signer.generate("bench").save(key)
                    res.pop("build", None)
                part = {"loadavg_start": _loadavg(), **build_big(db, Signer.load(key), args.big)}
                part["loadavg_end"] = _loadavg()
                build = res.setdefault("build", {"parts": []})
                build["parts"].append(part)
                total = sum(p["entries"] for p in build["parts"])
                secs = sum(p["seconds"] for p in build["parts"])
                build.update(
                    entries=total,
                    seconds=secs,
                    appends_per_s=total / secs,
                    cpu_us_per_entry=sum(p["cpu_s"] for p in build["parts"]) / total * 1e6,
                    db_bytes=part["db_bytes"],
                )
                print("build", part, flush=True)
            else:
                signer = Signer.load(key)
                big: dict[str, Any] = {"loadavg_start": _loadavg()}
                big["open"] = bench_open(db, signer, full=False)
                store = LedgerStore.open(db, signer)
                big["proofs"] = bench_proofs(store, 400)
                print("proofs", big["proofs"], flush=True)
                big["export"] = bench_export_verify(store, tmp, signer)
                store.close()
                big["loadavg_end"] = _loadavg()
                res["big"] = big
                if big["proofs"]["tree_size"] < 1_000_000:
                    res["note"] = (
                        f"The large store had {big['proofs']['tree_size']:,} entries (not 1,000,000)."
                    )
                else:
                    res.pop("note", None)
        else:
            parser.error("give --phase or --render")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    (results / "ledger.md").write_text(_md(res))
    print(_md(res))


if __name__ == "__main__":
    main()
