"""What a news page says about itself: JSON-LD, ``<meta>`` tags, its URL; and cleaning of titles and dates.

The article's own statements (JSON-LD ``NewsArticle``, ``article:published_time``) come before
anything guessed from the page's text, because a guess can pick up a site banner's "today", a
namespace URL's date or a commenter's name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ingest.article import decode_entities

ARTICLE_TYPES = ("Article", "NewsArticle", "BlogPosting", "Report")

# <meta> keys (property, name or itemprop), best first.
DATE_KEYS = ("article:published_time", "og:published_time", "datepublished", "publishdate", "publish_date", "pubdate",
             "parsely-pub-date", "sailthru.date", "dc.date.issued", "dcterms.issued", "dc.date", "dcterms.date", "date")
AUTHOR_KEYS = ("author", "article:author", "parsely-author", "sailthru.author", "dc.creator", "dcterms.creator")
# Hosts whose URLs are vocabularies, not pages: their /2000/01/ is a version, not a publication date.
_NAMESPACE_HOSTS = re.compile(r"(?:^|\.)(?:w3\.org|purl\.org|xmlns\.com|ogp\.me|schema\.org|rdfs\.org|opengraphprotocol\.org)$")


@dataclass
class PageMeta:
    ld: dict[str, Any] = field(default_factory=dict)  # the NewsArticle-like JSON-LD object
    meta: dict[str, str] = field(default_factory=dict)  # lower-cased property/name/itemprop -> first content
    canonical: str = ""
    h1: str = ""
    visible_chars: int = 0  # the page's text outside scripts and styles
    namespace_months: set[tuple[int, int]] = field(default_factory=set)  # (year, month) in vocabulary URLs


def read_page(html: str) -> PageMeta:
    """Parse the page once for everything ``parse_html`` needs besides the main text."""
    import lxml.html

    pm = PageMeta(ld=json_ld(html))
    for m in re.finditer(r"https?://([\w.-]+)(?:/[^\s\"'<>]*?)?/((?:19|20)\d\d)/(\d\d)/", html):
        if _NAMESPACE_HOSTS.search(m.group(1).lower()):
            pm.namespace_months.add((int(m.group(2)), int(m.group(3))))
    try:
        # lxml refuses a str that still carries its XML encoding declaration.
        doc = lxml.html.fromstring(re.sub(r"\A\s*<\?xml[^>]*\?>", "", html))
    except Exception:  # noqa: BLE001 - lxml raises on empty or broken documents; trafilatura reports those
        return pm
    for el in doc.iter("meta"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or "").strip().lower()
        content = (el.get("content") or "").strip()
        if key and content and key not in pm.meta:
            pm.meta[key] = content
    for el in doc.iter("time"):
        # <time itemprop="datePublished" datetime="..."> carries the article's own date in microdata.
        if (el.get("itemprop") or "").lower() == "datepublished" and el.get("datetime"):
            pm.meta.setdefault("datepublished", el.get("datetime").strip())
    for el in doc.iter("link"):
        if "canonical" in (el.get("rel") or "").lower().split() and el.get("href"):
            pm.canonical = el.get("href").strip()
            break
    h1 = next(doc.iter("h1"), None)
    pm.h1 = " ".join(h1.text_content().split()) if h1 is not None else ""
    for bad in doc.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    body = doc.find("body")
    pm.visible_chars = len(" ".join((body if body is not None else doc).text_content().split()))
    return pm


def json_ld(html: str) -> dict[str, Any]:
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
                if any(str(x).endswith(ARTICLE_TYPES) for x in types if x):
                    return o
    return {}


def ld_names(value: Any, *, people_only: bool = False) -> list[str]:
    """Names in a JSON-LD author/publisher value (a string, an object, or a list of them)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, dict):
            if people_only and str(v.get("@type", "")).lower() == "organization":
                continue
            v = v.get("name", "")
        if isinstance(v, str) and v.strip() and not v.strip().startswith(("http://", "https://")):
            out.append(v.strip())
    return out


# --- titles ----------------------------------------------------------------------------------------
_SEPARATORS = r"\s+(?:\||--|—|–|-|::|·|»|«|/)\s+"
_DOMAIN = re.compile(r"^(?:www\.)?[\w-]+(?:\.[\w-]+)+$", re.I)


def _key(s: str) -> str:
    return re.sub(r"[\W_]+", "", s.lower())


def clean_title(title: str, site_names: list[str] = ()) -> str:  # type: ignore[assignment]
    """Entities decoded, and the site's name or a breadcrumb trail taken off the end.

    "Title | Site Name" loses "Site Name" when the page names its site so (og:site_name, publisher,
    host name); "Title -- Sott.net" loses a bare domain; "Title » Local » Noticias" loses a trail of
    short section names.
    """
    title = " ".join(decode_entities(title).split())
    sites = {_key(s) for s in site_names if s and _key(s)}
    sites |= {_key(re.sub(r"^www\.", "", s.lower()).split(".")[0]) for s in site_names if s and _DOMAIN.match(s)}
    parts = re.split(f"({_SEPARATORS})", title)
    # parts: [text, sep, text, sep, text ...]; drop trailing segments while they name the site.
    while len(parts) >= 3:
        last, sep = parts[-1].strip(), parts[-2].strip()
        k = _key(last)
        is_site = bool(k) and (k in sites or _DOMAIN.match(last) is not None or any(k == s or (len(s) > 3 and k.startswith(s)) for s in sites))
        is_crumb = sep in ("»", "«") and len(last.split()) <= 3
        if not (is_site or is_crumb):
            break
        parts = parts[:-2]
    cleaned = "".join(parts).strip()
    return cleaned if len(cleaned) >= 3 else title


# --- dates -----------------------------------------------------------------------------------------
_URL_DATE = re.compile(r"/((?:19|20)\d\d)[/-](\d{1,2})[/-](\d{1,2})(?=[/._-]|$)|/((?:19|20)\d\d)(\d\d)(\d\d)(?=/)")


def url_date(url: str) -> dt.date | None:
    """The date a URL's path spells (``/2013/8/3/``, ``/2013-08-03-``, ``/20130803/``), if any."""
    path = urlsplit(url).path if url else ""
    m = _URL_DATE.search(path)
    if not m:
        return None
    y, mo, d = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
    try:
        return dt.date(int(y), int(mo), int(d))
    except ValueError:
        return None


def is_default_date(d: dt.datetime) -> bool:
    """January 1st at midnight: what a year-only date or a CMS default becomes."""
    return (d.month, d.day, d.hour, d.minute, d.second) == (1, 1, 0, 0, 0)


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]


def only_before_headline(html: str, d: dt.date) -> bool:
    """True when the date appears in the page's markup only before the headline (a site banner's "today")."""
    h1 = re.search(r"<h1[\s>]", html, re.I)
    if not h1:
        return False
    mon = _MONTHS[d.month - 1]
    pats = [rf"\b0?{d.day}\.?\s*{mon[:3]}\w*\.?,?\s+{d.year}", rf"\b{mon[:3]}\w*\.?\s+{d.day}(?:st|nd|rd|th)?,?\s+{d.year}",
            rf"{d.year}-{d.month:02d}-{d.day:02d}", rf"\b0?{d.day}[./]0?{d.month}[./]{d.year}", rf"\b0?{d.month}/0?{d.day}/{d.year}"]
    hits = [m.start() for p in pats for m in re.finditer(p, html, re.I)]
    return bool(hits) and min(hits) < h1.start() and not any(h > h1.start() for h in hits)
