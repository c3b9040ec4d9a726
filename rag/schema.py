"""The chunk-metadata contract shared by ingest (which writes it) and rag (which reads it).

Every chunk in Chroma carries one flat metadata dict (Chroma takes str/int/float/bool only, so an
unknown value is ``""`` or ``0``). ``ChunkMeta`` names its keys and types once: ingest builds one
and writes ``to_metadata()``; the store and the retriever read ``ChunkMeta.from_metadata(md)``,
which tolerates missing keys (archives written before a key existed, hand-written test rows).
The key constants are for Chroma ``where`` filters and llama-index ``MetadataFilter``s.

Also defined once here: the header line (title | outlet | date) put in front of a chunk's text
for embedding and for keyword search.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

# Metadata keys (the names of ChunkMeta's fields; kept as constants for filters).
ARTICLE_ID = "article_id"
CONTENT_HASH = "content_hash"
CHUNK_INDEX = "chunk_index"
N_CHUNKS = "n_chunks"
SOURCE = "source"
DATE_NUM = "date_num"
GROUP = "group"
MINHASH = "minhash"


@dataclass(frozen=True)
class ChunkMeta:
    """One chunk's metadata. Field order is the stored key order (kept so stored rows stay byte-identical)."""

    article_id: str = ""
    content_hash: str = ""  # of the article version the chunk belongs to
    chunk_index: int = -1  # -1: unknown
    n_chunks: int = -1  # chunks in that article version; -1: unknown
    start: int = 0  # character offsets of the chunk in the article's normalised text
    end: int = 0
    title: str = ""
    source: str = ""
    author: str = ""
    url: str = ""
    category: str = ""
    published_at: str = ""  # ISO datetime, or ""
    date: str = ""  # YYYY-MM-DD, or ""
    date_num: int = 0  # YYYYMMDD as an int so Chroma can range-filter; 0 = unknown date
    origin: str = ""  # the file or URL the article was read from
    ingested_at: str = ""  # ISO datetime (UTC) of the write
    group: str = ""  # syndicated copies of one story share it (ingest.syndication); "": written before grouping existed
    minhash: str = ""  # the article's near-duplicate signature, on its first chunk only; "" elsewhere or when too short

    def to_metadata(self) -> dict[str, Any]:
        """The flat dict stored in Chroma (before llama-index's node wrapping adds its own keys)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any] | None) -> "ChunkMeta":
        """Read a stored dict; missing (or None/empty) values take the field defaults, extra keys are ignored."""
        md = md or {}
        vals: dict[str, Any] = {}
        for name, kind in _FIELDS:
            v = md.get(name)
            if v is None or v == "":
                continue
            vals[name] = int(v) if kind is int else str(v)
        return cls(**vals)

    @property
    def header(self) -> str:
        return chunk_header(self.title, self.source, self.date)

    @property
    def group_key(self) -> str:
        """The article's syndication group; an article stored before grouping existed is a group of its own."""
        return self.group or self.article_id

    def headed(self, text: str) -> str:
        """``text`` with this chunk's header line in front: what is embedded and keyword-indexed."""
        return with_header(self.header, text)


_FIELDS: tuple[tuple[str, type], ...] = tuple((f.name, int if f.type in ("int", int) else str) for f in dataclasses.fields(ChunkMeta))
assert {ARTICLE_ID, CONTENT_HASH, CHUNK_INDEX, N_CHUNKS, SOURCE, DATE_NUM, GROUP, MINHASH} <= {name for name, _ in _FIELDS}


def chunk_header(title: str, source: str, date: str) -> str:
    """The line prefixed to every chunk for embedding and keyword search: ``title | outlet | YYYY-MM-DD``, blanks left out."""
    return " | ".join(b for b in (title, source, date) if b)


def with_header(header: str, text: str) -> str:
    return f"{header}\n{text}" if header else text


def where_articles(article_ids: list[str]) -> dict[str, Any]:
    """A Chroma ``where`` filter for the chunks of these articles (one id or several)."""
    if len(article_ids) == 1:
        return {ARTICLE_ID: article_ids[0]}
    return {ARTICLE_ID: {"$in": list(article_ids)}}
