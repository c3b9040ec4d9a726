"""Stopping a streamed answer stops the generation behind it (the chat's Stop button relies on this)."""

from __future__ import annotations

import time
from pathlib import Path

from llama_index.core.llms import ChatMessage

from rag.config import Settings
from rag.generators import create_generator
from rag.generators.chat import stream_chat
from tests.stub_openai import StubOpenAI


def test_closing_an_openai_stream_closes_the_http_response(tmp_path: Path) -> None:
    with StubOpenAI(reply=" ".join(["word"] * 80), chunk_delay_s=0.05) as stub:
        s = Settings(data_dir=tmp_path / "b", generator="openai", openai_base_url=stub.url)
        it = stream_chat(create_generator(s).llm, [ChatMessage(role="user", content="hi")])
        assert next(it) and next(it)
        it.close()
        at_close = stub.chunks_sent
        time.sleep(1.0)  # 20 more chunks would have been written by now
        assert stub.chunks_sent - at_close <= 2, stub.chunks_sent - at_close
