"""Relative and explicit dates in questions."""

from __future__ import annotations

import datetime as dt

import pytest

from rag.dates import EARLIEST, LATEST, about_time, resolve, span_text

REF = dt.date(2024, 6, 19)  # a Wednesday


@pytest.mark.parametrize("q,lo,hi", [
    ("What happened yesterday?", "2024-06-18", "2024-06-18"),
    ("What happened last week?", "2024-06-10", "2024-06-16"),
    ("news this week", "2024-06-17", "2024-06-19"),
    ("What happened last month?", "2024-05-01", "2024-05-31"),
    ("anything in the past 3 days", "2024-06-16", "2024-06-19"),
    ("What was reported since March 2024?", "2024-03-01", None),
    ("What was reported after March 2024?", "2024-04-01", None),
    ("What happened before 2024?", None, "2023-12-31"),
    ("between January 2024 and March 2024", "2024-01-01", "2024-03-31"),
    ("last year", "2023-01-01", "2023-12-31"),
])
def test_strict_ranges(q: str, lo: str | None, hi: str | None) -> None:
    i = resolve(q, REF)
    assert (i.date_from.isoformat() if i.date_from else None, i.date_to.isoformat() if i.date_to else None) == (lo, hi)


def test_in_month_prefers_but_does_not_filter() -> None:
    i = resolve("What did Iraq sign in September?", REF)
    assert i.date_from is None and i.date_to is None
    assert i.boost == [(dt.date(2023, 9, 1), dt.date(2023, 9, 30))]  # the most recent September before the reference date


def test_bare_month_follows_the_archive() -> None:
    i = resolve("What happened in March?", dt.date(2026, 11, 25), archive_months={(2024, 3)})
    assert i.boost == [(dt.date(2024, 3, 1), dt.date(2024, 3, 31))]


def test_several_explicit_dates_all_count() -> None:
    i = resolve("Between the report from 'The Verge' on 2023-11-24 and the report from 'Wired' on 2023-11-25, ...", REF)
    assert (dt.date(2023, 11, 24), dt.date(2023, 11, 24)) in i.boost and (dt.date(2023, 11, 25), dt.date(2023, 11, 25)) in i.boost


def test_latest_means_recency_and_plain_questions_have_no_dates() -> None:
    assert resolve("What is the latest on the Port of Saltmere?", REF).recency
    assert not resolve("Who, according to TechCrunch, was recently removed from OpenAI's board?", REF).recency
    i = resolve("Who is Ali al-Daffayi?", REF)
    assert not (i.date_from or i.date_to or i.boost or i.recency)


def test_date_words_inside_names_are_not_dates() -> None:
    # Outlets such as "Business Today | Latest Stock Market News" and "USA Today" are names, not "today" or "latest".
    i = resolve("After the report by Business Today | Latest Stock Market News on October 7, 2023, did USA Today agree?", REF)
    assert not (i.date_from or i.date_to or i.recency)
    assert i.boost == [(dt.date(2023, 10, 7), dt.date(2023, 10, 7))]
    named = resolve("What did business today report last week?", REF, names=["Business Today"])
    assert named.phrases == ["last week"] and not named.recency
    assert resolve("What happened today?", REF).date_from == REF
    assert resolve("What did Today report today?", REF, names=["Today"]).date_from == REF  # an outlet "Today" keeps "today"


def test_a_possessive_date_describes_the_event() -> None:
    assert resolve("How did Jordan Love do in last week's game?", REF).descriptive
    assert not resolve("What happened last week?", REF).descriptive


@pytest.mark.parametrize("q,lo,hi", [
    ("What did Sporting News report after November 6, 2023?", "2023-11-06", None),  # the day named is included
    ("What was said before December 5, 2023?", None, "2023-12-05"),
    ("Has Sporting News, after October 4, 2023, and before November 1, 2023, changed its odds?", "2023-10-04", "2023-11-01"),
])
def test_a_day_named_as_a_bound_is_included(q: str, lo: str | None, hi: str | None) -> None:
    i = resolve(q, REF)
    assert (i.date_from.isoformat() if i.date_from else None, i.date_to.isoformat() if i.date_to else None) == (lo, hi)
    assert not i.boost


def test_several_dates_each_describe_a_report_and_filter_nothing() -> None:
    i = resolve("Did Sporting News change its explanation after November 6, 2023, as compared to its earlier report on "
                "November 1, 2023?", REF)
    assert i.date_from is None and i.date_to is None
    assert i.boost == [(dt.date(2023, 11, 6), LATEST), (dt.date(2023, 11, 1), dt.date(2023, 11, 1))]
    assert i.phrases == ["after november 6, 2023", "on november 1, 2023"]
    two = resolve("Did both the report from The Age after September 26, 2023, and the Yardbarker report after December 24, "
                  "2023, mention Kelce?", REF)
    assert two.date_from is None and two.boost == [(dt.date(2023, 9, 26), LATEST), (dt.date(2023, 12, 24), LATEST)]
    assert span_text(*two.boost[0]) == "2023-09-26.." and span_text(EARLIEST, dt.date(2023, 12, 5)) == "..2023-12-05"


@pytest.mark.parametrize("q,timely", [
    ("Did TechCrunch report on the layoffs before The Verge did?", True),
    ("Has The Age's portrayal of Google changed between its two reports?", True),
    ("What did Metro Wire say happened in March?", True),
    ("Which company was sued in 2023 by news publishers?", True),
    ("Which company, covered by TechCrunch and The Verge, faces antitrust claims?", False),
    ("Who may have ordered ships to anchor at the Port of Saltmere?", False),  # "may", the verb
    ("Does the Mayo Clinic lead, as Marcus Webb wrote in Harbour Gazette?", False),  # names, not months
    ("Do Metro Wire and Harbour Gazette agree on the toll?", False),
])
def test_a_question_is_about_time_when_it_names_a_date_an_order_or_a_change(q: str, timely: bool) -> None:
    assert about_time(q) is timely
