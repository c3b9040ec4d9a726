"""Byline as a service: one ASGI app with an OpenAI-compatible API under ``/v1``, MCP at ``/mcp`` and the
chat at ``/``.

    byline serve                        # http://127.0.0.1:7860/  (API: /v1, docs: /docs, MCP: /mcp)
    byline serve --no-chat --port 8000

``POST /v1/chat/completions`` follows OpenAI's wire format, so OpenAI clients work unmodified; the
citations travel in layers every client can read some of (see the README, "Service API and MCP"):
``[n]`` markers plus a Markdown "Sources" list in the text, ``url_citation`` annotations on the message,
a top-level ``search_results`` list, and the whole Byline ``Answer`` under ``byline``. A refusal is
a normal answer with ``byline.refused = true``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import uuid
from typing import Any, AsyncIterator, Literal

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.loaders import MAX_FILE_BYTES
from ingest.watch import BackgroundWatch
from rag.config import Settings
from rag.errors import BylineError, ConfigError, QuestionError, StoreError
from rag.types import Answer, Sources
from ui.keys import ADMIN, KeyStore
from ui.service import DONE, SOURCES_HEADING, Service, answer_json, message_text, now, search_results, url_annotations

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024  # a question with its conversation; more is a mistake or an attack
MAX_UPLOAD_FILES = 20
MAX_INGEST_BYTES = MAX_UPLOAD_FILES * MAX_FILE_BYTES
KEEPALIVE_SECONDS = 10.0  # an SSE comment while the answer is being written, so proxies keep the stream open


# --- errors in OpenAI's shape -----------------------------------------------------------------------
class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _error_response(err: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def as_api_error(exc: BaseException) -> APIError:
    """An engine or store failure as the error a client gets: what to do about it, never a trace."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, (ConfigError, QuestionError)):
        return APIError(400, str(exc))
    if isinstance(exc, StoreError):
        return APIError(503, str(exc), type_="server_error", code="store_unavailable")
    if isinstance(exc, BylineError):
        return APIError(500, str(exc), type_="server_error")
    log.error("unexpected error in the API", exc_info=exc)
    return APIError(500, f"Something went wrong ({type(exc).__name__}). The details are in the server log.", type_="server_error")


def body_limit(path: str) -> int:
    return MAX_INGEST_BYTES if path == "/v1/ingest" else MAX_JSON_BYTES


class BodyLimit:
    """Refuse request bodies over a size limit under /v1 with 413, counting the bytes as they arrive (a
    missing or false Content-Length does not get around it). The chat and MCP have limits of their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _error_response(_too_large(scope["path"]))(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # an HTTPException passes through FastAPI's body parsing to the handler below
                    raise StarletteHTTPException(413)
            return message

        await self.app(scope, limited, send)


def _too_large(path: str) -> APIError:
    return APIError(413, f"request body too large: the limit for {path} is {body_limit(path) // (1024 * 1024)} MiB",
                    code="body_too_large")


class KeyAuth:
    """API keys on /v1 and /mcp (a server on another address than loopback): 401 without a valid key,
    403 when a read-only key asks to change the archive. The answer says nothing else."""

    def __init__(self, app: ASGIApp, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        guarded = path.startswith("/v1/") or path == "/mcp" or path.startswith("/mcp/")
        if scope["type"] != "http" or not guarded or path == "/v1/health":
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        try:
            key = self.keys.verify(token.strip()) if scheme.lower() == "bearer" else None
        except ConfigError as exc:
            log.error("%s", exc)
            await _error_response(APIError(503, "API keys cannot be checked now; the details are in the server log",
                                           type_="server_error"))(scope, receive, send)
            return
        if key is None:
            err = APIError(401, "a valid API key is required: send it as 'Authorization: Bearer <key>'", code="invalid_api_key")
            await _error_response(err, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        if key.role != ADMIN and _changes_archive(scope["method"], path):
            err = APIError(403, "this API key can ask and search; adding and deleting articles needs an admin key",
                           code="insufficient_permissions")
            await _error_response(err)(scope, receive, send)
            return
        scope.setdefault("state", {})[KEY_STATE] = key  # whose request it is, for RateLimit
        await self.app(scope, receive, send)


def _changes_archive(method: str, path: str) -> bool:
    return (method, path) == ("POST", "/v1/ingest") or (method == "DELETE" and path.startswith("/v1/articles/"))


KEY_STATE = "byline_key"  # the KeyInfo of a request's API key, in the ASGI scope's state (request.state.byline_key)


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute on average, up to ``burst`` at once.

    Used from the server's event loop only, and ``take`` never awaits, so it needs no lock."""

    MAX_CLIENTS = 10_000  # past this, buckets that have refilled are forgotten (a new one starts full anyway)

    def __init__(self, per_minute: int, burst: int = 0) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive (0 means no limiter at all)")
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self.rate = per_minute / 60.0  # tokens a second
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def take(self, client: str, now: float | None = None) -> float:
        """Spend one of ``client``'s requests: 0 when it may go ahead, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if client not in self._buckets and len(self._buckets) >= self.MAX_CLIENTS:
            self._forget_full(now)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        self._buckets = {c: (t, w) for c, (t, w) in self._buckets.items() if t + (now - w) * self.rate < self.burst}


def _rate_counted(method: str, path: str) -> bool:
    """What a rate limit counts: the API but for health and the model list (polled by load balancers and
    clients), and each message an MCP client posts (not its listening stream or its goodbye)."""
    if path.startswith("/v1/"):
        return path not in ("/v1/health", "/v1/models") and not path.startswith("/v1/models/")
    return method == "POST" and path in ("/mcp", "/mcp/")


class RateLimit:
    """Requests per minute per API key, or per client address where no key is needed (loopback, where
    uvicorn takes a local proxy's X-Forwarded-For as the address): beyond it 429 in OpenAI's shape with
    Retry-After, which the OpenAI SDKs wait for before they retry."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _rate_counted(scope["method"], scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        key = (scope.get("state") or {}).get(KEY_STATE)
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.limiter.take(f"key:{key.id}" if key is not None else f"address:{address}")
        if not wait:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        who = f"API key {key.name!r}" if key is not None else f"client address {address}"
        lim = self.limiter
        err = APIError(429, f"rate limit reached for {who} (requests: {lim.per_minute} a minute, {lim.burst} at once); "
                            f"try again in {retry} s", type_="requests", code="rate_limit_exceeded")
        headers = {"Retry-After": str(retry), "x-ratelimit-limit-requests": str(lim.per_minute),
                   "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{retry}s"}
        await _error_response(err, headers)(scope, receive, send)


# --- request bodies ---------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted, not used

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class FilterFields(BaseModel):
    outlets: list[str] = Field(default_factory=list, max_length=100, description="Only these outlets (as `byline list` shows them).")
    date_from: str | None = Field(default=None, description="Only articles on or after this date, YYYY-MM-DD.")
    date_to: str | None = Field(default=None, description="Only articles on or before this date, YYYY-MM-DD.")


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send temperature, top_p, user, ...: accepted and ignored (Byline's answers are verified, not sampled).
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model id from GET /v1/models (one per answer generator).")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200, description="The conversation; the last message is the question.")
    stream: bool = False
    filters: FilterFields | None = Field(default=None, description="Byline's outlet and date filters (an OpenAI client sends them in extra_body).")


class AskRequest(FilterFields):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=20_000)
    model: str | None = Field(default=None, description="A model id from GET /v1/models; default the server's generator.")
    history: list[ChatMessage] = Field(default_factory=list, max_length=200, description="Earlier turns, oldest first.")


class IngestURLs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1, max_length=1000, description="http(s) URLs of articles or RSS/Atom feeds.")


# --- conversions ------------------------------------------------------------------------------------
def _text_of(msg: ChatMessage, index: int) -> str:
    if msg.content is None:
        return ""
    if isinstance(msg.content, str):
        return msg.content
    parts = []
    for part in msg.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise APIError(400, f"messages[{index}].content: only text parts are supported, got a {part.get('type')!r} part",
                           param=f"messages[{index}].content")
        parts.append(part["text"])
    return "\n".join(parts)


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The last user message is the question; earlier user and assistant turns are the history (an
    assistant turn without the Sources list Byline appended to it)."""
    last = messages[-1]
    if last.role != "user":
        raise APIError(400, f"the last message must be the user's question, got role {last.role!r}", param="messages")
    question = _text_of(last, len(messages) - 1).strip()
    if not question:
        raise APIError(400, "the last message (the question) is empty", param="messages")
    history = []
    for i, m in enumerate(messages[:-1]):
        if m.role in ("user", "assistant"):
            text = _text_of(m, i).split(SOURCES_HEADING, 1)[0].strip()
            if text:
                history.append({"role": m.role, "content": text})
    return question, history


def _filters(f: FilterFields | None) -> dict[str, Any] | None:
    if f is None:
        return None
    from ui.app import build_filters

    try:
        return build_filters(f.outlets, f.date_from, f.date_to)
    except ConfigError as exc:
        raise APIError(400, str(exc), param="filters") from None


def _article_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1/articles"


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def completion(answer: Answer, cid: str, created: int, model: str, base: str) -> dict[str, Any]:
    text = message_text(answer, base)
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None,
                                     "annotations": url_annotations(answer, text, base)}}],
            "search_results": search_results(answer.citations, base), "byline": answer_json(answer)}


# --- the app ----------------------------------------------------------------------------------------
def create_app(settings: Settings, *, chat: bool = True, mcp: bool = True, host: str = "127.0.0.1",
               warm_up: bool = True, keys: KeyStore | None = None, auth: str | None = None) -> FastAPI:
    """The whole server: the API under /v1, MCP at /mcp (``mcp``), the Gradio chat at / (``chat``).

    ``keys``: require an API key on /v1 and /mcp; ``auth``: 'user:password' for the chat."""
    blocks = None
    if chat:
        from ui.app import build_app

        blocks = build_app(settings)
        # One engine for the chat and the API: one keyword index, one model queue.
        service = Service(settings, engine_source=lambda: blocks.byline.engine)
    else:
        service = Service(settings)
    mcp_server = None
    if mcp:
        from ui.mcp_server import build_mcp

        mcp_server = build_mcp(service)
        mcp_app = mcp_server.streamable_http_app(streamable_http_path="/mcp", host=host)

    # The watched feeds are polled in the background while the server runs (the chat's Archive tab edits them).
    feeds = blocks.byline.feeds if blocks is not None else BackgroundWatch(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:  # the models load while the first client connects
            if blocks is not None:
                blocks.byline.warm_up(then=service.warm_up)  # the chat's engine first: its page says so meanwhile
            else:
                service.warm_up()
        feeds.start()
        try:
            async with (mcp_server.session_manager.run() if mcp_server is not None else contextlib.nullcontext()):
                yield
        finally:
            feeds.stop()

    app = FastAPI(title="Byline", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None,
                  description="Ask a news archive; answers carry numbered citations. OpenAI-compatible chat completions, "
                              "Byline's own answers, archive management. MCP at /mcp.")
    app.add_middleware(BodyLimit)
    if settings.api_requests_per_minute:
        app.add_middleware(RateLimit, limiter=RateLimiter(settings.api_requests_per_minute, settings.api_burst))
    if keys is not None:
        app.add_middleware(KeyAuth, keys=keys)  # added last: it runs first (and tells RateLimit whose request it is)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            problems.append(f"{loc}: {err.get('msg')}")
        first = next(iter(exc.errors()), {})
        param = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or None
        return _error_response(APIError(400, "invalid request: " + "; ".join(problems), param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if not request.url.path.startswith("/v1"):
            return await http_exception_handler(request, exc)
        if exc.status_code == 413:
            return _error_response(_too_large(request.url.path))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error_response(APIError(exc.status_code, str(exc.detail), code=code))

    # ---- models -------------------------------------------------------------------------------
    def _model(m: Any) -> dict[str, Any]:
        return {"id": m.id, "object": "model", "created": 0, "owned_by": "byline", "description": m.label, "default": m.default}

    @app.get("/v1/health", tags=["service"], summary="Whether the server is up, and ready: its models loaded (never waits for one)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "ready": service.ready}

    @app.get("/v1/models", tags=["openai"], summary="One model per answer generator that can run here")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model(m) for m in await run_in_threadpool(service.models)]}

    @app.get("/v1/models/{model_id}", tags=["openai"], summary="One model")
    async def model(model_id: str) -> dict[str, Any]:
        for m in await run_in_threadpool(service.models):
            if m.id == model_id:
                return _model(m)
        raise APIError(404, f"unknown model {model_id!r}", param="model", code="model_not_found")

    async def _generator(model_id: str | None) -> str:
        try:
            return await run_in_threadpool(service.generator_for_model, model_id)
        except ConfigError as exc:
            raise APIError(404, str(exc), param="model", code="model_not_found") from None

    # ---- chat completions ---------------------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["openai"], summary="OpenAI-compatible chat completion with citations",
              response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        question, history = question_and_history(body.messages)
        filters = _filters(body.filters)
        gen = await _generator(body.model)
        model_id = service.model_id(gen)
        cid, created, base = f"chatcmpl-{uuid.uuid4().hex}", now(), _article_base(request)
        kwargs = dict(history=history or None, filters=filters, generator=gen)
        if not body.stream:
            answer = await _final_answer(service.start(question, **kwargs), request)
            return completion(answer, cid, created, model_id, base)
        return StreamingResponse(_stream(service.start(question, **kwargs), cid, created, model_id, base),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream(run: Any, cid: str, created: int, model_id: str, base: str) -> AsyncIterator[str]:
        """SSE: the sources first (as soon as retrieval is done), then the verified answer, then its data.
        Text is sent once verified: what the model writes before that may still be withdrawn or renumbered."""
        opened = False
        try:
            while True:
                try:
                    piece = await run.get(timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": writing the answer\n\n"
                    continue
                if piece is DONE:
                    break
                if isinstance(piece, Sources) and not opened:
                    opened = True
                    yield _chunk(cid, created, model_id, {"role": "assistant", "content": ""},
                                 search_results=search_results(piece.passages, base))
                elif isinstance(piece, Answer):
                    if not opened:
                        opened = True
                        yield _chunk(cid, created, model_id, {"role": "assistant", "content": ""}, search_results=[])
                    text = message_text(piece, base)
                    yield _chunk(cid, created, model_id, {"content": text, "annotations": url_annotations(piece, text, base)})
                    yield _chunk(cid, created, model_id, {}, "stop", search_results=search_results(piece.citations, base),
                                 byline=answer_json(piece))
            yield "data: [DONE]\n\n"
        except Exception as exc:  # noqa: BLE001 - the stream has begun: the error travels in it, as OpenAI sends one
            yield f"data: {json.dumps(as_api_error(exc).body(), ensure_ascii=False)}\n\n"
        finally:
            run.stop()  # the client went away (this generator is closed): the model stops at its next token

    # ---- Byline's own answer ------------------------------------------------------------------
    @app.post("/v1/ask", tags=["byline"], summary="Answer a question: Byline's Answer as JSON")
    async def ask(body: AskRequest, request: Request) -> dict[str, Any]:
        filters = _filters(body)
        gen = await _generator(body.model)
        question, history = question_and_history([*body.history, ChatMessage(role="user", content=body.question)])
        run = service.start(question, history=history or None, filters=filters, generator=gen)
        return answer_json(await _final_answer(run, request))

    # ---- archive ------------------------------------------------------------------------------
    @app.get("/v1/articles", tags=["archive"], summary="The indexed articles, newest first")
    async def articles() -> dict[str, Any]:
        try:
            arts = await run_in_threadpool(service.articles)
        except Exception as exc:  # noqa: BLE001
            raise as_api_error(exc) from None
        return {"object": "list", "data": arts}

    @app.get("/v1/articles/{article_id}", tags=["archive"], summary="One article: metadata and text")
    async def article(article_id: str) -> dict[str, Any]:
        try:
            found = await run_in_threadpool(service.article, article_id)
        except Exception as exc:  # noqa: BLE001
            raise as_api_error(exc) from None
        if found is None:
            raise APIError(404, f"no article with id {article_id!r}", param="article_id", code="not_found")
        return found

    @app.delete("/v1/articles/{article_id}", tags=["archive"], summary="Remove an article from the archive")
    async def delete_article(article_id: str) -> dict[str, Any]:
        try:
            n = await run_in_threadpool(lambda: service.ingestor().delete(article_id))
        except Exception as exc:  # noqa: BLE001
            raise as_api_error(exc) from None
        if not n:
            raise APIError(404, f"no article with id {article_id!r}", param="article_id", code="not_found")
        return {"id": article_id, "deleted": True, "chunks": n}

    @app.post("/v1/ingest", tags=["archive"], summary="Add articles: JSON {\"urls\": [...]} or multipart files (+ urls fields)",
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": IngestURLs.model_json_schema()},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                      "urls": {"type": "array", "items": {"type": "string"}}}}}}}})
    async def ingest(request: Request) -> dict[str, Any]:
        return await _ingest(service, request)

    if blocks is not None:
        import gradio as gr

        from ui.app import MAX_UPLOAD, parse_auth

        blocks.queue(default_concurrency_limit=1)
        # The chat's style and script travel inside the Blocks (ui.app), so nothing of the page is set here.
        gr.mount_gradio_app(app, blocks, path="/", auth=parse_auth(auth), max_file_size=MAX_UPLOAD, show_error=False, ssr_mode=False,
                            mcp_server=False, pwa=False, enable_monitoring=False, footer_links=["api", "settings"])
    if mcp_server is not None:
        # The MCP route goes before the chat's catch-all mount at "/".
        app.router.routes[0:0] = list(mcp_app.routes)
    return app


async def _final_answer(run: Any, request: Request) -> Answer:
    """Wait for a run's verified Answer; stop it when the client goes away meanwhile."""
    try:
        answer = None
        while True:
            try:
                piece = await run.get(timeout=1.0)
            except TimeoutError:
                if await request.is_disconnected():  # nobody is waiting for this answer any more
                    raise APIError(499, "the client closed the request", code="client_closed_request") from None
                continue
            if piece is DONE:
                break
            if isinstance(piece, Answer):
                answer = piece
    except Exception as exc:  # noqa: BLE001
        raise as_api_error(exc) from None
    finally:
        run.stop()
    if answer is None:
        raise APIError(500, "the answer generator stopped without an answer", type_="server_error")
    return answer


async def _ingest(service: Service, request: Request) -> dict[str, Any]:
    """Ingest URLs and uploaded files; every input that fails is reported with its reason, the rest go in."""
    from ui.app import parse_url_lines, safe_upload_name

    ctype = request.headers.get("content-type", "")
    errors: list[dict[str, str]] = []
    saved: list[str] = []
    urls: list[str] = []
    if ctype.startswith("application/json"):
        try:
            body = IngestURLs.model_validate_json(await request.body())
        except ValueError as exc:
            raise APIError(400, f"invalid request: {exc}") from None
        lines = body.urls
    elif ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=1000)
        lines = [str(v) for v in form.getlist("urls")]
        upload_dir = service.settings.upload_dir
        upload_dir.mkdir(parents=True, exist_ok=True)
        for f in form.getlist("files"):
            if isinstance(f, str):
                errors.append({"source": f[:200], "reason": "not a file: send files as multipart file parts named 'files'"})
                continue
            name = safe_upload_name(f.filename or "upload")
            if (f.size or 0) > MAX_FILE_BYTES:
                errors.append({"source": name, "reason": f"file too large (the limit is {MAX_FILE_BYTES // (1024 * 1024)} MiB)"})
                continue
            dest = upload_dir.resolve() / name
            dest.write_bytes(await f.read())
            saved.append(str(dest))
        await form.close()
    else:
        raise APIError(415, "send JSON {\"urls\": [...]} or multipart/form-data with 'files' and/or 'urls'", code="unsupported_media_type")
    ok_urls, bad = parse_url_lines("\n".join(lines))
    urls = ok_urls
    errors += [{"source": s, "reason": r} for s, r in bad]
    inputs = saved + urls
    if not inputs and not errors:
        raise APIError(400, "nothing to ingest: give 'urls' and/or 'files'")
    from ingest.pipeline import IngestReport

    try:
        report = await run_in_threadpool(lambda: service.ingestor().ingest(inputs)) if inputs else IngestReport()
    except Exception as exc:  # noqa: BLE001
        raise as_api_error(exc) from None
    out = report.as_dict()
    root = str(service.settings.upload_dir.resolve()) + "/"
    out["errors"] = errors + [{"source": e["source"].replace(root, ""), "reason": e["reason"]} for e in out["errors"]]
    out["failed"] = len(out["errors"])
    out["saved"] = [s.replace(root, "") for s in saved]
    out["article_ids"] = list(report.article_ids)
    return out
