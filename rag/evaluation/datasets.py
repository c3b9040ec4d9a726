"""Question sets for ``byline eval``: where they are, how they are read and sampled, and how their
evidence (record ids, urls) maps onto the article ids of an index.

Out of the box: MultiHop-RAG (Tang & Yang 2024, arXiv:2401.15391, data ODC-BY 1.0) in
``../shared/eval/multihop-rag`` next to the repository (``questions.json`` + ``articles_partial.json``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from rag.errors import ConfigError
from rag.evaluation.normalize import is_refusal_gold
from rag.records import QUESTION_LIST_KEYS
from rag.records import read_records as _read_records

DATASET_ATTRIBUTION = (
    "MultiHop-RAG: Yixuan Tang and Yi Yang, \"MultiHop-RAG: Benchmarking Retrieval-Augmented Generation "
    "for Multi-Hop Queries\", arXiv:2401.15391 (COLM 2024). Data licensed ODC-BY 1.0."
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATASET_DIRS = (REPO.parent / "shared" / "eval" / "multihop-rag", Path("../shared/eval/multihop-rag"))
QUESTION_FILE = "questions.json"
CORPUS_FILES = ("articles_partial.json", "articles.json", "corpus.json", "corpus.jsonl")
NULL_TYPES = {"null_query", "null"}

# --- questions -----------------------------------------------------------------------------------


@dataclass
class EvalQuestion:
    id: str
    question: str
    answer: str
    question_type: str = "unknown"
    evidence_article_ids: list[str] = field(default_factory=list)
    evidence_urls: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def is_null(self) -> bool:
        return self.question_type in NULL_TYPES or (is_refusal_gold(self.answer) and not self.has_evidence)

    @property
    def has_evidence(self) -> bool:
        return bool(self.evidence_article_ids or self.evidence_urls)


def _get(rec: dict[str, Any], *names: str) -> Any:
    for n in names:
        v = rec.get(n)
        if v not in (None, "", [], {}):
            return v
    return None


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v if x not in (None, "")]
    return [str(v)]


def question_from_record(rec: dict[str, Any], index: int) -> EvalQuestion:
    """One question from a MultiHop-RAG-style record (common aliases accepted)."""
    if not isinstance(rec, dict):
        raise ValueError(f"question #{index}: expected an object, got {type(rec).__name__}")
    q = _get(rec, "question", "query", "q")
    if not q:
        raise ValueError(f"question #{index}: no 'question' (or 'query') field")
    gold = _get(rec, "answer", "gold_answer", "gold", "expected_answer")
    evidence = rec.get("evidence") or rec.get("evidence_list") or []
    if not isinstance(evidence, list):
        evidence = []
    urls = _as_list(_get(rec, "evidence_urls", "evidence_url"))
    facts: list[str] = []
    for ev in evidence:
        if isinstance(ev, dict):
            if ev.get("fact"):
                facts.append(str(ev["fact"]))
            if ev.get("url") and str(ev["url"]) not in urls:
                urls.append(str(ev["url"]))
        elif isinstance(ev, str) and ev.strip():
            facts.append(ev)
    qtype = str(_get(rec, "question_type", "type", "query_type") or "unknown")
    return EvalQuestion(
        id=str(_get(rec, "id", "qid", "question_id") or f"q{index}"),
        question=str(q),
        answer="" if gold is None else str(gold),
        question_type=qtype,
        evidence_article_ids=_as_list(_get(rec, "evidence_article_ids", "evidence_ids", "article_ids")),
        evidence_urls=urls,
        facts=facts,
    )


def read_records(path: str | Path) -> list[Any]:
    """A JSON list (or {"questions"/"data"/"articles": [...]}) or JSONL file of objects."""
    return _read_records(path, list_keys=QUESTION_LIST_KEYS)


def load_questions(path: str | Path) -> list[EvalQuestion]:
    return [question_from_record(r, i) for i, r in enumerate(read_records(path))]


def sample_questions(questions: Sequence[EvalQuestion], limit: int | None = None, seed: int | None = None) -> list[EvalQuestion]:
    """A deterministic sample: shuffled with ``seed`` when given, else file order; then the first ``limit``.

    With a seed the sample is stratified by question type (round-robin over shuffled per-type lists)
    so a small ``--limit`` still covers every type.
    """
    qs = list(questions)
    if seed is not None:
        rng = random.Random(seed)
        by_type: dict[str, list[EvalQuestion]] = {}
        for q in qs:
            by_type.setdefault(q.question_type, []).append(q)
        for lst in by_type.values():
            rng.shuffle(lst)
        order = sorted(by_type)
        out: list[EvalQuestion] = []
        i = 0
        while len(out) < len(qs):
            for t in order:
                if i < len(by_type[t]):
                    out.append(by_type[t][i])
            i += 1
        qs = out
    if limit is not None and limit >= 0:
        qs = qs[:limit]
    return qs


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


# --- evidence -> article ids ---------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Scheme/host lower-cased, no fragment, no trailing slash, no 'www.'."""
    try:
        s = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    host = (s.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    path = s.path.rstrip("/")
    return urlunsplit(("", host, path, s.query, ""))


def _url_no_query(url: str) -> str:
    n = normalize_url(url)
    return n.split("?", 1)[0]


class EvidenceMap:
    """Maps evidence ids/urls of a question file onto the article ids the index uses."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}
        self.by_url: dict[str, str] = {}
        self.by_url_loose: dict[str, str] = {}

    def add(self, article_id: str, *, record_id: str | None = None, url: str | None = None) -> None:
        self.by_id[article_id] = article_id
        if record_id:
            self.by_id[str(record_id)] = article_id
        if url:
            self.by_url[normalize_url(url)] = article_id
            self.by_url_loose.setdefault(_url_no_query(url), article_id)

    def resolve_url(self, url: str) -> str | None:
        return self.by_url.get(normalize_url(url)) or self.by_url_loose.get(_url_no_query(url))

    def gold_articles(self, q: EvalQuestion) -> tuple[set[str], list[str]]:
        """(resolved article ids, evidence that matched nothing in the corpus)."""
        gold: set[str] = set()
        missing: list[str] = []
        # ids and urls usually describe the same articles: prefer urls position-wise, fall back to ids.
        n = max(len(q.evidence_article_ids), len(q.evidence_urls))
        for i in range(n):
            rid = q.evidence_article_ids[i] if i < len(q.evidence_article_ids) else None
            url = q.evidence_urls[i] if i < len(q.evidence_urls) else None
            got = (self.by_id.get(rid) if rid else None) or (self.resolve_url(url) if url else None)
            if got:
                gold.add(got)
            else:
                missing.append(rid or url or "?")
        return gold, missing

    def __len__(self) -> int:
        return len(self.by_id)
