"""Idempotent ingestion: read, chunk, embed, upsert; delete; all safe to interrupt and re-run.

How "nothing half-written" holds: chunk ids are deterministic (article id + index) and every
chunk records its article's content hash and chunk count. An article counts as indexed only when
all ``n_chunks`` chunks with its current hash are present and nothing else is stored under its id.
Anything less (a run killed mid-way, an edited article) is simply re-embedded and upserted over,
then stale chunks are deleted. Writers on one embedded folder are serialised by a file lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from ingest.article import Article
from ingest.chunk import Chunk, Chunker
from ingest.loaders import Item, load_sources
from rag.config import Settings
from rag.embed import SentenceTransformerEmbedding, get_embedder
from rag.errors import IngestError
from rag.store import Store

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int], None]  # (event, amount): "article" per article seen, "chunks" per chunk embedded
GROUP_CHUNKS = 512  # chunks embedded and written together: the embedder sorts them by length, so less padding
FLUSH_ARTICLES = 256  # articles whose stored state is looked up together


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    errors: list[IngestError] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    article_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.errors)} failed; "
                f"{self.chunks_embedded} chunks embedded in {self.seconds:.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "failed": len(self.errors),
                "chunks_embedded": self.chunks_embedded, "chunks_deleted": self.chunks_deleted, "seconds": round(self.seconds, 3),
                "errors": [{"source": e.source, "reason": e.reason} for e in self.errors]}


def chunk_metadata(article: Article, chunk: Chunk, n_chunks: int) -> dict[str, Any]:
    """Flat metadata for one chunk (Chroma takes str/int/float/bool only; unknown is '' or 0)."""
    d = article.published_at
    return {
        "article_id": article.id,
        "content_hash": article.content_hash,
        "chunk_index": chunk.index,
        "n_chunks": n_chunks,
        "start": chunk.start,
        "end": chunk.end,
        "title": article.title,
        "source": article.source,
        "author": article.author,
        "url": article.url,
        "category": article.category,
        "published_at": d.isoformat() if d else "",
        "date": article.date_iso,
        # YYYYMMDD as an int so Chroma can range-filter; 0 = unknown date.
        "date_num": int(d.strftime("%Y%m%d")) if d else 0,
        "origin": article.origin[:500],
    }


def embed_text(article: Article, chunk_text: str) -> str:
    """What is embedded and keyword-indexed: the title/outlet/date line, then the passage."""
    head = article.header()
    return f"{head}\n{chunk_text}" if head else chunk_text


class Ingestor:
    def __init__(self, settings: Settings, store: Store | None = None, embedder: SentenceTransformerEmbedding | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self.embedder = embedder or get_embedder(settings)
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap, self.embedder.tokenize)

    def ingest(self, sources: Iterable[str], progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest_items(load_sources(sources), progress)

    def ingest_items(self, items: Iterable[Item], progress: ProgressFn | None = None) -> IngestReport:
        report = IngestReport()
        t0 = time.perf_counter()
        group: dict[str, Article] = {}
        for item in items:
            if isinstance(item, IngestError):
                log.warning("skipped %s", item)
                report.errors.append(item)
                if progress:
                    progress("article", 1)
                continue
            if not item.text.strip():
                report.errors.append(IngestError(item.origin or item.id, "article has no text"))
                if progress:
                    progress("article", 1)
                continue
            group[item.id] = item  # same id twice in one run: the later copy wins
            if len(group) >= FLUSH_ARTICLES:
                self._flush(group, report, progress)
                group = {}
        self._flush(group, report, progress)
        report.seconds = time.perf_counter() - t0
        return report

    def _flush(self, group: dict[str, Article], report: IngestReport, progress: ProgressFn | None) -> None:
        if not group:
            return
        states = self.store.chunk_states(list(group))
        todo: list[tuple[Article, list[Chunk], list[str]]] = []  # (article, chunks, stale chunk ids)
        for aid, art in group.items():
            report.article_ids.append(aid)
            stored = states.get(aid, {})
            h = art.content_hash
            current = stored.get(h, [])
            old = [cid for hh, rows in stored.items() if hh != h for cid, _ in rows]
            if current and len(current) == current[0][1] and not old:
                report.unchanged += 1
                if progress:
                    progress("article", 1)
                continue
            chunks = self.chunker.split(art)
            if not chunks:
                report.errors.append(IngestError(art.origin or aid, "article has no text to index"))
                if progress:
                    progress("article", 1)
                continue
            # Chunk ids are article id + index, so a new chunk usually reuses an old id: the upsert
            # overwrites it, and only ids the new version does not have are stale (deleting the rest
            # would delete the freshly written chunks).
            keep = {c.id for c in chunks}
            stale = sorted({cid for cid in old + [cid for cid, _ in current] if cid not in keep})
            todo.append((art, chunks, stale))
            if stored:
                report.updated += 1
            else:
                report.added += 1
        # Embed in groups of whole articles so each article's chunks land in one upsert.
        batch: list[tuple[Article, list[Chunk], list[str]]] = []
        size = 0
        for entry in todo:
            batch.append(entry)
            size += len(entry[1])
            if size >= GROUP_CHUNKS:
                self._write(batch, report, progress)
                batch, size = [], 0
        self._write(batch, report, progress)

    def _write(self, batch: list[tuple[Article, list[Chunk], list[str]]], report: IngestReport, progress: ProgressFn | None) -> None:
        if not batch:
            return
        texts = [embed_text(a, c.text) for a, chunks, _ in batch for c in chunks]
        t = time.perf_counter()
        vectors = self.embedder.embed(texts, on_batch=(lambda n: progress("chunks", n)) if progress else None)
        report.embed_seconds += time.perf_counter() - t
        ids, docs, metas = [], [], []
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for art, chunks, _ in batch:
            for c in chunks:
                md = chunk_metadata(art, c, len(chunks))
                md["ingested_at"] = now
                node = TextNode(id_=c.id, text=c.text, metadata=md, start_char_idx=c.start, end_char_idx=c.end,
                                excluded_embed_metadata_keys=list(md), excluded_llm_metadata_keys=list(md))
                node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=art.id)
                ids.append(c.id)
                docs.append(c.text)
                metas.append(node_to_metadata_dict(node, remove_text=True, flat_metadata=True))
        stale = [cid for _, _, s in batch for cid in s]
        with self.store.write_lock():
            self.store.upsert(ids, vectors, docs, metas)
            if stale:
                self.store.delete_chunks(stale)
        report.chunks_embedded += len(ids)
        report.chunks_deleted += len(stale)
        if progress:
            progress("article", len(batch))

    def delete(self, article_id: str) -> int:
        """Remove an article's chunks; returns how many were removed (0: no such article)."""
        return self.store.delete_article(article_id)
