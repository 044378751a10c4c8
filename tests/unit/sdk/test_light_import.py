"""The SDK is light: importing it loads no numpy, pandas, llama.cpp nor any other part of ours."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pandas", "llama_cpp", "sklearn", "scipy", "safesynth.gateway", "safesynth.ledger")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


def test_sdk_import_loads_nothing_heavy() -> None:
    loaded = _modules_after_import("safesynth.sdk")
    assert "safesynth.sdk" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}


def test_ledger_import_loads_nothing_heavy() -> None:
    loaded = _modules_after_import("safesynth.ledger")
    assert not {m for m in loaded if m.startswith(("numpy", "pandas", "llama_cpp", "safesynth.gateway"))}
