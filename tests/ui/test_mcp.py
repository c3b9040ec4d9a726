"""Byline's MCP server through the official ``mcp`` SDK client: over streamable HTTP at ``/mcp`` of a real
server on loopback, and over stdio from a ``byline mcp`` subprocess; extractive generator, the sample article."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import REPO
from tests.ui.test_api import QUESTION, UNANSWERABLE, Server, make_archive
from ui.format import MARKER_RE

TOOLS = {"ask", "search", "list_articles"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = make_archive(tmp_path_factory.mktemp("mcp-http") / "byline")
    with Server(settings, chat=False) as srv:
        yield srv


async def exercise(client: Client) -> dict[str, Any]:
    """List and call every tool and read an article resource; what came back, for the asserts."""
    tools = await client.list_tools()
    answer = await client.call_tool("ask", {"question": QUESTION, "outlets": ["Breitbart"]})
    refused = await client.call_tool("ask", {"question": UNANSWERABLE})
    bad = await client.call_tool("ask", {"question": QUESTION, "date_from": "2024-02-30"})
    found = await client.call_tool("search", {"query": "air defense South Korea", "k": 2})
    listed = await client.call_tool("list_articles", {})
    resources = await client.list_resources()
    uri = listed.structured_content["articles"][0]["uri"]
    article = await client.read_resource(uri)
    return {"tools": tools, "answer": answer, "refused": refused, "bad": bad, "found": found, "listed": listed,
            "resources": resources, "uri": uri, "article": article}


def check(got: dict[str, Any]) -> None:
    tools = {t.name: t for t in got["tools"].tools}
    assert set(tools) == TOOLS
    assert tools["ask"].annotations.read_only_hint and "outlets" in tools["ask"].input_schema["properties"]

    answer = got["answer"]
    assert not answer.is_error
    text = answer.content[0].text
    assert MARKER_RE.search(text) and "**Sources**" in text and "Breitbart" in text
    data = answer.structured_content
    assert data["refused"] is False and data["filters"]["sources"] == ["Breitbart"]
    assert data["sources"][0]["source"] == "Breitbart" and "Daffayi" in data["sources"][0]["quote"]
    assert data["sources"][0]["uri"] == f"byline://articles/{data['sources'][0]['article_id']}"

    assert got["refused"].structured_content["refused"] is True and got["refused"].structured_content["sources"] == []
    assert got["bad"].is_error and "2024-02-30" in got["bad"].content[0].text  # a clear message, not a crash

    passages = got["found"].structured_content["passages"]
    assert 1 <= len(passages) <= 2 and passages[0]["rank"] == 1 and passages[0]["source"] == "Breitbart"
    assert "South Korea" in " ".join(p["text"] for p in passages)

    (art,) = got["listed"].structured_content["articles"]
    assert art["source"] == "Breitbart" and got["uri"] == f"byline://articles/{art['id']}"
    assert got["uri"] in {str(r.uri) for r in got["resources"].resources}
    body = got["article"].contents[0].text
    assert body.startswith("# Iran-Backed Militias") and "Ali al-Daffayi" in body


def test_mcp_over_streamable_http(server: Server) -> None:
    async def run() -> dict[str, Any]:
        async with Client(f"{server.url}/mcp") as client:
            return await exercise(client)

    check(asyncio.run(run()))


def test_mcp_over_stdio(tmp_path: Path) -> None:
    data = tmp_path / "byline"
    make_archive(data)
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli", "mcp", "--data-dir", str(data), "--generator", "extractive"],
                                   cwd=str(REPO), env={k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")})

    async def run() -> dict[str, Any]:
        async with Client(params) as client:
            return await exercise(client)

    check(asyncio.run(run()))
