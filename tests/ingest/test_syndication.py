"""Syndicated copies: grouped at ingest, one passage per group at answer time, the other copies listed.

Fixtures: tests/fixtures/syndication (README there lists the expected groups). Real Chroma in a temp
folder, the real bundled embedder, the real ingest pipeline and the extractive generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, article_groups

SYND = FIXTURES / "syndication"
FERRY = ["ferry-wire.md", "ferry-harbor-ledger.md", "ferry-coast-daily.md"]
ORCHARD = ["orchard-frost-wire.md", "orchard-frost-valley-post.md"]
ALONE = ["ferry-island-voices.md"]
FERRY_Q = "Why did the Lakeport to Gull Island ferry stop running, and for how long?"


def ids_by_file(store) -> dict[str, str]:
    return {Path(a.origin).name: a.id for a in store.articles()}


def partition(store) -> set[frozenset[str]]:
    """The stored groups as sets of file names."""
    names = {v: k for k, v in ids_by_file(store).items()}
    by: dict[str, set[str]] = {}
    for aid, keys in article_groups(store).items():
        assert len(keys) == 1, f"{names[aid]} has chunks in several groups: {keys}"
        by.setdefault(next(iter(keys)), set()).add(names[aid])
    return {frozenset(v) for v in by.values()}


EXPECTED = {frozenset(FERRY), frozenset(ORCHARD), frozenset(ALONE)}


def test_copies_score_above_the_threshold_and_the_same_event_far_below() -> None:
    from ingest.loaders import load_sources
    import numpy as np

    from ingest.syndication import MIN_JACCARD, decode_all, signature

    sig = {Path(a.origin).name: signature(a.text) for a in load_sources([str(SYND)]) if hasattr(a, "text")}
    for group in (FERRY, ORCHARD):
        for other in group[1:]:
            assert sig[group[0]].jaccard(sig[other]) >= MIN_JACCARD + 0.15, other
    assert sig["ferry-wire.md"].jaccard(sig["ferry-island-voices.md"]) < MIN_JACCARD / 3
    wire = sig["ferry-wire.md"]
    keep, values = decode_all(["mh0:AAAA", wire.encode(), "", wire.encode()[:-4]])  # other parameters, or cut short: ignored
    assert keep == [1] and np.array_equal(values[0], wire.minhash.hashvalues)  # what is stored is what is compared
    assert signature("Too short to tell a copy from a quote.") is None


def test_ingest_groups_copies_and_reingest_is_idempotent(ingestor, tmp_path) -> None:
    from ingest.pipeline import Ingestor
    from rag.schema import ChunkMeta

    rep = ingestor.ingest([str(SYND)])
    assert rep.ok and rep.added == 6 and rep.grouped == 3
    assert "3 syndicated copies grouped" in rep.summary() and rep.as_dict()["grouped"] == 3
    assert partition(ingestor.store) == EXPECTED
    sig_rows = [ChunkMeta.from_metadata(md) for _c, md, _ in ingestor.store.iter_metadatas()]
    assert all(bool(m.minhash) == (m.chunk_index == 0) for m in sig_rows)  # the signature lives on the first chunk only
    assert not any("minhash" in md["_node_content"] for _c, md, _ in ingestor.store.iter_metadatas())  # and only once
    before = article_groups(ingestor.store)

    again = ingestor.ingest([str(SYND)])
    assert again.unchanged == 6 and again.grouped == 0 and again.chunks_embedded == 0
    assert article_groups(ingestor.store) == before
    # A new process (an index rebuilt from the store) re-ingesting one copy that changed keeps it in its group.
    fresh = Ingestor(ingestor.settings, embedder=ingestor.embedder)
    edited = (SYND / "orchard-frost-valley-post.md").read_text().replace("Applications open on May 2.", "Applications open on May 3.")
    (tmp_path / "orchard-frost-valley-post.md").write_text(edited)
    rep3 = fresh.ingest([str(tmp_path / "orchard-frost-valley-post.md")])
    assert rep3.updated == 1 and rep3.grouped == 1
    assert partition(fresh.store) == EXPECTED


@pytest.mark.slow
def test_grouping_does_not_depend_on_the_order_or_the_run(settings, embedder) -> None:
    """One article per run, newest first, each run a new Ingestor (process): the same groups as one run."""
    from ingest.pipeline import Ingestor

    files = sorted(SYND.glob("*.md"), key=lambda p: p.name, reverse=True)
    grouped = 0
    for f in files:
        if f.name != "README.md":
            grouped += Ingestor(settings, embedder=embedder).ingest([str(f)]).grouped
    store = Ingestor(settings, embedder=embedder).store
    assert grouped == 3 and partition(store) == EXPECTED


def test_a_changed_article_leaves_its_group(ingestor, tmp_path) -> None:
    ingestor.ingest([str(SYND)])
    # Coast Daily's page now carries other text (the feature article's, lightly edited) under the same URL.
    front = (SYND / "ferry-coast-daily.md").read_text().split("---\n")[1]
    body = (SYND / "ferry-island-voices.md").read_text().split("---\n", 2)[2].replace("Wednesday", "Thursday")
    rewritten = tmp_path / "ferry-coast-daily.md"
    rewritten.write_text(f"---\n{front}---\n{body}")
    rep = ingestor.ingest([str(rewritten)])
    assert rep.updated == 1 and rep.grouped == 1  # now a copy of the feature article, no longer of the wire story
    assert partition(ingestor.store) == {frozenset(FERRY[:2]), frozenset(ORCHARD), frozenset(ALONE + ["ferry-coast-daily.md"])}


def test_retrieval_gives_one_passage_per_group_citing_the_earliest_copy(ingestor) -> None:
    from rag.retrieve import Retriever

    ingestor.ingest([str(SYND)])
    ids = ids_by_file(ingestor.store)
    names = {v: k for k, v in ids.items()}
    retriever = Retriever(ingestor.settings, ingestor.store, ingestor.embedder)
    passages = retriever.retrieve(FERRY_Q, k=6)
    ferry = [p for p in passages if names[p.article_id] in FERRY]
    assert len({p.article_id for p in ferry}) == 1  # one copy of the story, however well the others match
    p = ferry[0]
    assert names[p.article_id] == "ferry-wire.md"  # the earliest copy holds the passage: it is the one cited
    assert [(c.source, names[c.article_id]) for c in p.also_published] == [("Harbor Ledger", "ferry-harbor-ledger.md"),
                                                                           ("Coast Daily", "ferry-coast-daily.md")]
    assert [q.number for q in passages] == list(range(1, len(passages) + 1))
    voices = [q for q in passages if names[q.article_id] == "ferry-island-voices.md"]
    assert all(not q.also_published for q in voices)  # same event, own article: a passage of its own
    # The earliest copy filtered out (another outlet asked for): the copy found is cited, the wire story listed.
    only = retriever.retrieve(FERRY_Q, filters={"sources": ["Coast Daily"]}, k=3)
    assert only and {names[q.article_id] for q in only} == {"ferry-coast-daily.md"}
    assert [names[c.article_id] for c in only[0].also_published] == ["ferry-wire.md", "ferry-harbor-ledger.md"]


def test_deleting_the_earliest_copy_promotes_the_next(ingestor) -> None:
    from rag.retrieve import Retriever

    ingestor.ingest([str(SYND)])
    ids = ids_by_file(ingestor.store)
    assert ingestor.delete(ids["ferry-wire.md"]) > 0
    names = {v: k for k, v in ids.items()}
    assert partition(ingestor.store) == {frozenset(FERRY[1:]), frozenset(ORCHARD), frozenset(ALONE)}
    passages = Retriever(ingestor.settings, ingestor.store, ingestor.embedder).retrieve(FERRY_Q, k=6)
    ferry = [p for p in passages if names[p.article_id] in FERRY]
    assert len(ferry) >= 1 and len({p.article_id for p in ferry}) == 1
    cited = names[ferry[0].article_id]
    listed = [names[c.article_id] for c in ferry[0].also_published]
    assert sorted([cited] + listed) == sorted(FERRY[1:])  # nobody lists the deleted copy
    # Harbor Ledger is now the earliest: cited unless the passage found is Coast Daily's own added text.
    assert cited == "ferry-harbor-ledger.md" or "Here is the latest" in ferry[0].full_text
    # Ingested again, the wire story rejoins its copies.
    rep = ingestor.ingest([str(SYND / "ferry-wire.md")])
    assert rep.added == 1 and rep.grouped == 1 and partition(ingestor.store) == EXPECTED


@pytest.mark.slow
def test_ask_cites_one_copy_and_lists_the_others(ingestor) -> None:
    from rag.engine import Engine
    from ui.format import answer_sources, answer_to_terminal

    ingestor.ingest([str(SYND)])
    names = {v: k for k, v in ids_by_file(ingestor.store).items()}
    engine = Engine(ingestor.settings, embedder=ingestor.embedder, store=ingestor.store)
    answer = engine.ask(FERRY_Q)
    assert not answer.refused and answer.citations
    ferry = [c for c in answer.citations if names[c.article_id] in FERRY]
    assert len(ferry) == 1 and names[ferry[0].article_id] == "ferry-wire.md"
    assert {c.source for c in ferry[0].also_published} == {"Harbor Ledger", "Coast Daily"}
    text = answer_to_terminal(answer)
    assert "Also published by Harbor Ledger (2024-07-08), Coast Daily (2024-07-09)" in text
    assert "Also published by Harbor Ledger (2024-07-08), Coast Daily (2024-07-09)" in answer_sources(answer)
    as_json = json.loads(json.dumps(answer.as_dict()))
    cited = next(c for c in as_json["citations"] if c["article_id"] == ferry[0].article_id)
    assert [c["source"] for c in cited["also_published"]] == ["Harbor Ledger", "Coast Daily"]


@pytest.mark.parametrize("threshold", [None, 0.5])  # Byline's (two values a band) and one of five values a band
def test_bands_find_the_candidates_datasketch_finds(threshold: float | None) -> None:
    """``Bands`` (numpy, built at once) against datasketch's MinHashLSH with the same b and r: the same candidates
    for signatures that share some bands, after builds, additions, replacements and removals."""
    import numpy as np
    from datasketch import LeanMinHash, MinHashLSH

    from ingest.syndication import LSH_THRESHOLD, LSH_WEIGHTS, NUM_PERM, SCHEME, Bands

    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**32, size=(20, NUM_PERM), dtype=np.uint64)
    # 300 signatures, each a mix of one of 20 bases and noise: many share bands with others, many do not.
    sigs = np.where(rng.random((300, NUM_PERM)) < rng.random((300, 1)), base[rng.integers(0, 20, 300)],
                    rng.integers(0, 2**32, size=(300, NUM_PERM), dtype=np.uint64))
    ref = MinHashLSH(threshold=threshold or LSH_THRESHOLD, num_perm=NUM_PERM, weights=(0.5, 0.5) if threshold else LSH_WEIGHTS)

    def mh(v: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=1, hashvalues=v, scheme=SCHEME)

    ids = [f"a{i}" for i in range(300)]
    for aid, v in zip(ids[:200], sigs[:200]):
        ref.insert(aid, mh(v))
    bands = Bands(ref.b, ref.r)
    bands.build(ids[:200], sigs[:200].astype(np.uint32))
    for aid, v in zip(ids[200:250], sigs[200:250]):  # added after the build
        ref.insert(aid, mh(v))
        bands.add(aid, v.astype(np.uint32))
    for aid in ids[::7]:  # removed: built rows and added ones
        if aid in ref.keys:
            ref.remove(aid)
        bands.remove(aid)
    ref.remove("a3")
    ref.insert("a3", mh(sigs[260]))  # a changed article: its new signature replaces the old
    bands.add("a3", sigs[260].astype(np.uint32))
    found = 0
    for v in sigs:
        want = set(ref.query(mh(v)))
        assert bands.query(v.astype(np.uint32)) == want
        found += len(want) > 1
    assert found > 50  # the check compared real candidate sets, not empty ones


def test_the_keyword_index_keeps_the_signatures_and_fills_an_older_file(ingestor) -> None:
    import sqlite3

    from rag.keywords import KeywordIndex
    from rag.schema import ChunkMeta

    def stored() -> set[tuple[str, str, str]]:
        return {(m.article_id, m.group, m.minhash) for m in (ChunkMeta.from_metadata(md) for _c, md, _ in ingestor.store.iter_metadatas())
                if m.chunk_index == 0 and m.minhash}

    ingestor.ingest([str(SYND)])
    assert len(stored()) == 6 and set(ingestor.store.keywords.signatures()) == stored()
    ingestor.delete(ids_by_file(ingestor.store)["ferry-wire.md"])
    assert len(stored()) == 5 and set(ingestor.store.keywords.signatures()) == stored()
    path = ingestor.store.keywords.path
    ingestor.store.keywords.close()
    # A file written before the table existed: filled from the store once, at first use.
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM sigs")
        conn.execute("DELETE FROM info WHERE key = 'sigs'")
    assert set(KeywordIndex(ingestor.store).signatures()) == stored()
    # A write by a version without the table (its rows missing, the generation moved on): filled again.
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM info WHERE key = 'sigs'").fetchone() == conn.execute("SELECT value FROM info WHERE key = 'gen'").fetchone()
        conn.execute("DELETE FROM sigs WHERE rowid = (SELECT max(rowid) FROM sigs)")
        conn.execute("UPDATE info SET value = value + 1 WHERE key = 'gen'")
    assert set(KeywordIndex(ingestor.store).signatures()) == stored()


def test_a_copy_joins_the_group_of_a_story_another_process_ingested(ingestor, tmp_path) -> None:
    """The ingesting process has loaded its LSH index; another process then writes the wire story. The copy
    ingested next finds it through the signatures the keyword index caught up with from that write."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    ingestor.ingest([str(SYND / n) for n in ALONE])  # this process's index is now loaded and current
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    other = subprocess.run([sys.executable, "-m", "ui.cli", "ingest", str(SYND / FERRY[0]), "--data-dir", str(ingestor.settings.data_dir)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    rep = ingestor.ingest([str(SYND / FERRY[1])])
    assert rep.added == 1 and rep.grouped == 1
    assert partition(ingestor.store) == {frozenset(FERRY[:2]), frozenset(ALONE)}
