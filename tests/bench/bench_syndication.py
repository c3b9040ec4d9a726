"""Syndication benchmark (run by hand; not collected by pytest).

    python tests/bench/bench_syndication.py                  # quality, then cost at 10,000 articles
    python tests/bench/bench_syndication.py --sweep          # also the dev-half threshold sweep
    python tests/bench/bench_syndication.py --cost-articles 0  # quality only

Quality: the real articles (data/ and MultiHop-RAG's, read from ../shared at run time) are the
originals; about half of them get 1-3 syndicated copies made with the edits wire copies get:
headline rewrite, a dateline added or changed, a paragraph (from an unrelated real article) added at
the top or the end, the ending trimmed, a few words reworded, another outlet, byline and date.
MultiHop-RAG's articles include several outlets' coverage of the same events (the articles one
question cites together): those are the hard negatives and must not group. The originals are split
in two halves by id: the thresholds in ingest/syndication.py were chosen on "dev", "test" is reported
as the held-out figure. Every article is placed by ``SyndicationIndex.place`` in a shuffled order
(as ingest does), and pairwise precision/recall of the resulting groups is printed.

Cost: N articles recombined from the real articles' sentences (300-700 words each, 10% of them
syndicated copies), placed one by one (signature, LSH query, insert), plus the restart cost
(the index rebuilt from a real Chroma folder holding N first-chunk rows with signatures). The full
ingest of N articles (embedding) takes too long here, so a real ingest of a sample of the same
articles gives the per-article ingest cost, and the detection share is detection / (that x N).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import SHARED, real_articles  # noqa: E402

_SENT = re.compile(r"(?<=[.!?”\"])\s+(?=[A-Z“\"‘'])")
OUTLETS = ["Daily Ledger", "Coastline Times", "Metro Courier", "The Valley Post", "Northern Herald", "City Wire Online"]
CITIES = ["NEW YORK", "WASHINGTON", "LONDON", "SAN FRANCISCO", "CHICAGO", "SYDNEY"]
WIRES = ["(AP)", "(Reuters)", "(AFP)"]
NOTES = ["This story has been updated with additional information.",
         "Copyright 2023 The Associated Press. All rights reserved. This material may not be published, broadcast, rewritten or redistributed.",
         "Reporting by staff; editing by the news desk."]
# Reworded words as copy editors change them (house style, tense, spelled-out numbers).
SWAPS = {"said": "says", "says": "said", "percent": "%", "%": " percent", "million": "mln", "billion": "bn", "However,": "But",
         "also": "", "very": "", "about": "around", "more than": "over", "company": "firm", "people": "persons",
         "announced": "revealed", "Monday": "on Monday", "Tuesday": "on Tuesday", "will": "would", "that": "which"}


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for para in text.split("\n") for p in _SENT.split(para)) if s]


def reword(text: str, rng: random.Random) -> str:
    """A few words changed: about one per 25 words, by the swaps above or by dropping a word."""
    words = text.split(" ")
    for _ in range(max(1, len(words) // 25)):
        i = rng.randrange(len(words))
        w = words[i]
        if w in SWAPS:
            words[i] = SWAPS[w]
        elif len(words) > 8:
            words[i] = ""
    return re.sub(r" {2,}", " ", " ".join(words)).strip()


def edit_title(title: str, rng: random.Random) -> str:
    words = title.split()
    kind = rng.randrange(4)
    if kind == 0 and len(words) > 4:
        return " ".join(words[: max(3, len(words) * 2 // 3)])
    if kind == 1:
        return f"{rng.choice(['UPDATE: ', 'Report: ', 'WATCH: '])}{title}"
    if kind == 2:
        return f"{title} | {rng.choice(OUTLETS)}"
    return title.upper() if len(title) < 60 else title.title()


def make_copy(art, n: int, rng: random.Random, pool: list):
    """One syndicated copy of ``art`` with 2-3 edits, the way another outlet republishes a wire story."""
    import datetime as dt

    from ingest.article import Article

    paras = [p for p in art.text.split("\n") if p.strip()]
    edits = rng.sample(["dateline", "top", "end", "trim", "reword", "reword"], k=rng.choice([2, 3]))
    if "trim" in edits:
        sents = sentences("\n".join(paras))
        if len(sents) >= 3:  # trim the last 20-40% of the sentences (a one-sentence brief cannot be trimmed)
            keep = max(2, round(len(sents) * rng.uniform(0.6, 0.8)))
            paras = [" ".join(sents[:keep])]
    if "reword" in edits:
        paras = [reword(p, rng) for p in paras]
    # An added paragraph is small next to the story (a local angle, an editor's note): at most about a
    # quarter of the body's words (the MultiHop-RAG bodies are excerpts, often one or two sentences).
    budget = max(8, len(art.text.split()) // 4)
    other = rng.choice([a for a in pool if a.category != art.category] or pool)
    if "top" in edits:
        paras.insert(0, _cut(rng.choice(sentences(other.text)), budget))
    if "end" in edits:
        paras.append(_cut(rng.choice(NOTES + sentences(other.text)[:1]), budget))
    if "dateline" in edits and paras:
        paras[0] = f"{rng.choice(CITIES)} {rng.choice(WIRES)} — {paras[0]}"
    date = art.published_at + dt.timedelta(hours=rng.randint(1, 60)) if art.published_at else None
    return Article(text="\n\n".join(paras), title=edit_title(art.title, rng), source=rng.choice(OUTLETS), author="Staff",
                   published_at=date, url=f"https://copies.invalid/{art.id}/{n}", category=art.category, origin=f"copy:{art.id}:{n}")


def _cut(text: str, words: int) -> str:
    w = text.split()
    return text if len(w) <= words else " ".join(w[:words]) + "."


def build_set(originals: list, rng: random.Random, pool: list) -> tuple[list, dict[str, str]]:
    """The originals plus copies of about half of them; truth maps each article id to its original's id.
    ``pool``: where added paragraphs come from (the other half, so no article of the set is inside a copy)."""
    arts, truth = list(originals), {a.id: a.id for a in originals}
    for a in originals:
        if rng.random() < 0.5:
            for n in range(rng.randint(1, 3)):
                c = make_copy(a, n, rng, pool)
                arts.append(c)
                truth[c.id] = a.id
    rng.shuffle(arts)
    return arts, truth


def pairs(labels: dict[str, str]) -> set[tuple[str, str]]:
    by = defaultdict(list)
    for aid, g in labels.items():
        by[g].append(aid)
    return {tuple(sorted(p)) for ids in by.values() for p in combinations(ids, 2)}


def hard_negative_pairs(ids: set[str]) -> set[tuple[str, str]]:
    """Pairs of different MultiHop-RAG articles cited together by one question (same event or topic, other outlet)."""
    f = SHARED / "questions.json"
    if not f.is_file():
        return set()
    out = set()
    for q in json.loads(f.read_text()):
        ev = [e for e in dict.fromkeys(q.get("evidence_article_ids") or []) if e in ids]
        out |= {tuple(sorted(p)) for p in combinations(ev, 2)}
    return out


def quality(arts: list, truth: dict[str, str], hard: set[tuple[str, str]]) -> dict:
    from ingest.syndication import SyndicationIndex

    idx = SyndicationIndex(store=None)  # placement only: no store to rebuild from
    groups = {a.id: idx.place(a).group for a in arts}
    got, want = pairs(groups), pairs(truth)
    tp = len(got & want)
    return {"articles": len(arts), "true_pairs": len(want), "predicted_pairs": len(got), "precision": tp / len(got) if got else 1.0,
            "recall": tp / len(want) if want else 1.0, "hard_negative_pairs": len(hard), "hard_negatives_grouped": len(got & hard),
            "false_pairs": sorted(got - want)[:10], "missed_pairs": sorted(want - got)[:10]}


def sweep(arts: list, truth: dict[str, str]) -> list[tuple[float, float, float]]:
    """Pairwise classification on the dev half at several Jaccard thresholds (every pair, not only LSH candidates)."""
    import numpy as np

    from ingest.syndication import signature

    sigs = [(a.id, signature(a.text)) for a in arts]
    sigs = [(i, s) for i, s in sigs if s is not None]
    hv = np.stack([s.minhash.hashvalues for _, s in sigs])
    ids = [i for i, _ in sigs]
    want = pairs(truth)
    iu = np.triu_indices(len(sigs), 1)
    J = np.stack([(hv == hv[k]).mean(axis=1) for k in range(len(sigs))])[iu]
    truth_mask = np.array([tuple(sorted((ids[a], ids[b]))) in want for a, b in zip(*iu)])
    rows = []
    for mj in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6):
        pred = J >= mj
        tp = int((pred & truth_mask).sum())
        rows.append((mj, tp / max(1, int(pred.sum())), tp / max(1, len(want))))
    return rows


def recombined(n: int, base: list, rng: random.Random) -> tuple[list, dict[str, str]]:
    """N articles of 300-700 words made of real sentences drawn from all the real articles (so they share
    sentences, not stories); 10% are copies of earlier ones. Also returns each article's original's id."""
    from ingest.article import Article

    sents = [s for a in base for s in sentences(a.text)]
    out: list = []
    truth: dict[str, str] = {}
    for i in range(n):
        if out and rng.random() < 0.1:
            orig = rng.choice(out)
            c = make_copy(orig, i, rng, base)
            out.append(c)
            truth[c.id] = truth[orig.id]
            continue
        words, paras = 0, []
        target = rng.randint(300, 700)
        while words < target:
            s = rng.choice(sents)
            paras.append(s)
            words += len(s.split())
        src = base[i % len(base)]
        out.append(Article(text="\n\n".join(paras), title=f"{src.title} ({i})", source=src.source, author=src.author,
                           published_at=src.published_at, url=f"https://bench.invalid/{i}", category=src.category, origin=f"bench:{i}"))
        truth[out[-1].id] = out[-1].id
    return out, truth


def cost(n: int, sample: int, base: list, rng: random.Random) -> dict:
    import numpy as np

    from ingest.chunk import Chunk
    from ingest.pipeline import Ingestor, chunk_meta
    from ingest.syndication import SyndicationIndex
    from rag.config import Settings
    from rag.embed import get_embedder
    from rag.store import Store

    corpus, truth = recombined(n, base, rng)
    res: dict = {"articles": n, "words_mean": sum(len(a.text.split()) for a in corpus) / n}
    idx = SyndicationIndex(store=None)
    t = time.perf_counter()
    placed = {a.id: idx.place(a) for a in corpus}
    res["place_s"] = time.perf_counter() - t
    res["grouped"] = sum(1 for p in placed.values() if p.joined)
    got, want = pairs({aid: p.group for aid, p in placed.items()}), pairs(truth)
    res["precision"] = len(got & want) / len(got) if got else 1.0
    res["recall"] = len(got & want) / len(want) if want else 1.0

    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-synd-"))
    try:
        # The restart cost: rebuild the index from a real Chroma folder holding N first chunks with signatures.
        settings = Settings(data_dir=tmp / "rebuild", generator="extractive")
        store = Store(settings)
        idx2 = SyndicationIndex(store=None)
        ids, vecs, docs, metas = [], [], [], []
        vrng = np.random.default_rng(0)
        for a in corpus:
            p = idx2.place(a)
            ch = Chunk(a.id, 0, 0, min(len(a.text), 800), a.text[:800])
            metas.append(chunk_meta(a, ch, 1, placement=p).to_metadata())
            ids.append(ch.id)
            docs.append(ch.text)
            vecs.append(vrng.standard_normal(384).astype(np.float32))
        for i in range(0, n, 2000):
            store.upsert(ids[i : i + 2000], np.stack(vecs[i : i + 2000]), docs[i : i + 2000], metas[i : i + 2000])
        idx3 = SyndicationIndex(store)
        t = time.perf_counter()
        idx3.refresh()
        res["rebuild_s"] = time.perf_counter() - t
        res["rebuild_loaded"] = len(idx3.sigs)
        store.close()

        # The per-article cost of a real ingest (embedding included) on a sample of the same articles.
        settings = Settings(data_dir=tmp / "ingest", generator="extractive")
        embedder = get_embedder(settings)
        embedder.embed(["warm up"])
        ing = Ingestor(settings, embedder=embedder)
        part = corpus[:sample]
        rep = ing.ingest_items(part)
        res.update(sample=sample, sample_ingest_s=rep.seconds, sample_embed_s=rep.embed_seconds, sample_chunks=rep.chunks_embedded,
                   sample_grouped=rep.grouped, sample_syndication_s=rep.syndication_seconds)
        ing.store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_article = res["sample_ingest_s"] / sample
    res["ingest_s_at_n_estimated"] = per_article * n
    res["detection_s_at_n"] = res["place_s"] + res["rebuild_s"]
    res["detection_share"] = res["detection_s_at_n"] / (res["ingest_s_at_n_estimated"] + res["place_s"])
    res["sample_detection_share"] = res["sample_syndication_s"] / res["sample_ingest_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--sweep", action="store_true", help="print the dev-half threshold sweep")
    ap.add_argument("--cost-articles", type=int, default=10000, help="articles for the cost measure (0: skip)")
    ap.add_argument("--sample", type=int, default=200, help="articles really ingested to get the per-article ingest cost")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    base = [a for a in real_articles() if a.text.strip()]
    halves: dict[str, list] = {"dev": [], "test": []}
    for a in base:
        halves["dev" if int(hashlib.sha1(a.id.encode()).hexdigest(), 16) % 2 == 0 else "test"].append(a)
    res: dict = {"real_articles": len(base), "seed": args.seed}
    mh_ids = _mh_ids(base)
    for name, originals in halves.items():
        rng = random.Random(f"{args.seed}-{name}")
        arts, truth = build_set(originals, rng, halves["test" if name == "dev" else "dev"])
        mine = {a.id for a in originals}
        local = {k: v for k, v in mh_ids.items() if v in mine}
        hard = {tuple(sorted((local[x], local[y]))) for x, y in hard_negative_pairs(set(local))}
        res[name] = quality(arts, truth, hard)
        if args.sweep and name == "dev":
            res["sweep"] = sweep(arts, truth)
    if args.cost_articles:
        res["cost"] = cost(args.cost_articles, args.sample, base, random.Random(args.seed))
    res["load_avg_1m"] = os.getloadavg()[0]
    res["cores"] = os.cpu_count()

    for name in ("dev", "test"):
        q = res[name]
        print(f"{name}: {q['articles']} articles, {q['true_pairs']} true pairs, {q['predicted_pairs']} predicted; "
              f"precision {q['precision']:.3f}, recall {q['recall']:.3f}; same-event hard negatives grouped "
              f"{q['hard_negatives_grouped']}/{q['hard_negative_pairs']}")
        for kind in ("false_pairs", "missed_pairs"):
            if q[kind]:
                print(f"  {kind}: {q[kind][:5]}")
    if "sweep" in res:
        print("dev sweep, every pair (texts too short to sign count as missed): Jaccard >= t: precision recall")
        for mj, p, r in res["sweep"]:
            print(f"  {mj:.2f}: {p:.3f} {r:.3f}")
    if "cost" in res:
        c = res["cost"]
        print(f"cost at {c['articles']} articles ({c['words_mean']:.0f} words mean; {c['grouped']} copies grouped; "
              f"precision {c['precision']:.3f}, recall {c['recall']:.3f}):")
        print(f"  place all (signature + LSH query + insert): {c['place_s']:.2f} s ({1000 * c['place_s'] / c['articles']:.2f} ms/article)")
        print(f"  rebuild from a Chroma folder of {c['rebuild_loaded']} signatures (once per run after a restart or another writer): {c['rebuild_s']:.2f} s")
        print(f"  real ingest of {c['sample']} of them: {c['sample_ingest_s']:.1f} s ({c['sample_chunks']} chunks; embedding {c['sample_embed_s']:.1f} s), "
              f"of which syndication {c['sample_syndication_s']:.2f} s = {100 * c['sample_detection_share']:.2f}%")
        print(f"  at {c['articles']}: detection {c['detection_s_at_n']:.1f} s vs ingest ~{c['ingest_s_at_n_estimated']:.0f} s "
              f"(sample rate x N) = {100 * c['detection_share']:.2f}% of ingest time")
    print(f"machine: {res['cores']} cores, load {res['load_avg_1m']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    return 0


def _mh_ids(articles: list) -> dict[str, str]:
    """MultiHop-RAG article id -> Byline article id (matched through the origin ``file#index`` the loader records)."""
    f = SHARED / "articles_partial.json"
    if not f.is_file():
        return {}
    recs = json.loads(f.read_text())
    by_origin = {a.origin: a.id for a in articles}
    return {rec["id"]: by_origin[f"{f}#{i}"] for i, rec in enumerate(recs) if f"{f}#{i}" in by_origin}


if __name__ == "__main__":
    sys.exit(main())
