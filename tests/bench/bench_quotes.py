"""Which articles an answer's quotes come from, with the right verdict or name given (run by hand; not collected by pytest).

    python tests/bench/bench_quotes.py                          # all answerable MultiHop-RAG questions of the kinds below
    python tests/bench/bench_quotes.py --index /tmp/quotes-idx  # keep the index and reuse it on the next run
    python tests/bench/bench_quotes.py --limit 40 --seed 5       # the sample ``byline eval --limit 40 --seed 5`` asks
    python tests/bench/bench_quotes.py --show 10                 # print ten quotes from an article that is not evidence

For yes/no, either/or and "which company / who" questions, the answer is the model's one-word reply followed by
quotes that code chooses (``rag.compose``). This isolates the choosing: the dev set's gold answer stands in for
the model's reply, so no model runs and all 429 answerable questions take about two minutes. It prints, per
question type: how many of the evidence articles the search found (``Retriever`` passages) and the short
context kept (what the model reads, and what the quotes come from), and the citation precision of the quotes
(cited articles that are evidence articles), the measure ``byline eval`` reports for the whole answer.
The real run's figures differ where the model's reply differs from the gold answer; read this as a quick,
model-free estimate for changes to retrieval, the short context or the quote choice, and confirm with ``byline eval``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", help="question file (default: MultiHop-RAG in ../shared/eval)")
    ap.add_argument("--corpus", action="append", help="articles to index (default: the file next to the questions)")
    ap.add_argument("--index", help="a folder for the index: built when missing, reused when present")
    ap.add_argument("--limit", type=int, help="only this many questions (a stratified sample, as byline eval draws it)")
    ap.add_argument("--seed", type=int, help="the sample's seed")
    ap.add_argument("--show", type=int, default=0, help="print this many quotes from articles that are not evidence")
    args = ap.parse_args()

    from ingest.corpus import index_corpus
    from rag.compose import compose_entity, compose_verdict
    from rag.config import Settings
    from rag.engine import Engine
    from rag.evaluation.datasets import load_questions, resolve_inputs, sample_questions
    from rag.evaluation.metrics import yes_no_label
    from rag.pipeline import generation_input, short_context
    from rag.planner import CHOICE, ENTITY, YES_NO

    qpath, corpus = resolve_inputs(args.questions, args.corpus)
    folder = Path(args.index) if args.index else Path(tempfile.mkdtemp(prefix="byline-quotes-"))
    s = Settings(chroma_path=folder / "chroma", collection="byline_quotes", generator="extractive")
    t = time.perf_counter()
    evidence = index_corpus(corpus, s, ingest=not (folder / "chroma").exists()).evidence
    print(f"index ready in {time.perf_counter() - t:.0f} s ({folder})")
    engine = Engine(s)

    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    shown = 0
    t = time.perf_counter()
    for q in sample_questions(load_questions(qpath), args.limit, args.seed):
        if q.is_null:
            continue
        gold, _ = evidence.gold_articles(q)
        plan, qplan = engine._plan(q.question, None)
        if qplan.kind not in (ENTITY, YES_NO, CHOICE):
            continue
        row = rows[q.question_type]
        found = engine._retrieve(plan, qplan)
        short = short_context(found, q.question, engine.embedder, s.short_top_k, s.short_context_tokens)
        inp = generation_input(plan, q.question, short, found)
        row["questions"] += 1
        row["evidence"] += len(gold)
        row["found"] += len(gold & {p.article_id for p in found.passages})
        row["short"] += len(gold & {p.article_id for p in inp.passages})
        if qplan.kind == ENTITY:
            composed = compose_entity(q.answer, inp, found.parts, engine.embedder.embed, s)
        else:
            value = yes_no_label(q.answer) if qplan.kind == YES_NO else q.answer.strip().lower()
            composed = compose_verdict(qplan, value, inp, found.parts, engine.embedder.embed) if value else None
        if composed is None:
            row["not composed"] += 1
            continue
        for c in composed[1]:
            row["citations"] += 1
            row["good"] += c.article_id in gold
            # a wrong article quoted while one of the same outlet that is evidence was there to quote
            row["missed"] += c.article_id not in gold and any(p.article_id in gold and p.source == c.source for p in inp.passages)
            if c.article_id not in gold and shown < args.show:
                shown += 1
                print(f"\n{q.question}\n  quoted {c.source} | {c.title[:80]}\n  “{c.quote[:200]}”")
    seconds = time.perf_counter() - t

    print(f"\n{sum(r['questions'] for r in rows.values())} questions in {seconds:.0f} s; the gold answer stands in for the model's reply\n")
    print("| type | questions | evidence found | in the short context | citations | citation precision | wrong, with the outlet's evidence in context | not composed |")
    print("|---|---|---|---|---|---|---|---|")
    total: collections.Counter = collections.Counter()
    for name, r in [*sorted(rows.items()), ("all", None)]:
        r = r if r is not None else total
        if name != "all":
            total.update(r)
        print(f"| {name} | {r['questions']} | {r['found'] / max(1, r['evidence']):.3f} | {r['short'] / max(1, r['evidence']):.3f} "
              f"| {r['citations']} | {r['good'] / max(1, r['citations']):.3f} | {r['missed']} | {r['not composed']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
