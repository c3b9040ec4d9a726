"""Where the CPU of a Chroma write goes (run by hand; not collected by pytest).

    python tests/bench/bench_write.py                 # 3,000 articles, 1,024-chunk writes
    python tests/bench/bench_write.py --articles 1000 --repeat 3

Plans and builds the rows of a real corpus exactly as ``byline ingest`` does (no embedding: random
unit vectors stand in), then writes them in 1,024-chunk groups
into fresh Chroma folders and times the three steps of ``Store.upsert``: Chroma's upsert, the
superseded-version check, and the version bump. Variants show what the cost depends on: the
llama-index node JSON, the number of metadata keys, and the documents (Chroma's full-text index).
Prints CPU and wall seconds per 1,024 chunks. The HNSW index does look at the vectors: distinct
random ones cost it more than real embeddings, and far more than the repeated vectors of the ingest
benchmark's corpus (tests/bench/RESULTS.md), so read the upsert column as an upper bound.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import rag.config  # noqa: E402,F401  (offline switches)

# The keys a slim schema would still need for filtering and idempotency.
SLIM_KEYS = {"article_id", "content_hash", "chunk_index", "n_chunks", "source", "date_num"}


def _slim_node_json(md: dict[str, Any]) -> dict[str, Any]:
    """The node JSON without its two lists of excluded metadata keys (each names every key)."""
    import json

    node = json.loads(md["_node_content"])
    node["excluded_embed_metadata_keys"] = node["excluded_llm_metadata_keys"] = []
    return {**md, "_node_content": json.dumps(node)}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=3000)
    ap.add_argument("--group", type=int, default=1024, help="chunks per write (Byline's ingest_group_chunks)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the variants (the first warms caches)")
    args = ap.parse_args(argv)

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import bench_ingest
    from ingest.pipeline import Ingestor, IngestReport
    from rag.config import Settings
    from rag.store import Store, forget_clients

    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-write-"))
    try:
        arts, _ = bench_ingest.make_corpus(args.articles)
        ing = Ingestor(Settings(data_dir=tmp / "plan"))
        todo = ing._plan({a.id: a for a in arts}, IngestReport(), None)
        ids, docs, metas = ing._rows(todo)
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((len(ids), ing.embedder.dimension)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

        def run(name: str, meta_fn: Callable[[dict[str, Any]], dict[str, Any]], doc_fn: Callable[[str], str]) -> list[float]:
            forget_clients()
            store = Store(Settings(data_dir=tmp / name))
            tot = [0.0] * 6  # cpu/wall of upsert, superseded check, version bump
            for i in range(0, len(ids), args.group):
                part = slice(i, i + args.group)
                m = [meta_fn(dict(x)) for x in metas[part]]
                d = [doc_fn(x) for x in docs[part]]
                with store.write_lock():
                    for step, fn in enumerate((
                        lambda: store.collection.upsert(ids=ids[part], embeddings=vecs[part], documents=d, metadatas=m),
                        lambda: store._drop_superseded(ids[part], m),
                        store.bump_version,
                    )):
                        c, w = cpu_s(), time.perf_counter()
                        fn()
                        tot[2 * step] += cpu_s() - c
                        tot[2 * step + 1] += time.perf_counter() - w
            shutil.rmtree(tmp / name, ignore_errors=True)
            return [t * args.group / len(ids) for t in tot]

        variants: dict[str, tuple[Callable, Callable]] = {
            "as ingested": (lambda m: m, lambda d: d),
            "without llama-index's _node_content": (lambda m: {k: v for k, v in m.items() if k != "_node_content"}, lambda d: d),
            "node JSON without the excluded-key lists": (_slim_node_json, lambda d: d),
            f"{len(SLIM_KEYS)} metadata keys only": (lambda m: {k: v for k, v in m.items() if k in SLIM_KEYS}, lambda d: d),
            "empty documents (no full-text rows)": (lambda m: m, lambda d: ""),
        }
        results: dict[str, list[float]] = {}
        for rnd in range(args.repeat):
            for k, (name, (mf, df)) in enumerate(variants.items()):
                results[name] = run(f"round{rnd}-variant{k}", mf, df)  # the last round's figures are shown

        table = Table(title=f"bench_write — {len(ids)} chunks of {args.articles} articles, {len(metas[0])} metadata keys, "
                            f"writes of {args.group}; seconds per 1,024 chunks (last of {args.repeat} rounds)")
        for col in ("variant", "upsert cpu / wall", "superseded check cpu / wall", "version bump cpu / wall", "total cpu"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for name, t in results.items():
            table.add_row(name, f"{t[0]:.2f} / {t[1]:.2f}", f"{t[2]:.2f} / {t[3]:.2f}", f"{t[4]:.2f} / {t[5]:.2f}", f"{t[0] + t[2] + t[4]:.2f}")
        Console(width=200).print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
