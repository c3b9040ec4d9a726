"""What the HTTP API (``ui.api``) and the MCP server (``ui.mcp_server``) share: one engine, the queue in
front of the single local model, the model names clients see, and an answer's citations in the shapes
other clients read (a Markdown "Sources" list, OpenAI ``url_citation`` annotations, Perplexity-style
``search_results``).

The engine runs in worker threads (``Service.start``), so that an event loop serving many clients
never waits on retrieval or a model, and a client that goes away can stop its answer: the worker then
closes the engine's generator, which stops the model at its next token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

from rag.config import Settings
from rag.errors import BylineError, ConfigError
from rag.generators import AUTO, generator_label, generator_names, resolve_generator_name, unavailable
from rag.types import Answer, Citation, Passage, Sources
from ui.format import MARKER_RE, safe_url


# The model id an OpenAI client picks for each generator; 'quotes' says what the extractive one does.
MODEL_IDS = {"local": "byline-local", "extractive": "byline-quotes", "openai": "byline-openai"}
# Generators whose model runs in this process: one answer at a time, the others queue.
QUEUED_GENERATORS = frozenset({"local"})
SNIPPET_CHARS = 300
SOURCES_HEADING = "\n\n**Sources**\n\n"  # starts the list appended to an answer (and is cut off a turn sent back as history)


DONE = object()  # what Run.get returns after the last piece


class Run:
    """One answer being written in a worker thread, read from an event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self.cancel = threading.Event()

    def emit(self, item: tuple[str, Any]) -> None:  # called from the worker thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the server stopped (its loop is closed): nobody is reading
            self.cancel.set()

    async def get(self, timeout: float | None = None) -> Any:
        """The next piece (Sources, text, Answer), DONE at the end; raises the engine's error, or
        TimeoutError when nothing came within ``timeout`` (the answer goes on)."""
        kind, piece = await asyncio.wait_for(self._queue.get(), timeout)
        if kind == "error":
            raise piece
        return DONE if kind == "done" else piece

    def stop(self) -> None:
        self.cancel.set()


def pump(start: Callable[[], Any], emit: Callable[[tuple[str, Any]], None], cancel: threading.Event, *,
         after_piece: Callable[[], bool] | None = None) -> None:
    """Run one answer in a worker thread: pass each piece of the stream ``start()`` returns to ``emit`` as
    ("piece", p), an exception as ("error", exc), and end with ("done", None), always (or the reader would wait
    for ever). On ``cancel`` the stream is closed, which stops the model at its next token. ``after_piece``
    runs after each piece (the API joins the model queue there); False ends the answer."""
    stream = None
    try:
        stream = start()
        for piece in stream:
            if cancel.is_set():
                break
            emit(("piece", piece))
            if after_piece is not None and not after_piece():
                break
    except Exception as exc:  # noqa: BLE001 - handed to the reader, which reports it
        emit(("error", exc))
    finally:
        try:
            close = getattr(stream, "close", None)  # a generator: closing it stops the model; a plain iterator has none
            if close is not None:
                close()
        finally:
            emit(("done", None))


@dataclass(frozen=True)
class ModelInfo:
    id: str
    generator: str
    label: str
    default: bool


class Service:
    """One engine for every request of a server (HTTP and MCP), built on first use."""

    def __init__(self, settings: Settings, engine_source: Callable[[], Any] | None = None) -> None:
        """``engine_source``: where the engine comes from when another part of the server owns one (the chat's)."""
        self.settings = settings
        self._engine_source = engine_source
        self._engine: Any = None
        self._ingestor: Any = None
        self._models: list[ModelInfo] | None = None
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # the local model writes one answer at a time

    @property
    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                if self._engine_source is not None:
                    self._engine = self._engine_source()
                else:
                    from rag.engine import Engine

                    self._engine = Engine(self.settings)
            return self._engine

    def ingestor(self) -> Any:
        engine = self.engine  # outside the lock, which it takes
        with self._lock:
            if self._ingestor is None:
                from ingest.pipeline import Ingestor

                self._ingestor = Ingestor(self.settings, store=engine.store, embedder=engine.embedder)
            return self._ingestor

    @property
    def ready(self) -> bool:
        """Whether the engine has warmed up and the models are listed: a question now waits for no loading. Never waits itself."""
        engine = self._engine
        return self._models is not None and engine is not None and engine.warm

    def warm_up(self) -> None:
        """Load the models in the background, so the first request waits for nothing (an engine already warm, as the
        chat's is when the chat warmed it, is not warmed again)."""
        def run() -> None:
            self.engine.warm_up()
            self.models()

        threading.Thread(target=run, name="byline-warm-up", daemon=True).start()

    # ---- models --------------------------------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        """One model per generator that can run here, the configured one first (found once: checking the
        local model's packages takes seconds, and what is installed does not change while serving)."""
        with self._lock:
            if self._models is None:
                default = resolve_generator_name(self.settings)
                names = [n for n in generator_names(auto=False) if n == default or unavailable(n, self.settings) is None]
                names.sort(key=lambda n: n != default)
                self._models = [ModelInfo(self.model_id(n), n, generator_label(n), n == default) for n in names]
            return list(self._models)

    def generator_for_model(self, model: str | None) -> str:
        """The generator a model id stands for, or ConfigError naming the ones on offer."""
        offered = {m.id: m.generator for m in self.models()}
        if not model or model in ("byline", AUTO):
            return resolve_generator_name(self.settings)
        if model not in offered:
            raise ConfigError(f"unknown model {model!r}; this server offers {', '.join(offered)}")
        return offered[model]

    def model_id(self, generator: str) -> str:
        return MODEL_IDS.get(generator, f"byline-{generator}")

    # ---- answering -----------------------------------------------------------------------------
    def _pump(self, question: str, history: list[dict] | None, filters: Any, generator: str | None,
              emit: Any, cancel: threading.Event) -> None:
        """One answer in a worker thread (``pump``), holding the model queue from the first piece on."""
        locked = False
        queued = False

        def start() -> Any:
            nonlocal queued
            name = generator or resolve_generator_name(self.settings)
            queued = name in QUEUED_GENERATORS
            return self.engine.ask_stream(question, history=history, filters=filters, generator=name)

        def join_queue() -> bool:
            # The sources come from retrieval alone, so a client sees them at once; only what follows needs
            # the model, and that is where the queue is joined (the model itself serialises any earlier call).
            nonlocal locked
            while queued and not locked and not (locked := self._model_lock.acquire(timeout=0.2)):
                if cancel.is_set():
                    return False
            return True

        try:
            pump(start, emit, cancel, after_piece=join_queue)
        finally:
            if locked:
                self._model_lock.release()

    def start(self, question: str, *, history: list[dict] | None = None, filters: Any = None,
              generator: str | None = None) -> "Run":
        """Start one answer in a worker thread; read it with ``Run.get`` and stop it with ``Run.stop``."""
        run = Run(asyncio.get_running_loop())
        threading.Thread(target=self._pump, args=(question, history, filters, generator, run.emit, run.cancel), daemon=True,
                         name="byline-api-answer").start()
        return run

    async def answer_stream(self, question: str, **kwargs: Any) -> AsyncIterator[Sources | str | Answer]:
        """``Engine.ask_stream`` for an event loop; closing this iterator (or cancelling its reader) stops the answer."""
        run = self.start(question, **kwargs)
        try:
            while (piece := await run.get()) is not DONE:
                yield piece
        finally:
            run.stop()

    async def answer(self, question: str, **kwargs: Any) -> Answer:
        """The final, verified Answer (``answer_stream``'s last piece)."""
        final = None
        async for piece in self.answer_stream(question, **kwargs):
            if isinstance(piece, Answer):
                final = piece
        if final is None:
            raise BylineError("the answer generator stopped without an answer")
        return final

    # ---- archive -------------------------------------------------------------------------------
    def articles(self) -> list[dict[str, Any]]:
        return [a.__dict__ for a in self.engine.store.articles()]

    def article(self, article_id: str) -> dict[str, Any] | None:
        """An article's metadata and text (joined back from its chunks), or None when there is none."""
        from rag.schema import ChunkMeta

        chunks = []
        for _cid, md, doc in self.engine.store.iter_metadatas(where={"article_id": article_id}, documents=True):
            chunks.append((ChunkMeta.from_metadata(md), doc or ""))
        if not chunks:
            return None
        chunks.sort(key=lambda c: (c[0].start, c[0].chunk_index))
        text = ""
        for meta, doc in chunks:  # neighbouring chunks overlap: each adds what lies past the text so far
            if meta.start >= len(text):  # a gap between chunks is whitespace of the original (offsets stay aligned)
                text += "\n" * (meta.start - len(text)) + doc
            elif meta.end > len(text):
                text += doc[len(text) - meta.start:]
        m = chunks[0][0]
        return {"id": article_id, "title": m.title, "source": m.source, "author": m.author, "date": m.date, "url": m.url,
                "origin": m.origin, "n_chunks": len(chunks), "text": text.strip()}


# --- citations in other clients' shapes --------------------------------------------------------------
def _md_text(value: str) -> str:
    """Article metadata made inert inside a Markdown line (no links, emphasis or HTML from a title)."""
    return "".join(f"\\{ch}" if ch in "\\`*_{}[]()#+!|<>" else ch for ch in " ".join(str(value or "").split()))


def citation_url(c: Citation | Passage, article_base: str | None) -> str:
    """The citation's own http(s) link, else (when the server knows its address) the article in this API."""
    url = safe_url(c.url)
    if url:
        return url
    return f"{article_base.rstrip('/')}/{c.article_id}" if article_base else ""


def sources_markdown(answer: Answer, article_base: str | None = None) -> str:
    """The "Sources" list appended to an answer's text: any Markdown client shows it."""
    if not answer.citations:
        return ""
    lines = []
    for c in sorted(answer.citations, key=lambda c: c.number):
        url = citation_url(c, article_base)
        title = _md_text(c.title or "(untitled)")
        head = f"[{title}](<{url}>)" if url else title
        meta = " — ".join(_md_text(b) for b in (c.source or "unknown outlet", c.date or "date unknown"))
        lines.append(f"{c.number}. {head} — {meta}")
    return SOURCES_HEADING + "\n".join(lines)


def message_text(answer: Answer, article_base: str | None = None) -> str:
    return answer.text.strip() + sources_markdown(answer, article_base)


def url_annotations(answer: Answer, text: str, article_base: str | None = None) -> list[dict[str, Any]]:
    """OpenAI ``url_citation`` annotations: one per ``[n]`` marker in the answer part of ``text`` (not in
    its Sources list), its span being the marker itself."""
    by_number = {c.number: c for c in answer.citations}
    body_end = len(answer.text.strip())
    out = []
    for m in MARKER_RE.finditer(text, 0, body_end):
        c = by_number.get(int(m.group(1)))
        url = citation_url(c, article_base) if c is not None else ""
        if not url:
            continue
        out.append({"type": "url_citation", "url_citation": {"start_index": m.start(), "end_index": m.end(), "url": url,
                                                             "title": c.title or "(untitled)"}})
    return out


def _snippet(text: str) -> str:
    s = " ".join((text or "").split())
    return s if len(s) <= SNIPPET_CHARS else s[: SNIPPET_CHARS - 1].rstrip() + "…"


def search_results(items: Sequence[Citation | Passage], article_base: str | None = None) -> list[dict[str, Any]]:
    """Perplexity-style ``search_results``: title, url, date, snippet (the quote when cited), source."""
    return [{"title": i.title or "(untitled)", "url": citation_url(i, article_base), "date": i.date or None,
             "snippet": _snippet(i.quote if isinstance(i, Citation) else i.text), "source": i.source or ""} for i in items]


def answer_json(answer: Answer) -> dict[str, Any]:
    """The whole Answer as JSON (the ``byline`` field, ``/v1/ask``)."""
    return answer.as_dict()


def now() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp())
