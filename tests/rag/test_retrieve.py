"""Hybrid retrieval over a real Chroma index: fusion, filters, BM25 freshness, the optional reranker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.dates import LATEST
from rag.errors import ModelError
from rag.retrieve import Retriever
from tests.conftest import DATA_DIR, FIXTURES


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = Settings(data_dir=tmp_path_factory.mktemp("retrieve"))
    Ingestor(s).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    return s


def test_dense_and_keyword_hits_are_fused(indexed: Settings) -> None:
    r = Retriever(indexed)
    cands = r.candidates("Aerio X2 recall 184,000 units")
    top = cands[0]
    assert top.metadata["source"] == "Metro Wire"
    assert top.dense_rank is not None and top.bm25_rank is not None  # found by both
    assert all(-1.0 <= c.dense <= 1.0 for c in cands)
    assert [c.fused for c in cands] == sorted((c.fused for c in cands), reverse=True)


def test_passages_carry_citation_metadata_and_limit_per_article(indexed: Settings) -> None:
    ps = Retriever(indexed).retrieve("Iraq militias Israel Iran airspace protests", k=6, per_article=2)
    assert [p.number for p in ps] == list(range(1, len(ps) + 1))
    by_article: dict[str, int] = {}
    for p in ps:
        by_article[p.article_id] = by_article.get(p.article_id, 0) + 1
        assert p.chunk_id.startswith(p.article_id) and p.end > p.start
    assert max(by_article.values()) <= 2
    assert ps[0].source == "Breitbart" and ps[0].title.startswith("Iran-Backed Militias")


def test_filters_apply_to_both_retrievers(indexed: Settings) -> None:
    r = Retriever(indexed)
    ps = r.retrieve("Novalink Aerio X2 recall", filters={"sources": ["Valley Courier", "Harbor Ledger"]}, k=10)
    assert ps and {p.source for p in ps} <= {"Valley Courier", "Harbor Ledger"}
    ps = r.retrieve("Novalink Aerio X2 recall", filters={"date_from": "2024-05-01"}, k=10)
    assert ps and all(p.date >= "2024-05-01" for p in ps)


def test_each_preferred_span_counts_so_a_wide_one_does_not_drown_a_day(indexed: Settings) -> None:
    r = Retriever(indexed)
    plain = r.candidates("storm port council budget")
    day = dt.date.fromisoformat(next(c for c in plain[1:] if c.meta.date != plain[0].meta.date).meta.date)
    wide = (dt.date(1905, 1, 1), LATEST)  # "from 1905 to 1913", read with "on <day>" in one question
    ranked = r.candidates("storm port council budget", boost=[wide, (day, day)])
    assert ranked[0].meta.date == day.isoformat()
    assert {c.chunk_id for c in ranked} == {c.chunk_id for c in plain}  # preferred, nothing filtered


def test_named_outlets_rank_higher_without_excluding_others(indexed: Settings) -> None:
    r = Retriever(indexed)
    plain = r.candidates("storm port council budget")
    other = next(c for c in plain if c.meta.source != plain[0].meta.source)
    preferred = r.candidates("storm port council budget", prefer=[other.meta.source])
    assert preferred[0].meta.source == other.meta.source
    assert {c.chunk_id for c in preferred} == {c.chunk_id for c in plain}
    factor = {c.chunk_id: c.fused for c in preferred}[other.chunk_id] / other.fused
    assert factor == pytest.approx(1.5)


def test_keyword_index_follows_writes(indexed: Settings, tmp_path: Path) -> None:
    s = indexed.model_copy(update={"collection": "byline_fresh"})
    ing = Ingestor(s)
    ing.ingest([str(FIXTURES / "corpus")])
    r = Retriever(s)
    assert not any("Quillfeather" in p.full_text for p in r.retrieve("Quillfeather", k=3))
    new = tmp_path / "new.md"
    new.write_text("---\ntitle: Quillfeather wins\nsource: Test Times\npublished_at: 2024-07-01\n---\nThe Quillfeather prize went to a poet.\n")
    ing.ingest([str(new)])
    assert r.retrieve("Quillfeather", k=3)[0].title == "Quillfeather wins"  # BM25 rebuilt after the version change
    aid = r.retrieve("Quillfeather", k=1)[0].article_id
    ing.delete(aid)
    assert all(p.article_id != aid for p in r.retrieve("Quillfeather", k=3))


def test_missing_reranker_folder_is_a_clear_error(indexed: Settings, tmp_path: Path) -> None:
    s = indexed.model_copy(update={"reranker_path": tmp_path / "no-such-model"})
    with pytest.raises(ModelError, match="reranker_path"):
        Retriever(s).retrieve("storm")
