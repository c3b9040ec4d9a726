"""Byline as an MCP server (the official ``mcp`` SDK): tools ``ask``, ``search`` and ``list_articles``, and
one resource per article (``byline://articles/{id}``).

    byline mcp                          # over stdio, for editors and agents that start it themselves
    byline serve                        # also over streamable HTTP at http://127.0.0.1:7860/mcp
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, Resource, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from rag.errors import BylineError, ConfigError
from ui.service import Service, message_text


ARTICLE_URI = "byline://articles/{article_id}"
INSTRUCTIONS = ("Byline answers questions from a news archive with numbered citations to the exact passages. "
                "Use `ask` for an answer with sources, `search` for the passages themselves, `list_articles` for what the archive holds.")


class Source(BaseModel):
    number: int
    title: str
    source: str = Field(description="The outlet.")
    date: str | None
    url: str
    quote: str = Field(description="The passage sentence(s) that support the cited text.")
    article_id: str
    uri: str = Field(description="The article as a resource of this server.")


class AskResult(BaseModel):
    text: str = Field(description="The answer with [n] markers, then a Sources list.")
    refused: bool = Field(description="True when the archive does not hold the answer (the text then says what was searched).")
    sources: list[Source]
    standalone_question: str = Field(description="What was searched (a follow-up rewritten as a full question).")
    filters: dict[str, Any]


class PassageOut(BaseModel):
    rank: int
    article_id: str
    title: str
    source: str
    date: str | None
    url: str
    text: str
    score: float


class SearchResult(BaseModel):
    passages: list[PassageOut]


class ArticleOut(BaseModel):
    id: str
    title: str
    source: str
    date: str | None
    url: str
    chunks: int
    uri: str


class ArticleList(BaseModel):
    articles: list[ArticleOut]


def _filters(outlets: list[str] | None, date_from: str | None, date_to: str | None) -> dict[str, Any] | None:
    from ui.app import build_filters

    try:
        return build_filters(outlets or [], date_from, date_to)
    except ConfigError as exc:
        raise ToolError(str(exc)) from None


def _uri(article_id: str) -> str:
    return ARTICLE_URI.format(article_id=article_id)


class BylineMCP(MCPServer):
    """An MCPServer whose resource list is the archive as it is now (articles come and go)."""

    def __init__(self, service: Service, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    async def list_resources(self) -> list[Resource]:
        arts = await anyio.to_thread.run_sync(self.service.articles)
        listed = await super().list_resources()
        return listed + [Resource(uri=_uri(a["id"]), name=a["id"], title=a["title"] or "(untitled)", mime_type="text/markdown",
                                  description=" — ".join(b for b in (a["source"], a["date"]) if b) or None) for a in arts]


def build_mcp(service: Service) -> BylineMCP:
    mcp = BylineMCP(service, name="byline", title="Byline", instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @mcp.tool(annotations=read_only)
    async def ask(question: Annotated[str, Field(min_length=1, max_length=20_000, description="The question.")],
                  outlets: Annotated[list[str] | None, Field(description="Only these outlets.")] = None,
                  date_from: Annotated[str | None, Field(description="Only articles on or after YYYY-MM-DD.")] = None,
                  date_to: Annotated[str | None, Field(description="Only articles on or before YYYY-MM-DD.")] = None,
                  ) -> Annotated[CallToolResult, AskResult]:
        """Answer a question from the news archive, with numbered citations ([n]) to the passages that support it.
        When the archive does not hold the answer it says so (refused = true) instead of guessing."""
        filters = _filters(outlets, date_from, date_to)
        try:
            answer = await service.answer(question.strip(), filters=filters)
        except BylineError as exc:
            raise ToolError(str(exc)) from None
        sources = [Source(number=c.number, title=c.title or "(untitled)", source=c.source, date=c.date or None, url=c.url,
                          quote=c.quote, article_id=c.article_id, uri=_uri(c.article_id)) for c in answer.citations]
        result = AskResult(text=message_text(answer), refused=answer.refused, sources=sources,
                           standalone_question=answer.standalone_question, filters=answer.filters)
        return CallToolResult(content=[TextContent(text=result.text)], structured_content=result.model_dump(mode="json"))

    @mcp.tool(annotations=read_only)
    async def search(query: Annotated[str, Field(min_length=1, max_length=20_000, description="What to look for.")],
                     k: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 6,
                     outlets: Annotated[list[str] | None, Field(description="Only these outlets.")] = None,
                     date_from: Annotated[str | None, Field(description="Only articles on or after YYYY-MM-DD.")] = None,
                     date_to: Annotated[str | None, Field(description="Only articles on or before YYYY-MM-DD.")] = None,
                     ) -> SearchResult:
        """The archive passages that best match a query, best first, with title, outlet, date and link. No answer is written."""
        filters = _filters(outlets, date_from, date_to)
        try:
            found = await anyio.to_thread.run_sync(lambda: service.engine.search(query.strip(), k=k, filters=filters))
        except BylineError as exc:
            raise ToolError(str(exc)) from None
        return SearchResult(passages=[PassageOut(rank=i, article_id=p.article_id, title=p.title or "(untitled)", source=p.source,
                                                 date=p.date or None, url=p.url, text=p.full_text, score=round(float(p.score), 4))
                                      for i, p in enumerate(found, 1)])

    @mcp.tool(annotations=read_only)
    async def list_articles() -> ArticleList:
        """Every article in the archive, newest first (read one with the resource byline://articles/{id})."""
        try:
            arts = await anyio.to_thread.run_sync(service.articles)
        except BylineError as exc:
            raise ToolError(str(exc)) from None
        return ArticleList(articles=[ArticleOut(id=a["id"], title=a["title"] or "(untitled)", source=a["source"], date=a["date"] or None,
                                                url=a["url"], chunks=a["n_chunks"], uri=_uri(a["id"])) for a in arts])

    @mcp.resource(ARTICLE_URI, name="article", title="An article of the archive", mime_type="text/markdown")
    async def article(article_id: str) -> str:
        """One article: title, outlet, date, link, then its text."""
        found = await anyio.to_thread.run_sync(service.article, article_id)
        if found is None:
            raise ResourceError(f"no article with id {article_id!r}")
        head = [f"# {found['title'] or '(untitled)'}", "", " — ".join(b for b in (found["source"], found["date"]) if b)]
        if found["url"]:
            head.append(found["url"])
        return "\n".join([*head, "", found["text"]])

    return mcp


def run_stdio(service: Service) -> None:
    """Serve MCP over stdin/stdout until the client closes it (stdout carries only the protocol)."""
    build_mcp(service).run("stdio")
