"""Question files, sampling, default inputs and evidence mapping of rag.evaluation.datasets."""

from __future__ import annotations

import json

import pytest

from rag.errors import ConfigError
from rag.evaluation import datasets
from rag.evaluation.datasets import EvalQuestion, EvidenceMap, load_questions, sample_questions
from tests.conftest import SHARED_EVAL

# --- questions and evidence -------------------------------------------------------------------------


def test_load_json_and_jsonl(tmp_path):
    recs = [
        {"id": "x1", "question": "Who?", "answer": "Ann", "question_type": "inference_query",
         "evidence": [{"url": "https://www.x.com/a/", "fact": "Ann did it."}]},
        {"query": "Nothing?", "answer": "Insufficient information.", "question_type": "null_query", "evidence_list": []},
    ]
    p = tmp_path / "q.json"
    p.write_text(json.dumps(recs))
    pl = tmp_path / "q.jsonl"
    pl.write_text("\n".join(json.dumps(r) for r in recs))
    for path in (p, pl):
        qs = load_questions(path)
        assert qs[0].id == "x1" and qs[1].question == "Nothing?"
        assert qs[0].facts == ["Ann did it."]
        assert qs[0].evidence_urls == ["https://www.x.com/a/"]
        assert not qs[0].is_null and qs[1].is_null


def test_evidence_map_resolves_ids_and_urls():
    m = EvidenceMap()
    m.add("h1", record_id="mhr-1", url="https://www.site.com/story/?ref=rss")
    m.add("h2", url="https://other.org/b")
    q = EvalQuestion("q", "?", "Yes", "comparison_query", evidence_article_ids=["mhr-1", "unknown"],
                     evidence_urls=["https://site.com/story?ref=rss", "http://other.org/b/"])
    gold, missing = m.gold_articles(q)
    assert gold == {"h1", "h2"} and missing == []
    q2 = EvalQuestion("q", "?", "Yes", "x", evidence_urls=["https://nowhere.net/z"])
    assert m.gold_articles(q2) == (set(), ["https://nowhere.net/z"])


def test_sample_is_deterministic_and_stratified():
    qs = [EvalQuestion(str(i), "?", "a", t) for i, t in enumerate(["a"] * 10 + ["b"] * 10 + ["null_query"] * 5)]
    s1 = sample_questions(qs, 6, seed=3)
    s2 = sample_questions(qs, 6, seed=3)
    assert [q.id for q in s1] == [q.id for q in s2]
    assert {q.question_type for q in s1} == {"a", "b", "null_query"}
    assert [q.id for q in sample_questions(qs, 3)] == ["0", "1", "2"]


@pytest.mark.eval
@pytest.mark.skipif(not (SHARED_EVAL / "questions.json").is_file(), reason="../shared/eval/multihop-rag absent")
def test_loads_multihop_rag_questions():
    qs = load_questions(SHARED_EVAL / "questions.json")
    assert len(qs) == 500
    assert sum(q.is_null for q in qs) == 71
    assert all(q.facts for q in qs if not q.is_null)


# --- default inputs ---------------------------------------------------------------------------------


def test_question_file_without_corpus_needs_one(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": "Who?", "answer": "Ann"}) + "\n")
    with pytest.raises(ConfigError, match="--corpus"):
        datasets.resolve_inputs(str(q), None)
    path, corpus = datasets.resolve_inputs(str(q), None, need_corpus=False)
    assert path == q.resolve() and corpus == []
