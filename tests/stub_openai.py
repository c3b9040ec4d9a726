"""A tiny OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, no model, no network.

    with StubOpenAI(reply=lambda messages: "Quoting [1]: " + messages[-1]["content"][:40]) as stub:
        settings = Settings(generator="openai", openai_base_url=stub.url)   # stub.url ends in /v1
        ...
        stub.requests[-1]["body"]["messages"]    # what the client sent

It serves ``POST /v1/chat/completions`` (plain JSON, or SSE chunks when ``"stream": true``) and
``GET /v1/models``. ``reply`` is a string or a callable receiving the request's messages (list of
dicts) — and, if it takes two arguments, the whole request body. Set ``fail_with = (status, message)``
to answer every chat request with an OpenAI-style error instead. ``p_yes``: when a request asks for
``logprobs``, the first token's top alternatives are "Yes" and "No" with these probabilities.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[..., str]


def split_for_stream(text: str) -> list[str]:
    """Split a reply into word-sized deltas that keep their whitespace, so joining them gives ``text``."""
    return re.findall(r"\s*\S+|\s+", text) or [""]


class StubOpenAI:
    """OpenAI-compatible stub server running in a daemon thread; records every request it gets."""

    def __init__(
        self,
        reply: Reply = "OK",
        *,
        model: str = "stub-model",
        fail_with: tuple[int, str] | None = None,
        chunk_delay_s: float = 0.0,
        p_yes: float | None = None,
    ) -> None:
        self.reply = reply
        self.model = model
        self.fail_with = fail_with
        self.chunk_delay_s = chunk_delay_s
        self.p_yes = p_yes
        self.requests: list[dict[str, Any]] = []
        self.chunks_sent = 0  # streamed content chunks written so far (a client that hangs up stops them)
        self.streams_open = 0  # streamed replies still being written
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "StubOpenAI":
        stub = self

        class Handler(_Handler):
            owner = stub

        # Port 0: the OS picks a free port, so parallel test runs never collide.
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "StubOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens (or, after stop(), listened) on."""
        assert self._port is not None, "StubOpenAI was never started"
        return self._port

    @property
    def url(self) -> str:
        """Base URL to give a client (what ``openai_base_url`` expects)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- behaviour --------------------------------------------------------------------------------
    def make_reply(self, body: dict[str, Any]) -> str:
        if not callable(self.reply):
            return self.reply
        try:
            n_params = len(inspect.signature(self.reply).parameters)
        except (TypeError, ValueError):
            n_params = 1
        messages = body.get("messages") or []
        return self.reply(messages, body) if n_params >= 2 else self.reply(messages)

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat-completion requests received, oldest first."""
        with self._lock:
            return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]


class _Handler(BaseHTTPRequestHandler):
    owner: StubOpenAI
    # HTTP/1.0: every response closes its connection, so streamed replies need no chunked encoding.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.owner._record("GET", self.path, dict(self.headers), None)
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.owner.model, "object": "model", "owned_by": "stub"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.owner._record("POST", self.path, dict(self.headers), raw.decode(errors="replace"))
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        self.owner._record("POST", self.path, dict(self.headers), body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if self.owner.fail_with is not None:
            status, message = self.owner.fail_with
            self._send_json(status, {"error": {"message": message, "type": "server_error", "code": status}})
            return
        try:
            text = self.owner.make_reply(body)
        except Exception as exc:  # a broken reply callable shows up as an HTTP 500, like a crashing server
            self._send_json(500, {"error": {"message": f"stub reply failed: {exc}", "type": "server_error"}})
            return
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        model = body.get("model") or self.owner.model
        if body.get("stream"):
            self._stream(cid, created, model, text, body)
        else:
            n_prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
            n_out = len(text.split())
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if body.get("logprobs") and self.owner.p_yes is not None:
                alts = [{"token": w, "logprob": math.log(max(p, 1e-12)), "bytes": list(w.encode())}
                        for w, p in (("Yes", self.owner.p_yes), ("No", 1 - self.owner.p_yes))]
                choice["logprobs"] = {"content": [{**max(alts, key=lambda a: a["logprob"]), "top_logprobs": alts}]}
            self._send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
                },
            )

    def _stream(self, cid: str, created: int, model: str, text: str, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        self.owner.streams_open += 1
        try:
            chunk({"role": "assistant", "content": ""})
            for piece in split_for_stream(text):
                if self.owner.chunk_delay_s:
                    time.sleep(self.owner.chunk_delay_s)
                chunk({"content": piece})
                self.owner.chunks_sent += 1
            chunk({}, finish="stop")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        finally:
            self.owner.streams_open -= 1
