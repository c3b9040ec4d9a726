"""The import rules of pyproject.toml's [tool.importlinter]: layers ui -> ingest -> rag, and no import cycles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.is_file(), f"{exe} not found: pip install -e '.[test]' (import-linter)"
    done = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"lint-imports failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
