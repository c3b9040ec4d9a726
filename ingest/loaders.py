"""Readers for every input Byline takes: files, folders, URLs and RSS/Atom feeds.

Each reader yields ``Article`` objects or ``IngestError`` values (never raises for one bad item),
so a batch always goes on past a broken file, entry or page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Union
from urllib.parse import urljoin, urlsplit

from ingest.article import Article, article_from_record, clean_author, decode_entities, normalize_text, parse_date
from ingest.decode import charset_from_content_type, decode_bytes
from ingest.htmlmeta import (AUTHOR_KEYS, DATE_KEYS, first_date, is_default_date, ld_names, only_before_headline, page_author, page_title,
                             read_page, shows_day, url_date)
from rag.errors import IngestError
from rag.records import ARTICLE_LIST_KEYS, RecordError, iter_records

log = logging.getLogger(__name__)

Item = Union[Article, IngestError]

TEXT_SUFFIXES = {".txt", ".text"}
MD_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
PDF_SUFFIXES = {".pdf"}
FEED_SUFFIXES = {".rss", ".atom", ".xml", ".cdf"}
SUPPORTED = TEXT_SUFFIXES | MD_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | PDF_SUFFIXES | FEED_SUFFIXES

MAX_FILE_BYTES = 20 * 1024 * 1024  # a bigger "article" is a mistake (a dump, a binary), not news
HTTP_TIMEOUT = 15.0


def _read_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size == 0:
        raise IngestError(str(path), "empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise IngestError(str(path), f"file too large ({size / 1e6:.1f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
    return path.read_bytes()


def _need_text(article: Article, source: str) -> Article:
    if not article.text.strip():
        raise IngestError(source, "article has no text")
    return article


# --- plain text and markdown ---------------------------------------------------------------------
# YAML between '---' lines; the closing line may end the file, the block may be empty.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)
_HEADER_LINE = re.compile(
    r"^(title|headline|source|outlet|publisher|site|author|authors|byline|date|published|published_at|pubdate|"
    r"publish_date|url|link|canonical_url|category|section|tags)\s*:\s*(.+)$",
    re.I,
)


def parse_text_document(text: str, source: str) -> Article:
    """Text or Markdown with optional YAML front matter (or ``Key: value`` header lines in .txt)."""
    meta: dict[str, Any] = {}
    text = text.lstrip("\ufeff")
    m = _FRONT_MATTER.match(text)
    if m:
        import yaml

        try:
            loaded = yaml.safe_load(m.group(1))
        except yaml.YAMLError as exc:
            raise IngestError(source, f"bad YAML front matter: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise IngestError(source, "front matter is not a mapping of fields")
        meta = {str(k): v for k, v in (loaded or {}).items()}
        body = text[m.end() :]
    else:
        lines = text.split("\n")
        i = 0
        while i < len(lines) and i < 12 and _HEADER_LINE.match(lines[i].strip()):
            k, v = _HEADER_LINE.match(lines[i].strip()).groups()  # type: ignore[union-attr]
            meta[k.lower()] = v.strip()
            i += 1
        body = "\n".join(lines[i:]) if meta else text
    title = meta.get("title")
    if not title:
        # A Markdown '# Heading' on the first line is the title.
        h = re.match(r"\s*#\s+(.+)\n", body)
        if h:
            title = h.group(1).strip()
            body = body[h.end() :]
    record = dict(meta)
    record["title"] = title or ""
    record["body"] = body
    for k in ("body", "text", "content"):
        if k in meta and k != "body":
            record.pop(k, None)
    try:
        art = article_from_record(record, origin=source)
    except ValueError as exc:
        raise IngestError(source, str(exc)) from None
    if not art.title:
        art.title = Path(source).stem if "://" not in source else ""
    return art


# --- HTML ----------------------------------------------------------------------------------------
TINY_TEXT_CHARS = 500  # extracted text this short, from a page with this many times more text, is suspect
TINY_TEXT_RATIO = 20


def parse_html(html: str, source: str, url: str = "") -> Article:
    """Main text via trafilatura (boilerplate dropped); metadata from the page's own statements first
    (JSON-LD, ``<meta>``), then trafilatura's guesses, checked (see ``ingest.htmlmeta``)."""
    import trafilatura

    data: dict[str, Any] = {}
    # trafilatura's balanced mode: its precision mode cuts whole paragraphs from real articles (measured by
    # tests/bench/bench_pages.py); a page it finds nothing in gets a second, recall-first try.
    for mode in ({}, {"favor_recall": True}):
        try:
            raw = trafilatura.extract(html, url=url or None, output_format="json", with_metadata=True,
                                      include_comments=False, include_tables=False, **mode)
        except Exception as exc:  # noqa: BLE001 - lxml raises on some broken pages
            raise IngestError(source, f"cannot parse HTML: {exc}") from None
        data = json.loads(raw) if raw else {}
        if (data.get("text") or "").strip():
            break
    pm = read_page(html)
    ld, meta = pm.ld, pm.meta
    text = _article_text(data.get("text") or "", pm, source)
    if not text.strip():
        raise IngestError(source, "no article text found in the HTML")
    page_url = _canonical_url(url, [_as_str(ld.get("url")), pm.canonical, meta.get("og:url", ""), _as_str(data.get("url") or data.get("source"))])
    publisher = ld_names(ld.get("publisher"))
    sites = [*publisher, meta.get("og:site_name", ""), _as_str(data.get("sitename")), urlsplit(page_url).hostname or "", *pm.site_names]
    title = page_title([_as_str(ld.get("headline")), meta.get("og:title", ""), meta.get("twitter:title", ""), pm.title,
                        _as_str(data.get("title"))], pm.h1s, sites, pm.h1_parts)
    art = Article(
        text=text,
        title=title,
        # trafilatura's JSON output calls the site name "source-hostname" and the page URL "source".
        source=next((s for s in (*publisher, meta.get("og:site_name", ""), _as_str(data.get("sitename")),
                                 _as_str(data.get("source-hostname")), _as_str(data.get("hostname"))) if s), ""),
        author=_page_author(ld, meta, _as_str(data.get("author")), publisher, sites, pm.bylines),
        published_at=_page_date(html, pm, data.get("date"), page_url, source),
        url=page_url,
        category=str(data.get("categories") or ""),
        origin=source,
    )
    return _need_text(art, source)


def _canonical_url(fetched: str, declared: list[str]) -> str:
    """The page's own URL (JSON-LD url, rel=canonical, og:url) over the address it was fetched from, so a
    page saved as a file and the same page fetched (with ?utm_... or through a feed) are one article.

    A declared URL pointing at a site's front page is ignored for a deeper fetched page: some CMSs
    put their home page in every page's canonical link, which would make every story one article."""
    for cand in declared:
        if not cand.strip():
            continue
        cand = urljoin(fetched, cand.strip()) if fetched else cand.strip()
        parts = urlsplit(cand)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        if fetched and parts.path.strip("/") == "" and urlsplit(fetched).path.strip("/"):
            continue
        return cand
    return fetched


def _article_text(text: str, pm: Any, source: str) -> str:
    """trafilatura's text, or the JSON-LD ``articleBody`` when that holds much more (a caption-only extraction)."""
    body = _as_str(pm.ld.get("articleBody"))
    if body and "<" in body:
        body = _html_to_text(body)
    body = normalize_text(decode_entities(body)) if body else ""
    n = len(normalize_text(text))
    if len(body) > max(2 * n, 200):
        if n:
            log.info("%s: using the JSON-LD articleBody (%d characters) over the extracted text (%d)", source, len(body), n)
        return body
    if n and n < TINY_TEXT_CHARS and pm.visible_chars > TINY_TEXT_RATIO * n:
        log.warning("%s: only %d characters of article text found in a page with %d characters of text; "
                    "the stored text may be a caption or teaser", source, n, pm.visible_chars)
    return text


def _page_author(ld: dict[str, Any], meta: dict[str, str], guessed: str, publisher: list[str], sites: list[str],
                 bylines: list[str]) -> str:
    """The JSON-LD author (a person, not the publisher), else the author <meta>, else the page's byline markup or
    labelled byline line, else trafilatura's guess; the first that names someone other than the site (see
    ``page_author``). A <meta> login name ("ines_duarte") yields to a byline that spells the name."""
    people = [n for n in ld_names(ld.get("author"), people_only=True) if n not in publisher]
    stated = [meta.get(key, "") for key in AUTHOR_KEYS]
    logins = [v for v in stated if re.fullmatch(r"[\w.-]*_[\w.-]*", v)]
    stated = [v for v in stated if v not in logins]
    for cand in ("; ".join(people), *stated, *bylines, *logins, guessed, "; ".join(ld_names(ld.get("author")))):
        v = page_author(cand, sites) if not cand.startswith(("http://", "https://")) else ""
        if v:
            # read_page gives the JSON-LD author as a list
            return _full_name(v, [*bylines, *(_as_str(a.get("description")) for a in ld.get("author") or [] if isinstance(a, dict))])
    return ""


def _full_name(name: str, texts: list[str]) -> str:
    """A byline of one first name ("Stefanus") as the full name the page spells beside it: in the author's own
    JSON-LD description ("Stefanus Stahl - Maschinenbauer …") or another byline ("Pamela Anderson" on her own
    site, whose name it is, so ``page_author`` took it for the site's). Only a capitalised word right after the
    name counts; a site's name does not ("India" on India Post is the site, not a person)."""
    if " " in name or not name[:1].isupper():
        return name
    for text in texts:
        if m := re.search(rf"(?<![\w.-]){re.escape(name)}\s+([A-ZÀ-ÖØ-Þ][\w'’-]+)(?![\w.@])", text or ""):
            return f"{name} {m.group(1)}"
    return name


def _page_date(html: str, pm: Any, guessed: Any, page_url: str, source: str) -> Any:
    """The article's own date (JSON-LD, <meta>, a line labelled "Published …", the URL), else trafilatura's guess
    when it is not a vocabulary URL's or a site banner's date, or a bare year, and the headline shows it, else the
    dateline under the headline. When the statements disagree, the one the page shows wins. A bare January 1st, a
    day more than two days after the URL's, or an unstated day other than the URL's yields to the URL's date, and a
    UTC time stamp to the local day the URL, or the dateline by the headline, spells."""
    from_url = url_date(page_url)
    d = None
    said_utc = False  # the page wrote its time stamp in UTC (not a local time given without a zone)
    # A candidate that cannot be read ("Monday", "TBD") or is a bare year (a cited work's "1988" in a reference
    # list's microdata is no day) gives way to the next: not worth a warning.
    stated = [(v, parse_date(v, where=source, quiet=True)) for v in dict.fromkeys(
        (_as_str(pm.ld.get("datePublished")), *(pm.meta.get(k, "") for k in DATE_KEYS), pm.dateline))
        if v and not re.fullmatch(r"\s*\d{4}\s*", v)]
    stated = [(v, x) for v, x in stated if x is not None]
    if stated:
        # When the page's statements disagree, the first whose day the page shows (give or take a day: a time zone) wins.
        shown = [(v, x) for v, x in stated if any(shows_day(pm.visible_text, x.date() + dt.timedelta(days=k)) for k in (0, -1, 1))]
        v, d = (shown or stated)[0]
        said_utc = bool(re.search(r"(?:Z|[+-]00:?00|GMT|UTC)\s*$", v.strip(), re.I))
    if d is None and guessed:
        g = parse_date(guessed, where=source, quiet=True)
        if g is not None and ((g.year, g.month) in pm.namespace_months or only_before_headline(html, g.date())):
            log.info("%s: date %s looks like a namespace's or a site banner's; not used", source, g.date())
            g = None
        # A guessed January 1st at midnight is a year found somewhere on the page (a copyright line), not a day.
        d = None if g is not None and is_default_date(g) else g
    if not stated and not (d is not None and shows_day(_near_headline(pm), d.date())):
        # No stated date, and no guess shown by the headline (trafilatura may take a modified date or a comment's):
        # a dateline right under the headline ("Von Ann Lee, 07 Dezember, 2022") is the article's.
        line = first_date(_near_headline(pm, before=0, after=200))
        d = (parse_date(line, where=source, quiet=True) if line else None) or d
    # The URL's day is fixed when a story first appears: a stated day well after it is a re-publication or a move,
    # and a day read from the text (a dateline, trafilatura's guess) that differs from it is another event's.
    if from_url and (d is None or (is_default_date(d) and d.year == from_url.year) or (d.date() - from_url).days > 2
                     or (not stated and d.date() != from_url)):
        return parse_date(from_url, where=source)
    if d is not None and d.utcoffset() == dt.timedelta(0):
        # A UTC time stamp on a page whose URL, or else whose headline's surroundings (and not the UTC day), spell
        # the neighbouring day: the page's local day. The same instant, in the nearest zone with that day.
        day = from_url
        if not day and said_utc:
            near, other = _near_headline(pm), d.date() + dt.timedelta(days=1 if d.hour >= 12 else -1)
            day = other if shows_day(near, other) and not shows_day(near, d.date()) else None
        if day and day != d.date():
            for hours in sorted(range(-12, 15), key=abs):
                local = d.astimezone(dt.timezone(dt.timedelta(hours=hours)))
                if local.date() == day:
                    return local
    return d


def _near_headline(pm: Any, before: int = 300, after: int = 600) -> str:
    """The page's text around its first ``<h1>``, where a dateline stands ("" without one)."""
    h1 = " ".join(pm.h1_parts[0]) if pm.h1_parts else ""
    at = pm.visible_text.find(h1) if h1 else -1
    return pm.visible_text[max(0, at - before): at + len(h1) + after] if at >= 0 else ""


def _as_str(v: Any) -> str:
    """JSON-LD values can be lists or objects; take the first plain string."""
    if isinstance(v, list):
        v = v[0] if v else ""
    if isinstance(v, dict):
        v = v.get("@id") or v.get("url") or v.get("name") or ""
    return str(v or "")


# --- JSON / JSONL --------------------------------------------------------------------------------
def parse_json_records(text: str, source: str, lines: bool) -> Iterator[Item]:
    """Records from JSON or JSON Lines; a file with no record at all is one error, not silence."""
    n = 0
    for item in _json_records(text, source, lines):
        n += 1
        yield item
    if n == 0:
        yield IngestError(source, "no articles in the file (empty list or only blank lines)")


def _json_records(text: str, source: str, lines: bool) -> Iterator[Item]:
    for item in iter_records(text, source, lines=lines, list_keys=ARTICLE_LIST_KEYS):
        if isinstance(item, RecordError):
            yield IngestError(item.where, item.reason)
        else:
            yield _record(item.value, item.where)


def _record(rec: Any, where: str) -> Item:
    try:
        return article_from_record(rec, origin=where)
    except ValueError as exc:
        return IngestError(where, str(exc))


# --- PDF -----------------------------------------------------------------------------------------
def parse_pdf(data: bytes, source: str) -> Article:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(p.extract_text() or "") for p in reader.pages]
        info = reader.metadata or {}
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken files
        raise IngestError(source, f"cannot read PDF: {exc}") from None
    text = "\n\n".join(pages)
    if not normalize_text(text):
        raise IngestError(source, "PDF has no text layer (scanned image?); run OCR first")
    title = _pdf_field(info, "/Title")
    return Article(
        text=text,
        title=title or Path(source).stem,
        author=_pdf_field(info, "/Author"),
        published_at=_pdf_date(info.get("/CreationDate") if info else None, source),
        origin=source,
    )


# What PDF writers put in /Title and /Author when nobody set them (reportlab, Word, LaTeX).
_PDF_PLACEHOLDERS = {"untitled", "anonymous", "unknown", "unspecified", "none", "microsoft word", "(anonymous)"}


def _pdf_field(info: Any, key: str) -> str:
    try:
        v = str(info.get(key) or "").strip() if info else ""
    except Exception:  # noqa: BLE001 - broken info dictionaries
        return ""
    return "" if v.lower() in _PDF_PLACEHOLDERS or v.lower().startswith("microsoft word -") else v


def _pdf_date(v: Any, source: str) -> Any:
    if not v:
        return None
    s = str(v)
    m = re.match(r"D:(\d{4})(\d{2})?(\d{2})?", s)
    if m:
        return parse_date("-".join(x for x in m.groups() if x), where=source)
    return parse_date(s, where=source)


# --- feeds ---------------------------------------------------------------------------------------
def read_feed(data: bytes, content_type: str = "") -> Any:
    """The parsed feed when ``data`` is an RSS, Atom or CDF feed, else None.

    Decided by parsing, not by looking at the text: feedparser reads the bytes with its own
    encoding rules (BOMs, UTF-16/32, the XML declaration, the HTTP charset).
    """
    import feedparser

    feed = feedparser.parse(data, response_headers={"content-type": content_type} if content_type else None)
    # CDF feeds have entries but no version; an empty RSS/Atom feed has a version but no entries.
    return feed if feed.entries or feed.get("version") else None


def parse_feed(data: bytes, source: str, *, fetch_pages: bool = True, content_type: str = "") -> Iterator[Item]:
    """Each feed entry becomes an article: its linked page when it can be fetched, else the entry's own text."""
    feed = read_feed(data, content_type)
    if feed is None:
        yield IngestError(source, "not an RSS, Atom or CDF feed (no entries found)")
        return
    yield from feed_articles(feed, source, fetch_pages=fetch_pages)


def feed_articles(feed: Any, source: str, *, fetch_pages: bool) -> Iterator[Item]:
    if not feed.entries:
        reason = f"broken feed: {feed.get('bozo_exception')}" if feed.bozo else "no entries in the feed"
        yield IngestError(source, reason)
        return
    outlet = feed.feed.get("title", "") if feed.get("feed") else ""
    for n, e in enumerate(feed.entries):
        where = f"{source}#{n}"
        link = e.get("link", "")
        date = e.get("published") or e.get("updated") or e.get("created")
        # The raw field, cleaned here: feedparser's own split of "mail@host (Name)" cuts long domains wrongly.
        author = clean_author(e.get("author", "")) or (e.get("author_detail") or {}).get("name", "")
        page: Article | None = None
        tried = fetch_pages and link.startswith(("http://", "https://"))
        if tried:
            try:
                page = fetch_url_article(link)
            except IngestError as exc:
                log.info("feed entry %s: page not used (%s); using the entry text", where, exc.reason)
            except Exception as exc:  # noqa: BLE001 - a broken page falls back to the entry text too
                log.info("feed entry %s: page not used (%s: %s); using the entry text", where, type(exc).__name__, exc)
        if page is not None:
            page.title = page.title or e.get("title", "")
            page.source = page.source or outlet
            page.author = page.author or clean_author(author)
            page.published_at = page.published_at or parse_date(date, where=where)
            page.origin = where
            yield page
            continue
        body = ""
        if e.get("content"):
            body = " ".join(c.get("value", "") for c in e["content"])
        body = body or e.get("summary", "") or e.get("description", "")
        if "<" in body:
            body = _html_to_text(body)
        if not normalize_text(body):
            why = ("its page could not be read" if tried else
                   "it links to no web page" if fetch_pages else "no summary or content in the entry")
            yield IngestError(where, f"feed entry has no text ({why})")
            continue
        yield Article(text=body, title=e.get("title", ""), source=outlet, author=author,
                      published_at=parse_date(date, where=where), url=link, origin=where)


def _html_to_text(fragment: str) -> str:
    import lxml.html

    try:
        doc = lxml.html.fromstring(f"<div>{fragment}</div>")
        for bad in doc.xpath("//script|//style"):
            bad.drop_tree()
        return doc.text_content()
    except Exception:  # noqa: BLE001
        return re.sub(r"<[^>]+>", " ", fragment)


# --- URLs ----------------------------------------------------------------------------------------
USER_AGENT = "Byline/0.1 (+news archive ingester)"


@dataclass(frozen=True)
class Fetched:
    status: int
    data: bytes  # empty for a 304
    content_type: str  # lower-cased
    url: str  # after redirects
    etag: str
    last_modified: str


def http_get(url: str, headers: dict[str, str] | None = None) -> Fetched:
    """GET a URL, its body capped at MAX_FILE_BYTES; ``headers`` may carry a feed's validators, and a 304 then
    comes back with no body. Every failure (4xx/5xx, network, too large) is an IngestError naming the URL."""
    import httpx

    timeout = float(HTTP_TIMEOUT)  # read at call time so tests and callers can lower it
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout, headers={"User-Agent": USER_AGENT, **(headers or {})}) as client:
            with client.stream("GET", url) as r:
                if r.status_code >= 400:
                    raise IngestError(url, f"HTTP {r.status_code} {r.reason_phrase}".rstrip())
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_FILE_BYTES:
                    raise IngestError(url, f"response too large ({int(declared) / 1e6:.1f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
                # Stream with a cap, so a huge or endless response cannot fill memory.
                buf = bytearray()
                if r.status_code != 304:
                    for part in r.iter_bytes():
                        buf += part
                        if len(buf) > MAX_FILE_BYTES:
                            raise IngestError(url, f"response too large (> {MAX_FILE_BYTES / 1e6:.0f} MB)")
                h = r.headers
                return Fetched(r.status_code, bytes(buf), h.get("content-type", "").lower(), str(r.url), h.get("etag", ""),
                               h.get("last-modified", ""))
    except httpx.TimeoutException:
        raise IngestError(url, f"timed out after {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise IngestError(url, f"invalid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise IngestError(url, f"cannot fetch: {exc or type(exc).__name__}") from None


def _is_html(ctype: str, text: str) -> bool:
    head = text[:5000].lower()
    return "html" in ctype or "<html" in head or "<body" in head or "<!doctype html" in head


def _parse_response(data: bytes, ctype: str, url: str, final: str) -> Iterator[Item]:
    """One fetched page (not a feed): HTML, PDF, JSON or plain text. Raises IngestError."""
    if "pdf" in ctype or data[:5] == b"%PDF-":
        art = parse_pdf(data, url)
        art.url = final
        art.id = ""
        art.__post_init__()  # id from the URL, like every other fetched article
        yield art
        return
    if not data.strip():
        raise IngestError(url, "empty response")
    text = decode_bytes(data, url, charset_from_content_type(ctype), declarations="json" not in ctype)
    if "json" in ctype or (not _is_html(ctype, text) and text.lstrip()[:1] in ("{", "[")):
        items = list(parse_json_records(text, url, lines=False))
        arts = [i for i in items if isinstance(i, Article)]
        if len(arts) == 1 and not arts[0].url:
            # A single record without its own link is the page at this URL.
            arts[0].url = final
            arts[0].id = ""
            arts[0].__post_init__()
        yield from items
    elif _is_html(ctype, text):
        yield parse_html(text, url, url=final)
    else:
        art = parse_text_document(text, url)
        art.url = art.url or final
        art.id = ""
        art.__post_init__()
        yield art


def _may_be_feed(data: bytes, ctype: str) -> bool:
    """Worth parsing as a feed: anything but PDF, JSON, and HTML that looks like HTML."""
    if "pdf" in ctype or "json" in ctype or data[:5] == b"%PDF-":
        return False
    return "html" not in ctype or not re.search(rb"<(?:html|body|!doctype\s+html)", data[:5000], re.I)


def fetch_url_article(url: str) -> Article:
    """The one article at a URL (a feed entry's page). Raises IngestError."""
    got = http_get(url)
    items = list(_parse_response(got.data, got.content_type, url, got.url))
    for item in items:
        if isinstance(item, Article):
            return item
    err = next((i for i in items if isinstance(i, IngestError)), None)
    raise err or IngestError(url, "no article at this URL")


def load_url(url: str) -> Iterator[Item]:
    try:
        got = http_get(url)
        data, ctype = got.data, got.content_type
        feed = read_feed(data, ctype) if _may_be_feed(data, ctype) else None
        if feed is not None:
            yield from feed_articles(feed, url, fetch_pages=True)
        else:
            yield from _parse_response(data, ctype, url, got.url)
    except IngestError as exc:
        yield exc
    except Exception as exc:  # noqa: BLE001 - one bad page must not end the batch
        log.exception("unexpected error reading %s", url)
        yield IngestError(url, f"unexpected error: {type(exc).__name__}: {exc}")


# --- files and folders ---------------------------------------------------------------------------
def load_file(path: Path) -> Iterator[Item]:
    source = str(path)
    suffix = path.suffix.lower()
    try:
        data = _read_bytes(path)
        if suffix in PDF_SUFFIXES:
            yield parse_pdf(data, source)
            return
        if suffix in FEED_SUFFIXES:
            yield from parse_feed(data, source, fetch_pages=False)  # feedparser decodes the bytes itself
            return
        # JSON is UTF-8 by definition, and its values may quote other pages' <meta charset>.
        text = decode_bytes(data, source, declarations=suffix not in JSON_SUFFIXES | JSONL_SUFFIXES)
        if suffix in JSONL_SUFFIXES:
            yield from parse_json_records(text, source, lines=True)
        elif suffix in JSON_SUFFIXES:
            yield from parse_json_records(text, source, lines=False)
        elif suffix in HTML_SUFFIXES:
            yield parse_html(text, source)
        else:
            yield parse_text_document(text, source)
    except IngestError as exc:
        yield exc
    except OSError as exc:
        yield IngestError(source, f"cannot read file: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the batch
        log.exception("unexpected error reading %s", source)
        yield IngestError(source, f"unexpected error: {type(exc).__name__}: {exc}")


def iter_files(root: Path) -> Iterator[Path]:
    """Supported files under a folder, sorted, skipping hidden files and READMEs that describe the corpus."""
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in SUPPORTED and p.name.lower() not in {"readme.md", "readme.txt"}:
            yield p


# Their log lines repeat, in library terms, problems Byline reports once in its own words
# (trafilatura logs "ERROR ... empty HTML tree" for a page Byline then names as having no text).
LIBRARY_LOGGERS = ("trafilatura", "htmldate", "courlan", "justext", "charset_normalizer", "readability")
_quieted: set[str] = set()


def quiet_libraries() -> None:
    """Show the parsing libraries' own log lines only when this package logs at INFO (``byline -v``)."""
    verbose = log.isEnabledFor(logging.INFO)
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET or name in _quieted:  # a level someone else set is left alone
            lg.setLevel(logging.NOTSET if verbose else logging.CRITICAL + 1)
            _quieted.add(name)


def load_sources(sources: Iterable[str | Path]) -> Iterator[Item]:
    """Everything the user named: files, folders (recursively), http(s) URLs and feed URLs."""
    quiet_libraries()
    for src in sources:
        s = str(src)
        if s.startswith(("http://", "https://")):
            yield from load_url(s)
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            try:
                files = list(iter_files(p))
            except OSError as exc:
                yield IngestError(s, f"cannot read folder: {exc.strerror or exc}")
                continue
            if not files:
                yield IngestError(s, f"no supported files in folder (looked for {', '.join(sorted(SUPPORTED))})")
            for f in files:
                yield from load_file(f)
        elif p.is_file():
            if p.suffix.lower() not in SUPPORTED:
                yield IngestError(s, f"unsupported file type {p.suffix or '(none)'!r}")
                continue
            yield from load_file(p)
        else:
            yield IngestError(s, "no such file, folder or URL")
