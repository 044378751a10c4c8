"""Synthesis engines and their registry.

``ENGINES`` maps an engine name to ``"module:attribute"`` (a class or factory taking no arguments that
returns an ``Engine``); engines are imported only when asked for, so importing this package stays light.
To add an engine, add one line to ``ENGINES``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from safesynth.gateway.engines.base import EngineError, UnknownEngine

if TYPE_CHECKING:
    from safesynth.gateway.engines.base import Engine

__all__ = ["ENGINES", "EngineError", "UnknownEngine", "engine_names", "get_engine"]

#: engine name -> "module:attribute" of a zero-argument factory returning an Engine.
ENGINES: dict[str, str] = {
    "tabular": "safesynth.gateway.engines.tabular.engine:TabularEngine",
    "text": "safesynth.gateway.engines.text.engine:TextEngine",
}


def engine_names() -> list[str]:
    """The registered engine names, sorted."""
    return sorted(ENGINES)


def get_engine(name: str) -> Engine:
    """A fresh instance of the engine called ``name``; ``UnknownEngine`` if there is none."""
    target = ENGINES.get(name)
    if target is None:
        raise UnknownEngine(f"unknown engine {name!r}; known: {', '.join(engine_names())}")
    module_name, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    engine: Engine = factory()
    return engine
