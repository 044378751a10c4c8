"""`safesynth model info` and `safesynth model generate` with the real bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from safesynth.gateway.cli import main
from safesynth.gateway.llm import inspect_model


def _cli() -> CliRunner:
    return CliRunner()


def test_model_info_json() -> None:
    result = _cli().invoke(main, ["model", "info", "--json"], env={"SAFESYNTH_MODEL_PATH": ""})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = inspect_model()
    assert data["sha256"] == expected.sha256
    assert len(data["sha256"]) == 64
    assert data["size"] == expected.size > 0
    assert data["architecture"] == "llama"
    assert data["n_parameters"] == expected.n_parameters > 100_000_000
    assert data["quantization"] == "Q4_1"
    assert data["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_model_info_text() -> None:
    result = _cli().invoke(main, ["model", "info"], env={"SAFESYNTH_MODEL_PATH": ""})
    assert result.exit_code == 0, result.output
    assert "sha256" in result.output and "n_parameters" in result.output


def test_model_info_bad_file_from_env(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model", encoding="utf-8")
    result = _cli().invoke(main, ["model", "info"], env={"SAFESYNTH_MODEL_PATH": str(bad)})
    assert result.exit_code == 2
    assert "model_file_invalid" in result.output
    assert str(bad) in result.output


@pytest.mark.model
def test_model_generate_greedy_with_usage_on_stderr() -> None:
    args = [
        "model",
        "generate",
        "The capital of France is",
        "--raw",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
    ]
    result = _cli().invoke(main, args, env={"SAFESYNTH_MODEL_PATH": ""})
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout
    assert "usage:" in result.stderr and "completion tokens" in result.stderr
    assert "usage:" not in result.stdout


@pytest.mark.model
def test_model_generate_json_schema(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"colour": {"enum": ["red", "green"]}, "count": {"type": "integer"}},
                "required": ["colour", "count"],
            }
        ),
        encoding="utf-8",
    )
    args = ["model", "generate", "Pick a colour and a count.", "--json-schema", str(schema), "--seed", "7"]
    result = _cli().invoke(main, [*args, "--max-tokens", "40"], env={"SAFESYNTH_MODEL_PATH": ""})
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert value["colour"] in {"red", "green"} and isinstance(value["count"], int)
    assert "seed 7" in result.stderr


def test_model_generate_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    result = _cli().invoke(main, ["model", "generate", "hi", "--model", str(missing)])
    assert result.exit_code == 2
    assert "model_not_found" in result.output and str(missing) in result.output
