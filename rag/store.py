"""The Chroma store: an embedded folder or a server, the same interface for both.

Writes go straight to the Chroma collection (upsert by deterministic chunk id, so nothing can
duplicate); reads for retrieval go through llama-index's ``ChromaVectorStore``. A tiny second
collection holds a version token that changes on every write, which lets every process (ingest
workers, chat servers) notice changes cheaply and refresh derived indexes such as BM25.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from rag.chroma_client import CLIENTS, client_key, is_connection_error, unreachable
from rag.config import Settings
from rag.errors import StoreError
from rag.schema import ChunkMeta, where_articles

if TYPE_CHECKING:
    from rag.keywords import KeywordIndex

log = logging.getLogger(__name__)


@dataclass
class Change:
    """What one write may have changed: these chunks, and every chunk of these articles (a change record)."""

    seq: int
    ids: list[str]
    articles: list[str]


def _log_id(seq: int) -> str:
    return f"log:{seq:012d}"


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
        self._keywords: "KeywordIndex | None" = None
        self._pending_seq: int | None = None  # the change record of the write under way
        self._written: dict[str, tuple[str, dict[str, Any]]] | None = None  # what it wrote (None: unknown, read back)
        self._open()

    def _open(self) -> None:
        # Two processes opening a fresh folder at once race on creating the schema and collections
        # ("already exists"): in embedded mode that happens under the write lock, and any mode retries.
        last: Exception | None = None
        for attempt in range(4):
            try:
                with contextlib.nullcontext() if self.settings.uses_server else self.write_lock(catch_up=False):
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
        if self._keywords is not None:
            self._keywords.close()
        CLIENTS.release(self._key)

    # --- llama-index view ----------------------------------------------------------------------
    @property
    def vector_store(self) -> Any:
        self._current()
        if self._vector_store is None:
            from llama_index.vector_stores.chroma import ChromaVectorStore

            self._vector_store = ChromaVectorStore(chroma_collection=self._collection)
        return self._vector_store

    # --- version token and change records ------------------------------------------------------
    # Beside the token, the "version" record holds ``seq``: the last committed change record. A write
    # first records (``log:<seq>``) which chunks and articles it may change, then writes the chunks,
    # then commits the record with the new token. Keyword indexes resync what committed records name
    # (see rag.keywords); a record left uncommitted by a crash is merged into the next write's.
    def _read_token(self) -> str:
        self._current()
        return self._token_in(self._meta)

    @staticmethod
    def _token_in(meta: Any) -> str:
        return Store._state_in(meta)[0]

    @staticmethod
    def _state_in(meta: Any) -> tuple[str, int]:
        got = meta.get(ids=["version"], include=["metadatas"])
        if got["ids"]:
            md = got["metadatas"][0] or {}
            return str(md.get("token", "")), int(md.get("seq", 0))
        return "", 0

    @_guard
    def version(self) -> str:
        """A token that changes on every write by any process (upsert, delete). One small read.

        Call it before using derived state (BM25, caches): when it differs from what this process
        last saw in embedded mode, the client is reopened first so dense queries see the change too.
        """
        return self.version_state()[0]

    @_guard
    def version_state(self) -> tuple[str, int]:
        """The version token and the sequence number of the last committed change record (one small read; see ``version``)."""
        self._current()
        token, seq = self._state_in(self._meta)
        known = CLIENTS.known_token(self._key)
        if known is None:
            CLIENTS.set_token(self._key, token)
            return token, seq
        if token == known:
            return token, seq
        if not self.settings.uses_server:
            CLIENTS.reopen_embedded(self.settings, self._key)
            self._open()
        CLIENTS.set_token(self._key, token)
        return token, seq

    @_guard
    def bump_version(self) -> None:
        """Change the token; inside a write, also commit its change record."""
        token = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        self._current()
        seq = self._pending_seq if self._pending_seq is not None else self._state_in(self._meta)[1]
        self._meta.upsert(ids=["version"], embeddings=[[0.0]], metadatas=[{"token": token, "seq": seq}], documents=["version"])
        self._pending_seq = None
        # Our own write leaves this client up to date (a write makes Chroma catch up with the log).
        CLIENTS.set_token(self._key, token)
        old = seq - self.settings.keyword_log_keep
        if old > 0:  # processes further behind than this rebuild their keyword index
            self._meta.delete(ids=[_log_id(old)])

    def _record_change(self, ids: Iterable[str] = (), articles: Iterable[str] = ()) -> None:
        """Before a write touches chunks: record which it may change (merged with an uncommitted record, and with
        this write's earlier records when writes nest)."""
        self._current()
        seq = self._state_in(self._meta)[1] + 1
        ids, articles = set(ids), set(articles)
        prev = self._read_changes([seq])
        if prev:
            ids.update(prev[0].ids)
            articles.update(prev[0].articles)
        if self._pending_seq != seq:  # a new write (not one nested in this one)
            self._written = None if prev else {}  # after a crashed write, what is stored must be read back
        self._meta.upsert(ids=[_log_id(seq)], embeddings=[[0.0]], metadatas=[{"seq": seq}],
                          documents=[json.dumps({"ids": sorted(ids), "articles": sorted(articles)})])
        self._pending_seq = seq

    def _read_changes(self, seqs: list[int]) -> list[Change]:
        out: list[Change] = []
        for i in range(0, len(seqs), 1000):
            got = self._meta.get(ids=[_log_id(n) for n in seqs[i : i + 1000]], include=["metadatas", "documents"])
            for md, doc in zip(got["metadatas"], got["documents"]):
                body = json.loads(doc)
                out.append(Change(int(md["seq"]), body["ids"], body["articles"]))
        return sorted(out, key=lambda c: c.seq)

    @_guard
    def changes(self, first: int, last: int) -> list[Change] | None:
        """The committed change records ``first``..``last``; None when some are no longer kept."""
        self._current()
        got = self._read_changes(list(range(first, last + 1)))
        return got if len(got) == last - first + 1 else None

    @_guard
    def changes_after(self, seq: int) -> list[Change]:
        """The change records after ``seq``, committed or not (the last may be a write under way)."""
        self._current()
        return self._read_changes(list(range(seq + 1, self._state_in(self._meta)[1] + 2)))

    @_guard
    def pending_change(self) -> Change | None:
        """The change record of a write under way, or of one that died before committing."""
        self._current()
        got = self._read_changes([self._state_in(self._meta)[1] + 1])
        return got[0] if got else None

    @_guard
    def commit_interrupted(self) -> bool:
        """Commit the record of a write that died before committing, so keyword indexes resync its chunks.

        Embedded mode only: holding the write lock proves its writer is gone. Returns whether there was one.
        """
        with self.write_lock():
            pending = self.pending_change()
            if pending is None:
                return False
            log.warning("a write to %s was interrupted: resyncing the keyword index for its %d chunks and %d articles",
                        self.settings.describe_store(), len(pending.ids), len(pending.articles))
            self._pending_seq = pending.seq
            self.bump_version()
            return True

    @property
    def keywords(self) -> "KeywordIndex":
        """The keyword index of this collection, which this store's writes keep up to date."""
        if self._keywords is None:
            from rag.keywords import KeywordIndex

            self._keywords = KeywordIndex(self)
        return self._keywords

    def _update_keywords(self) -> None:
        written, self._written = self._written, None
        try:
            self.keywords.refresh(written)
        except Exception as exc:  # noqa: BLE001 - the chunks are written; readers catch up from the change record
            log.warning("keyword index not updated after a write (%s); it catches up on next use", exc)

    @_guard
    def chunk_ids_of(self, articles: list[str]) -> list[str]:
        """The ids of every stored chunk of these articles."""
        out: list[str] = []
        for i in range(0, len(articles), 200):
            out += self.collection.get(where=where_articles(articles[i : i + 200]), include=[])["ids"]
        return out

    @_guard
    def chunks_for(self, ids: list[str], articles: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of the stored chunks among ``ids`` and of every stored chunk of ``articles``."""
        found, metas, docs = self.chunks(ids)
        out: dict[str, tuple[str, dict[str, Any]]] = {cid: (doc, md) for cid, md, doc in zip(found, metas, docs)}
        for i in range(0, len(articles), 200):
            got = self.collection.get(where=where_articles(articles[i : i + 200]), include=["metadatas", "documents"])
            out.update((cid, (doc, md)) for cid, doc, md in zip(got["ids"], got["documents"], got["metadatas"]))
        return out

    # --- writes --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self, catch_up: bool = True) -> Iterator[None]:
        """Serialise writers on an embedded folder across threads and processes (re-entrant).

        On taking the lock, a client that another process has written past is reopened first: an embedded
        client keeps its vector index in memory, and writing through a stale one persists an index without
        the other process's vectors (their metadata kept, their vectors gone). A Chroma server serialises
        writes itself; there this only serialises this process's threads.
        """
        lock_file = None if self.settings.uses_server else self.settings.resolved_chroma_path / ".byline-write.lock"
        with CLIENTS.write_lock(self._key, lock_file) as depth:
            if catch_up and lock_file is not None and depth == 1:
                self.version_state()
            yield

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """The write lock, for a write that records a change: a failed write leaves its record uncommitted, to be
        merged into the next write's (which then reads what is stored instead of trusting what this one wrote)."""
        with self.write_lock():
            try:
                yield
            except BaseException:
                self._pending_seq = self._written = None
                raise

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
        with self._changing():
            self._record_change(ids, {ChunkMeta.from_metadata(md).article_id for md in metadatas} - {""})
            if self._written is not None:
                self._written.update(zip(ids, zip(documents, metadatas)))
            step = 4000  # below Chroma's max batch size
            for i in range(0, len(ids), step):
                self.collection.upsert(ids=ids[i : i + step], embeddings=embeddings[i : i + step], documents=documents[i : i + step], metadatas=metadatas[i : i + step])
            dropped = self._drop_superseded(ids, metadatas)  # its deletes are chunks of the recorded articles
            self.bump_version()
            self._update_keywords()
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
        with self._changing():
            self._record_change(ids)
            self._delete(ids)
            self.bump_version()
            self._update_keywords()

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

    # --- which embedder made the vectors (rag.embed.reembed keeps this true) ------------------------
    # The collection's metadata names the embedder of its vectors (EMBEDDER) and, while a re-embedding
    # is under way, the one it moves to (PENDING). Each chunk a re-embedding has rewritten carries the
    # target's tag (EMBEDDED_WITH), so a run that was killed resumes where it stopped.
    EMBEDDER = "byline_embedder"
    PENDING = "byline_embedder_pending"
    EMBEDDED_WITH = "embedded_with"

    def _collection_metadata(self) -> dict[str, Any]:
        self._current()
        return dict(self.client.get_collection(name=self.settings.collection).metadata or {})

    def _set_collection_metadata(self, **changes: Any) -> None:
        md = {k: v for k, v in {**self._collection_metadata(), **changes}.items() if v is not None}
        self.collection.modify(metadata=md)  # modify replaces the whole metadata
        self._embedder_cache = None

    @_guard
    def records_embedder(self) -> bool:
        """Whether the archive's metadata names its embedder (archives written before identities were
        recorded do not; ``embedder_state`` then infers the legacy one from the vectors)."""
        return self.EMBEDDER in self._collection_metadata()

    @_guard
    def embedder_state(self) -> tuple[Any, Any]:
        """(identity of the embedder the vectors are from, identity a re-embedding is moving them to), each
        ``rag.embedders.EmbedderIdentity`` or None; both None for a new archive. An archive with chunks but
        no record was written before identities were recorded: its vectors are the legacy embedder's
        ('minilm', torch). An emptied archive keeps its record. Read again only after a write by any process (a query
        pays one comparison)."""
        token = CLIENTS.known_token(self._key)
        cached = getattr(self, "_embedder_cache", None)
        if cached is not None and token is not None and cached[0] == token:
            return cached[1]
        from rag.embedders import LEGACY, EmbedderIdentity

        state: tuple[Any, Any] = (None, None)
        md = self._collection_metadata()
        recorded = EmbedderIdentity.from_json(md.get(self.EMBEDDER))
        # A recorded identity answers without counting the chunks (12+ ms at 100k, paid after every write);
        # check_embedder counts only when it would refuse, since an emptied archive takes any embedder.
        if recorded is not None:
            state = (recorded, EmbedderIdentity.from_json(md.get(self.PENDING)))
        elif self.count() > 0:
            from rag.embedders.torch_st import bundled_minilm_path, torch_fingerprint

            vec = self.collection.get(limit=1, include=["embeddings"])["embeddings"]
            legacy = EmbedderIdentity(LEGACY, torch_fingerprint(str(bundled_minilm_path())), len(vec[0]))
            state = (legacy, EmbedderIdentity.from_json(md.get(self.PENDING)))
        self._embedder_cache = (token, state)
        return state

    @_guard
    def check_embedder(self, identity: Any) -> None:
        """Raise ConfigError unless this archive's vectors were made by ``identity``'s embedder: a query
        embedded by one model must not be compared with vectors of another. An empty archive takes any."""
        from rag.errors import ConfigError

        recorded, pending = self.embedder_state()
        where = self.settings.describe_store()
        if (pending is not None or (recorded is not None and not recorded.same_vectors(identity))) and self.count() == 0:
            return
        if pending is not None:
            raise ConfigError(
                f"The archive in {where} is part-way through re-embedding from {recorded.describe()} to "
                f"{pending.describe()}: its vectors are mixed. Finish it with `byline reindex --embeddings` "
                f"(BYLINE_EMBEDDER={pending.name}).")
        if recorded is not None and not recorded.same_vectors(identity):
            raise ConfigError(
                f"The archive in {where} was embedded with {recorded.describe()}, but this process embeds with "
                f"{identity.describe()}. Either set BYLINE_EMBEDDER={recorded.name}, or re-embed the archive for "
                f"{identity.name!r}: `byline reindex --embeddings` (or any `byline ingest`) with BYLINE_EMBEDDER={identity.name}.")

    def begin_reembed(self, target: Any) -> None:
        """Record that the vectors are being moved to ``target`` (the caller holds the write lock); the version
        bump makes other processes re-read the record, so they refuse queries until the move is done."""
        self._set_collection_metadata(**{self.PENDING: target.to_json()})
        self.bump_version()

    @_guard
    def chunks(self, ids: list[str]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        """(ids, metadatas, documents) of these chunks (those still stored)."""
        out: tuple[list[str], list[dict[str, Any]], list[str]] = ([], [], [])
        for i in range(0, len(ids), 4000):
            got = self.collection.get(ids=ids[i : i + 4000], include=["metadatas", "documents"])
            out[0].extend(got["ids"])
            out[1].extend(got["metadatas"])
            out[2].extend(got["documents"])
        return out

    @_guard
    def rewrite_vectors(self, ids: list[str], embeddings: Any, tag: str) -> None:
        """Replace these chunks' vectors (text and metadata stay; ``tag`` marks them rewritten). No version bump:
        ``finish_reembed`` bumps once at the end."""
        with self.write_lock():
            for i in range(0, len(ids), 4000):
                n = len(ids[i : i + 4000])
                self.collection.update(ids=ids[i : i + 4000], embeddings=embeddings[i : i + 4000], metadatas=[{self.EMBEDDED_WITH: tag}] * n)

    @_guard
    def finish_reembed(self, identity: Any) -> None:
        """Record ``identity`` as the embedder of every vector and drop the pending mark, in one metadata write;
        bump the version so other processes reopen and see the new vectors."""
        with self.write_lock():
            self._set_collection_metadata(**{self.EMBEDDER: identity.to_json(), self.PENDING: None})
            self.bump_version()


def forget_clients() -> None:
    """Drop cached clients, as in a fresh process (tests that restart a server or reuse a folder); open Stores reconnect on next use."""
    CLIENTS.forget_all()
