"""The shortcuts of the query path give what the full path gives: with_copies' skip when no group among the
passages holds a copy (``KeywordIndex.joined_groups``), and the texts and metadata read only for the passages
kept. Real Chroma in a temp folder, the real bundled embedder and ingest pipeline, the syndication fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag.retrieve
from ingest.pipeline import Ingestor
from rag.retrieve import Retriever
from tests.conftest import DATA_DIR, FIXTURES, article_groups

SYND = FIXTURES / "syndication"
QUESTIONS = ["Why did the Lakeport to Gull Island ferry stop running, and for how long?",  # a group of three copies
             "What did the frost do to the orchards?",  # a group of two
             "Iraq militias Israel Iran airspace protests",  # no copies among the passages
             "Novalink Aerio X2 recall"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, embedder) -> Ingestor:
    from rag.config import Settings

    ing = Ingestor(Settings(data_dir=tmp_path_factory.mktemp("copies")), embedder=embedder)
    ing.ingest([str(DATA_DIR), str(FIXTURES / "corpus"), str(SYND)])
    return ing


def stored_groups(store) -> dict[str, set[str]]:
    """Group key -> the articles stored in it."""
    out: dict[str, set[str]] = {}
    for aid, keys in article_groups(store).items():
        for key in keys:
            out.setdefault(key, set()).add(aid)
    return out


def full_path(monkeypatch: pytest.MonkeyPatch, store) -> list[int]:
    """Make the retriever call with_copies without the groups it may skip; count its group lookups."""
    lookups = [0]
    real_with_copies, real_iter = rag.retrieve.with_copies, store.iter_metadatas

    def counted(*a, **kw):
        lookups[0] += 1
        return real_iter(*a, **kw)

    monkeypatch.setattr(rag.retrieve, "with_copies", lambda *a, shared=None: real_with_copies(*a))
    monkeypatch.setattr(store, "iter_metadatas", counted)
    return lookups


def test_joined_groups_cover_every_group_of_two_or_more(archive: Ingestor) -> None:
    kw = archive.store.keywords.refresh()
    multi = {g for g, arts in stored_groups(archive.store).items() if len(arts) > 1}
    assert len(multi) == 2  # the ferry and orchard stories
    assert kw.joined_groups == multi  # and no single-article group: those are the queries that skip the lookup
    kw.rebuild()
    assert kw.refresh().joined_groups == multi


def test_retrieve_skips_the_copies_lookup_only_where_it_would_change_nothing(archive: Ingestor, monkeypatch: pytest.MonkeyPatch) -> None:
    r = Retriever(archive.settings, archive.store, archive.embedder)
    group_of = {aid: g for g, arts in stored_groups(archive.store).items() for aid in arts}
    real_iter, looked = archive.store.iter_metadatas, []
    monkeypatch.setattr(archive.store, "iter_metadatas", lambda *a, **kw: looked.append(1) or real_iter(*a, **kw))
    fast, skipped = {}, []
    for q in QUESTIONS:
        looked.clear()
        fast[q] = r.retrieve(q, k=6)
        shared = {group_of[p.article_id] for p in fast[q]} & r.keywords.joined_groups
        assert bool(looked) == bool(shared), q  # looked up exactly when a group among the passages holds a copy
        skipped += [q] if not looked else []
    assert skipped
    assert any(p.also_published for p in fast[QUESTIONS[0]])
    assert not any(p.also_published for p in fast[QUESTIONS[2]])
    monkeypatch.setattr(archive.store, "iter_metadatas", real_iter)
    lookups = full_path(monkeypatch, archive.store)
    for q in QUESTIONS:
        assert r.retrieve(q, k=6) == fast[q], q
    assert lookups[0] >= len(QUESTIONS)  # the full path looked every time


def test_texts_and_metadata_read_late_give_the_same_passages(archive: Ingestor) -> None:
    import numpy as np

    # Few candidates from each side, so that some are found by keywords only in this small archive.
    r = Retriever(archive.settings.model_copy(update={"candidates": 8}), archive.store, archive.embedder)
    keyword_only = 0
    for q in QUESTIONS:
        lazy = r.retrieve(q, k=6)
        # Preferring an outlet that holds nothing changes no score, but makes ranking read every candidate's metadata.
        eager = r.retrieve(q, k=6, prefer=["No Such Outlet"])
        assert lazy == eager, q
        assert all(p.text for p in lazy)
        # Dense scores, of dense hits (Chroma's distance) and of keyword-only hits (the stored vector), are cosines.
        cands = r.candidates(q)
        keyword_only += sum(c.dense_rank is None for c in cands)
        assert all(c.text for c in cands)
        qv = np.asarray(archive.embedder.get_query_embedding(q), dtype=np.float32)
        got = archive.store.collection.get(ids=[c.chunk_id for c in cands], include=["embeddings"])
        cos = {cid: float(np.asarray(v, dtype=np.float32) @ qv) for cid, v in zip(got["ids"], got["embeddings"])}
        assert all(abs(c.dense - cos[c.chunk_id]) < 1e-4 for c in cands)
    assert keyword_only


@pytest.mark.slow
def test_a_group_left_with_one_article_lists_no_copies(tmp_path: Path, embedder) -> None:
    from rag.config import Settings

    ing = Ingestor(Settings(data_dir=tmp_path), embedder=embedder)
    files = {name: str(SYND / name) for name in ("orchard-frost-wire.md", "orchard-frost-valley-post.md")}
    ing.ingest(list(files.values()))
    ids = {Path(a.origin).name: a.id for a in ing.store.articles()}
    r = Retriever(ing.settings, ing.store, ing.embedder)
    q = QUESTIONS[1]
    assert r.retrieve(q, k=4)[0].also_published
    for gone in files:  # the copy that joined (the group leaves joined_groups), then the one that started it
        assert ing.delete(ids[gone]) > 0
        passages = r.retrieve(q, k=4)
        assert passages and not any(p.also_published for p in passages), gone
        assert len(r.keywords.joined_groups) <= 1
        ing.ingest([files[gone]])
        ids = {Path(a.origin).name: a.id for a in ing.store.articles()}
        assert r.retrieve(q, k=4)[0].also_published


def test_searches_for_the_outlets_a_question_names_add_no_second_copy_of_a_story(archive: Ingestor) -> None:
    import datetime as dt

    from rag.pipeline import plan_search, retrieve
    from rag.planner import plan_question
    from rag.types import Filters

    r = Retriever(archive.settings, archive.store, archive.embedder)
    group_of = {aid: g for g, arts in stored_groups(archive.store).items() for aid in arts}
    source_of = {a.id: a.source for a in archive.store.articles()}
    sources = r.archive_sources()

    def shown(q: str):
        plan = plan_search(q, Filters(), dt.date(2024, 8, 1), r.archive_months(), sources)
        got = retrieve(plan, r, archive.embedder, 8, plan_question(q, sources))
        copies: dict[str, set[str]] = {}
        for p in got.passages:
            copies.setdefault(group_of[p.article_id], set()).add(source_of[p.article_id])
        return got, copies

    ferry = group_of[next(a.id for a in archive.store.articles() if a.source == "Tidewater Wire")]
    # Harbor Ledger's copy of the wire story: the main search finds the wire's (the earliest) and the outlet search Harbor Ledger's.
    got, copies = shown("Did Harbor Ledger report that the Gull Island ferry was halted over a crack in the hull?")
    assert copies[ferry] == {"Harbor Ledger"}
    [(label, nums)] = got.parts
    p = next(p for p in got.passages if group_of[p.article_id] == ferry)
    assert label == "Harbor Ledger" and p.number in nums and p.source == "Harbor Ledger"
    assert [c.source for c in p.also_published] == ["Tidewater Wire", "Coast Daily"]  # the earliest, the likely original, first
    # Two outlets named, each with a copy: one copy each, and not the wire's besides.
    got, copies = shown("What did Coast Daily and Harbor Ledger say about the Gull Island ferry crack?")
    assert copies[ferry] == {"Coast Daily", "Harbor Ledger"}
    assert len({p.article_id for p in got.passages if group_of[p.article_id] == ferry}) == 2
    assert all(nums for _, nums in got.parts)
    # "Which came first": one copy of each story, and each report has its passage.
    got, copies = shown("Which came first: the Gull Island ferry crack or the Miro valley apricot frost?")
    assert all(len(srcs) == 1 for srcs in copies.values()) and len(got.parts) == 2 and all(nums for _, nums in got.parts)
