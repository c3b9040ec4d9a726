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
    h1s: list[str] = field(default_factory=list)  # the text of every non-empty <h1>, in page order
    h1_parts: list[list[str]] = field(default_factory=list)  # each <h1>'s text nodes (a kicker is often one)
    title: str = ""  # the <title> element
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
    if not pm.ld:
        # No article object, but a WebPage one (as some CMS plugins emit) still states the page's dates.
        page = json_ld(html, types=("WebPage",))
        if isinstance(page.get("datePublished"), str):
            pm.meta.setdefault("datepublished", page["datePublished"].strip())
    for el in doc.iter("time"):
        # <time itemprop="datePublished" datetime="..."> carries the article's own date in microdata.
        if (el.get("itemprop") or "").lower() == "datepublished" and el.get("datetime"):
            pm.meta.setdefault("datepublished", el.get("datetime").strip())
    for el in doc.iter("link"):
        if "canonical" in (el.get("rel") or "").lower().split() and el.get("href"):
            pm.canonical = el.get("href").strip()
            break
    for h in doc.iter("h1"):
        parts = [t for t in (" ".join(x.split()) for x in h.itertext()) if t]
        if parts:
            pm.h1s.append(" ".join(h.text_content().split()))
            pm.h1_parts.append(parts)
    t = doc.find(".//title")
    pm.title = " ".join(t.text_content().split()) if t is not None else ""
    for bad in doc.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    body = doc.find("body")
    pm.visible_chars = len(" ".join((body if body is not None else doc).text_content().split()))
    return pm


def json_ld(html: str, types: tuple[str, ...] = ARTICLE_TYPES) -> dict[str, Any]:
    """The first NewsArticle-like (or ``types``) JSON-LD object in the page, if any."""
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
                kinds = t if isinstance(t, list) else [t]
                if any(str(x).endswith(types) for x in kinds if x):
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
_SEPARATORS = r"\s+(?:\||--|—|–|-|::|·|»|«|//?)\s+"
_DOMAIN = re.compile(r"^(?:www\.)?[\w-]+(?:\.[\w-]+)+$", re.I)


def _key(s: str) -> str:
    return re.sub(r"[\W_]+", "", s.lower())


def _site_keys(site_names: list[str]) -> set[str]:
    """Comparison keys of a site's names: "The Valley Courier" -> "thevalleycourier", "www.kurier.example" -> "kurier"."""
    hosts = [re.sub(r"^www\.", "", s.strip().lower()) for s in site_names if s and _DOMAIN.match(s.strip())]
    return {k for k in (*map(_key, site_names), *map(_key, hosts), *(_key(h.split(".")[0]) for h in hosts)) if k}


def clean_title(title: str, site_names: list[str] = ()) -> str:  # type: ignore[assignment]
    """Entities decoded, and the site's name or a breadcrumb trail taken off the end.

    "Title | Site Name" loses "Site Name" when the page names its site so (og:site_name, publisher,
    host name); "Title -- Sott.net" loses a bare domain; "Title » Local » Noticias" loses a trail of
    short section names.
    """
    title = " ".join(decode_entities(title).split())
    sites = _site_keys(site_names)
    parts = re.split(f"({_SEPARATORS})", title)
    # A site name with a separator of its own ("Title | AOC media - Analyse Opinion Critique"): cut at the first
    # separator whose whole tail names the site.
    for i in range(1, len(parts) - 1, 2):
        if _key("".join(parts[i + 1:])) in sites and len("".join(parts[:i]).strip()) >= 3:
            parts = parts[:i]
            break
    # parts: [text, sep, text, sep, text ...]; drop trailing segments while they name the site.
    while len(parts) >= 3:
        last, sep = parts[-1].strip(), parts[-2].strip()
        k = _key(last)
        is_site = bool(k) and (k in sites or _DOMAIN.match(last) is not None or any(k == s or (len(s) > 3 and k.startswith(s)) for s in sites))
        is_crumb = sep in ("»", "«") and len(last.split()) <= 3 and len("".join(parts[:-2]).split()) > len(last.split())
        if not (is_site or is_crumb):
            break
        parts = parts[:-2]
    # "Site // Title", "domain.example | Title", "Blog Archive » Title": a leading site name or crumb goes too.
    while len(parts) >= 3 and (_key(parts[0]) in sites or _DOMAIN.match(parts[0].strip())
                               or (parts[1].strip() == "»" and len(parts[0].split()) <= min(3, len("".join(parts[2:]).split())))):
        parts = parts[2:]
    cleaned = re.sub(r"^[\s|/»·:–—-]+|[\s|/«·:–—-]+$", "", "".join(parts))  # a separator left at either end
    return cleaned if len(cleaned) >= 3 else title


def _words(s: str) -> list[str]:
    return re.findall(r"\w+", s.casefold())


def _within(short: list[str], long: list[str]) -> bool:
    return f" {' '.join(short)} " in f" {' '.join(long)} "


def _same_headline(h1: str, title: str) -> bool:
    """True when a stated title is the ``<h1>`` with decorations (a kicker, a site name) or in other words."""
    hw, tw = _words(h1), _words(title)
    if len(hw) < 2 or not tw:
        return False
    if _within(hw, tw):
        return True
    common = len(set(hw) & set(tw))
    return common >= 0.6 * max(len(set(hw)), len(set(tw)))


def page_title(stated: list[str], h1s: list[str], site_names: list[str], h1_parts: list[list[str]]) -> str:
    """The headline readers see: the first ``<h1>`` that one of the page's stated titles (JSON-LD headline,
    og:title, twitter:title, ``<title>``, best first) confirms, else the first stated title; cleaned.

    The stated titles often carry a kicker ("Siemens und die Kohlemine: …"), a site name or a rewrite for
    search and social media, while an ``<h1>`` alone may be the site's logo or a section name, or carry a
    kicker of its own in a separate element (then the stated title that its last elements spell is the headline).
    ``h1_parts`` holds each ``<h1>``'s text nodes.
    """
    raw = [" ".join(decode_entities(t).split()) for t in stated if t and t.strip()]
    # An <h1> that ends a stated title after a separator ("Story | Site") is the site's logo: its name.
    known = _site_keys(site_names)
    tails = {_key("".join(p[i + 1:])) for p in (re.split(f"({_SEPARATORS})", t) for t in raw) for i in range(1, len(p), 2)
             if _key(p[0]) not in known and not _DOMAIN.match(p[0].strip())}  # not "domain.example - Story"
    sites = [*site_names, *(h for h in h1s if _key(h) in tails)]
    keys = {_key(s) for s in sites if s}
    titles = [clean_title(t, sites) for t in raw]
    for n, h in enumerate(h1s):
        h = clean_title(h, sites)
        if _key(h) in keys:
            continue
        parts = h1_parts[n]
        kicked = {_key(" ".join(parts[i:])) for i in range(1, len(parts))}
        for t in titles:
            if _key(t) in kicked:
                return t
            if _same_headline(h, t):
                return h
    return titles[0] if titles else clean_title(h1s[0], sites) if h1s else ""


# --- authors ---------------------------------------------------------------------------------------
# Labels before a name in other languages than clean_author's English ones ("Autor: …", "Auteur …", "Artikel von …").
_BYLINE_LABEL = re.compile(r"^(?:autor(?:in)?|auteur|author|artikel von|zum profil von|von|par|por|door|interview|text)\s*:?\s+(?=\w)", re.I)
# What a page's byline slots hold besides names: a comment form's "Name" field, a placeholder, an obfuscated address.
_NOT_A_NAME = re.compile(r"^(?:name|publisher|no author|datum|date|anonym|anónimo|anonyme?)$|\S+\s*[\[(]at[\])]\s*\S+", re.I)


def page_author(raw: str, site_names: list[str]) -> str:
    """A page's byline as names, without labels, placeholders, and the site's or publisher's own name
    (a byline naming the outlet says who published the story, not who wrote it)."""
    from ingest.article import clean_author

    sites = _site_keys(site_names)
    names = []
    for name in clean_author(raw).split("; ") if raw else []:
        name = _BYLINE_LABEL.sub("", name.strip("'\"“”‘’ ")).strip()
        k = _key(name)
        if not k or _NOT_A_NAME.search(name) or _DOMAIN.match(name):
            continue
        # "Interscenario" on interscenar.io; but "Helge Fahrnberger" on helge.at is a person.
        if any(k == s or (len(s) > 3 and " " not in name and k.startswith(s)) for s in sites):
            continue
        names.append(name)
    return "; ".join(names)


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


_MARK = "\ue000"  # a private-use character marking a date's place in the markup
# id/class names of a page's top banner (not "post-header" or "date-header", which are an article's own).
_BANNER = re.compile(r"^(?:(?:site|page|main|global)[-_]?)?header$|^(?:top[-_]?bar|masthead|banner|nav|navbar|navigation)$", re.I)


def only_before_headline(html: str, d: dt.date) -> bool:
    """True when the page shows the date only before its headline and outside the headline's block: a site
    banner's "today". A dateline in the article's own block above the ``<h1>`` is the story's date."""
    import lxml.html

    h1 = re.search(r"<h1[\s>]", html, re.I)
    if not h1:
        return False
    mon = _MONTHS[d.month - 1]
    pats = [rf"\b0?{d.day}\.?\s*{mon[:3]}\w*\.?,?\s+{d.year}", rf"\b{mon[:3]}\w*\.?\s+{d.day}(?:st|nd|rd|th)?,?\s+{d.year}",
            rf"{d.year}-{d.month:02d}-{d.day:02d}", rf"\b0?{d.day}[./]0?{d.month}[./]{d.year}", rf"\b0?{d.month}/0?{d.day}/{d.year}"]
    hits = sorted((m for p in pats for m in re.finditer(p, html, re.I)), key=lambda m: -m.start())
    if not hits or hits[0].start() > h1.start():
        return False
    # The visible occurrence nearest the headline decides; one in <head>, a script or an attribute is metadata.
    for near in hits[:5]:
        try:
            doc = lxml.html.fromstring(re.sub(r"\A\s*<\?xml[^>]*\?>", "", html[:near.start()] + _MARK + html[near.end():]))
        except Exception:  # noqa: BLE001 - lxml raises on broken documents
            return False
        head = next(doc.iter("h1"), None)
        marked = doc.xpath("//body//*[text()[contains(., $m)]]", m=_MARK)
        if head is None:
            return False
        if not marked or marked[0].tag in ("script", "style", "noscript", "template"):
            continue
        holds_h1 = {head, *head.iterancestors()}
        for el in (marked[0], *marked[0].iterancestors()):
            if el in holds_h1:  # the closest block holding both: the page itself, or the article
                return el.tag in ("body", "html")
            if el.tag in ("header", "nav") or any(_BANNER.match(w) for w in f"{el.get('id', '')} {el.get('class', '')}".split()):
                return True
        return True
    return False
