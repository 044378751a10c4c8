"""SafeSynth gateway: the service that holds private datasets and releases only DP outputs."""

__all__: list[str] = []
