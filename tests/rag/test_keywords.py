"""The persistent keyword index (rag.keywords): incremental updates equal a rebuild, several processes, crashes, repair, server mode.

Chunks are sentences of data/*.md recombined (real English, so stems and stopwords matter) with
seeded random 8-dimensional vectors: the dense side plays no part here. Processes are real
(``python -m tests.rag.test_keywords <role> ...`` runs the helpers at the bottom of this file).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.config import Settings
from rag.keywords import tokens
from rag.schema import ChunkMeta
from rag.store import Store, forget_clients
from tests.chroma_server import ChromaServer, chroma_executable, chroma_server  # noqa: F401 (fixture)
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["militias plan mass protests", "Israeli aircraft in Iraqi airspace", "Shiite political parties announced",
           "Security Council complaint", "feed entries and their metadata", "Ali al-Daffayi", "American forces forces stationed"]


def _sentences() -> list[str]:
    out: list[str] = []
    for f in sorted(DATA_DIR.glob("*.md")):
        text = re.sub(r"\A---\s*\n.*?\n---\s*\n", "", f.read_text(encoding="utf-8"), flags=re.S)
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) > 5]
    assert len(out) > 20, "data/ has too little text"
    return out


SENTENCES = _sentences()
OUTLETS = ["Wire Service", "Daily Ledger", "Harbour Post"]


def article(aid: str, version: int, n: int, rng: random.Random, extra: str = "") -> tuple[list[str], Any, list[str], list[dict[str, Any]]]:
    """The n chunks of one version of an article, as ``Store.upsert`` takes them."""
    ids, docs, metas = [], [], []
    month = 1 + sum(map(ord, aid)) % 12
    for i in range(n):
        ids.append(f"{aid}-v{version}-{i}")
        docs.append(" ".join(rng.sample(SENTENCES, 3)) + (f" {extra}" if extra else ""))
        date = f"2024-{month:02d}-{1 + i:02d}"
        metas.append({"article_id": aid, "content_hash": f"h{version}", "chunk_index": i, "n_chunks": n, "title": f"Report {aid}",
                      "source": OUTLETS[len(aid) % 3], "date": date, "date_num": int(date.replace("-", ""))})
    vecs = np.random.default_rng(rng.randrange(1 << 30)).normal(size=(n, 8)).astype(np.float32)
    return ids, vecs, docs, metas


def _all(store: Store, q: str) -> list[tuple[str, float]]:
    return sorted((cid, round(score, 4)) for cid, score in store.keywords.search(q, 10_000))


def _bm25s(store: Store, q: str) -> list[tuple[str, float]]:
    """What the earlier index (bm25s over every chunk, rebuilt) ranks: the reference for scores."""
    import bm25s
    import Stemmer

    rows = list(store.iter_metadatas(documents=True))
    stem = Stemmer.Stemmer("english")
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize([ChunkMeta.from_metadata(md).headed(doc) for _, md, doc in rows], stopwords="english", stemmer=stem,
                            show_progress=False), show_progress=False)
    idx, sc = bm.retrieve(bm25s.tokenize(q, stemmer=stem, show_progress=False), k=len(rows), show_progress=False)
    return sorted((rows[i][0], round(float(s), 4)) for i, s in zip(idx[0], sc[0]) if s > 0)


def test_incremental_updates_equal_a_full_rebuild_and_bm25s(tmp_path: Path) -> None:
    rng = random.Random(19)
    store = Store(Settings(data_dir=tmp_path / "b"))
    live: dict[str, int] = {}  # article id -> version
    for step in range(45):  # enough writes that common terms' segments get merged (rag.keywords._MERGE_AT)
        op = rng.random()
        if op < 0.45 or len(live) < 3:
            aid = f"a{step}"
            live[aid] = 0
            store.upsert(*article(aid, 0, rng.randint(1, 5), rng))
        elif op < 0.75:  # a new version: other chunk ids and count, the old version's chunks are dropped
            aid = rng.choice(sorted(live))
            live[aid] += 1
            store.upsert(*article(aid, live[aid], rng.randint(1, 5), rng))
        elif op < 0.9:
            aid = rng.choice(sorted(live))
            del live[aid]
            assert store.delete_article(aid) > 0
        else:
            ids = [cid for cid, _, _ in store.iter_metadatas()]
            store.delete_chunks(rng.sample(ids, 2))
    kw = store.keywords
    assert kw.count() == store.count() > 30
    incremental = {q: _all(store, q) for q in QUERIES}
    assert all(incremental.values())
    months, sources = set(kw.archive_months), set(kw.archive_sources)
    metas = [ChunkMeta.from_metadata(md) for _, md, _ in store.iter_metadatas()]
    assert months == {(m.date_num // 10000, m.date_num // 100 % 100) for m in metas}
    assert sources == {m.source for m in metas}
    for q in QUERIES:
        assert incremental[q] == _bm25s(store, q), q
    report = kw.rebuild()
    assert report.chunks == store.count()
    for q in QUERIES:
        assert _all(store, q) == incremental[q], q
    assert (kw.archive_months, kw.archive_sources) == (months, sources)


def test_tokens_follow_bm25s() -> None:
    import bm25s
    import Stemmer

    text = "The Ministers were RUNNING the elections; it's 2024 and a U.S. poll's results didn't change."
    want = bm25s.tokenize(text, stopwords="english", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False)[0]
    assert tokens(text) == want and "the" not in want


def _wait_lines(proc: subprocess.Popen, n: int, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line.strip())
    return lines


def _spawn(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    return subprocess.Popen([sys.executable, "-m", "tests.rag.test_keywords", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_readers_see_each_write_whole_while_another_process_writes(tmp_path: Path) -> None:
    data = tmp_path / "b"
    rng = random.Random(7)
    store = Store(Settings(data_dir=data))
    store.upsert(*article("story", 0, 2, rng, extra="zebra"))
    store.upsert(*article("other", 0, 4, rng))
    store.close()
    forget_clients()
    readers = [_spawn("reader", str(data), str(tmp_path / "stop")) for _ in range(2)]
    try:
        for r in readers:
            assert _wait_lines(r, 1, 120) == ["ready"], r.stderr.read() if r.poll() is not None else "no answer"  # type: ignore[union-attr]
        writer = subprocess.run([sys.executable, "-m", "tests.rag.test_keywords", "writer", str(data), "12"], cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        assert writer.returncode == 0, writer.stderr[-3000:]
        time.sleep(1.0)  # let the readers see the last write
    finally:
        (tmp_path / "stop").touch()
    seen_versions: set[int] = set()
    for r in readers:
        out, err = r.communicate(timeout=120)
        assert r.returncode == 0, err[-3000:]
        obs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]  # one per change seen, and the last
        assert len(obs) >= 3
        for o in obs:
            # All hits of one snapshot are one whole version: never chunks of two versions, never part of one.
            versions = {int(cid.split("-v")[1].split("-")[0]) for cid in o["ids"]}
            assert len(versions) == 1, (o, err[-3000:])
            (v,) = versions
            assert len(o["ids"]) == 2 + v % 3, o
            seen_versions.add(v)
        assert obs[-1]["ids"][0].startswith("story-v12-")  # caught up with the last write
    assert len(seen_versions) >= 3  # the readers did overlap the writes


def test_index_is_consistent_after_a_writer_is_killed_mid_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "b"
    mid_write = 0
    for attempt in range(4):
        proc = _spawn("writer", str(data), "400", "big")
        try:
            assert _wait_lines(proc, 2, 120)[-1:] == ["wrote 1"], proc.stderr.read() if proc.poll() is not None else ""  # type: ignore[union-attr]
            time.sleep(random.Random(attempt).uniform(0.05, 0.6))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        forget_clients()
        store = Store(Settings(data_dir=data))
        mid_write += store.pending_change() is not None  # killed between recording a change and committing it
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ids = sorted(cid for cid, _ in store.keywords.search("zebra", 100_000))  # the next start
        assert store.pending_change() is None
        chroma_ids = sorted(cid for cid, _, _ in store.iter_metadatas())
        assert ids == chroma_ids and store.keywords.count() == store.count()
        scores = {q: _all(store, q) for q in QUERIES[:3]}
        store.keywords.rebuild()
        assert {q: _all(store, q) for q in QUERIES[:3]} == scores
        store.close()
        if mid_write:
            assert "interrupted" in caplog.text
            break
    assert mid_write, "no kill landed inside a write"


def _small_archive(data: Path, n: int, seed: int) -> tuple[dict[str, list[tuple[str, float]]], Path]:
    """An archive of ``n`` articles of 3 chunks in ``data``, closed: each query's results and the keyword index's file."""
    rng = random.Random(seed)
    store = Store(Settings(data_dir=data))
    for i in range(n):
        store.upsert(*article(f"a{i}", 0, 3, rng))
    want = {q: _all(store, q) for q in QUERIES}
    path = store.keywords.path
    store.close()
    forget_clients()
    return want, path


def test_reindex_repairs_a_corrupted_index_and_a_start_detects_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "b"
    want, path = _small_archive(data, 6, seed=3)

    def corrupt() -> None:
        raw = bytearray(path.read_bytes())
        raw[:4096] = random.Random(1).randbytes(4096)  # header and first page gone
        path.write_bytes(bytes(raw))

    corrupt()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    r = subprocess.run([sys.executable, "-m", "ui.cli", "reindex", "--data-dir", str(data), "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["keyword_chunks"] == out["store_chunks"] == 18 and out["terms"] > 50
    assert "unreadable" in r.stderr
    store = Store(Settings(data_dir=data))
    assert {q: _all(store, q) for q in QUERIES} == want
    store.close()
    forget_clients()

    corrupt()
    store = Store(Settings(data_dir=data))
    with caplog.at_level(logging.WARNING):
        assert {q: _all(store, q) for q in QUERIES} == want
    assert "unreadable" in caplog.text


def test_a_file_of_another_format_is_rebuilt_once_and_said_to_be_an_upgrade(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import sqlite3

    data = tmp_path / "c"
    want, path = _small_archive(data, 4, seed=4)
    with sqlite3.connect(path) as conn:  # as an older Byline left it
        conn.execute("UPDATE info SET value = '0' WHERE key = 'format'")
    store = Store(Settings(data_dir=data))
    with caplog.at_level(logging.WARNING):
        assert {q: _all(store, q) for q in QUERIES} == want
    assert "written by another version of Byline" in caplog.text and "unreadable" not in caplog.text
    caplog.clear()
    store.close()
    forget_clients()
    store = Store(Settings(data_dir=data))
    with caplog.at_level(logging.WARNING):
        assert {q: _all(store, q) for q in QUERIES} == want
    assert "rebuilding" not in caplog.text  # once


@pytest.mark.slow
@pytest.mark.skipif(chroma_executable() is None, reason="chroma CLI not installed in this environment")
def test_server_mode_write_is_seen_by_another_process_within_seconds(tmp_path: Path, chroma_server: ChromaServer) -> None:  # noqa: F811
    forget_clients()
    settings = Settings(data_dir=tmp_path / "writer", chroma_url=chroma_server.url)
    store = Store(settings)
    rng = random.Random(5)
    store.upsert(*article("a1", 0, 3, rng))
    proc = _spawn("watcher", str(tmp_path / "reader"), chroma_server.url)  # its own data dir: its own keyword file
    try:
        assert _wait_lines(proc, 1, 120) == ["ready"], proc.stderr.read() if proc.poll() is not None else ""  # type: ignore[union-attr]
        t0 = time.monotonic()
        store.upsert(*article("a2", 0, 2, rng, extra="quokka"))
        line = _wait_lines(proc, 1, 60)
        assert line and line[0].startswith("found"), proc.stderr.read() if proc.poll() is not None else line  # type: ignore[union-attr]
        assert time.monotonic() - t0 < 10
        assert sorted(json.loads(line[0].split(" ", 1)[1])) == ["a2-v0-0", "a2-v0-1"]
        store.delete_article("a2")
        line = _wait_lines(proc, 1, 60)
        assert line == ["gone"]
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not (settings.data_dir / "chroma").exists()


# --- the other processes ---------------------------------------------------------------------------
def _reader(data: str, stop: str) -> None:
    store = Store(Settings(data_dir=Path(data)))
    store.keywords.refresh()
    print("ready", flush=True)
    last = None
    while True:
        done = Path(stop).exists()
        hits = [cid for cid, _ in store.keywords.search("zebra", 100)]
        if hits != last or done:
            print(json.dumps({"ids": sorted(hits)}), flush=True)
            last = hits
        if done:
            return
        time.sleep(0.02)


def _writer(data: str, n: int, big: bool) -> None:
    rng = random.Random(11)
    store = Store(Settings(data_dir=Path(data)))
    print("started", flush=True)
    for v in range(1, n + 1):
        if big:  # long writes, so that a kill lands inside one
            store.upsert(*article(f"big{v % 3}", v, 120, rng, extra="zebra"))
        else:
            store.upsert(*article("story", v, 2 + v % 3, rng, extra="zebra"))
            time.sleep(0.3)  # readers get to see most versions
        print(f"wrote {v}", flush=True)


def _watcher(data: str, url: str) -> None:
    store = Store(Settings(data_dir=Path(data), chroma_url=url))
    store.keywords.refresh()
    print("ready", flush=True)
    want_found = True
    while True:
        hits = [cid for cid, _ in store.keywords.search("quokka", 10)]
        if want_found and hits:
            print("found " + json.dumps(hits), flush=True)
            want_found = False
        elif not want_found and not hits:
            print("gone", flush=True)
            return
        time.sleep(0.05)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "reader":
        _reader(*rest)
    elif role == "writer":
        _writer(rest[0], int(rest[1]), len(rest) > 2)
    elif role == "watcher":
        _watcher(*rest)
