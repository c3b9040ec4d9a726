"""The eval runner: a real run on the fixture corpus, interrupted and resumed from its checkpoint.

The run is started through ``byline eval`` (``ui.cli.main``), which passes the runner its corpus
indexer (``ingest.corpus.index_corpus``) and turns Ctrl-C into exit code 130.
"""

from __future__ import annotations

import json

from rag.evaluation import runner
from ui.cli import main


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
    real_score = runner.score_question

    def counting_score(q, *a, **kw):
        asked.append(q.id)
        if len(asked) == 3 and not getattr(counting_score, "resumed", False):
            raise KeyboardInterrupt  # the run dies while the third question is being scored
        return real_score(q, *a, **kw)

    monkeypatch.setattr(runner, "score_question", counting_score)
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
