"""Query benchmark (run by hand; not collected by pytest).

    python tests/bench/bench_query.py                          # 10k and 100k chunks, embedded Chroma
    python tests/bench/bench_query.py --sizes 10000 --chroma-url http://127.0.0.1:8000
    python tests/bench/bench_query.py --skip-store --generators extractive,local

Part 1, store size: fills a temporary collection with N synthetic chunks (random unit vectors,
texts of real words, Byline's own chunk metadata) and times, over --queries random query vectors,
(a) the raw Chroma dense query (n_results = settings.candidates) and (b) Byline's full
``Retriever.retrieve`` (dense + BM25 + fusion; the query vector is passed in, so no embedding).
The one-off BM25 build is reported separately. Embedded Chroma always; a server too with --chroma-url.

Part 2, generators: ingests data/ and the MultiHop-RAG articles (when present) into a temp index and
times ``rag.ask`` (retrieve / first token / total) over a handful of questions with each generator
that is available here (extractive always; local when its packages are installed; openai when
BYLINE_OPENAI_BASE_URL is set).
Prints one summary table (and --json FILE writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)

SHARED = REPO.parent / "shared" / "eval" / "multihop-rag"
DIM = 384  # all-MiniLM-L6-v2
FALLBACK_QUESTIONS = ["Who is Ali al-Daffayi and what did he announce?", "What did the Iraqi militias threaten?",
                      "Which outlet reported on the militias?"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def vocabulary() -> list[str]:
    words: list[str] = []
    for p in [SHARED / "articles_partial.json", *sorted((REPO / "data").glob("*"))]:
        if p.is_file():
            words += re.findall(r"[A-Za-z]{3,}", p.read_text(errors="ignore"))
    return sorted(set(words)) or [f"word{i}" for i in range(5000)]


# --- part 1: store size ----------------------------------------------------------------------------
def fill_store(settings, n: int, rng: random.Random, vocab: list[str], console) -> float:
    """Write n synthetic chunks (3 per article) the way the ingest pipeline does; returns seconds."""
    import numpy as np
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from rag.store import Store

    store = Store(settings)
    nprng = np.random.default_rng(rng.randrange(2**32))
    sources = ["The Verge", "BBC News", "TechCrunch", "The Age", "Fortune", "CNBC", "Polygon", "Wired"]
    t0 = time.perf_counter()
    step = 2000
    for i0 in range(0, n, step):
        m = min(step, n - i0)
        vecs = nprng.standard_normal((m, DIM)).astype("float32")
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ids, docs, metas = [], [], []
        for j in range(m):
            i = i0 + j
            aid, idx = f"bench{i // 3:07d}", i % 3
            text = " ".join(rng.choice(vocab) for _ in range(120))
            day = 1 + (i % 28)
            md = {"article_id": aid, "content_hash": "bench", "chunk_index": idx, "n_chunks": 3, "start": idx * 800, "end": idx * 800 + len(text),
                  "title": " ".join(rng.choice(vocab) for _ in range(8)), "source": sources[i % len(sources)], "author": "", "url": f"https://bench.invalid/{aid}",
                  "category": "", "published_at": f"2023-10-{day:02d}T00:00:00+00:00", "date": f"2023-10-{day:02d}", "date_num": 20231000 + day, "origin": "bench"}
            node = TextNode(id_=f"{aid}-{idx:05d}", text=text, metadata=md, excluded_embed_metadata_keys=list(md), excluded_llm_metadata_keys=list(md))
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=aid)
            ids.append(node.id_)
            docs.append(text)
            metas.append(node_to_metadata_dict(node, remove_text=True, flat_metadata=True))
        store.upsert(ids, vecs.tolist(), docs, metas)
    store.bump_version()
    return time.perf_counter() - t0


def bench_store(settings, n: int, queries: int, rng: random.Random, vocab: list[str], console) -> dict:
    import numpy as np

    from rag.retrieve import Retriever

    console.print(f"[store] {settings.describe_store()}: writing {n} synthetic chunks …")
    fill_s = fill_store(settings, n, rng, vocab, console)
    r = Retriever(settings)
    nprng = np.random.default_rng(7)
    qvecs = nprng.standard_normal((queries, DIM)).astype("float32")
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    qtexts = [" ".join(rng.choice(vocab) for _ in range(10)) for _ in range(queries)]
    coll = r.store.collection
    coll.query(query_embeddings=[qvecs[0].tolist()], n_results=settings.candidates)  # warm
    dense = []
    for v in qvecs:
        t = time.perf_counter()
        coll.query(query_embeddings=[v.tolist()], n_results=settings.candidates, include=["metadatas", "documents", "distances"])
        dense.append(time.perf_counter() - t)
    t = time.perf_counter()
    r.retrieve(qtexts[0], k=10, qvec=qvecs[0].tolist())  # builds BM25 once
    bm25_build = time.perf_counter() - t
    full = []
    for q, v in zip(qtexts, qvecs):
        t = time.perf_counter()
        r.retrieve(q, k=10, qvec=v.tolist())
        full.append(time.perf_counter() - t)
    return {"chunks": n, "store": "server" if settings.uses_server else "embedded", "fill_s": fill_s,
            "dense_p50_s": pct(dense, 50), "dense_p95_s": pct(dense, 95), "bm25_build_s": bm25_build,
            "retrieve_p50_s": pct(full, 50), "retrieve_p95_s": pct(full, 95), "queries": queries}


def drop_collection(settings) -> None:
    try:
        from rag.store import Store

        c = Store(settings).client
        c.delete_collection(settings.collection)
        c.delete_collection(f"{settings.collection}_meta")
    except Exception:  # noqa: BLE001
        pass


# --- part 2: generators ----------------------------------------------------------------------------
def bench_questions(n: int, seed: int) -> tuple[list[str], list]:
    """A handful of answerable MultiHop-RAG questions (or fallbacks about data/) and the corpus to ingest."""
    from ingest.article import article_from_record
    from ingest.loaders import load_sources

    arts = [a for a in load_sources([str(REPO / "data")]) if hasattr(a, "text")]
    qs = list(FALLBACK_QUESTIONS)
    if (SHARED / "questions.json").is_file():
        recs = json.loads((SHARED / "articles_partial.json").read_text())
        arts += [article_from_record(r, origin="multihop") for r in recs]
        from rag.evaluation.datasets import load_questions, sample_questions

        picked = sample_questions([q for q in load_questions(SHARED / "questions.json") if not q.is_null], n, seed)
        qs = [q.question for q in picked]
    return qs[:n], arts


def available_generators(settings) -> list[str]:
    from rag.generators.local import local_available

    gens = ["extractive"]
    if local_available():
        gens.append("local")
    if settings.openai_base_url:
        gens.append("openai")
    return gens


def bench_generators(base, gens: list[str], n: int, seed: int, console) -> list[dict]:
    import rag
    from ingest.pipeline import Ingestor

    qs, arts = bench_questions(n, seed)
    console.print(f"[generators] ingesting {len(arts)} articles for {len(qs)} questions …")
    Ingestor(base).ingest_items(arts)
    out = []
    for g in gens:
        s = base.model_copy(update={"generator": g})
        console.print(f"[generators] {g}: warm-up …")
        t = time.perf_counter()
        try:
            rag.ask(qs[0], settings=s)  # loads models; not timed below
        except Exception as exc:  # noqa: BLE001
            out.append({"generator": g, "error": f"{type(exc).__name__}: {exc}"})
            continue
        warm = time.perf_counter() - t
        rows = {"retrieve": [], "first_token": [], "total": []}
        refused = 0
        for q in qs:
            a = rag.ask(q, settings=s)
            refused += bool(a.refused)
            for k in rows:
                if a.timings.get(k) is not None:
                    rows[k].append(a.timings[k])
        rec = {"generator": g, "questions": len(qs), "refused": refused, "warmup_s": warm}
        for k, xs in rows.items():
            rec[f"{k}_p50_s"] = pct(xs, 50) if xs else None
            rec[f"{k}_p95_s"] = pct(xs, 95) if xs else None
        out.append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="store sizes in chunks (default 10000,100000)")
    ap.add_argument("--queries", type=int, default=50, help="queries per store size (default 50)")
    ap.add_argument("--chroma-url", help="also benchmark a Chroma server (a temporary collection is created and dropped)")
    ap.add_argument("--skip-store", action="store_true", help="skip part 1")
    ap.add_argument("--skip-generators", action="store_true", help="skip part 2")
    ap.add_argument("--generators", help="comma list (default: every available one)")
    ap.add_argument("--questions", type=int, default=5, help="questions per generator (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-cache", help="folder for the joined local GGUF (default: Byline's usual <data_dir>/models)")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from rag.config import Settings

    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-query-"))
    rng = random.Random(args.seed)
    store_rows: list[dict] = []
    gen_rows: list[dict] = []
    try:
        if not args.skip_store:
            vocab = vocabulary()
            for n in [int(x) for x in args.sizes.split(",") if x.strip()]:
                s = Settings(data_dir=tmp, chroma_path=tmp / f"chroma-{n}", collection=f"bench_{n}", generator="extractive")
                store_rows.append(bench_store(s, n, args.queries, rng, vocab, console))
                if args.chroma_url:
                    ss = Settings(data_dir=tmp, chroma_url=args.chroma_url, collection=f"bench_{n}_{os.getpid()}", generator="extractive")
                    try:
                        store_rows.append(bench_store(ss, n, args.queries, rng, vocab, console))
                    finally:
                        drop_collection(ss)
        if not args.skip_generators:
            cache = Path(args.model_cache) if args.model_cache else Settings().resolved_model_cache
            base = Settings(data_dir=tmp, chroma_path=tmp / "chroma-gen", collection="bench_gen", model_cache_dir=cache)
            gens = args.generators.split(",") if args.generators else available_generators(base)
            gen_rows = bench_generators(base, gens, args.questions, args.seed, console)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()[0]
    table = Table(title=f"bench_query — {os.cpu_count()} cores, load {load:.1f}")
    for c in ("case", "p50 s", "p95 s", "notes"):
        table.add_column(c, justify="left" if c in ("case", "notes") else "right")
    for r in store_rows:
        table.add_row(f"{r['store']} Chroma dense query, {r['chunks']:,} chunks", f"{r['dense_p50_s']:.4f}", f"{r['dense_p95_s']:.4f}",
                      f"{r['queries']} queries; fill {r['fill_s']:.0f} s")
        table.add_row(f"{r['store']} Retriever.retrieve k=10, {r['chunks']:,} chunks", f"{r['retrieve_p50_s']:.4f}", f"{r['retrieve_p95_s']:.4f}",
                      f"dense+BM25+RRF; BM25 build {r['bm25_build_s']:.1f} s")
    for r in gen_rows:
        if "error" in r:
            table.add_row(f"ask() {r['generator']}", "-", "-", r["error"][:80])
            continue
        for k in ("retrieve", "first_token", "total"):
            p50, p95 = r.get(f"{k}_p50_s"), r.get(f"{k}_p95_s")
            table.add_row(f"ask() {r['generator']}: {k}", "-" if p50 is None else f"{p50:.3f}", "-" if p95 is None else f"{p95:.3f}",
                          f"{r['questions']} q, {r['refused']} refused, warm-up {r['warmup_s']:.1f} s" if k == "total" else "")
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"store": store_rows, "generators": gen_rows, "load_avg_1m": load, "cores": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
