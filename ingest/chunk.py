"""Sentence-aware, token-sized chunks with exact character offsets into the article text."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from llama_index.core.node_parser import SentenceSplitter

from ingest.article import Article

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    article_id: str
    index: int
    start: int
    end: int
    text: str  # == article.text[start:end]

    @property
    def id(self) -> str:
        return f"{self.article_id}-{self.index:05d}"


class Chunker:
    """Wraps llama-index's SentenceSplitter, counting tokens with the embedder's own tokenizer.

    The splitter may trim or re-join whitespace, so each chunk is located back in the article and
    its text is taken from the article itself: ``article.text[start:end] == chunk.text`` always.
    """

    def __init__(self, chunk_size: int, chunk_overlap: int, tokenize: Callable[[str], list]) -> None:
        self.splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenize, paragraph_separator="\n\n")

    def split(self, article: Article) -> list[Chunk]:
        text = article.text
        pieces = [p for p in self.splitter.split_text(text) if p.strip()]
        chunks: list[Chunk] = []
        prev_start, prev_end = -1, 0
        for piece in pieces:
            # Each chunk must start after the previous one and reach past its end; without the
            # second condition a repeated passage would be matched to an earlier copy, leaving
            # a stretch of the article in no chunk at all.
            start, end = _locate(text, piece, prev_start + 1, prev_end)
            if end <= start:
                continue
            chunks.append(Chunk(article.id, len(chunks), start, end, text[start:end]))
            prev_start, prev_end = start, max(prev_end, end)
        return chunks


def _locate(text: str, piece: str, lo: int, prev_end: int) -> tuple[int, int]:
    """Span of ``piece`` in ``text``, a slice of the article's own text.

    The true span starts after the previous chunk's start (``lo``) and no later than the previous
    chunk's end plus the whitespace there, and ends past that end. When the piece occurs several
    times in that window (repeated passages) the furthest one is taken, so the chunks keep pace
    with the splitter and leave no gap. The splitter may drop, add or change whitespace, so
    matching falls back to a pattern that ignores whitespace.
    """
    piece = piece.strip()
    gap_end = prev_end
    while gap_end < len(text) and text[gap_end].isspace():
        gap_end += 1
    best = _pick(_occurrences(text, piece, lo, exact=True), gap_end, prev_end)
    if best is None:
        best = _pick(_occurrences(text, piece, lo, exact=False), gap_end, prev_end)
    if best is not None:
        return best
    # Not found even ignoring whitespace (the splitter changed a character): anchor on the first
    # and last words.
    words = piece.split()
    head = " ".join(words[:6])
    tail = " ".join(words[-6:])
    s = _find_ws(text, head, lo)
    if s < 0:
        s = _find_ws(text, head, 0)
    if s < 0:
        # Should not happen; say so rather than lose text quietly.
        log.warning("chunk not found in article text, skipped: %r", piece[:80])
        return lo, lo
    e = _find_ws(text, tail, s)
    if e < 0:
        return s, min(len(text), s + len(piece))
    return s, _end_ws(text, tail, e)


def _pick(spans: Iterator[tuple[int, int]], gap_end: int, prev_end: int) -> tuple[int, int] | None:
    """Furthest span touching the previous chunk; else the first going past it; else the first."""
    first = past = touching = None
    for span in spans:
        first = first or span
        if span[0] > gap_end:
            if span[1] > prev_end:
                past = span
            break
        if span[1] > prev_end:
            touching = span
    return touching or past or first


def _occurrences(text: str, piece: str, lo: int, *, exact: bool) -> Iterator[tuple[int, int]]:
    """Every (possibly overlapping) match of ``piece`` at or after ``lo``, in order."""
    if exact:
        i = text.find(piece, lo)
        while i >= 0:
            yield i, i + len(piece)
            i = text.find(piece, i + 1)
        return
    chars = [c for c in piece if not c.isspace()]
    if not chars:
        return
    pat = re.compile(r"\s*".join(re.escape(c) for c in chars))
    pos = lo
    while True:
        m = pat.search(text, pos)
        if not m:
            return
        yield m.start(), m.end()
        pos = m.start() + 1


def _find_ws(text: str, needle: str, start: int) -> int:
    pat = r"\s+".join(re.escape(w) for w in needle.split())
    m = re.compile(pat).search(text, start)
    return m.start() if m else -1


def _end_ws(text: str, needle: str, start: int) -> int:
    pat = r"\s+".join(re.escape(w) for w in needle.split())
    m = re.compile(pat).search(text, start)
    return m.end() if m else start
