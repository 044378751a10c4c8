"""`safesynth model ...`: the on-premise llama.cpp model (inspect it, generate with it).

Heavy imports (llama_cpp, numpy) happen inside the commands, never at import time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["generate", "info", "model"]

_MODEL_OPTION_HELP = (
    "GGUF model file (default: $SAFESYNTH_MODEL_PATH, else the bundled SmolLM2-135M-Instruct Q4_1)."
)


def _fail(exc: Exception) -> None:
    code = getattr(exc, "code", "error")
    click.echo(f"error [{code}]: {exc}", err=True)
    sys.exit(2)


@click.group()
def model() -> None:
    """Inspect and run the on-premise model."""


@model.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    envvar="SAFESYNTH_MODEL_PATH",
    help=_MODEL_OPTION_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object.")
def info(model_path: Path | None, as_json: bool) -> None:
    """Show the model file: path, size, sha256, architecture and parameter count."""
    from safesynth.gateway.llm.errors import LLMError
    from safesynth.gateway.llm.model_file import inspect_model

    try:
        facts = inspect_model(model_path)
    except LLMError as exc:
        _fail(exc)
        return
    data = facts.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        shown = f"{value:,}" if key in {"size", "n_parameters"} and isinstance(value, int) else value
        click.echo(f"{key.ljust(width)}  {shown}")


@model.command()
@click.argument("prompt")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    envvar="SAFESYNTH_MODEL_PATH",
    help=_MODEL_OPTION_HELP,
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Maximum number of tokens to generate.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=0.8,
    show_default=True,
    help="Sampling temperature; 0 is greedy (deterministic).",
)
@click.option(
    "--top-p",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=0.95,
    show_default=True,
    help="Nucleus sampling threshold.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**32 - 2),
    default=None,
    help="Sampling seed (default: a fresh random seed, printed in the usage line).",
)
@click.option(
    "--json-schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Constrain the output to this JSON schema (a file) and print the JSON.",
)
@click.option("--raw", is_flag=True, help="Complete the prompt as raw text instead of as a chat message.")
@click.option("--system", default=None, help="A system message before the prompt (chat mode).")
@click.option("--json", "as_json", is_flag=True, help="Print text, parsed JSON and usage as one JSON object.")
def generate(
    prompt: str,
    model_path: Path | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    schema_file: Path | None,
    raw: bool,
    system: str | None,
    as_json: bool,
) -> None:
    """Generate text for PROMPT with the local model; the usage line goes to stderr."""
    from safesynth.gateway.llm.errors import LLMError
    from safesynth.gateway.llm.results import Usage
    from safesynth.gateway.llm.runner import get_runner

    schema: dict[str, Any] | None = None
    if schema_file is not None:
        try:
            schema = json.loads(schema_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"{schema_file}: not a readable JSON file ({exc})") from exc
        if not isinstance(schema, dict):
            raise click.BadParameter(f"{schema_file}: a JSON schema must be an object")
    try:
        runner = get_runner(model_path)
        options: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "json_schema": schema,
        }
        if raw:
            result = runner.complete(prompt, **options)
        else:
            messages = [{"role": "system", "content": system}] if system is not None else []
            result = runner.chat([*messages, {"role": "user", "content": prompt}], **options)
    except LLMError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    elif schema is not None:
        click.echo(json.dumps(result.json, ensure_ascii=False))
    else:
        click.echo(result.text)
    click.echo(f"{Usage.of([result]).summary()}; seed {result.seed}; finish {result.finish_reason}", err=True)
