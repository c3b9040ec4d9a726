"""Keep the archive current from feeds: poll each feed with a conditional GET, ingest what is new.

Each poll sends the feed's last ``ETag`` / ``Last-Modified`` back (``If-None-Match`` /
``If-Modified-Since``), so an unchanged feed costs one 304. A feed that did change is parsed by the
same code as ``byline ingest URL`` (``ingest.loaders.feed_articles``), but only the entries that are
new or changed since the last poll (a fingerprint per entry) are read and handed to the idempotent
``Ingestor``: the others' pages are not fetched again. An entry that drops off the feed stays in the
archive.

The state (per feed: validators, entry fingerprints, last poll, counts, last error, consecutive
failures, next poll) is JSON beside the index, ``<data_dir>/watch.json``, replaced atomically after
every poll, so a restarted watcher goes on where the last one stopped. A failing feed backs off
exponentially (the interval doubled per consecutive failure, capped) without delaying the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from ingest.loaders import Item, feed_articles, http_get, quiet_libraries, read_feed
from rag.config import Settings
from rag.errors import ConfigError, IngestError

log = logging.getLogger(__name__)

STATE_FILE = "watch.json"
LOCK_FILE = ".watch.lock"


@dataclass
class FeedState:
    """What the watcher remembers about one feed between polls (and restarts)."""

    url: str
    etag: str = ""
    last_modified: str = ""
    last_poll: str = ""  # ISO 8601, UTC
    next_poll: str = ""
    new_items: int = 0  # articles added by the last poll
    changed_items: int = 0  # stored articles the last poll replaced with a changed version
    entry_errors: list[str] = field(default_factory=list)  # entries of the last poll that could not be read
    last_error: str = ""  # the feed's last failure (kept after recovery, with its time)
    last_error_at: str = ""
    failures: int = 0  # consecutive failed polls; 0 once a poll succeeds
    backoff: float = 0.0  # seconds added to the wait by the failures (0 when healthy)
    entries: dict[str, str] = field(default_factory=dict)  # entry key -> fingerprint, for the feed's current entries

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeedState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PollResult:
    url: str
    status: str  # "updated" (200, entries read), "not modified" (304 or nothing new), "failed"
    new_items: int = 0
    changed_items: int = 0
    entry_errors: list[str] = field(default_factory=list)
    error: str = ""
    retry_in: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '15m', '2h', '1d'. Raises ValueError naming the text."""
    m = _DURATION.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"bad duration {text!r}: use a positive number with s, m, h or d (e.g. 15m)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2).lower()]


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def _ts(iso: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def load_state(path: Path, *, set_aside: bool = True) -> dict[str, FeedState]:
    """The saved state; an unreadable file is set aside (re-polling in full is harmless: ingest is idempotent)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {url: FeedState.from_dict({**d, "url": url}) for url, d in raw["feeds"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        aside = path.with_name(path.name + ".broken")
        if not set_aside:
            raise ConfigError(f"{path}: cannot read the watch state ({exc})") from None
        log.warning("%s: cannot read the watch state (%s); moved to %s, every feed is read in full once", path, exc, aside.name)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return {}


def save_state(path: Path, feeds: dict[str, FeedState]) -> None:
    """Write to a temporary file in the same folder, then rename over: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": 1, "feeds": {url: {k: v for k, v in asdict(st).items() if k != "url"} for url, st in feeds.items()}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def conditional_get(url: str, etag: str = "", last_modified: str = "") -> tuple[int, bytes, str, str, str]:
    """GET with the feed's validators: (status, body, content type, ETag, Last-Modified). A 304 has no body.

    Every failure (4xx/5xx, network, too large) is an IngestError naming the URL."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    got = http_get(url, headers)
    return got.status, got.data, got.content_type, got.etag, got.last_modified


def entry_key(entry: Any) -> str:
    return str(entry.get("id") or entry.get("link") or entry.get("title") or "")


def entry_fingerprint(entry: Any) -> str:
    """Changes when anything Byline reads from the entry changes."""
    content = [c.get("value", "") for c in entry.get("content") or []]
    parts = [entry.get(k) or "" for k in ("title", "link", "published", "updated", "author", "summary")]
    return hashlib.sha256(json.dumps([*parts, content], ensure_ascii=False).encode()).hexdigest()[:16]


def _entry_index(where: str) -> int:
    return int(where.rsplit("#", 1)[1])


class Watcher:
    """Polls feeds into one archive. ``clock`` (epoch seconds) and ``sleep`` are injectable for tests;
    ``stop()`` ends ``run`` after the poll in progress (the default sleep wakes at once)."""

    def __init__(self, settings: Settings, ingestor: Any = None, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] | None = None) -> None:
        self.settings = settings
        self.path = state_path(settings)
        self._ingestor = ingestor
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop(), add() and poll_soon(): the waiting loop looks again at once
        self.sleep = sleep or self._nap
        self._state_lock = threading.RLock()  # the chat adds and removes feeds while the loop polls
        self._soon: set[str] = set()
        self._held = False
        self.feeds = load_state(self.path)

    @property
    def ingestor(self) -> Any:
        if self._ingestor is None:  # built on first use: `--status` needs no embedder
            from ingest.pipeline import Ingestor

            self._ingestor = Ingestor(self.settings)
        return self._ingestor

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    # --- the watched list (the chat's Archive tab edits it while ``run(None)`` polls) --------------
    def watched(self) -> list[str]:
        with self._state_lock:
            return list(self.feeds)

    def add(self, url: str) -> bool:
        """Watch ``url`` from now on (polled at once by a running loop). False if it was watched already."""
        url = (url or "").strip()
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"not a feed URL: {url!r} (use an http:// or https:// address)")
        with self._state_lock:
            if url in self.feeds:
                return False
            self.feeds[url] = FeedState(url=url)
            save_state(self.path, self.feeds)
        self._wake.set()
        return True

    def remove(self, url: str) -> bool:
        """Stop watching ``url`` (its articles stay in the archive). False if it was not watched."""
        with self._state_lock:
            if self.feeds.pop(url, None) is None:
                return False
            self._soon.discard(url)
            save_state(self.path, self.feeds)
        return True

    def poll_soon(self, urls: list[str] | None = None) -> None:
        """Make these feeds (default: all) due now, so a running loop polls them without waiting for their time."""
        with self._state_lock:
            self._soon.update(urls if urls is not None else self.feeds)
        self._wake.set()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One watcher per data folder: two would overwrite each other's state."""
        if self._held:  # re-entrant: BackgroundWatch claims the folder before its thread runs the loop
            yield
            return
        lock = self.path.with_name(LOCK_FILE)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another `byline watch` is already running on {self.settings.data_dir} "
                                  "(or a chat or server that watches its feeds)") from None
            self._held = True
            try:
                yield
            finally:
                self._held = False
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- schedule --------------------------------------------------------------------------------
    def due_at(self, url: str, every: float) -> float:
        st = self.feeds.get(url)
        if st is None or not st.last_poll or url in self._soon:
            return 0.0
        if st.failures:
            return _ts(st.next_poll) or 0.0
        return (_ts(st.last_poll) or 0.0) + every  # from the last poll, so a new --every applies at once

    def backoff_for(self, failures: int, every: float) -> float:
        """The wait after ``failures`` failed polls in a row: the interval doubled per failure, capped."""
        cap = max(self.settings.watch_max_backoff, every)
        return min(every * 2 ** min(failures, 32), cap)

    def run(self, urls: list[str] | None, *, every: float | None = None, once: bool = False,
            on_poll: Callable[[PollResult], None] | None = None) -> dict[str, PollResult]:
        """Poll ``urls`` as they fall due until ``stop()`` (or once each with ``once``); returns each feed's latest result.

        ``urls=None`` follows the watched list as ``add()`` and ``remove()`` change it (the chat's way)."""
        every = every or self.settings.watch_interval
        fixed = list(dict.fromkeys(urls)) if urls is not None else None
        latest: dict[str, PollResult] = {}  # not every result: a watcher may run for months
        with self.lock():
            while not self._stop.is_set():
                for url in fixed if fixed is not None else self.watched():
                    if self._stop.is_set():
                        break
                    if (fixed is not None or url in self.feeds) and (once or self.clock() >= self.due_at(url, every)):
                        r = latest[url] = self.poll(url, every)
                        if on_poll:
                            on_poll(r)
                if once or self._stop.is_set():
                    break
                current = fixed if fixed is not None else self.watched()
                wake = min((self.due_at(u, every) for u in current), default=self.clock() + every)
                self.sleep(max(0.0, wake - self.clock()))
        return latest

    # --- one poll ---------------------------------------------------------------------------------
    def poll(self, url: str, every: float | None = None) -> PollResult:
        """Poll one feed now, ingest its new and changed entries, record the outcome and save the state."""
        every = every or self.settings.watch_interval
        with self._state_lock:
            st = self.feeds.setdefault(url, FeedState(url=url))
            self._soon.discard(url)
        now = self.clock()
        try:
            result = self._poll(st)
        except IngestError as exc:
            result = PollResult(url, "failed", error=exc.reason)
        except Exception as exc:  # noqa: BLE001 - a store or parser failure backs this feed off; the others go on
            log.exception("unexpected error polling %s", url)
            result = PollResult(url, "failed", error=f"unexpected error: {type(exc).__name__}: {exc}")
        st.last_poll = _iso(now)
        if result.ok:
            st.failures, st.backoff = 0, 0.0
            st.next_poll = _iso(now + every)
            st.new_items, st.changed_items, st.entry_errors = result.new_items, result.changed_items, result.entry_errors
        else:
            st.failures += 1
            st.backoff = self.backoff_for(st.failures, every)
            st.next_poll = _iso(now + st.backoff)
            st.new_items = st.changed_items = 0
            st.last_error, st.last_error_at = result.error, st.last_poll
            result.retry_in = st.backoff
            log.warning("%s: %s (failure %d in a row; next try in %.0f s)", url, result.error, st.failures, st.backoff)
        with self._state_lock:
            if self.feeds.get(url) is st:  # not if the feed stopped being watched during the poll
                save_state(self.path, self.feeds)
        return result

    def _poll(self, st: FeedState) -> PollResult:
        url = st.url
        status, data, ctype, etag, modified = conditional_get(url, st.etag, st.last_modified)
        if status == 304:
            return PollResult(url, "not modified")
        feed = read_feed(data, ctype)
        if feed is None:
            raise IngestError(url, "not an RSS, Atom or CDF feed (no entries found)")
        prints = {entry_key(e): entry_fingerprint(e) for e in feed.entries}
        todo = [n for n, e in enumerate(feed.entries) if st.entries.get(entry_key(e)) != prints[entry_key(e)]]
        errors: list[IngestError] = []
        report = None
        if todo:
            quiet_libraries()
            import feedparser

            sub = feedparser.FeedParserDict(feed)
            sub["entries"] = [feed.entries[n] for n in todo]
            report = self.ingestor.ingest_items(self._renumbered(feed_articles(sub, url, fetch_pages=True), url, todo))
            errors = report.errors
        failed = {_entry_index(e.source) for e in errors if e.source.startswith(url + "#")}
        # Only what is in the feed now is remembered (the file stays small); a failed entry is tried again.
        st.entries = prints
        for n in failed:
            st.entries.pop(entry_key(feed.entries[n]), None)
        # With an entry still to retry, the next poll must get the whole feed, not a 304.
        st.etag, st.last_modified = ("", "") if failed else (etag, modified)
        if report is None:
            return PollResult(url, "not modified")
        return PollResult(url, "updated", new_items=report.added, changed_items=report.updated,
                          entry_errors=[f"{e.source}: {e.reason}" for e in errors])

    @staticmethod
    def _renumbered(items: Iterator[Item], url: str, todo: list[int]) -> Iterator[Item]:
        """feed_articles numbers the entries it was given (``url#0``…); put back their numbers in the feed."""
        for item in items:
            if isinstance(item, IngestError):
                if item.source.startswith(url + "#"):
                    item = IngestError(f"{url}#{todo[_entry_index(item.source)]}", item.reason)
            elif item.origin.startswith(url + "#"):
                item.origin = f"{url}#{todo[_entry_index(item.origin)]}"
            yield item


class BackgroundWatch:
    """The watcher inside a long-running chat or server: polls the watched feeds from a daemon thread.

    The feeds are those watched before in this data folder, ``settings.watch_feeds`` and any added here.
    It claims the folder only once there is a feed to watch, so a chat over a folder without feeds leaves
    ``byline watch`` free; when another process already watches the folder, this one shows that process's
    saved status and refuses edits (two watchers would overwrite each other's state)."""

    def __init__(self, settings: Settings, ingestor: Any = None) -> None:
        self.watcher = Watcher(settings, ingestor)
        self.blocked = ""  # why this process cannot watch (another watcher holds the folder)
        self._claim: contextlib.ExitStack | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._configured = list(settings.watch_feeds)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, even_without_feeds: bool = False) -> bool:
        """Start polling if there is a feed to watch and no other process watches this folder. True when running."""
        with self._lock:
            if self.running:
                return True
            if not (self._configured or self.watcher.feeds or even_without_feeds):
                return False
            claim = contextlib.ExitStack()
            try:
                claim.enter_context(self.watcher.lock())
            except ConfigError as exc:
                self.blocked = str(exc)
                return False
            self.blocked, self._claim = "", claim
            self.watcher.feeds = load_state(self.watcher.path)  # what the previous owner of the folder left
            for url in self._configured:
                self.watcher.add(url)
            self.watcher._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="byline-watch", daemon=True)
            self._thread.start()
            return True

    def _loop(self) -> None:
        try:
            self.watcher.run(None)
        except Exception:  # noqa: BLE001 - the chat goes on without its watcher; the log says why
            log.exception("the feed watcher stopped")

    def stop(self, timeout: float = 10.0) -> None:
        self.watcher.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._claim is not None:
                self._claim.close()
                self._claim = None

    def _editable(self) -> None:
        """Claim the folder before changing its feeds: only the process that polls them writes their state."""
        if not self.start(even_without_feeds=True):
            raise ConfigError(f"{self.blocked}: add or remove its feeds there")

    def add(self, url: str) -> bool:
        """Watch a feed from now on (polled at once). False if it was watched already."""
        self._editable()
        return self.watcher.add(url)

    def remove(self, url: str) -> bool:
        self._editable()
        return self.watcher.remove(url)

    def poll_now(self) -> None:
        self._editable()
        self.watcher.poll_soon()

    def status(self) -> dict[str, FeedState]:
        """Each watched feed's state: this process's own, or the saved one of the process that watches the folder."""
        if self.blocked and not self.start():
            return feed_status(self.watcher.settings)
        with self.watcher._state_lock:
            return {u: FeedState.from_dict(asdict(st)) for u, st in self.watcher.feeds.items()}


def feed_status(settings: Settings) -> dict[str, FeedState]:
    """The saved state of every feed watched into this data folder (read only)."""
    return load_state(state_path(settings), set_aside=False)
