"""The chunk-metadata contract (rag.schema): what ingest writes is what store and retrieve read."""

from __future__ import annotations

import datetime as dt
import json

from rag.schema import ARTICLE_ID, DATE_NUM, SOURCE, ChunkMeta, chunk_header, where_articles

# The flat keys every stored chunk has had since the first archive, in order (llama-index adds its own).
STORED_KEYS = ["article_id", "content_hash", "chunk_index", "n_chunks", "start", "end", "title", "source", "author", "url",
               "category", "published_at", "date", "date_num", "origin", "ingested_at"]
# Keys added since, after those (rows written before lack them: ChunkMeta.from_metadata gives the defaults).
ADDED_KEYS = ["group", "minhash"]
LLAMA_KEYS = {"_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id"}


def test_round_trip_and_key_order() -> None:
    m = ChunkMeta(article_id="a", content_hash="h", chunk_index=2, n_chunks=3, start=10, end=20, title="T", source="S",
                  date="2024-05-01", date_num=20240501)
    md = m.to_metadata()
    assert list(md) == STORED_KEYS + ADDED_KEYS
    assert ChunkMeta.from_metadata(md) == m
    assert (ARTICLE_ID, SOURCE, DATE_NUM) == ("article_id", "source", "date_num")


def test_from_metadata_tolerates_missing_and_extra_keys() -> None:
    m = ChunkMeta.from_metadata({"article_id": "a", "date_num": None, "title": "", "_node_content": "{}", "doc_id": "a"})
    assert m.article_id == "a" and m.date_num == 0 and m.title == ""
    assert m.chunk_index == -1 and m.n_chunks == -1  # unknown, never mistaken for a first chunk or a count
    assert ChunkMeta.from_metadata(None) == ChunkMeta()


def test_header_is_defined_once() -> None:
    from ingest.article import Article

    a = Article(text="Body.", title="Title", source="Outlet", published_at=dt.datetime(2024, 2, 3, tzinfo=dt.timezone.utc))
    assert a.header() == chunk_header("Title", "Outlet", "2024-02-03") == "Title | Outlet | 2024-02-03"
    m = ChunkMeta(title="Title", source="Outlet", date="2024-02-03")
    assert m.header == a.header() and m.headed("Body.") == "Title | Outlet | 2024-02-03\nBody."
    assert ChunkMeta().headed("Body.") == "Body."
    assert chunk_header("", "Outlet", "") == "Outlet"


def test_where_articles() -> None:
    assert where_articles(["a"]) == {"article_id": "a"}
    assert where_articles(["a", "b"]) == {"article_id": {"$in": ["a", "b"]}}


def test_ingest_writes_the_schema_in_llama_index_node_format(settings, embedder) -> None:
    """The rows ingest writes: the schema's keys plus llama-index's wrapping; embedded text == keyword-indexed text."""
    from ingest.article import Article
    from ingest.pipeline import Ingestor, embed_text

    ing = Ingestor(settings, embedder=embedder)
    art = Article(text="The harbour board met on Monday. " * 40, title="Harbour", source="Wire", url="https://e.example/h",
                  published_at=dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc), origin="/x/h.md")
    chunks = ing.chunker.split(art)
    ids, docs, metas = ing._rows([(art, chunks)])
    assert ids == [c.id for c in chunks] and docs == [c.text for c in chunks]
    for c, md in zip(chunks, metas):
        assert [k for k in md if k not in LLAMA_KEYS] == STORED_KEYS + ADDED_KEYS and set(md) >= LLAMA_KEYS
        m = ChunkMeta.from_metadata(md)
        assert (m.article_id, m.chunk_index, m.n_chunks, m.start, m.end) == (art.id, c.index, len(chunks), c.start, c.end)
        assert (m.date, m.date_num, m.published_at, m.origin) == ("2024-03-01", 20240301, "2024-03-01T00:00:00+00:00", "/x/h.md")
        assert md["ref_doc_id"] == art.id and json.loads(md["_node_content"])["metadata"]["title"] == "Harbour"
        assert m.headed(c.text) == embed_text(art, c.text)
