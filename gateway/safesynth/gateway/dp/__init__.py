"""The DP core: mechanisms, calibration, privacy events, the accountant and the privacy filter.

Pure: no I/O; randomness is passed in as a :class:`~safesynth.gateway.dp.rng.RandomSource`.
Modules: ``errors``, ``rng``, ``samplers`` (exact sampling), ``mechanisms``, ``contribution``
(clamping and contribution bounds), ``calibration``, ``events``, ``rdp`` (Rényi curves),
``pld`` (dp-accounting PLDs), ``accountant`` (``compose``), ``filter`` (``PrivacyFilter``).
See docs/privacy-accounting.md.
"""

__all__: list[str] = []
