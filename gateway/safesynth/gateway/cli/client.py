"""Remote commands: a thin layer over the SDK (``safesynth synth | plan | query | budget | jobs |
release | audit``).

Every command takes ``--url`` / ``--token`` (env ``SAFESYNTH_URL`` / ``SAFESYNTH_TOKEN``) and ``--json``
for scripts (one JSON document on stdout); ``SAFESYNTH_TIMEOUT`` sets the per-request timeout.
Errors print ``error [code]: message`` on stderr (or a JSON ``{"error": {...}}`` with ``--json``) and
exit with status 1; ``budget_exhausted`` exits with 3.
Only the SDK is imported here (no numpy, pandas or llama.cpp).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel

__all__ = ["audit", "budget", "jobs", "parse_filter", "plan", "query", "release", "synth"]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status of a refused request because the budget is exhausted (scripts can branch on it).
EXIT_BUDGET = 3
EXIT_ERROR = 1

_OPS = {
    "==": "eq",
    "=": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
    **{op: op for op in ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in")},
}


def _remote(func: F) -> F:
    """Add ``--url``, ``--token`` and ``--json`` to a command."""
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)
    func = click.option(
        "--token",
        envvar="SAFESYNTH_TOKEN",
        help="Bearer token (default: $SAFESYNTH_TOKEN).",
    )(func)
    func = click.option(
        "--url",
        envvar="SAFESYNTH_URL",
        help="Gateway base URL (default: $SAFESYNTH_URL, else http://127.0.0.1:8765).",
    )(func)
    return func


@contextmanager
def _client(url: str | None, token: str | None, as_json: bool) -> Iterator[Any]:
    """An SDK client; SDK errors become a clean message and exit status."""
    from safesynth.sdk import BudgetExhausted, Client, SafeSynthError

    try:
        with Client(base_url=url, token=token) as client:
            yield client
    except SafeSynthError as exc:
        _report_error(exc, as_json)
        sys.exit(EXIT_BUDGET if isinstance(exc, BudgetExhausted) else EXIT_ERROR)


def _report_error(exc: Any, as_json: bool) -> None:
    problem = exc.problem
    if as_json:
        body: dict[str, Any] = {"code": exc.code, "message": exc.message, "status": exc.status}
        if problem is not None:
            body["problem"] = problem.model_dump(mode="json", exclude_none=True)
        click.echo(json.dumps({"error": body}), err=True)
        return
    click.echo(f"error [{exc.code}]: {exc.message}", err=True)
    if problem is not None and problem.epsilon_remaining is not None:
        click.echo(f"  epsilon remaining: {problem.epsilon_remaining:g}", err=True)


def _emit(model: BaseModel | dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        click.echo(json.dumps(data, indent=2))
    else:
        human()


def _parse_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool | str) else text


def parse_filter(text: str) -> tuple[str, str, Any]:
    """``"age >= 18"``, ``"sex == F"``, ``"state in CA,NY"`` -> ``(column, op, value)``."""
    parts = text.split(None, 2)
    if len(parts) != 3 or parts[1] not in _OPS:
        raise click.BadParameter(
            f"{text!r}: write 'COLUMN OP VALUE' with OP one of {', '.join(sorted(_OPS))}",
            param_hint="--filter",
        )
    column, op, raw = parts[0], _OPS[parts[1]], parts[2]
    if op in ("in", "not_in"):
        return column, op, [_parse_value(v.strip()) for v in raw.split(",") if v.strip()]
    return column, op, _parse_value(raw)


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"{pair!r}: write KEY=VALUE (VALUE as JSON or text)", param_hint="--option"
            )
        out[key] = json.loads(raw) if _is_json(raw) else raw
    return out


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _synthesis_options(func: F) -> F:
    """The request options shared by ``synth`` and ``plan``."""
    decorators = [
        click.argument("dataset"),
        click.option(
            "--engine",
            type=click.Choice(["tabular", "text"]),
            default="tabular",
            show_default=True,
            help="Engine.",
        ),
        click.option("--rows", type=click.IntRange(min=1), help="Rows to generate (default: a DP estimate)."),
        click.option(
            "--epsilon",
            type=click.FloatRange(min=0, min_open=True),
            required=True,
            help="Target epsilon the engine plans for; the gateway's accountant computes the charge.",
        ),
        click.option("--delta", type=click.FloatRange(min=0), help="Target delta (default: the dataset's)."),
        click.option("--purpose", required=True, help="Why this release is needed (recorded in the ledger)."),
        click.option("--option", "option_pairs", multiple=True, help="Engine option KEY=VALUE (repeatable)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


# ============================================================================================== synth


@click.command()
@_synthesis_options
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the release to this file."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default="csv",
    show_default=True,
    help="Format of --out.",
)
@click.option("--no-wait", is_flag=True, help="Print the queued job and return at once.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after this many seconds.")
@click.option("--idempotency-key", help="Reuse a key to retry safely (never spends twice).")
@_remote
def synth(
    dataset: str,
    engine: str,
    rows: int | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    option_pairs: tuple[str, ...],
    out: Path | None,
    fmt: str,
    no_wait: bool,
    quiet: bool,
    timeout: float | None,
    idempotency_key: str | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Ask the gateway for a DP synthetic release of DATASET, wait for it and download it."""
    options = _options(option_pairs)
    with _client(url, token, as_json) as client:
        if no_wait:
            job = client.submit(
                dataset,
                engine=engine,
                rows=rows,
                epsilon=epsilon,
                delta=delta,
                purpose=purpose,
                options=options,
                idempotency_key=idempotency_key,
            )
            _emit(job, as_json, lambda: click.echo(f"job {job.id} {job.state}"))
            return
        handle = client.synthesize(
            dataset,
            engine=engine,
            rows=rows,
            epsilon=epsilon,
            delta=delta,
            purpose=purpose,
            options=options,
            progress=not quiet,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )
        path = handle.download(out, format=fmt) if out is not None else None
        info = handle.info
        data = {**info.model_dump(mode="json"), "path": None if path is None else str(path)}

        def human() -> None:
            click.echo(f"release {info.id}")
            click.echo(f"  rows {info.rows}, columns {len(info.columns)}, engine {info.engine or engine}")
            click.echo(
                f"  charged epsilon {info.epsilon:g}, delta {info.delta:g} (ledger spend #{info.spend_seq})"
            )
            if path is not None:
                click.echo(f"  written to {path}")

        _emit(data, as_json, human)


# ============================================================================================== plan


@click.command()
@_synthesis_options
@_remote
def plan(
    dataset: str,
    engine: str,
    rows: int | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    option_pairs: tuple[str, ...],
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Show what a synthesis of DATASET would cost and whether it would be admitted (spends nothing)."""
    with _client(url, token, as_json) as client:
        result = client.plan(
            dataset,
            engine=engine,
            rows=rows,
            epsilon=epsilon,
            delta=delta,
            purpose=purpose,
            options=_options(option_pairs),
        )

        def human() -> None:
            click.echo(f"plan for {result.dataset} ({result.engine}): {len(result.events)} privacy event(s)")
            click.echo(f"  cost: epsilon {result.epsilon:g}, delta {result.delta:g} ({result.method})")
            if result.admitted is not None:
                click.echo(f"  admitted now: {'yes' if result.admitted else 'NO'}")
            if result.epsilon_remaining is not None:
                click.echo(f"  epsilon remaining: {result.epsilon_remaining:g}")
            for item in result.transcript:
                click.echo("  - " + ", ".join(f"{k}={v}" for k, v in item.items()))

        _emit(result, as_json, human)


# ============================================================================================== query


@click.command()
@click.argument("dataset")
@click.argument("kind", type=click.Choice(["count", "sum", "mean", "histogram", "quantiles"]))
@click.argument("column", required=False)
@click.option(
    "--epsilon",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Target epsilon of the mechanism; the accountant computes the charge.",
)
@click.option("--delta", type=click.FloatRange(min=0), help="Target delta (if the mechanism uses one).")
@click.option("--purpose", required=True, help="Why this statistic is needed (recorded in the ledger).")
@click.option("--filter", "filters", multiple=True, help="Row filter 'COLUMN OP VALUE', e.g. 'age >= 18'.")
@click.option("--bounds", nargs=2, type=float, help="Public clamping bounds LOWER UPPER.")
@click.option("--bins", help="Histogram edges, comma-separated (numeric columns).")
@click.option(
    "--quantile", "quantiles", multiple=True, type=click.FloatRange(0, 1), help="A quantile (repeatable)."
)
@click.option("--dry-run", is_flag=True, help="Show the cost only (spends nothing).")
@_remote
def query(
    dataset: str,
    kind: str,
    column: str | None,
    epsilon: float,
    delta: float | None,
    purpose: str,
    filters: tuple[str, ...],
    bounds: tuple[float, float] | None,
    bins: str | None,
    quantiles: tuple[float, ...],
    dry_run: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """A DP statistic over COLUMN of DATASET: count, sum, mean, histogram or quantiles."""
    try:
        edges = [float(b) for b in bins.split(",")] if bins else None
    except ValueError as exc:
        raise click.BadParameter("comma-separated numbers", param_hint="--bins") from exc
    kwargs: dict[str, Any] = {
        "epsilon": epsilon,
        "delta": delta,
        "purpose": purpose,
        "filters": [parse_filter(f) for f in filters],
        "bounds": bounds or None,
        "bins": edges,
        "quantiles": list(quantiles) or None,
    }
    with _client(url, token, as_json) as client:
        if dry_run:
            cost = client.plan_query(dataset, kind, column, **kwargs)
            _emit(cost, as_json, lambda: click.echo(f"cost: epsilon {cost.epsilon:g}, delta {cost.delta:g}"))
            return
        result = client.query(dataset, kind, column, **kwargs)

        def human() -> None:
            label = f"{result.kind}({result.column})" if result.column else result.kind
            if result.value is not None:
                click.echo(f"{label} = {result.value:g}")
            for item in result.histogram or ():
                click.echo(f"  {item.label}: {item.count:g}")
            for qv in result.quantiles or ():
                click.echo(f"  q{qv.q:g}: {qv.value:g}")
            note = " (cached answer, no new cost)" if result.cached else ""
            click.echo(f"charged epsilon {result.epsilon:g}, delta {result.delta:g}{note}")

        _emit(result, as_json, human)


# ============================================================================================== budget


@click.command()
@click.argument("dataset")
@click.option("--history/--no-history", default=True, show_default=True, help="List spends and refusals.")
@_remote
def budget(dataset: str, history: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Show DATASET's privacy budget: total, spent, remaining and history."""
    with _client(url, token, as_json) as client:
        b = client.budget(dataset)

        def human() -> None:
            click.echo(f"budget of {b.dataset}" + (f" ({b.rule})" if b.rule else ""))
            click.echo(
                f"  epsilon: {b.epsilon_spent:g} spent of {b.epsilon_total:g}, {b.epsilon_remaining:g} left"
            )
            click.echo(f"  delta:   {b.delta_spent:g} spent of {b.delta_total:g}, {b.delta_remaining:g} left")
            if history:
                for item in b.history:
                    when = item.timestamp.strftime("%Y-%m-%d %H:%M:%S")
                    what = item.request_kind or "-"
                    click.echo(
                        f"  #{item.seq:<5} {when} {item.kind:<8} {what:<10} eps {item.epsilon:g}  "
                        f"by {item.actor}: {item.purpose}"
                    )

        _emit(b, as_json, human)


# ============================================================================================== jobs


@click.group()
def jobs() -> None:
    """List, show, wait for and cancel synthesis jobs."""


def _job_line(job: Any) -> str:
    release_id = f" release {job.release_id}" if job.release_id else ""
    error = f" error {job.error.code}" if job.error else ""
    return (
        f"{job.id}  {job.dataset}  {job.state:<9} {job.progress * 100:3.0f}%  {job.stage}{release_id}{error}"
    )


@jobs.command("list")
@click.option("--dataset", help="Only jobs of this dataset.")
@click.option(
    "--state", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]), help="Filter."
)
@_remote
def jobs_list(
    dataset: str | None, state: str | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """List the caller's jobs."""
    with _client(url, token, as_json) as client:
        found = client.jobs.list(dataset=dataset, state=state)
        if as_json:
            click.echo(json.dumps([j.model_dump(mode="json") for j in found], indent=2))
            return
        for job in found:
            click.echo(_job_line(job))


@jobs.command("show")
@click.argument("job_id")
@_remote
def jobs_show(job_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show one job."""
    with _client(url, token, as_json) as client:
        job = client.jobs.get(job_id)
        _emit(job, as_json, lambda: click.echo(_job_line(job) + _stage_lines(job)))


def _stage_lines(job: Any) -> str:
    """Where the job's time went (admin and auditor tokens see it), one stage per line."""
    if not job.stage_seconds:
        return ""
    return "".join(f"\n  {name:<12} {seconds:9.3f} s" for name, seconds in job.stage_seconds.items())


@jobs.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_remote
def jobs_wait(
    job_id: str, timeout: float | None, quiet: bool, url: str | None, token: str | None, as_json: bool
) -> None:
    """Wait for a job to finish (exit status 1 if it failed or was cancelled)."""
    with _client(url, token, as_json) as client:
        job = client.jobs.wait(job_id, timeout=timeout, progress=not quiet)
        _emit(job, as_json, lambda: click.echo(_job_line(job)))


@jobs.command("cancel")
@click.argument("job_id")
@_remote
def jobs_cancel(job_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Cancel a job (an admitted spend stays recorded: noise may have been drawn)."""
    with _client(url, token, as_json) as client:
        job = client.jobs.cancel(job_id)
        _emit(job, as_json, lambda: click.echo(_job_line(job)))


# ============================================================================================== release


@click.command()
@click.argument("release_id")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Download the data to this file."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default="csv",
    show_default=True,
    help="Format.",
)
@_remote
def release(
    release_id: str, out: Path | None, fmt: str, url: str | None, token: str | None, as_json: bool
) -> None:
    """Show a release and (with --out) download its data."""
    with _client(url, token, as_json) as client:
        handle = client.releases.get(release_id)
        path = handle.download(out, format=fmt) if out is not None else None
        info = handle.info
        data = {**info.model_dump(mode="json"), "path": None if path is None else str(path)}

        def human() -> None:
            click.echo(
                f"release {info.id} of {info.dataset} ({info.engine}), created {info.created:%Y-%m-%d %H:%M}"
            )
            click.echo(f"  rows {info.rows}; columns: {', '.join(info.columns)}")
            click.echo(
                f"  charged epsilon {info.epsilon:g}, delta {info.delta:g} (ledger spend #{info.spend_seq})"
            )
            if info.audit_verdict:
                click.echo(f"  audit verdict: {info.audit_verdict}")
            if path is not None:
                click.echo(f"  written to {path}")

        _emit(data, as_json, human)


# ============================================================================================== audit


#: Uploads above this size are converted from CSV to Parquet first (the gateway limits request bodies).
_CONVERT_ABOVE = 512 * 1024


def _table_upload(path: Path, fmt: str | None) -> tuple[bytes, str]:
    """The file's bytes and format; a large CSV becomes Parquet (cells kept as text) when pandas is there."""
    fmt = fmt or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    data = path.read_bytes()
    if fmt != "csv" or len(data) <= _CONVERT_ABOVE:
        return data, fmt
    try:
        import io

        import pandas as pd
    except ImportError:  # the base install: send the CSV as it is
        return data, fmt
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=True)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue(), "parquet"


def _show_summary(report: Any) -> None:
    if report.accountant_epsilon is not None:
        click.echo(f"  accountant epsilon: {report.accountant_epsilon:g}")
    if report.empirical_epsilon_lower_bound is not None:
        click.echo(f"  empirical epsilon lower bound: {report.empirical_epsilon_lower_bound:g}")
    for attack in report.attacks:
        tprs = ", ".join(f"TPR {p.tpr:.3f} @ FPR {p.fpr:g}" for p in attack.tpr_at_fpr)
        click.echo(f"  {attack.name}: AUC {attack.auc:.3f}" + (f"; {tprs}" if tprs else ""))
    for name, value in report.metrics.items():
        click.echo(f"  {name}: {'-' if value is None else f'{value:.4g}'}")


def _external_audit(
    client: Any,
    release_file: Path,
    dataset: str,
    purpose: str,
    fmt: str | None,
    claimed_epsilon: float | None,
    claimed_delta: float,
    as_json: bool,
) -> None:
    data, fmt = _table_upload(release_file, fmt)
    result = client.audits.external(
        dataset,
        data,
        purpose=purpose,
        format=fmt,
        claimed_epsilon=claimed_epsilon,
        claimed_delta=claimed_delta,
    )

    def human() -> None:
        click.echo(
            f"external table {release_file.name} ({result.rows} rows, sha256 {result.table_sha256[:16]}...) "
            f"against {result.dataset}: {result.verdict} [{result.rule}]"
        )
        click.echo(f"  {result.reason}")
        _show_summary(result.audit)
        if result.ignored_columns:
            click.echo(f"  ignored columns (not in the schema): {', '.join(result.ignored_columns)}")
        click.echo(f"scope {result.scope}; meaningful:")
        for line in result.meaningful:
            click.echo(f"  - {line}")
        click.echo("caveats:")
        for line in result.caveats:
            click.echo(f"  - {line}")
        left = "" if result.audits_left_today is None else f"; {result.audits_left_today} left today"
        click.echo(f"recorded in the ledger as entry #{result.audit_seq} by {result.requested_by}{left}")

    _emit(result, as_json, human)


def _canary_audit(
    client: Any,
    dataset: str,
    request: dict[str, Any],
    dry_run: bool,
    no_wait: bool,
    quiet: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    if dry_run:
        plan = client.audits.plan_canary(dataset, **request)

        def human_plan() -> None:
            click.echo(
                f"canary audit of {dataset} with engine {plan.engine.split(':')[-1]}: charges epsilon "
                f"{plan.epsilon:g}, delta {plan.delta:g} ({plan.method}); output never released"
            )
            click.echo(f"  admitted now: {plan.admitted}; epsilon remaining: {plan.epsilon_remaining}")

        _emit(plan, as_json, human_plan)
        return
    job = client.audits.submit_canary(dataset, **request)
    if no_wait:
        _emit(job, as_json, lambda: click.echo(_job_line(job)))
        return
    client.jobs.wait(job.id, timeout=timeout, progress=not quiet and not as_json)
    result = client.audits.canary_result(job.id)

    def human() -> None:
        click.echo(f"canary audit {result.job_id} of {result.dataset} ({result.engine}): {result.verdict}")
        click.echo(f"  {result.reason}")
        click.echo(
            f"  empirical epsilon lower bound {result.empirical_epsilon_lower_bound:.4g} "
            f"({result.confidence:.0%}, {result.method}) "
            f"vs accountant epsilon {result.accountant_epsilon:.4g}"
        )
        click.echo(
            f"  canaries {result.n_canaries} ({result.n_included} included); AUC {result.auc:.3f}; "
            f"TPR@1% {result.tpr_at_fpr_1pct:.3f}; TPR@10% {result.tpr_at_fpr_10pct:.3f}"
        )
        click.echo(
            f"  ledger: spend #{result.spend_seq}, design #{result.design_seq}, audit #{result.audit_seq}; "
            "the run's output was not released"
        )

    _emit(result, as_json, human)


@click.command()
@click.argument("release_id", required=False)
@click.option("--quality", is_flag=True, help="Also show the quality report (release audits).")
@click.option(
    "--release-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Audit this table (CSV or Parquet, made by any tool) against --dataset (admin, auditor).",
)
@click.option("--dataset", envvar="SAFESYNTH_DATASET", help="The registered dataset to audit against.")
@click.option(
    "--purpose", help="Why the audit is needed (recorded in the ledger; required with --release-file)."
)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), help="Format of --release-file.")
@click.option(
    "--claimed-epsilon",
    type=click.FloatRange(min=0),
    help="The other tool's DP claim, checked against the lower bound (under the stated assumption).",
)
@click.option("--claimed-delta", type=click.FloatRange(min=0), default=0.0, help="The other tool's delta.")
@click.option(
    "--canaries",
    is_flag=True,
    help="Run a canary audit of --dataset (an audit-only engine run, charged like a synthesis).",
)
@click.option(
    "--engine",
    type=click.Choice(["tabular", "text"]),
    default="tabular",
    show_default=True,
    help="Engine of the canary run.",
)
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), help="Canary run: target epsilon.")
@click.option("--delta", type=click.FloatRange(min=0), help="Canary run: target delta.")
@click.option("--rows", type=click.IntRange(min=1), help="Canary run: rows (default: a DP estimate).")
@click.option("--option", "option_pairs", multiple=True, help="Canary run: engine option KEY=VALUE.")
@click.option(
    "--n-canaries", type=click.IntRange(10, 10_000), default=500, show_default=True, help="Canaries."
)
@click.option("--dry-run", is_flag=True, help="Canary run: show the cost only (spends nothing).")
@click.option("--no-wait", is_flag=True, help="Canary run: print the queued job and return at once.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after this many seconds.")
@_remote
def audit(
    release_id: str | None,
    quality: bool,
    release_file: Path | None,
    dataset: str | None,
    purpose: str | None,
    fmt: str | None,
    claimed_epsilon: float | None,
    claimed_delta: float,
    canaries: bool,
    engine: str,
    epsilon: float | None,
    delta: float | None,
    rows: int | None,
    option_pairs: tuple[str, ...],
    n_canaries: int,
    dry_run: bool,
    no_wait: bool,
    quiet: bool,
    timeout: float | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Show a release's privacy audit, audit an external table, or run a canary audit.

    \b
    safesynth audit RELEASE_ID [--quality]
    safesynth audit --release-file FILE --dataset D --purpose TEXT
    safesynth audit --canaries --dataset D --epsilon E --purpose TEXT [--dry-run]

    All results are aggregates only. An external table's audit is labelled external-table/v1 (it was
    not generated under the dataset's audit design: read its caveats); it is recorded in the ledger.
    """
    modes = sum((release_id is not None, release_file is not None, canaries))
    if modes != 1:
        raise click.UsageError("give exactly one of RELEASE_ID, --release-file or --canaries")
    if (release_file is not None or canaries) and not dataset:
        raise click.UsageError("--dataset is required with --release-file and --canaries")
    if (release_file is not None or canaries) and not purpose:
        raise click.UsageError("--purpose is required with --release-file and --canaries (it is recorded)")
    if canaries and epsilon is None:
        raise click.UsageError("--epsilon is required with --canaries")
    with _client(url, token, as_json) as client:
        if release_file is not None:
            assert dataset is not None and purpose is not None
            _external_audit(
                client, release_file, dataset, purpose, fmt, claimed_epsilon, claimed_delta, as_json
            )
            return
        if canaries:
            assert dataset is not None and purpose is not None and epsilon is not None
            request = {
                "epsilon": epsilon,
                "purpose": purpose,
                "engine": engine,
                "delta": delta,
                "rows": rows,
                "options": _options(option_pairs),
                "n_canaries": n_canaries,
            }
            _canary_audit(client, dataset, request, dry_run, no_wait, quiet, timeout, as_json)
            return
        assert release_id is not None
        report = client.releases.audit(release_id)
        q = client.releases.quality(release_id) if quality else None
        if as_json:
            data: dict[str, Any] = {"audit": report.model_dump(mode="json")}
            if q is not None:
                data["quality"] = q.model_dump(mode="json")
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(f"audit of release {report.release_id}: {report.verdict}")
        _show_summary(report)
        if q is not None:
            click.echo("quality:")
            for name, value in q.metrics.items():
                click.echo(f"  {name}: {'-' if value is None else f'{value:.4g}'}")
