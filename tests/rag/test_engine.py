"""The engine owns its parts: two engines in one process keep two archives apart, with no global to clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag import Engine, default_engine
from rag.config import Settings, load_settings
from rag.errors import ConfigError
from tests.conftest import DATA_DIR, FIXTURES


def test_two_engines_two_archives(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path / "a", generator="extractive")
    b = Settings(data_dir=tmp_path / "b", generator="extractive")
    Ingestor(a).ingest([str(DATA_DIR)])
    Ingestor(b).ingest([str(FIXTURES / "corpus" / "riverton-budget.md")])
    ea, eb = Engine(a), Engine(b)
    assert ea.embedder is eb.embedder  # one loaded model per process, shared
    q = "How large is the budget Riverton City Council approved?"
    assert not eb.ask(q).refused
    assert ea.ask(q).refused  # archive a holds only the sample article
    assert not ea.ask("Who is Ali al-Daffayi?").refused


def test_engine_generator_by_name_and_reconfigured_keeps_parts(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "x", generator="extractive")
    engine = Engine(s)
    assert engine.generator().name == "extractive" and engine.generator("extractive") is engine.generator()
    with pytest.raises(ConfigError, match="openai_base_url"):
        engine.generator("openai")
    other = engine.reconfigured(s.model_copy(update={"max_new_tokens": 64}))
    assert other is not engine and other.retriever is engine.retriever and other.store is engine.store
    moved = engine.reconfigured(s.model_copy(update={"data_dir": tmp_path / "y"}))
    assert moved.store is not engine.store and moved.embedder is engine.embedder
    assert engine.reconfigured(s) is engine
    assert default_engine(s).settings == s


def test_settings_take_generator_names_from_the_registry() -> None:
    assert load_settings(generator="extractive").generator == "extractive"
    with pytest.raises(ConfigError, match="generator.*'gpt5'.*auto, local, openai, extractive"):
        load_settings(generator="gpt5")


def test_warm_up_builds_the_keyword_index_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(data_dir=tmp_path / "w", generator="extractive")
    Ingestor(s).ingest([str(DATA_DIR)])
    engine = Engine(s)
    assert engine.retriever.keywords.version is None
    engine.warm_up()
    assert engine.retriever.keywords.version is not None  # the first question will not build it
    broken = Engine(s)
    broken.retriever.archive_months = lambda: (_ for _ in ()).throw(RuntimeError("disk gone"))  # type: ignore[method-assign]
    broken.warm_up()
    assert "warm-up failed (disk gone)" in caplog.text


def test_search_reads_the_question_as_ask_does(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "s", generator="extractive")
    Ingestor(s).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    engine = Engine(s)
    plain = engine.search("storm port council budget", k=6)
    other = next(p.source for p in plain if p.source != plain[0].source)
    named = engine.search(f"What did {other} report about the storm, the port and the council budget?", k=6)
    assert named[0].source == other  # the outlet the question names comes first
    assert [p.number for p in named] == list(range(1, len(named) + 1))
    assert engine.search("storm port", k=3, filters={"sources": [other]})[0].source == other
