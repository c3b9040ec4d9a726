"""Sentence-aware, token-sized chunks with exact character offsets into the article text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llama_index.core.node_parser import SentenceSplitter

from ingest.article import Article


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
        cursor = 0
        for piece in pieces:
            start, end = _locate(text, piece, cursor)
            if end <= start:
                continue
            chunks.append(Chunk(article.id, len(chunks), start, end, text[start:end]))
            # Overlapping chunks start before the previous end; only require forward progress.
            cursor = start + 1
        return chunks


def _locate(text: str, piece: str, cursor: int) -> tuple[int, int]:
    """Find ``piece`` in ``text`` at or after ``cursor``; tolerate whitespace the splitter changed."""
    piece = piece.strip()
    i = text.find(piece, cursor)
    if i < 0:
        i = text.find(piece)
    if i >= 0:
        return i, i + len(piece)
    # Whitespace differs: anchor on the first and last words.
    words = piece.split()
    head = " ".join(words[:6])
    tail = " ".join(words[-6:])
    s = _find_ws(text, head, cursor)
    if s < 0:
        s = _find_ws(text, head, 0)
    if s < 0:
        return cursor, cursor
    e = _find_ws(text, tail, s)
    if e < 0:
        return s, min(len(text), s + len(piece))
    return s, _end_ws(text, tail, e)


def _find_ws(text: str, needle: str, start: int) -> int:
    import re

    pat = r"\s+".join(re.escape(w) for w in needle.split())
    m = re.compile(pat).search(text, start)
    return m.start() if m else -1


def _end_ws(text: str, needle: str, start: int) -> int:
    import re

    pat = r"\s+".join(re.escape(w) for w in needle.split())
    m = re.compile(pat).search(text, start)
    return m.end() if m else start
