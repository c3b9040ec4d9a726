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
from typing import Any, Iterator
from urllib.parse import urlsplit

from ingest.article import decode_entities

ARTICLE_TYPES = ("Article", "NewsArticle", "BlogPosting", "Report")

# <meta> keys (property, name or itemprop), best first.
DATE_KEYS = ("article:published_time", "og:published_time", "datepublished", "publishdate", "publish_date", "pubdate",
             "parsely-pub-date", "sailthru.date", "dc.date.issued", "dcterms.issued", "dc.date", "dcterms.date", "date")
# citation_author (Highwire, on scholarly pages) before "author", which such pages fill with a reference list's names;
# "twitter:written by" is Yoast's twitter:label1 "Written by" / twitter:data1 pair (see ``read_page``).
AUTHOR_KEYS = ("citation_author", "author", "article:author", "parsely-author", "sailthru.author", "cxenseparse:author",
               "twitter:written by", "dc.creator", "dcterms.creator")
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
    bylines: list[str] = field(default_factory=list)  # names in byline markup, labelled lines, an end signature
    site_names: list[str] = field(default_factory=list)  # the site's name in its feed links and application-name
    visible_text: str = ""  # the page's text outside scripts and styles
    dateline: str = ""  # a date the page's text labels as the publication's ("Published on March 3, 2021")


def read_page(html: str) -> PageMeta:
    """Parse the page once for everything ``parse_html`` needs besides the main text."""
    import lxml.html

    pm = PageMeta(ld=json_ld(html))
    if pm.ld.get("author"):
        # Yoast and others give the author as {"@id": ...}, a reference to a Person elsewhere in the graph.
        nodes = {o["@id"]: o for o in _ld_objects(html) if isinstance(o.get("@id"), str) and len(o) > 1}
        authors = pm.ld["author"] if isinstance(pm.ld["author"], list) else [pm.ld["author"]]
        pm.ld = {**pm.ld, "author": [nodes.get(a.get("@id"), a) if isinstance(a, dict) and "name" not in a else a for a in authors]}
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
    for i in "1234":
        if pm.meta.get(f"twitter:label{i}", "").lower() in _WRITTEN_BY and pm.meta.get(f"twitter:data{i}"):
            pm.meta.setdefault("twitter:written by", pm.meta[f"twitter:data{i}"])
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
        rel = (el.get("rel") or "").lower().split()
        if "canonical" in rel and el.get("href") and not pm.canonical:
            pm.canonical = el.get("href").strip()
        # WordPress and others title their feed links "Site Name » Feed": the site's name when og:site_name is missing.
        if "alternate" in rel and "xml" in (el.get("type") or "") and el.get("title"):
            m = re.fullmatch(r"(.+?)\s*(?:»|-|–|\|)\s*(?:RSS\s*(?:2\.0\s*)?)?(?:Feed|RSS|Atom)", " ".join(el.get("title").split()), re.I)
            if m and m.group(1) not in pm.site_names:  # "Site » Feed", not "Site » Kommentar-Feed" or a post's feed
                pm.site_names.append(m.group(1))
    if pm.meta.get("application-name"):
        pm.site_names.append(pm.meta["application-name"])
    for h in doc.iter("h1"):
        parts = [t for t in (" ".join(x.split()) for x in h.itertext()) if t]
        if parts:
            pm.h1s.append(" ".join(h.text_content().split()))
            pm.h1_parts.append(parts)
    t = doc.find(".//title")
    pm.title = " ".join(t.text_content().split()) if t is not None else ""
    pm.bylines = markup_bylines(doc)
    for bad in doc.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    body = doc.find("body")
    root = body if body is not None else doc
    # Text nodes joined with a space: "Headline</h1><p>07.11.2022" must not read "Headline07.11.2022".
    pm.visible_text = " ".join(" ".join(root.itertext()).split())
    pm.visible_chars = len(pm.visible_text)
    pm.bylines += labelled_bylines(root)
    if signed := signature(root):
        pm.bylines.append(signed)
    pm.dateline = labelled_date(root)
    return pm


def _ld_objects(html: str) -> Iterator[dict[str, Any]]:
    """Every object in the page's JSON-LD blocks, graphs and lists unpacked."""
    for m in re.finditer(r"<script[^>]+application/ld\+json[^>]*>(.*?)</script>", html, re.S | re.I):
        try:
            obj = json.loads(m.group(1).strip())
        except ValueError:
            continue
        stack = [obj]
        while stack:
            o = stack.pop()
            if isinstance(o, list):
                stack.extend(reversed(o))
            elif isinstance(o, dict):
                yield o
                if "@graph" in o:
                    stack.extend(reversed(o["@graph"]) if isinstance(o["@graph"], list) else [o["@graph"]])


def json_ld(html: str, types: tuple[str, ...] = ARTICLE_TYPES) -> dict[str, Any]:
    """The first NewsArticle-like (or ``types``) JSON-LD object in the page, if any."""
    for o in _ld_objects(html):
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
    piped = len(parts) >= 5 and all(p.strip() == "|" for p in parts[1::2])  # "Story | Section | Site"
    # parts: [text, sep, text, sep, text ...]; drop trailing segments while they name the site.
    while len(parts) >= 3:
        last, sep = parts[-1].strip(), parts[-2].strip()
        k = _key(last)
        is_site = bool(k) and (k in sites or _DOMAIN.match(last) is not None or any(k == s or (len(s) > 3 and k.startswith(s)) for s in sites))
        is_crumb = sep in ("»", "«") and len(last.split()) <= 3 and len("".join(parts[:-2]).split()) > len(last.split())
        # "Story | Section | Forum": a trail of one- or two-word section names after the story, set off by "|".
        is_crumb = is_crumb or (sep == "|" and piped and len(last.split()) <= 2 and len(parts[0].split()) > 3)
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
    if _within(hw, tw) or (len(_key(h1)) >= 10 and _key(title).startswith(_key(h1))):
        return True  # the <h1>'s words in the title, or at its start with the next words glued on ("Story A1Site name")
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
    # Not "domain.example - Story", nor "Kicker - Story" (a site's name is shorter than the story before it).
    tails = {_key("".join(p[i + 1:])) for p in (re.split(f"({_SEPARATORS})", t) for t in raw) for i in range(1, len(p), 2)
             if _key(p[0]) not in known and not _DOMAIN.match(p[0].strip()) and len(_words("".join(p[:i]))) > len(_words("".join(p[i + 1:])))}
    sites = [*site_names, *(h for h in h1s if _key(h) in tails)]
    keys = {_key(s) for s in sites if s}
    titles = [clean_title(t, sites) for t in raw]
    for n, h in enumerate(h1s):
        h = clean_title(h, sites)
        if _key(h) in keys:
            continue
        parts = h1_parts[n]
        # A kicker in an element of its own, set off by a separator in another ("<span>Klimaschutz</span><span>:</span>
        # <span>Bohren, bis es heiß wird</span>"), or by one in a stated title ("Olympische Spiele - Getränke per Schiff").
        if len(parts) >= 3 and re.fullmatch(r"[:|/–—-]", parts[1]) and len(parts[0].split()) <= 6 and len(" ".join(parts[2:]).split()) >= 2:
            return clean_title(" ".join(parts[2:]), sites)
        if len(parts) == 2 and len(parts[0].split()) <= 6 and len(parts[1].split()) >= 2 and any(
                re.search(rf"(?:^|\s){re.escape(parts[0])}\s*[:|/–—-]\s+{re.escape(parts[1])}", t) for t in raw):
            return clean_title(parts[1], sites)
        kicked = {_key(" ".join(parts[i:])) for i in range(1, len(parts))}
        # A kicker set off by a separator in the <h1>'s own text ("Kicker / Story") that a stated title leaves out.
        split = re.split(f"({_SEPARATORS})", h)
        kicked |= {_key("".join(split[i + 1:])) for i in range(1, len(split) - 1, 2) if len(_words("".join(split[i + 1:]))) >= 3}
        for t in titles:
            if _key(t) in kicked:
                return t
            if _same_headline(h, t):
                return h
    return titles[0] if titles else clean_title(h1s[0], sites) if h1s else ""


# --- authors ---------------------------------------------------------------------------------------
# What a page's byline slots hold besides names: a comment form's "Name" field, a placeholder, an obfuscated address.
_NOT_A_NAME = re.compile(r"^(?:name|publisher|no author|datum|date|anonym|anónimo|anonyme?|unbenannt|untitled)$|\S+\s*[\[(]at[\])]\s*\S+", re.I)
# A company's or an authority's name (a legal form, "…-Verlag", "…ministerium"): the publisher or its web agency, not a writer.
# Short forms in capitals only ("AG", not a name's "Ag"; "SE", not Korean "Se").
_ORGANISATION = re.compile(r"(?:^|\s)(?:AG|KG|SE|e\.?\s?V\.?|S\.A\.|S\.L\.|(?i:gmbh|ltd\.?|inc\.?|llc|corp\.?|plc))(?:$|[\s,])"
                           r"|(?i:\w*(?:verlag|ministerium)\b|\smedia$)")


_WRITTEN_BY = ("written by", "geschrieben von", "verfasst von", "écrit par", "escrito por", "scritto da", "door")
# class/id words of byline markup ("author vcard", "byline-author", "field--name-field-tag-author"), and of comment threads,
# whose "comment-author" is a commenter.
_BYLINE_CLASS = re.compile(r"(?:^|[-_\s])(?:author|authors|byline|autor|autoren|auteur|autore|writer)(?:$|[-_\s])", re.I)
_COMMENT_CLASS = re.compile(r"comment|respond|reply|replies|discussion|forum", re.I)
# Links to a person's page: WordPress /author/x/, /autor/, /autoren/, /reporters/, /profile/.
_PROFILE_HREF = re.compile(r"/(?:author|authors|autor|autoren|auteur|redakteur|reporters?|journalists?|profile|people|staff|team)/", re.I)
# What follows a name in a byline: a date or time, a separator, "on"/"am"/"le" before a date, a role after a dash.
_BYLINE_TAIL = re.compile(r"\s+(?:\||•|·|—|–|-|@|/)\s+.*$|\s*,?\s+(?:am|on|le|el|il|den|at|um)\s+(?:\w+,?\s+)?\d.*$"
                          r"|\s*,?\s*\d{1,4}[./-]\d.*$|,\s*\d.*$", re.I)
# Labels before a byline's name, in several languages ("By …", "Ein Artikel von …", "Autor: …", "Auteur …", "Text: …");
# "Texte" only with a colon (a menu's "Texte Fotos Audio" is no byline), Italian "di" only in lower case (not "Di", Tuesday).
_LABEL = (r"(?:(?:zeige |view )?(?:alle|all) (?:artikel|beiträge|posts|articles|stories) (?:von|by)|more (?:articles|stories|posts) "
          r"(?:by|from)|by|von|par|por|(?-i:di)|door|posted by|written by|geschrieben von|erstellt von|verfasst von|zum profil von|"
          r"écrit par|escrito por|scritto da|"
          r"(?:ein )?(?:artikel|beitrag) von|autor(?:in|en)?|author|auteur|interview|text|texte(?=\s*:))")
# Labels joined: "Text und Interview: …", "Text and photos by …".
_LABELS = rf"{_LABEL}(?:\s*(?:und|and|&|,|/|\+)\s*(?:{_LABEL}|fotos?|photos?|bilder?|illustrations?|grafiken?))*"
# A label at the start of a name, as bylines and author fields give it.
_BYLINE_LABEL = re.compile(rf"^{_LABELS}\s*:?\s+(?=\w)", re.I)
# A label alone in its element, the name in the next: only unambiguous ones (not "Di", a weekday, nor a menu's
# "Autoren" or "Texte").
_BARE_LABEL = re.compile(r"^(?:by|von|par|por|door|written by|autor(?:in)?|author|auteur)\s*:?$", re.I)
# Link texts and labels that end a byline's name ("Mia Haller Alle Artikel Kontakt", "Ann Lee, Datum: 03.03.19").
_NOT_NAME_WORDS = re.compile(r"(?:^|\s|,)(?:alle|all|artikel|beiträge|beitrag|posts?|articles?|videos?|about|über|kontakt|contact|"
                             r"mehr|more|stand|datum|date|comments?|kommentare?|follow|folgen|profil|profile|e-?mail|"
                             r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|tuesday|wednesday|thursday|"
                             r"friday|saturday|sunday|unbenannt|untitled|publiziert|veröffentlicht|published|updated|"
                             r"aktualisiert|rezept|recipe|last updated|zuletzt|weiterlesen|read more)\b.*$", re.I)
# A labelled byline line: "By Ann Lee", "Ein Artikel von Petra Lindner | 27.01.2022", "Autor: Uwe Brandt/SP-X".
_LABELLED = re.compile(rf"{_BYLINE_LABEL.pattern}(.+)$", re.I)
# The same label after other metadata in one line, with a colon: "Datum: 03.11.2021 Autor: Uwe Brandt".
_LABELLED_LATER = re.compile(r"\s(?:autor(?:in|en)?|author|written by|geschrieben von|verfasst von|von|by)\s*:\s*(.+)$"
                             r"|(?:^|\s)[|•·]\s*(?:by|von)\s+(.+)$", re.I)
# A dateline naming the writer: "11.12.2019 - Greta Sommer", "25.10.2022 | 13:10 Uhr | Rolf Weber".
_DATED = re.compile(r"^\d{1,2}\.\s?\d{1,2}\.\s?\d{2,4}(?:\s*[|–-]\s*\d{1,2}:\d\d(?:\s*Uhr)?)?\s*[|–-]\s*(.+)$")
# A name: capitalised words, initials and particles ("Jose de la Cruz", "C. Hartmann", "Jörg W. Albers").
_PARTICLE = re.compile(r"de|la|del|da|do|dos|van|von|der|den|du|le|y|und|and|&|,")  # in a name: "Jose de la Cruz"
_NAME_WORD = rf"(?:[A-ZÀ-ÖØ-Þ][\w'’.-]*|{_PARTICLE.pattern})"
_NAME = re.compile(rf"^[A-ZÀ-ÖØ-Þ][\w'’.-]*(?:\s+{_NAME_WORD}){{0,11}}$")


def _text(el: Any) -> str:
    """An element's text, its text nodes joined with a space ("<span>By</span><a>Ann</a>" -> "By Ann")."""
    return " ".join(" ".join(el.itertext()).split())


def _words_of(el: Any) -> str:
    return f"{el.get('class', '')} {el.get('id', '')} {el.get('data-testid', '')}"


def _in_comments(el: Any) -> bool:
    return any(_COMMENT_CLASS.search(_words_of(a)) for a in (el, *el.iterancestors()))


def _hidden(el: Any) -> bool:
    """True for an element readers do not see (``hidden``, ``display: none``): a hidden "rel=author" link to a profile."""
    return any(a.get("hidden") is not None or re.search(r"display\s*:\s*none", a.get("style", "")) for a in (el, *el.iterancestors()))


def _byline_text(s: str) -> str:
    """A byline element's text as a name: labels, dates and roles after a separator dropped."""
    s = " ".join(s.split())
    for _ in range(2):
        s = re.sub(rf"^{_LABELS}\s*:?\s+", "", s, flags=re.I).strip()
    s = _BYLINE_TAIL.sub("", s).strip(" ,;:|")
    s = _NOT_NAME_WORDS.sub("", s).strip(" ,;:|»")
    s = re.sub(r"^(\S+\s+.*?\S)\s*/\s*[\w-]+$", r"\1", s)  # "Uwe Brandt/SP-X": a news agency after the name ("dpa/lno" stays)
    head, _, rest = s.partition(", ")
    if rest and any(w.islower() and not _PARTICLE.fullmatch(w) for w in rest.split()):
        s = head  # "Ann Lee, project lead in Tunis": a role after the name
    if " " in s and (re.search(r"\d", s) or not s[:1].isupper()):
        return ""  # "3 de Mayo de 2022", "ist der Mann": words that are not a name (a login name is one word)
    return s if 1 < len(s) <= 80 and re.search(r"[^\W\d_]", s) else ""


def markup_bylines(doc: Any) -> list[str]:
    """Names in the page's byline markup, best first: ``<a rel=author>``, ``itemprop=author``, hCard ``fn`` in an
    author element, then the profile links or the short text of an element classed as an author or byline.
    Comment threads (whose "comment-author" is a commenter) are skipped."""
    groups: list[list[str]] = [[], [], []]  # rel=author, itemprop=author, classed elements
    found = groups[0]

    def add(el: Any, text: str) -> None:
        t = _byline_text(text)
        if t and not _in_comments(el) and not _hidden(el) and t not in found:
            found.append(t)

    for a in doc.xpath("//a[contains(concat(' ', normalize-space(@rel), ' '), ' author ')]"):
        add(a, _text(a))
    found = groups[1]
    for el in doc.xpath("//*[@itemprop='author']"):
        names = el.xpath(".//*[@itemprop='name']")
        if names:
            add(el, names[0].get("content") or _text(names[0]))
        elif el.get("content"):
            add(el, el.get("content"))
        elif len(_text(el)) <= 120:
            add(el, _text(el))
    found = groups[2]
    h1 = next(doc.iter("h1"), None)
    holds_h1 = set(h1.iterancestors()) if h1 is not None else set()
    h1_in_article = any(a.tag == "article" for a in holds_h1)
    for el in doc.iter():
        if found:
            break  # the first byline element only: later ones are teasers for other stories
        if not isinstance(el.tag, str) or el.tag in ("html", "body", "meta", "link", "script", "style", "img") or not _BYLINE_CLASS.search(_words_of(el)):
            continue
        if h1 is not None and any(a not in holds_h1 and (a.tag in ("footer", "aside") or a.tag == "article" and h1_in_article)
                                  for a in el.iterancestors()):
            continue  # a teaser for another story: in a footer or sidebar, or an <article> other than the headline's
        fn = el.xpath(".//*[contains(concat(' ', normalize-space(@class), ' '), ' fn ')]")
        links = [a for a in el.iter("a") if _PROFILE_HREF.search(a.get("href", ""))]
        if fn:
            add(el, _text(fn[0]))
        elif links:
            for a in links:
                add(a, _text(a))
        elif len(_text(el)) <= 80 or (len(_text(el)) <= 160 and _BYLINE_LABEL.match(_text(el))):
            add(el, _text(el))  # a short text, or a longer labelled one ("Posted by A, B, C and D - the X team")
    # The first of each kind: further rel=author links are often a sidebar's list of the site's writers. The profile
    # links in one byline element are its co-authors.
    return [*(g[0] for g in groups[:2] if g), *(["; ".join(groups[2])] if groups[2] else [])]


def labelled_bylines(root: Any) -> list[str]:
    """Names in short labelled lines ("By Ann Lee", "von Klaus Berger", "Posted by Matthias", "Autor: <br>Ann Lee") after
    the headline (anywhere when the page has no ``<h1>``), outside comment threads, and in a dateline just above the
    headline: a byline without markup of its own."""
    h1 = next(root.iter("h1"), None)
    started = h1 is None
    found: list[str] = []
    # A dateline naming the writer just above the headline, in its block: "<small>04.02.2022 | Rolf Weber</small><h1>"
    # (a full name: a single word there is a section, "24.01.2022 - Meldung").
    above = [] if h1 is None else [e for e in h1.itersiblings(preceding=True) if isinstance(e.tag, str)][:2]
    for m in (_DATED.match(_text(e)) for e in above if len(_text(e)) <= 100):
        name = _byline_text(m.group(1)) if m else ""
        if " " in name and _NAME.match(name) and name not in found:
            found.append(name)
    for el in root.iter():
        if el is h1:
            started = True
            continue
        if not started or not isinstance(el.tag, str) or el.tag in ("script", "style", "h1", "h2", "h3", "title"):
            continue
        text = _text(el)
        if not 1 < len(text) <= 100:
            continue
        m = (_LABELLED.match(text) or _LABELLED_LATER.search(text) or _DATED.match(text)) if len(text) > 3 else None
        value = _label_value(el) if m else _labelled_by(el) if _BARE_LABEL.match(text) else ""
        if not (m or value) or _in_comments(el):
            continue
        name = _byline_text(value or next(g for g in m.groups() if g))
        if name and _NAME.match(name) and name not in found:
            found.append(name)
        if len(found) >= 2:
            break
    return found


def _next_element(el: Any) -> Any:
    return next((s for s in el.itersiblings() if isinstance(s.tag, str)), None)  # not a comment


def _labelled_by(label: Any) -> str:
    """What follows a label element: the text after it ("<b>Autor:</b> Ann Lee<br>"), else the next element's."""
    tail = " ".join((label.tail or "").split())
    nxt = _next_element(label)
    return tail if tail else _text(nxt) if nxt is not None else ""


def _label_value(el: Any) -> str:
    """The value next to a label in an element of its own ("<dt>Author</dt><dd>Ann Lee</dd><dt>Photo</dt>…",
    "<span>By</span> <span>Ann Lee</span>"): the label's next sibling, not the rest of the line."""
    line = _text(el)
    for d in el.iter():
        text = _text(d) if isinstance(d.tag, str) else ""
        if not text or text == line:
            continue  # el itself, or an element wrapping the whole line
        return _labelled_by(d) if _BARE_LABEL.match(text) else ""  # else the line starts with other text
    return ""


def signature(root: Any) -> str:
    """A name signed at the end of the article: the last paragraph of a block of text, holding only a name
    in bold or italics ("<p><b>Ann Lee</b></p>"), as many outlets sign their stories instead of a byline."""
    for p in root.iter("p"):
        text = _text(p)
        marked = [e for e in p.iter("b", "strong", "i", "em") if _text(e) == text]
        if not marked or not _NAME.match(text) or not 2 <= len(text.split()) <= 4 or _in_comments(p):
            continue
        after = [s for s in p.itersiblings() if _text(s)]
        before = [len(_text(s)) for s in p.itersiblings(preceding=True) if s.tag == "p" and _text(s)]
        if not after and len(before) >= 2 and sum(before) >= 500:  # the end of an article's text, not of a teaser
            return text
    return ""


def page_author(raw: str, site_names: list[str]) -> str:
    """A page's byline as names, without labels, placeholders, and the site's or publisher's own name
    (a byline naming the outlet says who published the story, not who wrote it)."""
    from ingest.article import clean_author

    sites = _site_keys(site_names)
    names = []
    for i, name in enumerate(clean_author(raw).split("; ") if raw else []):
        name = _BYLINE_LABEL.sub("", name.strip("'\"“”‘’ ")).strip()
        name = re.sub(r"\s+\S+@\S+\.\w+$", "", name)  # "Ann Lee ann@example.org"
        k = _key(name)
        if _ORGANISATION.search(name) and i == 0:
            return ""  # "Example GmbH; Harbourtown; Germany": a company's imprint, the rest its address
        if not k or _NOT_A_NAME.search(name) or _DOMAIN.match(name) or _ORGANISATION.search(name) or re.fullmatch(_LABELS, name, re.I):
            continue  # a label alone ("Text; Interview Harald Willenbrock": "Text und Interview: …" split at "und")
        # "Interscenario" on interscenar.io, "Jobs & Hire" on jobsnhire.com; but "Helge Fahrnberger" on helge.at is a person.
        if any(k == s or (len(s) > 3 and " " not in name and k.startswith(s)) or (len(k) > 4 and _subsequence(k, s)) for s in sites):
            continue
        words = name.split()
        if len(words) % 2 == 0 and words[: len(words) // 2] == words[len(words) // 2:]:
            words = words[: len(words) // 2]  # "jesusfreak jesusfreak": a name shown twice (avatar text and link)
        if len(words) > 1 and not words[0][:1].isupper():
            continue  # "ist der Mann": words of a sentence, not a name ("ann_lee" and "mf" are one word)
        words = _without_written_for(words)
        if len(words) >= 4 and any(w.islower() and not _PARTICLE.fullmatch(w) for w in words):
            continue  # "Landesamt für Wald und Forst", "Institute of Marine Studies": an institution, not a person
        # "Adam Lee HarborVoice Staff", "HARBOR-Experte Robin Kale": the outlet and a role around a name.
        while len(words) > 2 and (words[-1].lower() in _ROLES or _names_site(words[-1], sites)):
            words.pop()
        while len(words) > 2 and _names_site(words[0], sites):
            words.pop(0)
        names.append(" ".join(words))
    return "; ".join(dict.fromkeys(names))


_ROLES = {"staff", "writer", "reporter", "correspondent", "contributor", "editor"}
# Words that make "X Y for Z" a body's name ("National Center for Health Statistics"), not a writer's byline.
_BODY_WORDS = {"agency", "alliance", "association", "board", "bureau", "campaign", "center", "centre", "coalition",
               "college", "commission", "committee", "council", "department", "foundation", "fund", "initiative",
               "institute", "ministry", "network", "office", "partnership", "program", "programme", "project",
               "school", "society", "trust", "union", "university"}


def _without_written_for(words: list[str]) -> list[str]:
    """ "Ann Lee for The Times" -> "Ann Lee": a writer and the outlet the story was written for.

    Only a two- or three-word name before "for", all capitalised, and not a body's name."""
    at = next((i for i in (2, 3) if words[i:i + 1] == ["for"]), None)
    if at is None:
        return words
    name, rest = words[:at], words[at + 1:]
    if rest[:1] == ["the"]:
        rest = rest[1:]  # "for the Guardian"
    if rest and rest[0][:1].isupper() and all(w[:1].isupper() for w in name) and not {w.lower() for w in name} & _BODY_WORDS:
        return name
    return words


def _names_site(word: str, sites: set[str]) -> bool:
    k = _key(word)
    return bool(k) and any(k == s or (len(s) > 3 and k.startswith(s)) for s in sites)


def _subsequence(short: str, long: str) -> bool:
    """True when ``short`` is ``long`` with letters left out, from its first letter ("jobshire" in "jobsnhire")."""
    if not short or not long or short[0] != long[0] or not len(long) - 3 <= len(short) <= len(long):
        return False
    it = iter(long)
    return all(c in it for c in short)


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


# A day as pages write it in text: "16.08.2019", "2019-08-16", "16. August 2019", "5 de mayo de 2022", "March 3, 2021".
_DATE_TEXT = (r"(\d{1,2}\.\s?\d{1,2}\.\s?\d{4}|\d{4}-\d\d-\d\d|\d{1,2}\.?\s+(?:de\s+)?[^\W\d]{3,}\.?,?\s+(?:de\s+)?\d{4}"
              r"|[^\W\d]{3,}\.?\s+\d{1,2},?\s+\d{4})")
# A line of the page stating its publication date: "Veröffentlicht am 16.08.2019", "Published on March 3, 2021".
_LABELLED_DATE = re.compile(r"(?:veröffentlicht|publiziert|erschienen|published|publié|publicado|pubblicato)(?:\s+(?:am|on|le|el|il|em))?"
                            rf"\s*:?\s*{_DATE_TEXT}", re.I)


def _day_first(s: str) -> str:
    """ "07.11.2022" as "2022-11-07": a dotted date is day first, which a date parser may read month first."""
    m = re.fullmatch(r"(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4})", s)
    return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d}" if m else s


def first_date(text: str) -> str:
    """The first day written in ``text`` (see ``_DATE_TEXT``), "" without one."""
    m = re.search(rf"(?<![\w.]){_DATE_TEXT}(?![\w.]\d)", text)
    return _day_first(m.group(1)) if m else ""


def labelled_date(root: Any) -> str:
    """The date of the first line (an element's text, or the text after a ``<br>``) that starts by labelling it the
    publication date, outside comment threads ("" without one): not "the report published on …" in a sentence."""
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for text, owner in ((el.text, el), (el.tail, el.getparent())):
            m = _LABELLED_DATE.match(" ".join((text or "").split()))
            if m and owner is not None and not _in_comments(owner):
                return _day_first(m.group(1))
    return ""


def is_default_date(d: dt.datetime) -> bool:
    """January 1st at midnight: what a year-only date or a CMS default becomes."""
    return (d.month, d.day, d.hour, d.minute, d.second) == (1, 1, 0, 0, 0)


# Months' names in English, German, French, Spanish, Italian and Portuguese, by their beginnings.
_MONTH_STEMS = ["jan|jän|ene|gen", "feb|fév|fev", "mar|mär|mrz", "apr|abr|avr", "may|mai|mag", "jun|juin|giu", "jul|juil|lug",
                "aug|ago|ao[uû]", "sep|set", "oct|okt|ott|out", "nov", "dec|dez|dic|déc"]


def _day_patterns(d: dt.date) -> list[str]:
    """How pages write a day: "7. Nov. 2022", "5 de mayo de 2022", "Nov 7, 2022", "2022-11-07", "07.11.2022", "11/07/2022"."""
    mon = f"(?:{_MONTH_STEMS[d.month - 1]})"
    return [rf"\b0?{d.day}\.?\s*(?:de\s+)?{mon}\w*\.?,?\s+(?:de\s+)?{d.year}", rf"\b{mon}\w*\.?\s+{d.day}(?:st|nd|rd|th)?,?\s+{d.year}",
            rf"{d.year}-{d.month:02d}-{d.day:02d}", rf"\b0?{d.day}[./]0?{d.month}[./]{d.year}", rf"\b0?{d.month}/0?{d.day}/{d.year}"]


def shows_day(text: str, d: dt.date) -> bool:
    """True when the page's text writes the day ``d`` (see ``_day_patterns``)."""
    return any(re.search(p, text, re.I) for p in _day_patterns(d))


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
    hits = sorted((m for p in _day_patterns(d) for m in re.finditer(p, html, re.I)), key=lambda m: -m.start())
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
