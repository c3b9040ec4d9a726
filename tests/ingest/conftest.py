"""Fixtures for the ingest tests: an Ingestor on a temp store, the synthetic corpus, a loopback web server."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import FIXTURES

CORPUS = FIXTURES / "corpus"


@pytest.fixture
def ingestor(settings, embedder):
    """A real Ingestor (real Chroma in a temp folder, the real bundled embedder loaded once per session)."""
    from ingest.pipeline import Ingestor

    return Ingestor(settings, embedder=embedder)


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CI runner's proxy variables must not capture requests to the loopback test server.
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


Route = tuple[int, str, bytes]  # (status, content type, body)


class LocalWeb:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving fixed routes; '/slow' sleeps before answering."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.slow_seconds = 3.0
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?")[0]
                if path.startswith("/slow"):
                    time.sleep(web.slow_seconds)
                route = web.routes.get(path)
                if callable(route):
                    route = route()
                if route is None:
                    route = (404, "text/html", b"<html><body><h1>Not Found</h1></body></html>")
                status, ctype, body = route
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    w = LocalWeb()
    try:
        yield w
    finally:
        w.close()
