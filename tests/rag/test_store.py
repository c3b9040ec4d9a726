"""The embedded Chroma store: version token, write lock, superseded versions, stats, articles()."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.store import Store, forget_clients

DIM = 4


def _vec(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = 0.5
    return v


def _chunks(aid: str, n: int, h: str = "h1", *, title: str = "T", source: str = "Wire", date: str = "2024-05-01") -> tuple[list, list, list, list]:
    ids = [f"{aid}:{i}" for i in range(n)]
    embs = [_vec(i) for i in range(n)]
    docs = [f"{title} passage {i}" for i in range(n)]
    metas = [{"article_id": aid, "content_hash": h, "chunk_index": i, "n_chunks": n, "title": title, "source": source,
              "date": date, "url": f"https://example.org/{aid}", "author": "", "origin": f"/x/{aid}.md"} for i in range(n)]
    return ids, embs, docs, metas


@pytest.fixture
def store(settings: Settings):
    forget_clients()
    s = Store(settings)
    yield s
    forget_clients()


def test_empty_store(store: Store) -> None:
    assert store.count() == 0
    assert store.articles() == []
    st = store.stats()
    assert st["articles"] == 0 and st["chunks"] == 0 and st["first_date"] is None
    assert store.version() == ""


def test_version_changes_on_every_write(store: Store) -> None:
    seen = [store.version()]
    store.upsert(*_chunks("a1", 3))
    seen.append(store.version())
    store.upsert(*_chunks("a1", 3))  # same content again: still a write
    seen.append(store.version())
    store.delete_chunks(["a1:2"])
    seen.append(store.version())
    assert store.delete_article("a1") == 2
    seen.append(store.version())
    store.bump_version()
    seen.append(store.version())
    assert len(set(seen)) == len(seen), seen
    # reads do not change it
    v = store.version()
    store.count(), store.articles(), store.stats(), store.chunk_states(["a1"])
    assert store.version() == v
    # deleting an article that is not there is not a write
    assert store.delete_article("nope") == 0
    assert store.version() == v


def test_version_is_cheap(store: Store) -> None:
    store.upsert(*_chunks("a1", 3))
    store.version()
    t = time.perf_counter()
    for _ in range(50):
        store.version()
    per_call = (time.perf_counter() - t) / 50
    assert per_call < 0.02, f"version() took {per_call * 1000:.1f} ms"


def test_version_seen_by_other_store_and_other_process(settings: Settings, store: Store) -> None:
    other = Store(settings)
    v0 = other.version()
    store.upsert(*_chunks("a1", 2))
    assert other.version() != v0
    code = textwrap.dedent(f"""
        from pathlib import Path
        from rag.config import Settings
        from rag.store import Store
        s = Store(Settings(data_dir=Path({str(settings.data_dir)!r})))
        s.upsert(ids=["p:0"], embeddings=[[0.0, 0.0, 1.0, 0.0]], documents=["from another process"],
                 metadatas=[{{"article_id": "p", "content_hash": "hp", "chunk_index": 0, "n_chunks": 1}}])
        print(s.version())
    """)
    before = store.version()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    after = store.version()
    assert after != before and after == out.stdout.strip().splitlines()[-1]
    # the long-lived store's dense view sees the other process's vector after version() noticed the change
    from llama_index.core.vector_stores.types import VectorStoreQuery

    res = store.vector_store.query(VectorStoreQuery(query_embedding=[0.0, 0.0, 1.0, 0.0], similarity_top_k=1))
    assert res.ids == ["p:0"]
    assert store.count() == 3


def _write_in_other_process(settings: Settings, aid: str, n: int) -> list[str]:
    """Another process (a CLI ingest) writes n chunks of article ``aid``; returns their ids."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from rag.config import Settings
        from rag.store import Store
        s = Store(Settings(data_dir=Path({str(settings.data_dir)!r})))
        ids = [f"{aid}:{{i}}" for i in range({n})]
        s.upsert(ids=ids, embeddings=[[1.0, 0.2, 0.1, float(i)] for i in range({n})], documents=ids,
                 metadatas=[{{"article_id": "{aid}", "content_hash": "h{aid}", "chunk_index": i, "n_chunks": {n}}} for i in range({n})])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    return [f"{aid}:{i}" for i in range(n)]


def test_stale_reader_sees_dense_writes_of_other_process(settings: Settings, store: Store) -> None:
    """A long-lived reader (a chat server) must query vectors another process wrote after it opened."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store.upsert(*_chunks("a1", 4))
    vs = store.vector_store  # held by the retriever across the other process's write
    assert len(vs.query(VectorStoreQuery(query_embedding=_vec(0), similarity_top_k=50)).ids) == 4
    written = _write_in_other_process(settings, "b", 6)
    store.version()  # what the retriever does before a query
    got = vs.query(VectorStoreQuery(query_embedding=_vec(0), similarity_top_k=50)).ids
    assert len(got) == 10 and set(written) <= set(got)


def test_write_by_other_process_before_first_version_call_is_seen(settings: Settings, store: Store) -> None:
    """A reader that opened the folder and queried, but never asked for the version, must still
    notice another process's write on its first version() call (the token is taken at open)."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store.upsert(*_chunks("a1", 4))
    forget_clients()  # a fresh process's view: nothing known about the token yet
    reader = Store(settings)
    vs = reader.vector_store
    assert len(vs.query(VectorStoreQuery(query_embedding=_vec(0), similarity_top_k=50)).ids) == 4
    written = _write_in_other_process(settings, "c", 3)
    reader.version()
    got = vs.query(VectorStoreQuery(query_embedding=_vec(0), similarity_top_k=50)).ids
    assert len(got) == 7 and set(written) <= set(got)


def test_upsert_is_idempotent_and_drops_superseded_version(store: Store) -> None:
    store.upsert(*_chunks("a1", 5, "old"))
    store.upsert(*_chunks("a1", 5, "old"))
    assert store.count() == 5
    # a shorter new version of the article written by someone that did not know about the old one
    store.upsert(*_chunks("a1", 3, "new"))
    states = store.chunk_states(["a1"])
    assert set(states["a1"]) == {"new"} and len(states["a1"]["new"]) == 3
    assert store.count() == 3


def test_articles_and_stats(store: Store) -> None:
    store.upsert(*_chunks("a1", 3, title="Older", source="Wire", date="2023-01-02"))
    store.upsert(*_chunks("a2", 2, title="Newer", source="Post", date="2024-06-30"))
    store.upsert(*_chunks("a3", 1, title="Undated", source="Wire", date=""))
    arts = store.articles()
    assert [a.id for a in arts] == ["a2", "a1", "a3"]  # newest first, undated last
    assert {a.id: a.n_chunks for a in arts} == {"a1": 3, "a2": 2, "a3": 1}
    a1 = next(a for a in arts if a.id == "a1")
    assert (a1.title, a1.source, a1.url, a1.content_hash) == ("Older", "Wire", "https://example.org/a1", "h1")
    st = store.stats()
    assert st["articles"] == 3 and st["chunks"] == 6 and st["undated"] == 1
    assert st["outlets"] == {"Wire": 2, "Post": 1}
    assert (st["first_date"], st["last_date"]) == ("2023-01-02", "2024-06-30")
    assert "Chroma folder" in st["store"] and st["collection"] == "byline"
    rows = list(store.iter_metadatas(batch=2, documents=True))
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6 and all(r[2] for r in rows)


def test_write_lock_is_reentrant_and_excludes_threads(store: Store) -> None:
    with store.write_lock():
        with store.write_lock():  # nested (upsert inside a caller's lock) must not deadlock
            store.upsert(*_chunks("a1", 1))
    order: list[str] = []
    entered = threading.Event()

    def other() -> None:
        with store.write_lock():
            order.append("other")

    with store.write_lock():
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.3)
        order.append("main")
    t.join(10)
    assert order == ["main", "other"]
    assert not entered.is_set()


def test_write_lock_excludes_other_processes(settings: Settings, store: Store) -> None:
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from rag.config import Settings
        from rag.store import Store
        s = Store(Settings(data_dir=Path({str(settings.data_dir)!r})))
        with s.write_lock():
            print(repr(time.time()))
    """)
    with store.write_lock():
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[2])
        time.sleep(5.0)  # the child imports chromadb and then waits on the lock
        released = time.time()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert float(out.strip().splitlines()[-1]) >= released  # it got the lock only after we let go


def test_two_writer_processes_keep_every_vector(settings: Settings) -> None:
    # Each process writes 40 batches, reading the version between them as a server does. Past ~1,000 records
    # Chroma persists its vector index; a writer whose in-memory index missed the other's writes once
    # persisted it so, and a whole batch kept its metadata but lost its vectors.
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from pathlib import Path
        from rag.config import Settings
        from rag.store import Store
        name = sys.argv[1]
        s = Store(Settings(data_dir=Path({str(settings.data_dir)!r})))
        rng = np.random.default_rng(ord(name))
        for k in range(40):
            ids = [f"{{name}}{{k:02d}}-{{j:02d}}" for j in range(16)]
            vecs = rng.normal(size=(16, 384)).astype("float32")
            metas = [{{"article_id": i, "content_hash": "h", "chunk_index": 0, "n_chunks": 1, "title": "T", "source": "Wire"}} for i in ids]
            s.upsert(ids, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), [f"text {{i}}" for i in ids], metas)
            s.version()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2]) for name in "AB"]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    forget_clients()
    store = Store(settings)
    ids = store.collection.get(include=[])["ids"]
    assert len(ids) == 2 * 40 * 16
    without_vector = []
    for cid in ids:
        try:  # Chroma: "Error finding id" when the metadata is there and the vector is not
            store.collection.get(ids=[cid], include=["embeddings"])
        except Exception:  # noqa: BLE001
            without_vector.append(cid)
    assert without_vector == []
    forget_clients()


def test_forget_clients_reconnects_open_store(store: Store) -> None:
    store.upsert(*_chunks("a1", 2))
    forget_clients()
    assert store.count() == 2
    store.upsert(*_chunks("a2", 1))
    assert store.count() == 3


def test_bad_folder_is_store_error(tmp_path: Path) -> None:
    from rag.errors import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="Chroma folder"):
        Store(Settings(data_dir=tmp_path, chroma_path=blocker / "chroma"))


def test_close_releases_the_folder(settings: Settings, store: Store) -> None:
    """close() lets the folder be deleted and recreated (the eval's temporary index): no process-wide client keeps it."""
    import shutil

    from chromadb.api.shared_system_client import SharedSystemClient

    store.upsert(*_chunks("a1", 2))
    other = Store(settings)  # shares the process's client for this folder
    store.close()
    path = settings.resolved_chroma_path
    assert str(path) not in SharedSystemClient._identifier_to_system
    shutil.rmtree(path)
    fresh = Store(settings)
    assert fresh.count() == 0 and other.count() == 0 and fresh.version() == ""
    fresh.upsert(*_chunks("b1", 1))
    assert other.count() == 1 and store.count() == 1  # closed stores reconnect on next use
    fresh.close()


def test_upsert_drops_chunks_past_the_new_count_and_says_how_many(store: Store) -> None:
    assert store.upsert(*_chunks("a1", 4, "h")) == 0
    assert store.upsert(*_chunks("a1", 2, "h")) == 2  # same hash, fewer chunks: indexes 2 and 3 are stale
    assert sorted(cid for cid, _ in store.chunk_states(["a1"])["a1"]["h"]) == ["a1:0", "a1:1"]
    ids, embs, docs, metas = _chunks("a2", 3, "h2")
    store.upsert(ids, embs, docs, metas)
    assert store.upsert(ids[:2], embs[:2], docs[:2], metas[:2]) == 0  # part of the same version: nothing superseded
    assert store.count() == 5


def test_one_write_bumps_the_version_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.upsert(*_chunks("a1", 5, "old"))
    bumps: list[int] = []
    real = store.bump_version
    monkeypatch.setattr(store, "bump_version", lambda: (bumps.append(1), real())[1])
    assert store.upsert(*_chunks("a1", 3, "new")) == 2  # overwrites three ids, drops the old version's other two
    assert len(bumps) == 1 and store.count() == 3
