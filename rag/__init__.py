"""Byline's query side.

    from rag import ask
    a = ask("Who is Ali al-Daffayi?")
    print(a.text, a.citations)
"""

from __future__ import annotations

from typing import Any

import rag.config  # noqa: F401  (offline switches first)
from rag.config import Settings, load_settings
from rag.errors import BylineError, ConfigError, GeneratorError, IngestError, ModelError, QuestionError, StoreError
from rag.types import Answer, Citation, Filters, Passage, Sources

__all__ = [
    "ask", "ask_stream", "Engine", "default_engine", "Answer", "Citation", "Filters", "Passage", "Sources", "Settings", "load_settings",
    "BylineError", "ConfigError", "GeneratorError", "IngestError", "ModelError", "QuestionError", "StoreError",
]


def __getattr__(name: str) -> Any:
    # The engine pulls in llama-index, torch and Chroma: import it only when asked for.
    if name in ("ask", "ask_stream", "Engine", "default_engine"):
        from rag import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
