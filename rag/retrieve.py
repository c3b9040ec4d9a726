"""Hybrid retrieval: dense (Chroma via llama-index) + BM25 (rag.keywords), fused by RRF.

The keyword index is the store's (``Store.keywords``): a file beside the store that every write
updates and every process catches up with, so no query waits for a rebuild.
"""

from __future__ import annotations

import datetime as dt
import logging
import math

import numpy as np
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery

from rag.config import Settings
from rag.copies import with_copies
from rag.embed import SentenceTransformerEmbedding, get_embedder
from rag.schema import CHUNK_INDEX, DATE_NUM, SOURCE, ChunkMeta
from rag.store import Store
from rag.types import Filters, Passage

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    chunk_id: str
    text: str | None  # None until read (``Retriever._read``): only the passages kept need theirs
    metadata: dict[str, Any] | None  # None until read, where ranking did not need it
    dense: float = 0.0  # cosine similarity, 0 when not found by dense search
    dense_rank: int | None = None
    bm25: float = 0.0
    bm25_rank: int | None = None
    fused: float = 0.0

    @cached_property
    def meta(self) -> ChunkMeta:
        assert self.metadata is not None, f"metadata of {self.chunk_id} not read"
        return ChunkMeta.from_metadata(self.metadata)


def _date_num(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        d = dt.date.fromisoformat(str(iso)[:10])
    except ValueError:
        from rag.errors import QuestionError

        raise QuestionError(f"bad date {iso!r}: use YYYY-MM-DD") from None
    return int(d.strftime("%Y%m%d"))


def to_metadata_filters(filters: Filters) -> MetadataFilters | None:
    parts: list[Any] = []
    if filters.sources:
        parts.append(MetadataFilter(key=SOURCE, value=list(filters.sources), operator=FilterOperator.IN))
    lo, hi = _date_num(filters.date_from), _date_num(filters.date_to)
    if lo:
        parts.append(MetadataFilter(key=DATE_NUM, value=lo, operator=FilterOperator.GTE))
    if hi:
        parts.append(MetadataFilter(key=DATE_NUM, value=hi, operator=FilterOperator.LTE))
    if hi and not lo:  # unknown dates are stored as 0: they must not pass an 'until' filter
        parts.append(MetadataFilter(key=DATE_NUM, value=1, operator=FilterOperator.GTE))
    if not parts:
        return None
    return MetadataFilters(filters=parts, condition=FilterCondition.AND)


def matches(md: dict[str, Any] | ChunkMeta, filters: Filters) -> bool:
    m = md if isinstance(md, ChunkMeta) else ChunkMeta.from_metadata(md)
    if filters.sources and m.source not in filters.sources:
        return False
    dn = m.date_num
    lo, hi = _date_num(filters.date_from), _date_num(filters.date_to)
    if lo and dn < lo:
        return False
    if hi and (dn == 0 or dn > hi):
        return False
    return True


class Retriever:
    def __init__(self, settings: Settings, store: Store | None = None, embedder: SentenceTransformerEmbedding | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self.embedder = embedder or get_embedder(settings)
        self.keywords = self.store.keywords  # persistent BM25 index, kept up to date by the store's writes
        self._reranker: Any = None

    def archive_months(self) -> set[tuple[int, int]]:
        return self.keywords.refresh().archive_months

    def archive_sources(self) -> set[str]:
        """The outlets the archive holds articles from."""
        return self.keywords.refresh().archive_sources

    # --- dense ---------------------------------------------------------------------------------
    def _dense_search(self, qvec: list[float], n: int, filters: Filters) -> list[tuple[str, float, str, dict[str, Any]]]:
        """(chunk id, cosine, text, metadata), best first, through llama-index's ``ChromaVectorStore``."""
        q = VectorStoreQuery(query_embedding=qvec, similarity_top_k=n, filters=to_metadata_filters(filters))
        res = self.store.vector_store.query(q)
        out = []
        for node, sim in zip(res.nodes or [], res.similarities or []):
            # llama-index reports exp(-distance); Chroma's cosine distance is 1 - cos.
            cos = 1.0 + math.log(sim) if sim and sim > 0 else -1.0
            out.append((node.node_id, cos, node.get_content(), dict(node.metadata)))
        return out

    def _read(self, cands: Sequence[Candidate], qvec: list[float]) -> None:
        """Fill in what ``cands`` lack (one read of the store): text, metadata, and the dense score of keyword-only hits.
        A candidate deleted meanwhile keeps metadata None."""
        todo = {c.chunk_id: c for c in cands if c.text is None}
        if not todo:
            return
        include = ["documents"]
        if any(c.metadata is None for c in todo.values()):
            include.append("metadatas")
        if any(c.dense_rank is None for c in todo.values()):
            include.append("embeddings")
        got = self.store.collection.get(ids=list(todo), include=include)
        q = np.asarray(qvec, dtype=np.float32)
        for i, (cid, doc) in enumerate(zip(got["ids"], got["documents"])):
            c = todo.pop(cid)
            c.text = doc or ""
            if c.metadata is None:
                c.metadata = got["metadatas"][i]
            if c.dense_rank is None:
                # The stored vectors give keyword-only hits a dense score on the same scale, without re-embedding.
                c.dense = float(np.asarray(got["embeddings"][i], dtype=np.float32) @ q)
        for c in todo.values():  # deleted since found
            c.text = ""

    # --- public --------------------------------------------------------------------------------
    def candidates(self, question: str, filters: Filters | None = None, recency: bool = False, qvec: list[float] | None = None,
                   boost: list[tuple[dt.date, dt.date]] | None = None, prefer: Sequence[str] = ()) -> list[Candidate]:
        """Fused, de-duplicated candidates, best first. ``boost``: date spans, ``prefer``: outlets, whose
        articles rank higher (the question names them) without excluding others."""
        qvec = qvec if qvec is not None else self.embedder.get_query_embedding(question)
        ranked = self._ranked(question, filters, recency, qvec, boost, prefer)
        self._read(ranked, qvec)
        return [c for c in ranked if c.metadata is not None]

    def _ranked(self, question: str, filters: Filters | None, recency: bool, qvec: list[float],
                boost: list[tuple[dt.date, dt.date]] | None, prefer: Sequence[str]) -> list[Candidate]:
        """``candidates`` before the keyword-only hits are read (``_read``): plain rank fusion needs only their ranks,
        so their texts (and their metadata, unless filters or date and outlet preferences need it) wait until kept."""
        filters = filters or Filters()
        n = self.settings.candidates
        # Checks the store's version token first: that also refreshes an embedded client another process wrote to.
        self.keywords.refresh()
        self.store.check_embedder(self.embedder.identity)  # the query's vector and the stored ones must come from one model
        by_meta = bool(recency or boost or prefer)
        by_id: dict[str, Candidate] = {}
        for rank, (cid, cos, text, md) in enumerate(self._dense_search(qvec, n, filters)):
            by_id[cid] = Candidate(cid, text, md, dense=cos, dense_rank=rank)
        # BM25 runs over the whole archive; filter afterwards, so fetch more when filtering.
        bm = self.keywords.search(question, n * (4 if not filters.is_empty() else 1), refresh=False)  # refreshed above
        missing = [cid for cid, _ in bm if cid not in by_id]
        fetched: dict[str, dict[str, Any] | None] = {}
        if missing and (by_meta or not filters.is_empty()):
            got = self.store.collection.get(ids=missing, include=["metadatas"])
            fetched = dict(zip(got["ids"], got["metadatas"]))
        elif missing:  # read later, if ranked high enough (``_read``)
            fetched = dict.fromkeys(missing)
        rank = 0
        for cid, score in bm:
            if cid in by_id:
                c = by_id[cid]
            elif cid in fetched:
                c = Candidate(cid, None, fetched[cid])
                if c.metadata is not None and not matches(c.meta, filters):
                    continue
                by_id[cid] = c
            else:
                continue  # deleted since the BM25 index was built
            c.bm25, c.bm25_rank = score, rank
            rank += 1
            if rank >= n:
                break
        if not by_id:
            return []
        k = self.settings.rrf_k
        for c in by_id.values():
            c.fused = (1.0 / (k + c.dense_rank + 1) if c.dense_rank is not None else 0.0) + (1.0 / (k + c.bm25_rank + 1) if c.bm25_rank is not None else 0.0)
        if recency:
            nums = [c.meta.date_num for c in by_id.values()]
            newest = max(nums) if nums else 0
            for c in by_id.values():
                dn = c.meta.date_num
                if dn and newest:
                    age = (_as_date(newest) - _as_date(dn)).days
                    c.fused *= 1.0 + 0.5 * math.exp(-age / 30.0)
        if boost:
            spans = [(int(a.strftime("%Y%m%d")), int(b.strftime("%Y%m%d"))) for a, b in boost]
            for c in by_id.values():
                dn = c.meta.date_num
                if dn:  # each span the article falls in counts: a wide one ("from 1905") must not drown "on 17 November"
                    c.fused *= 1.5 ** sum(a <= dn <= b for a, b in spans)
        if prefer:
            for c in by_id.values():
                if c.meta.source in prefer:
                    c.fused *= 1.5
        ranked = sorted(by_id.values(), key=lambda c: c.fused, reverse=True)
        if self.settings.reranker_path:
            self._read(ranked[:20], qvec)
            ranked = [c for c in ranked[:20] if c.metadata is not None] + ranked[20:]
            ranked = self._rerank(question, ranked)
        return ranked

    def _rerank(self, question: str, ranked: list[Candidate]) -> list[Candidate]:
        if self._reranker is None:
            from sentence_transformers import CrossEncoder

            from rag.errors import ModelError

            path = self.settings.reranker_path
            if not path or not path.is_dir():
                raise ModelError(f"reranker_path {str(path)!r} is not a folder with a cross-encoder model")
            try:
                self._reranker = CrossEncoder(str(path), device="cpu", local_files_only=True)
            except Exception as exc:  # noqa: BLE001
                raise ModelError(f"cannot load reranker from {str(path)!r}: {exc}") from exc
        top = ranked[:20]
        scores = self._reranker.predict([(question, c.text or "") for c in top])
        for c, s in zip(top, scores):
            c.fused = 1.0 + float(s)  # above every RRF score: reranked first
        return sorted(top, key=lambda c: c.fused, reverse=True) + ranked[20:]

    def newest(self, filters: Filters | dict | None = None, k: int | None = None) -> list[Passage]:
        """The opening passage of each of the ``k`` newest articles that ``filters`` admit, newest first, one copy of a
        syndicated story: what a question naming only outlets or dates lists ("What did Breitbart publish in
        October?"), where ranking by likeness to the question would pick arbitrary ones. Reads the first chunk's
        metadata of each article, a month at a time from the newest, until it has ``k``; undated articles last."""
        filters = Filters.coerce(filters)
        k = k or self.settings.top_k
        months = sorted(((y, m) for y, m in self.keywords.refresh().archive_months if y), reverse=True)
        lo, hi = _date_num(filters.date_from) or 1, _date_num(filters.date_to) or 99_991_231
        windows = [(max(lo, y * 10_000 + m * 100), min(hi, y * 10_000 + m * 100 + 99)) for y, m in months]
        windows = [(a, b) for a, b in windows if a <= b] + ([(0, 0)] if not (filters.date_from or filters.date_to) else [])
        sources = [{SOURCE: {"$in": list(filters.sources)}}] if filters.sources else []
        kept: list[tuple[str, ChunkMeta]] = []
        story: dict[str, str] = {}  # a syndicated story -> the copy listed for it (its newest)
        for a, b in windows:
            where = {"$and": [{CHUNK_INDEX: 0}, {DATE_NUM: {"$gte": a}}, {DATE_NUM: {"$lte": b}}, *sources]}
            rows = [(cid, ChunkMeta.from_metadata(md)) for cid, md, _ in self.store.iter_metadatas(where=where)]
            for cid, m in sorted(rows, key=lambda e: (e[1].date_num, e[1].published_at, e[1].title), reverse=True):
                if len(kept) < k and story.setdefault(m.group_key, m.article_id) == m.article_id:
                    kept.append((cid, m))
            if len(kept) >= k:
                break
        if not kept:
            return []
        got = self.store.collection.get(ids=[cid for cid, _ in kept], include=["documents"])
        texts = dict(zip(got["ids"], got["documents"]))
        kept = [(cid, m) for cid, m in kept if cid in texts]  # deleted since listed
        out = [_passage(i, cid, m, texts[cid], score=1.0 / i) for i, (cid, m) in enumerate(kept, 1)]
        return with_copies(self.store, out, [m.group_key for _, m in kept], lambda m: matches(m, filters), shared=self.keywords.joined_groups)

    def retrieve(self, question: str, filters: Filters | dict | None = None, k: int | None = None, recency: bool = False,
                 per_article: int | None = None, qvec: list[float] | None = None,
                 boost: list[tuple[dt.date, dt.date]] | None = None, prefer: Sequence[str] = ()) -> list[Passage]:
        """The top-k passages, at most ``per_article`` from one article (multi-hop needs breadth), and from
        one copy only of a syndicated story: cited from its earliest copy, listing the others (``rag.copies``)."""
        filters = Filters.coerce(filters)
        k = k or self.settings.top_k
        per_article = per_article or self.settings.max_chunks_per_article
        qvec = qvec if qvec is not None else self.embedder.get_query_embedding(question)
        kept: list[Candidate] = []
        per: dict[str, int] = {}
        copy_of: dict[str, str] = {}  # group key -> the one article of it that passages come from
        groups: list[str] = []
        ranked = self._ranked(question, filters, recency, qvec, boost, prefer)
        for i, c in enumerate(ranked):
            if c.metadata is None:  # read the next few at once: most are kept
                self._read(ranked[i : i + 2 * k], qvec)
                if c.metadata is None:
                    continue  # deleted since found
            m = c.meta
            aid = m.article_id
            if per.get(aid, 0) >= per_article or copy_of.setdefault(m.group_key, aid) != aid:
                continue
            per[aid] = per.get(aid, 0) + 1
            groups.append(m.group_key)
            kept.append(c)
            if len(kept) >= k:
                break
        self._read(kept, qvec)
        out = [_passage(i, c.chunk_id, c.meta, c.text, c.fused, c.dense) for i, c in enumerate(kept, 1)]
        return with_copies(self.store, out, groups, lambda m: matches(m, filters), shared=self.keywords.joined_groups)


def _passage(number: int, chunk_id: str, m: ChunkMeta, text: str | None, score: float, dense: float = 0.0) -> Passage:
    return Passage(number=number, chunk_id=chunk_id, article_id=m.article_id, title=m.title, source=m.source, date=m.date, url=m.url,
                   text=text or "", full_text=text or "", start=m.start, end=m.end, score=score, dense_score=dense, author=m.author)


def _as_date(num: int) -> dt.date:
    return dt.date(num // 10000, (num // 100) % 100, num % 100)
