"""Answers written in code around what code can know and what a short model reply says.

A 1.5B model on two cores is slow at writing and unreliable at quoting, but quick and fair at one-word
judgements. So, for the kinds of question ``rag.planner`` recognises:

- yes/no and either/or: the model replies with one word; the answer is that verdict, then what each
  article relied on says, quoted word for word and cited;
- "which company / who": the model replies with a name, kept only when the passages contain it, then
  the sentences that name it, quoted and cited;
- "which outlet reported" and "when was it reported": read from the metadata of the passages that
  support the claim (no model);
- "which came first, X or Y": the dates of the best article for X and for Y, compared (no model);
  "did A report it before B?": the dates of A's and B's best articles, compared (no model).

Every function returns a ``Verified`` (the same type the free-text path's verification returns), or
None when it cannot answer this way; the engine then falls back to free text.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from rag.citations import CheckedSentence, PassageIndex, closeness, is_refusal, render, strip_markers, support_score
from rag.dates import about_time
from rag.generators.base import GenerationInput, Generator
from rag.generators.chat import format_passages
from rag.planner import CHOICE, ENTITY, YES_NO, QuestionPlan, affirmative, dated_first, first_wants_later, outlet_clause, reports_named, stated_days
from rag.prompts import CHOICE_TASK, CLAIM_USER, ENTITY_TASK, SENTENCES_TASK, SHORT_SYSTEM, SHORT_USER, VERDICT_TASK
from rag.policy import evidence_text, required_coverage, topic
from rag.text import ANSWER_TYPE_WORDS, approx_tokens, content_words, lexical_support
from rag.types import Filters, Passage

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.pipeline import Context

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], "np.ndarray | list[list[float]]"]
Parts = Sequence[tuple[str, Sequence[int]]]

# Verdict kinds: the model's reply is a judgement, the quotes are the evidence.
SHORT_KINDS = (YES_NO, CHOICE, ENTITY)
VERDICT_NOTE = "the verdict is the language model's judgement of the quoted passages; the quotes are the articles' own words"
ENTITY_NOTE = "the name is the language model's reading of the passages; it is shown only because the quoted passages contain it"


def nice_date(iso: str) -> str:
    try:
        d = dt.date.fromisoformat(iso)
    except (TypeError, ValueError):
        return "date unknown"
    return f"{d.day} {d.strftime('%B')} {d.year}"


def _label(p: Passage) -> str:
    return f"{p.source or 'An article'} ({nice_date(p.date)})"


# --- the short prompt ---------------------------------------------------------------------------
def short_prompt(plan: QuestionPlan, passages: Sequence[Passage], question: str) -> tuple[str, str, int]:
    """(system, user, max reply tokens) for a short reply of the plan's kind; the passages' dates only for a
    question about time (``about_time``)."""
    if plan.kind == YES_NO:
        task, n = VERDICT_TASK, 3
    elif plan.kind == CHOICE:
        task, n = CHOICE_TASK.format(options=" or ".join(plan.options)), 8
    else:
        task, n = ENTITY_TASK, 16
    return SHORT_SYSTEM, SHORT_USER.format(passages=format_passages(passages, about_time(question)), question=question, task=task), n


def sentences_prompt(question: str, context: "Context") -> tuple[str, str]:
    """(system, user) asking for cited sentences over the short reply's passages: the short prompt up to its
    task line, so only the new task is processed before the first word (llama.cpp reuses the cached prefix)."""
    return SHORT_SYSTEM, SHORT_USER.format(passages=format_passages(context.passages, about_time(question)), question=question, task=SENTENCES_TASK)


def parse_short(plan: QuestionPlan, reply: str) -> str | None:
    """The verdict, option or name in a short reply; None when the reply gives none (or declines)."""
    text = strip_markers(reply or "").strip().split("\n")[0].strip(" .\"'“”*")
    if not text or is_refusal(text) or re.match(r"(unknown|none|n/?a|not (stated|given|mentioned))\b", text, re.I):
        return None
    if plan.kind == YES_NO:
        m = re.match(r"(yes|no)\b", text, re.I)
        return m.group(1).lower() if m else None
    if plan.kind == CHOICE:
        low = text.lower()
        # The option named first; "inconsistent" must not read as "consistent".
        hits = [(m.start(), o) for o in plan.options for m in re.finditer(rf"(?<![\w]){re.escape(o.lower())}(?![\w])", low)]
        return min(hits)[1] if hits else None
    text = re.sub(r"^(the\s+answer\s+is|answer)\s*[:\-]?\s*", "", text, flags=re.I).strip(" .")
    if len(text.split()) > 8:  # a sentence, not a name
        return None
    if not content_words(text):  # "A.a", "The", "He": no word of a name (a single letter would match any passage)
        return None
    return text or None


def short_reply(plan: QuestionPlan, question: str, context: "Context", parts: Parts, gen: Generator,
                yes_threshold: float) -> tuple[str | None, int]:
    """The model's verdict, option or name over the context, and about how many prompt tokens that took.

    "Does A say X, while B says Y?": each claim is checked against its own outlet's passage and all must
    hold (one short prompt each): a 1.5B model judging the whole question at once says "Yes" too readily.
    A verdict is "yes" when the model's probability of "Yes" reaches ``yes_threshold`` (see ``Settings``).
    A question about a negative ("Was there inconsistency …?") is put to the model in the affirmative and
    its verdict reversed: asked either way, the model said "Yes", so the two forms contradicted each other.
    """
    per_claim = claims(question, parts, context.index) if plan.kind == YES_NO else []
    if per_claim:
        dated = about_time(question)
        prompts = [CLAIM_USER.format(passage=format_passages([context.index[n].passage], dated), claim=claim) for claim, n in per_claim]
        votes = [_verdict(plan, gen, user, yes_threshold) for user in prompts]
        value = None if None in votes else ("yes" if all(v == "yes" for v in votes) else "no")
        return value, sum(approx_tokens(SHORT_SYSTEM + user) for user in prompts)
    asked = affirmative(question, [label for label, _ in parts]) if plan.kind == YES_NO else None
    # "asked" differs from the question in one word, never a word about time: the same passages, so the
    # sentences that may follow (sentences_prompt) find this prompt's passages in the model's cache.
    system, user, max_tokens = short_prompt(plan, context.passages, asked or question)
    if plan.kind == YES_NO:
        verdict = _verdict(plan, gen, user, yes_threshold)
        if asked and verdict:  # the model was asked the affirmative question: its answer is the opposite
            verdict = "no" if verdict == "yes" else "yes"
        return verdict, approx_tokens(system + user)
    return parse_short(plan, gen.complete(system, user, max_tokens) or ""), approx_tokens(system + user)


def _verdict(plan: QuestionPlan, gen: Generator, user: str, yes_threshold: float) -> str | None:
    p = gen.yes_probability(SHORT_SYSTEM, user)
    if p is None:  # no log-probabilities: read the reply
        return parse_short(plan, gen.complete(SHORT_SYSTEM, user, 3) or "")
    logger.debug("P(yes) %.3f", p)
    return "yes" if p >= yes_threshold else "no"


# --- picking what to quote ----------------------------------------------------------------------
def _best_sentence(idx: PassageIndex, vec: np.ndarray, must: str = "") -> str:
    order = np.argsort(-(idx.vectors @ vec)) if len(idx.sentences) else []
    if must:
        for i in order:
            if mentions(idx.sentences[int(i)], must):
                return idx.sentences[int(i)]
    return idx.sentences[int(order[0])] if len(order) else idx.passage.text


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower().replace("’", "'")).split())


def mentions(text: str, name: str) -> bool:
    """Does the text name it: the whole name, or every content word of it?"""
    n = _norm(name)
    if n and f" {n} " in f" {_norm(text)} ":
        return True
    words = content_words(name)
    return bool(words) and set(words) <= set(content_words(text))


def _quote(sentence: str) -> str:
    s = sentence.strip()
    return s if s[:1] in "“\"‘'" else f"“{s}”"


def _statement(p: Passage, sentence: str, support: float = 1.0) -> CheckedSentence:
    return CheckedSentence(text=f"{_label(p)}: {_quote(sentence)}", cited=[p.number], support={p.number: support},
                           quote={p.number: sentence}, status="ok")


def _quoted(numbers: Sequence[int], index: Mapping[int, PassageIndex], vectors: Mapping[int, np.ndarray], must: str = "") -> list[CheckedSentence]:
    out = []
    for n in numbers:
        idx = index[n]
        if idx.sentences:
            out.append(_statement(idx.passage, _best_sentence(idx, vectors[n], must)))
    return out


def _evidence_numbers(inp: GenerationInput, parts: Parts, limit: int = 3, want: Callable[[int], bool] = lambda n: True,
                      closest: Embed | None = None) -> list[int]:
    """The passages an answer quotes, from distinct articles: for each outlet the question names, as many of its
    articles as the question names reports of it (its own search's passages first); then the best of the rest,
    up to the reports the question is about (``limit`` when it names no outlet).

    ``closest``: for an outlet named once, its passage closest, in meaning and words, to what the question says
    it reported ("Does The Verge say that X, while The Age …": "X") comes first instead."""
    chosen: list[int] = []
    articles: set[str] = set()

    def take(n: int) -> bool:
        p = inp.index[n].passage
        if n in chosen or p.article_id in articles or not want(n) or not inp.index[n].sentences:
            return False
        chosen.append(n)
        articles.add(p.article_id)
        return True

    reports = reports_named(inp.question, [label for label, _ in parts])
    for label, numbers in parts:
        # Measured: for an outlet named twice, its articles in retrieval order beat the one closest to each naming.
        own = [n for n in numbers if n in inp.index] + [p.number for p in inp.passages if p.source == label]
        claim = outlet_claim(inp.question, label) if closest is not None and reports[label] == 1 else ""
        if claim and len(candidates := [n for n in dict.fromkeys(own) if inp.index[n].sentences]) > 1:
            v = np.asarray(closest([claim]), dtype=np.float32)[0]
            own = sorted(candidates, key=lambda n: closeness(claim, v, inp.index[n]), reverse=True)
        # A report the question dates ("the TechCrunch report … published on October 7, 2023") is the article of that day.
        if days := stated_days(inp.question, label, [lb for lb, _ in parts]):
            own = dated_first(own, lambda n: inp.index[n].passage.date, days)
        got = 0
        for n in own:
            if got >= reports[label]:
                break
            got += take(n)
    target = max(sum(reports.values()), len(parts)) if parts else limit
    for p in inp.passages:  # the best of the rest (all of them when the question names no outlet)
        if len(chosen) >= target:
            break
        take(p.number)
    return chosen[: max(limit, len(parts))]


def _part_vectors(inp: GenerationInput, parts: Parts, numbers: Sequence[int], embed: Embed) -> dict[int, np.ndarray]:
    """For each quoted passage, what its quote should match: the clause of the question about its outlet
    ("... while 'TechCrunch' implies X" -> "TechCrunch implies X"), else the whole question."""
    clauses = {}
    for label, nums in parts:
        for n in nums:
            if n in numbers and n not in clauses:
                clauses[n] = outlet_clause(inp.question, label)
    texts = [c for c in clauses.values() if c]
    vecs = dict(zip(texts, np.asarray(embed(texts), dtype=np.float32))) if texts else {}
    return {n: vecs.get(clauses.get(n, ""), inp.query_vector) for n in numbers}


# --- the answers --------------------------------------------------------------------------------
def compose_verdict(plan: QuestionPlan, value: str, inp: GenerationInput, parts: Parts, embed: Embed) -> tuple[str, list, list[str]]:
    """'Yes.' / 'Consistent.' then, for each article the verdict rests on, its closest sentence quoted and cited."""
    # Measured (tests/bench/bench_quotes.py): the passage closest to the outlet's claim is more often the
    # evidence article than the first found; not so for names, whose questions describe an article before naming its outlet.
    numbers = _evidence_numbers(inp, parts, closest=embed)
    quotes = _quoted(numbers, inp.index, _part_vectors(inp, parts, numbers, embed))
    head = CheckedSentence(text=value.capitalize(), cited=[], status="connective")
    text, citations = render([head, *quotes], dict(inp.index), {}, yes_no=True)
    return _end_first(text, value), citations, [VERDICT_NOTE]


def compose_entity(name: str, inp: GenerationInput, parts: Parts, embed: Embed, settings: Settings) -> tuple[str, list, list[str]] | None:
    """The name, then the passages that contain it, quoted where they name it; None when no passage contains
    it, or when the passages that do are not the ones asked about: when the question names outlets, none
    of theirs; when it names none, passages that do not cover the question (a name from another story)."""
    holders = [n for n, idx in inp.index.items() if mentions(idx.passage.evidence(), name)]
    named = {n for _, numbers in parts for n in numbers}
    if not holders or (named and not named & set(holders)):
        return None
    if not named:
        about = lexical_support(topic(inp.question, inp.date_phrases), f"{name} {evidence_text([inp.index[n].passage for n in holders])}",
                                ignore=ANSWER_TYPE_WORDS)
        if about < required_coverage(inp.question, settings.min_answer_coverage, settings):
            return None
    numbers = _evidence_numbers(inp, parts, want=lambda n: n in holders)
    quotes = _quoted(numbers, inp.index, _part_vectors(inp, parts, numbers, embed), must=name)
    head = CheckedSentence(text=name, cited=[], status="connective")
    text, citations = render([head, *quotes], dict(inp.index), {}, yes_no=True)
    return _end_first(text, name), citations, [ENTITY_NOTE]


def _end_first(text: str, first: str) -> str:
    """render() joins sentences with spaces: end the verdict or name with a full stop."""
    head = first.capitalize() if first.islower() else first
    rest = text[len(head):] if text.startswith(head) else text
    return f"{head}.{rest}" if not head.endswith(".") else f"{head}{rest}"


def _supporting(claim: str, inp: GenerationInput, embed: Embed, min_support: float) -> list[tuple[float, int, str]]:
    vec = np.asarray(embed([claim]), dtype=np.float32)[0]
    scored = []
    for n, idx in inp.index.items():
        score, sentence = support_score(claim, vec, idx)
        if score >= min_support:
            scored.append((score, n, sentence))
    return sorted(scored, key=lambda t: (-t[0], t[1]))


def compose_reported(topic: str, inp: GenerationInput, embed: Embed, min_support: float, published: bool) -> tuple[str, list, list[str]] | None:
    """Which outlets reported it (or when it was first reported), from the metadata of the passages that support it."""
    found = _supporting(topic, inp, embed, min_support)
    by_outlet: dict[str, tuple[float, int, str]] = {}
    for score, n, sentence in found:
        by_outlet.setdefault(inp.index[n].passage.source or "an unnamed outlet", (score, n, sentence))
    if not by_outlet:
        return None
    picks = list(by_outlet.values())[:3]
    if published:
        picks.sort(key=lambda t: inp.index[t[1]].passage.date or "9999")
    sentences = []
    for i, (score, n, sentence) in enumerate(picks):
        p = inp.index[n].passage
        outlet, day = p.source or "an unnamed outlet", nice_date(p.date)
        dated, by = day != "date unknown", f"{outlet[:1].upper()}{outlet[1:]} reported it"  # the sentence's first word
        if published and i == 0:
            lead = f"It was reported on {day} by {outlet}" if dated else f"{by}, but the archive holds no publication date for that article"
        elif published:
            lead = f"{by} {'on ' + day if dated else '(its article is undated)'}"
        else:
            lead = f"{by} ({day if dated else 'undated'})"
        sentences.append(CheckedSentence(text=f"{lead}: {_quote(sentence)}", cited=[n], support={n: score}, quote={n: sentence}, status="ok"))
    text, citations = render(sentences, dict(inp.index), {})
    return text, citations, []


def compose_digest(inp: GenerationInput, filters: "Filters", limit: int, topic: str = "",
                   relevant: Callable[[Passage], bool] = lambda p: True) -> tuple[str, list, list[str]] | None:
    """Up to ``limit`` of the articles found for a question that names only a time or an outlet (or asks for the
    articles on a ``topic``, then only the ``relevant`` ones), newest first: each one's headline, outlet and
    date (its metadata, no model), cited with a sentence of it."""
    firsts: dict[str, Passage] = {}
    for p in inp.passages:
        if relevant(p):
            firsts.setdefault(p.article_id, p)
    items = sorted(list(firsts.values())[:limit], key=lambda p: p.date or "", reverse=True)
    if not items:
        return None
    head = "Articles in the archive" + (f" on “{topic}”" if topic else "")
    if filters.sources:
        head += " from " + ", ".join(filters.sources)
    if filters.date_from and filters.date_to:
        head += f" published {nice_date(filters.date_from)} to {nice_date(filters.date_to)}" if filters.date_from != filters.date_to \
            else f" published on {nice_date(filters.date_from)}"
    elif filters.date_from or filters.date_to:
        head += f" published {'since' if filters.date_from else 'until'} {nice_date(filters.date_from or filters.date_to)}"
    head += ", newest first"
    sentences = [CheckedSentence(text=f"“{p.title or 'Untitled'}” ({p.source or 'unknown outlet'}, {nice_date(p.date)})", cited=[p.number],
                                 support={p.number: 1.0}, quote={p.number: _best_sentence(inp.index[p.number], inp.query_vector)}, status="ok")
                 for p in items]
    _, citations = render(sentences, dict(inp.index), {})
    # One line each; render numbered them 1..n in this order.
    text = f"{head}:\n" + "\n".join(f"- {c.text} [{i}]" for i, c in enumerate(sentences, 1))
    what = "the articles found on that topic" if topic else "the articles found for the outlet or dates the question names"
    return text, citations, [f"a list of {what}: their own headlines, outlets and dates"]


def compose_first(plan: QuestionPlan, inp: GenerationInput, parts: Parts, embed: Embed, min_support: float) -> tuple[str, list, list[str]] | None:
    """Which of two reports came first: the best-supported passage for each, compared by date."""
    picked: list[tuple[str, int, str, float]] = []
    for option, numbers in parts:
        vec = np.asarray(embed([option]), dtype=np.float32)[0]
        best = None
        for n in numbers:
            score, sentence = support_score(option, vec, inp.index[n])
            if score >= min_support and inp.index[n].passage.date and (best is None or score > best[3]):
                best = (option, n, sentence, score)
        if best is None:
            return None
        picked.append(best)
    if len(picked) != 2 or picked[0][1] == picked[1][1]:
        return None
    (oa, na, sa, ca), (ob, nb, sb, cb) = sorted(picked, key=lambda t: inp.index[t[1]].passage.date)
    pa, pb = inp.index[na].passage, inp.index[nb].passage
    days = (dt.date.fromisoformat(pb.date) - dt.date.fromisoformat(pa.date)).days
    if days == 0:
        head = f"Both were reported on the same day, {nice_date(pa.date)}"
    elif first_wants_later(inp.question):
        head = f"“{ob}” came later, {days} day{'s' if days != 1 else ''} after “{oa}”"
    else:
        head = f"“{oa}” came first, {days} day{'s' if days != 1 else ''} before “{ob}”"
    sentences = [CheckedSentence(text=head, cited=[na, nb], support={na: ca, nb: cb}, quote={na: sa, nb: sb}, status="ok"),
                 _statement(pa, sa, ca), _statement(pb, sb, cb)]
    text, citations = render(sentences, dict(inp.index), {})
    return text, citations, ["the order comes from the articles' publication dates"]


_RELATION = re.compile(r"\b(chang\w*|consisten\w*|inconsisten\w*|differ\w*|same|similar\w*|agree\w*|disagree\w*|both|before|after|earlier|later)\b", re.I)
_LEAD = re.compile(r"^.*?\b(?:suggest|indicate|impl(?:y|ies)|report|say|state|claim|mention|discuss|highlight|show|note|describe|present|portray|attribute|"
                   r"criticize|emphasize|argue|detail|provide|cover|question|compare)\w*\s+(?:that\s+)?", re.I)


def outlet_claim(question: str, outlet: str) -> str:
    """What the question says the outlet reported ("Does A say that X, while …" -> "X"); '' when its clause
    holds fewer than three content words."""
    claim = _LEAD.sub("", outlet_clause(question, outlet), count=1).strip(" ?,'\"")
    return claim if len(content_words(claim)) >= 3 else ""


def claims(question: str, parts: Parts, index: Mapping[int, PassageIndex]) -> list[tuple[str, int]]:
    """Each outlet's claim in a question of the form "Does A say X, while B says Y?", with that outlet's best
    passage; [] when the question asks about a relation between reports (change, agreement, order)."""
    if _RELATION.search(question):
        return []
    out = []
    for label, numbers in parts:
        claim = outlet_claim(question, label)
        nums = [n for n in numbers if n in index]
        if not claim or not nums:
            return []
        out.append((claim, nums[0]))
    return out if len(out) >= 2 else []


_ORDER_WORD = re.compile(r"\b(before|after|earlier than|later than|prior to)\b", re.I)
_REPORT_VERB = re.compile(r"\b(report\w*|mention\w*|discuss\w*|cover\w*|publish\w*|highlight\w*|wrote|write\w*|announc\w*|said|say\w*)\b", re.I)


def order_question(question: str, parts: Parts) -> tuple[str, str, str] | None:
    """'Did A report X before B reported Y?': (outlet A, 'before'|'after', outlet B), or None when the
    question does not ask for the order of two outlets' reports."""
    if len(parts) != 2 or not re.match(r"\s*(did|was|were|has|had|is)\b", question, re.I):
        return None
    if re.search(r"\b(while|both|fail\w*|not|never|same manner|consisten\w*|inconsisten\w*)\b", question, re.I):
        return None
    starts = []
    for label, _ in parts:
        clause = outlet_clause(question, label)
        if not clause:
            return None
        starts.append((question.find(clause), label))
    (pa, a), (pb, b) = sorted(starts)
    m = _ORDER_WORD.search(question, pa, pb)
    if not m or not _REPORT_VERB.search(question):
        return None
    return a, ("before" if m.group(1).lower() in ("before", "earlier than", "prior to") else "after"), b


def compose_order(plan: QuestionPlan, inp: GenerationInput, parts: Parts, embed: Embed) -> tuple[str, list, list[str]] | None:
    """Yes or no from the two outlets' article dates (their best passage for the question), then the quotes."""
    order = order_question(inp.question, parts)
    if order is None:
        return None
    a, relation, b = order
    best = {label: next((n for n in nums if n in inp.index and inp.index[n].passage.date), None) for label, nums in parts}
    na, nb = best.get(a), best.get(b)
    if na is None or nb is None or na == nb:
        return None
    pa, pb = inp.index[na].passage, inp.index[nb].passage
    days = (dt.date.fromisoformat(pb.date) - dt.date.fromisoformat(pa.date)).days
    if days == 0:
        return None  # the same day: the dates cannot tell which came first
    verdict = (days > 0) == (relation == "before")
    when = f"{abs(days)} day{'s' if abs(days) != 1 else ''} {'before' if days > 0 else 'after'}"
    vectors = _part_vectors(inp, parts, [na, nb], embed)
    head = CheckedSentence(text=f"{'Yes' if verdict else 'No'}: {pa.source} published it on {nice_date(pa.date)}, {when} {pb.source} "
                                f"({nice_date(pb.date)}).", cited=[na, nb], status="connective")
    quotes = _quoted([na, nb], inp.index, vectors)
    text, citations = render([head, *quotes], dict(inp.index), {}, yes_no=True)
    return text, citations, ["the order comes from the articles' publication dates"]
