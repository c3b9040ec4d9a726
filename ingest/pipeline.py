"""Idempotent ingestion: read, chunk, embed, upsert; delete; all safe to interrupt and re-run.

How "nothing half-written" holds: chunk ids are deterministic (article id + index) and every
chunk records its article's content hash and chunk count. An article counts as indexed only when
all ``n_chunks`` chunks with its current hash are present and nothing else is stored under its id.
Anything less (a run killed mid-way, an edited article) is simply re-embedded and upserted over,
and the store deletes the superseded chunks in the same locked write. Writers on one
embedded folder are serialised by a file lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from ingest.article import Article
from ingest.chunk import Chunk, Chunker
from ingest.loaders import Item, load_sources
from ingest.syndication import Placement, SyndicationIndex
from rag.config import Settings
from rag.embed import SentenceTransformerEmbedding, adopt_embedder, get_embedder
from rag.errors import IngestError
from rag.schema import MINHASH, ChunkMeta, with_header
from rag.store import Store

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int], None]  # (event, amount): "article" per article seen, "chunks" per chunk embedded
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
    merged: int = 0  # items that were the same article (same normalised URL, or same text) as an earlier one in this run
    grouped: int = 0  # new or changed articles found to be syndicated copies of a stored (or earlier) article
    syndication_seconds: float = 0.0  # spent finding them (signatures, LSH)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        merged = f", {self.merged} duplicate{'s' if self.merged != 1 else ''} merged" if self.merged else ""
        if self.grouped:
            merged += f", {self.grouped} syndicated cop{'ies' if self.grouped != 1 else 'y'} grouped"
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.errors)} failed{merged}; "
                f"{self.chunks_embedded} chunks embedded in {self.seconds:.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "failed": len(self.errors), "merged": self.merged,
                "grouped": self.grouped, "chunks_embedded": self.chunks_embedded, "chunks_deleted": self.chunks_deleted, "seconds": round(self.seconds, 3),
                "errors": [{"source": e.source, "reason": e.reason} for e in self.errors]}


def chunk_meta(article: Article, chunk: Chunk, n_chunks: int, ingested_at: str = "", placement: Placement | None = None) -> ChunkMeta:
    """The stored metadata of one chunk (``rag.schema`` defines the keys); ``placement``: its syndication group."""
    d = article.published_at
    p = placement or Placement(article.id)
    return ChunkMeta(
        article_id=article.id, content_hash=article.content_hash, chunk_index=chunk.index, n_chunks=n_chunks,
        start=chunk.start, end=chunk.end, title=article.title, source=article.source, author=article.author,
        url=article.url, category=article.category, published_at=d.isoformat() if d else "", date=article.date_iso,
        date_num=int(d.strftime("%Y%m%d")) if d else 0, origin=article.origin[:500], ingested_at=ingested_at,
        group=p.group, minhash=p.signature if chunk.index == 0 else "",
    )


def embed_text(article: Article, chunk_text: str) -> str:
    """What is embedded and keyword-indexed: the title/outlet/date line, then the passage."""
    return with_header(article.header(), chunk_text)


Todo = list[tuple[Article, list[Chunk]]]  # (article, its chunks)


class Ingestor:
    """Reads, chunks, embeds and stores articles.

    Embedding is the bulk of the work, so everything else is kept off its path: chunks are
    embedded in large groups (batches are cut from the group's token-length order, so bigger groups
    pad less), and each group is written to Chroma by one background writer while the next group
    embeds. Writes stay in order and at most one is in flight, so an interruption loses at most the
    groups not yet written, which the next run redoes (nothing half-written counts as indexed, see above).
    """

    def __init__(self, settings: Settings, store: Store | None = None, embedder: SentenceTransformerEmbedding | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self.embedder = embedder or get_embedder(settings)
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap, self.embedder.tokenize)
        self.syndication = SyndicationIndex(self.store)

    def ingest(self, sources: Iterable[str], progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest_items(load_sources(sources), progress)

    def ingest_items(self, items: Iterable[Item], progress: ProgressFn | None = None) -> IngestReport:
        report = IngestReport()
        t0 = time.perf_counter()
        # Vectors of two embedders never share an archive: a new one records ours, one made by another is re-embedded first (logged).
        adopt_embedder(self.store, self.embedder)
        run = _Run(self, report, progress)
        try:
            group: dict[str, Article] = {}
            seen: dict[str, tuple[str, int]] = {}  # article id -> (where it was last read in this run, hash of its text)
            for item in items:
                if isinstance(item, IngestError):
                    # Reported once, by whoever shows the report (the CLI prints every error); logged for -v.
                    log.info("skipped %s", item)
                    report.errors.append(item)
                    if progress:
                        progress("article", 1)
                    continue
                if not item.text.strip():
                    report.errors.append(IngestError(item.origin or item.id, "article has no text"))
                    if progress:
                        progress("article", 1)
                    continue
                where = item.origin or item.id
                if item.id in seen:
                    # Same article twice in one run (a page given as a file and by URL, a story in two feeds):
                    # stored once, the later copy winning, and counted so the summary says so.
                    report.merged += 1
                    first_where, first_text = seen[item.id]
                    if first_text != hash(item.text):
                        log.warning("%s and %s have the same URL (%s) but different text; only %s is kept",
                                    first_where, where, item.url, where)
                    else:
                        log.info("%s is the same article as %s; stored once", where, first_where)
                    if progress and item.id in group:  # the copy it replaces will not be counted
                        progress("article", 1)
                seen[item.id] = (where, hash(item.text))
                group[item.id] = item
                if len(group) >= FLUSH_ARTICLES:
                    run.add(group)
                    group = {}
            run.add(group)
            run.finish()
            if run.placed:
                self.syndication.written()
        except BaseException:
            self.syndication.forget()  # it may hold articles that were never written
            raise
        finally:
            run.close()
        report.seconds = time.perf_counter() - t0
        return report

    def _plan(self, group: dict[str, Article], report: IngestReport, progress: ProgressFn | None) -> Todo:
        """Look up what is stored for these articles; chunk the ones that are new or changed."""
        states = self.store.chunk_states(list(group))
        todo: Todo = []
        for aid, art in group.items():
            report.article_ids.append(aid)
            stored = states.get(aid, {})
            h = art.content_hash
            current = stored.get(h, [])
            old = any(hh != h for hh in stored)
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
            # Chunk ids are article id + index, so a new chunk usually reuses an old id that the
            # upsert overwrites; the store deletes the rest of an older version in the same write.
            todo.append((art, chunks))
            if stored:
                report.updated += 1
            else:
                report.added += 1
        return todo

    def _embed(self, batch: Todo, report: IngestReport, progress: ProgressFn | None) -> Any:
        texts = [embed_text(a, c.text) for a, chunks in batch for c in chunks]
        t = time.perf_counter()
        vectors = self.embedder.embed_array(texts, on_batch=(lambda n: progress("chunks", n)) if progress else None)
        report.embed_seconds += time.perf_counter() - t
        return vectors

    def _rows(self, batch: Todo, placements: dict[str, Placement] | None = None) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Ids, documents and flat metadata for one group, in llama-index's node format."""
        ids, docs, metas = [], [], []
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for art, chunks in batch:
            placement = (placements or {}).get(art.id)
            for c in chunks:
                md = chunk_meta(art, c, len(chunks), ingested_at=now, placement=placement).to_metadata()
                sig = md.pop(MINHASH)  # read from the flat key only (ingest.syndication): not copied into the node's JSON too
                node = TextNode(id_=c.id, text=c.text, metadata=md, start_char_idx=c.start, end_char_idx=c.end,
                                excluded_embed_metadata_keys=list(md), excluded_llm_metadata_keys=list(md))
                node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=art.id)
                ids.append(c.id)
                docs.append(c.text)
                metas.append(node_to_metadata_dict(node, remove_text=True, flat_metadata=True) | {MINHASH: sig})
        return ids, docs, metas

    def _store(self, ids: list[str], vectors: Any, docs: list[str], metas: list[dict[str, Any]]) -> tuple[int, int]:
        """Write one embedded group (every chunk of each article in one upsert); returns (written, deleted).

        The upsert also deletes the stale chunks of these articles (an older version's, or indexes
        past the new chunk count) and bumps the version token once: one locked write per group.

        Runs on the writer thread. A Chroma server is written to over HTTP, which releases the GIL,
        so that write overlaps with the embedding. The embedded (folder) client holds the GIL for a
        whole upsert (measured: ``tests/bench/RESULTS.md``), so there the write costs its own time;
        a child-process writer was tried and gained nothing on two cores. The Python-heavy row
        building stays on the main thread (``_rows``), because a thread busy in Python makes every
        torch and tokenizer call on the main thread wait for the GIL.
        """
        deleted = self.store.upsert(ids, vectors, docs, metas)
        return len(ids), deleted

    def delete(self, article_id: str) -> int:
        """Remove an article's chunks; returns how many were removed (0: no such article)."""
        return self.store.delete_article(article_id)


class _Run:
    """One ingest run's embedding groups and its background writer.

    Order of work: embed group i, build its rows, then plan (look up and chunk) what comes next
    while the writer is idle, and hand group i to the writer only when group i+1 starts embedding.
    So the write overlaps with embedding, and the tokenizer-heavy planning never competes with the
    writer for the GIL.
    """

    def __init__(self, ing: Ingestor, report: IngestReport, progress: ProgressFn | None) -> None:
        self.ing, self.report, self.progress = ing, report, progress
        self.batch: Todo = []
        self.size = 0
        self.ready: tuple[tuple[Any, ...], set[str]] | None = None  # embedded, not yet handed to the writer
        self.pending: Future | None = None
        self.pending_ids: set[str] = set()
        self.placements: dict[str, Placement] = {}  # of the articles planned and not yet turned into rows
        self.placed = False  # whether this run has refreshed the syndication index and placed articles in it
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byline-writer")

    def _unwritten_ids(self) -> set[str]:
        ids = set(self.pending_ids) | {a.id for a, _ in self.batch}
        if self.ready is not None:
            ids |= self.ready[1]
        return ids

    def add(self, group: dict[str, Article]) -> None:
        if not group:
            return
        if self._unwritten_ids() & group.keys():
            # An article seen again before its first copy is stored: store that first, so the
            # lookup below sees it (the later copy then wins, as within one group).
            self.finish()
        for entry in self.ing._plan(group, self.report, self.progress):
            self.place(entry[0])
            self.batch.append(entry)
            self.size += len(entry[1])
            if self.size >= self.ing.settings.ingest_group_chunks:
                self.embed_batch()

    def place(self, art: Article) -> None:
        """Find the article's syndication group (its placement is written with its chunks)."""
        t = time.perf_counter()
        if not self.placed:
            self.ing.syndication.refresh()  # once per run: the store may have changed since the last one
            self.placed = True
        p = self.placements[art.id] = self.ing.syndication.place(art)
        if p.joined:
            self.report.grouped += 1
            log.info("%s is a syndicated copy of article %s", art.origin or art.id, p.joined)
        self.report.syndication_seconds += time.perf_counter() - t

    def embed_batch(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.size = self.batch, [], 0
        self.submit_ready()  # the previous group is written while this one embeds
        vectors = self.ing._embed(batch, self.report, self.progress)
        ids, docs, metas = self.ing._rows(batch, {a.id: self.placements.pop(a.id) for a, _ in batch})
        self.ready = ((ids, vectors, docs, metas), {a.id for a, _ in batch})

    def submit_ready(self) -> None:
        if self.ready is None:
            return
        self.wait()  # at most one write in flight, and writes land in order
        (args, aids), self.ready = self.ready, None
        self.pending_ids = aids
        self.pending = self.pool.submit(self.ing._store, *args)

    def wait(self) -> None:
        if self.pending is None:
            return
        fut, self.pending = self.pending, None
        n_articles, self.pending_ids = len(self.pending_ids), set()
        written, deleted = fut.result()  # a failed write raises here and ends the run
        self.report.chunks_embedded += written
        self.report.chunks_deleted += deleted
        if self.progress:
            self.progress("article", n_articles)

    def finish(self) -> None:
        self.embed_batch()
        self.submit_ready()
        self.wait()

    def close(self) -> None:
        # On an error, let an in-flight write finish (it is a whole group) before the pool goes.
        if self.pending is not None:
            try:
                self.pending.result()
            except Exception:  # noqa: BLE001 - the error being raised already says what went wrong
                pass
        self.pool.shutdown(wait=True)

