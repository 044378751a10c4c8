"""The on-premise llama.cpp runner: one model per process, typed errors, measured calls."""

__all__: list[str] = []
