"""The Chroma store: an embedded folder or a server, the same interface for both.

Writes go straight to the Chroma collection (upsert by deterministic chunk id, so nothing can
duplicate); reads for retrieval go through llama-index's ``ChromaVectorStore``. A tiny second
collection holds a version token that changes on every write, which lets every process (ingest
workers, chat servers) notice changes cheaply and refresh derived indexes such as BM25.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging

import uuid
from collections import defaultdict
from dataclasses import dataclass

from typing import Any, Iterator

from rag.config import Settings
from rag.errors import StoreError

log = logging.getLogger(__name__)

_CLIENTS: dict[str, Any] = {}


def _client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.uses_server:
        if settings.chroma_url:
            from urllib.parse import urlparse

            u = urlparse(settings.chroma_url)
            host, port, ssl = u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 8000), u.scheme == "https"
        else:
            host, port, ssl = settings.chroma_host or "127.0.0.1", settings.chroma_port, False
        key = f"http://{host}:{port}|{settings.chroma_token}"
        if key not in _CLIENTS:
            headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
            try:
                _CLIENTS[key] = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=chroma_settings)
                _CLIENTS[key].heartbeat()
            except Exception as exc:  # noqa: BLE001
                _CLIENTS.pop(key, None)
                raise StoreError(f"Chroma server at {host}:{port} is unreachable: {exc}") from exc
        return _CLIENTS[key]
    path = settings.resolved_chroma_path
    key = str(path.resolve())
    if key not in _CLIENTS:
        try:
            path.mkdir(parents=True, exist_ok=True)
            _CLIENTS[key] = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot open Chroma folder {path}: {exc}") from exc
    return _CLIENTS[key]


@dataclass
class ArticleInfo:
    id: str
    title: str
    source: str
    author: str
    date: str
    url: str
    content_hash: str
    n_chunks: int
    origin: str


class Store:
    """One Byline collection of chunks (plus its version token)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = _client(settings)
        try:
            self.collection = self.client.get_or_create_collection(
                name=settings.collection,
                embedding_function=None,  # we always pass our own vectors
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"byline": "chunks"},
            )
            self._meta = self.client.get_or_create_collection(name=f"{settings.collection}_meta", embedding_function=None)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot open collection {settings.collection!r} in {settings.describe_store()}: {exc}") from exc
        self._vector_store: Any = None

    # --- llama-index view ----------------------------------------------------------------------
    @property
    def vector_store(self) -> Any:
        if self._vector_store is None:
            from llama_index.vector_stores.chroma import ChromaVectorStore

            self._vector_store = ChromaVectorStore(chroma_collection=self.collection)
        return self._vector_store

    # --- version token -------------------------------------------------------------------------
    def version(self) -> str:
        got = self._meta.get(ids=["version"], include=["metadatas"])
        if got["ids"]:
            return str(got["metadatas"][0].get("token", ""))
        return ""

    def bump_version(self) -> None:
        self._meta.upsert(ids=["version"], embeddings=[[0.0]], metadatas=[{"token": uuid.uuid4().hex}], documents=["version"])

    # --- writes --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writers on an embedded folder (a Chroma server serialises them itself)."""
        if self.settings.uses_server:
            yield
            return
        lock_path = self.settings.resolved_chroma_path / ".byline-write.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def upsert(self, ids: list[str], embeddings: list[list[float]], documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        if not ids:
            return
        step = 4000  # below Chroma's max batch size
        for i in range(0, len(ids), step):
            self.collection.upsert(ids=ids[i : i + step], embeddings=embeddings[i : i + step], documents=documents[i : i + step], metadatas=metadatas[i : i + step])

    def delete_chunks(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 4000):
            self.collection.delete(ids=ids[i : i + 4000])

    def delete_article(self, article_id: str) -> int:
        got = self.collection.get(where={"article_id": article_id}, include=[])
        self.delete_chunks(got["ids"])
        return len(got["ids"])

    # --- reads ---------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.collection.count())

    def chunk_states(self, article_ids: list[str]) -> dict[str, dict[str, list[tuple[str, int]]]]:
        """For each article id: {content_hash: [(chunk_id, n_chunks), ...]} of what is stored."""
        out: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
        for i in range(0, len(article_ids), 200):
            part = article_ids[i : i + 200]
            where = {"article_id": part[0]} if len(part) == 1 else {"article_id": {"$in": part}}
            got = self.collection.get(where=where, include=["metadatas"])
            for cid, md in zip(got["ids"], got["metadatas"]):
                out[md["article_id"]][md.get("content_hash", "")].append((cid, int(md.get("n_chunks", -1))))
        return out

    def iter_metadatas(self, where: dict | None = None, batch: int = 5000, documents: bool = False) -> Iterator[tuple[str, dict[str, Any], str]]:
        offset = 0
        include = ["metadatas", "documents"] if documents else ["metadatas"]
        while True:
            got = self.collection.get(where=where, include=include, limit=batch, offset=offset)
            if not got["ids"]:
                return
            docs = got.get("documents") or [""] * len(got["ids"])
            yield from zip(got["ids"], got["metadatas"], docs)
            offset += len(got["ids"])
            if len(got["ids"]) < batch:
                return

    def articles(self) -> list[ArticleInfo]:
        """One entry per article (from its first chunk), newest first."""
        seen: dict[str, ArticleInfo] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for _cid, md, _ in self.iter_metadatas():
            counts[(md["article_id"], md.get("content_hash", ""))] += 1
            if md.get("chunk_index") == 0:
                seen[md["article_id"]] = ArticleInfo(
                    id=md["article_id"], title=md.get("title", ""), source=md.get("source", ""), author=md.get("author", ""),
                    date=md.get("date", ""), url=md.get("url", ""), content_hash=md.get("content_hash", ""),
                    n_chunks=int(md.get("n_chunks", 0)), origin=md.get("origin", ""),
                )
        for info in seen.values():
            info.n_chunks = counts[(info.id, info.content_hash)]
        return sorted(seen.values(), key=lambda a: (a.date, a.title), reverse=True)

    def stats(self) -> dict[str, Any]:
        arts = self.articles()
        dates = sorted(a.date for a in arts if a.date)
        outlets: dict[str, int] = defaultdict(int)
        for a in arts:
            outlets[a.source or "(unknown)"] += 1
        return {
            "store": self.settings.describe_store(),
            "collection": self.settings.collection,
            "articles": len(arts),
            "chunks": self.count(),
            "outlets": dict(sorted(outlets.items(), key=lambda kv: (-kv[1], kv[0]))),
            "first_date": dates[0] if dates else None,
            "last_date": dates[-1] if dates else None,
            "undated": sum(1 for a in arts if not a.date),
        }


def open_store(settings: Settings) -> Store:
    return Store(settings)


def forget_clients() -> None:
    """Drop cached clients (tests that restart a server or reuse a folder)."""
    _CLIENTS.clear()
    with contextlib.suppress(Exception):
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


