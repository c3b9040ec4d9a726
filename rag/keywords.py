"""The keyword (BM25) side of retrieval: a persistent index that each write updates, shared by processes.

One SQLite file per collection (WAL mode: readers never wait for the writer and each query reads one
consistent snapshot). It holds, per chunk, its length in tokens and its outlet and month, and per
term the postings (chunk row ids and term counts as packed arrays) in segments: each applied change
appends one segment per term it touches, and a term's segments are merged (dropping deleted chunks)
once it has ``_MERGE_AT`` of them. A process keeps only the chunk lengths and a live mask in memory,
caught up from the file by generation number, so a query reads just its terms' postings. It also
keeps each article's syndication signature (``sigs``, for ``ingest.syndication``), added and removed
with the article's first chunk, so an ingest process need not read them all from Chroma.

Scoring is what the earlier in-memory index (llama-index's bm25s retriever) computed, so rankings do
not move: bm25s' tokens (lower case, ``\\w\\w+``, its English stopwords, PyStemmer English stems) over
``ChunkMeta.headed`` text, and Lucene BM25 with bm25s' defaults (k1 1.5, b 0.75).

How it follows Chroma: every write records, in the store's meta collection, a change record (a
sequence number and the chunk ids and article ids it may touch) before it writes, and commits it with
the version token afterwards (``Store``). The index remembers the last sequence number it applied;
catching up resyncs the touched chunks from Chroma (present: indexed anew; absent: removed), which is
idempotent, so it works for the writer, for other processes on the same folder, and for processes on
other machines that share a Chroma server (each with its own file). It is rebuilt from Chroma when the
file is missing or unreadable, when the records it needs were trimmed, when its chunk count disagrees
with Chroma's while no write is under way, and on ``byline reindex``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import re
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from rag.copies import joined
from rag.schema import CHUNK_INDEX, ChunkMeta

if TYPE_CHECKING:
    from rag.store import Change, Store

log = logging.getLogger(__name__)

K1, B = 1.5, 0.75  # bm25s' defaults, which the earlier index used
FORMAT = "2"  # bump when the tokens or the file's layout change: older files are rebuilt
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s' token pattern
_MERGE_AT = 16  # segments of one term before they are merged into one
_FLUSH_DOCS = 50_000  # chunks per segment when rebuilding
_SQL_VARS = 500  # ids per IN (...) query

_local = threading.local()


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG on import
    return frozenset(STOPWORDS_EN)


def tokens(text: str) -> list[str]:
    """The terms of ``text`` as bm25s with an English PyStemmer tokenises them (stopwords out, repeats kept)."""
    st = getattr(_local, "stem", None)
    if st is None:  # PyStemmer objects are not thread-safe: one per thread
        import Stemmer

        st = _local.stem = (Stemmer.Stemmer("english").stemWords, _stopwords())
    stem, stop = st
    return stem([w for w in _TOKEN.findall(text.lower()) if w not in stop])


def index_path(store: "Store") -> Path:
    """Embedded: inside the Chroma folder, so it moves, is backed up and is deleted with it (the write
    lock file lives there too). Server mode: a per-machine file under the data dir."""
    s = store.settings
    name = f"byline-keywords-{s.collection}.sqlite3"
    if not s.uses_server:
        return s.resolved_chroma_path / name
    server = re.sub(r"[^A-Za-z0-9.]+", "_", store._key.split("|")[0])
    return s.data_dir / "keywords" / f"{server}-{name}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs(rowid INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id TEXT NOT NULL UNIQUE, article_id TEXT NOT NULL,
                                length INTEGER NOT NULL, source TEXT NOT NULL, month INTEGER NOT NULL, gen INTEGER NOT NULL,
                                joined TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS docs_gen ON docs(gen);
CREATE INDEX IF NOT EXISTS docs_article ON docs(article_id);
CREATE TABLE IF NOT EXISTS dead(rowid INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_gen ON dead(gen);
CREATE TABLE IF NOT EXISTS postings(term TEXT NOT NULL, ids BLOB NOT NULL, tfs BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS postings_term ON postings(term);
CREATE TABLE IF NOT EXISTS facets(kind TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(kind, value));
CREATE TABLE IF NOT EXISTS sigs(rowid INTEGER PRIMARY KEY, article_id TEXT NOT NULL, grp TEXT NOT NULL, minhash TEXT NOT NULL);
"""


class Inconsistent(Exception):
    """The file cannot be caught up with the store: rebuild it."""


@dataclass
class ReindexReport:
    chunks: int
    terms: int
    seconds: float
    path: Path


class KeywordIndex:
    """BM25 over every chunk of one store, persisted beside it and caught up with each write.

    ``refresh()`` (cheap when nothing changed) brings it up to date with the store; ``search`` ranks
    chunk ids; ``archive_months`` and ``archive_sources`` are what the archive covers; ``joined_groups``
    the syndication groups that a copy joined (``rag.copies.joined``): the only ones that can hold two articles.
    """

    def __init__(self, store: "Store") -> None:
        self.store = store
        self.path = index_path(store)
        self.lock = threading.RLock()  # one connection per index: queries and updates in this process take turns
        self.version: str | None = None  # the store's version token last seen; None until the first refresh
        self.archive_months: set[tuple[int, int]] = set()
        self.archive_sources: set[str] = set()
        self.joined_groups: set[str] = set()
        self._conn: sqlite3.Connection | None = None
        self._inode = -1
        self._checked = False  # the consistency check at first use
        self._reset_memory()

    # --- the file ------------------------------------------------------------------------------
    def _reset_memory(self) -> None:
        self._epoch = ""
        self._gen = -1
        self._lens = np.zeros(0, dtype=np.float32)  # tokens per chunk row id; 0 where deleted
        self._live = np.zeros(0, dtype=bool)
        self._n = 0
        self._total = 0.0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open_file()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            log.warning("%s", _rebuild_reason(self.path, exc))
            self._discard_file()
            conn = self._open_file()
        self._conn = conn
        return conn

    def _open_file(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut may lose the last commits, never consistency
            with _write(conn):
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(stmt)
                have = dict(conn.execute("SELECT key, value FROM info").fetchall())
                if not have:
                    conn.executemany("INSERT INTO info VALUES (?, ?)", [("format", FORMAT), ("seq", "-1"), ("gen", "0"), ("epoch", _new_epoch()),
                                                                        ("sigs", "0")])
                elif have.get("format") != FORMAT:
                    raise _OtherFormat(f"format {have.get('format')!r}, expected {FORMAT!r}")  # no error code: rebuilt
        except BaseException:
            conn.close()
            raise
        self._inode = self.path.stat().st_ino
        self._reset_memory()
        return conn

    def _discard_file(self) -> None:
        """Delete an unreadable file (and its WAL) so that it is rebuilt; one process at a time."""
        self.close()
        with _file_lock(self.path.with_name(self.path.name + ".lock")):
            if self._readable():  # another process has replaced it meanwhile
                return
            for p in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
                p.unlink(missing_ok=True)

    def _readable(self) -> bool:
        if not self.path.exists():
            return False
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=60)) as conn:
                return (dict(conn.execute("SELECT key, value FROM info").fetchall()).get("format") == FORMAT
                        and conn.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok")
        except sqlite3.DatabaseError as exc:
            if _damaged(exc) or "no such table" in str(exc):
                return False
            raise

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._reset_memory()
            self.version = None

    def _info(self, conn: sqlite3.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM info").fetchall())

    # --- following the store ---------------------------------------------------------------------
    def refresh(self, written: "dict[str, tuple[str, dict[str, Any]]] | None" = None) -> "KeywordIndex":
        """Catch up with the store's committed changes (one small read of the store when none are new).

        ``written``: from the writer, right after committing its change, the chunks it wrote (id ->
        text, metadata), so that they need not be read back from the store."""
        if not self._checked and not self.store.settings.uses_server and self.store.pending_change() is not None:
            # Before taking self.lock: a writer holds the write lock when it takes self.lock.
            self.store.commit_interrupted()  # under the write lock: a writer still at work finishes first
        token, seq = self.store.version_state()  # also reopens an embedded client another process wrote to
        with self.lock:
            self._repairing(lambda: self._refresh(token, seq, written))
        return self

    def _repairing(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; if the file turns out unreadable, delete it and run ``fn`` again (which rebuilds it)."""
        try:
            return fn()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            log.warning("%s", _rebuild_reason(self.path, exc))
            self._discard_file()
            self._checked = False
            return fn()

    def _refresh(self, token: str, seq: int, written: "dict[str, tuple[str, dict[str, Any]]] | None" = None) -> None:
        conn = self._connect()
        if not self.path.exists() or self.path.stat().st_ino != self._inode:  # replaced by another process's repair
            self.close()
            conn = self._connect()
        if not self._checked:
            self._first_check(conn)
            token, seq = self.store.version_state()
        if int(self._info(conn)["seq"]) != seq:
            try:
                self._catch_up(conn, seq, written)
            except Inconsistent as exc:
                log.warning("keyword index %s: %s; rebuilding it from the store", self.path, exc)
                self._rebuild(conn)
        with _read(conn):
            self._sync(conn)
        self.version = token

    def _first_check(self, conn: sqlite3.Connection) -> None:
        """At first use: build a new file, or rebuild one that disagrees with the store."""
        seq0, pending0 = self.store.version_state()[1], self.store.pending_change()
        info = self._info(conn)
        if int(info["seq"]) < 0:
            log.info("keyword index %s is new: building it from the store", self.path)
            self._rebuild(conn)
        else:
            with contextlib.suppress(Inconsistent):
                if int(info["seq"]) != seq0:
                    self._catch_up(conn, seq0)
            have, want = self.count(), self.store.count()
            quiet = pending0 is None and self.store.pending_change() is None and self.store.version_state()[1] == seq0
            if quiet and have != want:  # only while no write is under way: one in flight changes Chroma first
                log.warning("keyword index %s holds %d chunks, the store %d: rebuilding it from the store", self.path, have, want)
                self._rebuild(conn)
        self._checked = True

    def _catch_up(self, conn: sqlite3.Connection, seq: int, written: "dict[str, tuple[str, dict[str, Any]]] | None" = None) -> None:
        """Apply the store's change records up to ``seq``. The store is read before the file's write lock is taken:
        a writer holds the store's write lock while it waits for this file's, so never the other way round."""
        for _ in range(5):
            with _read(conn):
                have = int(self._info(conn)["seq"])
            if have > seq:  # further than the store was when we looked: fine if the store has got there since
                seq, written = self.store.version_state()[1], None
                if have > seq:
                    raise Inconsistent(f"it has applied change {have}, the store has only {seq}")
            if have == seq:
                return
            changes = self.store.changes(have + 1, seq)
            if changes is None:
                raise Inconsistent(f"the store no longer keeps the changes after {have}")
            plan = self._plan(changes, seq, written if have == seq - 1 else None)
            try:
                with _write(conn):
                    if int(self._info(conn)["seq"]) != have:
                        continue  # another process applied changes meanwhile: look again
                    self._sync(conn)
                    self._apply(conn, *plan)
                    conn.execute("UPDATE info SET value = ? WHERE key = 'seq'", (str(seq),))
                return
            except BaseException:
                self._reset_memory()  # the view may hold rows of the rolled-back change: reload it from the file
                raise

    def _plan(self, changes: "list[Change]", seq: int, written: "dict[str, tuple[str, dict[str, Any]]] | None"
              ) -> tuple[set[str], set[str], dict[str, tuple[str, dict[str, Any]]], set[str], set[str]]:
        """What resyncing ``changes`` (up to ``seq``) means: the chunks and articles they name, what the store holds of
        them, and what a later write touches (left alone)."""
        ids, articles = _touched(changes)
        if written is None:
            present = self.store.chunks_for(sorted(ids), sorted(articles))
            # A later write may be under way (or just done), and the store may hold part of it: what it touches stays
            # as it was until its own record is applied, so a query sees it before or after, never half-written.
            busy_ids, busy_articles = _touched(self.store.changes_after(seq))
        else:  # the writer's own change, under its write lock: what it wrote, and its articles' other stored chunks
            present = dict(written)
            others = [cid for cid in self.store.chunk_ids_of(sorted(articles)) if cid not in present]
            present.update(self.store.chunks_for(others, []))
            busy_ids, busy_articles = set(), set()
        return ids, articles, present, busy_ids, busy_articles

    def _apply(self, conn: sqlite3.Connection, ids: set[str], articles: set[str], present: dict[str, tuple[str, dict[str, Any]]],
               busy_ids: set[str], busy_articles: set[str]) -> None:
        """Resync: the chunks named (by id or article) leave the index, those the store holds come back; busy ones stay."""

        def busy(cid: str, aid: str) -> bool:
            return cid in busy_ids or aid in busy_articles

        present = {cid: v for cid, v in present.items() if not busy(cid, ChunkMeta.from_metadata(v[1]).article_id)}
        old: list[tuple[int, str, int, str, str, str]] = []
        cols = "rowid, source, month, chunk_id, article_id, joined"
        for part in _parts(sorted(ids)):
            old += conn.execute(f"SELECT {cols} FROM docs WHERE chunk_id IN ({_marks(part)})", part).fetchall()
        for part in _parts(sorted(articles)):
            old += conn.execute(f"SELECT {cols} FROM docs WHERE article_id IN ({_marks(part)})", part).fetchall()
        gen = int(self._info(conn)["gen"]) + 1
        gone = {r[0]: r for r in old if not busy(r[3], r[4])}
        if gone:
            conn.executemany("DELETE FROM docs WHERE rowid = ?", [(r,) for r in gone])
            conn.executemany("DELETE FROM sigs WHERE rowid = ?", [(r,) for r in gone])
            conn.executemany("INSERT OR REPLACE INTO dead VALUES (?, ?)", [(r, gen) for r in gone])
            self._count_facets(conn, [(src, month, grp) for _, src, month, _, _, grp in gone.values()], -1)
        postings = self._add_docs(conn, present.items(), gen)
        self._write_postings(conn, postings)
        conn.execute("UPDATE info SET value = ? WHERE key = 'gen'", (str(gen),))
        # 'sigs' names the generation up to which the signature table is complete; a write by a version of
        # Byline from before the table leaves it behind, and the table is then filled again at next use.
        conn.execute("UPDATE info SET value = ? WHERE key = 'sigs' AND value = ?", (str(gen), str(gen - 1)))
        self._sync(conn)
        self._merge(conn, postings)

    def _add_docs(self, conn: sqlite3.Connection, docs: Iterable[tuple[str, tuple[str, dict[str, Any]]]], gen: int) -> dict[str, tuple[list[int], list[int]]]:
        postings: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        facets: list[tuple[str, int, str]] = []
        rows: list[tuple[int, str, str, int, str, int, int, str]] = []
        sigs: list[tuple[int, str, str, str]] = []
        # Row ids are never reused (AUTOINCREMENT's counter), so a reader's view never confuses two chunks.
        row = max(conn.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'docs'").fetchone()[0],
                  conn.execute("SELECT coalesce(max(rowid), 0) FROM docs").fetchone()[0])
        for cid, (doc, md) in docs:
            m = ChunkMeta.from_metadata(md)
            counts = Counter(tokens(m.headed(doc or "")))
            month = m.date_num // 100 if m.date_num else 0
            row += 1
            grp = m.group if m.chunk_index == 0 and joined(m) else ""  # counted once per article
            rows.append((row, cid, m.article_id, sum(counts.values()), m.source or "", month, gen, grp))
            for term, tf in counts.items():
                p = postings[term]
                p[0].append(row)
                p[1].append(tf)
            facets.append((m.source or "", month, grp))
            if sig := _sig_row(row, m):
                sigs.append(sig)
        conn.executemany("INSERT INTO docs(rowid, chunk_id, article_id, length, source, month, gen, joined) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO sigs VALUES (?, ?, ?, ?)", sigs)
        self._count_facets(conn, facets, +1)
        return postings

    @staticmethod
    def _write_postings(conn: sqlite3.Connection, postings: dict[str, tuple[list[int], list[int]]]) -> None:
        conn.executemany("INSERT INTO postings VALUES (?, ?, ?)",
                         ((t, np.asarray(ids, dtype=np.int32).tobytes(), np.asarray(tfs, dtype=np.int32).tobytes()) for t, (ids, tfs) in postings.items()))

    def _merge(self, conn: sqlite3.Connection, touched: Iterable[str]) -> None:
        """Merge the segments of terms that have ``_MERGE_AT`` or more, dropping deleted chunks (needs ``_sync`` first)."""
        terms = sorted(touched)
        many: list[str] = []
        for part in _parts(terms):
            many += [t for (t,) in conn.execute(f"SELECT term FROM postings WHERE term IN ({_marks(part)}) GROUP BY term HAVING count(*) >= ?",
                                                 (*part, _MERGE_AT))]
        for term in many:
            ids, tfs = self._postings(conn, term)
            conn.execute("DELETE FROM postings WHERE term = ?", (term,))
            if len(ids):
                conn.execute("INSERT INTO postings VALUES (?, ?, ?)", (term, ids.astype(np.int32).tobytes(), tfs.astype(np.int32).tobytes()))

    @staticmethod
    def _count_facets(conn: sqlite3.Connection, items: list[tuple[str, int, str]], sign: int) -> None:
        n: Counter[tuple[str, str]] = Counter()
        for source, month, grp in items:
            if source:
                n[("source", source)] += sign
            if month:
                n[("month", str(month))] += sign
            if grp:
                n[("joined", grp)] += sign
        conn.executemany("INSERT INTO facets VALUES (?, ?, ?) ON CONFLICT(kind, value) DO UPDATE SET n = n + excluded.n",
                         [(k, v, c) for (k, v), c in n.items()])
        if sign < 0:
            conn.execute("DELETE FROM facets WHERE n <= 0")

    # --- rebuilding ----------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> ReindexReport:
        """Rebuild from every chunk in the store (``byline reindex``), replacing an unreadable file.
        ``progress(done, total)`` is told how many chunks were indexed so far."""
        t = time.perf_counter()

        def run() -> int:
            conn = self._connect()
            self._rebuild(conn, progress)
            with _read(conn):
                self._sync(conn)
                return int(conn.execute("SELECT count(DISTINCT term) FROM postings").fetchone()[0])

        with self.lock:
            terms = self._repairing(run)
            self._checked = True
            self.version = None  # the next refresh reads the store's token anew
            return ReindexReport(chunks=self._n, terms=terms, seconds=time.perf_counter() - t, path=self.path)

    def _rebuild(self, conn: sqlite3.Connection, progress: Callable[[int, int], None] | None = None) -> None:
        t = time.perf_counter()
        total = self.store.count()
        # Changes committed after this read are applied by the next catch-up: resyncing is idempotent.
        seq = self.store.version_state()[1]
        with _write(conn):
            for table in ("docs", "dead", "postings", "facets", "sigs"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM sqlite_sequence WHERE name = 'docs'")  # row ids restart; readers reload on the new epoch
            gen = int(self._info(conn)["gen"]) + 1
            batch: list[tuple[str, tuple[str, dict[str, Any]]]] = []
            seen: set[str] = set()
            for cid, md, doc in self.store.iter_metadatas(documents=True):
                if cid in seen:  # paging while another process writes can repeat a chunk
                    continue
                seen.add(cid)
                batch.append((cid, (doc, md)))
                if len(batch) >= _FLUSH_DOCS:
                    self._write_postings(conn, self._add_docs(conn, batch, gen))
                    batch = []
                if progress and len(seen) % 1000 == 0:
                    progress(len(seen), max(total, len(seen)))
            self._write_postings(conn, self._add_docs(conn, batch, gen))
            if progress:
                progress(len(seen), len(seen))
            conn.executemany("UPDATE info SET value = ? WHERE key = ?", [(str(seq), "seq"), (str(gen), "gen"), (_new_epoch(), "epoch")])
            conn.execute("INSERT OR REPLACE INTO info VALUES ('sigs', ?)", (str(gen),))
            self._reset_memory()
        with contextlib.suppress(sqlite3.OperationalError):  # readers may hold the WAL: it is truncated later then
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("keyword index over %d chunks built in %.2f s", len(seen), time.perf_counter() - t)

    # --- syndication signatures (ingest.syndication) -------------------------------------------------
    def signatures(self) -> list[tuple[str, str, str]]:
        """(article id, syndication group, encoded MinHash) of every stored article that has a signature, as of
        the store's current version: kept here by the same catch-up as the postings, so an ingest process
        reads one table instead of every first chunk's metadata from the store."""
        self.refresh()
        with self.lock:
            return self._repairing(self._signatures)

    def _signatures(self) -> list[tuple[str, str, str]]:
        conn = self._connect()

        def complete() -> bool:
            info = self._info(conn)
            return info.get("sigs") == info["gen"]

        with _read(conn):
            if complete():
                return conn.execute("SELECT article_id, grp, minhash FROM sigs").fetchall()
        # A file from before the table, or written to since by a version without it: fill the table from the
        # store (read before the file's write lock is taken, as in _catch_up); rows of chunks the file does
        # not hold yet are added by the catch-up that adds those chunks.
        firsts = [(cid, ChunkMeta.from_metadata(md)) for cid, md, _ in self.store.iter_metadatas(where={CHUNK_INDEX: 0})]
        with _write(conn):
            if not complete():
                conn.execute("DELETE FROM sigs")
                for part in _parts(firsts):
                    rows = dict(conn.execute(f"SELECT chunk_id, rowid FROM docs WHERE chunk_id IN ({_marks(part)})", [c for c, _ in part]).fetchall())
                    conn.executemany("INSERT INTO sigs VALUES (?, ?, ?, ?)",
                                     [sig for cid, m in part if cid in rows and (sig := _sig_row(rows[cid], m))])
                conn.execute("INSERT OR REPLACE INTO info VALUES ('sigs', ?)", (self._info(conn)["gen"],))
            return conn.execute("SELECT article_id, grp, minhash FROM sigs").fetchall()

    # --- this process's view -------------------------------------------------------------------
    def _sync(self, conn: sqlite3.Connection) -> None:
        """Bring the in-memory lengths and live mask up to the file's generation (inside a transaction)."""
        info = self._info(conn)
        epoch, gen = info["epoch"], int(info["gen"])
        if epoch == self._epoch and gen == self._gen:
            return
        if epoch != self._epoch:
            self._reset_memory()
            rows = conn.execute("SELECT rowid, length FROM docs").fetchall()
            dead: list[tuple[int]] = []
        else:
            rows = conn.execute("SELECT rowid, length FROM docs WHERE gen > ?", (self._gen,)).fetchall()
            dead = conn.execute("SELECT rowid FROM dead WHERE gen > ?", (self._gen,)).fetchall()
        top = max([r for r, _ in rows] + [r for (r,) in dead] + [0]) + 1
        if top > len(self._lens):
            grow = max(top, int(len(self._lens) * 1.5))
            self._lens = np.concatenate([self._lens, np.zeros(grow - len(self._lens), dtype=np.float32)])
            self._live = np.concatenate([self._live, np.zeros(grow - len(self._live), dtype=bool)])
        if dead:
            d = np.fromiter((r for (r,) in dead), dtype=np.int64, count=len(dead))
            d = d[self._live[d]]
            self._n -= len(d)
            self._total -= float(self._lens[d].sum())
            self._live[d] = False
            self._lens[d] = 0
        if rows:
            arr = np.asarray(rows, dtype=np.int64)
            r = arr[:, 0]
            fresh = ~self._live[r]
            self._lens[r] = arr[:, 1]
            self._live[r] = True
            self._n += int(fresh.sum())
            self._total += float(arr[fresh, 1].sum())
        self._epoch, self._gen = epoch, gen
        facets = conn.execute("SELECT kind, value FROM facets").fetchall()
        self.archive_sources = {v for k, v in facets if k == "source"}
        self.archive_months = {(int(v) // 100, int(v) % 100) for k, v in facets if k == "month"}
        self.joined_groups = {v for k, v in facets if k == "joined"}

    def _postings(self, conn: sqlite3.Connection, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The live postings of ``term``: chunk row ids and term counts."""
        rows = conn.execute("SELECT ids, tfs FROM postings WHERE term = ?", (term,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ids = np.concatenate([np.frombuffer(r[0], dtype=np.int32) for r in rows]).astype(np.int64)
        tfs = np.concatenate([np.frombuffer(r[1], dtype=np.int32) for r in rows]).astype(np.float32)
        ok = ids < len(self._live)  # rows of later generations than this view are left out
        ok[ok] = self._live[ids[ok]]
        return ids[ok], tfs[ok]

    def count(self) -> int:
        """Chunks in the index (as of this process's last sync)."""
        with self.lock:
            conn = self._connect()
            with _read(conn):
                self._sync(conn)
            return self._n

    def search(self, question: str, n: int, refresh: bool = True) -> list[tuple[str, float]]:
        """The ``n`` best chunk ids by BM25 with their scores (only those that match a term). ``refresh=False``:
        the caller has just called ``refresh``."""
        if refresh or self.version is None:
            self.refresh()
        terms = Counter(tokens(question))
        if not terms or n <= 0:
            return []
        with self.lock:
            return self._repairing(lambda: self._search(terms, n))

    def _search(self, terms: Counter[str], n: int) -> list[tuple[str, float]]:
        conn = self._connect()
        if not self._checked:  # the file was just replaced: build it before answering
            self._refresh(*self.store.version_state())
        with _read(conn):  # one snapshot: postings and the in-memory view agree
            self._sync(conn)
            if self._n == 0:
                return []
            avg = self._total / self._n
            scores = np.zeros(len(self._lens), dtype=np.float32)
            for term, repeat in terms.items():  # bm25s adds a repeated query term once per repeat
                ids, tfs = self._postings(conn, term)
                if not len(ids):
                    continue
                idf = math.log(1 + (self._n - len(ids) + 0.5) / (len(ids) + 0.5))
                scores[ids] += repeat * idf * tfs / (tfs + K1 * (1 - B + B * self._lens[ids] / avg))
            hit = np.flatnonzero(scores > 0)
            if len(hit) > n:
                hit = hit[np.argpartition(-scores[hit], n - 1)[:n]]
            hit = hit[np.argsort(-scores[hit], kind="stable")]
            names: dict[int, str] = {}
            for part in _parts([int(h) for h in hit]):
                names.update(conn.execute(f"SELECT rowid, chunk_id FROM docs WHERE rowid IN ({_marks(part)})", part).fetchall())
        return [(names[int(h)], float(scores[h])) for h in hit if int(h) in names]


# --- helpers ------------------------------------------------------------------------------------
class _OtherFormat(sqlite3.DatabaseError):
    """A sound file in another layout (written by another version of Byline): rebuilt, like a damaged one."""


def _rebuild_reason(path: Path, exc: sqlite3.DatabaseError) -> str:
    if isinstance(exc, _OtherFormat):
        return (f"keyword index {path} was written by another version of Byline ({exc}): rebuilding it once from the store "
                "(a few minutes for 100,000 passages)")
    return f"keyword index {path} is unreadable ({exc}): rebuilding it from the store"


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """A file that is not (or no longer) a readable index, as opposed to a busy or failing disk."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is None or code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB; None: our own format check


def _touched(changes: "Iterable[Change]") -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    articles: set[str] = set()
    for c in changes:
        ids.update(c.ids)
        articles.update(c.articles)
    return ids, articles


def _new_epoch() -> str:
    return f"{time.time_ns()}"


def _sig_row(row: int, m: ChunkMeta) -> tuple[int, str, str, str] | None:
    """The signature table's row for chunk row ``row``: only an article's first chunk, with a signature and a group."""
    return (row, m.article_id, m.group, m.minhash) if m.chunk_index == 0 and m.minhash and m.group else None


def _parts(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _SQL_VARS):
        yield items[i : i + _SQL_VARS]


def _marks(part: list[Any]) -> str:
    return ",".join("?" * len(part))


@contextlib.contextmanager
def _read(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")  # takes the file's write lock now: concurrent catch-ups take turns
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
