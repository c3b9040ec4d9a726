"""Ingest benchmark (run by hand; not collected by pytest).

    python tests/bench/bench_ingest.py                 # 1,000 articles
    python tests/bench/bench_ingest.py --articles 10000

Builds a corpus of N articles by repeating real ones (data/ plus the MultiHop-RAG articles in
../shared/eval/multihop-rag when present) under new ids/urls, then measures in one process:
  1. a first ingest into a fresh Chroma folder (chunks/s, share of time spent embedding),
  2. raw embedder throughput on exactly the same chunk texts, same batch size, each timed once before
     and once after the ingest (after a warm-up) and averaged:
       - SentenceTransformer.encode of all texts in one call (the model's own library), and
       - Byline's embedder (``embed_array``: batches cut by token length) on all texts in one call,
         i.e. the embedding alone with the best batching a one-shot call gets, no store,
  3. an unchanged re-ingest (everything skipped by content hash),
  4. peak RSS (resource.getrusage) and RSS after each phase (psutil).
Prints one summary table (and --json FILE writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)

SHARED = REPO.parent / "shared" / "eval" / "multihop-rag"


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def real_articles() -> list:
    """The real articles the corpus repeats: data/ and, when present, MultiHop-RAG's articles."""
    from ingest.article import article_from_record
    from ingest.loaders import load_sources

    arts = [a for a in load_sources([str(REPO / "data")]) if hasattr(a, "text")]
    f = SHARED / "articles_partial.json"
    if f.is_file():
        for i, rec in enumerate(json.loads(f.read_text())):
            try:
                arts.append(article_from_record(rec, origin=f"{f}#{i}"))
            except ValueError:
                pass
    if not arts:
        raise SystemExit("no real articles found (data/ is empty and ../shared/eval/multihop-rag is absent)")
    return arts


def make_corpus(n: int) -> list:
    """N articles: real ones repeated round-robin, each copy with a new url (hence a new id)."""
    from ingest.article import Article

    base = real_articles()
    out = []
    for i in range(n):
        a = base[i % len(base)]
        copy = i // len(base)
        url = f"{a.url or 'https://bench.invalid/' + a.id}#bench-{copy}-{i}"
        out.append(Article(text=a.text, title=a.title, source=a.source, author=a.author, published_at=a.published_at,
                           url=url, category=a.category, origin=f"bench:{i}"))
    return out, len(base)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=1000, help="corpus size (default 1000)")
    ap.add_argument("--batch-size", type=int, default=None, help="embedding batch size (default: Byline's embed_batch_size)")
    ap.add_argument("--chroma-url", help="benchmark against a Chroma server instead of an embedded folder (a temp collection)")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from ingest.pipeline import Ingestor, embed_text
    from rag.config import Settings
    from rag.embed import get_embedder

    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-ingest-"))
    overrides: dict = {"data_dir": tmp, "generator": "extractive"}
    if args.batch_size:
        overrides["embed_batch_size"] = args.batch_size
    if args.chroma_url:
        overrides.update(chroma_url=args.chroma_url, collection=f"bench_ingest_{os.getpid()}")
    settings = Settings(**overrides)
    res: dict = {"articles": args.articles, "batch_size": settings.embed_batch_size, "store": settings.describe_store()}
    try:
        res["rss_start_mb"] = rss_mb()
        t = time.perf_counter()
        corpus, n_real = make_corpus(args.articles)
        res["real_articles_repeated"] = n_real
        res["corpus_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        embedder = get_embedder(settings)
        embedder.embed(["warm up"])
        res["model_load_s"] = time.perf_counter() - t
        ing = Ingestor(settings, embedder=embedder)
        model = embedder._model  # noqa: SLF001 - the bare sentence-transformers model is the point of comparison
        # The exact texts the ingest will embed (its chunker, its title line).
        texts = [embed_text(a, c.text) for a in corpus for c in ing.chunker.split(a)]

        def raw_encode() -> float:
            t = time.perf_counter()
            model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            return time.perf_counter() - t

        def raw_byline() -> float:
            t = time.perf_counter()
            embedder.embed_array(texts)
            return time.perf_counter() - t

        # Warm torch's kernels first, then time the raw encoder before AND after the ingest: whichever
        # runs first on a cold process is slower, so one side alone would flatter the other.
        model.encode(texts[:256], batch_size=settings.embed_batch_size, show_progress_bar=False)
        console.print(f"raw SentenceTransformer.encode of the {len(texts)} chunk texts the ingest will embed …")
        raw_before = raw_encode()
        console.print("Byline's embedder on the same texts in one call …")
        byl_before = raw_byline()

        console.print(f"ingesting {args.articles} articles (cycling over {n_real} real ones) into {settings.describe_store()} …")
        rep = ing.ingest_items(corpus)
        res.update(ingest_s=rep.seconds, ingest_embed_s=rep.embed_seconds, chunks=rep.chunks_embedded, added=rep.added,
                   failed=len(rep.errors), ingest_chunks_per_s=rep.chunks_embedded / rep.seconds if rep.seconds else None,
                   rss_after_ingest_mb=rss_mb())

        console.print("Byline's embedder and raw encode again …")
        byl_after = raw_byline()  # mirror order: ST, Byline, ingest, Byline, ST
        raw_after = raw_encode()
        raw_s = (raw_before + raw_after) / 2
        byl_s = (byl_before + byl_after) / 2
        res.update(raw_encode_s=raw_s, raw_before_s=raw_before, raw_after_s=raw_after,
                   raw_chunks_per_s=len(texts) / raw_s if raw_s else None, rss_after_raw_mb=rss_mb(),
                   byline_embed_s=byl_s, byline_before_s=byl_before, byline_after_s=byl_after,
                   byline_chunks_per_s=len(texts) / byl_s if byl_s else None)
        res["ingest_vs_raw"] = res["ingest_chunks_per_s"] / res["raw_chunks_per_s"] if res["raw_chunks_per_s"] else None
        res["ingest_vs_byline_embed"] = res["ingest_chunks_per_s"] / res["byline_chunks_per_s"] if res["byline_chunks_per_s"] else None

        console.print("re-ingesting the unchanged corpus …")
        rep2 = ing.ingest_items(corpus)
        res.update(reingest_s=rep2.seconds, reingest_unchanged=rep2.unchanged, reingest_embedded=rep2.chunks_embedded,
                   rss_after_reingest_mb=rss_mb(), peak_rss_mb=peak_rss_mb())
        res["load_avg_1m"] = os.getloadavg()[0]
        res["cores"] = os.cpu_count()
    finally:
        if args.chroma_url:
            from bench_query import drop_collection  # the script's own folder is on sys.path

            drop_collection(settings)
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"bench_ingest — {args.articles} articles, {res['chunks']} chunks, batch {res['batch_size']}, "
                        f"{res['cores']} cores, load {res['load_avg_1m']:.1f}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("first ingest (s)", f"{res['ingest_s']:.1f}"),
        ("  of which embedding (s)", f"{res['ingest_embed_s']:.1f}"),
        ("ingest chunks/s", f"{res['ingest_chunks_per_s']:.1f}"),
        ("raw encode chunks/s (same texts, same batch; mean of before/after)",
         f"{res['raw_chunks_per_s']:.1f}  ({res['raw_before_s']:.1f} s / {res['raw_after_s']:.1f} s)"),
        ("ingest / raw throughput", f"{res['ingest_vs_raw']:.2f}"),
        ("Byline embedder alone, one call, chunks/s (mean of before/after)",
         f"{res['byline_chunks_per_s']:.1f}  ({res['byline_before_s']:.1f} s / {res['byline_after_s']:.1f} s)"),
        ("ingest / Byline embedder alone", f"{res['ingest_vs_byline_embed']:.2f}"),
        ("unchanged re-ingest (s)", f"{res['reingest_s']:.2f}  ({res['reingest_unchanged']} unchanged, {res['reingest_embedded']} re-embedded)"),
        ("model load (s)", f"{res['model_load_s']:.1f}"),
        ("RSS start / after ingest / after re-ingest (MB)", f"{res['rss_start_mb']:.0f} / {res['rss_after_ingest_mb']:.0f} / {res['rss_after_reingest_mb']:.0f}"),
        ("peak RSS (MB)", f"{res['peak_rss_mb']:.0f}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
