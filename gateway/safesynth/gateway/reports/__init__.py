"""safesynth.gateway.reports."""

__all__: list[str] = []
