"""Text normalisation shared by the question reader and the answer metrics of ``byline eval``."""

from __future__ import annotations

import re
import unicodedata

from rag.prompts import REFUSAL_MARKERS

REFUSAL_GOLD = "insufficient information"

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def squash(text: str) -> str:
    """All whitespace removed (the authors' fact matching)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text or ""))


def normalize_answer(text: str) -> str:
    """Lower case, unified quotes, punctuation to spaces, no articles, single spaces."""
    t = unicodedata.normalize("NFKC", text or "").translate(_QUOTES).lower()
    t = re.sub(r"\[\d+\]", " ", t)  # citation markers
    t = re.sub(r"'s\b", "", t)
    t = re.sub(r"[^\w\s]", " ", t)
    t = re.sub(r"\b(a|an|the)\b", " ", t)
    return " ".join(t.split())


def is_refusal_gold(gold: str) -> bool:
    return normalize_answer(gold).startswith(REFUSAL_GOLD)


def looks_like_refusal(text: str) -> bool:
    """Does the answer's first sentence decline (so quoted article text deeper in an answer is not mistaken for one)?"""
    t = " ".join((text or "").lower().translate(_QUOTES).split())
    first = re.split(r"(?<=[.!?])\s", t, maxsplit=1)[0]
    return any(p in first for p in REFUSAL_MARKERS)
