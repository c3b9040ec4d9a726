"""Any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp's server, OpenAI itself)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llama_index.core.llms import LLM

from rag.errors import ConfigError
from rag.generators.chat import ChatModelGenerator

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry

# Seconds an OpenAI-compatible request may take (no setting yet; CPU servers can be slow).
OPENAI_TIMEOUT_S = 120.0


class OpenAICompatibleGenerator(ChatModelGenerator):
    """Configured by ``openai_base_url`` / ``openai_model`` / ``openai_api_key`` (or OPENAI_API_KEY)."""

    name = "openai"
    label = "OpenAI-compatible endpoint"
    cost = "as fast and as good as the configured endpoint"

    def _build_llm(self) -> LLM:
        from llama_index.llms.openai_like import OpenAILike

        s = self.settings
        api_key = s.openai_api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        return OpenAILike(model=s.openai_model, api_base=s.openai_base_url, api_key=api_key, is_chat_model=True,
                          context_window=s.llm_context, max_tokens=s.max_new_tokens, temperature=s.temperature,
                          timeout=OPENAI_TIMEOUT_S, max_retries=1)

    @classmethod
    def check(cls, settings: Settings) -> None:
        if not settings.openai_base_url:
            raise ConfigError(
                "generator='openai' but openai_base_url is not set. Set BYLINE_OPENAI_BASE_URL to the "
                "endpoint's base URL, e.g. http://127.0.0.1:11434/v1 (or use BYLINE_GENERATOR=local / extractive)"
            )
