"""The registry of answer generators: the one list that settings, the CLI, the chat and the eval read.

Adding a generator: a module under ``rag/generators/`` with a class following ``base.Generator``,
and one line in ``REGISTRY``. Entries are imported only when used, so reading the names is cheap.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from rag.errors import BylineError, ConfigError

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.generators.base import Generator

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_LABEL = "Auto (local model if installed, else extractive)"
# name -> "module:Class". 'auto' takes the first one that can run, in this order.
REGISTRY: dict[str, str] = {
    "local": "rag.generators.local:LocalGenerator",
    "openai": "rag.generators.openai_compat:OpenAICompatibleGenerator",
    "extractive": "rag.generators.extractive:ExtractiveGenerator",
}


def generator_names(*, auto: bool = True) -> list[str]:
    """Every name ``BYLINE_GENERATOR`` accepts."""
    return [AUTO, *REGISTRY] if auto else list(REGISTRY)


def generator_class(name: str) -> "type[Generator]":
    if name not in REGISTRY:
        raise ConfigError(f"generator = {name!r}: use {', '.join(repr(n) for n in generator_names())}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def generator_label(name: str) -> str:
    """What people see for a generator name (in the chat's choices)."""
    return AUTO_LABEL if name == AUTO else generator_class(name).label


def unavailable(name: str, settings: "Settings") -> str | None:
    """Why the named generator cannot run with these settings, or None when it can."""
    try:
        generator_class(name).check(settings)
    except BylineError as exc:
        return str(exc)
    return None


def resolve_generator_name(settings: "Settings", name: str | None = None) -> str:
    """The generator that ``name`` (default ``settings.generator``) stands for.

    'auto' is the first registered generator that can run; an explicit choice that cannot work
    raises instead of silently falling back.
    """
    name = name or settings.generator
    if name != AUTO:
        generator_class(name).check(settings)
        return name
    for candidate in REGISTRY:
        if unavailable(candidate, settings) is None:
            log.info("generator 'auto' resolved to %r", candidate)
            return candidate
    raise ConfigError("no answer generator can run")  # pragma: no cover - 'extractive' always can


def create_generator(settings: "Settings", name: str | None = None) -> "Generator":
    """A ready generator for these settings (``name`` default: ``settings.generator``, 'auto' resolved)."""
    return generator_class(resolve_generator_name(settings, name))(settings)
