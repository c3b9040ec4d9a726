"""``byline eval``: run a question set against Byline and report retrieval, answer and citation quality.

Out of the box it reads MultiHop-RAG (Tang & Yang 2024, ODC-BY 1.0) from ``../shared/eval/multihop-rag``
next to the repository: ``questions.json`` + ``articles_partial.json``. The corpus is ingested into a
fresh temporary index (``--index-existing`` uses the configured one instead), every question is run
through the retriever (k=10, for Hits@10/MRR@10) and through ``rag.ask`` (answers, citations, latency),
and the metrics of ``rag.evaluation`` are printed as a table, written as JSON (``--out``) and drawn as a
small PNG next to it, compared with ``--compare PREVIOUS.json`` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

from rag.config import Settings
from rag.errors import ConfigError
from rag.evaluation import (
    DATASET_ATTRIBUTION,
    HIGHER_IS_BETTER,
    EvalQuestion,
    EvidenceMap,
    QuestionResult,
    aggregate_by_type,
    compare_metrics,
    load_questions,
    read_records,
    sample_questions,
    score_question,
)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASET_DIRS = (REPO.parent / "shared" / "eval" / "multihop-rag", Path("../shared/eval/multihop-rag"))
QUESTION_FILE = "questions.json"
CORPUS_FILES = ("articles_partial.json", "articles.json", "corpus.json", "corpus.jsonl")
RETRIEVAL_K = 10
GENERATORS = ["auto", "local", "openai", "extractive"]

# Rows of the terminal table: (metric key, label, format).
TABLE_ROWS: list[tuple[str, str, str]] = [
    ("questions", "questions", "d"),
    ("hits@1", "Hits@1 (article)", "f"),
    ("hits@4", "Hits@4 (article)", "f"),
    ("hits@10", "Hits@10 (article)", "f"),
    ("mrr@10", "MRR@10 (article)", "f"),
    ("fact_hits@4", "Hits@4 (fact)", "f"),
    ("fact_hits@10", "Hits@10 (fact)", "f"),
    ("fact_mrr@10", "MRR@10 (fact)", "f"),
    ("fact_map@10", "MAP@10 (fact)", "f"),
    ("art_recall@10", "ArtRecall@10", "f"),
    ("art_recall@k", "ArtRecall@k (generator)", "f"),
    ("accuracy", "answer accuracy", "f"),
    ("accuracy_lenient", "accuracy (authors' token rule)", "f"),
    ("refusal_precision", "refusal precision", "f"),
    ("refusal_recall", "refusal recall (null)", "f"),
    ("answerable_refused", "answerable but refused", "f"),
    ("answerable_refused_retrieval", "  … at retrieval (count)", "d"),
    ("answerable_refused_model", "  … by the model (count)", "d"),
    ("answerable_refused_verification", "  … by verification (count)", "d"),
    ("citation_precision", "citation precision (evidence)", "f"),
    ("citation_support_rate", "citations ≥ min_support", "f"),
    ("citation_recall", "citation recall", "f"),
    ("retrieve_k10_p50_s", "retriever k=10 p50 s", "s"),
    ("retrieve_p50_s", "retrieve p50 s", "s"),
    ("retrieve_p95_s", "retrieve p95 s", "s"),
    ("first_token_p50_s", "first token p50 s", "s"),
    ("first_token_p95_s", "first token p95 s", "s"),
    ("total_p50_s", "total p50 s", "s"),
    ("total_p95_s", "total p95 s", "s"),
    ("prompt_tokens_mean", "prompt tokens (mean)", "t"),
    ("errors", "errors", "d"),
]
CHART_METRICS = ["hits@1", "hits@4", "mrr@10", "fact_hits@4", "art_recall@k", "accuracy", "refusal_recall", "citation_precision", "citation_recall"]


# --- CLI -----------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", help="question file: JSON list or JSONL (question, answer, question_type, evidence ids/urls/facts); "
                   "default ../shared/eval/multihop-rag/questions.json")
    p.add_argument("--corpus", action="append", help="articles to ingest into a fresh temporary index (JSON/JSONL records, files or folders; "
                   "repeatable); default the articles file next to the questions")
    p.add_argument("--index-existing", action="store_true", help="evaluate against the configured index instead of a fresh temporary one")
    p.add_argument("--limit", type=int, help="evaluate only this many questions")
    p.add_argument("--seed", type=int, help="shuffle (stratified by question type) with this seed before --limit")
    p.add_argument("--generator", choices=GENERATORS, help="answer generator (BYLINE_GENERATOR)")
    p.add_argument("--k", type=int, help="passages the generator sees (top_k; ArtRecall@k uses it)")
    p.add_argument("--out", default="eval-report.json", help="JSON report path (default eval-report.json)")
    p.add_argument("--compare", metavar="PREVIOUS.json", help="an earlier report: deltas in the table, regressions in red, both runs in the chart")
    p.add_argument("--chart", help="PNG chart path (default: --out with .png)")
    p.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    p.add_argument("--retrieval-only", action="store_true", help="skip answer generation (retrieval metrics only)")
    p.add_argument("--checkpoint", metavar="FILE.jsonl",
                   help="append each scored question to this file and, when it already holds results of the same run "
                        "(questions file, generator, k), reuse them: an interrupted long run resumes where it stopped")


def run_from_cli(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    stream = sys.stderr if args.json else sys.stdout
    # Piped or captured output: wide enough for the table (rich would fall back to 80 columns and truncate).
    console = Console(stderr=bool(args.json), highlight=False, soft_wrap=True, width=None if stream.isatty() else 150)
    qpath, corpus = resolve_inputs(args.questions, args.corpus, need_corpus=not args.index_existing)
    questions = load_questions(qpath)
    if not questions:
        raise ConfigError(f"{qpath}: no questions")
    picked = sample_questions(questions, args.limit, args.seed)
    if args.k is not None and not 1 <= args.k <= 50:
        raise ConfigError(f"--k {args.k}: use 1..50")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: use a positive number")
    if args.k:
        settings = settings.model_copy(update={"top_k": args.k})
    report = run_eval(picked, corpus, settings, index_existing=args.index_existing, retrieval_only=args.retrieval_only,
                      checkpoint=Path(args.checkpoint) if args.checkpoint else None, console=console, show_progress=not args.json,
                      meta={"questions_file": str(qpath), "limit": args.limit, "seed": args.seed, "questions_in_file": len(questions)})
    previous = None
    if args.compare:
        try:
            previous = json.loads(Path(args.compare).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--compare {args.compare}: cannot read a report: {exc}") from exc
        report["compare"] = {"previous": str(args.compare), "previous_created": previous.get("created"),
                             "status": {grp: compare_metrics(m, previous.get("metrics", {}).get(grp, {}))
                                        for grp, m in report["metrics"].items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chart = None
    if not args.no_chart:
        chart = Path(args.chart) if args.chart else out.with_suffix(".png")
        try:
            draw_chart(report, previous, chart)
            report["chart"] = str(chart)
        except Exception as exc:  # noqa: BLE001 - a chart must never lose the numbers
            log.warning("chart not drawn: %s", exc)
            chart = None
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        console.print(render_table(report, previous))
        console.print(f"Report: {out}" + (f"   Chart: {chart}" if chart else ""))
    n = report["run"]["questions"]
    return 1 if n and report["metrics"]["overall"]["errors"] == n else 0


def resolve_inputs(questions: str | None, corpus: Sequence[str] | None, *, need_corpus: bool = True) -> tuple[Path, list[Path]]:
    """The question file and corpus paths (defaults: MultiHop-RAG next to the repository)."""
    if questions:
        qpath = Path(questions)
        if not qpath.is_file():
            raise ConfigError(f"question file not found: {qpath}")
    else:
        qpath = None
        for d in DEFAULT_DATASET_DIRS:
            if (d / QUESTION_FILE).is_file():
                qpath = d / QUESTION_FILE
                break
        if qpath is None:
            raise ConfigError("no question file: pass --questions FILE --corpus FILE, or place MultiHop-RAG "
                              f"(questions.json + articles_partial.json) in {DEFAULT_DATASET_DIRS[0]}")
    paths = [Path(c) for c in corpus or []]
    for c in paths:
        if not c.exists():
            raise ConfigError(f"corpus not found: {c}")
    if not paths:
        for name in CORPUS_FILES:
            if (qpath.parent / name).is_file():
                paths = [qpath.parent / name]
                break
    if need_corpus and not paths:
        raise ConfigError(f"no corpus for {qpath}: pass --corpus FILE_OR_FOLDER (or --index-existing to use the configured index)")
    return qpath.resolve(), [p.resolve() for p in paths]


# --- corpus --------------------------------------------------------------------------------------
def load_corpus(paths: Sequence[Path]) -> tuple[list[Any], EvidenceMap, list[str]]:
    """Articles to ingest, the evidence map (record ids and urls -> article ids), and load errors."""
    from ingest.article import article_from_record
    from ingest.loaders import load_sources

    articles: list[Any] = []
    emap = EvidenceMap()
    errors: list[str] = []
    for path in paths:
        if path.is_file() and path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            try:
                records = read_records(path)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ConfigError(f"corpus {path}: {exc}") from exc
            for i, rec in enumerate(records):
                try:
                    art = article_from_record(rec, origin=f"{path}#{i}")
                except ValueError as exc:
                    errors.append(f"{path}#{i}: {exc}")
                    continue
                articles.append(art)
                emap.add(art.id, record_id=str(rec.get("id")) if isinstance(rec, dict) and rec.get("id") else None, url=art.url)
        else:
            for item in load_sources([str(path)]):
                if hasattr(item, "text"):
                    articles.append(item)
                    emap.add(item.id, url=item.url)
                else:
                    errors.append(str(item))
    return articles, emap, errors


def map_existing(settings: Settings, emap: EvidenceMap) -> int:
    from rag.store import Store

    arts = Store(settings).articles()
    for a in arts:
        emap.add(a.id, url=a.url)
    return len(arts)


@contextlib.contextmanager
def temp_index(settings: Settings) -> Iterator[Settings]:
    """Settings for a fresh, empty index: a temp Chroma folder, or a temp collection on a server."""
    if settings.uses_server:
        name = f"byline_eval_{uuid.uuid4().hex[:10]}"
        s = settings.model_copy(update={"collection": name})
        try:
            yield s
        finally:
            with contextlib.suppress(Exception):
                from rag.store import Store

                client = Store(s).client
                client.delete_collection(name)
                client.delete_collection(f"{name}_meta")
        return
    tmp = Path(tempfile.mkdtemp(prefix="byline-eval-"))
    s = settings.model_copy(update={"chroma_path": tmp / "chroma", "collection": "byline_eval"})
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            from rag import store as store_mod

            store_mod._CLIENTS.pop(str((tmp / "chroma").resolve()), None)
        shutil.rmtree(tmp, ignore_errors=True)


# --- the run -------------------------------------------------------------------------------------
def _progress(console: Any, enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not enabled)


def run_eval(questions: Sequence[EvalQuestion], corpus: Sequence[Path], settings: Settings, *, index_existing: bool = False,
             retrieval_only: bool = False, checkpoint: Path | None = None, console: Any = None, show_progress: bool = True,
             meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest (unless ``index_existing``), run every question, return the report dict.

    ``checkpoint``: a JSONL file that gets one line per scored question; results already in it
    (same questions file, generator and k) are reused instead of asked again."""
    from rich.console import Console

    console = console or Console(stderr=True)
    logging.getLogger("bm25s").setLevel(max(logging.getLogger("bm25s").getEffectiveLevel(), logging.WARNING))
    t0 = time.perf_counter()
    articles, emap, load_errors = load_corpus(corpus) if corpus else ([], EvidenceMap(), [])
    ctx = contextlib.nullcontext(settings) if index_existing else temp_index(settings)
    with ctx as s, _progress(console, show_progress and console.is_terminal) as prog:
        ingest_info: dict[str, Any] = {}
        if index_existing:
            ingest_info["indexed_articles"] = map_existing(s, emap)
        else:
            from ingest.pipeline import Ingestor

            task = prog.add_task("ingesting corpus", total=len(articles))
            rep = Ingestor(s).ingest_items(articles, progress=lambda ev, n: prog.advance(task, n) if ev == "article" else None)
            prog.remove_task(task)
            ingest_info = rep.as_dict()
            ingest_info["errors"] = ingest_info["errors"][:20]
        ingest_info["load_errors"] = load_errors[:20]
        generator = _resolved_generator(s) if not retrieval_only else None
        ckpt = Checkpoint.open(checkpoint, {"questions_file": str((meta or {}).get("questions_file", "")), "generator": generator,
                                            "top_k": s.top_k, "retrieval_only": retrieval_only}) if checkpoint else None
        results = run_questions(questions, emap, s, retrieval_only=retrieval_only, prog=prog, checkpoint=ckpt)
        resumed = ckpt.reused if ckpt else 0
    metrics = aggregate_by_type(results)
    multihop = any("multihop" in str(p).lower() for p in [*corpus, (meta or {}).get("questions_file", "")])
    return {
        "byline_eval": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "dataset": {"multihop_rag": multihop, "attribution": DATASET_ATTRIBUTION if multihop else "",
                    "questions_file": (meta or {}).get("questions_file"), "corpus": [str(p) for p in corpus]},
        "settings": {"generator": generator, "top_k": s.top_k, "retrieval_k": RETRIEVAL_K, "embedder": s.embedder,
                     "chunk_size": s.chunk_size, "chunk_overlap": s.chunk_overlap, "candidates": s.candidates,
                     "max_chunks_per_article": s.max_chunks_per_article, "min_support": s.min_support,
                     "min_dense_score": s.min_dense_score, "context_tokens": s.context_tokens,
                     "index": "existing" if index_existing else "temporary"},
        "run": {**(meta or {}), "questions": len(results), "seconds": round(time.perf_counter() - t0, 2), "ingest": ingest_info,
                "checkpoint": str(checkpoint) if checkpoint else None, "resumed_questions": resumed,
                "unresolved_evidence": sum(len(r.missing_evidence) for r in results)},
        "metrics": metrics,
        "questions": [r.as_dict() for r in results],
    }


def _resolved_generator(settings: Settings) -> str:
    try:
        from rag.generate import resolve_generator

        return resolve_generator(settings)
    except Exception:  # noqa: BLE001
        return settings.generator


class Checkpoint:
    """Scored questions on disk, one JSON line each, after a header that names the run.

    A long run (500 questions with the local model take hours on two cores) can be stopped at any
    point and resumed: a line is appended and flushed as soon as a question is scored, and a torn
    last line (killed mid-write) is ignored."""

    def __init__(self, path: Path, done: dict[str, QuestionResult]) -> None:
        self.path, self.done, self.reused = path, done, 0

    @classmethod
    def open(cls, path: Path, header: dict[str, Any]) -> "Checkpoint":
        done: dict[str, QuestionResult] = {}
        header = {"byline_eval_checkpoint": 1, **header}
        if path.is_file() and path.stat().st_size:
            lines = path.read_text(encoding="utf-8").splitlines()
            try:
                old = json.loads(lines[0])
            except (json.JSONDecodeError, IndexError) as exc:
                raise ConfigError(f"--checkpoint {path}: not a checkpoint file ({exc}); pick a new path") from exc
            if old != header:
                diff = {k: (old.get(k), v) for k, v in header.items() if old.get(k) != v}
                raise ConfigError(f"--checkpoint {path} belongs to another run (saved vs now: {diff}); pick a new path or delete it")
            for line in lines[1:]:
                try:
                    rec = json.loads(line)
                    done[rec["id"]] = QuestionResult(**rec)
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s: skipping an unreadable line (an interrupted write)", path)
            # Rewrite without torn lines so appends start on a fresh line.
            body = [json.dumps(header)] + [json.dumps(r.as_dict(), ensure_ascii=False) for r in done.values()]
            path.write_text("\n".join(body) + "\n", encoding="utf-8")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        return cls(path, done)

    def take(self, q: EvalQuestion) -> QuestionResult | None:
        r = self.done.get(q.id)
        if r is not None and r.question == q.question:
            self.reused += 1
            return r
        return None

    def add(self, r: QuestionResult) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def run_questions(questions: Sequence[EvalQuestion], emap: EvidenceMap, settings: Settings, *, retrieval_only: bool = False,
                  prog: Any = None, checkpoint: Checkpoint | None = None) -> list[QuestionResult]:
    from rag.retrieve import Retriever

    retriever = Retriever(settings)
    ask = None
    if not retrieval_only:
        from rag import ask as _ask

        ask = _ask
    task = prog.add_task("questions", total=len(questions)) if prog is not None else None
    results: list[QuestionResult] = []
    for q in questions:
        if checkpoint is not None and (saved := checkpoint.take(q)) is not None:
            results.append(saved)
            if task is not None:
                prog.advance(task)
            continue
        gold, missing = emap.gold_articles(q) if not q.is_null else (set(), [])
        timings: dict[str, float] = {}
        retrieved = None
        err = ""
        try:
            t = time.perf_counter()
            passages = retriever.retrieve(q.question, k=RETRIEVAL_K)
            timings["retrieve_k10"] = time.perf_counter() - t
            retrieved = [(p.article_id, p.full_text or p.text) for p in passages[:RETRIEVAL_K]]
        except Exception as exc:  # noqa: BLE001 - one failing question must not end the run
            log.warning("retrieval failed for %s: %s", q.id, exc)
            err = f"retrieve: {type(exc).__name__}: {exc}"
        kwargs: dict[str, Any] = {}
        if ask is not None:
            try:
                a = ask(q.question, settings=settings)
                timings.update({k: float(v) for k, v in (a.timings or {}).items() if isinstance(v, (int, float))})
                kwargs = {"answer_text": a.text or "", "refused": bool(a.refused),
                          "passage_article_ids": [p.article_id for p in a.passages],
                          "citations": [(c.article_id, c.score) for c in a.citations],
                          "prompt_tokens": int(a.prompt_tokens or 0), "notes": list(a.notes or [])}
            except Exception as exc:  # noqa: BLE001
                log.warning("ask failed for %s: %s", q.id, exc)
                err = (err + "; " if err else "") + f"ask: {type(exc).__name__}: {exc}"
        r = score_question(q, gold, missing, retrieved, min_support=settings.min_support, timings=timings, **kwargs)
        r.error = err
        results.append(r)
        if checkpoint is not None and not err:
            checkpoint.add(r)
        if task is not None:
            prog.advance(task)
    if task is not None:
        prog.remove_task(task)
    return results


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --- output --------------------------------------------------------------------------------------
def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "–"
    if kind == "d":
        return str(int(v))
    if kind == "s":
        return f"{v:.3f}"
    if kind == "t":
        return f"{v:.0f}"
    return f"{v:.3f}"


def render_table(report: dict[str, Any], previous: dict[str, Any] | None = None) -> Any:
    """A rich table: metrics by question type; with a previous report, its overall value and the delta
    (red: a quality metric dropped by more than 0.02 or a latency grew >20%; green: the reverse)."""
    from rich.table import Table

    metrics = report["metrics"]
    groups = ["overall"] + [g for g in metrics if g != "overall"]
    gen = report["settings"].get("generator") or "retrieval only"
    title = f"byline eval — {report['run']['questions']} questions, generator {gen}, top_k {report['settings']['top_k']}"
    table = Table(title=title, caption=DATASET_ATTRIBUTION if report["dataset"].get("multihop_rag") else None, caption_justify="left")
    table.add_column("metric", no_wrap=True)
    for g in groups:
        table.add_column(g.replace("_query", ""), justify="right", no_wrap=True)
    prev_metrics = (previous or {}).get("metrics", {})
    if previous:
        table.add_column("previous", justify="right", no_wrap=True)
        table.add_column("Δ", justify="right", no_wrap=True)
    status = (report.get("compare") or {}).get("status", {})
    for key, label, kind in TABLE_ROWS:
        if all(metrics[g].get(key) is None for g in groups):
            continue
        cells = []
        for g in groups:
            txt = _fmt(metrics[g].get(key), kind)
            st = status.get(g, {}).get(key)
            cells.append(f"[red]{txt}[/red]" if st == "regressed" else f"[green]{txt}[/green]" if st == "improved" else txt)
        if previous:
            pv = prev_metrics.get("overall", {}).get(key)
            cv = metrics["overall"].get(key)
            cells.append(_fmt(pv, kind))
            if isinstance(pv, (int, float)) and isinstance(cv, (int, float)):
                d = cv - pv
                st = status.get("overall", {}).get(key)
                txt = f"{d:+.3f}"
                cells.append(f"[red]{txt}[/red]" if st == "regressed" else f"[green]{txt}[/green]" if st == "improved" else txt)
            else:
                cells.append("")
        table.add_row(label, *cells)
    return table


def draw_chart(report: dict[str, Any], previous: dict[str, Any] | None, path: Path) -> Path:
    """Grouped bars of the main quality metrics (this run vs the previous one) and total latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cur = report["metrics"]["overall"]
    prev = (previous or {}).get("metrics", {}).get("overall", {})
    keys = [k for k in CHART_METRICS if cur.get(k) is not None or prev.get(k) is not None]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [4, 1]})
    xs = list(range(len(keys)))
    w = 0.38 if previous else 0.6
    status = (report.get("compare") or {}).get("status", {}).get("overall", {})
    if previous:
        ax.bar([x - w / 2 for x in xs], [prev.get(k) or 0 for k in keys], w, label="previous", color="#bbbbbb")
        colors = ["#d62728" if status.get(k) == "regressed" else "#1f77b4" for k in keys]
        ax.bar([x + w / 2 for x in xs], [cur.get(k) or 0 for k in keys], w, label="this run", color=colors)
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.bar(xs, [cur.get(k) or 0 for k in keys], w, color="#1f77b4")
    ax.set_xticks(xs)
    ax.set_xticklabels(keys, rotation=35, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"byline eval ({report['run']['questions']} q, {report['settings'].get('generator') or 'retrieval'})", fontsize=9)
    lat = ["total_p50_s", "total_p95_s"]
    lx = list(range(len(lat)))
    if previous:
        ax2.bar([x - w / 2 for x in lx], [prev.get(k) or 0 for k in lat], w, color="#bbbbbb")
        ax2.bar([x + w / 2 for x in lx], [cur.get(k) or 0 for k in lat], w, color="#ff7f0e")
    else:
        ax2.bar(lx, [cur.get(k) or 0 for k in lat], w, color="#ff7f0e")
    ax2.set_xticks(lx)
    ax2.set_xticklabels(["p50", "p95"], fontsize=7)
    ax2.set_title("total latency (s)", fontsize=9)
    if report["dataset"].get("multihop_rag"):
        fig.text(0.01, 0.01, "Data: MultiHop-RAG (Tang & Yang 2024), ODC-BY 1.0", fontsize=6, color="#666666")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":  # pragma: no cover
    from ui.cli import main

    sys.exit(main(["eval", *sys.argv[1:]]))
