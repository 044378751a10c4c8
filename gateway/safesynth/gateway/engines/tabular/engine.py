"""The tabular engine: DP schema step, an MST-style tree model, sampling, text columns (stub)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from safesynth.gateway.engines.base import EngineContext, EngineOutput, Plan, SynthesisRequest
    from safesynth.sdk.schema import DatasetSchema

__all__ = ["TabularEngine"]


class TabularEngine:
    """Mixed tables (categorical, numeric, text, identifier columns)."""

    name = "tabular"

    def plan(self, schema: DatasetSchema, request: SynthesisRequest) -> Plan:
        """Fix every mechanism and its noise from public inputs only."""
        raise NotImplementedError

    def run(self, plan: Plan, schema: DatasetSchema, data: pd.DataFrame, ctx: EngineContext) -> EngineOutput:
        """Run the planned mechanisms, fit the tree model, sample, write text columns."""
        raise NotImplementedError
