"""Citation markers: parse them out of generated text, check each sentence against what it cites, renumber.

Nothing the model says about its sources is trusted: a marker that points outside the passages is
dropped, a sentence is kept only when the passage it cites (or, failing that, another shown passage)
supports it, and the surviving citations are renumbered 1..n in order of appearance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rag.prompts import REFUSAL_MARKERS
from rag.text import content_words, lexical_support, numbers, split_sentences
from rag.types import Citation, Passage

MARKER = re.compile(r"\s*\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\]")
# Generators also write "[Passage 2]", "(2)", "【2】": normalise what is unambiguous.
_ALT_MARKERS = [(re.compile(r"\[(?:passage|source|doc)\s*(\d{1,3})\]", re.I), r"[\1]"), (re.compile(r"【(\d{1,3})】"), r"[\1]")]


def normalise_markers(text: str) -> str:
    for pat, rep in _ALT_MARKERS:
        text = pat.sub(rep, text)
    return text


def parse_markers(sentence: str) -> list[int]:
    """All passage numbers cited in a sentence, in order, without repeats ('[1, 3]', '[2][4]', '[1-3]')."""
    nums: list[int] = []
    for m in MARKER.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
                a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
                rng = range(a, b + 1) if 0 < b - a < 10 else [a, b]
                nums.extend(rng)
            elif part.strip().isdigit():
                nums.append(int(part))
    seen: set[int] = set()
    return [n for n in nums if not (n in seen or seen.add(n))]


def strip_markers(sentence: str) -> str:
    s = MARKER.sub("", sentence)
    s = re.sub(r"\s+([.,;:!?])", r"\1", s)
    return " ".join(s.split())


def is_refusal(sentence: str) -> bool:
    s = sentence.lower()
    return any(m in s for m in REFUSAL_MARKERS)


@dataclass
class PassageIndex:
    """A passage's sentences with their embeddings, for support scoring."""

    passage: Passage
    sentences: list[str]
    vectors: np.ndarray  # (n_sentences, dim), normalised


@dataclass
class CheckedSentence:
    text: str  # without markers
    cited: list[int] = field(default_factory=list)  # passage numbers kept
    support: dict[int, float] = field(default_factory=dict)
    quote: dict[int, str] = field(default_factory=dict)
    status: str = "ok"  # ok | reassigned | added | joint (several passages together) | unsupported | refusal | connective


def support_score(claim: str, claim_vec: np.ndarray, idx: PassageIndex, given: frozenset[str] = frozenset()) -> tuple[float, str]:
    """How well one passage supports a claim (0-1), and the passage sentence that supports it best.

    A mix of meaning (best cosine against a passage sentence) and wording (share of the claim's
    content words found in the passage, its title, outlet and date); a number the passage does not
    contain halves the score, since invented figures are the commonest unsupported claim. ``given``
    are the question's own words: restating the question claims nothing, so only the claim's other
    words must be found (a claim that is all restatement scores 0 on wording).
    """
    if not idx.sentences:
        return 0.0, ""
    sims = idx.vectors @ claim_vec
    best = int(np.argmax(sims))
    # "The Verge reported on November 7 ..." is supported by the article's outlet and date, not only its text.
    evidence = idx.passage.evidence()
    score = 0.4 * max(0.0, float(sims[best])) + 0.6 * lexical_support(claim, evidence, ignore=given)
    if numbers(claim) - numbers(evidence):
        score *= 0.5
    return min(1.0, score), idx.sentences[best]


def closeness(text: str, vec: np.ndarray, idx: PassageIndex) -> float:
    """How close a passage's closest sentence is to a text (``vec``: its embedding): in meaning, plus 0.3 x the
    share of the text's words the sentence holds, as ``select_context`` weighs them (in meaning alone "closed"
    is near "reopened")."""
    return max((float(c) + 0.3 * lexical_support(text, s) for c, s in zip(idx.vectors @ vec, idx.sentences)), default=float("-inf"))


def build_index(passages: Sequence[Passage], embed) -> dict[int, PassageIndex]:
    """Split and embed every passage's sentences in one batch."""
    all_sents: list[tuple[int, str]] = []
    for p in passages:
        for s, e in split_sentences(p.full_text):
            all_sents.append((p.number, p.full_text[s:e]))
    vecs = np.asarray(embed([s for _, s in all_sents]), dtype=np.float32) if all_sents else np.zeros((0, 1), np.float32)
    out: dict[int, PassageIndex] = {}
    for p in passages:
        rows = [i for i, (n, _) in enumerate(all_sents) if n == p.number]
        out[p.number] = PassageIndex(p, [all_sents[i][1] for i in rows], vecs[rows] if rows else np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 1), np.float32))
    return out


def _has_word(text: str) -> bool:
    return re.search(r"[^\W_]", text) is not None


def check_sentences(text: str, index: dict[int, PassageIndex], embed, min_support: float,
                    question: str = "") -> tuple[list[CheckedSentence], list[str]]:
    """Split generated text into sentences and check each one's citations. Returns sentences and notes."""
    given = frozenset(content_words(question))
    text = normalise_markers(text.strip())
    # A marker followed by a capitalised word ends a sentence even without punctuation ("Headline [1] The ...").
    raw: list[str] = []
    for block in re.split(r"(?<=\])\s+(?=[A-Z\"“])", text):
        raw.extend(block[a:b] for a, b in split_sentences(block))
    # A marker split off on its own ("... Iran. [2]", or after stray punctuation: "... Iran. ,,, [2][3]") belongs
    # to the sentence before it, and is checked with it; a piece without a word is no sentence.
    merged: list[str] = []
    for r in raw:
        if merged and not _has_word(strip_markers(r)) and parse_markers(r):
            merged[-1] = merged[-1] + " " + "".join(f"[{n}]" for n in parse_markers(r))
        else:
            merged.append(r)
    notes: list[str] = []
    claims = [(r, strip_markers(r)) for r in merged if _has_word(strip_markers(r))]
    vecs = np.asarray(embed([c for _, c in claims]), dtype=np.float32) if claims else np.zeros((0, 1))
    out: list[CheckedSentence] = []
    for (raw_s, clean), vec in zip(claims, vecs):
        cs = CheckedSentence(text=clean)
        if is_refusal(clean):
            cs.status = "refusal"
            out.append(cs)
            continue
        cited = marked = parse_markers(raw_s)
        invalid = [n for n in cited if n not in index]
        if invalid:
            notes.append(f"dropped citation marker(s) {', '.join(f'[{n}]' for n in invalid)} that point at no passage")
        cited = [n for n in cited if n in index]
        if len(content_words(clean)) < 2:
            # "Yes." / "No." carry no checkable claim of their own; keep them with their valid markers.
            cs.status = "connective"
            cs.cited = cited
            out.append(cs)
            continue
        combo, found = clause_support(clean, index, embed, min_support, given)
        if len(combo) >= 2:  # each clause checked on its own: stricter and more precise than the whole
            cs.cited = combo
            for n in combo:
                cs.support[n], cs.quote[n] = found[n]
            cs.status = "joint"
            if set(combo) != set(cited):
                notes.append(f"citations for “{_short(clean)}” set to the passages that support each part")
            out.append(cs)
            continue
        scores = {n: support_score(clean, vec, index[n], given) for n in index}
        for n in cited:
            s, q = scores[n]
            if s >= min_support:
                cs.cited.append(n)
                cs.support[n], cs.quote[n] = s, q
        if not cs.cited:
            best_n = max(scores, key=lambda n: scores[n][0]) if scores else None
            if best_n is not None and scores[best_n][0] >= min_support:
                cs.cited = [best_n]
                cs.support[best_n], cs.quote[best_n] = scores[best_n]
                cs.status = "reassigned" if marked else "added"
                notes.append(
                    f"citation for “{_short(clean)}” {'moved from ' + ', '.join(f'[{n}]' for n in cited) + ' ' if cited else 'added '}to the passage that supports it"
                )
            else:
                cs.status = "unsupported"
                notes.append(f"removed a sentence no passage supports: “{_short(clean)}”")
        out.append(cs)
    return out, notes


_CLAUSE = re.compile(r",\s+(?:and|but|while|whereas)\s+|;\s+|\s+(?:while|whereas)\s+", re.I)


def clause_support(claim: str, index: dict[int, PassageIndex], embed, min_support: float,
                   given: frozenset[str] = frozenset()) -> tuple[list[int], dict[int, tuple[float, str]]]:
    """A compound sentence ("X closed the port, while Y held its rate") is supported when each clause is
    supported by some passage on its own; returns the passages, in clause order, or [] when any clause fails."""
    clauses = [c for c in _CLAUSE.split(claim) if len(content_words(c)) >= 3]
    if len(clauses) < 2:
        return [], {}
    vecs = np.asarray(embed(clauses), dtype=np.float32)
    cited: list[int] = []
    found: dict[int, tuple[float, str]] = {}
    for clause, vec in zip(clauses, vecs):
        scores = {n: support_score(clause, vec, idx, given) for n, idx in index.items()}
        best = max(scores, key=lambda n: scores[n][0])
        if scores[best][0] < min_support:
            return [], {}
        if best not in cited:
            cited.append(best)
            found[best] = scores[best]
    return cited, found


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def render(checked: list[CheckedSentence], index: dict[int, PassageIndex], question_quotes: dict[int, str],
           yes_no: bool = False) -> tuple[str, list[Citation]]:
    """Final text with markers renumbered 1..n by first appearance, and the matching citations.

    A bare "Yes."/"No." is an answer only to a yes/no question and only with a valid citation;
    the cited passages' sentences closest to the question are then quoted as the evidence.
    """
    kept = [c for c in checked if c.status in ("ok", "reassigned", "added", "joint", "connective")]
    if not any(c.status != "connective" for c in kept):
        if not (yes_no and any(c.cited for c in kept)):
            return "", []
    order: list[int] = []
    for c in kept:
        for n in c.cited:
            if n not in order:
                order.append(n)
    renum = {old: i + 1 for i, old in enumerate(order)}
    parts = []
    for c in kept:
        body = c.text.rstrip()
        marks = "".join(f"[{renum[n]}]" for n in c.cited)
        if marks:
            body = f"{body} {marks}"
        parts.append(body)
    citations: list[Citation] = []
    for old in order:
        p = index[old].passage
        quotes = [c.quote[old] for c in kept if old in c.quote]
        support = max([c.support[old] for c in kept if old in c.support] or [0.0])
        if not quotes:
            quotes = [question_quotes.get(old) or (index[old].sentences[0] if index[old].sentences else p.text)]
        uniq = list(dict.fromkeys(quotes))
        citations.append(Citation(number=renum[old], article_id=p.article_id, title=p.title, source=p.source, date=p.date, url=p.url,
                                  quote=" … ".join(uniq), chunk_id=p.chunk_id, score=round(support, 3), passage=p.full_text,
                                  also_published=p.also_published))
    return " ".join(parts), citations
