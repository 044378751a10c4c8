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
        _emit(job, as_json, lambda: click.echo(_job_line(job)))


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


@click.command()
@click.argument("release_id")
@click.option("--quality", is_flag=True, help="Also show the quality report.")
@_remote
def audit(release_id: str, quality: bool, url: str | None, token: str | None, as_json: bool) -> None:
    """Show a release's privacy audit (aggregates only) and optionally its quality."""
    with _client(url, token, as_json) as client:
        report = client.releases.audit(release_id)
        q = client.releases.quality(release_id) if quality else None
        if as_json:
            data: dict[str, Any] = {"audit": report.model_dump(mode="json")}
            if q is not None:
                data["quality"] = q.model_dump(mode="json")
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(f"audit of release {report.release_id}: {report.verdict}")
        if report.accountant_epsilon is not None:
            click.echo(f"  accountant epsilon: {report.accountant_epsilon:g}")
        if report.empirical_epsilon_lower_bound is not None:
            click.echo(f"  empirical epsilon lower bound: {report.empirical_epsilon_lower_bound:g}")
        for attack in report.attacks:
            tprs = ", ".join(f"TPR {p.tpr:.3f} @ FPR {p.fpr:g}" for p in attack.tpr_at_fpr)
            click.echo(f"  {attack.name}: AUC {attack.auc:.3f}" + (f"; {tprs}" if tprs else ""))
        for name, value in report.metrics.items():
            click.echo(f"  {name}: {'-' if value is None else f'{value:.4g}'}")
        if q is not None:
            click.echo("quality:")
            for name, value in q.metrics.items():
                click.echo(f"  {name}: {'-' if value is None else f'{value:.4g}'}")
