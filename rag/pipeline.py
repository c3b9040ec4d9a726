"""The steps of an answer, each a function from typed input to typed output (none changes its input).

``rag.engine.Engine.ask_stream`` runs them in order; the README's "How an answer is made" follows
the same numbering.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.citations import CheckedSentence, PassageIndex, build_index, check_sentences, closeness, is_refusal, parse_markers, render
from rag.config import Settings
from rag.copies import story
from rag.dates import resolve as resolve_dates, span_text
from rag.embed import SentenceTransformerEmbedding
from rag.errors import GeneratorError, QuestionError
from rag.generators.base import GenerationInput, Generator
from rag.planner import FIRST, QuestionPlan, dated_first, match_outlets, outlet_parts, reports_named, stated_days
from rag.policy import evidence_text, is_yes_no_question, key_phrases, required_coverage, topic
from rag.prompts import REWRITE_SYSTEM, REWRITE_USER
from rag.retrieve import Retriever
from rag.text import ANSWER_TYPE_WORDS, approx_tokens, content_words, lexical_support
from rag.types import WITHHELD_NOTE, Citation, Filters, Passage

log = logging.getLogger(__name__)

History = Sequence[dict[str, str]] | Sequence[tuple[str, str]] | None


# --- 0. the question ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanQuestion:
    text: str
    notes: tuple[str, ...] = ()


def clean_question(question: Any, settings: Settings) -> CleanQuestion:
    """Whitespace folded, NULs dropped; an over-long question is cut (with a note)."""
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, got {type(question).__name__}")
    q = " ".join(question.replace("\x00", " ").split())
    if not q:
        raise QuestionError("Please type a question.")
    if len(q) > settings.max_question_chars:
        note = f"the question was {len(q):,} characters long; only the first {settings.max_question_chars:,} were used"
        return CleanQuestion(q[: settings.max_question_chars], (note,))
    return CleanQuestion(q)


def normalize_history(history: History) -> list[dict[str, str]]:
    """Chat turns as [{'role': 'user'|'assistant', 'content': str}] from dicts, Gradio messages or (user, bot) pairs."""
    out: list[dict[str, str]] = []
    for turn in history or []:
        if isinstance(turn, dict):
            role, content = str(turn.get("role", "")), turn.get("content", "")
            if isinstance(content, (list, tuple)):  # Gradio multimodal messages
                content = " ".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in content)
            out.append({"role": role, "content": str(content or "")})
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:  # (user, assistant) pairs
            if turn[0]:
                out.append({"role": "user", "content": str(turn[0])})
            if turn[1]:
                out.append({"role": "assistant", "content": str(turn[1])})
    return [t for t in out if t["content"].strip() and t["role"] in ("user", "assistant")]


# --- 1. follow-ups --------------------------------------------------------------------------------
_FOLLOWUP = re.compile(r"^(and|but|also|so|what about|how about|then|why|who else)\b|\b(he|she|they|them|his|her|their|it|its|this|that|those|these|there|the same|him)\b", re.I)
# Names carry over into a rewritten follow-up; dates and figures from the last answer would only pull retrieval back to it.
_NOT_CARRIED = re.compile(r"^(\d[\d,.]*|monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|may|june|july"
                          r"|august|september|october|november|december)$", re.I)


def rewrite_question(question: str, history: list[dict[str, str]], generator: Generator) -> str:
    """A follow-up ("and what did the militias say?") becomes a standalone question for retrieval:
    by the generator's model when it has one, else by carrying names over from the last turn."""
    users = [t["content"] for t in history if t["role"] == "user"]
    if not users or not _FOLLOWUP.search(question):
        return question
    convo = "\n".join(f"{t['role']}: {t['content'][:300]}" for t in history[-4:])
    try:
        out = generator.complete(REWRITE_SYSTEM, REWRITE_USER.format(history=convo, question=question), 60)
    except GeneratorError as exc:
        log.warning("question rewrite failed (%s); using the heuristic", exc)
        out = ""
    if out is not None:
        out = out.strip().split("\n")[0].strip().strip('"')
        # Accept only a plausible question: not empty, not a runaway answer, not a refusal.
        if out and len(out) < 3 * len(question) + 200 and not is_refusal(out):
            return out
    prev = users[-1]
    last_answer = next((t["content"] for t in reversed(history) if t["role"] == "assistant"), "")
    last_answer = "" if is_refusal(last_answer) else re.sub(r"\[\d+\]", "", last_answer)[:300]
    own = {p.lower() for p in key_phrases(question)}
    terms = [p for p in dict.fromkeys(key_phrases(prev) + key_phrases(last_answer)) if p.lower() not in own and not _NOT_CARRIED.match(p)]
    terms = terms[:6] or content_words(prev)[:6]
    return f"{question} ({'; '.join(terms)})" if terms else f"{prev} {question}"


# --- 2. dates -> filters --------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchPlan:
    question: str  # the standalone question
    filters: Filters  # what retrieval filters on (the user's, plus dates read from the question)
    applied: dict[str, Any]  # the same, as reported in Answer.filters (with how dates were read)
    date_phrases: tuple[str, ...] = ()
    recency: bool = False  # "latest": newer articles rank higher
    boost: tuple[tuple[dt.date, dt.date], ...] = ()  # spans whose articles rank higher
    loose_dates: bool = False  # the question's date range describes an event ("last week's game"): see widen


def plan_search(question: str, user_filters: Filters, reference: dt.date, archive_months: set[tuple[int, int]],
                outlets: Iterable[str] = (), named: Iterable[str] | None = None) -> SearchPlan:
    """Dates in the question become filters, unless the user gave dates (explicit filters win).
    ``outlets``: the archive's outlet names, whose words are not dates ("Business Today"); ``named``: those
    the question names, when the caller has matched them already (``QuestionPlan.outlets``)."""
    outlets = list(outlets)
    intent = resolve_dates(question, reference, archive_months, outlets)
    named = match_outlets(question, outlets) if named is None else named
    if intent.bounds and sum(reports_named(question, named).values()) >= 2:
        # "Between the Sporting News report ... before 5 December and the CBSSports.com report ...": the date
        # describes one of the reports; as a filter it would hide the other.
        intent = intent.as_preferences()
    date_from, date_to = user_filters.date_from, user_filters.date_to
    if not (date_from or date_to):
        date_from = intent.date_from.isoformat() if intent.date_from else None
        date_to = intent.date_to.isoformat() if intent.date_to else None
    eff = Filters(sources=list(user_filters.sources), date_from=date_from, date_to=date_to)
    applied = _filters_applied(eff)
    if intent.phrases and (intent.date_from or intent.date_to) and not (user_filters.date_from or user_filters.date_to):
        applied["dates_from_question"] = f"“{', '.join(intent.phrases)}” read as {intent.describe()} (reference date {reference.isoformat()})"
    if intent.recency:
        applied["recency"] = True
    if intent.boost:
        applied["preferred_dates"] = [span_text(a, b) for a, b in intent.boost]
    return SearchPlan(question, eff, applied, tuple(intent.phrases), bool(intent.recency), tuple(intent.boost or ()),
                      loose_dates=intent.descriptive)


def _filters_applied(f: Filters) -> dict[str, Any]:
    """The filters retrieval applies, as ``Answer.filters`` reports them (only those set)."""
    return {k: v for k, v in {"sources": f.sources, "date_from": f.date_from, "date_to": f.date_to}.items() if v}


def digest_plan(plan: SearchPlan, outlets: Sequence[str]) -> SearchPlan:
    """The plan for a question that asks what the archive holds ("What happened in February 2024?"): its dates
    filter (a month it names is otherwise only preferred), its outlets filter unless the user chose outlets,
    newest first (``newest`` lists them: no search, so no recency or date preferences to carry), and no widening:
    an empty window is an answer too."""
    f = plan.filters
    date_from, date_to = f.date_from, f.date_to
    if not (date_from or date_to) and plan.boost:
        date_from, date_to = min(a for a, _ in plan.boost).isoformat(), max(b for _, b in plan.boost).isoformat()
    eff = Filters(sources=list(f.sources) or list(outlets), date_from=date_from, date_to=date_to)
    applied = {k: v for k, v in plan.applied.items() if k != "preferred_dates"}
    applied.update(_filters_applied(eff))
    applied["recency"] = True
    return dataclasses.replace(plan, filters=eff, applied=applied, loose_dates=False)


def widen(plan: SearchPlan) -> SearchPlan | None:
    """The plan without the dates read from the question, for when they match no article and they describe
    an event ("last week's game", in a question restating an older report), not when to search.
    None when there is nothing to drop: a plain "last week" and the user's own date filters are kept."""
    if not plan.loose_dates or "dates_from_question" not in plan.applied:
        return None
    applied = {k: v for k, v in plan.applied.items() if k not in ("date_from", "date_to", "dates_from_question")}
    applied["dates_not_matched"] = f"{plan.applied['dates_from_question']} matched no article, so all dates were searched"
    return dataclasses.replace(plan, filters=dataclasses.replace(plan.filters, date_from=None, date_to=None), applied=applied)


# --- 4. retrieval (3, what is asked, is rag.planner) ----------------------------------------------
@dataclass(frozen=True)
class Retrieved:
    passages: tuple[Passage, ...]
    query_vector: np.ndarray
    # What was searched for apart from the whole question (an outlet the question names, or one of the two
    # reports of "which came first"), with the numbers of the passages that search found, best first.
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()


def newest(plan: SearchPlan, retriever: Retriever, embedder: SentenceTransformerEmbedding, k: int) -> Retrieved:
    """For a question that names only outlets or dates (``digest_plan``): the k newest articles its filters admit,
    an opening passage each; the question's vector is kept for picking the sentence each line quotes."""
    return Retrieved(tuple(retriever.newest(plan.filters, k)), np.asarray(embedder.get_query_embedding(plan.question), dtype=np.float32))


def retrieve(plan: SearchPlan, retriever: Retriever, embedder: SentenceTransformerEmbedding, k: int,
             question: QuestionPlan | None = None, per_article: int = 2) -> Retrieved:
    """Hybrid (dense + BM25) retrieval with the plan's filters and date preferences; when the question
    names outlets (or asks which of two reports came first), one more search per outlet (or report), so
    that each reaches the context even when another outlet's articles match the whole question better. An
    outlet named once keeps, of its four best articles, the two closest to what the question says of it
    (``outlet_parts``): the one that fits the whole question best is often another story of the same outlet. A
    report the question dates ("… published on October 7, 2023") puts the outlet's article of that day first."""
    qvec = embedder.get_query_embedding(plan.question)
    boost = list(plan.boost) or None
    main = retriever.retrieve(plan.question, plan.filters, k=k, recency=plan.recency, qvec=qvec, boost=boost,
                              prefer=question.outlets if question is not None else ())
    searches: list[tuple[str, str, Filters]] = []
    if question is not None and question.kind == FIRST:
        searches = [(opt, opt, plan.filters) for opt in question.options]
    elif question is not None and question.outlets:
        allowed = set(plan.filters.sources)
        searches = [(o, plan.question, dataclasses.replace(plan.filters, sources=[o])) for o in question.outlets if not allowed or o in allowed][:4]
    if not searches:
        return Retrieved(tuple(main), np.asarray(qvec, dtype=np.float32))
    reports = reports_named(plan.question, list(question.outlets)) if question.kind != FIRST else {}
    found = []
    for label, text, flt in searches:
        piece = next((t for t in outlet_parts(plan.question, label, question.outlets) if t), "") if reports.get(label) == 1 else ""
        days = stated_days(plan.question, label, question.outlets) if question.kind != FIRST else []
        if piece:  # the outlet's articles that fit the whole question best, then the two closest to what it says of this outlet
            ps = closest_to(piece, retriever.retrieve(text, flt, k=4, per_article=1, recency=plan.recency, qvec=qvec, boost=boost), embedder)
        else:
            ps = retriever.retrieve(text, flt, k=4 if days else 2, recency=plan.recency, qvec=qvec if text == plan.question else None, boost=boost)
        found.append((label, dated_first(ps, lambda p: p.date, days)[:2]))
    # One copy of a syndicated story, as within each search (rag.copies), though the searches may have found
    # different copies: a story's passages come from the copies that one tier of searches found. The outlets the
    # question names come first: asked what Harbor Ledger reported, the user needs Harbor Ledger's copy (it is
    # what the answer says Harbor Ledger published), which lists the earliest copy, the likely original, among
    # its "also published"; each outlet named keeps its copy, since the answer quotes each. Otherwise the main
    # search's copy, then that of the first report of "which came first" that found the story.
    searched = [ps for _, ps in found]
    tiers = [[main], *([ps] for ps in searched)] if question is not None and question.kind == FIRST else [searched, [main]]
    copies: dict[frozenset[str], list[Passage]] = {}  # a story -> the passages that may stand for it, best first
    for tier in tiers:
        here: dict[frozenset[str], list[Passage]] = {}
        for p in (p for ps in tier for p in ps):
            here.setdefault(story(p), []).append(p)
        for key, ps in here.items():
            copies.setdefault(key, ps)
    chosen = {key: {p.article_id for p in ps} for key, ps in copies.items()}
    # The best passage for the whole question, then the best for each part, then the rest.
    order = main[:1] + [ps[0] for ps in searched if ps] + main[1:] + [p for ps in searched for p in ps[1:]]
    merged: list[Passage] = []
    seen: set[str] = set()
    per: dict[str, int] = {}
    first_of: dict[frozenset[str], int] = {}  # a story -> the number of its first passage kept
    for p in order:
        key = story(p)
        if p.article_id not in chosen[key]:  # another copy: the chosen copy's next passage takes its rank
            p = next((q for q in copies[key] if q.chunk_id not in seen), p)
        if p.chunk_id in seen or p.article_id not in chosen[key] or per.get(p.article_id, 0) >= per_article:
            continue
        seen.add(p.chunk_id)
        per[p.article_id] = per.get(p.article_id, 0) + 1
        merged.append(dataclasses.replace(p, number=len(merged) + 1))
        first_of.setdefault(key, len(merged))
        if len(merged) >= k:
            break
    number = {p.chunk_id: p.number for p in merged}

    def numbers(ps: list[Passage]) -> tuple[int, ...]:
        # A part's passage from a copy not shown counts as its story's passage shown instead.
        nums = (number.get(p.chunk_id) or (first_of.get(story(p)) if p.article_id not in chosen[story(p)] else None) for p in ps)
        return tuple(dict.fromkeys(n for n in nums if n))

    parts = tuple((label, numbers(ps)) for label, ps in found)
    return Retrieved(tuple(merged), np.asarray(qvec, dtype=np.float32), parts)


def closest_to(text: str, passages: Sequence[Passage], embedder: SentenceTransformerEmbedding) -> list[Passage]:
    """The passages ordered by how close their closest sentence is to the text (``rag.citations.closeness``)."""
    if not passages:
        return []
    vec = np.asarray(embedder.get_query_embedding(text), dtype=np.float32)
    index = build_index(passages, embedder.embed_cached)
    return sorted(passages, key=lambda p: closeness(text, vec, index[p.number]), reverse=True)


# --- 5. context -----------------------------------------------------------------------------------
def on_topic(retrieved: Retrieved, question: str, gap: float) -> Retrieved:
    """The passages without those about something else: far below the best passage in meaning (``gap`` in
    cosine) and sharing at most one of the question's words. In a small or mixed archive the top k fill up with
    other stories; the model would read them before its first word and the user would see their cards. The
    first passage and the named outlets' passages stay; the rest are numbered again from 1, as the user sees them."""
    if len(retrieved.passages) < 2:
        return retrieved
    best = max(p.dense_score for p in retrieved.passages)
    named = {n for _, nums in retrieved.parts for n in nums}
    words = set(content_words(question))
    kept = [p for i, p in enumerate(retrieved.passages)
            if i == 0 or p.number in named or p.dense_score >= best - gap or len(words & set(content_words(p.evidence()))) > 1]
    if len(kept) == len(retrieved.passages):
        return retrieved
    number = {p.number: n for n, p in enumerate(kept, 1)}
    return dataclasses.replace(retrieved, passages=tuple(dataclasses.replace(p, number=number[p.number]) for p in kept),
                               parts=tuple((label, tuple(number[n] for n in nums)) for label, nums in retrieved.parts))


def fewer(retrieved: Retrieved, n: int) -> Retrieved:
    """The best ``n`` passages, in their retrieved order and numbering. When the search had parts (the
    question names outlets, so it spans articles), one per article before any article's second; otherwise
    simply the first ``n``: a question that names none is most often about one story, whose second passage
    beats another story's first (measured: a distractor's name won)."""
    if not retrieved.parts:
        return dataclasses.replace(retrieved, passages=retrieved.passages[:n])
    firsts: list[Passage] = []
    seconds: list[Passage] = []
    seen: set[str] = set()
    for p in retrieved.passages:
        (seconds if p.article_id in seen else firsts).append(p)
        seen.add(p.article_id)
    picked = {p.number for p in (firsts + seconds)[:n]}
    return dataclasses.replace(retrieved, passages=tuple(p for p in retrieved.passages if p.number in picked))


@dataclass(frozen=True)
class Context:
    passages: tuple[Passage, ...]  # copies of the retrieved passages, ``text`` cut to the selected sentences
    index: Mapping[int, PassageIndex]  # every sentence of every passage, embedded (for selection and verification)
    best_cosine: float  # the closest sentence to the question, in meaning
    best_overlap: float  # the largest share of the question's words one sentence holds


def select_context(retrieved: Retrieved, question: str, embedder: SentenceTransformerEmbedding, budget: int,
                   keep: frozenset[int] | None = None) -> Context:
    """Keep each passage's most relevant sentences within a token budget (first-token latency grows with prompt length).

    ``keep``: the passages that must keep their best sentence (default all); with a smaller set, the budget
    goes to the best sentences wherever they are, and a passage left with none is not in the context.
    """
    index = build_index(retrieved.passages, embedder.embed_cached)
    qv = retrieved.query_vector
    scored: list[tuple[float, int, int]] = []  # (score, passage number, sentence index)
    best_cos, best_lex = -1.0, 0.0
    for n, idx in index.items():
        if not idx.sentences:
            continue
        sims = idx.vectors @ qv
        for i, sent in enumerate(idx.sentences):
            lex = lexical_support(question, sent)
            best_cos, best_lex = max(best_cos, float(sims[i])), max(best_lex, lex)
            scored.append((float(sims[i]) + 0.3 * lex, n, i))
    ranked = sorted(scored, reverse=True)
    chosen: dict[int, set[int]] = {n: set() for n in index}
    used = 0
    # Every passage keeps its best sentence; then the best of the rest while the budget lasts.
    for _, n, i in ranked:
        if not chosen[n] and (keep is None or n in keep):
            chosen[n].add(i)
            used += approx_tokens(index[n].sentences[i])
    for _, n, i in ranked:
        cost = approx_tokens(index[n].sentences[i])
        if i in chosen[n] or used + cost > budget:
            continue
        chosen[n].add(i)
        used += cost
    passages = tuple(dataclasses.replace(p, text=_join_selected(index[p.number].sentences, chosen[p.number])) if index[p.number].sentences else p
                     for p in retrieved.passages if keep is None or chosen[p.number] or p.number in keep)
    shown = {p.number for p in passages}
    return Context(passages, {n: idx for n, idx in index.items() if n in shown}, best_cos, best_lex)


def short_context(retrieved: Retrieved, question: str, embedder: SentenceTransformerEmbedding, top_k: int, budget: int) -> Context:
    """What the model reads for a one-word or one-name reply: fewer, shorter passages, since every prompt
    token costs the user time before the reply. The budget goes to the best sentences wherever they are;
    only the outlets the question names keep one passage each."""
    few = fewer(retrieved, max(top_k, 1 + len(retrieved.parts)))
    keep = frozenset(nums[0] for _, nums in retrieved.parts if nums)
    return select_context(few, question, embedder, budget, keep=keep)


def _join_selected(sentences: list[str], picked: set[int]) -> str:
    pieces, last = [], -2
    for i in sorted(picked):
        if last >= 0 and i != last + 1:
            pieces.append("…")
        pieces.append(sentences[i])
        last = i
    return " ".join(pieces)


def generation_input(plan: SearchPlan, user_question: str, context: Context, retrieved: Retrieved) -> GenerationInput:
    shown = {p.number for p in context.passages}
    parts = tuple((label, tuple(n for n in nums if n in shown)) for label, nums in retrieved.parts)
    return GenerationInput(question=plan.question, user_question=user_question, date_phrases=plan.date_phrases,
                           passages=context.passages, index=context.index, query_vector=retrieved.query_vector, parts=parts)


# --- 7. verification (6, the answer, is the generator or rag.compose) -----------------------------
@dataclass(frozen=True)
class Verified:
    text: str  # '' when nothing survived: the answer is then a refusal
    citations: tuple[Citation, ...]
    notes: tuple[str, ...]


def verify(raw: str, inp: GenerationInput, uses_model: bool, embedder: SentenceTransformerEmbedding, settings: Settings) -> Verified:
    """Check every sentence of the written answer against what it cites; renumber the citations."""
    index, qv, question = inp.index, inp.query_vector, inp.question
    checked, vnotes = check_sentences(raw, dict(index), embedder.embed, settings.min_support, question=question)
    notes = list(vnotes)
    qquotes = {n: idx.sentences[int(np.argmax(idx.vectors @ qv))] for n, idx in index.items() if idx.sentences}
    yes_no = is_yes_no_question(question)
    text, citations = render(checked, dict(index), qquotes, yes_no=yes_no)
    verdict = re.match(r"\s*(yes|no)\b", raw, re.I)
    if not citations and yes_no and verdict and uses_model:
        # The model's yes/no judgment over the shown passages, without its unverifiable wording:
        # the verdict is shown with the passages it relied on quoted, and flagged as a judgment.
        cited = [n for n in parse_markers(raw) if n in index] or [p.number for p in inp.passages[:2]]
        text, citations = render([CheckedSentence(text=verdict.group(1).capitalize() + ".", cited=cited, status="connective")],
                                 dict(index), qquotes, yes_no=True)
        notes.append("only the yes/no verdict is shown: the model's explanation was not supported word for word by the passages; "
                     "the quoted passages are what it judged from")
    if citations and uses_model and not yes_no:
        # A true sentence that does not address the question is no answer ("What is the population
        # of Saltmere?" answered with the port's storm damage).
        cited_ids = {c.chunk_id for c in citations}
        cited = [p for p in inp.passages if p.chunk_id in cited_ids]
        coverage = lexical_support(topic(question, inp.date_phrases), f"{text} {evidence_text(cited)}", ignore=ANSWER_TYPE_WORDS)
        if coverage < required_coverage(question, settings.min_answer_coverage, settings):
            notes.append(f"{WITHHELD_NOTE}: it does not address the question (covers {coverage:.0%} of its terms)")
            text, citations = "", []
    if not citations and raw.strip() and not any(c.status == "refusal" for c in checked):
        notes.append(f"{WITHHELD_NOTE}: no sentence of it is supported by the passages")
    return Verified(text if citations else "", tuple(citations), tuple(notes))
