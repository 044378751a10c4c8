"""Data sets shipped with the package so the demo runs on embedded defaults (provenance: SOURCES.md)."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["DEMO_DATASET", "demo_dataset_path"]

#: The mixed-column demo table: categorical, numeric and a free-text review.
DEMO_DATASET = "drug_reviews_sample.csv"


def demo_dataset_path() -> Path:
    """The path of the bundled drug-review sample (a real file inside the installed package)."""
    with as_file(files(__name__) / DEMO_DATASET) as path:
        return Path(path)
