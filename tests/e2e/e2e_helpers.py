"""Helpers of the end-to-end tests: CLI subprocesses, a generated table, the running gateway's facts."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SAFESYNTH = [sys.executable, "-c", "from safesynth.gateway.cli import main; main()"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `safesynth` subprocess: no inherited SAFESYNTH_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESYNTH_")}
    env.update(extra)
    return env


def safesynth_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `safesynth` console script (the installed entry point) in a subprocess."""
    exe = Path(sys.executable).with_name("safesynth")
    command = [str(exe), *args] if exe.exists() else [*SAFESYNTH, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"safesynth {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def write_people_csv(path: Path, rows: int, seed: int) -> None:
    """A small synthetic-looking table (generated here, not private): age, sex, city, income."""
    rng = random.Random(seed)
    cities = ["Lyon", "Porto", "Turin", "Ghent"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["age", "sex", "city", "income"])
        for _ in range(rows):
            age = rng.randint(18, 90)
            writer.writerow(
                [age, rng.choice("FM"), rng.choice(cities), round(rng.uniform(0, 150_000) + age * 500, 2)]
            )


PEOPLE_SCHEMA = {
    "columns": [
        {"name": "age", "kind": "numeric", "lower": 18, "upper": 90, "integer": True},
        {"name": "sex", "kind": "categorical", "categories": ["F", "M"]},
        {"name": "city", "kind": "categorical", "categories": ["Lyon", "Porto", "Turin", "Ghent"]},
        {"name": "income", "kind": "numeric", "lower": 0, "upper": 200000},
    ],
    "description": "generated test table",
}


@dataclass(frozen=True)
class Gateway:
    """A running gateway: its URL, home, first admin token and public key (base64)."""

    url: str
    home: Path
    admin_token: str
    public_key_b64: str
