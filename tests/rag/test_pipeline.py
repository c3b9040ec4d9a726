"""The answer pipeline's steps one by one, on hand-made passages with the real embedder."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import numpy as np
import pytest

from rag.config import Settings
from rag.dates import EARLIEST
from rag.errors import QuestionError
from rag.generators.extractive import ExtractiveGenerator
from rag.pipeline import (
    Retrieved,
    SearchPlan,
    clean_question,
    fewer,
    generation_input,
    normalize_history,
    on_topic,
    plan_search,
    rewrite_question,
    select_context,
    verify,
    widen,
)
from rag.planner import plan_question
from rag.types import WITHHELD_NOTE, Filters, Passage
from tests.rag.test_citations import PASSAGES


def _retrieved(embedder, question: str, passages=PASSAGES) -> Retrieved:
    return Retrieved(tuple(copy.deepcopy(passages)), np.asarray(embedder.get_query_embedding(question), dtype=np.float32))


def test_clean_question_folds_space_and_cuts_long_questions() -> None:
    s = Settings(max_question_chars=20)
    assert clean_question("  Who\x00 won\n the  vote? ", s).text == "Who won the vote?"
    long = clean_question("word " * 20, s)
    assert len(long.text) == 20 and "only the first 20" in long.notes[0]
    with pytest.raises(QuestionError):
        clean_question("   ", s)
    with pytest.raises(QuestionError, match="text"):
        clean_question(42, s)


def test_history_from_pairs_dicts_and_multimodal_messages() -> None:
    hist = normalize_history([("Who?", "Her [1]."), {"role": "user", "content": [{"text": "and"}, "then?"]}, {"role": "system", "content": "x"}])
    assert hist == [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Her [1]."}, {"role": "user", "content": "and then?"}]


def test_rewrite_without_a_model_carries_names_not_dates() -> None:
    history = [{"role": "user", "content": "What did Mayor Elena Marquez say about the Riverton budget?"},
               {"role": "assistant", "content": "She praised the vote on Tuesday, 14 March [1]."}]
    out = rewrite_question("And what did she say next?", history, ExtractiveGenerator(Settings()))
    assert out.startswith("And what did she say next? (") and "Elena Marquez" in out and "Riverton" in out
    assert "March" not in out and "14" not in out
    assert rewrite_question("Who is the governor of Veloria?", history, ExtractiveGenerator(Settings())) == "Who is the governor of Veloria?"


def test_plan_reads_dates_unless_the_user_gave_some() -> None:
    ref = dt.date(2024, 6, 15)
    plan = plan_search("What happened last week in Riverton?", Filters(sources=["Metro Wire"]), ref, set())
    assert plan.filters.sources == ["Metro Wire"] and plan.filters.date_from and plan.filters.date_to
    assert "dates_from_question" in plan.applied and plan.date_phrases
    explicit = plan_search("What happened last week in Riverton?", Filters(date_from="2024-01-01"), ref, set())
    assert explicit.filters.date_from == "2024-01-01" and explicit.filters.date_to is None
    assert "dates_from_question" not in explicit.applied


def test_a_date_on_one_of_two_reports_ranks_it_without_filtering_the_other() -> None:
    ref = dt.date(2024, 6, 15)
    outlets = ["Metro Wire", "Harbor Ledger"]
    q = "Between the Metro Wire report on the levy before December 5, 2023, and the Harbor Ledger report on it, did the figure change?"
    plan = plan_search(q, Filters(), ref, set(), outlets)
    assert plan.filters.date_from is None and plan.filters.date_to is None and "dates_from_question" not in plan.applied
    assert plan.boost == ((EARLIEST, dt.date(2023, 12, 5)),) and plan.applied["preferred_dates"] == ["..2023-12-05"]
    assert plan_search(q, Filters(), ref, set(), outlets, plan_question(q, outlets).outlets) == plan  # the engine's way
    one = plan_search("What did the Metro Wire report on the levy before December 5, 2023?", Filters(), ref, set(), outlets)
    assert one.filters.date_to == "2023-12-05" and not one.boost  # one report: the date filters


def test_widen_drops_only_descriptive_dates_read_from_the_question() -> None:
    ref = dt.date(2024, 6, 15)
    plan = plan_search("How did Jordan Love play in last week's game?", Filters(sources=["Metro Wire"]), ref, set())
    wide = widen(plan)
    assert wide is not None and wide.filters == Filters(sources=["Metro Wire"])
    assert "date_from" not in wide.applied and "last week" in wide.applied["dates_not_matched"]
    assert plan.filters.date_from  # the original plan is left as it was
    assert widen(plan_search("What happened last week in Riverton?", Filters(), ref, set())) is None
    assert widen(plan_search("What happened in last week's vote?", Filters(date_from="2024-01-01"), ref, set())) is None
    assert widen(plan_search("Who won the vote?", Filters(), ref, set())) is None


def test_fewer_takes_one_passage_per_article_first_when_the_question_names_outlets(embedder) -> None:
    same = [dataclasses.replace(PASSAGES[0], number=1), dataclasses.replace(PASSAGES[0], number=2, chunk_id="c1b"),
            dataclasses.replace(PASSAGES[1], number=3), dataclasses.replace(PASSAGES[2], number=4)]
    found = dataclasses.replace(_retrieved(embedder, "budget", same), parts=(("Outlet", (1,)),))  # the question names an outlet
    assert [p.number for p in fewer(found, 3).passages] == [1, 3, 4]
    assert [p.number for p in fewer(found, 4).passages] == [1, 2, 3, 4]
    assert len(found.passages) == 4  # what it was given is left alone
    assert [p.number for p in fewer(dataclasses.replace(found, parts=()), 3).passages] == [1, 2, 3]  # names none: the first n


def test_on_topic_drops_other_stories_far_in_meaning_but_keeps_named_outlets_and_shared_words() -> None:
    q = "What did the Riverton council decide about the budget?"
    scored = [dataclasses.replace(PASSAGES[0], dense_score=0.70),                        # the story asked about
              dataclasses.replace(PASSAGES[1], dense_score=0.18),                        # another story, no shared word
              dataclasses.replace(PASSAGES[2], dense_score=0.50),                        # within the gap
              dataclasses.replace(PASSAGES[1], number=4, chunk_id="c4", dense_score=0.10,
                                  text="The council budget for Riverton was debated.",     # far in meaning, but 3 of its words
                                  full_text="The council budget for Riverton was debated.")]
    found = Retrieved(tuple(scored), np.zeros(3, dtype=np.float32))
    kept = on_topic(found, q, gap=0.25)
    assert [(p.chunk_id, p.number) for p in kept.passages] == [("c1", 1), ("c3", 2), ("c4", 3)]  # numbered as shown
    assert [p.number for p in found.passages] == [1, 2, 3, 4]  # what it was given is left alone
    named = on_topic(dataclasses.replace(found, parts=(("Outlet", (2,)), ("Other", (4, 3)))), q, gap=0.25)
    assert named.passages == found.passages and named.parts == (("Outlet", (2,)), ("Other", (4, 3)))
    assert on_topic(found, q, gap=0.6) is found  # nothing far enough: the same object
    first_far = Retrieved((scored[1], scored[0]), found.query_vector)  # the first passage always stays
    assert [p.chunk_id for p in on_topic(first_far, q, gap=0.25).passages] == ["c2", "c1"]
    parts = on_topic(dataclasses.replace(found, parts=(("Other", (4, 3)),)), q, gap=0.25)
    assert [p.chunk_id for p in parts.passages] == ["c1", "c3", "c4"] and parts.parts == (("Other", (3, 2)),)


def test_select_context_trims_copies_and_leaves_the_retrieved_passages_alone(embedder) -> None:
    long = dataclasses.replace(PASSAGES[0], text=" ".join([PASSAGES[0].text] * 6), full_text=" ".join([PASSAGES[0].text] * 6))
    found = _retrieved(embedder, "How large is the Riverton budget?", [long, *PASSAGES[1:]])
    before = copy.deepcopy(found.passages)
    ctx = select_context(found, "How large is the Riverton budget?", embedder, budget=40)
    assert found.passages == before  # nothing the step was given has changed
    assert [p.number for p in ctx.passages] == [1, 2, 3]
    assert all(p.text and p.full_text == b.full_text for p, b in zip(ctx.passages, before))
    assert len(ctx.passages[0].text) < len(before[0].text)  # cut to the budget
    assert "412.6 million" in ctx.passages[0].text
    assert ctx.best_cosine > 0.3 and 0 < ctx.best_overlap <= 1


def test_verify_keeps_supported_and_withholds_unsupported(embedder) -> None:
    q = "How large is the Riverton budget?"
    found = _retrieved(embedder, q)
    ctx = select_context(found, q, embedder, budget=400)
    inp = generation_input(SearchPlan(q, Filters(), {}), q, ctx, found)
    s = Settings()
    good = verify("Riverton approved a $412.6 million budget [1].", inp, True, embedder, s)
    assert good.text.endswith("[1]") and good.citations[0].article_id == "a1"
    bad = verify("The budget was 900 billion dollars and funded a moon base [2].", inp, True, embedder, s)
    assert bad.text == "" and not bad.citations and any(n.startswith(WITHHELD_NOTE) for n in bad.notes)


def test_verify_keeps_a_models_yes_no_verdict_flagged(embedder) -> None:
    q = "Did the Bank of Veloria hold its policy rate?"
    found = _retrieved(embedder, q)
    ctx = select_context(found, q, embedder, budget=400)
    inp = generation_input(SearchPlan(q, Filters(), {}), q, ctx, found)
    out = verify("Yes, because the governors all agreed unanimously after long talks [3].", inp, True, embedder, Settings())
    assert out.text.startswith("Yes.") and out.citations and "only the yes/no verdict" in out.notes[-1]
    quotes_only = verify("Yes, because the governors all agreed unanimously after long talks [3].", inp, False, embedder, Settings())
    assert not quotes_only.citations  # a quoting generator's "yes" is no judgment of a model


def _first_of_each_outlet(tmp_path, arts: list[tuple[int, str, str]], question: str) -> dict[str, Passage]:
    """Ingest (day of March 2024, outlet, text) articles into real Chroma; each named outlet's first passage in the
    retrieval for the question."""
    from ingest.article import Article
    from ingest.pipeline import Ingestor
    from rag.engine import Engine
    from rag.pipeline import retrieve

    s = Settings(data_dir=tmp_path / "byline", generator="extractive")
    items = [Article(text=text, title=f"Saltmere Shipping, {day} March", source=source, published_at=dt.datetime(2024, 3, day, 9),
                     url=f"https://news.example/{day}") for day, source, text in arts]
    assert Ingestor(s).ingest_items(items).added == len(items)
    engine = Engine(s)
    plan, qplan = engine._plan(question, None)
    got = retrieve(plan, engine.retriever, engine.embedder, 6, qplan)
    return {label: next(p for p in got.passages if p.number == nums[0]) for label, nums in got.parts}


def test_an_outlets_search_puts_first_its_article_closest_to_what_the_question_says_of_it(tmp_path) -> None:
    # Metro Wire's stories that share most words with the whole question are about the fare cut; the question
    # says Metro Wire covered the terminals (in other words than the question's).
    arts = [(2, "Metro Wire", "Saltmere Shipping cut its island fares, the company reported on Monday. Island fares had risen twice last year."),
            (3, "Metro Wire", "Saltmere Shipping's island fares were cut again, passengers reported. The company said more cuts could follow."),
            (4, "Metro Wire", "Saltmere Shipping is constructing a pair of cargo terminals on the north quay. Cranes arrive in May."),
            (5, "Harbour Gazette", "Saltmere Shipping cut its island fares by a tenth on Monday. The company cited lower fuel costs.")]
    q = "Which company, covered by Metro Wire for building two new container terminals, also cut its island fares as reported by Harbour Gazette?"
    first = _first_of_each_outlet(tmp_path, arts, q)
    assert "cargo terminals" in first["Metro Wire"].text and "cut its island fares" in first["Harbour Gazette"].text


def test_an_outlets_search_puts_first_its_article_of_the_day_the_question_gives(tmp_path) -> None:
    # Metro Wire's articles of 2 and 3 March share the question's words; the question dates the one it means, 4 March.
    arts = [(2, "Metro Wire", "Saltmere Shipping cut its island fares, the company reported. Island fares had risen twice last year."),
            (3, "Metro Wire", "Saltmere Shipping's island fares were cut again, passengers reported. More fare cuts could follow."),
            (4, "Metro Wire", "Saltmere Shipping held its prices for passengers to the islands. The board met on Monday."),
            (5, "Harbour Gazette", "Saltmere Shipping cut its island fares by a tenth. The company cited lower fuel costs.")]
    q = ("Between the Metro Wire report on island fares published on March 4, 2024, and the Harbour Gazette report on "
         "island fares published on March 5, 2024, was there a change in the reporting on Saltmere Shipping's fares?")
    first = _first_of_each_outlet(tmp_path, arts, q)
    assert first["Metro Wire"].date == "2024-03-04" and first["Harbour Gazette"].date == "2024-03-05"
