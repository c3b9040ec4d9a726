"""Ingest pipeline on a real Chroma folder with the real embedder: metadata, idempotency, updates, deletes, bad batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.article import Article
from ingest.pipeline import IngestReport

LONG = " ".join(f"Sentence {i} of the story reports that the harbour board met and voted on item {i}." for i in range(120))


def stored(ingestor) -> dict[str, dict]:
    got = ingestor.store.collection.get(include=["metadatas", "documents"])
    return {cid: {**md, "_doc": doc} for cid, md, doc in zip(got["ids"], got["metadatas"], got["documents"])}


def test_corpus_ingest_metadata(ingestor, corpus):
    events: list[tuple[str, int]] = []
    report = ingestor.ingest([str(corpus)], progress=lambda e, n: events.append((e, n)))
    assert isinstance(report, IngestReport)
    assert report.ok and report.added == 6 and report.updated == report.unchanged == 0
    assert sum(n for e, n in events if e == "article") == 6
    assert sum(n for e, n in events if e == "chunks") == report.chunks_embedded
    rows = stored(ingestor)
    assert len(rows) == report.chunks_embedded == ingestor.store.count()
    from ingest.loaders import load_sources

    arts = {a.id: a for a in load_sources([str(corpus)])}
    for cid, md in rows.items():
        a = arts[md["article_id"]]
        for key in ("article_id", "title", "source", "author", "date", "url", "chunk_index", "start", "end", "n_chunks", "content_hash", "date_num"):
            assert key in md, key
        assert cid == f"{a.id}-{md['chunk_index']:05d}"
        assert (md["title"], md["source"], md["author"], md["url"], md["date"]) == (a.title, a.source, a.author, a.url, a.date_iso)
        assert md["date_num"] == int(a.date_iso.replace("-", ""))
        assert a.text[md["start"] : md["end"]] == md["_doc"]
    dates = sorted({md["date"] for md in rows.values()})
    assert dates == ["2024-01-18", "2024-02-12", "2024-03-07", "2024-04-22", "2024-05-14", "2024-06-12"]
    infos = ingestor.store.articles()
    assert len(infos) == 6 and infos[0].date == "2024-06-12"  # newest first


def test_idempotent_reingest(ingestor, corpus):
    first = ingestor.ingest([str(corpus)])
    n = ingestor.store.count()
    second = ingestor.ingest([str(corpus)])
    assert second.chunks_embedded == 0 and second.unchanged == 6 and second.added == second.updated == 0
    assert ingestor.store.count() == n == first.chunks_embedded


def test_same_article_twice_is_not_duplicated(ingestor, tmp_path):
    rec = {"title": "Dup", "url": "https://e.example/dup", "text": LONG}
    (tmp_path / "a.json").write_text(json.dumps(rec))
    (tmp_path / "b.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    report = ingestor.ingest([str(tmp_path), str(tmp_path / "a.json")])
    assert report.ok
    assert len(ingestor.store.articles()) == 1
    ids = list(stored(ingestor))
    assert len(ids) == len(set(ids)) == ingestor.store.count()


def test_update_replaces_chunks_without_stale_ids(ingestor):
    url = "https://e.example/story"
    r1 = ingestor.ingest_items([Article(text=LONG, title="Story", url=url)])
    assert r1.added == 1
    before = stored(ingestor)
    assert len(before) > 3
    # Shorter, changed text: fewer chunks, every one different.
    new_text = "The board postponed the vote. " + LONG[: len(LONG) // 3]
    r2 = ingestor.ingest_items([Article(text=new_text, title="Story (updated)", url=url)])
    assert r2.updated == 1 and r2.added == 0
    after = stored(ingestor)
    art = Article(text=new_text, url=url)
    assert len(after) == r2.chunks_embedded < len(before)
    assert {md["chunk_index"] for md in after.values()} == set(range(len(after)))
    assert all(md["title"] == "Story (updated)" and md["n_chunks"] == len(after) for md in after.values())
    assert all(art.text[md["start"] : md["end"]] == md["_doc"] for md in after.values())
    assert not any("Sentence 119" in md["_doc"] for md in after.values())
    infos = ingestor.store.articles()
    assert len(infos) == 1 and infos[0].title == "Story (updated)" and infos[0].n_chunks == len(after)
    # Longer again: grows back, still one consistent version.
    r3 = ingestor.ingest_items([Article(text=LONG + " A late addition.", title="Story", url=url)])
    assert r3.updated == 1
    final = stored(ingestor)
    assert len({md["content_hash"] for md in final.values()}) == 1 and len(final) == r3.chunks_embedded


def test_metadata_only_change_is_an_update(ingestor):
    a = Article(text=LONG, title="Old title", url="https://e.example/m")
    ingestor.ingest_items([a])
    r = ingestor.ingest_items([Article(text=LONG, title="New title", url="https://e.example/m")])
    assert r.updated == 1
    assert {md["title"] for md in stored(ingestor).values()} == {"New title"}


def test_interrupted_write_is_repaired(ingestor):
    a = Article(text=LONG, title="Story", url="https://e.example/cut")
    ingestor.ingest_items([a])
    ids = sorted(stored(ingestor))
    ingestor.store.collection.delete(ids=ids[-2:])  # as if the run died mid-upsert
    r = ingestor.ingest_items([a])
    assert r.updated == 1 and sorted(stored(ingestor)) == ids


def test_delete(ingestor, corpus):
    ingestor.ingest([str(corpus)])
    victim = next(a for a in ingestor.store.articles() if a.source == "Metro Wire")
    total = ingestor.store.count()
    n = ingestor.delete(victim.id)
    assert n == victim.n_chunks > 0
    assert ingestor.store.count() == total - n
    assert victim.id not in {a.id for a in ingestor.store.articles()}
    assert ingestor.delete(victim.id) == 0
    # Re-ingesting brings it back as new.
    r = ingestor.ingest([str(corpus / "novalink-recall.html")])
    assert r.added == 1


def test_version_token_changes_on_write(ingestor, corpus):
    v0 = ingestor.store.version()
    ingestor.ingest([str(corpus / "riverton-budget.md")])
    v1 = ingestor.store.version()
    assert v1 != v0


def test_one_ingest_write_bumps_the_version_once(ingestor, monkeypatch):
    """An update that overwrites some chunks and deletes the stale rest is one write: one version change."""
    url = "https://e.example/once"
    ingestor.ingest_items([Article(text=LONG, title="Story", url=url)])
    v0 = ingestor.store.version()
    real = ingestor.store.bump_version
    bumps: list[int] = []
    monkeypatch.setattr(ingestor.store, "bump_version", lambda: (bumps.append(1), real())[1])
    r = ingestor.ingest_items([Article(text=LONG[: len(LONG) // 3], title="Story", url=url)])
    assert r.updated == 1 and r.chunks_deleted > 0
    assert len(bumps) == 1 and ingestor.store.version() != v0
    assert ingestor.store.count() == r.chunks_embedded


@pytest.fixture
def bad_batch(tmp_path: Path, corpus: Path) -> tuple[list[str], dict[str, str]]:
    """Good articles mixed with every kind of bad input: paths and the reason each must report."""
    d = tmp_path / "batch"
    d.mkdir()
    good = d / "good.md"
    good.write_text("---\ntitle: Good story\nsource: Metro Wire\ndate: 2024-03-01\n---\n" + LONG)
    (d / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (d / "zero.md").write_bytes(b"")
    (d / "empty-article.json").write_text(json.dumps({"title": "Nothing here", "text": ""}))
    (d / "latin1.txt").write_bytes("Title: Café story\n\nLe café de la Place Vendôme a fermé. ".encode("latin-1") * 3)
    (d / "utf16.txt").write_bytes("Title: UTF-16 story\n\nThe mayor of Zürich spoke on Monday.".encode("utf-16"))
    (d / "broken.json").write_text('{"title": "x", "text": ')
    (d / "lines.jsonl").write_text(json.dumps({"title": "Line ok", "url": "https://e.example/l1", "text": "Line one is fine."}) + "\n{oops\n")
    (d / "bad-yaml.md").write_text("---\ntitle: [oops\n---\nBody text.")
    (d / "scripts.html").write_text("<html><head><script>x()</script></head><body><script>y()</script></body></html>")
    big = d / "huge.txt"
    with open(big, "wb") as fh:
        fh.truncate(25 * 1024 * 1024)
    unsupported = tmp_path / "slides.pptx"
    unsupported.write_bytes(b"PK\x03\x04")
    missing = tmp_path / "does-not-exist.md"
    expected = {
        "binary.txt": "binary",
        "zero.md": "empty file",
        "empty-article.json": "no text",
        "broken.json": "invalid JSON",
        "lines.jsonl": "invalid JSON line",
        "bad-yaml.md": "bad YAML",
        "scripts.html": "no article text",
        "huge.txt": "too large",
        "slides.pptx": "unsupported file type",
        "does-not-exist.md": "no such file",
    }
    return [str(d), str(unsupported), str(missing), str(corpus / "riverton-budget.md")], expected


def test_bad_inputs_in_one_batch(ingestor, bad_batch):
    paths, expected = bad_batch
    report = ingestor.ingest(paths)
    by_file: dict[str, list] = {}
    for e in report.errors:
        by_file.setdefault(Path(e.source.split(":")[0].split("[")[0]).name, []).append(e)
    assert sorted(by_file) == sorted(expected), report.errors
    for name, reason in expected.items():
        errs = by_file[name]
        assert len(errs) == 1, errs
        assert name in errs[0].source and reason in errs[0].reason, errs[0]
        assert str(errs[0]) == f"{errs[0].source}: {errs[0].reason}"
    titles = sorted(a.title for a in ingestor.store.articles())
    assert titles == sorted(["Good story", "Café story", "UTF-16 story", "Line ok", "Riverton City Council Approves $412.6 Million Budget for 2024"])
    assert report.added == 5 and not report.ok
    d = report.as_dict()
    assert d["failed"] == len(expected) and all(set(e) == {"source", "reason"} for e in d["errors"])


def _small_groups(ingestor, monkeypatch, flush: int = 2, group: int = 1):
    """Lookups of ``flush`` articles and write groups of ``group`` chunks, so one run has many of each."""
    from ingest import pipeline

    monkeypatch.setattr(pipeline, "FLUSH_ARTICLES", flush)
    ingestor.settings = ingestor.settings.model_copy(update={"ingest_group_chunks": group})


def test_many_write_groups_equal_one(ingestor, corpus, monkeypatch):
    """Embedding in groups with a background writer stores exactly what one big group stores."""
    _small_groups(ingestor, monkeypatch)
    events: list[tuple[str, int]] = []
    r = ingestor.ingest([str(corpus)], progress=lambda e, n: events.append((e, n)))
    assert r.ok and r.added == 6 and sum(n for e, n in events if e == "article") == 6
    rows = stored(ingestor)
    assert len(rows) == r.chunks_embedded == ingestor.store.count()
    assert {md["article_id"] for md in rows.values()} == set(r.article_ids)
    again = ingestor.ingest([str(corpus)])
    assert again.unchanged == 6 and again.chunks_embedded == 0


def test_article_again_in_a_later_group_while_first_copy_unwritten(ingestor, monkeypatch):
    """The same article in two lookup groups of one run, the first copy not yet written when the
    second is looked up: the later copy wins and nothing is duplicated."""
    _small_groups(ingestor, monkeypatch, flush=2, group=10_000)  # nothing is written until the end
    url = "https://e.example/twice"
    items = [Article(text=LONG, title="v1", url=url), Article(text="Other story. " * 40, title="B", url="https://e.example/b"),
             Article(text="A shorter second version of the story.", title="v2", url=url),
             Article(text="Third story. " * 40, title="C", url="https://e.example/c")]
    r = ingestor.ingest_items(items)
    assert r.ok
    rows = stored(ingestor)
    mine = [md for md in rows.values() if md["url"] == url]
    assert len(mine) == 1 and mine[0]["title"] == "v2" and mine[0]["n_chunks"] == 1
    assert len(ingestor.store.articles()) == 3 and len(rows) == ingestor.store.count()


def test_failed_write_stops_the_run_and_keeps_earlier_groups(ingestor, corpus, monkeypatch):
    """A store error in the background writer surfaces in ingest (not swallowed in the thread);
    groups written before it stay whole, and a re-run completes the rest."""
    _small_groups(ingestor, monkeypatch, flush=1, group=1)
    real = ingestor.store.upsert
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*a, **kw)

    monkeypatch.setattr(ingestor.store, "upsert", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        ingestor.ingest([str(corpus)])
    assert len(ingestor.store.articles()) == 2  # the two groups written before the failure, each whole
    monkeypatch.setattr(ingestor.store, "upsert", real)
    r = ingestor.ingest([str(corpus)])
    assert r.ok and r.unchanged == 2 and r.added == 4 and len(ingestor.store.articles()) == 6
