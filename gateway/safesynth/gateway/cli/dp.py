"""`safesynth dp ...`: privacy cost and noise calibration from the DP core.

Heavy imports (numpy, scipy, dp-accounting) happen inside the commands, never at import time.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["calibrate", "cost", "dp"]

EVENT_HELP = """\b
Events are a JSON list of objects (or one object); privacy numbers are decimal
strings, counts and integer sensitivities JSON integers. Kinds:
  {"kind": "gaussian/v1", "sigma": "2.5", "sensitivity": "1.0", "count": 3}
  {"kind": "laplace/v1", "scale": "10", "sensitivity": "1.0", "count": 1}
  {"kind": "discrete_gaussian/v1", "sigma": "4", "sensitivity": 1, "count": 1}
  {"kind": "discrete_laplace/v1", "scale": "2", "sensitivity": 1, "count": 1}
  {"kind": "exponential/v1", "epsilon": "0.1", "count": 5}   (bounded range)
  {"kind": "pure_dp/v1", "epsilon": "0.5", "count": 1}
  {"kind": "approx_dp/v1", "epsilon": "0.5", "delta": "1e-8", "count": 1}
  {"kind": "zcdp/v1", "rho": "0.01", "count": 1}
  {"kind": "partition_selection/v1", "epsilon": "1", "delta": "1e-8",
   "max_partitions_contributed": 1}
  {"kind": "composed/v1", "events": [ ...events... ]}
sensitivity: L2 for Gaussian kinds, L1 for Laplace kinds; count and sensitivity
default to 1. A kind is never changed: a new meaning gets a new kind name."""


def _fail(exc: Exception) -> None:
    code = getattr(exc, "code", "error")
    click.echo(json.dumps({"error": code, "message": str(exc)}), err=True)
    sys.exit(2)


@click.group()
def dp() -> None:
    """Privacy cost of events and noise calibration."""


@dp.command(epilog=EVENT_HELP)
@click.option(
    "--events",
    "events_file",
    type=click.File("r"),
    default="-",
    show_default="stdin",
    help="JSON file with the list of privacy events ('-' for stdin).",
)
@click.option("--delta", type=float, default=None, help="Report the smallest epsilon at this delta.")
@click.option("--epsilon", type=float, default=None, help="Report the smallest delta at this epsilon.")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["gdp", "rdp", "pld", "pure", "basic"]),
    help="Restrict the accounting methods tried (repeatable; default: all valid ones).",
)
def cost(events_file: Any, delta: float | None, epsilon: float | None, methods: tuple[str, ...]) -> None:
    """Print the (epsilon, delta) of a fixed sequence of events as JSON.

    Give exactly one of --delta or --epsilon. The output has epsilon, delta (decimal strings), the
    method that gave the tightest valid value, every method's value, and per-event terms.
    """
    from safesynth.gateway.dp.accountant import compose, smallest_delta
    from safesynth.gateway.dp.errors import DPError, InvalidParameter
    from safesynth.gateway.dp.events import events_from_json

    try:
        if (delta is None) == (epsilon is None):
            raise InvalidParameter("delta", "give exactly one of --delta or --epsilon")
        try:
            raw = json.load(events_file)
        except json.JSONDecodeError as exc:
            raise InvalidParameter("events", f"not valid JSON: {exc}") from None
        events = events_from_json(raw)
        use = methods or None
        if delta is not None:
            result = compose(events, delta=delta, methods=use)
        else:
            assert epsilon is not None
            result = smallest_delta(events, epsilon=epsilon, methods=use)
    except DPError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(result.to_json(), indent=2))


@dp.command()
@click.option(
    "--mechanism",
    type=click.Choice(["gaussian", "laplace", "discrete_laplace", "exponential"]),
    default="gaussian",
    show_default=True,
    help="Mechanism to calibrate.",
)
@click.option("--epsilon", type=float, required=True, help="Target epsilon.")
@click.option("--delta", type=float, default=None, help="Target delta (required for gaussian).")
@click.option(
    "--sensitivity", type=float, default=1.0, show_default=True, help="L2 (gaussian) or L1 sensitivity."
)
@click.option("--count", type=int, default=1, show_default=True, help="Number of releases composed.")
def calibrate(mechanism: str, epsilon: float, delta: float | None, sensitivity: float, count: int) -> None:
    """Print the noise (sigma or scale, rounded up) that meets (epsilon, delta) as JSON.

    gaussian uses the analytic Gaussian mechanism (Balle & Wang 2018), exact for `count`
    compositions; laplace and discrete_laplace split epsilon evenly over `count` releases;
    exponential prints the per-selection epsilon.
    """
    from safesynth.gateway.dp.calibration import gaussian_sigma, laplace_scale
    from safesynth.gateway.dp.errors import DPError, InvalidParameter

    try:
        out: dict[str, Any] = {"mechanism": mechanism, "epsilon": repr(epsilon), "count": count}
        if mechanism == "gaussian":
            if delta is None:
                raise InvalidParameter("delta", "required for the gaussian mechanism")
            sigma = gaussian_sigma(epsilon, delta, sensitivity, count=count)
            out.update(delta=repr(delta), sensitivity=repr(sensitivity), sigma=repr(sigma))
            out["event"] = {
                "kind": "gaussian/v1",
                "sigma": repr(sigma),
                "sensitivity": repr(sensitivity),
                "count": count,
            }
        elif mechanism in ("laplace", "discrete_laplace"):
            if count < 1:
                raise InvalidParameter("count", "must be >= 1")
            scale = laplace_scale(epsilon / count, sensitivity)
            out.update(delta="0.0", sensitivity=repr(sensitivity), scale=repr(scale))
        else:
            if count < 1:
                raise InvalidParameter("count", "must be >= 1")
            out.update(delta="0.0", epsilon_per_selection=repr(epsilon / count))
    except DPError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(out, indent=2))
