"""The ask pipeline: rewrite -> dates -> hybrid retrieval -> sentence selection -> generate -> verify.

``ask_stream`` yields text deltas while the generator writes, then one final ``Answer`` whose text
has been checked sentence by sentence against the passages it cites (so it may differ from what
was streamed). ``ask`` returns that final Answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

from rag.citations import CheckedSentence, PassageIndex, build_index, check_sentences, is_refusal, parse_markers, render
from rag.config import Settings
from rag.dates import resolve as resolve_dates
from rag.embed import get_embedder
from rag.errors import QuestionError
from rag.prompts import ANSWER_USER, PASSAGE_LINE, REFUSAL_SENTENCE, REWRITE_SYSTEM, REWRITE_USER, answer_system
from rag.retrieve import Retriever
from rag.store import Store
from rag.text import ANSWER_TYPE_WORDS, approx_tokens, content_words, lexical_support
from rag.types import WITHHELD_NOTE, Answer, Filters, Passage

log = logging.getLogger(__name__)

# The extractive generator answers only when the retrieved passages contain this share of the
# question's content words, or one sentence is this close in meaning.
EXTRACTIVE_MIN_COVERAGE = 0.6
EXTRACTIVE_MIN_COSINE = 0.6
# A generated (non yes/no) answer with its evidence must contain this share of the question's terms.
LLM_MIN_COVERAGE = 0.55
# Share of the question's names and figures that must appear in the retrieved passages. On MultiHop-RAG
# (500 questions) 0.6 refuses 96% of the unanswerable questions before generation and 4% of the others.
MIN_KEY_PHRASE_COVERAGE = 0.6
# For questions with more than 8 content words (paraphrased, multi-part questions).
LONG_QUESTION_MIN_COVERAGE = 0.4

History = Sequence[dict[str, str]] | Sequence[tuple[str, str]] | None


class Engine:
    """Everything a question needs, built once per distinct settings and reused."""

    def __init__(self, settings: Settings) -> None:
        from rag.generate import resolve_generator

        self.settings = settings
        self.embedder = get_embedder(settings)
        self.store = Store(settings)
        self.retriever = Retriever(settings, self.store, self.embedder)
        self.generator = resolve_generator(settings)
        self._llm: Any = None
        self._llm_lock = threading.Lock()

    @property
    def llm(self) -> Any:
        if self.generator == "extractive":
            return None
        with self._llm_lock:
            if self._llm is None:
                from rag.generate import get_llm

                self._llm = get_llm(self.settings)
        return self._llm


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or Settings()
    key = json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(settings)
        return _ENGINES[key]


# --- public API --------------------------------------------------------------------------------
def ask(question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None, settings: Settings | None = None) -> Answer:
    """Answer a question from the archive, with verified numbered citations."""
    final: Answer | None = None
    for piece in ask_stream(question, history=history, filters=filters, settings=settings):
        if isinstance(piece, Answer):
            final = piece
    assert final is not None
    return final


def ask_stream(question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None,
               settings: Settings | None = None) -> Iterator[str | Answer]:
    """Yield text deltas as the answer is written, then the final verified ``Answer``."""
    t0 = time.perf_counter()
    engine = get_engine(settings)
    s = engine.settings
    notes: list[str] = []
    q = _clean_question(question, s, notes)
    user_filters = Filters.coerce(filters)
    timings: dict[str, float] = {}

    # 1. Follow-ups become standalone questions.
    t = time.perf_counter()
    standalone = rewrite_question(q, _norm_history(history), engine)
    timings["rewrite"] = time.perf_counter() - t

    # 2. Dates in the question become filters (explicit filters win).
    ref = s.reference_date or dt.date.today()
    intent = resolve_dates(standalone, ref, engine.retriever.archive_months())
    eff = Filters(sources=list(user_filters.sources), date_from=user_filters.date_from, date_to=user_filters.date_to)
    if not (eff.date_from or eff.date_to):
        eff.date_from = intent.date_from.isoformat() if intent.date_from else None
        eff.date_to = intent.date_to.isoformat() if intent.date_to else None
    applied: dict[str, Any] = {k: v for k, v in {"sources": eff.sources, "date_from": eff.date_from, "date_to": eff.date_to}.items() if v}
    if intent.phrases and (intent.date_from or intent.date_to) and not (user_filters.date_from or user_filters.date_to):
        applied["dates_from_question"] = f"“{', '.join(intent.phrases)}” read as {intent.describe()} (reference date {ref.isoformat()})"
    if intent.recency:
        applied["recency"] = True
    if intent.boost:
        applied["preferred_dates"] = [f"{a.isoformat()}..{b.isoformat()}" for a, b in intent.boost]

    # 3. Retrieve.
    t = time.perf_counter()
    qvec = engine.embedder.get_query_embedding(standalone)
    passages = engine.retriever.retrieve(standalone, eff, k=s.top_k, recency=intent.recency, qvec=qvec, boost=intent.boost)
    timings["retrieve"] = time.perf_counter() - t

    base = dict(question=question, standalone_question=standalone, filters=applied, generator=engine.generator, notes=notes)

    def finish(ans: Answer) -> Answer:
        ans.timings = {**timings, "total": time.perf_counter() - t0}
        return ans

    if not passages:
        text = _refusal_text(standalone, applied, engine, [])
        yield text
        yield finish(Answer(text=text, refused=True, passages=[], **base))
        return

    # 4. Keep the sentences that matter (first-token latency grows with prompt length).
    t = time.perf_counter()
    index = build_index(passages, engine.embedder.embed_cached)
    qv = np.asarray(qvec, dtype=np.float32)
    best_sent, best_lex = _select_sentences(passages, index, qv, standalone, s.context_tokens)
    timings["select"] = time.perf_counter() - t

    if not _retrieval_confident(passages, best_sent, best_lex, standalone, s):
        text = _refusal_text(standalone, applied, engine, passages)
        yield text
        yield finish(Answer(text=text, refused=True, passages=passages, **base))
        return

    # 5. Generate.
    t = time.perf_counter()
    prompt_tokens = 0
    if engine.generator == "extractive":
        raw = _extractive(passages, index, qv, _topic(standalone, intent.phrases), focus=_topic(q, intent.phrases))
        timings["first_token"] = time.perf_counter() - t0
        yield raw
    else:
        from llama_index.core.llms import ChatMessage, MessageRole

        from rag.generate import stream_chat

        user = ANSWER_USER.format(passages=_format_passages(passages), question=standalone)
        messages = [ChatMessage(role=MessageRole.SYSTEM, content=answer_system()), ChatMessage(role=MessageRole.USER, content=user)]
        prompt_tokens = approx_tokens(answer_system() + user)
        chunks: list[str] = []
        for delta in stream_chat(engine.llm, messages, max_tokens=s.max_new_tokens):
            if not chunks:
                timings["first_token"] = time.perf_counter() - t0
            chunks.append(delta)
            yield delta
        raw = "".join(chunks)
    timings["generate"] = time.perf_counter() - t

    # 6. Verify every sentence against what it cites.
    t = time.perf_counter()
    checked, vnotes = check_sentences(raw, index, engine.embedder.embed, s.min_support, question=standalone)
    notes.extend(vnotes)
    qquotes = {n: idx.sentences[int(np.argmax(idx.vectors @ qv))] for n, idx in index.items() if idx.sentences}
    yes_no = is_yes_no_question(standalone)
    text, citations = render(checked, index, qquotes, yes_no=yes_no)
    verdict = re.match(r"\s*(yes|no)\b", raw, re.I)
    if not citations and yes_no and verdict and engine.generator != "extractive":
        # The model's yes/no judgment over the shown passages, without its unverifiable wording:
        # the verdict is shown with the passages it relied on quoted, and flagged as a judgment.
        cited = [n for n in parse_markers(raw) if n in index] or [p.number for p in passages[:2]]
        text, citations = render([CheckedSentence(text=verdict.group(1).capitalize() + ".", cited=cited, status="connective")],
                                 index, qquotes, yes_no=True)
        notes.append("only the yes/no verdict is shown: the model's explanation was not supported word for word by the passages; "
                     "the quoted passages are what it judged from")
    if citations and engine.generator != "extractive" and not yes_no:
        # A true sentence that does not address the question is no answer ("What is the population
        # of Saltmere?" answered with the port's storm damage).
        cited = [p for p in passages if p.chunk_id in {c.chunk_id for c in citations}]
        coverage = lexical_support(_topic(standalone, intent.phrases), f"{text} {_evidence_text(cited)}", ignore=ANSWER_TYPE_WORDS)
        if coverage < required_coverage(standalone, LLM_MIN_COVERAGE):
            notes.append(f"{WITHHELD_NOTE}: it does not address the question (covers {coverage:.0%} of its terms)")
            text, citations = "", []
    timings["verify"] = time.perf_counter() - t
    if not citations:
        refusal = _refusal_text(standalone, applied, engine, passages)
        if raw.strip() and not any(c.status == "refusal" for c in checked):
            notes.append(f"{WITHHELD_NOTE}: no sentence of it is supported by the passages")
        yield finish(Answer(text=refusal, refused=True, passages=passages, prompt_tokens=prompt_tokens, **base))
        return
    yield finish(Answer(text=text, citations=citations, refused=False, passages=passages, prompt_tokens=prompt_tokens, **base))


# --- steps -------------------------------------------------------------------------------------
def _clean_question(question: Any, s: Settings, notes: list[str]) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, got {type(question).__name__}")
    q = " ".join(question.replace("\x00", " ").split())
    if not q:
        raise QuestionError("Please type a question.")
    if len(q) > s.max_question_chars:
        notes.append(f"the question was {len(q):,} characters long; only the first {s.max_question_chars:,} were used")
        q = q[: s.max_question_chars]
    return q


def _norm_history(history: History) -> list[dict[str, str]]:
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


_FOLLOWUP = re.compile(r"^(and|but|also|so|what about|how about|then|why|who else)\b|\b(he|she|they|them|his|her|their|it|its|this|that|those|these|there|the same|him)\b", re.I)


def rewrite_question(question: str, history: list[dict[str, str]], engine: Engine) -> str:
    """A follow-up ("and what did the militias say?") becomes a standalone question for retrieval."""
    users = [t["content"] for t in history if t["role"] == "user"]
    if not users or not _FOLLOWUP.search(question):
        return question
    llm = engine.llm
    if llm is not None:
        from llama_index.core.llms import ChatMessage, MessageRole

        from rag.errors import GeneratorError
        from rag.generate import stream_chat

        convo = "\n".join(f"{t['role']}: {t['content'][:300]}" for t in history[-4:])
        msgs = [ChatMessage(role=MessageRole.SYSTEM, content=REWRITE_SYSTEM),
                ChatMessage(role=MessageRole.USER, content=REWRITE_USER.format(history=convo, question=question))]
        try:
            out = "".join(stream_chat(llm, msgs, max_tokens=60)).strip().split("\n")[0].strip().strip('"')
        except GeneratorError as exc:
            log.warning("question rewrite failed (%s); using the heuristic", exc)
            out = ""
        # Accept only a plausible question: not empty, not a runaway answer, shares words with the conversation.
        if out and len(out) < 3 * len(question) + 200 and not is_refusal(out):
            return out
    # Heuristic: carry the previous question's key terms along.
    prev = users[-1]
    last_answer = next((t["content"] for t in reversed(history) if t["role"] == "assistant"), "")
    last_answer = "" if is_refusal(last_answer) else re.sub(r"\[\d+\]", "", last_answer)[:300]
    own = {p.lower() for p in key_phrases(question)}
    # Names carry over; dates and figures from the last answer would only pull retrieval back to it.
    noise = re.compile(r"^(\d[\d,.]*|monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|may|june|july"
                       r"|august|september|october|november|december)$", re.I)
    terms = [p for p in dict.fromkeys(key_phrases(prev) + key_phrases(last_answer)) if p.lower() not in own and not noise.match(p)]
    terms = terms[:6] or content_words(prev)[:6]
    return f"{question} ({'; '.join(terms)})" if terms else f"{prev} {question}"


def required_coverage(question: str, short: float) -> float:
    """Short questions name exactly what they want, so most of their terms must be found; long, descriptive
    ones restate the facts in their own words (paraphrase), so a smaller share is enough."""
    n = len([w for w in content_words(question) if w not in ANSWER_TYPE_WORDS])
    return short if n <= 8 else LONG_QUESTION_MIN_COVERAGE


def _topic(question: str, date_phrases: list[str]) -> str:
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


def _select_sentences(passages: list[Passage], index: dict[int, PassageIndex], qv: np.ndarray, question: str, budget: int) -> tuple[float, float]:
    """Trim each passage to its most relevant sentences within a token budget; returns best cosine and best lexical overlap."""
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
    chosen: dict[int, set[int]] = {n: set() for n in index}
    used = 0
    # Every passage keeps its best sentence; then the best of the rest while the budget lasts.
    firsts = {}
    for sc, n, i in sorted(scored, reverse=True):
        if n not in firsts:
            firsts[n] = (sc, i)
    for n, (_, i) in firsts.items():
        chosen[n].add(i)
        used += approx_tokens(index[n].sentences[i])
    for sc, n, i in sorted(scored, reverse=True):
        if i in chosen[n]:
            continue
        cost = approx_tokens(index[n].sentences[i])
        if used + cost > budget:
            continue
        chosen[n].add(i)
        used += cost
    for p in passages:
        idx = index[p.number]
        if not idx.sentences:
            continue
        picked = sorted(chosen[p.number])
        pieces, last = [], -2
        for i in picked:
            if last >= 0 and i != last + 1:
                pieces.append("…")
            pieces.append(idx.sentences[i])
            last = i
        p.text = " ".join(pieces)
    return best_cos, best_lex


_QWORDS = {"what", "who", "whom", "which", "when", "where", "why", "how", "did", "does", "do", "is", "are", "was", "were", "the",
           "a", "an", "in", "on", "after", "before", "between", "considering", "according", "and", "or", "has", "have", "can", "could",
           "would", "should", "will", "i", "tell", "give", "at", "by", "to", "from", "with", "this", "that", "these", "those", "list", "summarize", "summarise", "explain", "describe", "if", "as", "for", "of"}


def key_phrases(question: str) -> list[str]:
    """Names and numbers the question is about: capitalised runs ("World Cup", "Ali al-Daffayi") and figures."""
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


def _retrieval_confident(passages: list[Passage], best_cos: float, best_lex: float, question: str, s: Settings) -> bool:
    """Refuse on weak retrieval: nothing close in meaning and nothing sharing the question's words, or
    the names the question is about (people, places, events, figures) mostly absent from every passage."""
    top_dense = max(p.dense_score for p in passages)
    if not (max(top_dense, best_cos) >= s.min_dense_score or best_lex >= 0.6):
        return False
    phrases = key_phrases(question)
    if not phrases:
        return True
    hay = f" {_norm(_evidence_text(passages))} "
    found = sum(1 for ph in phrases if f" {_norm(ph)} " in hay)
    return found / len(phrases) >= MIN_KEY_PHRASE_COVERAGE


def _format_passages(passages: list[Passage]) -> str:
    out = []
    for p in passages:
        label = " — ".join(b for b in (p.title or "untitled", p.source or "unknown outlet", p.date or "date unknown"))
        out.append(PASSAGE_LINE.format(number=p.number, label=label, text=p.text))
    return "\n\n".join(out)


def _extractive(passages: list[Passage], index: dict[int, PassageIndex], qv: np.ndarray, question: str, focus: str = "") -> str:
    """No LLM: the best supporting sentences, verbatim, each with its passage marker.

    ``focus`` is the user's own words: for a rewritten follow-up ("Who is the harbour master there?"
    plus names carried over from the conversation) the sentence must match what was asked now.
    """
    focus = focus or question
    cands: list[tuple[float, int, str]] = []
    for n, idx in index.items():
        if not idx.sentences:
            continue
        sims = idx.vectors @ qv
        for i, sent in enumerate(idx.sentences):
            if len(content_words(sent)) < 3 or not re.search(r"[.!?…][\"”’)]*$", sent.rstrip()):
                continue  # fragments and headlines are not answers
            score = float(sims[i]) + 0.3 * lexical_support(question, sent)
            if focus != question:
                score += 0.3 * lexical_support(focus, sent)
            cands.append((score, n, sent))
    cands.sort(reverse=True)
    if not cands:
        return ""
    top = cands[0][0]
    picked: list[tuple[int, str]] = []
    seen_text: set[str] = set()
    for sc, n, sent in cands:
        if sc < top * 0.8 or len(picked) >= 3:
            break
        key = " ".join(sent.lower().split())
        if key in seen_text:
            continue
        seen_text.add(key)
        picked.append((n, sent))
    # Without a model to judge, only answer when the chosen sentences cover most of what was asked.
    coverage = lexical_support(question, _evidence_text([idx.passage for idx in index.values()]), ignore=ANSWER_TYPE_WORDS)
    best_cos = max(float(np.max(idx.vectors @ qv)) for idx in index.values() if idx.sentences)
    if coverage < required_coverage(question, EXTRACTIVE_MIN_COVERAGE) and best_cos < EXTRACTIVE_MIN_COSINE:
        return ""
    parts = []
    for n, sent in picked:
        parts.append(f"{sent.rstrip()} [{n}]")
    return " ".join(parts)


def _evidence_text(passages: list[Passage]) -> str:
    """Passages with their title, outlet and date spelled out: what a question's terms may be found in."""
    return " ".join(p.evidence() for p in passages)


def _refusal_text(question: str, applied: dict[str, Any], engine: Engine, passages: list[Passage]) -> str:
    scope = []
    if applied.get("sources"):
        scope.append("outlets " + ", ".join(applied["sources"]))
    if applied.get("date_from") or applied.get("date_to"):
        scope.append(f"dates {applied.get('date_from') or '…'} to {applied.get('date_to') or '…'}")
    try:
        n_chunks = engine.store.count()
    except Exception:  # noqa: BLE001 - the refusal must not fail on a stats call
        n_chunks = -1
    where = f" in {n_chunks:,} indexed passages" if n_chunks >= 0 else ""
    lines = [f"{REFUSAL_SENTENCE} I searched for “{question}”{where}" + (f" ({'; '.join(scope)})" if scope else "") + "."]
    if passages:
        near = "; ".join(dict.fromkeys(f"{p.title or 'untitled'} ({p.source or 'unknown outlet'}, {p.date or 'date unknown'})" for p in passages[:3]))
        lines.append(f"The closest articles were: {near}, but they do not answer it.")
    elif n_chunks == 0:
        lines.append("The archive is empty: add articles with `byline ingest PATH` or the Archive tab.")
    return " ".join(lines)
