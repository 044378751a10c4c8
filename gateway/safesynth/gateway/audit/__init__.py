"""safesynth.gateway.audit."""

__all__: list[str] = []
