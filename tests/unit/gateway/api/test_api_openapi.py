"""The OpenAPI document: every route the SDK knows is served, every $ref resolves, errors are problems."""

from __future__ import annotations

import json
import re
from pathlib import Path

from safesynth.gateway.api.app import create_app
from safesynth.gateway.settings import load_settings
from safesynth.sdk import routes


def _doc(tmp_path: Path) -> dict[str, object]:
    return create_app(load_settings(home=tmp_path / "home")).openapi()


def test_every_sdk_route_is_served(tmp_path: Path) -> None:
    paths = set(_doc(tmp_path)["paths"])  # type: ignore[arg-type]
    templates = {
        value
        for name, value in vars(routes).items()
        if name.isupper() and isinstance(value, str) and value.startswith("/") and name != "PREFIX"
    }
    assert templates - paths == set()


def test_every_ref_resolves(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    text = json.dumps(doc)
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text))
    schemas = doc["components"]["schemas"]  # type: ignore[index]
    assert refs and refs <= set(schemas)
    register = doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]  # type: ignore[index]
    assert set(register) == {"application/json", "multipart/form-data"}


def test_errors_are_documented_as_problems(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    post = doc["paths"]["/v1/datasets/{dataset}/queries"]["post"]  # type: ignore[index]
    assert "409" in post["responses"] and "422" in post["responses"] and "401" in post["responses"]
