"""ingest.corpus: the corpus indexer ``byline eval`` hands to rag.evaluation.runner."""

from __future__ import annotations

import json

import pytest

from ingest.corpus import index_corpus, load_corpus
from rag.errors import ConfigError
from rag.evaluation.datasets import EvalQuestion

BODY = "The harbour authority said on Tuesday that forty extra ships would dock this year, " * 3


def test_records_map_ids_and_urls_without_ingesting(tmp_path, settings):
    recs = [{"id": "mhr-1", "title": "One", "url": "https://www.site.example/one/", "body": BODY},
            {"id": "mhr-2", "title": "No text"}]
    p = tmp_path / "corpus.json"
    p.write_text(json.dumps(recs))
    arts, emap, errors = load_corpus([p])
    assert len(arts) == 1 and len(errors) == 1 and errors[0].startswith(f"{p}#1")
    done = index_corpus([p], settings, ingest=False)
    assert done.ingest_report is None and done.load_errors == errors
    q = EvalQuestion("q", "?", "Yes", evidence_article_ids=["mhr-1"], evidence_urls=["https://site.example/one"])
    assert done.evidence.gold_articles(q) == ({arts[0].id}, [])


def test_broken_corpus_file_is_a_config_error(tmp_path):
    p = tmp_path / "corpus.json"
    p.write_text("[{broken")
    with pytest.raises(ConfigError, match="corpus"):
        load_corpus([p])
