"""Answers written in code: verdicts with quotes, names kept only when the passages hold them, outlets and
dates read from metadata, the order of two reports (hand-made passages, the real embedder, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.citations import build_index
from rag.config import Settings
from rag.compose import (
    compose_entity,
    compose_first,
    compose_order,
    compose_reported,
    compose_verdict,
    mentions,
    order_question,
    parse_short,
    short_prompt,
    short_reply,
)
from rag.generators.base import GenerationInput
from rag.pipeline import Context
from rag.planner import CHOICE, ENTITY, YES_NO, QuestionPlan, plan_question
from rag.types import Passage


def _p(n: int, source: str, date: str, text: str) -> Passage:
    return Passage(number=n, chunk_id=f"c{n}", article_id=f"a{n}", title=f"Story {n}", source=source, date=date,
                   url=f"https://x.example/{n}", text=text, full_text=text, start=0, end=len(text), score=1.0)


PASSAGES = [
    _p(1, "Metro Wire", "2024-03-12", "Storm Ingrid closed the Port of Saltmere on Sunday. Harbour master Yvonne Castellane ordered ships to anchor."),
    _p(2, "Harbour Gazette", "2024-03-15", "The Port of Saltmere reopened on Wednesday after repairs. Dockworkers cleared debris from the quay."),
    _p(3, "Riverton Post", "2024-02-20", "Riverton City Council approved a $412.6 million budget on Tuesday. Mayor Elena Marquez praised the vote."),
]
OUTLETS = ["Metro Wire", "Harbour Gazette", "Riverton Post"]


def _inp(embedder, question: str, passages=PASSAGES) -> GenerationInput:
    index = build_index(passages, embedder.embed)
    return GenerationInput(question=question, user_question=question, date_phrases=(), passages=tuple(passages), index=index,
                           query_vector=np.asarray(embedder.get_query_embedding(question), dtype=np.float32))


def test_short_replies_are_parsed_strictly() -> None:
    yn, choice, ent = QuestionPlan(YES_NO), QuestionPlan(CHOICE, options=("consistent", "inconsistent")), QuestionPlan(ENTITY)
    assert parse_short(yn, "Yes.") == "yes" and parse_short(yn, "no, it does not [1]") == "no" and parse_short(yn, "Maybe") is None
    assert parse_short(choice, "Inconsistent.") == "inconsistent" and parse_short(choice, "consistent") == "consistent"
    assert parse_short(ent, "The answer is: Yvonne Castellane.") == "Yvonne Castellane"
    assert parse_short(ent, "unknown") is None and parse_short(ent, "The archive does not say.") is None
    assert parse_short(ent, "The harbour master of the port who ordered all the ships to anchor on Sunday") is None
    # Seen from the model: "A.a". A reply with no word of a name is no name (a single letter is found in any passage).
    assert parse_short(ent, "A.a") is None and parse_short(ent, "He") is None and parse_short(ent, "A") is None
    assert parse_short(ent, "BP") == "BP"
    system, user, n = short_prompt(choice, PASSAGES[:1], "Consistent or inconsistent?")
    assert "consistent or inconsistent" in user and n <= 8 and "short answer" in system


def test_the_short_prompt_gives_dates_only_to_a_question_about_time() -> None:
    """Every prompt token delays the answer; a question that is not about time gets the passages without dates."""
    ent = QuestionPlan(ENTITY)
    _, undated, _ = short_prompt(ent, PASSAGES[:2], "Who ordered ships to anchor at the Port of Saltmere?")
    _, dated, _ = short_prompt(ent, PASSAGES[:2], "Who ordered ships to anchor before the port reopened?")
    assert "[1] (Story 1 — Metro Wire)\nStorm Ingrid" in undated and "2024" not in undated.split("Question:")[0]
    assert "[1] (Story 1 — Metro Wire — 2024-03-12)\n" in dated and "[2] (Story 2 — Harbour Gazette — 2024-03-15)\n" in dated


def test_the_written_answers_prompt_gives_dates_only_to_a_question_about_time(embedder, tmp_path) -> None:
    from rag.config import Settings
    from rag.generators.local import LocalGenerator

    gen = LocalGenerator(Settings(data_dir=tmp_path))
    undated = gen.messages(_inp(embedder, "Who ordered ships to anchor at the Port of Saltmere?"))[1].content
    dated = gen.messages(_inp(embedder, "What did the harbour master order before the port reopened?"))[1].content
    assert "[1] (Story 1 — Metro Wire)\nStorm Ingrid" in undated and "2024" not in undated.split("Question:")[0]
    assert "[1] (Story 1 — Metro Wire — 2024-03-12)\n" in dated and "[3] (Story 3 — Riverton Post — 2024-02-20)\n" in dated


def test_two_outlet_verdict_quotes_each_outlet_and_cites_it(embedder) -> None:
    q = "Did Metro Wire report that the port closed, while Harbour Gazette reported that it reopened?"
    plan = plan_question(q, OUTLETS)
    assert plan.kind == YES_NO and plan.outlets == ("Metro Wire", "Harbour Gazette")
    inp = _inp(embedder, q)
    text, citations, notes = compose_verdict(plan, "yes", inp, [("Metro Wire", (1,)), ("Harbour Gazette", (2,))], embedder.embed)
    assert text.startswith("Yes. Metro Wire (12 March 2024): “Storm Ingrid closed the Port of Saltmere on Sunday.” [1]")
    assert "Harbour Gazette (15 March 2024): “The Port of Saltmere reopened on Wednesday after repairs.” [2]" in text
    assert [c.source for c in citations] == ["Metro Wire", "Harbour Gazette"] and "judgement" in notes[0]


def test_a_verdict_on_two_reports_of_one_outlet_quotes_both(embedder) -> None:
    later = _p(4, "Metro Wire", "2024-03-16", "Metro Wire learned that the Port of Saltmere reopened with new storm barriers.")
    passages = [*PASSAGES, later]
    q = "Did Metro Wire's account of the Port of Saltmere change between its report on the storm and the subsequent one?"
    plan = plan_question(q, OUTLETS)
    assert plan.outlets == ("Metro Wire",)
    text, citations, _ = compose_verdict(plan, "yes", _inp(embedder, q, passages), [("Metro Wire", (1,))], embedder.embed)
    # Both Metro Wire articles are quoted, the one its own search found first; no other outlet's.
    assert [c.article_id for c in citations] == ["a1", "a4"] and "Riverton" not in text and "Harbour" not in text
    # Named once and about one report: one quote.
    q = "Did Metro Wire report that the Port of Saltmere closed?"
    _, citations, _ = compose_verdict(plan_question(q, OUTLETS), "yes", _inp(embedder, q, passages), [("Metro Wire", (1,))], embedder.embed)
    assert [c.article_id for c in citations] == ["a1"]


def test_a_verdict_quotes_the_outlets_article_closest_to_what_the_question_says_of_it(embedder) -> None:
    # Metro Wire's own search found its fare story first; the question is about its storm story.
    fares = _p(5, "Metro Wire", "2024-03-20", "Metro Wire readers will pay more for bus tickets from April. The transit board raised fares.")
    passages = [fares, *PASSAGES]
    q = "Did Metro Wire report that the storm closed the port, while Harbour Gazette reported that it reopened?"
    parts = [("Metro Wire", (5, 1)), ("Harbour Gazette", (2,))]
    _, citations, _ = compose_verdict(plan_question(q, OUTLETS), "yes", _inp(embedder, q, passages), parts, embedder.embed)
    assert [c.article_id for c in citations] == ["a1", "a2"]


def test_a_verdict_quotes_the_outlets_article_of_the_day_the_question_gives(embedder) -> None:
    # Metro Wire's storm story of 12 March fits the question's words best; the question dates the report it means.
    later = _p(4, "Metro Wire", "2024-03-16", "Dockworkers returned to the quay on Saturday as cranes resumed loading grain.")
    passages = [*PASSAGES, later]
    q = ("Between the Metro Wire report on the storm at the port published on March 16, 2024, and the Harbour Gazette "
         "report published on March 15, 2024, was there a change in how the port was portrayed?")
    parts = [("Metro Wire", (1, 4)), ("Harbour Gazette", (2,))]
    _, citations, _ = compose_verdict(plan_question(q, OUTLETS), "yes", _inp(embedder, q, passages), parts, embedder.embed)
    assert [c.article_id for c in citations] == ["a4", "a2"]
    undated = q.replace(" published on March 16, 2024,", "")
    _, citations, _ = compose_verdict(plan_question(undated, OUTLETS), "yes", _inp(embedder, undated, passages), parts, embedder.embed)
    assert [c.article_id for c in citations] == ["a1", "a2"]


def test_a_name_is_kept_only_when_the_passages_hold_it(embedder) -> None:
    q = "Who ordered ships to anchor when the port closed?"
    inp = _inp(embedder, q)
    text, citations, _ = compose_entity("Yvonne Castellane", inp, [], embedder.embed, Settings())
    assert text == "Yvonne Castellane. Metro Wire (12 March 2024): “Harbour master Yvonne Castellane ordered ships to anchor.” [1]"
    assert citations[0].quote == "Harbour master Yvonne Castellane ordered ships to anchor."
    assert compose_entity("Ines Halvorsen", inp, [], embedder.embed, Settings()) is None  # invented: no passage names her
    assert mentions("Harbour master Yvonne Castellane", "castellane, yvonne") and not mentions("Yvonne", "Yvonne Castellane")


def test_which_outlet_is_read_from_the_supporting_passage(embedder) -> None:
    q = "Which outlet reported that the Port of Saltmere reopened after repairs?"
    plan = plan_question(q, OUTLETS)
    text, citations, _ = compose_reported(plan.topic, _inp(embedder, q), embedder.embed, 0.5, published=False)
    assert text.startswith("Harbour Gazette reported it (15 March 2024): “The Port of Saltmere reopened") and citations[0].number == 1
    assert compose_reported("the council voted to build a stadium in Veloria", _inp(embedder, q), embedder.embed, 0.5, published=False) is None


def test_when_it_was_reported_is_the_supporting_article_date(embedder) -> None:
    q = "When was the closure of the Port of Saltmere by Storm Ingrid reported?"
    plan = plan_question(q, OUTLETS)
    text, _, _ = compose_reported(plan.topic, _inp(embedder, q), embedder.embed, 0.5, published=True)
    assert text.startswith("It was reported on 12 March 2024 by Metro Wire")


def test_an_undated_article_is_said_to_be_undated_not_given_a_date(embedder) -> None:
    import dataclasses

    undated = [dataclasses.replace(PASSAGES[0], date="")]
    q = "When was the closure of the Port of Saltmere by Storm Ingrid reported?"
    text, citations, _ = compose_reported(plan_question(q, OUTLETS).topic, _inp(embedder, q, undated), embedder.embed, 0.5, published=True)
    assert text.startswith("Metro Wire reported it, but the archive holds no publication date for that article: “Storm Ingrid closed")
    assert citations[0].date == ""
    text, _, _ = compose_reported("Storm Ingrid closed the port", _inp(embedder, q, undated), embedder.embed, 0.5, published=False)
    assert text.startswith("Metro Wire reported it (undated):")


def test_which_came_first_compares_the_two_articles_dates(embedder) -> None:
    q = "Which came first: the port reopening after repairs or the council budget vote?"
    plan = plan_question(q, OUTLETS)
    parts = [(plan.options[0], (2, 1)), (plan.options[1], (3,))]
    text, citations, notes = compose_first(plan, _inp(embedder, q), parts, embedder.embed, 0.5)
    assert text.startswith("“the council budget vote” came first, 24 days before “the port reopening after repairs”")
    assert [c.source for c in citations] == ["Riverton Post", "Harbour Gazette"] and "publication dates" in notes[0]
    later = "Which came later: the port reopening after repairs or the council budget vote?"
    text, _, _ = compose_first(plan_question(later, OUTLETS), _inp(embedder, later), parts, embedder.embed, 0.5)
    assert text.startswith("“the port reopening after repairs” came later, 24 days after “the council budget vote”")
    # A report the archive does not hold: no order is claimed.
    parts = [("the stadium opening in Veloria", (3,)), (plan.options[0], (2,))]
    assert compose_first(plan, _inp(embedder, q), parts, embedder.embed, 0.5) is None


@pytest.mark.parametrize("value", ["consistent", "inconsistent"])
def test_choice_verdict_names_the_option(embedder, value: str) -> None:
    q = "Is the coverage of the port by Metro Wire and Harbour Gazette consistent or inconsistent?"
    plan = plan_question(q, OUTLETS)
    assert plan.kind == CHOICE
    text, _, _ = compose_verdict(plan, value, _inp(embedder, q), [("Metro Wire", (1,)), ("Harbour Gazette", (2,))], embedder.embed)
    assert text.startswith(value.capitalize() + ". Metro Wire")


def test_did_a_report_before_b_is_answered_from_the_two_dates(embedder) -> None:
    parts = [("Metro Wire", (1,)), ("Harbour Gazette", (2,))]
    q = "Did Metro Wire report the port closure before Harbour Gazette reported the reopening?"
    assert order_question(q, parts) == ("Metro Wire", "before", "Harbour Gazette")
    text, citations, notes = compose_order(plan_question(q, OUTLETS), _inp(embedder, q), parts, embedder.embed)
    assert text.startswith("Yes: Metro Wire published it on 12 March 2024, 3 days before Harbour Gazette (15 March 2024). [1][2]")
    assert "publication dates" in notes[0] and [c.source for c in citations] == ["Metro Wire", "Harbour Gazette"]
    q = "Did Metro Wire cover the storm after Harbour Gazette?"
    text, _, _ = compose_order(plan_question(q, OUTLETS), _inp(embedder, q), parts, embedder.embed)
    assert text.startswith("No: Metro Wire published it on 12 March 2024, 3 days before Harbour Gazette")
    # Not an order question: a claim about each outlet, or a lead-in date.
    assert order_question("Did Metro Wire say the port closed, while Harbour Gazette said it reopened?", parts) is None
    assert order_question("After Metro Wire reported the closure, did Harbour Gazette report the reopening?", parts) is None


def test_extractive_quotes_each_outlet_the_question_names(embedder) -> None:
    import dataclasses

    from rag.generators.extractive import ExtractiveGenerator

    q = "Does Harbour Gazette say the port reopened, while Riverton Post reports a budget vote?"
    inp = dataclasses.replace(_inp(embedder, q), parts=(("Harbour Gazette", (2,)), ("Riverton Post", (3,))))
    out = ExtractiveGenerator(Settings()).answer(inp)
    # One sentence from each named outlet's passage, and none from the outlet the question did not name.
    assert "reopened on Wednesday" in out and "[2]" in out and "[3]" in out and "[1]" not in out


class _Judge:
    """A model stand-in for the verdict step: a fixed probability of "Yes" (or none), and a reply to read."""

    def __init__(self, p_yes: float | None, reply: str = "Yes") -> None:
        self.p_yes, self.reply, self.prompts = p_yes, reply, []

    def yes_probability(self, system: str, user: str) -> float | None:
        self.prompts.append(user)
        return self.p_yes

    def complete(self, system: str, user: str, max_tokens: int) -> str:
        self.prompts.append(user)
        return self.reply


def test_a_verdict_is_yes_only_when_the_models_probability_reaches_the_threshold(embedder) -> None:
    q = "Did the Port of Saltmere reopen after Storm Ingrid closed it?"
    inp = _inp(embedder, q, PASSAGES[:2])
    ctx = Context(inp.passages, inp.index, 0.5, 0.5)
    plan = QuestionPlan(YES_NO)
    assert short_reply(plan, q, ctx, (), _Judge(0.6), 0.5)[0] == "yes"
    assert short_reply(plan, q, ctx, (), _Judge(0.6), 0.7)[0] == "no"  # a 1.5B model's lean to "Yes" corrected
    assert short_reply(plan, q, ctx, (), _Judge(None, "No."), 0.7)[0] == "no"  # no probabilities: the reply is read
    assert short_reply(plan, q, ctx, (), _Judge(None, "Perhaps"), 0.7)[0] is None


def test_a_question_about_inconsistency_is_judged_as_one_about_consistency(embedder) -> None:
    """Asked in either form, the verdicts agree: the model only ever judges the affirmative."""
    q = "Was there inconsistency between the Metro Wire and Harbour Gazette reports on the port's closure?"
    inp = _inp(embedder, q, PASSAGES[:2])
    ctx = Context(inp.passages, inp.index, 0.5, 0.5)
    plan = QuestionPlan(YES_NO)
    two = [("Metro Wire", (1,)), ("Harbour Gazette", (2,))]
    judge = _Judge(0.9)  # the model holds the two reports consistent
    assert short_reply(plan, q, ctx, two, judge, 0.7)[0] == "no"
    assert "Was there consistency between" in judge.prompts[0] and "inconsisten" not in judge.prompts[0]
    assert short_reply(plan, q.replace("inconsistency", "consistency"), ctx, two, _Judge(0.9), 0.7)[0] == "yes"
    assert short_reply(plan, q, ctx, two, _Judge(0.2), 0.7)[0] == "yes"
    assert short_reply(plan, q, ctx, two, _Judge(None, "Perhaps"), 0.7)[0] is None  # no verdict stays none
    # About one report, the word describes what it says: asked as put.
    one = "Did Metro Wire describe the port's inconsistent opening hours?"
    judge = _Judge(0.9)
    assert short_reply(plan, one, ctx, [("Metro Wire", (1,))], judge, 0.7)[0] == "yes" and "inconsistent" in judge.prompts[0]


def test_each_claim_must_reach_the_threshold(embedder) -> None:
    q = "Did Metro Wire report that the storm closed the port on Sunday, while Harbour Gazette reported that dockworkers cleared the quay?"
    inp = _inp(embedder, q, PASSAGES[:2])
    ctx = Context(inp.passages, inp.index, 0.5, 0.5)
    plan = plan_question(q, OUTLETS)
    parts = [("Metro Wire", (1,)), ("Harbour Gazette", (2,))]
    judge = _Judge(0.8)
    value, tokens = short_reply(plan, q, ctx, parts, judge, 0.7)
    assert value == "yes" and len(judge.prompts) == 2 and tokens > 0
    assert "Storm Ingrid closed" in judge.prompts[0] and "Dockworkers cleared" in judge.prompts[1]
    assert short_reply(plan, q, ctx, parts, _Judge(0.65), 0.7)[0] == "no"
