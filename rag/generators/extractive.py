"""No model: the passage sentences that best answer the question, verbatim, each with its marker."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator

import numpy as np

from rag.generators.base import GenerationInput
from rag.policy import evidence_text, required_coverage, topic
from rag.text import ANSWER_TYPE_WORDS, content_words, lexical_support

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry


class ExtractiveGenerator:
    name = "extractive"
    label = "Extractive (quotes sentences, no LLM, fastest)"
    cost = "instant; quotes the archive word for word and never says yes or no"
    uses_model = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Always available."""

    def prompt_tokens(self, inp: GenerationInput) -> int:
        return 0

    def complete(self, system: str, user: str, max_tokens: int) -> str | None:
        return None

    def yes_probability(self, system: str, user: str) -> float | None:
        return None

    def stream_reply(self, system: str, user: str, max_tokens: int) -> Iterator[str]:
        return iter(())

    def stream(self, inp: GenerationInput) -> Iterator[str]:
        yield self.answer(inp)

    def answer(self, inp: GenerationInput) -> str:
        """The best supporting sentences; '' when they do not cover what was asked.

        The focus is the user's own words: for a rewritten follow-up ("Who is the harbour master there?"
        plus names carried over from the conversation) the sentence must match what was asked now.
        """
        s = self.settings
        question = topic(inp.question, inp.date_phrases)
        focus = topic(inp.user_question, inp.date_phrases) or question
        qv = inp.query_vector
        cands: list[tuple[float, int, str]] = []
        for n, idx in inp.index.items():
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
        named = [nums for _, nums in inp.parts if nums]
        if named:
            # The question names outlets: quote what each of them says (its best sentence), not the best
            # sentences of any article.
            for nums in named:
                best = next(((n, sent) for sc, n, sent in cands if n in nums), None)
                if best and best not in picked:
                    picked.append(best)
            # And the best sentence of all, when it comes from one of those outlets (it often holds the answer).
            n, sent = cands[0][1], cands[0][2]
            if picked and (n, sent) not in picked and any(n in nums for nums in named):
                picked.insert(0, (n, sent))
        asked = set(content_words(question))
        covered: set[str] = set()
        for sc, n, sent in [] if picked else cands:
            if sc < top * 0.8 or len(picked) >= 3:
                break
            key = " ".join(sent.lower().split())
            words = asked & set(content_words(sent))
            # A further sentence must bring something the question asks that the ones before did not: a sentence
            # that only repeats the topic ("… lies with the jury") is a near miss, often from another article.
            if key in seen_text or (picked and not words - covered):
                continue
            seen_text.add(key)
            covered |= words
            picked.append((n, sent))
        # Without a model to judge, only answer when the chosen sentences cover most of what was asked.
        coverage = lexical_support(question, evidence_text([idx.passage for idx in inp.index.values()]), ignore=ANSWER_TYPE_WORDS)
        best_cos = max(float(np.max(idx.vectors @ qv)) for idx in inp.index.values() if idx.sentences)
        if coverage < required_coverage(question, s.extractive_min_coverage, s) and best_cos < s.extractive_min_cosine:
            return ""
        return " ".join(f"{sent.rstrip()} [{n}]" for n, sent in picked)
