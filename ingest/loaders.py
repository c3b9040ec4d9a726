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
def decode_bytes(data: bytes, source: str) -> str:
    """Decode text in UTF-8 (with or without BOM), UTF-16 (BOM), else Latin-1/CP1252; reject binaries."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    sample = data[:8192]
    if b"\x00" in sample:
        # UTF-16 without a BOM shows as every other byte zero; anything else with NULs is binary.
        if len(sample) >= 4 and sample[1::2].count(0) > len(sample) * 0.4:
            return data.decode("utf-16-le", errors="replace")
        if len(sample) >= 4 and sample[0::2].count(0) > len(sample) * 0.4:
            return data.decode("utf-16-be", errors="replace")
        raise IngestError(source, "binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        ctrl = sum(1 for ch in text[:4000] if ord(ch) < 32 and ch not in "\n\r\t\f")
        if ctrl > 40:
            raise IngestError(source, "binary file, not text") from None
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
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_HEADER_LINE = re.compile(r"^(title|source|outlet|author|date|published|published_at|url|link|category)\s*:\s*(.+)$", re.I)


def parse_text_document(text: str, source: str) -> Article:
    """Text or Markdown with optional YAML front matter (or ``Key: value`` header lines in .txt)."""
    meta: dict[str, Any] = {}
    m = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if m:
        import yaml

        try:
            loaded = yaml.safe_load(m.group(1))
        except yaml.YAMLError as exc:
            raise IngestError(source, f"bad YAML front matter: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise IngestError(source, "front matter is not a mapping of fields")
        meta = loaded or {}
        body = text.lstrip("\ufeff")[m.end() :]
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

    try:
        raw = trafilatura.extract(html, url=url or None, output_format="json", with_metadata=True, include_comments=False, include_tables=False, favor_precision=True)
    except Exception as exc:  # noqa: BLE001 - lxml raises on some broken pages
        raise IngestError(source, f"cannot parse HTML: {exc}") from None
    data = json.loads(raw) if raw else {}
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
        title=str(title),
        source=str(publisher or data.get("sitename") or data.get("hostname") or ""),
        author=str(author),
        published_at=parse_date(date, where=source),
        url=url or data.get("url") or ld.get("url") or "",
        category=str(data.get("categories") or ""),
        origin=source,
    )
    return _need_text(art, source)


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
    if lines:
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            where = f"{source}:{n}"
            try:
                rec = json.loads(line)
            except ValueError as exc:
                yield IngestError(where, f"invalid JSON line: {exc}")
                continue
            yield _record(rec, where)
        return
    try:
        obj = json.loads(text)
    except ValueError as exc:
        yield IngestError(source, f"invalid JSON: {exc}")
        return
    if isinstance(obj, dict):
        for key in ("articles", "items", "data", "records", "results"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
    records = obj if isinstance(obj, list) else [obj]
    for n, rec in enumerate(records):
        yield _record(rec, f"{source}[{n}]" if isinstance(obj, list) else source)


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
    title = str(info.get("/Title") or "") if info else ""
    return Article(
        text=text,
        title=title or Path(source).stem,
        author=str(info.get("/Author") or "") if info else "",
        published_at=_pdf_date(info.get("/CreationDate") if info else None, source),
        origin=source,
    )


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
    import httpx

    try:
        with httpx.Client(follow_redirects=True, timeout=HTTP_TIMEOUT, headers={"User-Agent": "Byline/0.1 (+news archive ingester)"}) as client:
            r = client.get(url)
    except httpx.TimeoutException:
        raise IngestError(url, f"timed out after {HTTP_TIMEOUT:.0f} s") from None
    except httpx.HTTPError as exc:
        raise IngestError(url, f"cannot fetch: {exc}") from None
    if r.status_code >= 400:
        raise IngestError(url, f"HTTP {r.status_code} {r.reason_phrase}")
    if len(r.content) > MAX_FILE_BYTES:
        raise IngestError(url, "response too large")
    return r.content, r.headers.get("content-type", ""), str(r.url)


def fetch_url_article(url: str) -> Article:
    data, ctype, final = _http_get(url)
    if "pdf" in ctype or data[:5] == b"%PDF-":
        art = parse_pdf(data, url)
        art.url = final
        return art
    text = decode_bytes(data, url)
    if "json" in ctype:
        items = list(parse_json_records(text, url, lines=False))
        arts = [a for a in items if isinstance(a, Article)]
        if not arts:
            raise IngestError(url, "no article in JSON response")
        return arts[0]
    if "html" in ctype or "<html" in text[:2000].lower() or "<body" in text[:5000].lower():
        return parse_html(text, url, url=final)
    return _need_text(Article(text=text, url=final, origin=url, title=final.rsplit("/", 1)[-1]), url)


def load_url(url: str) -> Iterator[Item]:
    try:
        data, ctype, final = _http_get(url)
    except IngestError as exc:
        yield exc
        return
    try:
        if looks_like_feed(data, ctype):
            yield from parse_feed(data, url)
            return
        if "pdf" in ctype or data[:5] == b"%PDF-":
            art = parse_pdf(data, url)
            art.url = final
            yield art
            return
        text = decode_bytes(data, url)
        if "json" in ctype:
            yield from parse_json_records(text, url, lines=False)
        elif "html" in ctype or "<html" in text[:2000].lower() or "<body" in text[:5000].lower():
            yield parse_html(text, url, url=final)
        else:
            art = parse_text_document(text, url)
            art.url = art.url or final
            art.id = ""
            art.__post_init__()
            yield art
    except IngestError as exc:
        yield exc


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
            files = list(iter_files(p))
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
