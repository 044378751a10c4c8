"""The DP core: mechanisms, calibration, privacy events and the accountant. Pure: no I/O."""

__all__: list[str] = []
