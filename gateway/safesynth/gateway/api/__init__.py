"""safesynth.gateway.api."""

__all__: list[str] = []
