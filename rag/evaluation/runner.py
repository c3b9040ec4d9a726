"""``byline eval``: the whole run, from a request to a saved report.

``evaluate`` resolves the inputs (MultiHop-RAG next to the repository by default), samples the
questions, and hands them to ``run_eval``: the corpus is indexed into a fresh temporary index
(``index_existing`` uses the configured one instead), every question goes through Byline's search
(k=10, for Hits@10/MRR@10) and through ``rag.ask`` (answers, citations, latency), and the scores of
``rag.evaluation.metrics`` become the report. ``evaluate`` then compares it with an earlier report,
writes it as JSON and draws the chart next to it.

Reading and ingesting a corpus needs ``ingest``, which ``rag`` does not import: the caller passes a
``CorpusIndexer`` (``ingest.corpus.index_corpus``; ``byline eval`` does that).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from rag.config import Settings
from rag.errors import ConfigError
from rag.evaluation.datasets import (
    DATASET_ATTRIBUTION,
    REPO,
    EvalQuestion,
    EvidenceMap,
    load_questions,
    resolve_inputs,
    sample_questions,
)
from rag.evaluation.metrics import QuestionResult, aggregate_by_type, compare_metrics, score_question

log = logging.getLogger(__name__)

RETRIEVAL_K = 10


# --- the corpus: indexed by the caller -----------------------------------------------------------
@dataclass
class IndexedCorpus:
    """What indexing a corpus produced: where its articles went, and what happened on the way."""

    evidence: EvidenceMap  # the corpus records' ids and urls -> article ids
    load_errors: list[str] = field(default_factory=list)  # records or files that could not be read
    ingest_report: dict[str, Any] | None = None  # the ingest report (None when nothing was ingested)


class CorpusIndexer(Protocol):
    """Reads the corpus (files or folders of articles) and, when ``ingest``, indexes it into the store
    of ``settings``. ``progress(done, total)`` is told how many articles were handled so far."""

    def __call__(self, corpus: Sequence[Path], settings: Settings, *, ingest: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> IndexedCorpus: ...


@contextlib.contextmanager
def temp_index(settings: Settings) -> Iterator[Settings]:
    """Settings for a fresh, empty index: a temp Chroma folder, or a temp collection on a server."""
    from rag.store import Store

    if settings.uses_server:
        name = f"byline_eval_{uuid.uuid4().hex[:10]}"
        s = settings.model_copy(update={"collection": name})
        try:
            yield s
        finally:
            with contextlib.suppress(Exception):
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
            Store(s).close()
        shutil.rmtree(tmp, ignore_errors=True)


def map_existing(settings: Settings, emap: EvidenceMap) -> int:
    from rag.store import Store

    arts = Store(settings).articles()
    for a in arts:
        emap.add(a.id, url=a.url)
    return len(arts)


# --- the request: what ``byline eval`` was asked -------------------------------------------------
@dataclass
class EvalRequest:
    questions: str | None = None  # question file (default: MultiHop-RAG next to the repository)
    corpus: Sequence[str] | None = None  # files/folders to ingest (default: the articles file next to the questions)
    index_existing: bool = False
    limit: int | None = None
    seed: int | None = None
    k: int | None = None  # passages the generator sees (top_k)
    out: str = "eval-report.json"
    compare: str | None = None  # an earlier report
    chart: str | None = None  # PNG path (default: out with .png)
    draw_chart: bool = True
    retrieval_only: bool = False
    checkpoint: str | None = None


@dataclass
class EvalOutcome:
    report: dict[str, Any]
    previous: dict[str, Any] | None
    out: Path
    chart: Path | None

    @property
    def exit_code(self) -> int:
        """1 when every question failed, else 0."""
        n = self.report["run"]["questions"]
        return 1 if n and self.report["metrics"]["overall"]["errors"] == n else 0


def evaluate(req: EvalRequest, settings: Settings, *, index_corpus: CorpusIndexer | None = None, console: Any = None,
             show_progress: bool = True) -> EvalOutcome:
    """Run a request: the report is written to ``req.out`` (and drawn next to it) and returned."""
    qpath, corpus = resolve_inputs(req.questions, req.corpus, need_corpus=not req.index_existing)
    questions = load_questions(qpath)
    if not questions:
        raise ConfigError(f"{qpath}: no questions")
    picked = sample_questions(questions, req.limit, req.seed)
    if req.k is not None and not 1 <= req.k <= 50:
        raise ConfigError(f"--k {req.k}: use 1..50")
    if req.limit is not None and req.limit < 1:
        raise ConfigError(f"--limit {req.limit}: use a positive number")
    if req.k:
        settings = settings.model_copy(update={"top_k": req.k})
    report = run_eval(picked, corpus, settings, index_corpus=index_corpus, index_existing=req.index_existing,
                      retrieval_only=req.retrieval_only, checkpoint=Path(req.checkpoint) if req.checkpoint else None,
                      console=console, show_progress=show_progress,
                      meta={"questions_file": str(qpath), "limit": req.limit, "seed": req.seed, "questions_in_file": len(questions)})
    previous = None
    if req.compare:
        try:
            previous = json.loads(Path(req.compare).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--compare {req.compare}: cannot read a report: {exc}") from exc
        report["compare"] = {"previous": str(req.compare), "previous_created": previous.get("created"),
                             "status": {grp: compare_metrics(m, previous.get("metrics", {}).get(grp, {}))
                                        for grp, m in report["metrics"].items()}}
    out = Path(req.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chart = None
    if req.draw_chart:
        from rag.evaluation.report import draw_chart

        chart = Path(req.chart) if req.chart else out.with_suffix(".png")
        try:
            draw_chart(report, previous, chart)
            report["chart"] = str(chart)
        except Exception as exc:  # noqa: BLE001 - a chart must never lose the numbers
            log.warning("chart not drawn: %s", exc)
            chart = None
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return EvalOutcome(report, previous, out, chart)


# --- the run -------------------------------------------------------------------------------------
def _progress(console: Any, enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not enabled)


def _index(index_corpus: CorpusIndexer | None, corpus: Sequence[Path], s: Settings, *, index_existing: bool,
           prog: Any) -> tuple[EvidenceMap, dict[str, Any]]:
    """The evidence map and the report's ``run.ingest`` section."""
    if index_existing and not corpus:
        indexed = IndexedCorpus(EvidenceMap())
    elif index_corpus is None:
        raise ConfigError("evaluating on a corpus needs a corpus indexer (ingest.corpus.index_corpus)")
    elif index_existing:
        indexed = index_corpus(corpus, s, ingest=False)
    else:
        task = prog.add_task("ingesting corpus", total=None)
        indexed = index_corpus(corpus, s, ingest=True, progress=lambda done, total: prog.update(task, completed=done, total=total))
        prog.remove_task(task)
    emap = indexed.evidence
    if index_existing:
        info: dict[str, Any] = {"indexed_articles": map_existing(s, emap)}
    else:
        info = dict(indexed.ingest_report or {})
        info["errors"] = list(info.get("errors", []))[:20]
    info["load_errors"] = indexed.load_errors[:20]
    return emap, info


def run_eval(questions: Sequence[EvalQuestion], corpus: Sequence[Path], settings: Settings, *,
             index_corpus: CorpusIndexer | None = None, index_existing: bool = False, retrieval_only: bool = False,
             checkpoint: Path | None = None, console: Any = None, show_progress: bool = True,
             meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index the corpus (into a temporary index unless ``index_existing``), run every question, return the report dict.

    ``checkpoint``: a JSONL file that gets one line per scored question; results already in it
    (same questions file, generator and k) are reused instead of asked again."""
    from rich.console import Console

    console = console or Console(stderr=True)
    logging.getLogger("bm25s").setLevel(max(logging.getLogger("bm25s").getEffectiveLevel(), logging.WARNING))
    t0 = time.perf_counter()
    ctx = contextlib.nullcontext(settings) if index_existing else temp_index(settings)
    with ctx as s, _progress(console, show_progress and console.is_terminal) as prog:
        emap, ingest_info = _index(index_corpus, corpus, s, index_existing=index_existing, prog=prog)
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
    """The generator that answers (what 'auto' becomes), as the report records it."""
    try:
        from rag.generators import resolve_generator_name

        return resolve_generator_name(settings)
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
    from rag.engine import Engine

    # One engine for every question: its search (Byline's own retrieval: dates and outlets read from the
    # question) serves both the k=10 run and the answers.
    engine = Engine(settings.model_copy(update={"generator": "extractive"}) if retrieval_only else settings)
    ask = None if retrieval_only else engine.ask
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
            passages = engine.search(q.question, k=RETRIEVAL_K)
            timings["retrieve_k10"] = time.perf_counter() - t
            retrieved = [(p.article_id, p.full_text or p.text) for p in passages[:RETRIEVAL_K]]
        except Exception as exc:  # noqa: BLE001 - one failing question must not end the run
            log.warning("retrieval failed for %s: %s", q.id, exc)
            err = f"retrieve: {type(exc).__name__}: {exc}"
        kwargs: dict[str, Any] = {}
        if ask is not None:
            try:
                a = ask(q.question)
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
