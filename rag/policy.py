"""When Byline answers and when it refuses: the gates shared by the pipeline and the generators.

Each gate is a pure function of the question, the passages and the thresholds in ``Settings``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from rag.prompts import REFUSAL_SENTENCE
from rag.text import ANSWER_TYPE_WORDS, content_words
from rag.types import Passage

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry

_QWORDS = {"what", "who", "whom", "which", "when", "where", "why", "how", "did", "does", "do", "is", "are", "was", "were", "the",
           "a", "an", "in", "on", "after", "before", "between", "considering", "according", "and", "or", "has", "have", "can", "could",
           "would", "should", "will", "i", "tell", "give", "at", "by", "to", "from", "with", "this", "that", "these", "those", "list", "summarize", "summarise", "explain", "describe", "if", "as", "for", "of"}


def required_coverage(question: str, short: float, settings: Settings) -> float:
    """Short questions name exactly what they want, so most of their terms must be found; long, descriptive
    ones restate the facts in their own words (paraphrase), so a smaller share is enough."""
    n = len([w for w in content_words(question) if w not in ANSWER_TYPE_WORDS])
    return short if n <= 8 else settings.long_question_coverage


def topic(question: str, date_phrases: Sequence[str]) -> str:
    """The question without its date phrases: those became filters, the evidence need not contain them."""
    for ph in date_phrases:
        question = re.sub(re.escape(ph), " ", question, flags=re.I)
    # "What product ...", "which club ...": the noun after the question word names the kind of answer.
    return re.sub(r"\b(what|which)\s+[\w'’-]+", " ", question, flags=re.I)


def is_yes_no_question(question: str) -> bool:
    # "Does ...?" or a lead-in clause then ", did ...?" ("After the report by The Age on October 22, 2023, did ...").
    if re.match(r"\s*(who|whom|whose|what|which|when|where|why|how)\b", question, re.I):
        return False
    return bool(re.search(r"(^|,\s*)(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\s", question.strip(), re.I))


_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{1,2}:\d{2}(?::\d{2})?\b")


def key_phrases(question: str) -> list[str]:
    """Names and numbers the question is about: capitalised runs ("World Cup", "Ali al-Daffayi") and figures.
    Timestamps ("published at 13:41:30", "2023-12-12T22:38:05+00:00") say when, not what: left out."""
    question = _TIMESTAMP.sub(" ", question)
    phrases = []
    for m in re.finditer(r"(?:[A-Z][\w'’.\-]*|al-\w+)(?:\s+(?:of\s+|al-|de\s+|the\s+)?(?:[A-Z][\w'’.\-]*|al-\w+))*", question):
        words = m.group(0).split()
        while words and words[0].lower().strip("'’.") in _QWORDS:  # "Which", "At", "The" open the run, not the name
            words.pop(0)
        while words and words[-1].lower() in {"of", "the", "de"}:
            words.pop()
        if words:
            phrases.append(re.sub(r"['’]s$", "", " ".join(words).strip("'’.,")))
    phrases += re.findall(r"\b\d[\d,.]*\b", question)
    return [p for p in dict.fromkeys(phrases) if len(p) > 1]


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower().replace("’", "'").replace("'s ", " ")).split())


def evidence_text(passages: Sequence[Passage]) -> str:
    """Passages with their title, outlet and date spelled out: what a question's terms may be found in."""
    return " ".join(p.evidence() for p in passages)


def retrieval_confident(passages: Sequence[Passage], best_cos: float, best_lex: float, question: str, s: Settings) -> bool:
    """Refuse on weak retrieval: nothing close in meaning and nothing sharing the question's words, or
    the names the question is about (people, places, events, figures) mostly absent from every passage."""
    top_dense = max(p.dense_score for p in passages)
    if not (max(top_dense, best_cos) >= s.min_dense_score or best_lex >= s.min_keyword_overlap):
        return False
    phrases = key_phrases(question)
    if not phrases:
        return True
    hay = f" {_norm(evidence_text(passages))} "
    found = sum(1 for ph in phrases if _phrase_in(ph, hay))
    return found / len(phrases) >= s.min_key_phrase_coverage


def _phrase_in(phrase: str, hay: str) -> bool:
    """A name counts as found whole or by its last word, as reports shorten it after first use ("Poyer",
    "the Cowboys"); a last word of under 4 letters or a figure must match whole."""
    p = _norm(phrase)
    if f" {p} " in hay:
        return True
    last = p.split()[-1] if " " in p else ""
    return len(last) >= 4 and not last.isdigit() and f" {last} " in hay


def refusal_text(question: str, applied: dict[str, Any], n_chunks: int, passages: Sequence[Passage]) -> str:
    """The refusal: the fixed sentence, then what was searched (question, filters, closest articles).

    ``n_chunks``: passages in the archive (-1 when it could not be counted).
    """
    scope = []
    if applied.get("sources"):
        scope.append("outlets " + ", ".join(applied["sources"]))
    if applied.get("date_from") or applied.get("date_to"):
        scope.append(f"dates {applied.get('date_from') or '…'} to {applied.get('date_to') or '…'}")
    where = f" in {n_chunks:,} indexed passages" if n_chunks >= 0 else ""
    lines = [f"{REFUSAL_SENTENCE} I searched for “{question}”{where}" + (f" ({'; '.join(scope)})" if scope else "") + "."]
    if passages:
        near = "; ".join(dict.fromkeys(f"{p.title or 'untitled'} ({p.source or 'unknown outlet'}, {p.date or 'date unknown'})" for p in passages[:3]))
        lines.append(f"The closest articles were: {near}, but they do not answer it.")
    elif n_chunks == 0:
        lines.append("The archive is empty: add articles with `byline ingest PATH` or the Archive tab.")
    return " ".join(lines)
