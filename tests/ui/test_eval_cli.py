"""`byline eval`: argument wiring and output (end to end on MultiHop-RAG when ../shared/eval/multihop-rag exists)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.evaluation import datasets, runner
from tests.conftest import SHARED_EVAL
from ui.cli import main

HAVE_MULTIHOP = (SHARED_EVAL / "questions.json").is_file() and (SHARED_EVAL / "articles_partial.json").is_file()


def _report(metrics: dict, n: int = 20) -> dict:
    return {"created": "x", "run": {"questions": n}, "settings": {"generator": "extractive", "top_k": 6},
            "dataset": {"multihop_rag": True}, "metrics": {"overall": {"questions": n, **metrics}}}


def test_missing_dataset_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(datasets, "DEFAULT_DATASET_DIRS", (tmp_path / "nope",))
    with pytest.raises(ConfigError, match="--questions"):
        datasets.resolve_inputs(None, None)
    assert main(["eval", "--data-dir", str(tmp_path / "d")]) == 1
    assert "no question file" in capsys.readouterr().err


@pytest.mark.eval
@pytest.mark.skipif(not HAVE_MULTIHOP, reason="../shared/eval/multihop-rag absent")
def test_eval_end_to_end_multihop(tmp_path, capsys):
    out = tmp_path / "report.json"
    rc = main(["eval", "--data-dir", str(tmp_path / "byline"), "--limit", "20", "--seed", "0", "--generator", "extractive",
               "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Hits@1" in printed and "ODC-BY" in printed
    rep = json.loads(out.read_text())
    m = rep["metrics"]["overall"]
    assert rep["run"]["questions"] == 20 and m["errors"] == 0
    assert rep["run"]["unresolved_evidence"] == 0  # every evidence url maps onto an ingested article
    assert rep["run"]["ingest"]["added"] == 326
    for key in ("hits@1", "hits@4", "hits@10", "mrr@10", "fact_hits@10", "art_recall@10", "art_recall@k", "citation_precision"):
        assert m[key] is not None and m[key] > 0, key
    assert m["total_p50_s"] > 0 and m["retrieve_k10_p50_s"] > 0
    assert {"comparison_query", "inference_query", "temporal_query", "null_query"} <= set(rep["metrics"])
    assert "Tang" in rep["dataset"]["attribution"]
    assert Path(rep["chart"]).is_file()


def test_cli_compare_and_json_output(tmp_path, monkeypatch, capsys):
    """--compare/--json/--out/--chart wiring, with the run itself replaced by a canned report."""
    prev = _report({"hits@1": 0.80, "mrr@10": 0.85, "accuracy": 0.30, "total_p50_s": 1.0, "errors": 0})
    prev_path = tmp_path / "prev.json"
    prev_path.write_text(json.dumps(prev))
    cur = _report({"hits@1": 0.70, "mrr@10": 0.85, "accuracy": 0.30, "total_p50_s": 1.0, "errors": 0})
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps([{"question": "Who?", "answer": "Ann", "question_type": "inference_query"}]))
    seen = {}

    def fake_run_eval(questions, corpus, settings, **kw):
        seen.update(questions=questions, corpus=corpus, top_k=settings.top_k, generator=settings.generator, **kw)
        return json.loads(json.dumps(cur))

    monkeypatch.setattr(runner, "run_eval", fake_run_eval)
    out = tmp_path / "r" / "cur.json"
    rc = main(["eval", "--data-dir", str(tmp_path / "d"), "--questions", str(qfile), "--index-existing", "--k", "4",
               "--generator", "extractive", "--out", str(out), "--compare", str(prev_path), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["compare"]["status"]["overall"]["hits@1"] == "regressed"
    assert printed["compare"]["status"]["overall"]["mrr@10"] == "same"
    assert json.loads(out.read_text())["compare"]["previous"] == str(prev_path)
    assert (tmp_path / "r" / "cur.png").is_file()
    assert seen["top_k"] == 4 and seen["generator"] == "extractive" and seen["index_existing"] and seen["corpus"] == []
    assert len(seen["questions"]) == 1
