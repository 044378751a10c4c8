"""The layout the design card fixes: one distribution, three source roots, a PEP 420 namespace."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PARTS = {"gateway": "safesynth.gateway", "sdk": "safesynth.sdk", "ledger": "safesynth.ledger"}


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_namespace_has_no_init() -> None:
    for root in PARTS:
        assert (ROOT / root / "safesynth").is_dir()
        assert not (ROOT / root / "safesynth" / "__init__.py").exists()


def test_every_package_directory_is_listed_for_the_wheel() -> None:
    setuptools_cfg = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools_cfg["packages"])
    found = set()
    for root in PARTS:
        base = ROOT / root
        for init in base.glob("safesynth/**/__init__.py"):
            found.add(".".join(init.parent.relative_to(base).parts))
    assert found == listed, f"pyproject packages differ from the tree: {found ^ listed}"


def test_package_dir_maps_each_part_to_its_root() -> None:
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    for root, package in PARTS.items():
        assert mapping[package] == f"{root}/{package.replace('.', '/')}"
        assert (ROOT / mapping[package] / "py.typed").is_file()


def test_top_level_files_exist() -> None:
    for name in ("pyproject.toml", "SECURITY.md", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / name).is_file(), name
    for name in ("tests", "benchmarks", "docs"):
        assert (ROOT / name).is_dir(), name
