"""Readers for every input Byline takes: files, folders, URLs and RSS/Atom feeds.

Each reader yields ``Article`` objects or ``IngestError`` values (never raises for one bad item),
so a batch always goes on past a broken file, entry or page.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

from ingest.article import Article, article_from_record, normalize_text, parse_date
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
FEED_SUFFIXES = {".rss", ".atom", ".xml"}
SUPPORTED = TEXT_SUFFIXES | MD_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | PDF_SUFFIXES | FEED_SUFFIXES

MAX_FILE_BYTES = 20 * 1024 * 1024  # a bigger "article" is a mistake (a dump, a binary), not news
HTTP_TIMEOUT = 15.0


# --- decoding -------------------------------------------------------------------------------------
def decode_bytes(data: bytes, source: str, charset: str = "") -> str:
    """Decode text in UTF-8 (with or without BOM), UTF-16 (BOM), else CP1252/Latin-1; reject binaries.

    ``charset`` is a hint from an HTTP Content-Type header, tried after the BOMs and UTF-8.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return _check_text(data[3:].decode("utf-8", errors="replace"), source)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _check_text(data.decode("utf-16", errors="replace"), source)
    sample = data[:8192]
    if b"\x00" in sample:
        # UTF-16 without a BOM: one half of the bytes is (almost) all zero and the other is not.
        # Anything else with NULs is binary (an image, an archive, an office file).
        n = len(sample) / 2
        if len(sample) >= 4:
            odd, even = sample[1::2].count(0), sample[0::2].count(0)
            if odd > n * 0.4 and even < n * 0.1:
                return _check_text(data.decode("utf-16-le", errors="replace"), source)
            if even > n * 0.4 and odd < n * 0.1:
                return _check_text(data.decode("utf-16-be", errors="replace"), source)
        raise IngestError(source, "binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if charset:
        try:
            return _check_text(data.decode(charset), source)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; Latin-1 maps every byte, so nothing is lost.
        text = data.decode("latin-1")
    return _check_text(text, source)


def _check_text(text: str, source: str) -> str:
    """Reject decoded "text" that is mostly control characters or replacement marks (a binary)."""
    head = text[:4000]
    bad = sum(1 for ch in head if (ord(ch) < 32 and ch not in "\n\r\t\f") or ch == "\ufffd")
    if head and bad > max(40, len(head) * 0.05):
        raise IngestError(source, "binary file, not text")
    return text


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
def parse_html(html: str, source: str, url: str = "") -> Article:
    """Main text via trafilatura (boilerplate dropped); metadata from <title>, <meta> and JSON-LD."""
    import trafilatura

    data: dict[str, Any] = {}
    # Precision first (drops teasers and link lists); a short page it rejects gets a second, recall-first try.
    for mode in ({"favor_precision": True}, {"favor_recall": True}):
        try:
            raw = trafilatura.extract(html, url=url or None, output_format="json", with_metadata=True,
                                      include_comments=False, include_tables=False, **mode)
        except Exception as exc:  # noqa: BLE001 - lxml raises on some broken pages
            raise IngestError(source, f"cannot parse HTML: {exc}") from None
        data = json.loads(raw) if raw else {}
        if (data.get("text") or "").strip():
            break
    ld = _json_ld(html)
    text = data.get("text") or ""
    if not text.strip():
        raise IngestError(source, "no article text found in the HTML")
    title = ld.get("headline") or data.get("title") or ""
    date = ld.get("datePublished") or data.get("date")
    author = ld.get("author") or data.get("author") or ""
    if isinstance(author, list):
        author = ", ".join(a.get("name", "") if isinstance(a, dict) else str(a) for a in author)
    elif isinstance(author, dict):
        author = author.get("name", "")
    publisher = ld.get("publisher")
    if isinstance(publisher, dict):
        publisher = publisher.get("name")
    art = Article(
        text=text,
        title=_as_str(title),
        # trafilatura's JSON output calls the site name "source-hostname" and the page URL "source".
        source=_as_str(publisher or data.get("sitename") or data.get("source-hostname") or data.get("hostname")),
        author=str(author),
        published_at=parse_date(date, where=source),
        url=url or _as_str(ld.get("url")) or _as_str(data.get("url") or data.get("source")),
        category=str(data.get("categories") or ""),
        origin=source,
    )
    return _need_text(art, source)


def _as_str(v: Any) -> str:
    """JSON-LD values can be lists or objects; take the first plain string."""
    if isinstance(v, list):
        v = v[0] if v else ""
    if isinstance(v, dict):
        v = v.get("@id") or v.get("url") or v.get("name") or ""
    return str(v or "")


def _json_ld(html: str) -> dict[str, Any]:
    """The first NewsArticle-like JSON-LD object in the page, if any."""
    for m in re.finditer(r"<script[^>]+application/ld\+json[^>]*>(.*?)</script>", html, re.S | re.I):
        try:
            obj = json.loads(m.group(1).strip())
        except ValueError:
            continue
        stack = [obj]
        while stack:
            o = stack.pop()
            if isinstance(o, list):
                stack.extend(o)
            elif isinstance(o, dict):
                if "@graph" in o:
                    stack.extend(o["@graph"] if isinstance(o["@graph"], list) else [o["@graph"]])
                t = o.get("@type")
                types = t if isinstance(t, list) else [t]
                if any(str(x).endswith(("Article", "NewsArticle", "BlogPosting", "Report")) for x in types if x):
                    return o
    return {}


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
def looks_like_feed(data: bytes | str, content_type: str = "") -> bool:
    head = (data[:2000].decode("utf-8", "ignore") if isinstance(data, bytes) else data[:2000]).lower()
    if any(t in content_type for t in ("rss", "atom")):
        return True
    return "<rss" in head or ("<feed" in head and "atom" in head) or "<rdf:rdf" in head


def parse_feed(data: bytes, source: str, *, fetch_pages: bool = True) -> Iterator[Item]:
    """Each feed entry becomes an article: its linked page when it can be fetched, else the entry's own text."""
    import feedparser

    feed = feedparser.parse(data)
    if feed.bozo and not feed.entries:
        yield IngestError(source, f"broken feed: {feed.get('bozo_exception')}")
        return
    if not feed.entries:
        yield IngestError(source, "no entries in the feed (not an RSS/Atom feed?)")
        return
    outlet = feed.feed.get("title", "") if feed.get("feed") else ""
    for n, e in enumerate(feed.entries):
        where = f"{source}#{n}"
        link = e.get("link", "")
        date = e.get("published") or e.get("updated") or e.get("created")
        page: Article | None = None
        if fetch_pages and link.startswith(("http://", "https://")):
            try:
                page = fetch_url_article(link)
            except IngestError as exc:
                log.info("feed entry %s: page not used (%s); using the entry text", where, exc.reason)
            except Exception as exc:  # noqa: BLE001 - a broken page falls back to the entry text too
                log.info("feed entry %s: page not used (%s: %s); using the entry text", where, type(exc).__name__, exc)
        if page is not None:
            page.title = page.title or e.get("title", "")
            page.source = page.source or outlet
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
            yield IngestError(where, "feed entry has no text and its page could not be read")
            continue
        yield Article(text=body, title=e.get("title", ""), source=outlet, author=e.get("author", ""),
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
def _http_get(url: str) -> tuple[bytes, str, str]:
    """GET a URL: (body, content type, final URL). Every failure is an IngestError naming the URL."""
    import httpx

    timeout = float(HTTP_TIMEOUT)  # read at call time so tests and callers can lower it
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout, headers={"User-Agent": "Byline/0.1 (+news archive ingester)"}) as client:
            with client.stream("GET", url) as r:
                if r.status_code >= 400:
                    raise IngestError(url, f"HTTP {r.status_code} {r.reason_phrase}".rstrip())
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_FILE_BYTES:
                    raise IngestError(url, f"response too large ({int(declared) / 1e6:.1f} MB > {MAX_FILE_BYTES / 1e6:.0f} MB)")
                # Stream with a cap, so a huge or endless response cannot fill memory.
                buf = bytearray()
                for part in r.iter_bytes():
                    buf += part
                    if len(buf) > MAX_FILE_BYTES:
                        raise IngestError(url, f"response too large (> {MAX_FILE_BYTES / 1e6:.0f} MB)")
                return bytes(buf), r.headers.get("content-type", "").lower(), str(r.url)
    except httpx.TimeoutException:
        raise IngestError(url, f"timed out after {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise IngestError(url, f"invalid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise IngestError(url, f"cannot fetch: {exc or type(exc).__name__}") from None


def _charset(ctype: str) -> str:
    m = re.search(r"charset=[\"']?([\w.:-]+)", ctype)
    return m.group(1) if m else ""


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
    text = decode_bytes(data, url, _charset(ctype))
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


def fetch_url_article(url: str) -> Article:
    """The one article at a URL (a feed entry's page). Raises IngestError."""
    data, ctype, final = _http_get(url)
    items = list(_parse_response(data, ctype, url, final))
    for item in items:
        if isinstance(item, Article):
            return item
    err = next((i for i in items if isinstance(i, IngestError)), None)
    raise err or IngestError(url, "no article at this URL")


def load_url(url: str) -> Iterator[Item]:
    try:
        data, ctype, final = _http_get(url)
        if looks_like_feed(data, ctype):
            yield from parse_feed(data, url)
        else:
            yield from _parse_response(data, ctype, url, final)
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
        text = decode_bytes(data, source)
        if suffix in JSONL_SUFFIXES:
            yield from parse_json_records(text, source, lines=True)
        elif suffix in JSON_SUFFIXES:
            yield from parse_json_records(text, source, lines=False)
        elif suffix in HTML_SUFFIXES:
            yield parse_html(text, source)
        elif suffix in FEED_SUFFIXES:
            yield from parse_feed(data, source, fetch_pages=False)
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


def load_sources(sources: Iterable[str | Path]) -> Iterator[Item]:
    """Everything the user named: files, folders (recursively), http(s) URLs and feed URLs."""
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
