"""How fast an answer comes, on the dev questions (run by hand; pytest never collects tests/bench).

    python tests/bench/bench_speed.py --limit 40 --seed 1                 # the default generator (local)
    python tests/bench/bench_speed.py --limit 40 --seed 1 --generator extractive --json /tmp/speed.json

Ingests the MultiHop-RAG corpus (``../shared/eval/multihop-rag``) into a temporary index, warms the
engine as ``byline chat`` does, then asks each question of the stratified sample through
``Engine.ask_stream`` and records the time to the ``Sources`` event, to the first text delta and to
the final answer (a refusal's text counts as its first words), the prompt tokens (Byline's estimate) and whether the answer is right (the eval's
scoring). For the local model it also records every request's own llama.cpp counts (the prompt tokens it
processed, and those it reused from the prompt cache, summed per question) and measures, on this machine and
in the same run, the raw prompt processing rate and the prompt cache: one answer prompt sent twice straight to the llama.cpp server
(the second reply's ``cache_n`` is the reused prefix), so the other figures can be read as ratios
on a noisy machine. Last, the process's memory: its peak (the ingest included) and its RSS after the answers.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)


def current_rss_mb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):  # not Linux
        return None


def pct(xs: list[float], q: float) -> float:
    from rag.evaluation.metrics import percentile

    return percentile(xs, q) or float("nan")


def raw_prompt_rate(engine: Any, prompt_messages: list[dict[str, str]]) -> dict[str, Any]:
    """The local model's own timings for one prompt sent twice: the first time uncached (a fresh opening
    line, so no prefix matches what is cached), the second time reusing the cached prefix."""
    import uuid

    server = engine.generator("local").llm._get_server()
    fresh = [{"role": "system", "content": f"Run {uuid.uuid4().hex}. {prompt_messages[0]['content']}"}, *prompt_messages[1:]]
    out = {}
    for label in ("first", "repeat"):
        reply = server.handle_chat_completions({"messages": fresh, "max_tokens": 1, "temperature": 0})
        t = reply.get("timings") or {}
        out[label] = {k: t.get(k) for k in ("prompt_n", "prompt_ms", "prompt_per_second", "cache_n")}
    return out


class RequestMeter:
    """Stands between the local LLM and its llama.cpp server, summing each request's own timings (``prompt_n``:
    tokens processed, ``cache_n``: tokens reused from the prompt cache) into the current question's row."""

    def __init__(self, llm: Any) -> None:
        self.row: dict[str, Any] = {}
        self._call = llm._get_server().handle_chat_completions
        llm._server = self  # the extension type's method cannot be replaced; the LLM's handle to it can

    def _add(self, reply: Any) -> None:
        t = reply.get("timings") if isinstance(reply, dict) else None
        if t:
            self.row["uncached_tokens"] = self.row.get("uncached_tokens", 0) + int(t.get("prompt_n") or 0)
            self.row["cached_tokens"] = self.row.get("cached_tokens", 0) + int(t.get("cache_n") or 0)
            self.row["requests"] = self.row.get("requests", 0) + 1
            # Tokens after the first (which comes with the prompt's read), the time they took, and (ik_llama.cpp)
            # the prompt-lookup drafts tried and kept.
            written = int(t.get("predicted_n") or 0) - 1
            if written > 0:
                for key, value in (("decoded_tokens", written), ("decode_ms", t.get("predicted_ms") or 0),
                                   ("drafted", t.get("draft_n") or 0), ("accepted", t.get("draft_n_accepted") or 0)):
                    self.row[key] = self.row.get(key, 0) + value

    def handle_chat_completions(self, req: Any, callback: Any = None) -> Any:
        if callback is None:
            reply = self._call(req)
            self._add(reply)
            return reply

        def on_chunk(chunk: Any) -> Any:
            self._add(chunk)  # the last chunk of a stream carries the request's timings
            return callback(chunk)

        return self._call(req, on_chunk)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--generator", default="local")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    from ingest.corpus import index_corpus
    from rag.config import Settings
    from rag.engine import Engine
    from rag.evaluation.datasets import load_questions, resolve_inputs, sample_questions
    from rag.evaluation.metrics import answer_correct
    from rag.generators.chat import format_passages
    from rag.prompts import ANSWER_USER, answer_system
    from rag.types import Answer, Sources

    qpath, corpus = resolve_inputs(None, None)
    questions = sample_questions(load_questions(qpath), args.limit, args.seed)
    with tempfile.TemporaryDirectory(prefix="byline-speed-") as tmp:
        s = Settings(data_dir=Path(tmp), generator=args.generator)
        t = time.perf_counter()
        index_corpus(corpus, s)
        ingest_s = time.perf_counter() - t
        engine = Engine(s)
        t = time.perf_counter()
        engine.warm_up()
        warm_s = time.perf_counter() - t
        rows = []
        meter = RequestMeter(engine.generator("local").llm) if engine.generator().name == "local" else None
        for q in questions:
            if meter is not None:
                meter.row = {}
            t0 = time.perf_counter()
            sources_s = first_s = None
            answer: Answer | None = None
            for piece in engine.ask_stream(q.question):
                now = time.perf_counter() - t0
                if isinstance(piece, Sources):
                    sources_s = now
                elif isinstance(piece, str):
                    first_s = now if first_s is None and piece else first_s
                else:
                    answer = piece
            assert answer is not None
            rows.append({"id": q.id, "type": q.question_type, "sources_s": sources_s, "first_token_s": first_s,
                         "total_s": time.perf_counter() - t0, "prompt_tokens": answer.prompt_tokens, "refused": answer.refused,
                         "correct": answer_correct(q.answer, answer.text, answer.refused),
                         **(meter.row if meter is not None else {})})
            print(f"{q.id:14} sources {sources_s or float('nan'):5.2f} s  first {first_s or float('nan'):6.2f} s  "
                  f"total {rows[-1]['total_s']:6.2f} s  uncached/cached {rows[-1].get('uncached_tokens', 0)}/{rows[-1].get('cached_tokens', 0)}  "
                  f"{'right' if rows[-1]['correct'] else 'wrong'}", flush=True)
        probe = None
        if engine.generator().name == "local" and answer is not None and answer.passages:
            user = ANSWER_USER.format(passages=format_passages(answer.passages), question=answer.standalone_question)
            probe = raw_prompt_rate(engine, [{"role": "system", "content": answer_system()}, {"role": "user", "content": user}])
        rss_mb = current_rss_mb()

    def col(key: str) -> list[float]:
        return [r[key] for r in rows if r.get(key) is not None]

    summary = {
        "questions": len(rows), "generator": engine.generator().name,
        # Which runtime ran the local model (BYLINE_LLM_RUNTIME): ik_llama.cpp's IkServer or xllamacpp's Server.
        "runtime": type(meter._call.__self__).__name__ if meter is not None else None, "ingest_s": round(ingest_s, 1), "warm_up_s": round(warm_s, 1),
        **{f"{k}_p{p}": round(pct(col(k), p), 3) for k in ("sources_s", "first_token_s", "total_s") for p in (50, 95)},
        # Refusals before generation send no prompt: averaged over the questions that reached the model.
        "prompt_tokens_mean": round(statistics.mean([t for t in col("prompt_tokens") if t]), 1) if any(col("prompt_tokens")) else 0,
        # The model's own counts, over the questions that sent it a request.
        **{f"{k}_mean": round(statistics.mean(col(k)), 1) for k in ("uncached_tokens", "cached_tokens", "requests") if col(k)},
        **{f"{k}_p50": round(pct(col(k), 50), 1) for k in ("uncached_tokens",) if col(k)},
        # Writing speed over the requests that wrote more than one token (a verdict is one token, read with the prompt).
        "decode_tokens_per_s": round(sum(col("decoded_tokens")) / (sum(col("decode_ms")) / 1000), 1) if sum(col("decode_ms")) else None,
        "drafted_tokens": sum(col("drafted")), "accepted_tokens": sum(col("accepted")),
        "accuracy": round(sum(r["correct"] for r in rows) / len(rows), 3) if rows else None,
        "refused": sum(r["refused"] for r in rows), "model_prompt_probe": probe,
        # Memory: the process's peak (its ingest of the corpus included, so an upper bound on serving) and its RSS
        # after the answers (models loaded, index open), against the serving goal of 3 GB.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "rss_after_answers_mb": rss_mb,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "questions": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
