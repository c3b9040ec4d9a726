"""Shared fixtures: a fresh Byline data folder per test, the real bundled embedder loaded once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from rag.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_EVAL = REPO.parent / "shared" / "eval" / "multihop-rag"


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own BYLINE_* variables must not leak into tests.
    for k in list(os.environ):
        if k.startswith("BYLINE_"):
            monkeypatch.delenv(k, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at an empty temp data folder; extractive generator (fast, no model)."""
    return Settings(data_dir=tmp_path / "byline", generator="extractive")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder for the joined local model, shared by every test that runs it.

    The model is 1.1 GB: a join per test module once filled a CI disk mid-run.
    """
    cache = tmp_path_factory.mktemp("models")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def embedder():
    from rag.embed import get_embedder

    return get_embedder(Settings(data_dir=Path("/nonexistent-unused")))


def article_groups(store) -> dict[str, set[str]]:
    """Article id -> the syndication group key(s) on its chunks (one each, when all is well)."""
    from rag.schema import ChunkMeta

    out: dict[str, set[str]] = {}
    for _cid, md, _ in store.iter_metadatas():
        m = ChunkMeta.from_metadata(md)
        out.setdefault(m.article_id, set()).add(m.group)
    return out
