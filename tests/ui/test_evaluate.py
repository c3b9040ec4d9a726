"""`byline eval`: the runner and CLI (end to end on MultiHop-RAG when ../shared/eval/multihop-rag exists)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import ConfigError
from tests.conftest import SHARED_EVAL
from ui import evaluate
from ui.cli import main

HAVE_MULTIHOP = (SHARED_EVAL / "questions.json").is_file() and (SHARED_EVAL / "articles_partial.json").is_file()


def _report(metrics: dict, n: int = 20) -> dict:
    return {"created": "x", "run": {"questions": n}, "settings": {"generator": "extractive", "top_k": 6},
            "dataset": {"multihop_rag": True}, "metrics": {"overall": {"questions": n, **metrics}}}


def test_missing_dataset_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(evaluate, "DEFAULT_DATASET_DIRS", (tmp_path / "nope",))
    with pytest.raises(ConfigError, match="--questions"):
        evaluate.resolve_inputs(None, None)
    assert main(["eval", "--data-dir", str(tmp_path / "d")]) == 1
    assert "no question file" in capsys.readouterr().err


def test_question_file_without_corpus_needs_one(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": "Who?", "answer": "Ann"}) + "\n")
    with pytest.raises(ConfigError, match="--corpus"):
        evaluate.resolve_inputs(str(q), None)
    path, corpus = evaluate.resolve_inputs(str(q), None, need_corpus=False)
    assert path == q.resolve() and corpus == []


def test_compare_marks_regressions_red_and_draws_chart(tmp_path):
    from rich.console import Console

    from rag.evaluation import compare_metrics

    prev = _report({"hits@1": 0.80, "mrr@10": 0.85, "accuracy": 0.30, "total_p50_s": 1.0})
    cur = _report({"hits@1": 0.70, "mrr@10": 0.86, "accuracy": 0.40, "total_p50_s": 1.0})
    cur["compare"] = {"status": {"overall": compare_metrics(cur["metrics"]["overall"], prev["metrics"]["overall"])}}
    console = Console(record=True, width=160, color_system="truecolor", force_terminal=True)
    console.print(evaluate.render_table(cur, prev))
    text = console.export_text(clear=False)
    assert "Hits@1 (article)" in text and "-0.100" in text and "+0.100" in text
    ansi = console.export_text(styles=True)
    assert "\x1b[31m0.700" in ansi  # the regressed cell is red
    assert "\x1b[32m0.400" in ansi  # the improved one green
    png = evaluate.draw_chart(cur, prev, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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

    monkeypatch.setattr(evaluate, "run_eval", fake_run_eval)
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


def test_checkpoint_resumes_an_interrupted_run(tmp_path, monkeypatch, capsys):
    """A real run (fixture corpus, real Chroma and embedder, extractive answers) killed after two
    questions resumes from the checkpoint: the two are not asked again, the rest are, and the
    report equals an uninterrupted run's."""
    from tests.conftest import FIXTURES

    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps([
        {"question": "How much is the Riverton budget for 2024?", "answer": "$412.6 million", "question_type": "inference_query",
         "evidence_list": [{"url": "https://valleycourier.example/news/2024/01/18/riverton-council-approves-budget"}]},
        {"question": "Who did Castlebridge Rovers appoint as head coach?", "answer": "Tomas Lindqvist", "question_type": "inference_query",
         "evidence_list": [{"url": "https://northernsentinel.example/sport/2024/04/22/castlebridge-rovers-appoint-tomas-lindqvist"}]},
        {"question": "How many Aerio X2 speakers did Novalink recall?", "answer": "184,000", "question_type": "inference_query",
         "evidence_list": [{"url": "https://metrowire.example/tech/2024/03/07/novalink-recalls-aerio-x2-speakers"}]},
        {"question": "Who won the 1962 Tour de France?", "answer": "Insufficient information.", "question_type": "null_query",
         "evidence_list": []},
    ]))
    ckpt = tmp_path / "run.jsonl"
    base = ["eval", "--data-dir", str(tmp_path / "d"), "--questions", str(qfile), "--corpus", str(FIXTURES / "corpus"),
            "--generator", "extractive", "--no-chart", "--checkpoint", str(ckpt)]

    asked: list[str] = []
    real_score = evaluate.score_question

    def counting_score(q, *a, **kw):
        asked.append(q.id)
        if len(asked) == 3 and not getattr(counting_score, "resumed", False):
            raise KeyboardInterrupt  # the run dies while the third question is being scored
        return real_score(q, *a, **kw)

    monkeypatch.setattr(evaluate, "score_question", counting_score)
    assert main([*base, "--out", str(tmp_path / "first.json")]) == 130  # the CLI's exit code for Ctrl-C
    lines = ckpt.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["generator"] == "extractive"
    # A torn write at the moment of the kill must not stop the resume.
    with ckpt.open("a") as f:
        f.write('{"id": "half a li')

    counting_score.resumed = True
    asked.clear()
    assert main([*base, "--out", str(tmp_path / "resumed.json")]) == 0
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert len(asked) == 2  # only the two unfinished questions were asked again
    assert resumed["run"]["resumed_questions"] == 2 and resumed["run"]["questions"] == 4
    assert len(ckpt.read_text().splitlines()) == 5

    fresh_args = [a for a in base if a not in ("--checkpoint", str(ckpt))]
    assert main([*fresh_args, "--out", str(tmp_path / "fresh.json")]) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    keys = ("hits@1", "mrr@10", "accuracy", "refusal_recall", "citation_precision")
    assert {k: resumed["metrics"]["overall"].get(k) for k in keys} == {k: fresh["metrics"]["overall"].get(k) for k in keys}
    assert resumed["metrics"]["overall"]["hits@1"] > 0

    # The same file for a different run (another k) is refused with both values shown, not silently mixed.
    capsys.readouterr()
    assert main([*base, "--k", "3", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "'top_k': (6, 3)" in err
