"""Embedding benchmark: torch (float32, bfloat16) against ONNX Runtime (fp32, int8) on the same texts, and ingest per article
against the naive llama-index pipeline (run by hand; not collected by pytest).

    python tests/bench/bench_embed.py
    python tests/bench/bench_embed.py --rounds 3 --json /tmp/embed.json

One process, same texts and articles for every contender, each timed ``--rounds`` times in
alternating order (A B C, C B A, ...) after a warm-up, so a noisy machine hurts all alike:
  1. export: the int8 ONNX copy made from scratch into a temp model cache (export, quantise, verify),
  2. embedding alone: texts/s of the bundled all-MiniLM-L6-v2 through torch (sentence-transformers) in
     float32 and in bfloat16 ('minilm-bf16': fast only where the CPU has AMX or AVX512-BF16), ONNX fp32 and ONNX int8 (Byline's embedders: batches cut by token length), and each one's
     cosine to the torch vectors (min / mean),
  3. ingest per article into a fresh Chroma folder: Byline with 'minilm', 'minilm-bf16' and 'minilm-onnx', and
     the naive llama-index pipeline (SentenceSplitter 256/32 + HuggingFaceEmbedding of the same model
     folder + ChromaVectorStore), on the same articles.
Texts: the MultiHop-RAG articles (../shared/eval/multihop-rag, read at run time) chunked as ingest
chunks them, plus the chunks of longer articles made by joining each run of ``--join`` consecutive
bodies of one outlet (the partial bodies are short; real news chunks run to the full chunk size).
Ingest uses the real articles, or with ``--long N`` N articles of three full paragraphs each (bench_scale's
recombined sentences, about 4 chunks an article), closer to real news than the excerpts' one short chunk.
"""

from __future__ import annotations

import argparse
import json
import os
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


def load_articles(join: int) -> tuple[list, list]:
    """(the real articles, longer articles made of each run of ``join`` consecutive bodies from one outlet)."""
    from ingest.article import Article, article_from_record

    f = SHARED / "articles_partial.json"
    if not f.is_file():
        raise SystemExit(f"{f} is missing: this benchmark reads the MultiHop-RAG articles at run time")
    arts = [article_from_record(rec, origin=f"{f}#{i}") for i, rec in enumerate(json.loads(f.read_text()))]
    by_source: dict[str, list] = {}
    for a in arts:
        by_source.setdefault(a.source, []).append(a)
    joined = []
    for group in by_source.values():
        for i in range(len(group) - join + 1):  # overlapping windows: more distinct chunks of full length
            part = group[i : i + join]
            joined.append(Article(text="\n\n".join(a.text for a in part), title=part[0].title, source=part[0].source,
                                  author=part[0].author, published_at=part[0].published_at, url=f"{part[0].url}#joined", origin="bench"))
    return arts, joined


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rounds(contenders: dict, n: int) -> dict[str, list[float]]:
    """Seconds per contender per round, in alternating order."""
    names = list(contenders)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(n):
        for k in names if r % 2 == 0 else reversed(names):
            out[k].append(contenders[k]())
    return out


def naive_ingest(articles: list, model_path: str, folder: Path) -> None:
    """The plain llama-index way: split, embed with HuggingFaceEmbedding, store in Chroma."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(folder), settings=ChromaSettings(anonymized_telemetry=False))
    coll = client.get_or_create_collection("naive", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    ctx = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=coll))
    docs = [Document(text=a.text, metadata={"title": a.title, "source": a.source, "date": a.date_iso}) for a in articles]
    VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=NAIVE_EMBED[model_path],
                                    transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=32)])


NAIVE_EMBED: dict[str, object] = {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="timed runs per contender (alternating order; default 2)")
    ap.add_argument("--join", type=int, default=4, help="bodies per joined article (default 4)")
    ap.add_argument("--long", type=int, default=0, metavar="N", help="ingest N three-paragraph articles instead of the excerpts")
    ap.add_argument("--skip-embedding", action="store_true", help="only the ingest comparison")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from rich.console import Console
    from rich.table import Table

    from ingest.pipeline import Ingestor, embed_text
    from rag.config import Settings
    from rag.embedders.onnx import OnnxEmbedding, ensure_onnx, export_fp32
    from rag.embedders.torch_st import MiniLM, MiniLMBf16, bundled_minilm_path, native_bf16

    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-embed-"))
    res: dict = {"rounds": args.rounds, "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    res["native_bf16"] = native_bf16()
    try:
        source = bundled_minilm_path()
        settings = Settings(data_dir=tmp / "byline", model_cache_dir=tmp / "models", generator="extractive")
        torch_e = MiniLM.create(None, settings)

        console.print("exporting the int8 ONNX copy into an empty model cache …")
        t = time.perf_counter()
        int8_path = ensure_onnx(settings.resolved_model_cache / "onnx", source)
        res["export_int8_s"] = time.perf_counter() - t
        res["onnx_int8_mb"] = int8_path.stat().st_size / 2**20
        fp32_path = tmp / "fp32.onnx"
        export_fp32(torch_e, fp32_path)
        embedders = {
            "torch (sentence-transformers)": torch_e,
            "torch bfloat16 (minilm-bf16)": MiniLMBf16.create(None, settings),
            "ONNX fp32": OnnxEmbedding(source, fp32_path, "bench-fp32", embed_batch_size=settings.embed_batch_size),
            "ONNX int8 (minilm-onnx)": OnnxEmbedding(source, int8_path, "minilm-onnx", embed_batch_size=settings.embed_batch_size),
        }

        arts, joined = load_articles(args.join)
        if args.long:
            from bench_ingest_growth import new_articles  # the script's own folder is on sys.path
            from bench_scale import Corpus

            arts = new_articles(Corpus(), 0, args.long)
        chunker = Ingestor(settings, embedder=torch_e).chunker
        texts = [embed_text(a, c.text) for a in [*arts, *joined] for c in chunker.split(a)]
        n_tokens = [len(torch_e.tokenize(t)) for t in texts]
        res.update(texts=len(texts), mean_tokens=statistics.mean(n_tokens), articles=len(arts))

        for e in embedders.values():
            e.embed_array(texts[:64])  # warm-up
        rows = {}
        if not args.skip_embedding:
            console.print(f"embedding {len(texts)} chunk texts (mean {res['mean_tokens']:.0f} tokens) with each embedder …")
            ref = torch_e.embed_array(texts)
            embed_s = rounds({k: (lambda e=e: timed(lambda: e.embed_array(texts))) for k, e in embedders.items()}, args.rounds)
            for k, e in embedders.items():
                cos = (e.embed_array(texts) * ref).sum(axis=1)
                s = statistics.mean(embed_s[k])
                rows[k] = {"texts_per_s": len(texts) / s, "runs_s": embed_s[k], "cos_min": float(cos.min()), "cos_mean": float(cos.mean())}
            base = rows["torch (sentence-transformers)"]["texts_per_s"]
            for r in rows.values():
                r["vs_torch"] = r["texts_per_s"] / base
        res["embedding"] = rows

        console.print(f"ingesting the {len(arts)} articles: naive llama-index pipeline, Byline (minilm, minilm-bf16, minilm-onnx) …")
        NAIVE_EMBED[str(source)] = HuggingFaceEmbedding(model_name=str(source), device="cpu")
        NAIVE_EMBED[str(source)].get_text_embedding("warm up")
        runs = iter(range(10_000))

        def byline(embedder) -> float:
            s = settings.model_copy(update={"data_dir": tmp / f"ingest-{next(runs)}"})
            ing = Ingestor(s, embedder=embedder)
            t = timed(lambda: ing.ingest_items(arts))
            ing.store.close()
            return t

        def naive() -> float:
            return timed(lambda: naive_ingest(arts, str(source), tmp / f"naive-{next(runs)}"))

        ingest_s = rounds({"naive llama-index": naive, "Byline, minilm (torch)": lambda: byline(torch_e),
                           "Byline, minilm-bf16 (torch bfloat16)": lambda: byline(embedders["torch bfloat16 (minilm-bf16)"]),
                           "Byline, minilm-onnx (int8)": lambda: byline(embedders["ONNX int8 (minilm-onnx)"])}, args.rounds)
        naive_s = statistics.mean(ingest_s["naive llama-index"])
        res["ingest"] = {k: {"articles_per_s": len(arts) / statistics.mean(v), "runs_s": v, "vs_naive": naive_s / statistics.mean(v)}
                         for k, v in ingest_s.items()}
        res["load_avg_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"bench_embed — {res['texts']} chunk texts (mean {res['mean_tokens']:.0f} tokens), {res['cores']} cores "
                        f"({'with' if res['native_bf16'] else 'without'} bfloat16 instructions), "
                        f"load {res['load_avg_start']:.1f}→{res['load_avg_end']:.1f}, {res['rounds']} rounds")
    for col in ("embedder", "texts/s", "× torch", "cosine to torch min / mean", "runs (s)"):
        table.add_column(col, justify="left" if col == "embedder" else "right")
    for k, r in res["embedding"].items():
        table.add_row(k, f"{r['texts_per_s']:.1f}", f"{r['vs_torch']:.2f}", f"{r['cos_min']:.4f} / {r['cos_mean']:.4f}",
                      " / ".join(f"{x:.1f}" for x in r["runs_s"]))
    out.print(table)
    table = Table(title=f"ingest of {res['articles']} {'three-paragraph' if args.long else 'MultiHop-RAG'} articles into a fresh Chroma folder; "
                        f"int8 export from scratch {res['export_int8_s']:.1f} s ({res['onnx_int8_mb']:.0f} MB)")
    for col in ("pipeline", "articles/s", "× naive", "runs (s)"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for k, r in res["ingest"].items():
        table.add_row(k, f"{r['articles_per_s']:.1f}", f"{r['vs_naive']:.2f}", " / ".join(f"{x:.1f}" for x in r["runs_s"]))
    out.print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
