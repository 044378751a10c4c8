"""SafeSynth ledger: an append-only, signed, RFC 6962 Merkle-tree transparency log. Knows nothing of DP."""

__all__: list[str] = []
