"""safesynth.gateway.engines.tabular."""

__all__: list[str] = []
