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
import json
import logging
import os
import queue
import secrets
import re
import shutil
import socket
import tempfile
import threading
import time
import unicodedata
import uuid
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import rag.config  # noqa: F401  (offline switches, incl. GRADIO_ANALYTICS_ENABLED, before gradio is imported)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from ingest.loaders import MAX_FILE_BYTES, SUPPORTED  # noqa: E402
from ingest.watch import BackgroundWatch  # noqa: E402
from rag.config import Settings, check_auth  # noqa: E402
from rag.errors import BylineError, ConfigError  # noqa: E402
from rag.generators import AUTO, generator_label, generator_names, unavailable  # noqa: E402
from rag.schema import where_articles  # noqa: E402
from rag.types import Answer, Sources  # noqa: E402
from ui.service import pump  # noqa: E402
from ui.format import (  # noqa: E402
    answer_chat_message,
    answer_markdown,
    answer_sources,
    filter_chips_html,
    esc_chat,
    every_text,
    feeds_html,
    ingest_report_html,
    notice_html,
    placeholder_panel,
    reading_panel,
    safe_url,
    plural,
    sources_panel,
    stats_html,
    store_html,
    writing_message,
)

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = sorted(SUPPORTED)
MAX_UPLOAD = MAX_FILE_BYTES  # bytes: what ingest would reject anyway is not uploaded
ARTICLE_HEADERS = ["id", "date", "outlet", "title", "passages"]
# What each generator costs, in the words of someone choosing one (names not listed keep their own label).
GENERATOR_LABELS = {"local": "Best answer (local model, slower)", "extractive": "Instant quotes (no model)",
                    "openai": "OpenAI-compatible endpoint"}
_BROWSER_ID = re.compile(r"[0-9a-f]{32}")
_PLAIN_TITLE = re.compile(r"[\w ,.'’‘“”:;?!%$€£/-]{1,160}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

CSS = """
:root:root, .gradio-container { --font: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --font-mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.gradio-container h1, .gradio-container h2, .gradio-container h3, .gradio-container strong, .gradio-container b { font-family: var(--font); }
#byline-sources .byline-card { list-style: none; border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 10px 12px; margin: 0 0 10px 0; background: var(--background-fill-secondary); transition: box-shadow .3s, border-color .3s; }
#byline-sources ol.byline-cards { padding-left: 0; margin: 0; }
#byline-sources .byline-num { font-weight: 700; color: var(--color-accent); }
#byline-sources .byline-title { font-weight: 600; }
#byline-sources a.byline-title { color: inherit; text-decoration: underline; text-decoration-color: var(--border-color-accent); }
#byline-sources .byline-meta { font-size: 0.85em; opacity: 0.85; margin: 2px 0 6px 0; overflow-wrap: anywhere; }
#byline-sources .byline-quote { margin: 0; padding-left: 8px; border-left: 3px solid var(--border-color-accent);
  font-size: 0.9em; white-space: pre-line; overflow-wrap: anywhere; }
#byline-sources mark { background: #fde68a; color: #111; padding: 0 1px; }
#byline-sources .byline-turn:not(.byline-current) { display: none; }
#byline-sources .byline-flash { border-color: var(--color-accent); box-shadow: 0 0 0 3px var(--color-accent-soft, #fde68a); }
#byline-sources .byline-refused { border: 2px solid #d97706; border-radius: 8px; padding: 10px 12px; margin-bottom: 10px; background: #fffbeb; color: #78350f; }
#byline-sources .byline-refused p { margin: 4px 0 0 0; }
#byline-sources .byline-searched, #byline-sources .byline-filters, #byline-sources .byline-timing { font-size: 0.85em; opacity: 0.8; margin-bottom: 6px; }
#byline-sources .byline-placeholder { opacity: 0.7; }
.byline-notice { font-size: 0.9em; padding: 4px 2px; }
.byline-nowrap { white-space: nowrap; }
.byline-notice.byline-error { color: #b91c1c; } .byline-notice.byline-info { opacity: 0.85; }
#byline-active-filters .byline-fchips { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 13px; }
#byline-active-filters .byline-fchip { padding: 2px 10px; border-radius: 999px; background: var(--color-accent-soft, #ffedd5);
  border: 1px solid var(--color-accent); }
#byline-active-row { align-items: center; }
#byline-active-row:not(:has(.byline-fchip)), #byline-question-note:not(:has(.byline-notice)),
#byline-date-note:not(:has(.byline-notice)), #byline-del-msg:not(:has(.byline-notice)),
#byline-warming:not(:has(.byline-notice)) { display: none; }  /* empty notes take no room */
#byline-chat sup.byline-marker { font-weight: 600; color: var(--color-accent); position: relative; }
#byline-chat .byline-chip { cursor: pointer; border-radius: 4px; padding: 0 1px; outline-offset: 1px; }
#byline-chat .byline-chip:hover, #byline-chat .byline-chip:focus { background: var(--color-accent-soft, #e0e7ff); }
/* The preview must paint over the sources column: the chat is lifted above it, and Gradio's translucent message
   text (a stacking context of its own, which also dimmed the preview) is made opaque. */
#byline-chat { z-index: 5; }
#byline-chat .md.chatbot { opacity: 1; }
#byline-chat .byline-preview { display: none; position: absolute; z-index: 20; top: 1.4em; left: -4px; width: max-content; max-width: min(320px, 70vw);
  padding: 8px 10px; border-radius: 8px; border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); box-shadow: 0 4px 14px rgba(0,0,0,.18); font-size: 13px; font-weight: 400; line-height: 1.35;
  white-space: normal; text-align: left; cursor: default; }
#byline-chat .byline-chip:hover .byline-preview, #byline-chat .byline-chip:focus .byline-preview { display: block; }
#byline-chat .byline-pv-title { display: block; font-weight: 600; }
#byline-chat .byline-pv-meta { display: block; opacity: .75; margin: 2px 0 4px 0; }
#byline-chat .byline-pv-quote { display: block; font-style: italic; }
#byline-chat .byline-foot { margin-top: 6px; }
#byline-chat .byline-progress { margin-top: 4px; font-size: 0.85em; color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
#byline-chat .byline-strip { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 4px 0; }
#byline-chat .byline-src { display: inline-flex; gap: 4px; align-items: baseline; max-width: 100%; padding: 2px 8px; border-radius: 999px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); font-size: 12px; line-height: 1.5;
  color: inherit; text-decoration: none; overflow: hidden; white-space: nowrap; }
#byline-chat a.byline-src:hover { border-color: var(--color-accent); }
#byline-chat .byline-src-n { font-weight: 700; color: var(--color-accent); }
#byline-chat .byline-src-meta { opacity: .75; }
#byline-chat .byline-src-title { overflow: hidden; text-overflow: ellipsis; max-width: 22em; }
#byline-chat .byline-src.byline-flash { border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent-soft, #fde68a); }
#byline-chat .byline-show, #byline-chat .byline-copy { font-size: 12px; padding: 1px 8px; border-radius: 6px; cursor: pointer;
  border: 1px solid transparent; background: none; color: var(--body-text-color-subdued); }
#byline-chat .byline-show { font-weight: 600; padding-left: 0; }
#byline-chat .byline-copy { border-color: var(--border-color-primary); color: var(--body-text-color); }
#byline-chat .byline-show:hover { border-color: var(--border-color-primary); }
#byline-chat .byline-copy:hover { border-color: var(--color-accent); }
#byline-chat .byline-actions { display: flex; gap: 4px; }
#byline-chat .byline-copytext, #byline-chat .byline-copymd { display: none; }
#byline-articles { --font-mono: var(--font); }
#byline-articles td, #byline-articles th { word-break: normal; overflow-wrap: normal; }
@media (max-width: 640px) {
  #byline-chat { height: 58vh !important; }
  #byline-ask-row { flex-wrap: wrap; }
  #byline-ask-row > :has(#byline-question) { flex: 1 1 100% !important; min-width: 100% !important; }
  #byline-head h2 { font-size: 1.2em; margin: 0; }
}
"""

# The page's behaviour, installed once by the sources panel (a component's own script, so it also runs
# when the Blocks are mounted in another app): marker chips scroll to their card (on click, Enter or
# Space), the "Sources" button under an answer brings its cards back to the panel, Copy buttons put the
# answer's plain text or Markdown on the clipboard, and each message's accessible label is its plain text
# (the chat would otherwise label a message with its markup).
PAGE_JS = """
if (!window.__bylineInstalled) {
  window.__bylineInstalled = true;
  const style = document.createElement('style');
  style.id = 'byline-style';
  style.textContent = %s;
  document.head.appendChild(style);
  const num = (el, key) => { const m = new RegExp('byline-' + key + '-(\\\\d+)').exec(el.className || ''); return m ? m[1] : null; };
  const flash = (el) => { el.classList.remove('byline-flash'); void el.offsetWidth; el.classList.add('byline-flash');
    setTimeout(() => el.classList.remove('byline-flash'), 2500); };
  const showTurn = (t) => {
    const sec = document.getElementById('byline-turn-' + t);
    if (!sec) return null;
    sec.parentElement.querySelectorAll('.byline-turn').forEach(s => s.classList.toggle('byline-current', s === sec));
    return sec;
  };
  const goTo = (chip) => {
    const t = num(chip, 't'), n = num(chip, 'n');
    showTurn(t);
    const card = document.getElementById('byline-cite-' + t + '-' + n) || document.querySelector('#byline-chat .byline-src.byline-t-' + t + '.byline-n-' + n);
    if (!card) return;
    card.scrollIntoView({behavior: 'smooth', block: 'center'});
    flash(card);
  };
  const copy = async (btn) => {
    const box = btn.closest('.byline-foot');
    const src = box && box.querySelector(btn.classList.contains('byline-fmt-md') ? '.byline-copymd' : '.byline-copytext');
    if (!src) return;
    const text = src.textContent, label = btn.textContent;
    try { await navigator.clipboard.writeText(text); }
    catch (e) { const ta = document.createElement('textarea'); ta.value = text; document.body.appendChild(ta); ta.select();
      document.execCommand('copy'); ta.remove(); }
    btn.textContent = 'Copied'; setTimeout(() => { btn.textContent = label; }, 1500);
  };
  document.addEventListener('click', (e) => {
    const el = e.target.closest ? e.target : e.target.parentElement;
    if (!el) return;
    const chip = el.closest('#byline-chat .byline-chip');
    if (chip) { e.preventDefault(); chip.blur(); goTo(chip); return; }
    const show = el.closest('#byline-chat .byline-show');
    if (show) { const sec = showTurn(num(show, 't')); if (sec) { sec.scrollIntoView({behavior: 'smooth', block: 'start'}); } return; }
    const btn = el.closest('#byline-chat .byline-copy');
    if (btn) { e.preventDefault(); copy(btn); }
  }, true);
  // The preview is placed in the window (fixed), so the chat's scroll box never cuts it off.
  const place = (e) => {
    const chip = e.target.closest && e.target.closest('#byline-chat .byline-chip');
    const pv = chip && chip.querySelector('.byline-preview');
    if (!pv) return;
    const r = chip.getBoundingClientRect();
    pv.style.position = 'fixed';
    pv.style.left = Math.max(8, Math.min(r.left, innerWidth - Math.min(320, innerWidth * 0.7) - 16)) + 'px';
    const below = r.bottom + 6, above = r.top - 6;
    if (innerHeight - below > 180 || above < 180) { pv.style.top = below + 'px'; pv.style.bottom = 'auto'; }
    else { pv.style.top = 'auto'; pv.style.bottom = (innerHeight - above) + 'px'; }
  };
  document.addEventListener('mouseover', place, true);
  document.addEventListener('focusin', place, true);
  document.addEventListener('keydown', (e) => {
    const chip = e.target.closest && e.target.closest('#byline-chat .byline-chip');
    if (chip && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); goTo(chip); }
  }, true);
  const relabel = () => {
    document.querySelectorAll('#byline-chat [data-testid="bot"][aria-label], #byline-chat [data-testid="user"][aria-label]').forEach((m) => {
      const who = m.getAttribute('data-testid') === 'bot' ? 'Byline' : 'You';
      const plain = m.querySelector('.byline-copytext');
      const body = m.querySelector('.message-content') || m;
      const label = who + ': ' + (plain ? plain.textContent : body.innerText).trim();
      if (m.getAttribute('aria-label') !== label) m.setAttribute('aria-label', label);
    });
  };
  let pending = false;  // at most once a frame, however fast the answer streams
  const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; relabel(); }); } };
  new MutationObserver(schedule).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                         attributes: true, attributeFilter: ['aria-label']});
  relabel();
}
""" % json.dumps(CSS)


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


# What a browser session's conversation keeps: the bubbles, the turns sent back to the engine, each
# answer's part of the sources panel, and each turn as Markdown (for the export).
STATE_KEYS = ("display", "history", "sections", "exported")
EMPTY_PANEL = "Sources for the answer appear here."
STOPPED_MESSAGE = "⏹ Stopped. The unfinished answer was discarded: it had not been checked against the sources."
# The stages an answer goes through, as the chat names them (derived from what the engine's stream yields).
SEARCHING, WRITING, CHECKING = "Searching the archive", "Writing the answer", "Checking citations"
LOADING = "Loading the models"  # a question asked while the start-up warm-up runs waits for it
WARMING_NOTE = "Loading the models… A question asked now waits for them; this note goes when they are ready."
TICK_S = 0.25  # how often the chat looks at the clock and the Stop signal while it waits for the engine
# The stream is silent between the model's last words and the verified answer (verification runs then): once it
# has been silent this long after some text, the model is taken to be done and the citations being checked.
CHECKING_AFTER_S = 1.0


# --- the app state and handlers ----------------------------------------------------------------------
class BylineUI:
    """Handlers bound to one Settings. Each is a plain function of plain values (the tests call them)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Any = None
        self._ingestor: Any = None
        self._lock = threading.Lock()
        # browser session -> the stop signal of its current answer, and the queue its chat loop waits on
        self._stops: dict[str, tuple[threading.Event, queue.Queue]] = {}
        self._trash: dict[str, list[dict[str, list]]] = {}  # browser session -> what its latest delete removed
        self._export_dir: Path | None = None
        self.feeds = BackgroundWatch(settings)  # polls the watched feeds once launch() or the server starts it
        self._warming = threading.Event()  # set while the start-up warm-up runs

    # ---- engine and generators ----------------------------------------------------------------
    @property
    def engine(self) -> Any:
        """The engine every answer of this chat goes through (built on first use: it loads the embedder)."""
        with self._lock:
            if self._engine is None:
                from rag.engine import Engine

                self._engine = Engine(self.settings)
            return self._engine

    def warm_up(self, then: Callable[[], Any] | None = None) -> None:
        """Build the engine and load its models in the background (then run ``then``), so the first question waits
        for nothing; until they are loaded the page says so."""
        self._warming.set()

        def run() -> None:
            try:
                self.engine.warm_up()
            finally:
                self._warming.clear()
            if then is not None:
                then()

        threading.Thread(target=run, name="byline-warm-up", daemon=True).start()

    @property
    def warming(self) -> bool:
        return self._warming.is_set()

    def warm_note(self) -> tuple[str, Any]:
        """A note while the start-up warm-up runs; then none, and the timer that asks stops."""
        if self.warming:
            return notice_html(WARMING_NOTE, "info"), gr.Timer(active=True)
        return "", gr.Timer(active=False)

    def generator_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the generators that can run here, labelled by what they cost ('auto' is not a
        choice: it is one of these). An OpenAI-compatible endpoint is offered only when one is configured."""
        names = [n for n in generator_names(auto=False) if unavailable(n, self.settings) is None]
        return [(self._generator_label(n), n) for n in names]

    def _generator_label(self, name: str) -> str:
        if name == "openai":
            return f"{GENERATOR_LABELS[name]}: {self.settings.openai_model}" if self.settings.openai_model else GENERATOR_LABELS[name]
        return GENERATOR_LABELS.get(name) or generator_label(name)

    def default_generator(self) -> str:
        """The choice selected when the page opens: the configured generator ('auto' resolved)."""
        names = [v for _, v in self.generator_choices()]
        if self.settings.generator in names:
            return self.settings.generator
        return next((n for n in generator_names(auto=False) if n in names), names[0] if names else "extractive")

    def generator_for(self, generator: str | None) -> str | None:
        """The generator name to answer with (None: the configured one), or ConfigError when it is not offered."""
        if not generator or generator in (self.settings.generator, AUTO):
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

        The engine runs in a worker thread, so that this loop can show, under the answer, its stage (read
        from the stream: searching until ``Sources``, reading until the first words, writing while they
        come, checking from the silence after them until the ``Answer``) and the time so far, and end the
        turn at once when Stop is pressed (``stop``): the worker then closes the answer stream, which stops
        the model at its next token. An unfinished answer is never shown as an answer: it has not been
        checked against the sources.
        """
        state = {k: list((state or {}).get(k, [])) for k in STATE_KEYS}
        display, history, sections = state["display"], state["history"], state["sections"]
        q = (question or "").strip()
        try:
            filters = build_filters(sources, date_from, date_to)
            gen = self.generator_for(generator)
        except ConfigError:
            q = ""  # ``check_inputs`` says what is wrong, beside the field; the conversation stays as it was
        if not q:
            yield list(display), state, gr.skip(), question or ""  # the question stays, to fix and re-send
            return
        display.append({"role": "user", "content": esc_chat(q)})
        pieces: queue.Queue = queue.Queue()
        stop = self._new_turn(request, pieces)
        t0 = time.monotonic()
        stage = LOADING if self.warming else SEARCHING
        panel = placeholder_panel(f"{stage}…")
        display.append({"role": "assistant", "content": writing_message("", stage, 0)})
        shown = (display[-1]["content"], panel)
        yield list(display), state, panel, ""
        cancel = threading.Event()
        past = list(history)
        # The engine is taken in the worker: while the start-up warm-up builds it, this loop still shows the clock and Stop works.
        worker = threading.Thread(target=pump, args=(lambda: self.engine.ask_stream(q, history=past, filters=filters, generator=gen),
                                                     pieces.put, cancel), daemon=True, name="byline-answer")
        worker.start()
        streamed, last_words = "", t0
        answer: Answer | None = None
        try:
            while True:
                try:
                    kind, piece = pieces.get(timeout=TICK_S)
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
                now = time.monotonic()
                if isinstance(piece, Sources):  # retrieval is done: shown while the answer is written
                    panel = reading_panel(piece)
                    stage = f"Reading {plural(len(piece.passages), 'passage')}"
                elif isinstance(piece, str):
                    streamed += piece
                    if piece:
                        stage, last_words = WRITING, now
                elif piece is not None:
                    answer = piece
                    continue
                elif streamed and now - last_words >= CHECKING_AFTER_S:
                    stage = CHECKING
                content = writing_message(streamed, stage, now - t0)
                if (content, panel) != shown:  # only what changed: the clock alone changes it once a second
                    shown = (content, panel)
                    display[-1] = {"role": "assistant", "content": content}
                    yield list(display), state, panel, ""
        except Exception as exc:  # noqa: BLE001 - shown once, in the answer's place, never as a trace
            cancel.set()
            display[-1] = {"role": "assistant", "content": "⚠️ " + esc_chat(friendly(exc))}
            yield list(display), state, self._panel(sections), ""
            return
        finally:
            cancel.set()  # the page went away mid-answer (Gradio closes this generator): stop the model too
            self._end_turn(request, stop)
        if answer is None:
            msg = "The answer generator stopped without an answer. Try again."
            display[-1] = {"role": "assistant", "content": "⚠️ " + esc_chat(msg)}
            yield list(display), state, self._panel(sections), ""
            return
        turn = len(sections)  # each answer's chips and cards carry its turn, so earlier answers keep their sources
        display[-1] = {"role": "assistant", "content": answer_chat_message(answer, turn)}
        history.extend([{"role": "user", "content": q}, {"role": "assistant", "content": answer.text}])
        panel = sources_panel(answer, turn, earlier=sections)
        sections.append(answer_sources(answer, turn))
        state["exported"].append(f"## {q}\n\n{answer_markdown(answer)}")
        yield list(display), state, panel, ""

    @staticmethod
    def _panel(sections: Sequence[str]) -> str:
        """The sources panel showing the latest answer's sources (or the empty state)."""
        if not sections:
            return placeholder_panel(EMPTY_PANEL)
        latest = sections[-1].replace('class="byline-turn"', 'class="byline-turn byline-current"', 1)
        return '<div class="byline-sources">' + "".join(sections[:-1]) + latest + "</div>"

    @staticmethod
    def active_filters(sources: Sequence[str] | None, date_from: str | None, date_to: str | None) -> tuple[str, Any]:
        """The filters in force, as chips beside the question box (they are easy to forget once folded away),
        and whether "Clear filters" is shown."""
        chips = [str(s) for s in (sources or []) if s]
        if (date_from or "").strip():
            chips.append(f"from {date_from.strip()}")
        if (date_to or "").strip():
            chips.append(f"to {date_to.strip()}")
        return filter_chips_html(chips), gr.update(visible=bool(chips))

    def example_questions(self, limit: int = 3) -> list[dict[str, str]]:
        """Clickable starting points for an empty chat, from the archive's newest headlines."""
        try:
            # Only plain headlines: the examples box renders its text as Markdown, which article text must never be.
            arts = [a for a in self.store().articles() if a.title and "_" not in a.title and _PLAIN_TITLE.fullmatch(a.title)][:limit]
        except BylineError as exc:
            log.warning("cannot list articles for the examples: %s", exc)
            return []
        return [{"text": f"What does the archive say about “{a.title}”?", "display_text": a.title} for a in arts]

    def check_inputs(self, question: str | None, date_from: str | None, date_to: str | None) -> tuple[str, str, Any]:
        """What is wrong with a question about to be sent, each beside its field: (note under the question
        box, note under the dates, filters fold update: opened to show a date problem)."""
        q_note = "" if (question or "").strip() else notice_html("Type a question about the archive first.", "info")
        try:
            build_filters(None, date_from, date_to)
        except ConfigError as exc:
            return q_note, notice_html(str(exc)[0].upper() + str(exc)[1:]), gr.update(open=True)
        return q_note, "", gr.update()

    @staticmethod
    def _session(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "default"

    def _new_turn(self, request: gr.Request | None, pieces: queue.Queue) -> threading.Event:
        """A fresh stop signal for this browser session's answer (``stop`` sets it and wakes ``pieces``' reader)."""
        with self._lock:
            event = threading.Event()
            self._stops[self._session(request)] = (event, pieces)
        return event

    def _end_turn(self, request: gr.Request | None, event: threading.Event) -> None:
        """Forget a finished answer's stop signal, unless a newer turn of the session replaced it."""
        with self._lock:
            if self._stops.get(self._session(request), (None,))[0] is event:
                del self._stops[self._session(request)]

    def stop(self, request: gr.Request | None = None) -> None:
        """Stop the answer being written for this browser session (a no-op when none is)."""
        with self._lock:
            turn = self._stops.get(self._session(request))
        if turn is not None:
            event, pieces = turn
            event.set()
            pieces.put(("stop", None))  # wakes the chat loop now rather than at its next look at the clock

    def clear(self) -> tuple[list, dict, str, str]:
        return [], {k: [] for k in STATE_KEYS}, placeholder_panel(EMPTY_PANEL), ""

    # ---- conversations kept across page reloads ----------------------------------------------
    def _conversation_file(self, browser_id: Any) -> Path | None:
        """Where this browser's conversation is kept (None for an id this server did not hand out)."""
        if not isinstance(browser_id, str) or not _BROWSER_ID.fullmatch(browser_id):
            return None
        return Path(self.settings.data_dir) / "conversations" / f"{browser_id}.json"

    def browser_secret(self) -> str | None:
        """The key the browser's id is sealed with, kept with the conversations so that they outlive a server
        restart (None: a fresh one each start, when it cannot be kept)."""
        path = Path(self.settings.data_dir) / "conversations" / ".browser-secret"
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_hex(32), encoding="ascii")
                path.chmod(0o600)
            return path.read_text(encoding="ascii").strip() or None
        except OSError as exc:
            log.warning("cannot keep the conversations' key in %s: %s", path, exc)
            return None

    def restore(self, browser_id: Any) -> tuple[list, dict, str, str]:
        """On page load: this browser's kept conversation (a new browser gets an id). Returns (chat messages,
        state, sources panel, browser id)."""
        path = self._conversation_file(browser_id)
        if path is None:
            browser_id, data = uuid.uuid4().hex, {}
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError) as exc:  # a damaged file costs the conversation, never the page
                log.warning("cannot read the kept conversation %s: %s", path, exc)
                data = {}
        state = {k: list(data.get(k) or []) if isinstance(data, dict) else [] for k in STATE_KEYS}
        return list(state["display"]), state, self._panel(state["sections"]), browser_id

    def save_conversation(self, browser_id: Any, state: dict | None) -> None:
        """Keep this browser's conversation for the next page load; an empty one is deleted."""
        path = self._conversation_file(browser_id)
        if path is None:
            return
        if not (state or {}).get("display"):
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: list(state.get(k) or []) for k in STATE_KEYS}), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)  # whole or not at all

    def export(self, state: dict | None) -> str | None:
        """The conversation as a Markdown file (each question, its answer with linked markers, its sources);
        None when nothing has been answered yet."""
        turns = list((state or {}).get("exported", []))
        if not turns:
            return None
        with self._lock:
            if self._export_dir is None:  # private (0700) and under the temp folder, where Gradio serves files from
                self._export_dir = Path(tempfile.mkdtemp(prefix="byline-export-"))
                # A conversation is private: its exports go when the chat does, not linger in /tmp.
                weakref.finalize(self, shutil.rmtree, str(self._export_dir), True)
        path = self._export_dir / f"byline-conversation-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
        path.write_text("# Byline conversation\n\n" + "\n\n".join(turns) + "\n", encoding="utf-8")
        return str(path)

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

    # ---- watched feeds ------------------------------------------------------------------------
    def feeds_view(self) -> str:
        try:
            return feeds_html(self.feeds.status(), self.feeds.blocked)
        except BylineError as exc:
            return notice_html(friendly(exc))

    def watch_feed(self, url_text: str | None) -> tuple[str, str, str]:
        """Watch the feed(s) pasted (one per line). Returns (message, feeds table, the URL box's new text)."""
        urls, errors = parse_url_lines(url_text)
        if not urls and not errors:
            return notice_html("Paste a feed's URL (http:// or https://) first.", "info"), self.feeds_view(), ""
        added = []
        for url in urls:
            try:
                if self.feeds.add(url):
                    added.append(url)
                else:
                    errors.append((url, "already watched"))
            except BylineError as exc:
                errors.append((url, friendly(exc)))
        msg = f"Watching {plural(len(added), 'new feed')}: each is polled now, then every {every_text(self.settings.watch_interval)}." \
            if added else "No feed added."
        return ingest_report_html(msg, errors), self.feeds_view(), ""

    def unwatch_feed(self, url_text: str | None) -> tuple[str, str, str]:
        """Stop watching the feed(s) pasted; their articles stay. Returns (message, feeds table, the URL box's new text)."""
        urls, errors = parse_url_lines(url_text)
        removed = 0
        for url in urls:
            try:
                if self.feeds.remove(url):
                    removed += 1
                else:
                    errors.append((url, "not watched"))
            except BylineError as exc:
                errors.append((url, friendly(exc)))
        msg = f"Stopped watching {plural(removed, 'feed')} (its articles stay in the archive)." if removed else "No feed removed."
        return ingest_report_html(msg, errors), self.feeds_view(), ""

    def poll_feeds(self) -> tuple[str, str]:
        try:
            self.feeds.poll_now()
        except BylineError as exc:
            return notice_html(friendly(exc)), self.feeds_view()
        return notice_html("Polling every watched feed now.", "info"), self.feeds_view()

    @staticmethod
    def _ids(ids_text: str | None) -> list[str]:
        return list(dict.fromkeys(i for i in re.split(r"[\s,;]+", ids_text or "") if i))

    def ask_delete(self, ids_text: str | None) -> tuple[str, bool]:
        """The question asked before deleting: (message, whether there is anything to confirm)."""
        ids = self._ids(ids_text)
        if not ids:
            return notice_html("Enter an article id (click a row in the table to fill it in).", "info"), False
        try:
            known = {a.id: a for a in self.store().articles()}
        except BylineError as exc:
            return notice_html(str(exc)), False
        found = [known[i] for i in ids if i in known]
        missing = [i for i in ids if i not in known]
        bits = []
        if found:
            names = "; ".join(f"“{a.title or '(untitled)'}” ({plural(int(a.n_chunks), 'passage')})" for a in found)
            bits.append(f"Delete {plural(len(found), 'article')} from the archive: {names}? You can undo it afterwards.")
        if missing:
            bits.append(f"No article with id {', '.join(missing)}.")
        return notice_html(" ".join(bits), "info" if found else "error"), bool(found)

    def delete(self, ids_text: str | None, request: gr.Request | None = None) -> tuple[str, list[list[Any]], str, Any]:
        """Delete articles by id, keeping their stored passages (text, metadata and vectors) so ``undo_delete``
        can put them back exactly. Returns (message, table, stats, outlets update)."""
        ids = self._ids(ids_text)
        if not ids:
            msg = notice_html("Enter an article id (click a row in the table to fill it in).", "info")
        else:
            done, missing, kept = [], [], []
            try:
                store = self.ingestor().store
                titles = {a.id: a.title or "(untitled)" for a in store.articles()}
                for aid in ids:
                    got = store.collection.get(where=where_articles([aid]), include=["embeddings", "documents", "metadatas"])
                    if not got["ids"]:
                        missing.append(aid)
                        continue
                    kept.append({k: list(got[k]) for k in ("ids", "embeddings", "documents", "metadatas")})
                    self.ingestor().delete(aid)
                    done.append(titles.get(aid, aid))
                bits = []
                if done:
                    bits.append(f"Deleted {plural(len(done), 'article')}: {'; '.join(f'“{t}”' for t in done)}.")
                if missing:
                    bits.append(f"No article with id {', '.join(missing)}.")
                msg = notice_html(" ".join(bits), "info" if done else "error")
            except Exception as exc:  # noqa: BLE001
                msg = notice_html(friendly(exc))
            finally:
                with self._lock:
                    self._trash[self._session(request)] = kept  # only the latest delete can be undone
        rows, stats, outlets = self.archive_view()
        return msg, rows, stats, outlets

    def can_undo(self, request: gr.Request | None = None) -> bool:
        with self._lock:
            return bool(self._trash.get(self._session(request)))

    def undo_delete(self, request: gr.Request | None = None) -> tuple[str, list[list[Any]], str, Any]:
        """Put back what this browser session's latest delete removed (same ids, text, metadata and vectors)."""
        with self._lock:
            kept = self._trash.pop(self._session(request), [])
        if not kept:
            msg = notice_html("Nothing to undo.", "info")
        else:
            try:
                store = self.ingestor().store
                for art in kept:
                    store.upsert(art["ids"], art["embeddings"], art["documents"], art["metadatas"])
                msg = notice_html(f"Restored {plural(len(kept), 'article')}.", "info")
            except Exception as exc:  # noqa: BLE001
                with self._lock:
                    self._trash[self._session(request)] = kept  # nothing is lost: it can be tried again
                msg = notice_html(friendly(exc))
        rows, stats, outlets = self.archive_view()
        return msg, rows, stats, outlets


# --- layout ------------------------------------------------------------------------------------------
def build_app(settings: Settings) -> gr.Blocks:
    """The chat and the Archive tab. Self-contained: its style and script come with it (through the sources
    panel's ``js_on_load``), so it looks and works the same when mounted in another FastAPI app."""
    ui = BylineUI(settings)
    outlets = ui.outlets()
    gen_choices = ui.generator_choices()
    try:
        first_stats = ui.store().stats()
    except BylineError as exc:
        log.warning("cannot read the archive's stats: %s", exc)
        first_stats = {}
    with gr.Blocks(title="Byline", analytics_enabled=False) as demo:
        demo.byline = ui  # type: ignore[attr-defined]  (tests and launch() reach the handlers through this)
        gr.Markdown("## Byline\nAsk the news archive. Every claim is numbered and tied to the passage it comes from.",
                    elem_id="byline-head")
        warming = gr.HTML("", elem_id="byline-warming", js_on_load=None)
        warm_timer = gr.Timer(1.0)
        with gr.Tab("Ask", id="ask"):
            with gr.Row(equal_height=False, elem_id="byline-main"):
                with gr.Column(scale=3, min_width=320, elem_id="byline-left"):
                    chatbot = gr.Chatbot(
                        label="Conversation", show_label=False, elem_id="byline-chat", height=520, latex_delimiters=[],
                        feedback_options=None, buttons=[], allow_tags=False, sanitize_html=True,
                        examples=ui.example_questions() or None,
                        placeholder="Ask about the indexed articles, or start from one of the latest headlines:")
                    with gr.Row(elem_id="byline-ask-row"):
                        question = gr.Textbox(show_label=False, placeholder="Ask a question about the archive…", scale=5,
                                              elem_id="byline-question", max_length=settings.max_question_chars, autofocus=True)
                        ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="byline-ask")
                        stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=64, elem_id="byline-stop")
                    question_note = gr.HTML("", elem_id="byline-question-note", js_on_load=None)
                    with gr.Row(elem_id="byline-active-row"):
                        active = gr.HTML("", elem_id="byline-active-filters", js_on_load=None)
                        clear_filters = gr.Button("Clear filters", size="sm", scale=0, min_width=110, visible=False,
                                                  elem_id="byline-clear-filters")
                    with gr.Row(elem_id="byline-conv-row"):
                        clear_btn = gr.Button("New conversation", size="sm", elem_id="byline-clear")
                        export_btn = gr.Button("Export (Markdown)", size="sm", elem_id="byline-export")
                    export_file = gr.File(label="Conversation", visible=False, interactive=False, elem_id="byline-export-file")
                    with gr.Accordion("Filters and answer generator", open=False, elem_id="byline-filters") as filters_fold:
                        outlet_dd = gr.Dropdown(choices=outlets, value=[], multiselect=True, label="Outlets",
                                                info="Only these outlets (empty = all)", elem_id="byline-outlets")
                        with gr.Row():
                            date_from = gr.Textbox(label="From (YYYY-MM-DD)", placeholder=first_stats.get("first_date") or "2024-01-01",
                                                   elem_id="byline-from")
                            date_to = gr.Textbox(label="To (YYYY-MM-DD)", placeholder=first_stats.get("last_date") or "2024-12-31",
                                                 elem_id="byline-to")
                        date_note = gr.HTML("", elem_id="byline-date-note", js_on_load=None)
                        generator = gr.Radio(choices=gen_choices, value=ui.default_generator(), label="Answer generator",
                                             elem_id="byline-generator")
                with gr.Column(scale=2, min_width=300, elem_id="byline-right"):
                    sources = gr.HTML(placeholder_panel(EMPTY_PANEL), elem_id="byline-sources", js_on_load=PAGE_JS, label="Sources")
        with gr.Tab("Archive", id="archive"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=300):
                    files = gr.File(file_count="multiple", file_types=UPLOAD_SUFFIXES, label="Upload articles",
                                    elem_id="byline-files")
                    urls = gr.Textbox(lines=3, label="Or paste URLs / RSS or Atom feeds (one per line)",
                                      placeholder="https://example.com/news/story.html", elem_id="byline-urls")
                    ingest_btn = gr.Button("Ingest", variant="primary", elem_id="byline-ingest")
                    report = gr.HTML(elem_id="byline-report", js_on_load=None)
                    with gr.Accordion("Watched feeds", open=bool(ui.feeds.watcher.feeds), elem_id="byline-feeds-fold"):
                        feeds_table = gr.HTML(ui.feeds_view(), elem_id="byline-feeds", js_on_load=None)
                        feed_url = gr.Textbox(lines=1, label="Feed URL (RSS or Atom)", placeholder="https://example.com/feed.xml",
                                              elem_id="byline-feed-url")
                        with gr.Row():
                            watch_btn = gr.Button("Watch", size="sm", variant="primary", elem_id="byline-watch")
                            unwatch_btn = gr.Button("Stop watching", size="sm", elem_id="byline-unwatch")
                            poll_btn = gr.Button("Poll now", size="sm", elem_id="byline-poll")
                        feed_msg = gr.HTML(js_on_load=None, elem_id="byline-feed-msg")
                        # Polls happen in the background: the table follows them without a click.
                        feeds_timer = gr.Timer(5.0)
                with gr.Column(scale=1, min_width=280):
                    stats = gr.HTML(elem_id="byline-stats", js_on_load=None)
                    del_ids = gr.Textbox(label="Article id(s) to delete", placeholder="click a row to fill in", elem_id="byline-del-ids")
                    del_btn = gr.Button("Delete…", variant="stop", size="sm", elem_id="byline-delete")
                    del_msg = gr.HTML(js_on_load=None, elem_id="byline-del-msg")
                    with gr.Row(visible=False, elem_id="byline-confirm-row") as confirm_row:
                        confirm_btn = gr.Button("Yes, delete", variant="stop", size="sm", elem_id="byline-confirm")
                        cancel_btn = gr.Button("Cancel", size="sm", elem_id="byline-cancel")
                    undo_btn = gr.Button("Undo delete", size="sm", visible=False, elem_id="byline-undo")
                    refresh_btn = gr.Button("Refresh", size="sm", elem_id="byline-refresh")
                    with gr.Accordion("Advanced", open=False, elem_id="byline-advanced"):
                        gr.HTML(store_html(first_stats) if first_stats else "", js_on_load=None, elem_id="byline-store")
            table = gr.Dataframe(headers=ARTICLE_HEADERS, datatype=["str", "str", "str", "str", "number"], interactive=False,
                                 label="Articles (newest first)", elem_id="byline-articles", wrap=True, max_height=420,
                                 # In pixels: on a phone the table scrolls sideways instead of breaking words per letter.
                                 column_widths=["176px", "104px", "150px", "560px", "90px"],
                                 show_search="search")
        state = gr.State({k: [] for k in STATE_KEYS})
        browser_id = gr.BrowserState("", storage_key="byline-browser", secret=ui.browser_secret())  # names this browser's kept conversation
        keep = dict(fn=ui.save_conversation, inputs=[browser_id, state], outputs=None, api_visibility="private", queue=False)

        # Each problem is said once, beside its field; then the turn runs (and does nothing when one was found).
        check_io = dict(fn=ui.check_inputs, inputs=[question, date_from, date_to], outputs=[question_note, date_note, filters_fold],
                        api_visibility="private", queue=False, show_progress="hidden")
        chat_io = dict(fn=ui.respond, inputs=[question, state, outlet_dd, date_from, date_to, generator],
                       outputs=[chatbot, state, sources, question], api_visibility="private", show_progress="minimal")
        question.submit(**check_io).then(**chat_io).then(**keep)
        ask_btn.click(**check_io).then(**chat_io).then(**keep)
        # A clicked example is asked like a typed question.
        def _example(evt: gr.SelectData) -> str:
            return str((evt.value or {}).get("text", ""))

        chatbot.example_select(_example, None, question, api_visibility="private", queue=False).then(**check_io).then(**chat_io).then(**keep)
        # Not queued: it must run while this session's answer is still streaming.
        stop_btn.click(ui.stop, None, None, api_visibility="private", queue=False)
        hide_export = dict(fn=lambda: gr.update(value=None, visible=False), inputs=None, outputs=export_file, api_visibility="private")
        clear_btn.click(ui.clear, None, [chatbot, state, sources, question], api_visibility="private").then(**hide_export).then(**keep)
        chatbot.clear(ui.clear, None, [chatbot, state, sources, question],  # its trash icon
                      api_visibility="private").then(**hide_export).then(**keep)

        def _export(st: dict) -> Any:
            path = ui.export(st)
            return gr.update(value=path, visible=path is not None)

        export_btn.click(_export, state, export_file, api_visibility="private")

        def _ingest(f: Any, u: str, progress: gr.Progress = gr.Progress()) -> tuple:
            rep, rows, st, od = ui.ingest(f, u, progress)
            return rep, rows, st, od, None

        ingest_btn.click(_ingest, [files, urls], [report, table, stats, outlet_dd, files], api_visibility="private")

        def _ask_delete(ids: str) -> tuple:
            msg, ok = ui.ask_delete(ids)
            return msg, gr.update(visible=ok), gr.update(visible=False)

        def _delete(ids: str, request: gr.Request) -> tuple:
            return (*ui.delete(ids, request), gr.update(visible=False), gr.update(visible=ui.can_undo(request)))

        def _undo(request: gr.Request) -> tuple:
            return (*ui.undo_delete(request), gr.update(visible=ui.can_undo(request)))

        del_btn.click(_ask_delete, [del_ids], [del_msg, confirm_row, undo_btn], api_visibility="private")
        cancel_btn.click(lambda: ("", gr.update(visible=False)), None, [del_msg, confirm_row], api_visibility="private")
        confirm_btn.click(_delete, [del_ids], [del_msg, table, stats, outlet_dd, confirm_row, undo_btn], api_visibility="private")
        undo_btn.click(_undo, None, [del_msg, table, stats, outlet_dd, undo_btn], api_visibility="private")
        filter_fields = [outlet_dd, date_from, date_to]
        for field in filter_fields:
            field.change(ui.active_filters, filter_fields, [active, clear_filters], api_visibility="private", queue=False,
                         show_progress="hidden")
        clear_filters.click(lambda: ([], "", "", ""), None, [*filter_fields, date_note], api_visibility="private", queue=False)
        refresh_btn.click(ui.archive_view, None, [table, stats, outlet_dd], api_visibility="private")

        def _pick(evt: gr.SelectData) -> str:
            row = getattr(evt, "row_value", None) or []
            return str(row[0]) if row else ""

        table.select(_pick, None, del_ids, api_visibility="private")
        watch_btn.click(ui.watch_feed, feed_url, [feed_msg, feeds_table, feed_url], api_visibility="private")
        feed_url.submit(ui.watch_feed, feed_url, [feed_msg, feeds_table, feed_url], api_visibility="private")
        unwatch_btn.click(ui.unwatch_feed, feed_url, [feed_msg, feeds_table, feed_url], api_visibility="private")
        poll_btn.click(ui.poll_feeds, None, [feed_msg, feeds_table], api_visibility="private")
        feeds_timer.tick(ui.feeds_view, None, feeds_table, api_visibility="private", queue=False, show_progress="hidden")
        warm_timer.tick(ui.warm_note, None, [warming, warm_timer], api_visibility="private", queue=False, show_progress="hidden")
        demo.load(ui.warm_note, None, [warming, warm_timer], api_visibility="private", queue=False, show_progress="hidden")
        demo.load(ui.archive_view, None, [table, stats, outlet_dd], api_visibility="private")
        demo.load(ui.restore, browser_id, [chatbot, state, sources, browser_id], api_visibility="private")
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
    demo.byline.warm_up()  # the models load while the page opens
    demo.byline.feeds.start()
    demo.queue(default_concurrency_limit=1)
    try:
        _launch(demo, host, port, auth, block, quiet)
    except OSError as exc:  # port taken, address not on this machine
        raise ConfigError(f"cannot serve the chat on {host}:{port}: {exc}. Pick another --port (0 = any free port).") from None
    return demo


def _launch(demo: gr.Blocks, host: str, port: int, auth: str | None, block: bool, quiet: bool) -> None:
    demo.launch(
        server_name=host, server_port=port, auth=parse_auth(auth), share=False, inbrowser=False,
        prevent_thread_lock=not block, show_error=False, quiet=quiet, max_file_size=MAX_UPLOAD,
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
