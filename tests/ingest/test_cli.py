"""`byline ingest / list / status / delete` run in-process on a temp data folder."""

from __future__ import annotations

import json

import pytest

from ui.cli import main


@pytest.fixture
def run(tmp_path, capsys):
    data = tmp_path / "byline-data"

    def _run(*args: str) -> tuple[int, str, str]:
        cmd, rest = args[0], list(args[1:])
        code = main([cmd, "--data-dir", str(data), *rest])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


def test_ingest_list_status_delete(run, corpus):
    code, out, _ = run("ingest", str(corpus), "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["added"] == 6 and rep["failed"] == 0 and rep["chunks_embedded"] > 0

    code, out, _ = run("ingest", str(corpus), "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 6 and json.loads(out)["chunks_embedded"] == 0

    code, out, _ = run("list", "--json")
    arts = json.loads(out)
    assert code == 0 and len(arts) == 6
    assert {a["source"] for a in arts} >= {"Valley Courier", "Metro Wire", "Capital Dispatch"}
    assert all(set(a) >= {"id", "title", "source", "date", "url", "n_chunks"} for a in arts)

    code, out, _ = run("status", "--json")
    st = json.loads(out)
    assert code == 0 and st["articles"] == 6 and st["first_date"] == "2024-01-18" and st["last_date"] == "2024-06-12"
    assert st["chunks"] == sum(a["n_chunks"] for a in arts)
    build = st["local_model_build"]
    assert "AVX2" in build["cpu_features"]  # what the local model's llama.cpp was built for
    code, out, _ = run("status")
    shown = {"ik": "Local model: ik_llama.cpp (ik-llama-cpp-python ", "xllamacpp": "Local model: xllamacpp "}
    assert code == 0 and shown[build["runtime"]] in out

    victim = next(a for a in arts if a["source"] == "Harbor Ledger")
    code, out, _ = run("delete", victim["id"])
    assert code == 0 and victim["id"] in out
    code, _, err = run("delete", victim["id"])
    assert code == 1 and "no article with id" in err
    code, out, _ = run("status", "--json")
    assert json.loads(out)["articles"] == 5


def test_ingest_errors_name_the_file(run, corpus, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    code, out, _ = run("ingest", str(corpus / "riverton-budget.md"), str(bad))
    assert code == 2  # partly done
    line = next(ln for ln in out.splitlines() if ln.startswith("error"))
    assert "broken.json" in line and "invalid JSON" in line
    assert "1 added" in out and "1 failed" in out

    code, out, _ = run("ingest", str(tmp_path / "nope.md"), "--json")
    assert code == 1  # nothing done
    rep = json.loads(out)
    assert rep["failed"] == 1 and "nope.md" in rep["errors"][0]["source"] and "no such file" in rep["errors"][0]["reason"]


def test_list_and_status_on_empty_store(run):
    code, out, _ = run("list", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run("status", "--json")
    assert code == 0 and json.loads(out)["articles"] == 0


def test_ingest_reports_each_problem_once_without_library_noise(tmp_path):
    """A real `byline ingest` process: one line per problem, none of trafilatura's own log lines (those need -v)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    tiny = tmp_path / "tiny.html"
    tiny.write_text("x")  # trafilatura logs "ERROR ... empty HTML tree" for this
    feed = tmp_path / "feed.rss"
    feed.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
                    '<item><title>Empty</title><link>https://t.example/a</link></item></channel></rss>')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"}

    def ingest(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ui.cli", *flags, "ingest", "--data-dir", str(tmp_path / "d"), str(tiny), str(feed)],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=300)

    r = ingest()
    assert r.returncode == 1
    assert r.stderr == ""
    assert r.stdout.splitlines()[:2] == [f"error {tiny}: no article text found in the HTML",
                                         f"error {feed}#0: feed entry has no text (no summary or content in the entry)"]
    assert r.stdout.splitlines()[2].startswith("0 added, 0 updated, 0 unchanged, 2 failed")
    assert len(r.stdout.splitlines()) == 3
    verbose = ingest("-v")
    assert "ERROR trafilatura" in verbose.stderr  # the library's own lines are there for whoever asks
