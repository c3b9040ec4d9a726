"""Server mode: the same Byline commands against a real ``chroma run`` subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import StoreError
from rag.store import Store, forget_clients
from tests.chroma_server import ChromaServer, chroma_executable, chroma_server, free_port  # noqa: F401 (fixture)
from tests.conftest import DATA_DIR, FIXTURES

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(chroma_executable() is None, reason="chroma CLI not installed in this environment")


def _sources() -> list[str]:
    out = [str(DATA_DIR)]
    if (FIXTURES / "corpus").is_dir():
        out.append(str(FIXTURES / "corpus"))
    return out


def _snapshot(store: Store) -> tuple[int, int, list[str], list[str]]:
    arts = store.articles()
    ids = sorted(cid for cid, _, _ in store.iter_metadatas())
    return len(arts), store.count(), sorted(a.id for a in arts), ids


def test_ingest_list_stats_query_and_restart(tmp_path: Path, chroma_server: ChromaServer, embedder) -> None:  # noqa: F811
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from ingest.pipeline import Ingestor

    forget_clients()
    settings = Settings(data_dir=tmp_path / "byline", chroma_url=chroma_server.url, generator="extractive")
    store = Store(settings)
    assert store.count() == 0 and store.version() == ""
    report = Ingestor(settings, store=store, embedder=embedder).ingest(_sources())
    assert report.added >= 1 and report.chunks_embedded > 0, report.summary()
    assert not (settings.data_dir / "chroma").exists()  # nothing written to an embedded folder

    n_arts, n_chunks, art_ids, chunk_ids = _snapshot(store)
    assert n_arts == report.added and n_chunks == report.chunks_embedded == len(chunk_ids) == len(set(chunk_ids))
    st = store.stats()
    assert st["articles"] == n_arts and st["chunks"] == n_chunks
    assert st["store"] == f"Chroma server {chroma_server.url}"
    v1 = store.version()
    assert v1

    # dense query through llama-index's view
    q = embedder.get_query_embedding("Who is Ali al-Daffayi and what did he announce?")
    res = store.vector_store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=3))
    assert res.ids and len(res.ids) == 3
    top_meta = store.collection.get(ids=[res.ids[0]], include=["metadatas"])["metadatas"][0]
    assert "Militias" in top_meta["title"]

    # the same ingest again changes nothing
    again = Ingestor(settings, store=store, embedder=embedder).ingest(_sources())
    assert again.added == again.updated == 0 and again.unchanged == n_arts

    # stop and restart the server on the same folder and port: nothing lost
    chroma_server.restart()
    forget_clients()
    store2 = Store(settings)
    assert _snapshot(store2) == (n_arts, n_chunks, art_ids, chunk_ids)
    assert store2.version() == v1
    res2 = store2.vector_store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=3))
    assert res2.ids == res.ids
    # and the old Store object reconnects by itself too (httpx reconnects to the restarted server)
    assert store.count() == n_chunks

    # a delete is a write: the version changes and the chunks are gone
    victim = art_ids[0]
    n = Ingestor(settings, store=store2, embedder=embedder).delete(victim)
    assert n > 0 and store2.count() == n_chunks - n and store2.version() != v1


def test_cli_commands_against_server(tmp_path: Path, chroma_server: ChromaServer) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(BYLINE_DATA_DIR=str(tmp_path / "byline"), BYLINE_CHROMA_URL=chroma_server.url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)

    r = cli("ingest", str(DATA_DIR), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    r = cli("status", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    st = json.loads(r.stdout)
    assert st["articles"] == 1 and st["chunks"] > 0 and st["store"].startswith("Chroma server")
    r = cli("list", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1


def test_unreachable_server_is_a_friendly_store_error(tmp_path: Path) -> None:
    forget_clients()
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as ei:
        Store(Settings(data_dir=tmp_path, chroma_url=f"http://127.0.0.1:{port}"))
    msg = str(ei.value)
    assert f"127.0.0.1:{port}" in msg and "Cannot reach the Chroma server" in msg and "chroma run" in msg
    assert "Traceback" not in msg and len(msg) < 400
    with pytest.raises(StoreError):
        Store(Settings(data_dir=tmp_path, chroma_host="127.0.0.1", chroma_port=port, chroma_token="t"))


def test_unreachable_server_from_cli_has_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(BYLINE_DATA_DIR=str(tmp_path), BYLINE_CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    r = subprocess.run([sys.executable, "-m", "ui.cli", "status"], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "byline: Cannot reach the Chroma server" in r.stderr, r.stderr[-2000:]


def test_server_lost_mid_session_is_a_store_error(tmp_path: Path) -> None:
    forget_clients()
    srv = ChromaServer(tmp_path / "srv").start()
    try:
        store = Store(Settings(data_dir=tmp_path, chroma_url=srv.url))
        assert store.count() == 0
    finally:
        srv.stop()
    with pytest.raises(StoreError, match="Cannot reach the Chroma server"):
        store.count()
    with pytest.raises(StoreError, match="Cannot reach the Chroma server"):
        store.version()
    forget_clients()
