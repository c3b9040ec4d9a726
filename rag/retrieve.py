"""Hybrid retrieval: dense (Chroma via llama-index) + BM25 (llama-index's bm25s retriever), fused by RRF.

BM25 is rebuilt only when the store's version token changes (any write by any process), so
several chat servers and ingest workers stay consistent without rebuilding on every query.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

import numpy as np
from dataclasses import dataclass
from typing import Any

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery

from rag.config import Settings
from rag.embed import SentenceTransformerEmbedding, get_embedder
from rag.store import Store
from rag.types import Filters, Passage

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    chunk_id: str
    text: str
    metadata: dict[str, Any]
    dense: float = 0.0  # cosine similarity, 0 when not found by dense search
    dense_rank: int | None = None
    bm25: float = 0.0
    bm25_rank: int | None = None
    fused: float = 0.0


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
        parts.append(MetadataFilter(key="source", value=list(filters.sources), operator=FilterOperator.IN))
    lo, hi = _date_num(filters.date_from), _date_num(filters.date_to)
    if lo:
        parts.append(MetadataFilter(key="date_num", value=lo, operator=FilterOperator.GTE))
    if hi:
        parts.append(MetadataFilter(key="date_num", value=hi, operator=FilterOperator.LTE))
    if hi and not lo:  # unknown dates are stored as 0: they must not pass an 'until' filter
        parts.append(MetadataFilter(key="date_num", value=1, operator=FilterOperator.GTE))
    if not parts:
        return None
    return MetadataFilters(filters=parts, condition=FilterCondition.AND)


def matches(md: dict[str, Any], filters: Filters) -> bool:
    if filters.sources and md.get("source") not in filters.sources:
        return False
    dn = int(md.get("date_num") or 0)
    lo, hi = _date_num(filters.date_from), _date_num(filters.date_to)
    if lo and dn < lo:
        return False
    if hi and (dn == 0 or dn > hi):
        return False
    return True


class _BM25Cache:
    """One BM25 index per (store, version) per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: str | None = None
        self.retriever: Any = None
        self.size = 0
        self.archive_months: set[tuple[int, int]] = set()
        self.sources: list[str] = []


_BM25: dict[str, _BM25Cache] = {}
_BM25_LOCK = threading.Lock()


class Retriever:
    def __init__(self, settings: Settings, store: Store | None = None, embedder: SentenceTransformerEmbedding | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self.embedder = embedder or get_embedder(settings)
        key = f"{settings.describe_store()}|{settings.collection}"
        with _BM25_LOCK:
            self._bm25 = _BM25.setdefault(key, _BM25Cache())
        self._reranker: Any = None

    # --- BM25 ----------------------------------------------------------------------------------
    def _bm25_index(self) -> _BM25Cache:
        cache = self._bm25
        version = self.store.version()
        if cache.version == version and cache.retriever is not None:
            return cache
        with cache.lock:
            if cache.version == version and cache.retriever is not None:
                return cache
            t = time.perf_counter()
            nodes: list[TextNode] = []
            months: set[tuple[int, int]] = set()
            sources: set[str] = set()
            for cid, md, doc in self.store.iter_metadatas(documents=True):
                head = " | ".join(b for b in (md.get("title", ""), md.get("source", "")) if b)
                nodes.append(TextNode(id_=cid, text=f"{head}\n{doc}" if head else doc, metadata={}))
                dn = int(md.get("date_num") or 0)
                if dn:
                    months.add((dn // 10000, (dn // 100) % 100))
                if md.get("source"):
                    sources.add(md["source"])
            if nodes:
                import Stemmer
                from llama_index.retrievers.bm25 import BM25Retriever

                logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG on import

                cache.retriever = BM25Retriever.from_defaults(nodes=nodes, stemmer=Stemmer.Stemmer("english"), language="english",
                                                              similarity_top_k=min(len(nodes), self.settings.candidates * 3))
            else:
                cache.retriever = None
            cache.size = len(nodes)
            cache.version = version
            cache.archive_months = months
            cache.sources = sorted(sources)
            log.info("BM25 index over %d chunks built in %.2f s", len(nodes), time.perf_counter() - t)
        return cache

    def archive_months(self) -> set[tuple[int, int]]:
        return self._bm25_index().archive_months

    def sources(self) -> list[str]:
        return self._bm25_index().sources

    def _bm25_search(self, question: str, n: int) -> list[tuple[str, float]]:
        cache = self._bm25_index()
        if cache.retriever is None:
            return []
        k = min(cache.size, max(n, 1))
        cache.retriever.similarity_top_k = k
        with cache.lock:  # bm25s retrieval is not documented as thread-safe
            res = cache.retriever.retrieve(question)
        return [(r.node.node_id, float(r.score or 0.0)) for r in res if (r.score or 0) > 0]

    # --- dense ---------------------------------------------------------------------------------
    def _dense_search(self, qvec: list[float], n: int, filters: Filters) -> list[tuple[str, float, str, dict[str, Any]]]:
        if self.store.count() == 0:
            return []
        q = VectorStoreQuery(query_embedding=qvec, similarity_top_k=n, filters=to_metadata_filters(filters))
        res = self.store.vector_store.query(q)
        out = []
        for node, sim in zip(res.nodes or [], res.similarities or []):
            # llama-index reports exp(-distance); Chroma's cosine distance is 1 - cos.
            cos = 1.0 + math.log(sim) if sim and sim > 0 else -1.0
            out.append((node.node_id, cos, node.get_content(), dict(node.metadata)))
        return out

    # --- public --------------------------------------------------------------------------------
    def candidates(self, question: str, filters: Filters | None = None, recency: bool = False, qvec: list[float] | None = None,
                   boost: list[tuple[dt.date, dt.date]] | None = None) -> list[Candidate]:
        """Fused, de-duplicated candidates, best first."""
        filters = filters or Filters()
        n = self.settings.candidates
        # Checks the store's version token first: that also refreshes an embedded client another process wrote to.
        self._bm25_index()
        qvec = qvec if qvec is not None else self.embedder.get_query_embedding(question)
        by_id: dict[str, Candidate] = {}
        for rank, (cid, cos, text, md) in enumerate(self._dense_search(qvec, n, filters)):
            by_id[cid] = Candidate(cid, text, md, dense=cos, dense_rank=rank)
        # BM25 runs over the whole archive; filter afterwards, so fetch more when filtering.
        bm = self._bm25_search(question, n * (4 if not filters.is_empty() else 1))
        missing = [cid for cid, _ in bm if cid not in by_id]
        fetched: dict[str, tuple[str, dict[str, Any]]] = {}
        if missing:
            # The stored vectors give keyword-only hits a dense score on the same scale, without re-embedding.
            got = self.store.collection.get(ids=missing, include=["metadatas", "documents", "embeddings"])
            q = np.asarray(qvec, dtype=np.float32)
            fetched = {cid: (doc, md, float(np.asarray(vec, dtype=np.float32) @ q))
                       for cid, doc, md, vec in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}
        rank = 0
        for cid, score in bm:
            if cid in by_id:
                c = by_id[cid]
            elif cid in fetched:
                doc, md, cos = fetched[cid]
                if not matches(md, filters):
                    continue
                c = by_id[cid] = Candidate(cid, doc, md, dense=cos)
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
            nums = [int(c.metadata.get("date_num") or 0) for c in by_id.values()]
            newest = max(nums) if nums else 0
            for c in by_id.values():
                dn = int(c.metadata.get("date_num") or 0)
                if dn and newest:
                    age = (_as_date(newest) - _as_date(dn)).days
                    c.fused *= 1.0 + 0.5 * math.exp(-age / 30.0)
        if boost:
            spans = [(int(a.strftime("%Y%m%d")), int(b.strftime("%Y%m%d"))) for a, b in boost]
            for c in by_id.values():
                dn = int(c.metadata.get("date_num") or 0)
                if dn and any(a <= dn <= b for a, b in spans):
                    c.fused *= 1.5
        ranked = sorted(by_id.values(), key=lambda c: c.fused, reverse=True)
        if self.settings.reranker_path:
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
        scores = self._reranker.predict([(question, c.text) for c in top])
        for c, s in zip(top, scores):
            c.fused = 1.0 + float(s)  # above every RRF score: reranked first
        return sorted(top, key=lambda c: c.fused, reverse=True) + ranked[20:]

    def retrieve(self, question: str, filters: Filters | dict | None = None, k: int | None = None, recency: bool = False,
                 per_article: int | None = None, qvec: list[float] | None = None,
                 boost: list[tuple[dt.date, dt.date]] | None = None) -> list[Passage]:
        """The top-k passages, at most ``per_article`` from one article (multi-hop needs breadth)."""
        filters = Filters.coerce(filters)
        k = k or self.settings.top_k
        per_article = per_article or self.settings.max_chunks_per_article
        out: list[Passage] = []
        per: dict[str, int] = {}
        for c in self.candidates(question, filters, recency=recency, qvec=qvec, boost=boost):
            aid = str(c.metadata.get("article_id", ""))
            if per.get(aid, 0) >= per_article:
                continue
            per[aid] = per.get(aid, 0) + 1
            md = c.metadata
            out.append(Passage(number=len(out) + 1, chunk_id=c.chunk_id, article_id=aid, title=str(md.get("title", "")),
                               source=str(md.get("source", "")), date=str(md.get("date", "")), url=str(md.get("url", "")),
                               text=c.text, full_text=c.text, start=int(md.get("start", 0)), end=int(md.get("end", 0)),
                               score=c.fused, dense_score=c.dense, author=str(md.get("author", ""))))
            if len(out) >= k:
                break
        return out


def _as_date(num: int) -> dt.date:
    return dt.date(num // 10000, (num // 100) % 100, num % 100)
