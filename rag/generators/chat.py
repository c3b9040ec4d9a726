"""Generators that ask a chat model (the local GGUF, an OpenAI-compatible endpoint): the shared part.

The prompt is built here from ``rag.prompts``; the model only differs in how its llama-index ``LLM``
is built and checked (``_build_llm`` / ``check`` in each subclass).
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import LLM

from rag.dates import about_time
from rag.errors import BylineError, GeneratorError
from rag.generators.base import GenerationInput
from rag.llamacpp import LocalLlamaCpp
from rag.prompts import ANSWER_USER, PASSAGE_LINE, answer_system
from rag.text import approx_tokens
from rag.types import Passage

if TYPE_CHECKING:
    from rag.config import Settings  # types only: rag.config reads this package's registry

logger = logging.getLogger(__name__)


class ChatModelGenerator:
    """A generator that writes its answer with a chat LLM, loaded on first use."""

    name: ClassVar[str]
    label: ClassVar[str]
    cost: ClassVar[str]
    uses_model: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._llm: LLM | None = None
        self._lock = threading.Lock()

    @classmethod
    def check(cls, settings: Settings) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _build_llm(self) -> LLM:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @property
    def llm(self) -> LLM:
        with self._lock:
            if self._llm is None:
                self._llm = self._build_llm()
            return self._llm

    def messages(self, inp: GenerationInput) -> list[ChatMessage]:
        # Dates only for a question about time, as in the short prompts: each costs the local model ~12 prompt tokens.
        user = ANSWER_USER.format(passages=format_passages(inp.passages, about_time(inp.question)), question=inp.question)
        return [ChatMessage(role=MessageRole.SYSTEM, content=answer_system()), ChatMessage(role=MessageRole.USER, content=user)]

    def prompt_tokens(self, inp: GenerationInput) -> int:
        return approx_tokens("".join(m.content or "" for m in self.messages(inp)))

    def stream(self, inp: GenerationInput) -> Iterator[str]:
        return stream_chat(self.llm, self.messages(inp), max_tokens=self.settings.max_new_tokens)

    def complete(self, system: str, user: str, max_tokens: int) -> str | None:
        return "".join(self.stream_reply(system, user, max_tokens))

    def stream_reply(self, system: str, user: str, max_tokens: int) -> Iterator[str]:
        msgs = [ChatMessage(role=MessageRole.SYSTEM, content=system), ChatMessage(role=MessageRole.USER, content=user)]
        return stream_chat(self.llm, msgs, max_tokens=max_tokens)

    def yes_probability(self, system: str, user: str) -> float | None:
        msgs = [ChatMessage(role=MessageRole.SYSTEM, content=system), ChatMessage(role=MessageRole.USER, content=user)]
        return yes_probability(self.llm, msgs)


def _limited(llm: LLM, max_tokens: int) -> LLM:
    """The LLM with this reply limit: llama-index's OpenAI LLMs let the instance's max_tokens override a
    per-call one, so they get a copy with the new limit (private attrs, i.e. the HTTP client, are shared)."""
    if not isinstance(llm, LocalLlamaCpp) and getattr(llm, "max_tokens", None) not in (None, max_tokens):
        return llm.model_copy(update={"max_tokens": max_tokens})
    return llm


def yes_probability(llm: LLM, messages: list[ChatMessage]) -> float | None:
    """P("Yes") / (P("Yes") + P("No")) over the first reply token's top alternatives; None when the LLM
    returns no log-probabilities or neither word is among them."""
    where = describe_endpoint(llm)
    try:
        resp = _limited(llm, 1).chat(messages, max_tokens=1, logprobs=True, top_logprobs=10)
    except BylineError:
        raise
    except Exception as exc:
        if getattr(exc, "status_code", None) in (400, 422):  # an endpoint that rejects the log-probability fields
            logger.info("%s gives no log-probabilities (%s); reading its reply instead", where, exc)
            return None
        logger.warning("Generation failed at %s", where, exc_info=True)
        raise GeneratorError(_friendly(exc, where)) from exc
    first = resp.logprobs[0] if resp.logprobs else []
    mass = {"yes": 0.0, "no": 0.0}
    for alt in first:
        word = alt.token.strip().lower()
        if word in mass:
            mass[word] += math.exp(alt.logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


def format_passages(passages: "list[Passage] | tuple[Passage, ...]", dated: bool = True) -> str:
    """The numbered passages as the model reads them, each after its title, outlet and (``dated``) date."""
    out = []
    for p in passages:
        label = " — ".join((p.title or "untitled", p.source or "unknown outlet", *([p.date or "date unknown"] if dated else [])))
        out.append(PASSAGE_LINE.format(number=p.number, label=label, text=p.text))
    return "\n\n".join(out)


def describe_endpoint(llm: LLM) -> str:
    """Where the LLM's requests go, for error messages."""
    if isinstance(llm, LocalLlamaCpp):
        return llm.endpoint
    base = getattr(llm, "api_base", None)
    if base:
        return f"{base} (model {getattr(llm, 'model', '?')})"
    return type(llm).__name__


# How an OpenAI client error reads to a person: (exception class name, message; {where} and {exc} filled in).
# Checked in order: subclasses before APIStatusError.
_OPENAI_ERRORS = (
    ("APITimeoutError", "The answer generator at {where} timed out. Is it overloaded? Try again or use BYLINE_GENERATOR=extractive."),
    ("APIConnectionError", "Cannot reach the answer generator at {where}: {cause}. "
                           "Check that the server is running and BYLINE_OPENAI_BASE_URL is right."),
    ("AuthenticationError", "The answer generator at {where} rejected the API key (HTTP 401). Set BYLINE_OPENAI_API_KEY."),
    ("NotFoundError", "The answer generator at {where} answered HTTP 404: {message}. Check the base URL "
                      "(it usually ends in /v1) and BYLINE_OPENAI_MODEL."),
    ("APIStatusError", "The answer generator at {where} answered HTTP {status}: {message}"),
)


def _friendly(exc: BaseException, where: str) -> str:
    """A one-line explanation of an LLM failure that a person can act on."""
    import openai  # comes with llama-index-llms-openai-like

    for name, template in _OPENAI_ERRORS:
        if isinstance(exc, getattr(openai, name)):
            return template.format(where=where, cause=exc.__cause__ or exc, message=getattr(exc, "message", exc),
                                   status=getattr(exc, "status_code", "?"))
    return f"The answer generator at {where} failed: {type(exc).__name__}: {exc}"


def stream_chat(llm: LLM, messages: list[ChatMessage], max_tokens: int | None = None) -> Iterator[str]:
    """Yield the reply's text deltas. Any run-time failure becomes a GeneratorError naming the endpoint."""
    where = describe_endpoint(llm)
    kwargs: dict[str, Any] = {}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
        llm = _limited(llm, max_tokens)
    responses: Iterator[Any] | None = None
    finished = False
    try:
        responses = iter(llm.stream_chat(messages, **kwargs))
        for resp in responses:
            if resp.delta:
                yield resp.delta
        finished = True
    except GeneratorError as exc:
        # Already friendly (local model); add where it happened unless it says so.
        if where in str(exc):
            raise
        raise GeneratorError(f"{exc} ({where})") from exc
    except BylineError:
        raise
    except Exception as exc:
        logger.warning("Generation failed at %s", where, exc_info=True)
        raise GeneratorError(_friendly(exc, where)) from exc
    finally:
        # A caller that stops early (Stop, user left) must stop the generation too: closing the inner
        # generator cancels the local model's run at once. llama-index's OpenAI stream generator keeps
        # the openai Stream in a reference cycle, so its HTTP response (and the endpoint's generation)
        # would live on until a cyclic collection: collect now (measured: 20 more chunks in 2 s without).
        close = getattr(responses, "close", None)
        if close is not None:
            close()
            if not finished and not isinstance(llm, LocalLlamaCpp):
                gc.collect()
