"""SafeSynth SDK: the typed client for the gateway. Imports nothing heavy and nothing else of ours."""

__all__: list[str] = []
