"""The Chroma store: an embedded folder or a server, the same interface for both.

Writes go straight to the Chroma collection (upsert by deterministic chunk id, so nothing can
duplicate); reads for retrieval go through llama-index's ``ChromaVectorStore``. A tiny second
collection holds a version token that changes on every write, which lets every process (ingest
workers, chat servers) notice changes cheaply and refresh derived indexes such as BM25.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterator

from rag.chroma_client import CLIENTS, client_key, is_connection_error, unreachable
from rag.config import Settings
from rag.errors import StoreError
from rag.schema import ChunkMeta, where_articles

log = logging.getLogger(__name__)


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


def _guard(fn: Any) -> Any:
    """Turn a lost Chroma server into a StoreError with a message a person can act on."""

    @functools.wraps(fn)
    def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self.settings.uses_server and is_connection_error(exc):
                raise unreachable(self.settings, exc) from None
            raise

    return wrapper


class Store:
    """One Byline collection of chunks (plus its version token).

    Embedded mode (default): a Chroma folder. Several processes may use one folder: writers are
    serialised by a file lock (``write_lock``), and a reader that sees the version token change
    reopens its client so its dense queries include what other processes wrote. Server mode
    (``chroma_url`` or ``chroma_host``): a Chroma server over HTTP; the server serialises writes.

    Hold the ``Store`` (or its ``vector_store``), not ``collection``: after a reopen, ``collection``
    and ``vector_store`` point at the fresh client.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = client_key(settings)
        self._vector_store: Any = None
        self._gen = -1
        self._open()

    def _open(self) -> None:
        # Two processes opening a fresh folder at once race on creating the schema and collections
        # ("already exists"): in embedded mode that happens under the write lock, and any mode retries.
        last: Exception | None = None
        for attempt in range(4):
            try:
                with contextlib.nullcontext() if self.settings.uses_server else self.write_lock():
                    self.client = CLIENTS.client(self.settings, self._key)
                    coll = self.client.get_or_create_collection(
                        name=self.settings.collection,
                        embedding_function=None,  # we always pass our own vectors
                        configuration={"hnsw": {"space": "cosine"}},
                        metadata={"byline": "chunks"},
                    )
                    meta = self.client.get_or_create_collection(name=f"{self.settings.collection}_meta", embedding_function=None)
                break
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001
                if self.settings.uses_server and is_connection_error(exc):
                    raise unreachable(self.settings, exc) from None
                last = exc
                time.sleep(0.2 * (attempt + 1))
        else:
            raise StoreError(f"Cannot open collection {self.settings.collection!r} in {self.settings.describe_store()}: {last}") from None
        self._collection, self._meta = coll, meta
        self._gen = CLIENTS.generation(self._key)
        if CLIENTS.known_token(self._key) is None:
            # A new client sees everything written so far: remember the token now, so a write by
            # another process before our first version() call still counts as a change.
            CLIENTS.set_token(self._key, self._token_in(meta), if_unknown=True)
        if self._vector_store is not None:
            self._vector_store._collection = coll  # keep one llama-index view; point it at the fresh client

    def _current(self) -> None:
        if not CLIENTS.is_current(self._key, self._gen):
            self._open()

    @property
    def collection(self) -> Any:
        self._current()
        return self._collection

    def close(self) -> None:
        """Release this store's cached client so its folder can be deleted (or the server let go).

        The client is shared by every ``Store`` on the same folder/server in this process: those
        (and this one, if used again) reconnect on next use.
        """
        CLIENTS.release(self._key)

    # --- llama-index view ----------------------------------------------------------------------
    @property
    def vector_store(self) -> Any:
        self._current()
        if self._vector_store is None:
            from llama_index.vector_stores.chroma import ChromaVectorStore

            self._vector_store = ChromaVectorStore(chroma_collection=self._collection)
        return self._vector_store

    # --- version token -------------------------------------------------------------------------
    def _read_token(self) -> str:
        self._current()
        return self._token_in(self._meta)

    @staticmethod
    def _token_in(meta: Any) -> str:
        got = meta.get(ids=["version"], include=["metadatas"])
        if got["ids"]:
            return str((got["metadatas"][0] or {}).get("token", ""))
        return ""

    @_guard
    def version(self) -> str:
        """A token that changes on every write by any process (upsert, delete). One small read.

        Call it before using derived state (BM25, caches): when it differs from what this process
        last saw in embedded mode, the client is reopened first so dense queries see the change too.
        """
        token = self._read_token()
        known = CLIENTS.known_token(self._key)
        if known is None:
            CLIENTS.set_token(self._key, token)
            return token
        if token == known:
            return token
        if not self.settings.uses_server:
            CLIENTS.reopen_embedded(self.settings, self._key)
            self._open()
        CLIENTS.set_token(self._key, token)
        return token

    @_guard
    def bump_version(self) -> None:
        token = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        self._current()
        self._meta.upsert(ids=["version"], embeddings=[[0.0]], metadatas=[{"token": token}], documents=["version"])
        # Our own write leaves this client up to date (a write makes Chroma catch up with the log).
        CLIENTS.set_token(self._key, token)

    # --- writes --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writers on an embedded folder across threads and processes (re-entrant).

        A Chroma server serialises writes itself; there this only serialises this process's threads.
        """
        lock_file = None if self.settings.uses_server else self.settings.resolved_chroma_path / ".byline-write.lock"
        with CLIENTS.write_lock(self._key, lock_file):
            yield

    @_guard
    def upsert(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[dict[str, Any]]) -> int:
        """Write chunks (by id, so re-runs never duplicate), drop what they supersede, bump the version once.

        ``embeddings``: one vector per id, as a list of lists or an (n, dim) numpy array.

        Chunks of one article are expected in one call. Any other stored chunk of those articles
        that belongs to another version of the article (other content hash, or an index past its
        new chunk count) is deleted in the same locked step, so two processes that write different
        versions of one article at once leave one whole version, never a mix. This is the one
        place stale chunks are deleted. Returns how many were.
        """
        if not ids:
            return 0
        with self.write_lock():
            step = 4000  # below Chroma's max batch size
            for i in range(0, len(ids), step):
                self.collection.upsert(ids=ids[i : i + step], embeddings=embeddings[i : i + step], documents=documents[i : i + step], metadatas=metadatas[i : i + step])
            dropped = self._drop_superseded(ids, metadatas)
            self.bump_version()
        return dropped

    def _drop_superseded(self, ids: list[str], metadatas: list[dict[str, Any]]) -> int:
        """Delete the stored chunks of these articles that this write superseded (no version bump)."""
        current: dict[str, ChunkMeta] = {}
        for md in metadatas:
            m = ChunkMeta.from_metadata(md)
            if m.article_id and m.content_hash:
                current[m.article_id] = m
        if not current:
            return 0
        written = set(ids)
        stale: list[str] = []
        aids = list(current)
        for i in range(0, len(aids), 200):
            got = self.collection.get(where=where_articles(aids[i : i + 200]), include=["metadatas"])
            for cid, md in zip(got["ids"], got["metadatas"]):
                if cid in written:
                    continue
                old = ChunkMeta.from_metadata(md)
                new = current.get(old.article_id)
                if new is not None and (old.content_hash != new.content_hash or 0 <= new.n_chunks <= old.chunk_index):
                    stale.append(cid)
        self._delete(stale)
        if stale:
            log.info("dropped %d chunks of superseded article versions", len(stale))
        return len(stale)

    def _delete(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 4000):
            self.collection.delete(ids=ids[i : i + 4000])

    @_guard
    def delete_chunks(self, ids: list[str]) -> None:
        if not ids:
            return
        with self.write_lock():
            self._delete(ids)
            self.bump_version()

    @_guard
    def delete_article(self, article_id: str) -> int:
        with self.write_lock():  # the read that finds the chunks and the delete are one step
            got = self.collection.get(where=where_articles([article_id]), include=[])
            self.delete_chunks(got["ids"])
            return len(got["ids"])

    # --- reads ---------------------------------------------------------------------------------
    @_guard
    def count(self) -> int:
        return int(self.collection.count())

    @_guard
    def chunk_states(self, article_ids: list[str]) -> dict[str, dict[str, list[tuple[str, int]]]]:
        """For each article id: {content_hash: [(chunk_id, n_chunks), ...]} of what is stored."""
        out: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
        for i in range(0, len(article_ids), 200):
            got = self.collection.get(where=where_articles(article_ids[i : i + 200]), include=["metadatas"])
            for cid, md in zip(got["ids"], got["metadatas"]):
                m = ChunkMeta.from_metadata(md)
                out[m.article_id][m.content_hash].append((cid, m.n_chunks))
        return out

    @_guard
    def _page(self, where: dict | None, include: list[str], limit: int, offset: int) -> dict[str, Any]:
        return self.collection.get(where=where, include=include, limit=limit, offset=offset)

    def iter_metadatas(self, where: dict | None = None, batch: int = 5000, documents: bool = False) -> Iterator[tuple[str, dict[str, Any], str]]:
        offset = 0
        include = ["metadatas", "documents"] if documents else ["metadatas"]
        while True:
            got = self._page(where, include, batch, offset)
            if not got["ids"]:
                return
            docs = got.get("documents") or [""] * len(got["ids"])
            yield from zip(got["ids"], got["metadatas"], docs)
            offset += len(got["ids"])
            if len(got["ids"]) < batch:
                return

    @_guard
    def articles(self) -> list[ArticleInfo]:
        """One entry per article (from its first chunk), newest first."""
        seen: dict[str, ArticleInfo] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for _cid, md, _ in self.iter_metadatas():
            m = ChunkMeta.from_metadata(md)
            counts[(m.article_id, m.content_hash)] += 1
            if m.chunk_index == 0:
                seen[m.article_id] = ArticleInfo(
                    id=m.article_id, title=m.title, source=m.source, author=m.author, date=m.date, url=m.url,
                    content_hash=m.content_hash, n_chunks=m.n_chunks, origin=m.origin,
                )
        for info in seen.values():
            info.n_chunks = counts[(info.id, info.content_hash)]
        return sorted(seen.values(), key=lambda a: (a.date, a.title), reverse=True)

    @_guard
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


def forget_clients() -> None:
    """Drop cached clients, as in a fresh process (tests that restart a server or reuse a folder); open Stores reconnect on next use."""
    CLIENTS.forget_all()
