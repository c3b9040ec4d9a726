"""The OpenAI-compatible generator against a stub server on loopback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from rag.config import Settings
from rag.errors import GeneratorError
from rag.generators import create_generator
from rag.generators.chat import stream_chat
from tests.rag.conftest import PASSAGES_PROMPT, _settings, model_of
from tests.stub_openai import StubOpenAI, split_for_stream


@pytest.fixture
def stub() -> Any:
    def reply(messages: list[dict[str, Any]]) -> str:
        user = messages[-1]["content"]
        first = user.split("\n", 1)[0]
        return f"According to the archive, {first} [1]"

    with StubOpenAI(reply=reply) as s:
        yield s


def _openai_settings(tmp_path: Path, url: str, **kw: Any) -> Settings:
    return _settings(tmp_path, generator="openai", openai_base_url=url, openai_model="byline-test", **kw)


def test_split_for_stream_roundtrips() -> None:
    text = "  Two  words,\nthen more. "
    assert "".join(split_for_stream(text)) == text


def test_openai_chat_through_stub(tmp_path: Path, stub: StubOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = model_of(_openai_settings(tmp_path, stub.url, max_new_tokens=77))
    assert llm is not None and llm.metadata.is_chat_model
    resp = llm.chat(PASSAGES_PROMPT)
    assert resp.message.content == "According to the archive, [1] Seoul, 3 March 2025. Hanwha Ocean signed a shipbuilding deal with South Korea's navy worth $2.8 billion for six frigates, the defence ministry said. [1]"
    (req,) = stub.chat_requests
    assert req["model"] == "byline-test"
    assert req["max_tokens"] == 77 and req["temperature"] == 0.0
    assert [m["role"] for m in req["messages"]] == ["system", "user"]
    assert stub.requests[-1]["headers"]["Authorization"] == "Bearer not-needed"


def test_openai_streams_deltas_through_stub(tmp_path: Path, stub: StubOpenAI) -> None:
    llm = model_of(_openai_settings(tmp_path, stub.url, openai_api_key="sk-test"))
    deltas = list(stream_chat(llm, PASSAGES_PROMPT, max_tokens=12))
    assert len(deltas) > 1
    assert "".join(deltas).startswith("According to the archive, [1] Seoul")
    (req,) = stub.chat_requests
    assert req["stream"] is True and req["max_tokens"] == 12
    assert stub.requests[-1]["headers"]["Authorization"] == "Bearer sk-test"


def test_openai_dead_endpoint_is_generator_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = model_of(_openai_settings(tmp_path, url))
    with pytest.raises(GeneratorError) as ei:
        list(stream_chat(llm, PASSAGES_PROMPT))
    assert url in str(ei.value) and "Cannot reach" in str(ei.value)


def test_openai_http_error_is_generator_error(tmp_path: Path) -> None:
    with StubOpenAI(fail_with=(500, "model crashed")) as s:
        llm = model_of(_openai_settings(tmp_path, s.url))
        with pytest.raises(GeneratorError) as ei:
            list(stream_chat(llm, PASSAGES_PROMPT))
    msg = str(ei.value)
    assert s.url in msg and "500" in msg and "model crashed" in msg


def test_openai_yes_probability_reads_the_first_tokens_logprobs(tmp_path: Path) -> None:
    with StubOpenAI(reply="Yes", p_yes=0.7) as stub:
        gen = create_generator(_openai_settings(tmp_path, stub.url))
        assert gen.yes_probability("Reply Yes or No.", "Is it?") == pytest.approx(0.7)
        (req,) = stub.chat_requests
        assert req["logprobs"] is True and req["top_logprobs"] >= 2 and req["max_tokens"] == 1
    with StubOpenAI(reply="Yes") as stub:  # an endpoint that gives no log-probabilities: the reply is read instead
        assert create_generator(_openai_settings(tmp_path, stub.url)).yes_probability("Reply Yes or No.", "Is it?") is None
    with StubOpenAI(fail_with=(400, "logprobs is not supported")) as stub:  # or that rejects the request for them
        assert create_generator(_openai_settings(tmp_path, stub.url)).yes_probability("Reply Yes or No.", "Is it?") is None
    with StubOpenAI(fail_with=(500, "overloaded")) as stub, pytest.raises(GeneratorError, match="500"):
        create_generator(_openai_settings(tmp_path, stub.url)).yes_probability("Reply Yes or No.", "Is it?")
