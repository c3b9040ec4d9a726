"""Scale benchmark: archives of 10k, 100k (and 1M) chunks (run by hand; not collected by pytest).

    nice -n 10 python tests/bench/bench_scale.py                       # 10k and 100k chunks, embedded Chroma
    nice -n 10 python tests/bench/bench_scale.py --sizes 1000000 --skip-reindex   # the 1M row (hours on 2 cores: see below)
    python tests/bench/bench_scale.py --sizes 10000 --chroma-url http://127.0.0.1:8000
    nice -n 10 python tests/bench/bench_scale.py --sizes 100000 --keep /tmp/scale100k   # build once, keep it
    nice -n 10 python tests/bench/bench_scale.py --reuse /tmp/scale100k                 # serve it again, no rebuild

Builds each archive in a temp folder (or a temp collection on a Chroma server) through
``Store.upsert`` in groups of 2048 chunks, as ingest writes them: articles of three chunks, each
chunk six to nine sentences (or titles) drawn (seeded) from the MultiHop-RAG articles (read at run time from
../shared/eval/multihop-rag, never copied) and data/, with the title, outlet and a date (2023-2024)
of a real article; so the text is distinct and BM25's statistics are those of news. Vectors are
STAND-INS: seeded random unit vectors (384 dims, numpy default_rng), distinct per chunk; embedding
100k chunks for real would take hours here. Query vectors are real (the bundled MiniLM on
MultiHop-RAG questions), so the dense search does real work on a random graph.

Then a fresh serving process (this script with --serve) opens the archive and reports:
- RSS per part: after opening the store, after the keyword index is loaded, after the embedder,
  after the queries (Chroma's HNSW index is loaded by the first dense query);
- hybrid retrieval p50/p95 (``Retriever.retrieve`` with the precomputed query vector: dense +
  BM25 + fusion), keyword-only p50 (``KeywordIndex.search``) and dense-only p50;
- the first query after ingesting 100 more articles (300 chunks, one write) against the steady
  p50, and whether the new articles are found by keyword at once.
The builder reports write cost per chunk (all of ``Store.upsert``, and its keyword-index share),
a full keyword rebuild (what ``byline reindex`` costs) and the index sizes on disk.

Time on 2 cores shared with other work: 10k about 3 min, 100k about 40 min (the write cost per chunk
grows with the archive: Chroma's HNSW inserts); 1M extrapolates to 8-12 hours (plus a keyword rebuild
of about half an hour), so run it alone overnight.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)

SHARED = REPO.parent / "shared" / "eval" / "multihop-rag"
DIM = 384
GROUP = 2048  # chunks per write, as ingest_group_chunks
NEW_ARTICLES = 100


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def folder_mb(path: Path, skip: str = "") -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not (skip and p.name.startswith(skip))) / 2**20


# --- the corpus ----------------------------------------------------------------------------------
def sources() -> tuple[list[str], list[dict[str, str]]]:
    """Sentences, and (title, outlet) pairs, of the MultiHop-RAG articles and data/."""
    texts: list[str] = []
    heads: list[dict[str, str]] = []
    f = SHARED / "articles_partial.json"
    if f.is_file():
        for rec in json.loads(f.read_text()):
            texts.append(rec.get("body") or "")
            heads.append({"title": rec.get("title") or "", "source": rec.get("source") or ""})
    for p in sorted((REPO / "data").glob("*.md")):
        texts.append(re.sub(r"\A---\s*\n.*?\n---\s*\n", "", p.read_text(encoding="utf-8"), flags=re.S))
        heads.append({"title": p.stem.replace("-", " "), "source": "Sample"})
    # The stored MultiHop-RAG bodies are excerpts (~200 characters): about 500 sentences in all, so the
    # vocabulary is small and each term's postings longer than in a real archive (keyword timings err high).
    sents = [s.strip() for t in texts + [h["title"] for h in heads] for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 4]
    if len(sents) < 300:
        raise SystemExit("too little text: ../shared/eval/multihop-rag/articles_partial.json is needed")
    return sents, heads


class Corpus:
    """Deterministic synthetic articles: article i always has the same three chunks."""

    def __init__(self, seed: int = 19) -> None:
        self.sents, self.heads = sources()
        self.seed = seed

    def article(self, i: int, marker: str = "") -> tuple[list[str], list[str], list[dict[str, Any]]]:
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
        from llama_index.core.vector_stores.utils import node_to_metadata_dict

        from rag.schema import ChunkMeta

        from ingest.syndication import signature
        from rag.copies import own_group

        rng = random.Random(self.seed * 1_000_003 + i)
        head = self.heads[rng.randrange(len(self.heads))]
        day = 20230101 + rng.randrange(2) * 10000 + rng.randrange(12) * 100 + rng.randrange(28)
        date = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}"
        aid = f"scale{i:08d}"
        texts = [" ".join(rng.sample(self.sents, rng.randint(6, 9))) + (f" {marker}" if marker else "") for _ in range(3)]
        # As ingest stores it: the syndication group on every chunk, the article's MinHash on its first, so
        # an ingest into this archive loads as many signatures as it would from a real one.
        sig = signature(" ".join(texts))
        ids, docs, metas = [], [], []
        for c, text in enumerate(texts):
            md = ChunkMeta(article_id=aid, content_hash="h0", chunk_index=c, n_chunks=3, start=c * 1000, end=c * 1000 + len(text),
                           title=head["title"], source=head["source"], url=f"https://bench.invalid/{aid}", published_at=f"{date}T00:00:00+00:00",
                           date=date, date_num=day, origin="bench", group=own_group(aid, "h0"),
                           minhash=sig.encode() if sig and c == 0 else "").to_metadata()
            node = TextNode(id_=f"{aid}-{c}", text=text, metadata=md, excluded_embed_metadata_keys=list(md), excluded_llm_metadata_keys=list(md))
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=aid)
            ids.append(node.id_)
            docs.append(text)
            metas.append(node_to_metadata_dict(node, remove_text=True, flat_metadata=True))
        return ids, docs, metas

    def group(self, first: int, n_articles: int, marker: str = "") -> tuple[list[str], Any, list[str], list[dict[str, Any]]]:
        import numpy as np

        ids, docs, metas = [], [], []
        for i in range(first, first + n_articles):
            a, d, m = self.article(i, marker)
            ids += a
            docs += d
            metas += m
        vecs = np.random.default_rng(self.seed * 7919 + first).normal(size=(len(ids), DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return ids, vecs, docs, metas


def settings_for(root: Path, url: str | None, name: str) -> Any:
    from rag.config import Settings

    if url:
        return Settings(data_dir=root, chroma_url=url, collection=name)
    return Settings(data_dir=root, collection=name)


# --- building ------------------------------------------------------------------------------------
def build(n_chunks: int, root: Path, url: str | None, name: str, reindex: bool = True) -> dict[str, Any]:
    from rag.store import Store

    corpus = Corpus()
    settings = settings_for(root, url, name)
    store = Store(settings)
    kw_s = [0.0]
    real = store._update_keywords

    def timed() -> None:  # the keyword index's share of each write
        t = time.perf_counter()
        real()
        kw_s[0] += time.perf_counter() - t

    store._update_keywords = timed  # type: ignore[method-assign]
    from rag.embed import adopt_embedder, get_embedder

    adopt_embedder(store, get_embedder(settings))  # as ingest does: the archive records the embedder its queries use
    n_articles = n_chunks // 3
    per = GROUP // 3
    write_s, t0 = 0.0, time.perf_counter()
    for first in range(0, n_articles, per):
        ids, vecs, docs, metas = corpus.group(first, min(per, n_articles - first))
        t = time.perf_counter()
        store.upsert(ids, vecs, docs, metas)
        write_s += time.perf_counter() - t
        done = first + per
        if done // per % max(1, n_articles // per // 10) == 0:
            print(f"  {min(done, n_articles) * 3:>9,} chunks written, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    n = store.count()
    res: dict[str, Any] = {"chunks": n, "build_s": time.perf_counter() - t0, "write_ms_per_chunk": 1000 * write_s / n,
                           "keyword_ms_per_chunk": 1000 * kw_s[0] / n}
    if reindex:
        res["reindex_s"] = store.keywords.rebuild().seconds
    else:
        res["reindex_s"] = "not run"
    kw = store.keywords.path
    res["keyword_mb"] = sum(p.stat().st_size for p in kw.parent.glob(kw.name + "*")) / 2**20
    if not url:
        res["chroma_mb"] = folder_mb(settings.resolved_chroma_path, skip=kw.name)
    store.close()
    return res


# --- serving (a fresh process) --------------------------------------------------------------------
def questions(k: int) -> list[str]:
    f = SHARED / "questions.json"
    qs: list[str] = []
    if f.is_file():
        data = json.loads(f.read_text())
        recs = data if isinstance(data, list) else data.get("questions", [])
        qs = [r.get("query") or r.get("question") or "" for r in recs]
    qs = [q for q in qs if q] or ["Who is Ali al-Daffayi and what did he announce?"]
    return [qs[i % len(qs)] for i in range(k)]


def serve(root: Path, url: str | None, name: str, n_queries: int, n_chunks: int) -> dict[str, Any]:
    from rag.embed import get_embedder
    from rag.retrieve import Retriever
    from rag.store import Store

    out: dict[str, Any] = {}
    r0 = rss_mb()
    settings = settings_for(root, url, name)
    store = Store(settings)
    store.count()
    r1 = rss_mb()
    t = time.perf_counter()
    store.keywords.refresh()
    out["keyword_open_s"] = time.perf_counter() - t
    r2 = rss_mb()
    embedder = get_embedder(settings)
    qs = questions(n_queries)
    qvecs = [embedder.get_query_embedding(q) for q in qs]
    r3 = rss_mb()
    retriever = Retriever(settings, store=store, embedder=embedder)
    for q, v in list(zip(qs, qvecs))[:3]:  # warm: HNSW loaded, code paths hot
        retriever.retrieve(q, qvec=v)
    hybrid, keyword, dense = [], [], []
    for q, v in zip(qs, qvecs):
        t = time.perf_counter()
        retriever.retrieve(q, qvec=v)
        hybrid.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.keywords.search(q, settings.candidates)
        keyword.append(time.perf_counter() - t)
        t = time.perf_counter()
        retriever._dense_search(v, settings.candidates, retriever_filters())
        dense.append(time.perf_counter() - t)
    r4 = rss_mb()
    out.update(hybrid_p50_ms=1000 * pct(hybrid, 50), hybrid_p95_ms=1000 * pct(hybrid, 95), keyword_p50_ms=1000 * pct(keyword, 50),
               dense_p50_ms=1000 * pct(dense, 50))
    out["rss_mb"] = {"process after imports": r0, "store opened": r1 - r0, "keyword index": r2 - r1, "embedder": r3 - r2,
                     "after queries (HNSW, caches)": r4 - r3, "total": r4}
    # 100 new articles in one write (as ingest groups them), then the next question.
    marker = "zanzibarquokka"
    ids, vecs, docs, metas = Corpus().group(n_chunks // 3 + 10, NEW_ARTICLES, marker=marker)
    t = time.perf_counter()
    store.upsert(ids, vecs, docs, metas)
    out["write_100_articles_s"] = time.perf_counter() - t
    t = time.perf_counter()
    retriever.retrieve(qs[0], qvec=qvecs[0])
    out["first_query_after_ms"] = 1000 * (time.perf_counter() - t)
    hits = [cid for cid, _ in store.keywords.search(marker, 10 * NEW_ARTICLES)]
    out["new_found_by_keyword"] = f"{len(set(hits) & set(ids))}/{len(ids)}"
    store.delete_chunks(ids)  # leave the archive as built, so that a kept one serves the same way again
    return out


def retriever_filters() -> Any:
    from rag.types import Filters

    return Filters()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts (default 10000,100000)")
    ap.add_argument("--queries", type=int, default=100, help="questions timed per size")
    ap.add_argument("--chroma-url", help="also/only run against this Chroma server (a temp collection)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", metavar="DIR", help="build the one size in --sizes into DIR (new or empty) and keep it (embedded only)")
    ap.add_argument("--skip-reindex", action="store_true", help="do not time a full keyword rebuild (about half an hour at 1M chunks)")
    ap.add_argument("--reuse", metavar="DIR", help="serve the archive kept in DIR by --keep, without rebuilding")
    ap.add_argument("--serve", nargs=3, metavar=("ROOT", "NAME", "CHUNKS"), help=argparse.SUPPRESS)  # the serving child
    args = ap.parse_args(argv)
    if args.serve:
        root, name, n = args.serve
        print(json.dumps(serve(Path(root), args.chroma_url, name, args.queries, int(n))))
        return 0
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if (args.keep or args.reuse) and (args.chroma_url or (args.keep and len(sizes) != 1) or (args.keep and args.reuse)):
        raise SystemExit("--keep takes one size; --keep and --reuse are for an embedded archive, one at a time")
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        raise SystemExit(f"--keep {args.keep}: the folder is not empty (serve it with --reuse, or remove it)")
    rows = []
    for n in [0] if args.reuse else sizes:
        kept = Path(args.keep or args.reuse) if (args.keep or args.reuse) else None
        if kept:
            kept.mkdir(parents=True, exist_ok=True)
        root = kept or Path(tempfile.mkdtemp(prefix=f"byline-scale-{n}-"))
        name = f"scale{n}_{os.getpid()}"
        try:
            if args.reuse:  # the build's row, saved by --keep
                row = json.loads((root / "bench_scale.json").read_text())
                n, name = row["size"], row["collection"]
                print(f"{n:,} chunks: serving {root} (built before)", file=sys.stderr, flush=True)
            else:
                print(f"{n:,} chunks: building", file=sys.stderr, flush=True)
                row = {"size": n, "mode": "server" if args.chroma_url else "embedded", **build(n, root, args.chroma_url, name, reindex=not args.skip_reindex)}
                if kept:
                    (root / "bench_scale.json").write_text(json.dumps({**row, "collection": name}))
            cmd = [sys.executable, __file__, "--serve", str(root), name, str(n), "--queries", str(args.queries)]
            if args.chroma_url:
                cmd += ["--chroma-url", args.chroma_url]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-3000:])
            row.update(json.loads(r.stdout.strip().splitlines()[-1]))
            row.pop("collection", None)
            rows.append(row)
            print(json.dumps(row, indent=1), file=sys.stderr, flush=True)
        finally:
            if args.chroma_url:
                import chromadb

                from rag.chroma_client import server_address

                host, port, _ = server_address(settings_for(root, args.chroma_url, name))
                client = chromadb.HttpClient(host=host, port=port)
                for c in (name, f"{name}_meta"):
                    try:
                        client.delete_collection(c)
                    except Exception:  # noqa: BLE001 - best effort
                        pass
            if not kept:
                shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(v: Any, spec: str = ".1f") -> str:
        return format(v, spec) if isinstance(v, (int, float)) else str(v)

    lines = [("chunks", lambda r: f"{r['size']:,} ({r['mode']})"),
             ("hybrid retrieval p50 / p95 (ms)", lambda r: f"{f(r['hybrid_p50_ms'])} / {f(r['hybrid_p95_ms'])}"),
             ("keyword-only p50 (ms)", lambda r: f(r["keyword_p50_ms"])),
             ("dense-only p50 (ms)", lambda r: f(r["dense_p50_ms"])),
             ("first query after +100 articles (ms; x steady p50)", lambda r: f"{f(r['first_query_after_ms'])} ({r['first_query_after_ms'] / r['hybrid_p50_ms']:.2f}x)"),
             ("new articles found by keyword at once", lambda r: r["new_found_by_keyword"]),
             ("write of +100 articles (s)", lambda r: f(r["write_100_articles_s"], ".2f")),
             ("write cost per chunk, all / keyword share (ms)", lambda r: f"{f(r['write_ms_per_chunk'], '.2f')} / {f(r['keyword_ms_per_chunk'], '.2f')}"),
             ("keyword index open in a fresh process (s)", lambda r: f(r["keyword_open_s"], ".2f")),
             ("full keyword rebuild, byline reindex (s)", lambda r: f(r["reindex_s"])),
             ("size on disk: Chroma / keyword index (MB)", lambda r: f"{f(r.get('chroma_mb', '-'), '.0f')} / {f(r['keyword_mb'], '.0f')}"),
             ("serving RSS total (MB)", lambda r: f(r["rss_mb"]["total"], ".0f")),
             *[(f"  RSS: {part} (MB)", (lambda p: lambda r: f(r["rss_mb"][p], ".0f"))(part))
               for part in ("process after imports", "store opened", "keyword index", "embedder", "after queries (HNSW, caches)")]]
    width = max(len(name) for name, _ in lines)
    for name, fn in lines:
        print(f"| {name:<{width}} | " + " | ".join(fn(r) for r in rows) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
