"""The bundled GGUF run in-process, as a llama-index chat LLM.

Two runtimes serve the same requests (``handle_chat_completions``, OpenAI-style replies with llama.cpp's timings):
xllamacpp (mainline llama.cpp's server) and ik_llama.cpp (``rag.llama_ik``), whose kernels read prompts faster
on an AVX2 CPU. ``choose_runtime`` picks one. Loading takes seconds and 1.4–2 GB, so one server is kept per process
(keyed by runtime, model, context and threads: a loaded model is a per-process resource like Chroma's own client)
and requests to it are serialised with a lock (2 cores gain nothing from parallel decoding).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    LogProb,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from rag.errors import GeneratorError, ModelError
from rag.gguf import INSTALL_HINT

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, local)"

# One loaded server per (runtime, model, n_ctx, threads) per process, plus a lock that serialises requests:
# several chat sessions share the model, and on 2 cores interleaving them would only slow each down.
_servers: dict[tuple[str, str, int, int], Any] = {}
_servers_lock = threading.Lock()
_generate_lock = threading.Lock()

RUNTIMES = ("auto", "ik", "xllamacpp")


def _xllamacpp_installed() -> bool:
    # find_spec does not import: xllamacpp loads a 30 MB native library we don't need to just decide.
    return importlib.util.find_spec("xllamacpp") is not None


def choose_runtime(requested: str, flags: frozenset[str] | None = None) -> str:
    """The runtime to load: the one asked for, or for "auto" the faster one this machine has.

    xllamacpp built from source for AVX-512 reads prompts fastest (README: "A faster local model"); otherwise
    ik_llama.cpp where its wheel runs (AVX2), else the xllamacpp wheel.
    """
    if requested not in RUNTIMES:
        raise ModelError(f"llm_runtime={requested!r}: choose one of {', '.join(RUNTIMES)}")
    if requested != "auto":
        return requested
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags and _xllamacpp_installed():
        import xllamacpp

        if built_with(xllamacpp.get_system_info(), "AVX512"):
            return "xllamacpp"
    from rag import llama_ik

    return "ik" if llama_ik.available(flags) or not _xllamacpp_installed() else "xllamacpp"


def _load_server(model_path: str, n_ctx: int, n_threads: int, runtime: str = "auto") -> Any:
    runtime = choose_runtime(runtime)
    key = (runtime, model_path, n_ctx, n_threads)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = _LOADERS[runtime](model_path, n_ctx, n_threads)
        return server


def _load_ik(model_path: str, n_ctx: int, n_threads: int) -> Any:
    from rag import llama_ik

    if not llama_ik.available(cpu_flags()):
        raise ModelError("llm_runtime='ik' but ik_llama.cpp cannot run here: install ik-llama-cpp-python "
                         f"({INSTALL_HINT}) on a CPU with AVX2, FMA and F16C, or set BYLINE_LLM_RUNTIME=xllamacpp")
    t0 = time.perf_counter()
    try:
        server = llama_ik.IkServer(model_path, n_ctx, n_threads, cpu_flags())
    except Exception as exc:
        raise ModelError(f"could not load the local model {model_path}: {exc}") from exc
    logger.info("Loaded %s with ik_llama.cpp (n_ctx=%d, threads=%d) in %.1f s", model_path, n_ctx, n_threads,
                time.perf_counter() - t0)
    return server


def _load_xllamacpp(model_path: str, n_ctx: int, n_threads: int) -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ModelError(f"xllamacpp is not installed ({exc}). Install it with: {INSTALL_HINT}") from exc
    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.n_ctx = n_ctx
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    # xllamacpp also serves llama.cpp's HTTP API on a random 127.0.0.1 port, with no key and CORS
    # open to every origin, so any web page could use it. A random key nobody knows shuts that
    # door; in-process calls don't go through HTTP and are unaffected.
    params.api_keys = [secrets.token_hex(16)]
    params.cors_origins = ""
    params.ui = False
    # llama.cpp logs every request to stderr at its default verbosity; keep that for debugging.
    params.verbosity = 3 if logger.isEnabledFor(logging.DEBUG) else 0
    # A build of xllamacpp made on a CPU with AMX (README: "A faster local model") repacks the weights for
    # AMX by default, and that crashes the process (segfault) with this Q4_K_M model; without the repack
    # it runs llama.cpp's AVX-512 kernels. The PyPI wheel is built for AVX2 and keeps its repack.
    info = xllamacpp.get_system_info()
    params.no_extra_bufts = built_with(info, "AMX_INT8")
    t0 = time.perf_counter()
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:
        raise ModelError(f"could not load the local model {model_path}: {exc}") from exc
    logger.info("Loaded %s (n_ctx=%d, threads=%d) in %.1f s", model_path, n_ctx, n_threads, time.perf_counter() - t0)
    hint = faster_build_hint(info, cpu_flags())
    if hint:
        logger.info(hint)
    return server


_LOADERS = {"ik": _load_ik, "xllamacpp": _load_xllamacpp}


def built_with(system_info: str, feature: str) -> bool:
    """Was this llama.cpp built with the CPU feature's kernels (``get_system_info()`` lists ``AMX_INT8 = 1 |``)?"""
    return f"{feature} = 1 |" in system_info


FASTER_BUILD_HINT = ("this CPU has AVX-512 but the installed xllamacpp is built for AVX2 only: built from source here it "
                     "reads prompts faster than either wheel (README: \"A faster local model\")")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them (empty where there is no /proc/cpuinfo)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def faster_build_hint(system_info: str, flags: frozenset[str]) -> str | None:
    """A hint when the CPU could run llama.cpp's AVX-512 kernels that the installed build lacks."""
    return FASTER_BUILD_HINT if "avx512f" in flags and not built_with(system_info, "AVX512") else None


def build_info(requested: str = "auto") -> dict[str, Any]:
    """The runtime "auto" (or ``requested``) loads and what the installed xllamacpp was built for, for
    ``byline status``; {} when no runtime is installed."""
    from rag import llama_ik

    out: dict[str, Any] = {}
    if _xllamacpp_installed():
        import xllamacpp

        info = xllamacpp.get_system_info()
        features = [f for f in ("AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8") if built_with(info, f)]
        out = {"xllamacpp": metadata.version("xllamacpp"), "cpu_features": features,
               "hint": faster_build_hint(info, cpu_flags())}
    if llama_ik.version():
        out["ik_llama_cpp"] = llama_ik.version()
    if out:
        out["runtime"] = choose_runtime(requested)
    return out


def _error_text(reply: Any) -> str | None:
    """The error message in an xllamacpp reply, or None when it is a normal reply."""
    if not isinstance(reply, dict):
        return f"unexpected reply {reply!r:.200}"
    err = reply.get("error")
    if isinstance(err, dict):
        if err.get("type") == "exceed_context_size_error":
            return (
                f"{err.get('message')}. Lower BYLINE_CONTEXT_TOKENS or BYLINE_MAX_NEW_TOKENS, "
                f"or raise BYLINE_LLM_CONTEXT (now {err.get('n_ctx')})"
            )
        return str(err.get("message") or err)
    if err:
        return str(err)
    if "choices" not in reply and ("code" in reply or "message" in reply):
        return str(reply.get("message") or reply)
    return None


def _logprobs(raw: Any) -> list[list[LogProb]] | None:
    """llama.cpp's OpenAI-style log-probabilities as llama-index's: the top alternatives of each reply token."""
    if not isinstance(raw, dict) or not raw.get("content"):
        return None
    return [[LogProb(token=alt.get("token", ""), logprob=float(alt.get("logprob", -1e9)), bytes=list(alt.get("bytes") or []))
             for alt in tok.get("top_logprobs") or [tok]] for tok in raw["content"]]


def _to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.content or ""} for m in messages]


class LocalLlamaCpp(CustomLLM):
    """The bundled Qwen GGUF run in-process by xllamacpp, exposed as a llama-index chat LLM."""

    model_path: str = Field(description="Path of the verified GGUF file.")
    n_ctx: int = Field(default=4096, description="Context window in tokens.")
    n_threads: int = Field(default=2, description="CPU threads.")
    max_tokens: int = Field(default=200, description="Default longest reply in tokens.")
    temperature: float = Field(default=0.0, description="Sampling temperature.")
    runtime: str = Field(default="auto", description="'ik', 'xllamacpp' or 'auto' (rag.llamacpp.choose_runtime).")
    _server: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "byline_local_llamacpp"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.n_ctx,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=LOCAL_MODEL_NAME,
        )

    @property
    def endpoint(self) -> str:
        return f"local model {self.model_path}"

    def _get_server(self) -> Any:
        if self._server is None:
            self._server = _load_server(self.model_path, self.n_ctx, self.n_threads, self.runtime)
        return self._server

    def _request(self, messages: Sequence[ChatMessage], stream: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
        max_tokens = kwargs.get("max_tokens") or self.max_tokens
        temperature = kwargs.get("temperature", self.temperature)
        req: dict[str, Any] = {
            "messages": _to_openai_messages(messages),
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "stream": stream,
        }
        if kwargs.get("stop"):
            req["stop"] = list(kwargs["stop"])
        if kwargs.get("logprobs"):
            req["logprobs"] = True
            req["top_logprobs"] = int(kwargs.get("top_logprobs") or 5)
        return req

    # --- chat ---------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        server = self._get_server()
        req = self._request(messages, stream=False, kwargs=kwargs)
        try:
            with _generate_lock:
                reply = server.handle_chat_completions(req)
        except Exception as exc:  # xllamacpp raises ValueError/RuntimeError for bad requests or a failed decode
            raise GeneratorError(f"The local model failed: {exc}") from exc
        err = _error_text(reply)
        if err:
            raise GeneratorError(f"The local model failed: {err}")
        text = reply["choices"][0]["message"].get("content") or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=reply,
                            logprobs=_logprobs(reply["choices"][0].get("logprobs")))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        server = self._get_server()
        req = self._request(messages, stream=True, kwargs=kwargs)

        def gen() -> ChatResponseGen:
            text = ""
            # closing(): when our consumer stops early, cancel the run now, not at garbage collection.
            with contextlib.closing(_stream_local(server, req)) as deltas:
                for delta in deltas:
                    text += delta
                    yield ChatResponse(
                        message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
                    )

        return gen()

    # --- completion: the model is a chat model, so a prompt is sent as one user message ---------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        resp = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        return CompletionResponse(text=resp.message.content or "", raw=resp.raw)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        chat_gen = self.stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)

        def gen() -> CompletionResponseGen:
            for r in chat_gen:
                yield CompletionResponse(text=r.message.content or "", delta=r.delta)

        return gen()


_DONE = object()


def _stream_local(server: Any, req: dict[str, Any]) -> Iterator[str]:
    """Run a streaming request in a worker thread and yield its text deltas through a queue.

    xllamacpp streams by calling a callback from inside a blocking call, so the call runs in a thread
    and the callback hands deltas over. If the consumer stops early (closes the generator), the next
    callback returns True, which tells llama.cpp to stop, so the lock is released promptly.
    """
    q: queue.Queue[Any] = queue.Queue()
    cancelled = threading.Event()

    def on_chunk(chunk: Any) -> bool:
        if cancelled.is_set():
            return True
        q.put(chunk)
        return False

    def worker() -> None:
        try:
            with _generate_lock:
                if not cancelled.is_set():
                    server.handle_chat_completions(req, on_chunk)
        except BaseException as exc:  # handed to the consumer thread, which raises it
            q.put(exc)
        finally:
            q.put(_DONE)

    thread = threading.Thread(target=worker, name="byline-llm", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise GeneratorError(f"The local model failed: {item}") from item
            err = _error_text(item)
            if err:
                raise GeneratorError(f"The local model failed: {err}")
            for choice in item.get("choices") or ():
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    yield delta
    finally:
        cancelled.set()
