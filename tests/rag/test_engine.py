"""The engine owns its parts: two engines in one process keep two archives apart, with no global to clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag import Engine, default_engine
from rag.config import Settings, load_settings
from rag.errors import ConfigError
from rag.text import approx_tokens
from rag.types import Answer, Sources
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


class _Unsure:
    """A model stand-in that never gives a usable short reply ("unknown") and then writes one cited sentence,
    recording every prompt it is sent."""

    name, label, cost, uses_model = "unsure", "Unsure model", "instant", True

    def __init__(self, settings: Settings) -> None:
        self.prompts: list[tuple[str, str, str]] = []  # (method, system, user)

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Always available."""

    def stream(self, inp):  # the full free-text prompt: must not be used after a short reply
        self.prompts.append(("stream", "", ""))
        yield "Ali al-Daffayi announced mass popular demonstrations. [1]"

    def prompt_tokens(self, inp) -> int:
        return 100

    def complete(self, system: str, user: str, max_tokens: int) -> str:
        self.prompts.append(("complete", system, user))
        return "unknown"

    def yes_probability(self, system: str, user: str) -> None:
        return None

    def stream_reply(self, system: str, user: str, max_tokens: int):
        self.prompts.append(("stream_reply", system, user))
        yield "Ali al-Daffayi announced mass popular demonstrations. [1]"


def test_sentences_after_an_unusable_short_reply_repeat_its_prompt_up_to_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's prompt cache then holds the passages and the question: only the new task line is processed."""
    from rag.generators import REGISTRY
    from rag.prompts import ENTITY_TASK, SENTENCES_TASK

    monkeypatch.setitem(REGISTRY, "unsure", f"{__name__}:_Unsure")
    s = load_settings(data_dir=tmp_path / "byline", generator="unsure")
    Ingestor(s).ingest([str(DATA_DIR)])
    engine = Engine(s)
    a = engine.ask("Which official announced the mass popular demonstrations?")
    calls = engine.generator().prompts
    assert [c[0] for c in calls] == ["complete", "stream_reply"]
    (_, sys1, short), (_, sys2, follow) = calls
    head = short[: short.index(ENTITY_TASK)]
    assert sys1 == sys2 and follow.startswith(head) and SENTENCES_TASK in follow[len(head):]
    assert not a.refused and a.citations[0].source == "Breitbart" and "Daffayi" in a.text
    # The answer's passages are the ones that prompt showed, numbered as it numbered them.
    assert all(f"[{p.number}]" in head for p in a.passages)


def test_an_answer_reads_and_shows_only_the_story_asked_about(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "t", generator="extractive", article_context_tokens=120)
    Ingestor(s).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    engine = Engine(s)
    q = "What happened at the port during the storm in Saltmere?"
    assert {p.title for p in engine.search(q, k=6)} != {p.title for p in engine.search(q, k=2)}  # the archive holds other stories
    events = list(engine.ask_stream(q))
    sources, answer = next(e for e in events if isinstance(e, Sources)), events[-1]
    assert isinstance(answer, Answer) and not answer.refused and "Saltmere" in answer.text
    assert {p.title for p in sources.passages} == {p.title for p in answer.passages} == {engine.search(q, k=1)[0].title}
    assert [p.number for p in sources.passages] == list(range(1, len(sources.passages) + 1))  # the cards read [1], [2]
    # One story in the context: its budget is article_context_tokens, not context_tokens.
    assert sum(approx_tokens(p.text) for p in answer.passages) <= 120 < sum(approx_tokens(p.full_text) for p in answer.passages)
