"""Chunker: token-sized, sentence-aware chunks whose offsets always point at their exact text."""

from __future__ import annotations

import random

import pytest

from ingest.article import Article
from ingest.chunk import Chunker


@pytest.fixture(scope="module")
def chunkers(embedder):
    return [Chunker(192, 32, embedder.tokenize), Chunker(48, 12, embedder.tokenize)]


def check(article: Article, chunks) -> None:
    assert chunks, "no chunks"
    covered = [False] * len(article.text)
    for i, c in enumerate(chunks):
        assert c.index == i and c.article_id == article.id
        assert c.id == f"{article.id}-{i:05d}"
        assert 0 <= c.start < c.end <= len(article.text)
        assert article.text[c.start : c.end] == c.text
        for k in range(c.start, c.end):
            covered[k] = True
    if len(chunks) > 1:
        assert all(b.start > a.start for a, b in zip(chunks, chunks[1:])), "chunks go forward"
    lost = [k for k, ch in enumerate(article.text) if not covered[k] and not ch.isspace()]
    assert not lost, f"text not in any chunk: {article.text[lost[0]:lost[0] + 40]!r}"


def test_short_article_is_one_chunk(chunkers):
    a = Article(text="A single short sentence.")
    for ch in chunkers:
        chunks = ch.split(a)
        assert len(chunks) == 1 and chunks[0].text == a.text and (chunks[0].start, chunks[0].end) == (0, len(a.text))


def test_long_article_offsets_and_token_budget(chunkers, embedder, corpus):
    text = (corpus / "saltmere-storm-port.md").read_text().split("---\n", 2)[2] * 3
    a = Article(text=text)
    big, small = chunkers
    check(a, big.split(a))
    chunks = small.split(a)
    check(a, chunks)
    assert len(chunks) > 5
    assert max(len(embedder.tokenize(c.text)) for c in chunks) <= 48 + 8  # the splitter's budget (+ joining slack)


@pytest.mark.parametrize(
    "text",
    [
        "Line one.\r\nLine two.\r\n\r\nNew paragraph here.\r\n" * 40,
        "Spaces   between\t\twords.   Odd\u00a0spacing  here.\n \n \nNext.  " * 40,
        "Zürich’s “café” — naïve résumé. 日本語のテキスト。絵文字 🙂🚢 are here. e\u0301 combining.\n\n" * 30,
        "NoSpacesAtAllJustOneVeryLongTokenSequence" * 120,
        "Dr. Smith met Mr. Jones at 3.5 p.m. in the U.S. office. " * 60,
        "\u200bzero\u200bwidth \u2028line sep\u2029para sep. " * 60,
    ],
    ids=["crlf", "whitespace", "unicode", "no-spaces", "abbrev", "separators"],
)
def test_offsets_exact_for_odd_text(chunkers, text):
    a = Article(text=text)
    for ch in chunkers:
        check(a, ch.split(a))


def test_random_texts_lose_nothing(chunkers):
    rnd = random.Random(1234)
    words = ["alpha", "béta", "Ünïcode", "日本語", "🙂", "U.S.", "$4.2m", "“quoted”", "—", "e\u0301", "x\u00a0y", "end.", "3.5%"]
    seps = [" ", " ", " ", ". ", ".\r\n\r\n", "\n\n\n", "  \t ", "\n"]
    for _ in range(15):
        text = "".join(rnd.choice(words) + rnd.choice(seps) for _ in range(rnd.randint(3, 700)))
        a = Article(text=text)
        for ch in chunkers:
            check(a, ch.split(a))


def test_empty_article_has_no_chunks(chunkers):
    for ch in chunkers:
        assert ch.split(Article(text="  \n ")) == []
