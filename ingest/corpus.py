"""An evaluation corpus into an index: ``index_corpus`` is the ``rag.evaluation.runner.CorpusIndexer``
that ``byline eval`` hands to the runner (``rag`` does not import ``ingest``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ingest.article import Article, article_from_record
from ingest.loaders import load_sources
from rag.config import Settings
from rag.errors import ConfigError
from rag.evaluation.datasets import EvidenceMap, read_records
from rag.evaluation.runner import IndexedCorpus

RECORD_SUFFIXES = (".json", ".jsonl", ".ndjson")


def load_corpus(paths: Sequence[Path]) -> tuple[list[Article], EvidenceMap, list[str]]:
    """Articles to ingest, the evidence map (record ids and urls -> article ids), and load errors."""
    articles: list[Article] = []
    emap = EvidenceMap()
    errors: list[str] = []
    for path in paths:
        if path.is_file() and path.suffix.lower() in RECORD_SUFFIXES:
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
                if isinstance(item, Article):
                    articles.append(item)
                    emap.add(item.id, url=item.url)
                else:
                    errors.append(str(item))
    return articles, emap, errors


def index_corpus(corpus: Sequence[Path], settings: Settings, *, ingest: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> IndexedCorpus:
    """Read the corpus and, when ``ingest``, index it into ``settings``' store (a ``CorpusIndexer``)."""
    articles, emap, load_errors = load_corpus(corpus)
    if not ingest:
        return IndexedCorpus(emap, load_errors)
    from ingest.pipeline import Ingestor

    total, done = len(articles), 0
    if progress is not None:
        progress(0, total)

    def on_event(event: str, n: int) -> None:
        nonlocal done
        if event == "article" and progress is not None:
            done += n
            progress(done, total)

    report: dict[str, Any] = Ingestor(settings).ingest_items(articles, progress=on_event).as_dict()
    return IndexedCorpus(emap, load_errors, report)
