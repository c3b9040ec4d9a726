"""Byline's exceptions. Each carries a message a person can act on; the CLI and UI show it as is."""

from __future__ import annotations


class BylineError(Exception):
    """Base class: anything Byline raises on purpose."""


class ConfigError(BylineError):
    """A setting has a bad value. The message names the setting and shows the value."""


class StoreError(BylineError):
    """The Chroma store cannot be opened or reached."""


class ModelError(BylineError):
    """A model (embedder, generator, reranker) is missing or broken."""


class GeneratorError(BylineError):
    """The answer generator failed at run time (endpoint down, bad reply)."""


class IngestError(BylineError):
    """One input (file, URL, feed entry) could not be read. ``source`` names it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class QuestionError(BylineError):
    """The question itself cannot be answered as given (empty, too long)."""
