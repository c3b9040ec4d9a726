"""The Byline chat: a Gradio app on 127.0.0.1 with streamed, cited answers and an Archive tab.

    byline chat                       # http://127.0.0.1:7860
    byline chat --host 0.0.0.0 --auth user:secret

Scripts can call the same question-answering the chat uses through the ``/ask`` endpoint:

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict("Who is Ali al-Daffayi?", api_name="/ask")

Everything shown in the browser that comes from article text or metadata is escaped in
``ui.format``; the handlers here are plain functions so tests can call them directly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import logging
import os
import queue
import re
import shutil
import socket
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterator, Sequence

import rag.config  # noqa: F401  (offline switches, incl. GRADIO_ANALYTICS_ENABLED, before gradio is imported)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from ingest.loaders import MAX_FILE_BYTES, SUPPORTED  # noqa: E402
from rag.config import Settings, check_auth  # noqa: E402
from rag.errors import BylineError, ConfigError  # noqa: E402
from rag.generators import generator_label, generator_names, unavailable  # noqa: E402
from rag.types import Answer, Sources  # noqa: E402
from ui.format import (  # noqa: E402
    answer_chat_message,
    answer_to_chat,
    esc_chat,
    ingest_report_html,
    notice_html,
    placeholder_panel,
    reading_panel,
    safe_url,
    sources_panel,
    stats_html,
)

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = sorted(SUPPORTED)
MAX_UPLOAD = MAX_FILE_BYTES  # bytes: what ingest would reject anyway is not uploaded
ARTICLE_HEADERS = ["id", "date", "outlet", "title", "chunks"]
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

CSS = """
#byline-sources .byline-card { list-style: none; border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 10px 12px; margin: 0 0 10px 0; background: var(--background-fill-secondary); }
#byline-sources ol.byline-cards { padding-left: 0; margin: 0; }
#byline-sources .byline-num { font-weight: 700; color: var(--color-accent); }
#byline-sources .byline-title { font-weight: 600; }
#byline-sources .byline-meta { font-size: 0.85em; opacity: 0.85; margin: 2px 0 6px 0; overflow-wrap: anywhere; }
#byline-sources .byline-quote { margin: 0; padding-left: 8px; border-left: 3px solid var(--border-color-accent);
  font-size: 0.9em; white-space: pre-wrap; overflow-wrap: anywhere; }
#byline-sources mark { background: #fde68a; color: #111; padding: 0 1px; }
#byline-sources .byline-refused { border: 2px solid #d97706; border-radius: 8px; padding: 10px 12px; background: #fffbeb; color: #78350f; }
#byline-sources .byline-refused strong { font-size: 1.1em; }
#byline-sources .byline-searched, #byline-sources .byline-filters, #byline-sources .byline-timing { font-size: 0.85em; opacity: 0.8; margin-bottom: 6px; }
#byline-sources .byline-placeholder { opacity: 0.7; }
.byline-notice.byline-error { color: #b91c1c; } .byline-notice.byline-info { opacity: 0.85; }
sup.byline-marker { font-weight: 600; color: var(--color-accent); }
"""


# --- small pure helpers (tested directly) ------------------------------------------------------------
def is_loopback(host: str) -> bool:
    h = (host or "").strip().strip("[]").lower()
    if h in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_binding(host: str, auth: str | None) -> None:
    """Refuse to serve the archive on a non-loopback address without a password."""
    if not is_loopback(host) and not auth:
        raise ConfigError(
            f"refusing to bind the chat to {host!r} without a password: anyone who can reach that address could read "
            "and change the archive. Use --auth user:password (or BYLINE_AUTH), or keep the default --host 127.0.0.1.")
    if auth is not None:
        check_auth(auth)


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, pw = auth.split(":", 1)
    return user, pw


def validate_date(value: str | None, label: str) -> str | None:
    """'' -> None; 'YYYY-MM-DD' (a real date) -> itself; anything else -> ConfigError with a friendly message."""
    v = (value or "").strip()
    if not v:
        return None
    if not _DATE_RE.fullmatch(v):
        raise ConfigError(f"{label} date {v!r} is not in the form YYYY-MM-DD (for example 2024-03-31).")
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        raise ConfigError(f"{label} date {v!r} is not a real calendar date.") from None
    return v


def build_filters(sources: Sequence[str] | str | None, date_from: str | None, date_to: str | None) -> dict[str, Any] | None:
    """The filters dict for ``rag.ask_stream`` from the UI fields, or ConfigError explaining what is wrong."""
    f = validate_date(date_from, "From")
    t = validate_date(date_to, "To")
    if f and t and f > t:
        raise ConfigError(f"the From date ({f}) is after the To date ({t}); swap them or clear one.")
    if isinstance(sources, str):
        sources = [sources]
    out: dict[str, Any] = {}
    src = [s for s in (sources or []) if s]
    if src:
        out["sources"] = src
    if f:
        out["date_from"] = f
    if t:
        out["date_to"] = t
    return out or None


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_upload_name(name: str, max_len: int = 120) -> str:
    """A file name that cannot leave the upload folder: basename only, no '..', only [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = base.replace("\x00", "")
    base = _UNSAFE_NAME.sub("_", base)
    base = re.sub(r"\.{2,}", ".", base)  # no '..' anywhere
    base = base.strip("._-") or "upload"
    if len(base) > max_len:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:12] if dot else ""
        base = (stem if dot else base)[: max_len - len(ext) - 1].rstrip("._-") + (f".{ext}" if ext else "")
    return base


def save_uploads(paths: Sequence[Any], upload_dir: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Copy uploaded temp files into ``upload_dir`` under sanitised names. Returns (saved, errors)."""
    upload_dir = Path(upload_dir)
    upload_dir.mkdir(parents=True, exist_ok=True)
    root = upload_dir.resolve()
    saved: list[Path] = []
    errors: list[tuple[str, str]] = []
    for p in paths or []:
        src = Path(getattr(p, "name", None) or getattr(p, "path", None) or str(p))
        name = safe_upload_name(getattr(p, "orig_name", None) or src.name)
        dest = (root / name).resolve()
        if dest.parent != root:  # belt and braces: never write outside the upload folder
            errors.append((src.name, "unsafe file name"))
            continue
        try:
            if src.resolve() != dest:
                shutil.copyfile(src, dest)
            saved.append(dest)
        except OSError as exc:
            errors.append((name, f"could not save the upload: {exc.strerror or exc}"))
    return saved, errors


def parse_url_lines(text: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    urls: list[str] = []
    errors: list[tuple[str, str]] = []
    for line in (text or "").splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if safe_url(s):
            urls.append(s)
        else:
            errors.append((s[:200], "not an http(s) URL"))
    return urls, errors


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def friendly(exc: BaseException) -> str:
    if isinstance(exc, BylineError):
        return str(exc)
    log.exception("unexpected error in the chat")
    return f"Something went wrong ({type(exc).__name__}). The details are in the server log."


STOPPED_MESSAGE = "⏹ Stopped. The unfinished answer was discarded: it had not been checked against the sources."


def _pump(engine: Any, question: str, history: list, filters: Any, generator: str | None, out: queue.Queue, cancel: threading.Event) -> None:
    """Run one answer in a worker thread, passing its pieces on; on ``cancel``, close the stream (which stops
    the model at its next token) and drop the rest."""
    stream = engine.ask_stream(question, history=history, filters=filters, generator=generator)
    try:
        for piece in stream:
            if cancel.is_set():
                break
            out.put(("piece", piece))
    except Exception as exc:  # noqa: BLE001 - handed to the chat loop, which shows it
        out.put(("error", exc))
    finally:
        try:
            close = getattr(stream, "close", None)  # a generator: closing it stops the model; a plain iterator has none
            if close is not None:
                close()
        finally:
            out.put(("done", None))  # always, or the chat would wait for ever


# --- the app state and handlers ----------------------------------------------------------------------
class BylineUI:
    """Handlers bound to one Settings. Each is a plain function of plain values (the tests call them)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Any = None
        self._ingestor: Any = None
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}  # browser session -> the stop signal of its current answer

    # ---- engine and generators ----------------------------------------------------------------
    @property
    def engine(self) -> Any:
        """The engine every answer of this chat goes through (built on first use: it loads the embedder)."""
        with self._lock:
            if self._engine is None:
                from rag.engine import Engine

                self._engine = Engine(self.settings)
            return self._engine

    def generator_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the generators that can run here, the configured one first when it is 'auto'."""
        names = [n for n in generator_names(auto=False) if unavailable(n, self.settings) is None]
        if self.settings.generator not in names:
            names.insert(0, self.settings.generator)
        return [(generator_label(n), n) for n in names]

    def generator_for(self, generator: str | None) -> str | None:
        """The generator name to answer with (None: the configured one), or ConfigError when it is not offered."""
        if not generator or generator == self.settings.generator:
            return None
        allowed = {v for _, v in self.generator_choices()}
        if generator not in allowed:
            raise ConfigError(f"unknown generator {generator!r}; choose one of {', '.join(sorted(allowed))}")
        return generator

    # ---- store --------------------------------------------------------------------------------
    def store(self) -> Any:
        from rag.store import Store

        return Store(self.settings)

    def ingestor(self) -> Any:
        with self._lock:
            if self._ingestor is None:
                from ingest.pipeline import Ingestor

                self._ingestor = Ingestor(self.settings)
            return self._ingestor

    def outlets(self) -> list[str]:
        try:
            return [o for o in self.store().stats()["outlets"] if o != "(unknown)"]
        except BylineError as exc:
            log.warning("cannot list outlets: %s", exc)
            return []

    def articles_rows(self) -> list[list[Any]]:
        arts = self.store().articles()
        return [[a.id, a.date or "unknown", a.source or "-", a.title or "(untitled)", a.n_chunks] for a in arts]

    def archive_view(self) -> tuple[list[list[Any]], str, Any]:
        """(articles table rows, stats HTML, outlets dropdown update)."""
        try:
            st = self.store()
            stats = st.stats()
            rows = self.articles_rows()
            outlets = [o for o in stats["outlets"] if o != "(unknown)"]
            return rows, stats_html(stats), gr.update(choices=outlets)
        except BylineError as exc:
            return [], notice_html(str(exc)), gr.update()

    # ---- chat ---------------------------------------------------------------------------------
    def respond(self, question: str, state: dict | None, sources: Sequence[str] | None, date_from: str, date_to: str,
                generator: str, request: gr.Request | None = None) -> Iterator[tuple[list[dict], dict, str, str]]:
        """Stream one turn. Yields (chat messages, state, sources panel HTML, question box value).

        The engine runs in a worker thread, so that this loop can show the elapsed time while the model
        reads, and end the turn at once when Stop is pressed (``stop``): the worker then closes the
        answer stream, which stops the model at its next token. An unfinished answer is never shown as
        an answer: it has not been checked against the sources.
        """
        state = {"display": list((state or {}).get("display", [])), "history": list((state or {}).get("history", []))}
        display, history = state["display"], state["history"]
        q = (question or "").strip()
        if not q:
            yield list(display), state, placeholder_panel("Type a question about the archive."), ""
            return
        display.append({"role": "user", "content": esc_chat(q)})
        try:
            filters = build_filters(sources, date_from, date_to)
            gen = self.generator_for(generator)
        except ConfigError as exc:
            msg = f"Check the filters: {exc}"
            gr.Warning(msg)
            display.append({"role": "assistant", "content": esc_chat(msg)})
            yield list(display), state, notice_html(msg), q  # keep the question so it can be re-sent
            return
        stop = self._new_turn(request)
        display.append({"role": "assistant", "content": "Searching the archive…"})
        yield list(display), state, placeholder_panel("Searching the archive…"), ""
        pieces: queue.Queue = queue.Queue()
        cancel = threading.Event()
        worker = threading.Thread(target=_pump, args=(self.engine, q, list(history), filters, gen, pieces, cancel), daemon=True,
                                  name="byline-answer")
        worker.start()
        t0 = time.monotonic()
        streamed, status = "", "Searching the archive"
        answer: Answer | None = None
        panel = placeholder_panel("Writing the answer…")
        try:
            while True:
                try:
                    kind, piece = pieces.get(timeout=0.25)
                except queue.Empty:
                    kind, piece = "tick", None
                if stop.is_set():
                    cancel.set()
                    display[-1] = {"role": "assistant", "content": STOPPED_MESSAGE}
                    yield list(display), state, panel, q  # the question stays in the box, to edit or re-send
                    return
                if kind == "done":
                    break
                if kind == "error":
                    raise piece
                if kind == "tick":
                    if not streamed:  # still waiting for words: say what is happening and for how long
                        display[-1] = {"role": "assistant", "content": f"{status}… {time.monotonic() - t0:.0f} s"}
                        yield list(display), state, panel, ""
                    continue
                if isinstance(piece, Sources):  # shown while the answer is written
                    panel = reading_panel(piece)
                    n_articles = len({p.article_id for p in piece.passages})
                    status = f"Reading {n_articles} article{'s' if n_articles != 1 else ''}"
                    display[-1] = {"role": "assistant", "content": f"{status}… {time.monotonic() - t0:.0f} s"}
                    yield list(display), state, panel, ""
                elif isinstance(piece, str):
                    if not piece:
                        continue
                    streamed += piece
                    display[-1] = {"role": "assistant", "content": answer_to_chat(streamed)}
                    yield list(display), state, panel, ""
                else:
                    answer = piece
        except Exception as exc:  # noqa: BLE001 - shown as a message, never as a trace
            cancel.set()
            msg = friendly(exc)
            gr.Warning(msg)
            display[-1] = {"role": "assistant", "content": "⚠️ " + esc_chat(msg)}
            yield list(display), state, notice_html(msg), ""
            return
        finally:
            cancel.set()  # the page went away mid-answer (Gradio closes this generator): stop the model too
            self._end_turn(request, stop)
        if answer is None:
            msg = "The answer generator stopped without an answer. Try again."
            display[-1] = {"role": "assistant", "content": "⚠️ " + esc_chat(msg)}
            yield list(display), state, notice_html(msg), ""
            return
        display[-1] = {"role": "assistant", "content": answer_chat_message(answer)}
        history.extend([{"role": "user", "content": q}, {"role": "assistant", "content": answer.text}])
        yield list(display), state, sources_panel(answer), ""

    @staticmethod
    def _session(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "default"

    def _new_turn(self, request: gr.Request | None) -> threading.Event:
        """A fresh stop signal for this browser session's answer (``stop`` sets it)."""
        with self._lock:
            event = self._stops[self._session(request)] = threading.Event()
        return event

    def _end_turn(self, request: gr.Request | None, event: threading.Event) -> None:
        """Forget a finished answer's stop signal, unless a newer turn of the session replaced it."""
        with self._lock:
            if self._stops.get(self._session(request)) is event:
                del self._stops[self._session(request)]

    def stop(self, request: gr.Request | None = None) -> None:
        """Stop the answer being written for this browser session (a no-op when none is)."""
        with self._lock:
            event = self._stops.get(self._session(request))
        if event is not None:
            event.set()

    def clear(self) -> tuple[list, dict, str, str]:
        return [], {"display": [], "history": []}, placeholder_panel("Sources for the answer appear here."), ""

    # ---- the /ask API -------------------------------------------------------------------------
    def ask_api(self, question: str, sources: list[str] | None = None, date_from: str = "", date_to: str = "",
                generator: str = "", history: list[dict] | None = None) -> dict:
        """Answer one question (with optional outlet/date filters and prior turns); returns the Answer as a dict."""
        try:
            filters = build_filters(sources, date_from, date_to)
            gen = self.generator_for(generator or None)
            hist = [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in (history or [])
                    if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
            answer = None
            for piece in self.engine.ask_stream((question or "").strip(), history=hist or None, filters=filters, generator=gen):
                if isinstance(piece, Answer):
                    answer = piece
        except Exception as exc:  # noqa: BLE001
            raise gr.Error(friendly(exc), print_exception=False) from None
        if answer is None:
            raise gr.Error("no answer was produced", print_exception=False)
        d = answer.as_dict()
        d.pop("passages", None)  # large; the citations carry what a caller needs
        return d

    # ---- archive ------------------------------------------------------------------------------
    def ingest(self, files: Sequence[Any] | None, urls_text: str | None, progress: Any = None) -> tuple[str, list[list[Any]], str, Any]:
        """Save uploads (sanitised names), ingest them plus the URLs. Returns (report, table, stats, outlets update)."""
        saved, errors = save_uploads(files or [], self.settings.upload_dir)
        urls, url_errors = parse_url_lines(urls_text)
        errors += url_errors
        inputs = [str(p) for p in saved] + urls
        summary = "Nothing to ingest: choose files or paste URLs (one per line)."
        if inputs:
            total = len(inputs)
            counts = {"article": 0, "chunks": 0}

            def on_progress(event: str, n: int) -> None:
                counts[event] = counts.get(event, 0) + n
                if progress is not None:
                    progress((min(counts["article"], total), total), desc=f"{counts['article']} articles read, {counts['chunks']} passages embedded", unit="inputs")

            try:
                if progress is not None:
                    progress((0, total), desc="Loading the embedder…", unit="inputs")
                report = self.ingestor().ingest(inputs, progress=on_progress)
                summary = report.summary()
                root = str(self.settings.upload_dir.resolve()) + os.sep
                errors += [(e.source.replace(root, ""), e.reason) for e in report.errors]
            except Exception as exc:  # noqa: BLE001
                msg = friendly(exc)
                gr.Warning(msg)
                summary = f"Ingest failed: {msg}"
        rows, stats, outlets = self.archive_view()
        return ingest_report_html(summary, errors, [p.name for p in saved]), rows, stats, outlets

    def delete(self, ids_text: str | None) -> tuple[str, list[list[Any]], str, Any]:
        ids = [i for i in re.split(r"[\s,;]+", ids_text or "") if i]
        if not ids:
            msg = notice_html("Enter an article id (click a row in the table to fill it in).", "info")
        else:
            done, missing = [], []
            try:
                ing = self.ingestor()
                for aid in ids:
                    (done if ing.delete(aid) else missing).append(aid)
                bits = []
                if done:
                    bits.append(f"Deleted {len(done)} article(s): {', '.join(done)}.")
                if missing:
                    bits.append(f"No article with id {', '.join(missing)}.")
                msg = notice_html(" ".join(bits), "info" if done else "error")
            except Exception as exc:  # noqa: BLE001
                msg = notice_html(friendly(exc))
        rows, stats, outlets = self.archive_view()
        return msg, rows, stats, outlets


# --- layout ------------------------------------------------------------------------------------------
def build_app(settings: Settings) -> gr.Blocks:
    ui = BylineUI(settings)
    outlets = ui.outlets()
    gen_choices = ui.generator_choices()
    with gr.Blocks(title="Byline", analytics_enabled=False) as demo:
        demo.byline = ui  # type: ignore[attr-defined]  (tests and launch() reach the handlers through this)
        gr.Markdown("## Byline\nAsk the news archive. Every claim is numbered and tied to the passage it comes from.")
        with gr.Tab("Ask", id="ask"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=360):
                    chatbot = gr.Chatbot(
                        label="Conversation", elem_id="byline-chat", height=520, latex_delimiters=[],
                        feedback_options=None, buttons=["copy"], allow_tags=False, sanitize_html=True,
                        placeholder="Ask about the indexed articles, e.g. *Who is Ali al-Daffayi?*")
                    with gr.Row():
                        question = gr.Textbox(show_label=False, placeholder="Ask a question about the archive…", scale=5,
                                              elem_id="byline-question", max_length=settings.max_question_chars, autofocus=True)
                        ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="byline-ask")
                        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=70, elem_id="byline-stop")
                    clear_btn = gr.Button("New conversation", size="sm", elem_id="byline-clear")
                    with gr.Accordion("Filters and answer generator", open=False, elem_id="byline-filters"):
                        outlet_dd = gr.Dropdown(choices=outlets, value=[], multiselect=True, label="Outlets",
                                                info="Only these outlets (empty = all)", elem_id="byline-outlets")
                        with gr.Row():
                            date_from = gr.Textbox(label="From (YYYY-MM-DD)", placeholder="2024-01-01", elem_id="byline-from")
                            date_to = gr.Textbox(label="To (YYYY-MM-DD)", placeholder="2024-12-31", elem_id="byline-to")
                        generator = gr.Radio(choices=gen_choices, value=settings.generator, label="Answer generator", elem_id="byline-generator")
                with gr.Column(scale=2, min_width=300):
                    sources = gr.HTML(placeholder_panel("Sources for the answer appear here."), elem_id="byline-sources",
                                      js_on_load=None, label="Sources")
        with gr.Tab("Archive", id="archive"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    files = gr.File(file_count="multiple", file_types=UPLOAD_SUFFIXES, label="Upload articles",
                                    elem_id="byline-files")
                    urls = gr.Textbox(lines=3, label="Or paste URLs / RSS or Atom feeds (one per line)",
                                      placeholder="https://example.com/news/story.html", elem_id="byline-urls")
                    ingest_btn = gr.Button("Ingest", variant="primary", elem_id="byline-ingest")
                    report = gr.HTML(elem_id="byline-report", js_on_load=None)
                with gr.Column(scale=1):
                    stats = gr.HTML(elem_id="byline-stats", js_on_load=None)
                    with gr.Row():
                        del_ids = gr.Textbox(label="Article id(s) to delete", placeholder="click a row to fill in", scale=3,
                                             elem_id="byline-del-ids")
                        del_btn = gr.Button("Delete", variant="stop", scale=1, elem_id="byline-delete")
                    del_msg = gr.HTML(js_on_load=None, elem_id="byline-del-msg")
                    refresh_btn = gr.Button("Refresh", size="sm", elem_id="byline-refresh")
            table = gr.Dataframe(headers=ARTICLE_HEADERS, datatype=["str", "str", "str", "str", "number"], interactive=False,
                                 label="Articles (newest first)", elem_id="byline-articles", wrap=True, max_height=420,
                                 column_widths=["17%", "11%", "17%", "47%", "8%"],
                                 show_search="search")
        state = gr.State({"display": [], "history": []})

        chat_io = dict(inputs=[question, state, outlet_dd, date_from, date_to, generator], outputs=[chatbot, state, sources, question])
        question.submit(ui.respond, **chat_io, api_visibility="private", show_progress="minimal")
        ask_btn.click(ui.respond, **chat_io, api_visibility="private", show_progress="minimal")
        # Not queued: it must run while this session's answer is still streaming.
        stop_btn.click(ui.stop, None, None, api_visibility="private", queue=False)
        clear_btn.click(ui.clear, None, [chatbot, state, sources, question], api_visibility="private")
        chatbot.clear(ui.clear, None, [chatbot, state, sources, question], api_visibility="private")  # its trash icon

        def _ingest(f: Any, u: str, progress: gr.Progress = gr.Progress()) -> tuple:
            rep, rows, st, od = ui.ingest(f, u, progress)
            return rep, rows, st, od, None

        ingest_btn.click(_ingest, [files, urls], [report, table, stats, outlet_dd, files], api_visibility="private")
        del_btn.click(ui.delete, [del_ids], [del_msg, table, stats, outlet_dd], api_visibility="private")
        refresh_btn.click(ui.archive_view, None, [table, stats, outlet_dd], api_visibility="private")

        def _pick(evt: gr.SelectData) -> str:
            row = getattr(evt, "row_value", None) or []
            return str(row[0]) if row else ""

        table.select(_pick, None, del_ids, api_visibility="private")
        demo.load(ui.archive_view, None, [table, stats, outlet_dd], api_visibility="private")
        gr.api(ui.ask_api, api_name="ask", api_description="Answer a question from the archive; returns text with [n] markers and citations.")
    return demo


# --- serving -----------------------------------------------------------------------------------------
def launch(settings: Settings, host: str | None = None, port: int | None = None, auth: str | None = None, *,
           block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Serve the chat. Loopback by default; another address only with auth. Never a public share link.

    With ``block=False`` it returns once the server is up (``app.local_url`` holds the address).
    """
    host = host or settings.host or "127.0.0.1"
    port = settings.port if port is None else int(port)
    auth = auth if auth is not None else settings.auth
    check_binding(host, auth)
    if port == 0:
        port = free_port(host)
    demo = build_app(settings)
    # Load the models while the page opens, so the first question waits for nothing.
    threading.Thread(target=lambda: demo.byline.engine.warm_up(), name="byline-warm-up", daemon=True).start()
    demo.queue(default_concurrency_limit=1)
    try:
        _launch(demo, host, port, auth, block, quiet)
    except OSError as exc:  # port taken, address not on this machine
        raise ConfigError(f"cannot serve the chat on {host}:{port}: {exc}. Pick another --port (0 = any free port).") from None
    return demo


def _launch(demo: gr.Blocks, host: str, port: int, auth: str | None, block: bool, quiet: bool) -> None:
    demo.launch(
        server_name=host, server_port=port, auth=parse_auth(auth), share=False, inbrowser=False,
        prevent_thread_lock=not block, show_error=False, quiet=quiet, css=CSS, max_file_size=MAX_UPLOAD,
        ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False, footer_links=["api", "settings"],
        auth_message="Byline: sign in with the user:password given to --auth." if auth else None,
    )


def run_from_cli(args: argparse.Namespace, settings: Settings) -> int:
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None)
    port = settings.port if port is None else port
    auth = getattr(args, "auth", None) or settings.auth
    check_binding(host, auth)  # before anything heavy is loaded
    if port == 0:
        port = free_port(host)
    shown = f"[{host}]" if ":" in host else host
    print(f"Byline chat: http://{shown}:{port}/  (Ctrl+C to stop)" + ("  [password required]" if auth else ""), flush=True)
    launch(settings, host=host, port=port, auth=auth, block=True, quiet=True)
    return 0
