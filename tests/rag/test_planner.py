"""Reading a question: its kind, the outlets it names, its alternatives (hand-made questions, no model)."""

from __future__ import annotations

import pytest

from rag.planner import (
    dated_first,
    on_day,
    stated_days,
    affirmative,
    ARTICLES,
    CHOICE,
    ENTITY,
    FIRST,
    OPEN,
    OUTLET,
    PUBLISHED,
    YES_NO,
    first_wants_later,
    is_digest,
    match_outlets,
    outlet_clause,
    outlet_parts,
    outlet_mentions,
    plan_question,
    reports_named,
)

OUTLETS = ["The Verge", "TechCrunch", "The Age", "The Roar | Sports Writers Blog", "Cnbc | World Business News Leader",
           "The Independent - Sports", "The Independent - Life and Style", "Metro Wire", "Harbour Gazette"]


@pytest.mark.parametrize("question,kind", [
    ("Does The Verge say that the deal was unnecessary, while TechCrunch calls it anticompetitive?", YES_NO),
    ("After The Age reported the vote on 22 October, did Metro Wire report a recount?", YES_NO),
    ("Was the storm reported by Metro Wire before or after Harbour Gazette reported the closure?", CHOICE),
    ("Between the two reports, is the portrayal of the council consistent or inconsistent?", CHOICE),
    ("Which company is accused of anticompetitive practices by TechCrunch and The Verge?", ENTITY),
    ("Considering the articles by Metro Wire and Harbour Gazette, which person ordered the ships to anchor?", ENTITY),
    ("Who is the harbour master who ordered ships to anchor?", ENTITY),
    ("What type of establishments offer welcome bonuses?", ENTITY),
    ("Which outlet reported that the Port of Saltmere closed?", OUTLET),
    ("Who reported that Storm Ingrid closed the port?", OUTLET),
    ("Which outlets covered the storm?", OUTLET),
    ("What newspapers reported that the port reopened?", OUTLET),
    ("Between the two articles, which news source reported on the storm?", OUTLET),
    ("When was the closure of the Port of Saltmere reported?", PUBLISHED),
    ("Which came first: the budget vote or the port closure?", FIRST),
    ("Which happened later, the rate decision or the storm?", FIRST),
    ("Who is Ali al-Daffayi?", OPEN),
    ("What did the mayor say about the budget?", OPEN),
    ("Summarise the storm coverage.", OPEN),
])
def test_kind(question: str, kind: str) -> None:
    assert plan_question(question, OUTLETS).kind == kind


def test_outlets_are_matched_by_their_short_names_and_in_order() -> None:
    q = "Does The Roar suggest X, while 'TechCrunch' and a CNBC article imply Y, and The Independent disagrees?"
    assert match_outlets(q, OUTLETS) == ("The Roar | Sports Writers Blog", "TechCrunch", "Cnbc | World Business News Leader",
                                         "The Independent - Life and Style", "The Independent - Sports")
    # The longest name wins where names overlap; "the age of" is not the outlet The Age.
    assert match_outlets("Did The Independent - Sports report it?", OUTLETS) == ("The Independent - Sports",)
    assert match_outlets("In the age of AI, did Metro Wire report it?", OUTLETS) == ("Metro Wire",)
    assert match_outlets("Did Wired report it?", OUTLETS) == ()


def test_options_of_first_and_choice_questions() -> None:
    p = plan_question("Which came first: the budget vote or the port closure?", OUTLETS)
    assert p.options == ("the budget vote", "the port closure") and not first_wants_later(p.options[0])
    assert first_wants_later("Which happened later, the rate decision or the storm?")
    p = plan_question("Was the storm reported by Metro Wire before or after Harbour Gazette reported the closure?", OUTLETS)
    assert p.options == ("before", "after") and p.outlets == ("Metro Wire", "Harbour Gazette")
    assert plan_question("Which outlet covered the storm first, Metro Wire or Harbour Gazette?", OUTLETS).options == ("Metro Wire", "Harbour Gazette")
    # Plain words joined by "or" at the end of a yes/no question are part of its claim, not alternatives.
    assert plan_question("Did Metro Wire report delays from the storm or the strike?", OUTLETS).kind == YES_NO


def test_outlet_question_topic_is_what_was_reported() -> None:
    assert plan_question("Which outlet reported that the Port of Saltmere closed?", OUTLETS).topic == "the Port of Saltmere closed"
    assert plan_question("When was the closure of the Port of Saltmere first reported?", OUTLETS).topic == "the closure of the Port of Saltmere"


def test_outlet_clause_is_the_part_of_the_question_about_that_outlet() -> None:
    q = "Does 'The Verge' say that the deal was unnecessary, while 'TechCrunch' calls it anticompetitive?"
    assert outlet_clause(q, "The Verge") == "The Verge' say that the deal was unnecessary"
    assert outlet_clause(q, "TechCrunch") == "TechCrunch' calls it anticompetitive?"
    assert outlet_clause(q, "Metro Wire") == ""


def test_outlet_parts_are_the_pieces_of_the_question_about_each_outlet() -> None:
    outlets = ["Metro Wire", "Harbour Gazette", "Riverton Post"]
    q = ("Which company, covered by Metro Wire for building two cargo terminals, also cut its island fares as reported by "
         "Harbour Gazette, and is the one whose trial was delayed, as Riverton Post reported, and another Riverton Post article says so?")
    assert outlet_parts(q, "Metro Wire", outlets) == ["covered by for building two cargo terminals"]
    assert outlet_parts(q, "Harbour Gazette", outlets) == ["also cut its island fares as reported by"]
    # Named where the piece says nothing else: the piece before it; a piece with nothing of its own: ''.
    assert outlet_parts(q, "Riverton Post", outlets) == ["and is the one whose trial was delayed", ""]
    # A piece that names two outlets is neither's; an outlet not named has none.
    assert outlet_parts("Did Metro Wire and Harbour Gazette both report the port closure?", "Metro Wire", outlets) == [""]
    assert outlet_parts(q, "Valley Courier", outlets) == []


def test_reports_named_counts_each_naming_and_two_reports_of_one_outlet() -> None:
    q = "Did the Metro Wire article on the storm and the later Metro Wire report on repairs agree, unlike Riverton Post?"
    assert outlet_mentions(q, "Metro Wire") == 2 and outlet_mentions(q, "Harbour Gazette") == 0
    assert outlet_mentions("Did The Independent - Sports report the score?", "The Independent - Sports") == 1
    assert reports_named(q, ["Metro Wire", "Riverton Post"]) == {"Metro Wire": 2, "Riverton Post": 1}
    changed = "Has Metro Wire's view of the port changed between the article of 12 March and the subsequent one?"
    assert reports_named(changed, ["Metro Wire"]) == {"Metro Wire": 2}
    same = "Does Metro Wire say the port closed, while the same source indicates that the ferries kept running?"
    assert reports_named(same, ["Metro Wire"]) == {"Metro Wire": 2}
    # Two things named ("between Saltmere and Riverton") are not two reports.
    assert reports_named("Did Metro Wire report a ferry between Saltmere and Riverton?", ["Metro Wire"]) == {"Metro Wire": 1}


@pytest.mark.parametrize(("question", "dates", "outlets", "scoped", "digest"), [
    ("What happened in February 2024?", ["in february 2024"], [], False, True),
    ("What did The Verge report?", [], ["The Verge"], False, True),
    ("Any news from TechCrunch last week?", ["last week"], ["TechCrunch"], False, True),
    ("What's the latest news?", ["latest"], [], True, True),
    ("What did The Verge report about Apple's new chip?", [], ["The Verge"], False, False),  # a topic
    ("What happened to the Port of Saltmere in February 2024?", ["in february 2024"], [], False, False),
    ("What happened?", [], [], False, False),  # nothing to list by: no outlet, no time
    ("What's new?", [], [], True, True),  # ... unless the user chose outlets or dates
])
def test_a_digest_question_names_only_a_time_an_outlet_or_recency(question, dates, outlets, scoped, digest) -> None:
    assert is_digest(question, dates, outlets, scoped) is digest


@pytest.mark.parametrize(("question", "topic"), [
    ("List the articles about Iraq", "Iraq"),
    ("Show me stories on the Pinecrest fire", "the Pinecrest fire"),
    ("Which articles mention Saltmere?", "Saltmere"),
    ("Are there any articles about the budget?", "the budget"),
    ("Which stories covered the storm?", "the storm"),
])
def test_a_request_for_the_articles_on_a_topic_is_a_list(question: str, topic: str) -> None:
    plan = plan_question(question, OUTLETS)
    assert plan.kind == ARTICLES and plan.topic == topic


def test_a_question_about_what_an_article_says_is_not_a_list() -> None:
    assert plan_question("Which article says the port reopened?", OUTLETS).kind != ARTICLES


@pytest.mark.parametrize("question, asked", [
    ("Was there inconsistency in the portrayal of the port between the two reports?",
     "Was there consistency in the portrayal of the port between the two reports?"),
    ("Is the Harbor Ledger's account inconsistent with the Valley Courier's?", "Is the Harbor Ledger's account consistent with the Valley Courier's?"),
    ("Did the Harbor Ledger and Valley Courier reports portray the closure inconsistently?",
     "Did the Harbor Ledger and Valley Courier reports portray the closure consistently?"),
    ("Did the Harbor Ledger report the closure and then portray it inconsistently?", "Did the Harbor Ledger report the closure and then portray it consistently?"),
    ("Inconsistencies between the reports?", "Consistencies between the reports?"),
    ("Was the portrayal consistent?", None),  # already affirmative
    ("Was A inconsistent with B, or inconsistent with C?", None),  # two negatives: left as asked
    ("Did the Harbor Ledger report that the port's schedules were inconsistent, while Metro Wire said they were not?", None),  # what a report says
    ("Did the Harbor Ledger describe the port's inconsistent opening hours?", None),  # one report: the word describes, relates nothing
])
def test_a_question_about_a_negative_is_asked_in_the_affirmative(question: str, asked: str | None) -> None:
    assert affirmative(question, match_outlets(question, [*OUTLETS, "Harbor Ledger", "Valley Courier"])) == asked


def test_the_days_a_question_gives_each_outlets_reports() -> None:
    q = ("Between the TechCrunch report on the trial published on October 7, 2023, and The Verge report published on "
         "28th October 2023, was there a change?")
    assert stated_days(q, "TechCrunch", ["TechCrunch", "The Verge"]) == [(2023, 10, 7)]
    assert stated_days(q, "The Verge", ["TechCrunch", "The Verge"]) == [(2023, 10, 28)]
    # A day belongs to the naming before it, not to the next outlet's; a report without one gets none.
    q = "After The Age reported on September 26, 2023, did The Independent keep to its account later that day?"
    assert stated_days(q, "The Independent", ["The Age", "The Independent"]) == []
    # One outlet named twice, a day each (one without its year, one in ISO form).
    q = "Did the TechCrunch article of October 2 say X, while TechCrunch on 2023-10-07 said Y?"
    assert stated_days(q, "TechCrunch", ["TechCrunch"]) == [(None, 10, 2), (2023, 10, 7)]
    assert on_day("2023-10-02", [(None, 10, 2)]) and not on_day("2023-10-03", [(2023, 10, 2)]) and not on_day("", [(None, 10, 2)])


def test_dated_first_puts_one_article_of_each_stated_day_in_front() -> None:
    dates = {"a": "2023-12-06", "b": "2023-12-06", "c": "2023-09-26", "d": "2023-10-01"}
    assert dated_first(list("abcd"), dates.get, [(2023, 9, 26), (2023, 12, 6)]) == list("cabd")
    assert dated_first(list("abcd"), dates.get, [(2023, 12, 6), (2023, 9, 26)]) == list("acbd")
    assert dated_first(list("abcd"), dates.get, []) == list("abcd")
    assert dated_first(list("abcd"), dates.get, [(2023, 1, 1)]) == list("abcd")
