"""`byline watch`: feeds polled with conditional GETs from a loopback server whose feed changes between polls,
ingested into a real Chroma folder with the real embedder; backoff, recovery and restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from ingest.pipeline import Ingestor
from ingest.watch import Watcher, feed_status, parse_duration
from rag.errors import ConfigError
from rag.schema import where_articles
from rag.store import Store
from tests.conftest import REPO

STORIES = {
    "1": ("Ferry service to Saltmere resumes", "The Saltmere ferry resumed its crossings on Monday after storm repairs to the harbour pier were finished."),
    "2": ("Riverton council passes its budget", "Riverton's council passed a budget that adds two bus routes and repairs the library roof."),
    "3": ("Novalink recalls a router", "Novalink recalled its home router after reports that the power adapter overheats."),
    "4": ("Castlebridge Rovers name a coach", "Castlebridge Rovers named a new head coach, a former captain of the club, for next season."),
    "5": ("Harbor Ledger opens a newsroom", "The Harbor Ledger opened a second newsroom in the port district with six reporters."),
    "6": ("An entry without text", ""),
}


class FeedSite:
    """A loopback server with one or more RSS feeds that tests rewrite; it answers 304 to a matching validator.

    ``validator`` is "etag" (sends ETag, honours If-None-Match) or "last-modified" (Last-Modified /
    If-Modified-Since). ``fail[path] = n`` makes the next n requests to a path answer 500. Entry links
    point at pages that do not exist, so each entry's own text is used; ``page_hits`` counts those fetches."""

    def __init__(self, validator: str = "etag") -> None:
        self.validator = validator
        self.feeds: dict[str, tuple[list[str], int]] = {}  # path -> (story ids, version)
        self.edits: dict[str, str] = {}  # story id -> replacement text
        self.fail: dict[str, int] = {}
        self.requests: list[tuple[str, str, str]] = []  # (path, If-None-Match, If-Modified-Since)
        self.page_hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path
                if path.startswith("/news/"):
                    site.page_hits += 1
                    return self._send(404, b"<html><body>gone</body></html>", "text/html")
                site.requests.append((path, self.headers.get("If-None-Match", ""), self.headers.get("If-Modified-Since", "")))
                if site.fail.get(path, 0) > 0:
                    site.fail[path] -= 1
                    return self._send(500, b"oops", "text/plain")
                ids, version = site.feeds[path]
                etag, modified = f'"v{version}"', formatdate(1_700_000_000 + version, usegmt=True)
                header = ("ETag", etag) if site.validator == "etag" else ("Last-Modified", modified)
                sent = self.headers.get("If-None-Match" if site.validator == "etag" else "If-Modified-Since")
                if sent == header[1]:
                    return self._send(304, b"", "", header)
                return self._send(200, site.rss(path, ids), "application/rss+xml", header)

            def _send(self, status: int, body: bytes, ctype: str, header: tuple[str, str] | None = None) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                if header:
                    self.send_header(*header)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def set_feed(self, path: str, ids: list[str]) -> None:
        old = self.feeds.get(path, ([], 0))[1]
        self.feeds[path] = (ids, old + 1)

    def rss(self, path: str, ids: list[str]) -> bytes:
        items = "".join(
            f"<item><title>{STORIES[i][0]}</title><link>{self.url('/news/' + i)}</link><guid>{path}/story-{i}</guid>"
            f"<pubDate>Mon, 0{i} Apr 2024 09:00:00 GMT</pubDate><description>{self.edits.get(i, STORIES[i][1])}</description></item>"
            for i in ids)
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Metro Wire</title><link>{self.url("/")}</link>'
                f"<description>news</description>{items}</channel></rss>").encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(request) -> Iterator[FeedSite]:
    s = FeedSite(getattr(request, "param", "etag"))
    try:
        yield s
    finally:
        s.close()


def stored(settings) -> list:
    return Store(settings).articles()


@pytest.mark.parametrize("site", ["etag", "last-modified"], indirect=True)
def test_new_changed_removed_entries_304s_and_a_restart(site, settings, embedder):
    site.set_feed("/feed.rss", ["1", "2", "3"])
    url = site.url("/feed.rss")
    w = Watcher(settings, Ingestor(settings, embedder=embedder))

    r = w.poll(url)
    assert (r.status, r.new_items, r.changed_items, r.entry_errors) == ("updated", 3, 0, [])
    assert len(stored(settings)) == 3 and site.page_hits == 3

    # Unchanged feed: the validator is sent back and the server answers 304; nothing is read.
    r = w.poll(url)
    assert r.status == "not modified" and site.page_hits == 3
    path, inm, ims = site.requests[-1]
    assert (inm if site.validator == "etag" else ims) and not (ims if site.validator == "etag" else inm)

    # A new entry, a changed one, a removed one: only the first two are read; the removed one stays stored.
    site.set_feed("/feed.rss", ["4", "1", "2"])
    site.edits["2"] = "Riverton's council passed a budget that adds three bus routes and repairs the library roof."
    r = w.poll(url)
    assert (r.status, r.new_items, r.changed_items) == ("updated", 1, 1)
    assert site.page_hits == 5
    arts = {a.title: a for a in stored(settings)}
    assert set(arts) == {STORIES[i][0] for i in "1234"}
    chunks = Store(settings).collection.get(where=where_articles([arts[STORIES["2"][0]].id]), include=["documents"])
    assert any("three bus routes" in d for d in chunks["documents"]) and not any("two bus routes" in d for d in chunks["documents"])

    saved = json.loads((settings.data_dir / "watch.json").read_text())["feeds"][url]
    assert saved["new_items"] == 1 and saved["changed_items"] == 1 and saved["failures"] == 0 and saved["last_poll"]
    assert saved["etag" if site.validator == "etag" else "last_modified"]
    assert len(saved["entries"]) == 3  # only the entries the feed holds now

    # Restart: a new watcher (and ingestor) over the same data folder; the feed changed while it was down.
    site.set_feed("/feed.rss", ["5", "4", "1", "2"])
    w2 = Watcher(settings, Ingestor(settings, embedder=embedder))
    assert w2.feeds[url].entries == saved["entries"]
    r = w2.poll(url)
    assert (r.status, r.new_items, r.changed_items) == ("updated", 1, 0) and site.page_hits == 6
    assert w2.poll(url).status == "not modified"
    ids = [a.id for a in stored(settings)]
    assert len(ids) == len(set(ids)) == 5


def test_an_unreadable_entry_is_named_and_retried_while_the_rest_go_in(site, settings, embedder):
    site.set_feed("/feed.rss", ["1", "6"])
    url = site.url("/feed.rss")
    w = Watcher(settings, Ingestor(settings, embedder=embedder))
    r = w.poll(url)
    assert r.ok and r.new_items == 1 and r.entry_errors == [f"{url}#1: feed entry has no text (its page could not be read)"]
    # No validator is kept while an entry waits to be retried: the next poll reads the feed, but only that entry.
    assert w.feeds[url].etag == "" and w.feeds[url].failures == 0
    hits = site.page_hits
    r = w.poll(url)
    assert site.requests[-1][1] == "" and site.page_hits == hits + 1 and len(r.entry_errors) == 1
    site.edits["6"] = "The entry now has a summary of its own, about the new tram line through the old town."
    site.set_feed("/feed.rss", ["1", "6"])
    r = w.poll(url)
    assert (r.new_items, r.entry_errors, bool(w.feeds[url].etag)) == (1, [], True)
    assert len(stored(settings)) == 2


def test_failing_feed_backs_off_capped_and_recovers_without_delaying_others(site, settings, embedder):
    settings.watch_max_backoff = 300
    site.set_feed("/a.rss", ["1", "2"])
    site.set_feed("/b.rss", ["3"])
    site.fail["/a.rss"] = 2
    a, b = site.url("/a.rss"), site.url("/b.rss")
    now = [1_800_000_000.0]
    t0 = now[0]
    polls: list[tuple[float, str, str, int]] = []
    backoffs: list[tuple[int, float]] = []

    def sleep(seconds: float) -> None:
        if now[0] - t0 >= 600:
            w.stop()
        now[0] += seconds

    def on_poll(r) -> None:
        polls.append((now[0] - t0, r.url, r.status, r.new_items))
        if r.url == a:
            backoffs.append((w.feeds[a].failures, w.feeds[a].backoff))

    w = Watcher(settings, Ingestor(settings, embedder=embedder), clock=lambda: now[0], sleep=sleep)
    w.run([a, b], every=100, on_poll=on_poll)

    a_polls = [(t, s, n) for t, u, s, n in polls if u == a]
    # Waits twice the interval, then four times capped at 300 s; recovered, its interval again.
    assert a_polls == [(0, "failed", 0), (200, "failed", 0), (500, "updated", 2), (600, "not modified", 0)]
    assert backoffs == [(1, 200), (2, 300), (0, 0), (0, 0)]
    assert [t for t, u, _, _ in polls if u == b] == [0, 100, 200, 300, 400, 500, 600]  # b keeps its interval
    st = feed_status(settings)[a]
    assert st.failures == 0 and st.backoff == 0 and st.next_poll > st.last_poll
    assert st.last_error == "HTTP 500 Internal Server Error" and st.last_error_at  # the last error is kept, with its time
    assert len(stored(settings)) == 3


def test_one_watcher_per_data_folder_and_a_broken_state_file(site, settings, embedder):
    site.set_feed("/feed.rss", ["1"])
    w = Watcher(settings, Ingestor(settings, embedder=embedder))
    with w.lock(), pytest.raises(ConfigError, match="already running"):
        Watcher(settings).run([site.url("/feed.rss")], once=True)

    path = settings.data_dir / "watch.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="watch.json"):
        feed_status(settings)  # --status only reads
    w = Watcher(settings, Ingestor(settings, embedder=embedder))  # the watcher sets it aside and starts afresh
    assert w.feeds == {} and (settings.data_dir / "watch.json.broken").exists()
    assert w.run([site.url("/feed.rss")], once=True)[site.url("/feed.rss")].new_items == 1


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])  # Ctrl+C, and how docker, systemd and compose stop a service
def test_ctrl_c_stops_between_polls_and_keeps_the_state(site, tmp_path, signame):
    import signal

    site.set_feed("/feed.rss", ["1"])
    site.fail["/feed.rss"] = 1
    data = tmp_path / "byline-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "watch", site.url("/feed.rss"), "--every", "1h", "--data-dir", str(data)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the first poll is done; the watcher now waits for the next
        assert "HTTP 500" in line and "next try in 7200 s" in line
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "stopping" in err and "Traceback" not in err  # 1: every poll it made failed
    st = json.loads((data / "watch.json").read_text())["feeds"][site.url("/feed.rss")]
    assert st["failures"] == 1 and st["backoff"] == 7200 and st["last_error"] == "HTTP 500 Internal Server Error"


def test_parse_duration():
    assert [parse_duration(s) for s in ("90", "90s", "15m", "2h", "1d")] == [90, 90, 900, 7200, 86400]
    for bad in ("", "0", "15 minutes", "-5m"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)


def test_cli_watch_once_and_status(site, tmp_path, capsys):
    site.set_feed("/feed.rss", ["1", "2", "3"])
    data = tmp_path / "byline-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "watch", "--once", site.url("/feed.rss"), "--data-dir", str(data)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{site.url('/feed.rss')}: 3 new, 0 changed"

    from ui.cli import main

    assert main(["watch", "--status", "--json", "--data-dir", str(data)]) == 0
    st = json.loads(capsys.readouterr().out)[site.url("/feed.rss")]
    assert st["new_items"] == 3 and st["failures"] == 0 and st["last_error"] == "" and "entries" not in st


def wait_for(check, timeout: float = 600.0) -> None:
    """Background polls finish on their own time; on a loaded 2-core machine an ingest can take a while."""
    import time

    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out waiting for the background watcher"
        time.sleep(0.2)


def test_background_watch_follows_feeds_added_and_removed_while_it_runs(site, settings, embedder):
    from ingest.watch import BackgroundWatch

    site.set_feed("/a.rss", ["1", "2"])
    site.set_feed("/b.rss", ["3"])
    a, b = site.url("/a.rss"), site.url("/b.rss")
    bg = BackgroundWatch(settings, Ingestor(settings, embedder=embedder))
    try:
        assert bg.start() is False and not bg.running  # no feed yet: the folder is not claimed
        assert bg.add(a) is True and bg.running
        assert bg.add(a) is False  # already watched
        with pytest.raises(ConfigError, match="not a feed URL"):
            bg.add("file:///etc/passwd")
        wait_for(lambda: len(stored(settings)) == 2 and bg.status()[a].last_poll)

        # While it runs, no other watcher may poll this folder.
        with pytest.raises(ConfigError, match="already running"):
            Watcher(settings).run([b], once=True)

        bg.add(b)  # polled at once, although a's next poll is 15 minutes away
        wait_for(lambda: len(stored(settings)) == 3)
        site.set_feed("/a.rss", ["4", "1", "2"])
        b_polled = bg.status()[b].last_poll
        threading.Event().wait(1.1)  # last_poll has whole seconds: the next poll of b shows as a new value
        bg.poll_now()
        wait_for(lambda: len(stored(settings)) == 4 and bg.status()[a].new_items == 1)
        wait_for(lambda: bg.status()[b].last_poll != b_polled)  # b was due now too

        assert bg.remove(b) is True and set(bg.status()) == {a}
        assert set(feed_status(settings)) == {a}  # saved: a restart watches a only
        polls = lambda path: sum(p == path for p, _, _ in site.requests)  # noqa: E731
        polls_of_a, polls_of_b = polls("/a.rss"), polls("/b.rss")
        bg.poll_now()
        wait_for(lambda: polls("/a.rss") == polls_of_a + 1)
        assert polls("/b.rss") == polls_of_b  # no longer watched
    finally:
        bg.stop()
    assert not bg.running

    # Another process watching the folder: this one shows its saved status and refuses edits.
    other = Watcher(settings)
    with other.lock():
        bg2 = BackgroundWatch(settings)
        assert bg2.start() is False and "already running" in bg2.blocked
        assert set(bg2.status()) == {a}
        with pytest.raises(ConfigError, match="add or remove its feeds there"):
            bg2.add(b)
    assert bg2.start() is True  # the other one stopped: this one takes over the saved feeds
    bg2.stop()


def test_configured_feeds_are_watched(site, tmp_path, embedder):
    from ingest.watch import BackgroundWatch
    from rag.config import Settings

    site.set_feed("/a.rss", ["5"])
    s = Settings(data_dir=tmp_path / "byline", generator="extractive", watch_feeds=[site.url("/a.rss")])
    bg = BackgroundWatch(s, Ingestor(s, embedder=embedder))
    try:
        assert bg.start() is True
        wait_for(lambda: len(stored(s)) == 1)
    finally:
        bg.stop()
    with pytest.raises(ValueError, match="not a feed URL"):
        Settings(data_dir=tmp_path / "x", watch_feeds=["ftp://example.org/feed"])
