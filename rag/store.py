"""The Chroma store: an embedded folder or a server, the same interface for both.

Writes go straight to the Chroma collection (upsert by deterministic chunk id, so nothing can
duplicate); reads for retrieval go through llama-index's ``ChromaVectorStore``. A tiny second
collection holds a version token that changes on every write, which lets every process (ingest
workers, chat servers) notice changes cheaply and refresh derived indexes such as BM25.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from typing import Any, Iterator

from rag.config import Settings
from rag.errors import StoreError

log = logging.getLogger(__name__)

_CLIENTS: dict[str, Any] = {}
_GENERATION: dict[str, int] = defaultdict(int)  # bumped when a cached client is replaced by a fresh one
_KNOWN_TOKEN: dict[str, str] = {}  # the version token the current client is known to be up to date with
_STATE_LOCK = threading.RLock()
_PROC_LOCKS: dict[str, threading.RLock] = defaultdict(threading.RLock)  # one per embedded folder
_HELD = threading.local()  # per-thread depth of write_lock() per folder (the lock is re-entrant)


def _server_address(settings: Settings) -> tuple[str, int, bool]:
    if settings.chroma_url:
        from urllib.parse import urlparse

        u = urlparse(settings.chroma_url)
        return u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 8000), u.scheme == "https"
    return settings.chroma_host or "127.0.0.1", settings.chroma_port, False


def _client_key(settings: Settings) -> str:
    if settings.uses_server:
        host, port, ssl = _server_address(settings)
        return f"{'https' if ssl else 'http'}://{host}:{port}|{settings.chroma_token or ''}"
    return str(settings.resolved_chroma_path.resolve())


def _unreachable(settings: Settings, exc: BaseException | None = None) -> StoreError:
    host, port, ssl = _server_address(settings)
    url = f"{'https' if ssl else 'http'}://{host}:{port}"
    why = _short_reason(exc) if exc is not None else "no answer"
    return StoreError(
        f"Cannot reach the Chroma server at {url} ({why}). Start it (e.g. `chroma run --path DIR --host {host} --port {port}`), "
        "check BYLINE_CHROMA_URL / BYLINE_CHROMA_HOST / BYLINE_CHROMA_PORT, or unset them to use a local Chroma folder."
    )


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "401" in low or "403" in low or "unauthorized" in low or "forbidden" in low or "authenticat" in low:
        return "authentication failed: check BYLINE_CHROMA_TOKEN"
    if "refused" in low or "could not connect" in low or "connecterror" in low or "connect" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return "timed out"
    return text[:200]


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return isinstance(exc, (ConnectionError, TimeoutError))
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    return "could not connect to a chroma server" in str(exc).lower()


def _open_client(settings: Settings, key: str) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.uses_server:
        host, port, ssl = _server_address(settings)
        headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # noqa: BLE001 - any failure here means "the server is not usable"
            raise _unreachable(settings, exc) from None
        return client
    path = settings.resolved_chroma_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"Cannot open the Chroma folder {path}: {exc}") from None


def _client(settings: Settings) -> Any:
    key = _client_key(settings)
    with _STATE_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = _open_client(settings, key)
            _GENERATION[key] += 1
            _KNOWN_TOKEN.pop(key, None)
        return _CLIENTS[key]


def _reopen_embedded(settings: Settings, key: str) -> None:
    """Replace the cached embedded client by a fresh one.

    An embedded Chroma client keeps its HNSW index in memory and does not see vectors another
    process added (its counts and metadata are fresh, its queries are not) until it writes itself
    or is reopened. The old client is dropped, not stopped, so a query running in another thread
    on it finishes; it is freed when the last reference goes.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    with _STATE_LOCK:
        old = _CLIENTS.pop(key, None)
        ident = str(settings.resolved_chroma_path)
        if old is not None:
            ident = getattr(old, "_identifier", ident)
        SharedSystemClient._identifier_to_system.pop(ident, None)
        SharedSystemClient._identifier_to_refcount.pop(ident, None)
        _CLIENTS[key] = _open_client(settings, key)
        _GENERATION[key] += 1


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
            if self.settings.uses_server and _is_connection_error(exc):
                raise _unreachable(self.settings, exc) from None
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
        self._key = _client_key(settings)
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
                    self.client = _client(self.settings)
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
                if self.settings.uses_server and _is_connection_error(exc):
                    raise _unreachable(self.settings, exc) from None
                last = exc
                time.sleep(0.2 * (attempt + 1))
        else:
            raise StoreError(f"Cannot open collection {self.settings.collection!r} in {self.settings.describe_store()}: {last}") from None
        self._collection, self._meta = coll, meta
        self._gen = _GENERATION[self._key]
        with _STATE_LOCK:
            fresh = self._key not in _KNOWN_TOKEN
        if fresh:
            # A new client sees everything written so far: remember the token now, so a write by
            # another process before our first version() call still counts as a change.
            token = self._token_in(meta)
            with _STATE_LOCK:
                _KNOWN_TOKEN.setdefault(self._key, token)
        if self._vector_store is not None:
            self._vector_store._collection = coll  # keep one llama-index view; point it at the fresh client

    def _current(self) -> None:
        if self._gen != _GENERATION[self._key] or self._key not in _CLIENTS:
            self._open()

    @property
    def collection(self) -> Any:
        self._current()
        return self._collection

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
        with _STATE_LOCK:
            known = _KNOWN_TOKEN.get(self._key)
            if known is None:
                _KNOWN_TOKEN[self._key] = token
                return token
            if token == known:
                return token
        if not self.settings.uses_server:
            _reopen_embedded(self.settings, self._key)
            self._open()
        with _STATE_LOCK:
            _KNOWN_TOKEN[self._key] = token
        return token

    @_guard
    def bump_version(self) -> None:
        token = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        self._current()
        self._meta.upsert(ids=["version"], embeddings=[[0.0]], metadatas=[{"token": token}], documents=["version"])
        with _STATE_LOCK:
            # Our own write leaves this client up to date (a write makes Chroma catch up with the log).
            _KNOWN_TOKEN[self._key] = token

    # --- writes --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writers on an embedded folder across threads and processes (re-entrant).

        A Chroma server serialises writes itself; there this only serialises this process's threads.
        """
        rlock = _PROC_LOCKS[self._key]
        with rlock:
            depth: dict[str, int] = getattr(_HELD, "depth", None) or {}
            _HELD.depth = depth
            if self.settings.uses_server or depth.get(self._key, 0) > 0:
                depth[self._key] = depth.get(self._key, 0) + 1
                try:
                    yield
                finally:
                    depth[self._key] -= 1
                return
            lock_path = self.settings.resolved_chroma_path / ".byline-write.lock"
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                depth[self._key] = 1
                try:
                    yield
                finally:
                    depth[self._key] = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)

    @_guard
    def upsert(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Write chunks (by id, so re-runs never duplicate) and bump the version token.

        ``embeddings``: one vector per id, as a list of lists or an (n, dim) numpy array.

        Chunks of one article are expected in one call. Any stored chunk of those articles that
        belongs to another version of the article (other content hash, or an index past its new
        chunk count) is deleted in the same locked step, so two processes that write different
        versions of one article at once leave one whole version, never a mix.
        """
        if not ids:
            return
        with self.write_lock():
            step = 4000  # below Chroma's max batch size
            for i in range(0, len(ids), step):
                self.collection.upsert(ids=ids[i : i + step], embeddings=embeddings[i : i + step], documents=documents[i : i + step], metadatas=metadatas[i : i + step])
            self._drop_superseded(ids, metadatas)
            self.bump_version()

    def _drop_superseded(self, ids: list[str], metadatas: list[dict[str, Any]]) -> None:
        current: dict[str, str] = {}
        for md in metadatas:
            aid, h = (md or {}).get("article_id"), (md or {}).get("content_hash")
            if aid and h:
                current[str(aid)] = str(h)
        if not current:
            return
        written = set(ids)
        stale: list[str] = []
        aids = list(current)
        for i in range(0, len(aids), 200):
            part = aids[i : i + 200]
            where = {"article_id": part[0]} if len(part) == 1 else {"article_id": {"$in": part}}
            got = self.collection.get(where=where, include=["metadatas"])
            for cid, md in zip(got["ids"], got["metadatas"]):
                md = md or {}
                if cid not in written and md.get("content_hash", "") != current.get(md.get("article_id", "")):
                    stale.append(cid)
        for i in range(0, len(stale), 4000):
            self.collection.delete(ids=stale[i : i + 4000])
        if stale:
            log.info("dropped %d chunks of superseded article versions", len(stale))

    @_guard
    def delete_chunks(self, ids: list[str]) -> None:
        if not ids:
            return
        with self.write_lock():
            for i in range(0, len(ids), 4000):
                self.collection.delete(ids=ids[i : i + 4000])
            self.bump_version()

    @_guard
    def delete_article(self, article_id: str) -> int:
        with self.write_lock():  # the read that finds the chunks and the delete are one step
            got = self.collection.get(where={"article_id": article_id}, include=[])
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
            part = article_ids[i : i + 200]
            where = {"article_id": part[0]} if len(part) == 1 else {"article_id": {"$in": part}}
            got = self.collection.get(where=where, include=["metadatas"])
            for cid, md in zip(got["ids"], got["metadatas"]):
                out[md["article_id"]][md.get("content_hash", "")].append((cid, int(md.get("n_chunks", -1))))
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


def open_store(settings: Settings) -> Store:
    return Store(settings)


def forget_clients() -> None:
    """Drop cached clients (tests that restart a server or reuse a folder); open Stores reconnect on next use."""
    with _STATE_LOCK:
        for key in list(_CLIENTS):
            _GENERATION[key] += 1
        _CLIENTS.clear()
        _KNOWN_TOKEN.clear()
    with contextlib.suppress(Exception):
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


