"""Ingest cost per chunk as the archive grows: issue 19's "10k → 100k articles" row (run by hand).

    nice -n 10 python tests/bench/bench_scale.py --sizes 30000 --skip-reindex --keep /tmp/arch10k    # 10k articles
    nice -n 10 python tests/bench/bench_scale.py --sizes 300000 --skip-reindex --keep /tmp/arch100k  # 100k (about 30 min)
    python tests/bench/bench_ingest_growth.py /tmp/arch10k /tmp/arch100k --articles 100 --rounds 3

The archives are bench_scale's (articles of three chunks, stand-in vectors, each article's syndication
signature stored as ingest stores it). Every round ingests the same new articles into each archive, in
alternating order, through the real ``Ingestor`` and the real embedder (one loaded model shared by all,
so each archive gets the same texts to embed, equally warm):
- "first run": a new Ingestor, as a `byline ingest` process: it loads the archive's syndication
  signatures before placing the first article;
- "next run": the same Ingestor with more new articles, as a feed watcher's next poll.
Prints ms per chunk (all, embedding, the rest: chunking, syndication, Chroma and keyword writes) per
archive and round, and the large archive's cost over the small one's. Each run adds its articles to
the archives (600 per archive with the defaults: 0.6% of the 100k one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rag.config  # noqa: E402,F401  (offline switches)
from bench_scale import Corpus, settings_for  # noqa: E402

FIRST_NEW = 50_000_000  # article numbers of the new articles: far above any archive's own


def new_articles(corpus: Corpus, first: int, n: int) -> list[Any]:
    """``n`` articles as a feed would bring them: bench_scale's texts under new urls, three paragraphs each."""
    from ingest.article import Article

    out = []
    for i in range(first, first + n):
        _, docs, metas = corpus.article(i)
        md = metas[0]
        out.append(Article(text="\n\n".join(docs), title=md["title"], source=md["source"], url=f"https://bench.invalid/growth/{i}",
                           published_at=dt.datetime.fromisoformat(md["published_at"]), origin="bench-growth"))
    return out


def run(ingestor: Any, articles: list[Any]) -> dict[str, float]:
    rep = ingestor.ingest_items(articles)
    if rep.errors or rep.added != len(articles):
        raise SystemExit(f"ingest did not add every article: {rep.summary()} {rep.errors[:3]}")
    n = rep.chunks_embedded
    return {"chunks": n, "s": rep.seconds, "ms_per_chunk": 1000 * rep.seconds / n, "embed_ms_per_chunk": 1000 * rep.embed_seconds / n,
            "rest_ms_per_chunk": 1000 * (rep.seconds - rep.embed_seconds) / n, "syndication_s": rep.syndication_seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archives", nargs="+", help="folders kept by bench_scale.py --keep, smallest first")
    ap.add_argument("--articles", type=int, default=100, help="new articles per run (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each a first and a next run per archive (default 3)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    from ingest.pipeline import Ingestor
    from rag.embed import get_embedder

    archives = []
    for folder in map(Path, args.archives):
        row = json.loads((folder / "bench_scale.json").read_text())
        archives.append({"folder": folder, "settings": settings_for(folder, None, row["collection"]), "chunks": row["size"]})
    import time

    from rag.store import Store

    for a in archives:  # an archive whose keyword index predates its signature table fills the table once, here
        store = Store(a["settings"])
        if hasattr(store.keywords, "signatures"):
            t = time.perf_counter()
            n = len(store.keywords.signatures())
            print(f"{a['folder']}: {n:,} signatures in the keyword index, read (or filled once) in {time.perf_counter() - t:.1f} s", flush=True)
        store.close()
    # New article numbers for this invocation: after those earlier invocations took (noted in each folder).
    marks = [a["folder"] / "bench_ingest_growth.next" for a in archives]
    start = max([FIRST_NEW] + [int(m.read_text()) for m in marks if m.exists()])
    for m in marks:
        m.write_text(str(start + args.rounds * 2 * args.articles))
    corpus = Corpus()
    embedder = get_embedder(archives[0]["settings"])
    embedder.embed(["warm up"])
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = archives if r % 2 == 0 else archives[::-1]
        for a in order:
            base = start + r * 2 * args.articles
            first_batch = new_articles(corpus, base, args.articles)
            next_batch = new_articles(corpus, base + args.articles, args.articles)
            ing = Ingestor(a["settings"], embedder=embedder)
            try:
                chunks_before = ing.store.count()
                for kind, batch in (("first", first_batch), ("next", next_batch)):
                    res = {"round": r + 1, "archive": str(a["folder"]), "chunks_before": chunks_before, "run": kind, **run(ing, batch)}
                    runs.append(res)
                    print(json.dumps(res), file=sys.stderr, flush=True)
            finally:
                ing.store.close()

    print(f"\nnew articles per run: {args.articles}; rounds: {args.rounds}; load average {os.getloadavg()[0]:.1f}")
    def cells(rs: list[dict[str, Any]], key: str, spec: str = ".1f") -> str:
        return " / ".join(format(x[key], spec) for x in rs)

    print("| archive (chunks before) | run | ms per chunk, each round | of which embedding | the rest | syndication s |")
    print("|---|---|---|---|---|---|")
    for a in archives:
        for kind in ("first", "next"):
            rs = [x for x in runs if x["archive"] == str(a["folder"]) and x["run"] == kind]
            print(f"| {rs[0]['chunks_before']:,} | {kind} | {cells(rs, 'ms_per_chunk')} | {cells(rs, 'embed_ms_per_chunk')} | "
                  f"{cells(rs, 'rest_ms_per_chunk')} | {cells(rs, 'syndication_s', '.2f')} |")
    small, large = str(archives[0]["folder"]), str(archives[-1]["folder"])
    for kind in ("first", "next"):
        ratios = [lg["ms_per_chunk"] / sm["ms_per_chunk"] for sm, lg in zip(
            [x for x in runs if x["archive"] == small and x["run"] == kind], [x for x in runs if x["archive"] == large and x["run"] == kind])]
        print(f"{kind} run, largest / smallest archive, ms per chunk: {' / '.join(f'{q:.2f}' for q in ratios)} (median {statistics.median(ratios):.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
