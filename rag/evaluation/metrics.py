"""Scoring and aggregation for ``byline eval`` (pure: no model, no store).

Metric definitions (MultiHop-RAG, Tang & Yang 2024, arXiv:2401.15391, data ODC-BY 1.0):

- article level: a retrieved chunk is a hit when it belongs to one of the question's evidence
  articles. Hits@k = 1 when any of the first k chunks is a hit; MRR@10 = 1/rank of the first hit.
- fact level (as the authors' script): a chunk is a hit when a gold evidence fact with all
  whitespace removed is a substring of the chunk text with all whitespace removed.
- ArtRecall@k: share of ALL evidence articles of a question found among k passages.
- Null queries (no evidence) are excluded from every retrieval and citation metric.
- Answer accuracy: normalised match against the gold answer (yes/no label, or the normalised gold
  name/date contained in the answer as whole words). "Insufficient information" gold = a refusal is
  expected; a refused answer counts as predicting "insufficient information".
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from rag.evaluation.datasets import EvalQuestion
from rag.evaluation.normalize import REFUSAL_GOLD, looks_like_refusal, normalize_answer, squash
from rag.types import WITHHELD_NOTE

# --- answers -------------------------------------------------------------------------------------

_YES = {"yes", "yeah", "true", "correct"}
_NO = {"no", "false"}
# Gold answers of a few yes/no questions are spelled True/False ("Is it true that ...?").
_GOLD_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


def yes_no_label(text: str) -> str | None:
    """'yes'/'no' when the answer commits to one: its first word, else the only one of yes/no in the first sentence."""
    norm = normalize_answer(text)
    words = norm.split()
    if not words:
        return None
    if words[0] in _YES:
        return "yes"
    if words[0] in _NO:
        return "no"
    first_sentence = re.split(r"(?<=[.!?])\s", (text or "").strip(), maxsplit=1)[0]
    fw = set(normalize_answer(first_sentence).split())
    has_yes, has_no = "yes" in fw, "no" in fw
    if has_yes != has_no:
        return "yes" if has_yes else "no"
    return None


def gold_kind(gold: str) -> str:
    n = normalize_answer(gold)
    if n.startswith(REFUSAL_GOLD):
        return "refusal"
    if n in _GOLD_YES_NO:
        return "yes/no"
    return "span"


def answer_correct(gold: str, predicted: str, refused: bool = False) -> bool:
    """Normalised exact/contains match; a refusal predicts 'insufficient information'."""
    kind = gold_kind(gold)
    if kind == "refusal":
        return refused or looks_like_refusal(predicted)
    if refused:
        return False
    if kind == "yes/no":
        return yes_no_label(predicted) == _GOLD_YES_NO[normalize_answer(gold)]
    g, p = normalize_answer(gold), normalize_answer(predicted)
    if not g or not p:
        return False
    return p == g or f" {g} " in f" {p} "


def answer_correct_lenient(gold: str, predicted: str, refused: bool = False) -> bool:
    """The authors' qa_evaluate.py rule: correct when the answer shares a whitespace token with the gold answer."""
    pred = "insufficient information." if refused else (predicted or "")
    return bool(set(gold.lower().split()) & set(pred.lower().split()))


# --- retrieval metrics ---------------------------------------------------------------------------


def first_hit_rank(flags: Sequence[bool], k: int | None = None) -> int | None:
    """1-based rank of the first True within the first k, else None."""
    for i, f in enumerate(flags[: k if k is not None else len(flags)]):
        if f:
            return i + 1
    return None


def hits_at(flags: Sequence[bool], k: int) -> float:
    return 1.0 if first_hit_rank(flags, k) is not None else 0.0


def mrr_at(flags: Sequence[bool], k: int = 10) -> float:
    r = first_hit_rank(flags, k)
    return 1.0 / r if r else 0.0


def article_hit_flags(retrieved_article_ids: Sequence[str], gold: Iterable[str]) -> list[bool]:
    g = set(gold)
    return [a in g for a in retrieved_article_ids]


def fact_hit_flags(chunk_texts: Sequence[str], facts: Sequence[str]) -> list[bool]:
    """Per chunk: does any gold fact (whitespace removed) occur in it (whitespace removed)?"""
    sq = [squash(f) for f in facts if squash(f)]
    out = []
    for t in chunk_texts:
        st = squash(t)
        out.append(any(f in st for f in sq))
    return out


def map_at(chunk_texts: Sequence[str], facts: Sequence[str], k: int = 10) -> float:
    """MAP@k as the authors' script: sum over ranks of (gold facts newly found at that rank / rank), / min(#facts, k)."""
    sq = [squash(f) for f in facts if squash(f)]
    if not sq:
        return 0.0
    found: set[int] = set()
    total = 0.0
    for rank, t in enumerate(chunk_texts[:k], start=1):
        st = squash(t)
        new = [i for i, f in enumerate(sq) if i not in found and f in st]
        if new:
            found.update(new)
            total += len(new) / rank
    return total / min(len(sq), k)


def article_recall(retrieved_article_ids: Iterable[str], gold: Iterable[str]) -> float | None:
    g = set(gold)
    if not g:
        return None
    return len(g & set(retrieved_article_ids)) / len(g)


def citation_scores(cited_article_ids: Sequence[str], gold: Iterable[str]) -> tuple[int, int, float | None]:
    """(citations pointing at an evidence article, citations, recall = share of evidence articles cited)."""
    g = set(gold)
    good = sum(1 for a in cited_article_ids if a in g)
    recall = len(g & set(cited_article_ids)) / len(g) if g else None
    return good, len(cited_article_ids), recall


# --- aggregation ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), like numpy's default; None when empty."""
    xs = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not xs:
        return None
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


@dataclass
class QuestionResult:
    """Everything measured for one question (what the JSON report lists per question)."""

    id: str
    question_type: str
    question: str
    gold: str
    is_null: bool
    gold_articles: list[str] = field(default_factory=list)
    missing_evidence: list[str] = field(default_factory=list)
    has_facts: bool = False
    # retrieval (k=10 from the retriever)
    retrieval_done: bool = False
    retrieved_article_ids: list[str] = field(default_factory=list)
    article_flags: list[bool] = field(default_factory=list)
    fact_flags: list[bool] = field(default_factory=list)
    fact_map10: float | None = None
    art_recall_10: float | None = None
    # generation
    answer: str = ""
    refused: bool = False
    correct: bool | None = None
    correct_lenient: bool | None = None
    passage_article_ids: list[str] = field(default_factory=list)
    art_recall_k: float | None = None
    cited_article_ids: list[str] = field(default_factory=list)
    citation_good: int = 0
    citation_supported: int = 0
    citation_recall: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    # why a refusal happened: "retrieval" (refused before any generation), "model" (the generator
    # said so itself) or "verification" (an answer was written but withheld as unsupported)
    refusal_cause: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refusal_cause(refused: bool, timings: dict[str, float], notes: Sequence[str]) -> str:
    """Which step ended in a refusal (see ``QuestionResult.refusal_cause``); '' when not refused."""
    if not refused:
        return ""
    if any(n.startswith(WITHHELD_NOTE) for n in notes):
        return "verification"
    return "model" if "first_token" in timings else "retrieval"


def score_question(
    q: EvalQuestion,
    gold_articles: set[str],
    missing: list[str],
    retrieved: Sequence[tuple[str, str]] | None,
    *,
    answer_text: str | None = None,
    refused: bool = False,
    passage_article_ids: Sequence[str] = (),
    citations: Sequence[tuple[str, float]] = (),
    min_support: float = 0.5,
    timings: dict[str, float] | None = None,
    prompt_tokens: int = 0,
    notes: Sequence[str] = (),
) -> QuestionResult:
    """Score one question. ``retrieved``: ranked (article_id, chunk_text) from the retriever (k=10);
    ``citations``: (article_id, support score) of the answer's citations."""
    r = QuestionResult(id=q.id, question_type=q.question_type, question=q.question, gold=q.answer, is_null=q.is_null,
                       gold_articles=sorted(gold_articles), missing_evidence=list(missing), has_facts=bool(q.facts))
    if retrieved is not None:
        r.retrieval_done = True
        r.retrieved_article_ids = [a for a, _ in retrieved]
        if not r.is_null:
            r.article_flags = article_hit_flags(r.retrieved_article_ids, gold_articles)
            if q.facts:
                texts = [t for _, t in retrieved]
                r.fact_flags = fact_hit_flags(texts, q.facts)
                r.fact_map10 = map_at(texts, q.facts, 10)
            r.art_recall_10 = article_recall(r.retrieved_article_ids[:10], gold_articles)
    if answer_text is not None:
        r.answer = answer_text
        r.refused = bool(refused)
        r.correct = answer_correct(q.answer, answer_text, refused) if q.answer else None
        r.correct_lenient = answer_correct_lenient(q.answer, answer_text, refused) if q.answer else None
        r.passage_article_ids = list(passage_article_ids)
        r.cited_article_ids = [a for a, _ in citations]
        r.citation_supported = sum(1 for _, s in citations if s is not None and s >= min_support)
        if not r.is_null:
            r.art_recall_k = article_recall(passage_article_ids, gold_articles)
            good, _n, rec = citation_scores(r.cited_article_ids, gold_articles)
            r.citation_good, r.citation_recall = good, rec
    r.timings = dict(timings or {})
    r.prompt_tokens = int(prompt_tokens or 0)
    r.notes = list(notes)
    if answer_text is not None:
        r.refusal_cause = refusal_cause(r.refused, r.timings, r.notes)
    return r


HIGHER_IS_BETTER = {
    "hits@1", "hits@4", "hits@10", "mrr@10", "fact_hits@1", "fact_hits@4", "fact_hits@10", "fact_mrr@10", "fact_map@10",
    "art_recall@10", "art_recall@k", "accuracy", "accuracy_lenient", "refusal_precision", "refusal_recall",
    "citation_precision", "citation_support_rate", "citation_recall",
}


def aggregate(results: Sequence[QuestionResult]) -> dict[str, Any]:
    """Metrics over a set of question results (one group: overall or one question type)."""
    ret = [r for r in results if not r.is_null and r.retrieval_done and r.gold_articles]
    fact = [r for r in ret if r.has_facts]
    answered = [r for r in results if r.correct is not None]
    out: dict[str, Any] = {"questions": len(results), "retrieval_questions": len(ret)}
    for k in (1, 4, 10):
        out[f"hits@{k}"] = mean(hits_at(r.article_flags, k) for r in ret)
    out["mrr@10"] = mean(mrr_at(r.article_flags, 10) for r in ret)
    out["art_recall@10"] = mean(r.art_recall_10 for r in ret)
    out["fact_questions"] = len(fact)
    for k in (1, 4, 10):
        out[f"fact_hits@{k}"] = mean(hits_at(r.fact_flags, k) for r in fact)
    out["fact_mrr@10"] = mean(mrr_at(r.fact_flags, 10) for r in fact)
    out["fact_map@10"] = mean(r.fact_map10 for r in fact)
    # generation
    gen = [r for r in answered if not r.is_null and r.gold_articles]
    out["answered"] = len(answered)
    out["accuracy"] = mean(1.0 if r.correct else 0.0 for r in answered)
    out["accuracy_lenient"] = mean(1.0 if r.correct_lenient else 0.0 for r in answered)
    out["art_recall@k"] = mean(r.art_recall_k for r in gen)
    nulls = [r for r in answered if r.is_null]
    refused = [r for r in answered if r.refused or (r.answer and looks_like_refusal(r.answer))]
    tp = sum(1 for r in refused if r.is_null)
    out["null_questions"] = len(nulls)
    out["refusals"] = len(refused)
    out["refusal_precision"] = tp / len(refused) if refused else None
    out["refusal_recall"] = tp / len(nulls) if nulls else None
    # Over-refusal: answerable questions that ended in a refusal, and at which step.
    answerable = [r for r in answered if not r.is_null]
    over = [r for r in answerable if r.refused]
    out["answerable_refused"] = len(over) / len(answerable) if answerable else None
    for cause in ("retrieval", "model", "verification"):
        # Checkpoints written before causes were recorded count nowhere (their sum then falls short).
        out[f"answerable_refused_{cause}"] = sum(1 for r in over if r.refusal_cause == cause)
    n_cit = sum(len(r.cited_article_ids) for r in gen)
    out["citations"] = n_cit
    out["citation_precision"] = sum(r.citation_good for r in gen) / n_cit if n_cit else None
    all_cit = sum(len(r.cited_article_ids) for r in answered)
    out["citation_support_rate"] = sum(r.citation_supported for r in answered) / all_cit if all_cit else None
    out["citation_recall"] = mean(r.citation_recall for r in gen)
    # latency and prompt size
    for key in ("retrieve", "first_token", "total", "retrieve_k10"):
        vals = [r.timings[key] for r in results if r.timings.get(key) is not None]
        out[f"{key}_p50_s"] = percentile(vals, 50)
        out[f"{key}_p95_s"] = percentile(vals, 95)
    toks = [r.prompt_tokens for r in answered if r.prompt_tokens]
    out["prompt_tokens_mean"] = mean(toks)
    out["prompt_tokens_p95"] = percentile(toks, 95)
    out["errors"] = sum(1 for r in results if r.error)
    return out


def aggregate_by_type(results: Sequence[QuestionResult]) -> dict[str, dict[str, Any]]:
    """{'overall': ..., '<question_type>': ...}."""
    groups: dict[str, list[QuestionResult]] = {}
    for r in results:
        groups.setdefault(r.question_type, []).append(r)
    out = {"overall": aggregate(results)}
    for t in sorted(groups):
        out[t] = aggregate(groups[t])
    return out


LOWER_IS_BETTER = {"answerable_refused"}


def compare_metrics(current: dict[str, Any], previous: dict[str, Any], threshold: float = 0.02) -> dict[str, str]:
    """Per metric: 'regressed' / 'improved' / 'same' (quality metrics: change beyond ``threshold``;
    latencies: more than 20% and 0.05 s slower/faster)."""
    out: dict[str, str] = {}
    for key, cur in current.items():
        prev = previous.get(key)
        if not isinstance(cur, (int, float)) or not isinstance(prev, (int, float)) or isinstance(cur, bool):
            continue
        if key in HIGHER_IS_BETTER or key in LOWER_IS_BETTER:
            d = cur - prev if key in HIGHER_IS_BETTER else prev - cur  # d > 0: better
            out[key] = "regressed" if d < -threshold else "improved" if d > threshold else "same"
        elif key.endswith("_s"):
            d = cur - prev
            rel = d / prev if prev else 0.0
            out[key] = "regressed" if (d > 0.05 and rel > 0.2) else "improved" if (d < -0.05 and rel < -0.2) else "same"
    return out
