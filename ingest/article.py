"""The Article record, stable ids, content hashes and date parsing."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from rag.schema import chunk_header

log = logging.getLogger(__name__)

# Aliases seen in real article dumps (MultiHop-RAG, newspaper3k, news-please, RSS exports).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "headline", "name"),
    "source": ("source", "outlet", "publisher", "site_name", "site", "publication", "source_name"),
    "author": ("author", "authors", "byline", "creator", "writer"),
    "published_at": ("published_at", "published", "date", "pub_date", "pubdate", "published_date", "publish_date", "datetime", "date_published", "datePublished", "time", "timestamp", "created_at"),
    "url": ("url", "link", "href", "canonical_url", "uri", "permalink"),
    "body": ("body", "text", "content", "article", "article_text", "maintext", "description", "summary", "fulltext"),
    "category": ("category", "section", "categories", "tags"),
    "id": ("id", "article_id", "guid", "uid"),
}


def normalize_text(text: str) -> str:
    """NFC, unified newlines, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def decode_entities(s: str) -> str:
    """HTML entities decoded, twice-escaped ones too (``&amp;#039;`` -> ``'``)."""
    for _ in range(3):
        if "&" not in s:
            break
        new = unescape(s)
        if new == s:
            break
        s = new
    return s


# What bylines hold besides a name: CMS labels, link texts and placeholders.
_AUTHOR_PREFIX = re.compile(r"^(?:view all posts by|all posts by|more from|posts by|posted by|submitted by|written by|"
                            r"reported by|story by|words by|author:|by)\s*:?\s+", re.I)
_AUTHOR_JUNK = {"submitted", "posted", "admin", "administrator", "author", "authors", "unknown", "anonymous", "by",
                "none", "null", "n/a", "guest", "editor", "webmaster"}


def clean_author(author: str) -> str:
    """A byline as a name: ``support@example.com (Team)`` -> ``Team``, "View all posts by Ann Lee" -> "Ann Lee",
    "Submitted" or a bare e-mail address or URL -> ""."""
    names = []
    for part in re.split(r"\s*;\s*", " ".join(decode_entities(author or "").split())):
        m = re.fullmatch(r"\S+@\S+\s*\((.+)\)", part) or re.fullmatch(r"(.+?)\s*<\S+@\S+>", part)
        if m:
            part = m.group(1).strip()
        while True:
            stripped = _AUTHOR_PREFIX.sub("", part).strip()
            if stripped == part:
                break
            part = stripped
        if not part or part.lower().strip(".:") in _AUTHOR_JUNK or re.fullmatch(r"\S+@\S+|https?://\S+", part):
            continue
        names.append(part)
    return "; ".join(names)


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()


def parse_date(value: Any, *, where: str = "", quiet: bool = False) -> dt.datetime | None:
    """Parse a publication date from many formats; an unparseable one is logged and becomes None.

    Returns an aware datetime (UTC when no zone is given). ``quiet`` logs an unusable value at INFO
    only, for callers that have other candidates to try.
    """
    warn = log.info if quiet else log.warning
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        d = _from_number(value)
        if d is None:
            warn("%sunparseable date %r; kept as unknown", f"{where}: " if where else "", value)
            return None
    else:
        s = str(value).strip()
        d = None
        if re.fullmatch(r"-?\d{9,13}(\.\d+)?", s):
            # A Unix timestamp (seconds or milliseconds) that arrived as a string.
            d = _from_number(float(s))
        elif re.fullmatch(r"\d{8}", s):
            d = _from_number(int(s))
        if d is None:
            try:
                d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                pass
        if d is None:
            try:
                from email.utils import parsedate_to_datetime

                d = parsedate_to_datetime(s)
            except (TypeError, ValueError, IndexError):
                d = None
        if d is None:
            try:
                import dateparser

                # Only absolute dates: "yesterday" or "2 days ago" in a stored record has no fixed meaning,
                # and a bare "2024" must not silently become today's month of 2024.
                d = dateparser.parse(s, languages=None, settings={
                    "PREFER_DAY_OF_MONTH": "first", "PREFER_MONTH_OF_YEAR": "first", "RETURN_AS_TIMEZONE_AWARE": False,
                    "STRICT_PARSING": False, "REQUIRE_PARTS": ["year"], "PARSERS": ["timestamp", "custom-formats", "absolute-time"]})
            except Exception:  # noqa: BLE001 - dateparser raises many types on junk
                d = None
        if d is None:
            warn("%sunparseable date %r; kept as unknown", f"{where}: " if where else "", s[:80])
            return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    if not (1800 <= d.year <= 2200):
        warn("%simplausible date %r; kept as unknown", f"{where}: " if where else "", value)
        return None
    return d


def _from_number(value: float | int) -> dt.datetime | None:
    """A Unix timestamp in seconds or milliseconds, or a YYYYMMDD integer; None when it is neither."""
    if isinstance(value, int) and 18000101 <= value <= 22001231:
        try:
            return dt.datetime(value // 10000, value // 100 % 100, value % 100, tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    v = float(value)
    if v <= 0:  # 0 (or negative) is how many exports spell "no date"
        return None
    if v > 1e11:  # milliseconds
        v /= 1000.0
    try:
        return dt.datetime.fromtimestamp(v, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass
class Article:
    """One news article. ``text`` is the normalised body that chunk offsets refer to."""

    text: str
    title: str = ""
    source: str = ""
    author: str = ""
    published_at: dt.datetime | None = None
    url: str = ""
    category: str = ""
    origin: str = ""  # the file or URL it was read from
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.text = normalize_text(self.text or "")
        self.title = " ".join(decode_entities(self.title or "").split())
        self.source = " ".join(decode_entities(self.source or "").split())
        self.author = clean_author(self.author)
        self.url = (self.url or "").strip()
        if not self.id:
            self.id = article_id(self.url, self.text)

    @property
    def date_iso(self) -> str:
        return self.published_at.date().isoformat() if self.published_at else ""

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that ends up in the index changes."""
        parts = [self.title, self.source, self.author, self.published_at.isoformat() if self.published_at else "", self.url, self.category, self.text]
        return _sha("\x1f".join(parts))[:16]

    def header(self) -> str:
        """The line prefixed to every chunk for embedding and keyword search (not stored in offsets)."""
        return chunk_header(self.title, self.source, self.date_iso)


def article_id(url: str, text: str) -> str:
    """Stable id: hash of the normalised URL when there is one (so an edited article keeps its id, and
    the same page reached by another spelling of its URL is the same article), else of the text."""
    basis = identity_url(url) if url and url.strip() else normalize_text(text)
    return _sha(basis)[:16]


# Query parameters that say how a reader arrived, not which page it is.
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|_gl|ocid|cmpid|smid|"
                       r"ref|ref_src|ref_url|taid|at_medium|at_campaign|ito|itm_\w+|ns_\w+)$", re.I)


def identity_url(url: str) -> str:
    """A URL as an article's identity: https, no ``www.``, no default port, fragment, tracking parameters
    or trailing slash; host lower-cased. Returns the input, stripped, when it is not an absolute http(s) URL."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname.lower()
    host = host[4:] if host.startswith("www.") else host
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("https", host, path, query, ""))


def first(record: dict[str, Any], name: str) -> Any:
    """The first non-empty value among a field's aliases (case-insensitive keys)."""
    lower = {str(k).lower(): v for k, v in record.items()}
    for alias in FIELD_ALIASES[name]:
        v = lower.get(alias.lower())
        if v not in (None, "", [], {}):
            return v
    return None


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return ", ".join(_as_text(x) for x in v if x)
    if isinstance(v, dict):
        return str(v.get("name") or v.get("title") or v.get("text") or v.get("value") or v.get("@value") or "")
    return str(v)


def article_from_record(record: dict[str, Any], *, origin: str) -> Article:
    """Build an Article from a JSON-ish record with common field aliases. Raises ValueError when it has no text."""
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    body = first(record, "body")
    if isinstance(body, list):
        body = "\n\n".join(_as_text(x) for x in body)
    text = _as_text(body)
    if not normalize_text(text):
        raise ValueError("article has no text (body/text/content is empty or missing)")
    known = {a.lower() for names in FIELD_ALIASES.values() for a in names}
    extra = {k: v for k, v in record.items() if str(k).lower() not in known and isinstance(v, (str, int, float, bool))}
    rid = first(record, "id")
    url = _as_text(first(record, "url"))
    return Article(
        text=text,
        title=_as_text(first(record, "title")),
        source=_as_text(first(record, "source")),
        author=_as_text(first(record, "author")),
        published_at=parse_date(first(record, "published_at"), where=origin),
        url=url,
        category=_as_text(first(record, "category")),
        origin=origin,
        # A record's own id is kept only when it can be globally unique: "1" from two files would collide.
        id=str(rid) if rid not in (None, "") and not url and len(str(rid)) >= 8 else "",
        extra=extra,
    )
