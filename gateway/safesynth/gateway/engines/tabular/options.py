"""The tabular engine's options (``SynthesisRequest.options``) and their documented defaults.

Budget split (``split``): fractions of the privacy budget, in zCDP terms (each step's rho share),
normalised over the steps the plan actually needs:

==========  =======  ===================================================================
key         default  what it pays for
==========  =======  ===================================================================
schema      0.10     DP bounds, DP quantile bins, DP category selection (only for columns
                     whose schema gives no bounds / categories; public facts cost nothing)
count       0.01     the DP row count (only when ``rows`` is None: "as many as the original")
one_way     0.25     noisy 1-way marginals of every modelled column (Gaussian)
select      0.14     the spanning tree: n-1 exponential mechanisms (MST's selection); with
                     ``model="adaptive"``: the rounds' exponential mechanisms
two_way     0.50     noisy 2-way marginals on the tree's edges (Gaussian); with
                     ``model="adaptive"``: the rounds' measured 2- or 3-way marginals
keywords    0.05     DP keyword selection of text columns (only with ``text_keywords`` > 0)
==========  =======  ===================================================================

``model="adaptive"`` (the default; see :mod:`.adaptive`) runs ``rounds`` rounds (default 2 (n-1)), each
an exponential mechanism (``select:<r>``) then a Gaussian measurement (``measure:<r>``), with equal
shares per round; its sampled rows are then raked (post-processing, :mod:`.raking`) to each column's
1-way estimate combined from every measurement. ``model="tree"`` (MST's structure: n-1 selections and
n-1 2-way marginals on a spanning tree) was the default before: on UCI Adult the adaptive model is
better on every benchmark metric at epsilon 0.3-10; on small tables (PUMS, 1,000 rows, 6 columns) the
tree's 2- and 3-way TVD is lower (see ``benchmarks/results/tabular.md``).

Inside ``schema`` each column's steps weigh: bounds 1, fine histogram (quantile bins) 2, category
selection 1. One noise multiplier scales every step; it is found by bisection with the accountant
so that the composed cost is at most the requested epsilon at the requested delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from safesynth.gateway.engines.base import InvalidRequest

__all__ = ["DEFAULT_SPLIT", "TabularOptions", "parse_options"]

DEFAULT_SPLIT: dict[str, float] = {
    "schema": 0.10,
    "count": 0.01,
    "one_way": 0.25,
    "select": 0.14,
    "two_way": 0.50,
    "keywords": 0.05,
}


class TabularOptions(BaseModel):
    """Options of the tabular engine; every field has a documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SPLIT))
    model: Literal["tree", "adaptive", "independent"] = Field(
        default="adaptive",
        description="'adaptive' (default): AIM-style rounds growing a Bayesian network of degree 2 (2- and "
        "3-way marginals), its rows raked to the combined 1-way estimates; 'tree': MST-style spanning "
        "tree of 2-way marginals; 'independent': 1-way marginals only (a baseline floor)",
    )
    rounds: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="model='adaptive': number of rounds (default 2 (d-1) for d modelled columns; at "
        "least d-1: the first d-1 rounds place the columns, the rest refine them)",
    )
    numeric_bins: int = Field(default=16, ge=2, le=256, description="max DP quantile bins per numeric column")
    fine_cells: int = Field(default=256, ge=8, le=4096, description="cells of the fine numeric grid")
    bins: Literal["quantile", "uniform"] = Field(
        default="quantile", description="'uniform' bins cost nothing but need public bounds"
    )
    bounds_tail: float = Field(default=0.005, gt=0, lt=0.25, description="tail mass cut by DP bounds")
    partition_delta_share: float = Field(
        default=0.25, gt=0, lt=1, description="share of delta given to DP category selection"
    )
    text_batch_size: int = Field(default=8, ge=1, le=256)
    text_keywords: int = Field(
        default=0,
        ge=0,
        le=50,
        description="DP keyword guidance for text columns: each row contributes at most this many "
        "distinct words to a DP-selected (noisy threshold) vocabulary per text column that guides the "
        "prompts; 0 (default) turns it off and spends nothing",
    )
    text_temperature: float = Field(default=0.8, ge=0, le=2)

    @field_validator("split")
    @classmethod
    def _split(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(DEFAULT_SPLIT)
        if unknown:
            raise ValueError(f"unknown split keys {sorted(unknown)}; known: {sorted(DEFAULT_SPLIT)}")
        merged = {**DEFAULT_SPLIT, **value}
        for key, share in merged.items():
            if not share > 0 or share != share:
                raise ValueError(f"split[{key!r}] must be > 0")
        return merged


def parse_options(options: Mapping[str, Any]) -> TabularOptions:
    """Validate ``request.options``; ``InvalidRequest`` names the bad option."""
    try:
        return TabularOptions.model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequest(f"invalid option {where!r}: {first.get('msg')}") from exc
