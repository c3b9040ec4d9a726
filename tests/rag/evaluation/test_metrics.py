"""Metric functions of rag.evaluation.metrics on hand-checked cases (no model, no store)."""

from __future__ import annotations

import pytest

from rag.evaluation.datasets import EvalQuestion
from rag.evaluation.metrics import (
    aggregate,
    aggregate_by_type,
    answer_correct,
    answer_correct_lenient,
    article_recall,
    compare_metrics,
    fact_hit_flags,
    first_hit_rank,
    hits_at,
    map_at,
    mrr_at,
    percentile,
    score_question,
    yes_no_label,
)
from rag.evaluation.normalize import normalize_answer

# --- retrieval --------------------------------------------------------------------------------------


def test_known_hit_and_miss_article_level():
    gold = {"A", "B"}
    hit = [a in gold for a in ["X", "B", "Y", "A"]]  # first hit at rank 2
    assert first_hit_rank(hit) == 2
    assert hits_at(hit, 1) == 0.0
    assert hits_at(hit, 4) == 1.0
    assert mrr_at(hit, 10) == pytest.approx(0.5)
    miss = [a in gold for a in ["X", "Y", "Z"]]
    assert hits_at(miss, 10) == 0.0
    assert mrr_at(miss, 10) == 0.0


def test_mrr_values_and_cutoff():
    assert mrr_at([True], 10) == 1.0
    assert mrr_at([False, False, True], 10) == pytest.approx(1 / 3)
    flags = [False] * 10 + [True]  # rank 11 is outside @10
    assert mrr_at(flags, 10) == 0.0
    assert hits_at(flags, 10) == 0.0
    assert mrr_at([], 10) == 0.0


def test_fact_level_hits_ignore_whitespace():
    facts = ["the deal was  signed\nin Paris.", "Revenue rose 5%."]  # case-sensitive, as the authors
    chunks = ["Unrelated text about football.", "Officials said the deal was signed in Paris. More text.", "Revenue rose 5 %."]
    flags = fact_hit_flags(chunks, facts)
    # whitespace is removed on BOTH sides (the authors' rule), so '5 %' matches '5%'
    assert flags == [False, True, True]
    # but a paraphrase is a miss
    assert fact_hit_flags(["Revenue increased 5%."], ["Revenue rose 5%."]) == [False]


def test_map_at_follows_authors_definition():
    facts = ["alpha fact", "beta fact"]
    chunks = ["alpha fact here", "nothing", "beta fact here"]
    # rank 1 finds 1 fact (1/1), rank 3 finds 1 more (1/3); divided by min(2, 10)
    assert map_at(chunks, facts, 10) == pytest.approx((1 + 1 / 3) / 2)
    assert map_at(["nothing"], facts, 10) == 0.0


def test_article_recall():
    assert article_recall(["A", "X", "A"], {"A", "B"}) == pytest.approx(0.5)
    assert article_recall(["A", "B"], {"A", "B"}) == 1.0
    assert article_recall(["A"], set()) is None


# --- answers ----------------------------------------------------------------------------------------


def test_normalisation_yes_variants():
    assert normalize_answer("Yes.") == "yes"
    assert answer_correct("yes", "Yes.")
    assert answer_correct("Yes", "yes, both articles report it [1][2].")
    assert not answer_correct("Yes", "No, they disagree.")
    assert answer_correct("no", "No.")
    assert yes_no_label("The articles agree: yes.") == "yes"
    assert yes_no_label("Both reports describe the deal.") is None
    # a few gold answers say True/False for yes/no
    assert answer_correct("True", "Yes. [1][2]") and not answer_correct("True", "No.")
    assert answer_correct("False", "No, they differ [1].") and not answer_correct("False", "Yes.")


def test_names_and_dates_contains_match():
    assert answer_correct("Sam Bankman-Fried", "The person is Sam Bankman-Fried [1].")
    assert answer_correct("Google", "Google's search deals [2].")
    assert not answer_correct("Google", "Googleplex")  # whole words only
    assert answer_correct("September 26, 2023", "It happened on september 26 2023.")
    assert not answer_correct("Sam Altman", "Sam Bankman-Fried")


def test_refusal_counts_as_insufficient_information():
    gold = "Insufficient information."
    assert answer_correct(gold, "", refused=True)
    assert answer_correct(gold, "There is insufficient information in the archive to answer.")
    assert not answer_correct(gold, "Yes.")
    # a refusal on an answerable question is wrong
    assert not answer_correct("Yes", "I could not find this in the archive.", refused=True)
    assert answer_correct_lenient(gold, "", refused=True)


# --- aggregation ------------------------------------------------------------------------------------


def _q(qid, qtype, gold="Yes", facts=()):
    return EvalQuestion(qid, "question?", gold, qtype, evidence_article_ids=[] if qtype == "null_query" else ["A", "B"], facts=list(facts))


def test_aggregate_end_to_end_small():
    r1 = score_question(_q("1", "comparison_query", facts=["fact a"]), {"A", "B"}, [],
                        [("A", "has fact a"), ("X", "x")], answer_text="Yes [1].", passage_article_ids=["A", "B"],
                        citations=[("A", 0.9), ("X", 0.2)], timings={"retrieve": 0.1, "total": 1.0}, prompt_tokens=300)
    r2 = score_question(_q("2", "comparison_query"), {"A", "B"}, [], [("X", "x"), ("Y", "y"), ("B", "b")],
                        answer_text="No.", passage_article_ids=["X"], citations=[], timings={"retrieve": 0.3, "total": 3.0})
    r3 = score_question(_q("3", "null_query", gold="Insufficient information."), set(), [], [("X", "x")],
                        answer_text="", refused=True, timings={"retrieve": 0.2, "total": 2.0})
    r4 = score_question(_q("4", "null_query", gold="Insufficient information."), set(), [], [("X", "x")],
                        answer_text="Yes.", refused=False)
    m = aggregate([r1, r2, r3, r4])
    assert m["retrieval_questions"] == 2  # null queries excluded
    assert m["hits@1"] == pytest.approx(0.5)
    assert m["hits@4"] == pytest.approx(1.0)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["fact_questions"] == 1 and m["fact_hits@1"] == 1.0
    assert m["art_recall@k"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["accuracy"] == pytest.approx(2 / 4)  # r1 right, r2 wrong (said no), r3 right (refused), r4 wrong
    assert m["refusal_precision"] == 1.0 and m["refusal_recall"] == pytest.approx(0.5)
    assert m["citation_precision"] == pytest.approx(0.5)  # 1 of 2 citations points at evidence
    assert m["citation_support_rate"] == pytest.approx(0.5)
    assert m["citation_recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["total_p50_s"] == pytest.approx(2.0)
    by = aggregate_by_type([r1, r2, r3, r4])
    assert set(by) == {"overall", "comparison_query", "null_query"}
    assert by["null_query"]["hits@1"] is None


def test_over_refusal_is_counted_by_the_step_that_refused():
    def refused(i: str, timings: dict, notes: list[str]):
        return score_question(_q(i, "comparison_query"), {"A"}, [], [("A", "a")], answer_text="The archive does not say.",
                              refused=True, timings=timings, notes=notes)

    gate = refused("1", {"retrieve": 0.1, "total": 0.1}, [])  # refused before any generation
    model = refused("2", {"retrieve": 0.1, "first_token": 5.0, "total": 6.0}, [])
    withheld = refused("3", {"retrieve": 0.1, "first_token": 5.0, "total": 6.0},
                       ["the generated answer was withheld: no sentence of it is supported by the passages"])
    answered = score_question(_q("4", "comparison_query"), {"A"}, [], [("A", "a")], answer_text="Yes [1].",
                              timings={"first_token": 5.0}, notes=["a note"])
    null = score_question(_q("5", "null_query", gold="Insufficient information."), set(), [], [("X", "x")],
                          answer_text="The archive does not say.", refused=True, timings={"total": 0.1})
    assert [r.refusal_cause for r in (gate, model, withheld, answered, null)] == ["retrieval", "model", "verification", "", "retrieval"]
    assert answered.notes == ["a note"]
    m = aggregate([gate, model, withheld, answered, null])
    assert m["answerable_refused"] == pytest.approx(3 / 4)  # the null query's refusal is right, not over-refusal
    assert (m["answerable_refused_retrieval"], m["answerable_refused_model"], m["answerable_refused_verification"]) == (1, 1, 1)
    # fewer refusals of answerable questions is better
    st = compare_metrics({"answerable_refused": 0.30}, {"answerable_refused": 0.50})
    assert st["answerable_refused"] == "improved"
    assert compare_metrics({"answerable_refused": 0.50}, {"answerable_refused": 0.30})["answerable_refused"] == "regressed"


def test_percentile_and_compare():
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([5], 95) == 5.0
    assert percentile([], 50) is None
    st = compare_metrics({"hits@1": 0.70, "mrr@10": 0.80, "total_p50_s": 2.0, "questions": 20},
                         {"hits@1": 0.75, "mrr@10": 0.79, "total_p50_s": 1.0, "questions": 20})
    assert st["hits@1"] == "regressed" and st["mrr@10"] == "same" and st["total_p50_s"] == "regressed"
    assert "questions" not in st
