"""The prompt text the chat generators send (rag.generators.chat)."""

from __future__ import annotations

from rag.generators.chat import format_passages
from rag.types import Passage


def _passage(n: int, article: str, title: str) -> Passage:
    return Passage(number=n, chunk_id=f"{article}:{n}", article_id=article, title=title, source="Harbor Ledger", date="2024-02-11",
                   url="", text=f"Sentence {n}.", full_text=f"Sentence {n}.", start=0, end=12, score=1.0)


def test_a_second_passage_of_an_article_names_the_first_instead_of_repeating_its_label() -> None:
    passages = [_passage(1, "storm", "Storm Ingrid Shuts Port"), _passage(2, "storm", "Storm Ingrid Shuts Port"),
                _passage(3, "budget", "Riverton Budget"), _passage(4, "storm", "Storm Ingrid Shuts Port")]
    text = format_passages(passages)
    assert text.split("\n\n") == [
        "[1] (Storm Ingrid Shuts Port — Harbor Ledger — 2024-02-11)\nSentence 1.",
        "[2] (same article as [1])\nSentence 2.",
        "[3] (Riverton Budget — Harbor Ledger — 2024-02-11)\nSentence 3.",
        "[4] (same article as [1])\nSentence 4.",
    ]
    assert "2024-02-11" not in format_passages(passages, dated=False)
