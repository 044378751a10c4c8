"""The text engine: DP synthetic text by Private Evolution on the on-premise model.

Modules (one concept each): ``engine`` (plan/run, registered as "text"), ``accounting`` (events,
calibration, size gate arithmetic), ``vote`` (the only reader of private texts), ``embed`` (public
embeddings), ``generate`` and ``prompts`` (random and variation generators from public information),
``selection`` (post-processing of noisy histograms), ``options``, ``errors``. Importing this package
imports none of them (numpy and scikit-learn load with the engine).
"""

__all__: list[str] = []
