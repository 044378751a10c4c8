"""safesynth.gateway.service."""

__all__: list[str] = []
