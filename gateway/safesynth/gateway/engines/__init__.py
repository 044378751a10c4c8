"""safesynth.gateway.engines."""

__all__: list[str] = []
