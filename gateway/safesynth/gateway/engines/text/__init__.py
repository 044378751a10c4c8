"""safesynth.gateway.engines.text."""

__all__: list[str] = []
