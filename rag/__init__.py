"""Byline's query side.

    from rag import ask
    a = ask("Who is Ali al-Daffayi?")
    print(a.text, a.citations)
"""

from __future__ import annotations

import rag.config  # noqa: F401  (offline switches first)
from rag.answer import ask, ask_stream
from rag.config import Settings, load_settings
from rag.errors import BylineError, ConfigError, GeneratorError, IngestError, ModelError, QuestionError, StoreError
from rag.types import Answer, Citation, Filters, Passage

__all__ = [
    "ask", "ask_stream", "Answer", "Citation", "Filters", "Passage", "Settings", "load_settings",
    "BylineError", "ConfigError", "GeneratorError", "IngestError", "ModelError", "QuestionError", "StoreError",
]
