"""URLs and RSS/Atom feeds, served by a loopback http.server (no other network)."""

from __future__ import annotations

import json

import pytest

import ingest.loaders as loaders
from ingest.article import Article
from ingest.loaders import load_sources
from rag.errors import IngestError

PARA = "The Saltmere ferry resumed service on Wednesday after the storm. Operators added two extra sailings to clear the backlog of passengers."


def page(title: str, body: str, site: str = "Harbor Ledger", date: str = "2024-02-14T09:00:00Z") -> bytes:
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": title, "datePublished": date,
                     "author": [{"@type": "Person", "name": "Marcus Ekwueme"}], "publisher": {"@type": "Organization", "name": site}})
    paras = "".join(f"<p>{body} ({i})</p>" for i in range(3))
    return (f"<!doctype html><html><head><title>{title} | {site}</title><meta property='og:site_name' content='{site}'>"
            f"<script type='application/ld+json'>{ld}</script><script>var tracking = 1;</script></head>"
            f"<body><nav><a href='/'>Home</a> <a href='/sub'>Subscribe now</a></nav><article><h1>{title}</h1>{paras}</article>"
            f"<footer>All rights reserved</footer></body></html>").encode()


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Article)], [i for i in items if isinstance(i, IngestError)]


@pytest.fixture
def site(web):
    rss = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbor Ledger</title><link>{web.base}/</link>
<item><title>Ferry resumes</title><link>{web.url('/news/ferry')}</link><pubDate>Wed, 14 Feb 2024 09:00:00 GMT</pubDate>
  <description>Short teaser.</description></item>
<item><title>Pier plan shelved</title><link>{web.url('/news/gone')}</link><pubDate>Thu, 15 Feb 2024 09:00:00 GMT</pubDate>
  <description>&lt;p&gt;The council shelved the pier plan on Thursday, citing costs.&lt;/p&gt;</description></item>
<item><title>Nothing at all</title><link>{web.url('/news/also-gone')}</link><pubDate>Fri, 16 Feb 2024 09:00:00 GMT</pubDate></item>
</channel></rss>""".encode()
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Metro Wire</title><id>urn:mw</id><updated>2024-03-08T00:00:00Z</updated>
<entry><title>Recall widens</title><link href="{web.url('/tech/recall')}"/><id>urn:mw:1</id><updated>2024-03-08T10:00:00Z</updated>
  <summary>Teaser only.</summary></entry>
<entry><title>Chip plant delayed</title><link href="{web.url('/tech/missing')}"/><id>urn:mw:2</id><updated>2024-03-09T10:00:00Z</updated>
  <content type="html">&lt;p&gt;The chip plant will open a year late, the company said.&lt;/p&gt;</content></entry>
</feed>""".encode()
    web.routes.update({
        "/news/ferry": (200, "text/html; charset=utf-8", page("Ferry resumes", PARA)),
        "/tech/recall": (200, "text/html", page("Recall widens", "Novalink widened its Aerio X2 recall to 210,000 units on Friday.", site="Metro Wire", date="2024-03-08T10:00:00Z")),
        "/article.json": (200, "application/json", json.dumps({"headline": "JSON story", "publisher": "Metro Wire", "date": "2024-03-01", "text": PARA}).encode()),
        "/feed.rss": (200, "application/rss+xml", rss),
        "/feed.atom": (200, "application/atom+xml", atom),
        "/error": (500, "text/plain", b"boom"),
        "/empty": (200, "text/html", b""),
        "/latin1.txt": (200, "text/plain; charset=iso-8859-1", "Title: Caf\u00e9\n\nThe caf\u00e9 reopened.".encode("latin-1")),
        "/slow": (200, "text/html", page("Slow", PARA)),
    })
    return web


def test_html_page(site):
    arts, errs = split(load_sources([site.url("/news/ferry")]))
    assert not errs and len(arts) == 1
    a = arts[0]
    assert a.title == "Ferry resumes" and a.source == "Harbor Ledger" and a.author == "Marcus Ekwueme"
    assert a.date_iso == "2024-02-14" and a.url == site.url("/news/ferry")
    assert "resumed service on Wednesday" in a.text and "Subscribe" not in a.text and "tracking" not in a.text


def test_json_article(site):
    arts, errs = split(load_sources([site.url("/article.json")]))
    assert not errs and len(arts) == 1
    assert arts[0].title == "JSON story" and arts[0].source == "Metro Wire" and arts[0].date_iso == "2024-03-01"
    assert arts[0].url == site.url("/article.json")  # a record without its own link is the fetched page


def test_text_with_declared_charset(site):
    arts, errs = split(load_sources([site.url("/latin1.txt")]))
    assert not errs and arts[0].title == "Café" and "café reopened" in arts[0].text


def test_rss_feed_fetches_pages_and_falls_back(site):
    arts, errs = split(load_sources([site.url("/feed.rss")]))
    assert [a.title for a in arts] == ["Ferry resumes", "Pier plan shelved"]
    ferry, pier = arts
    assert "resumed service on Wednesday" in ferry.text  # the linked page, not the teaser
    assert ferry.origin == site.url("/feed.rss") + "#0"
    # 404 page: the entry's own summary is used, with the feed's metadata.
    assert pier.text == "The council shelved the pier plan on Thursday, citing costs."
    assert pier.source == "Harbor Ledger" and pier.date_iso == "2024-02-15" and pier.url == site.url("/news/gone")
    # 404 page and no summary: one error naming the entry.
    assert len(errs) == 1 and errs[0].source == site.url("/feed.rss") + "#2" and "no text" in errs[0].reason


def test_atom_feed(site):
    arts, errs = split(load_sources([site.url("/feed.atom")]))
    assert not errs and [a.title for a in arts] == ["Recall widens", "Chip plant delayed"]
    assert "210,000 units" in arts[0].text and arts[0].source == "Metro Wire"
    assert arts[1].text == "The chip plant will open a year late, the company said." and arts[1].date_iso == "2024-03-09"


@pytest.mark.parametrize("path, reason", [("/missing", "HTTP 404"), ("/error", "HTTP 500"), ("/empty", "empty response")])
def test_http_errors(site, path, reason):
    arts, errs = split(load_sources([site.url(path)]))
    assert not arts and len(errs) == 1
    assert errs[0].source == site.url(path) and reason in errs[0].reason


def test_slow_response_times_out(site, monkeypatch):
    monkeypatch.setattr(loaders, "HTTP_TIMEOUT", 0.3)
    site.slow_seconds = 2.0
    arts, errs = split(load_sources([site.url("/slow")]))
    assert not arts and len(errs) == 1 and "timed out after 0.3 s" in errs[0].reason


def test_response_too_large(site, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_FILE_BYTES", 1000)
    arts, errs = split(load_sources([site.url("/news/ferry")]))
    assert not arts and "too large" in errs[0].reason


def test_connection_refused():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    arts, errs = split(load_sources([f"http://127.0.0.1:{port}/x"]))
    assert not arts and len(errs) == 1 and "cannot fetch" in errs[0].reason


def test_urls_and_feeds_ingest_idempotently(site, ingestor):
    r1 = ingestor.ingest([site.url("/feed.rss"), site.url("/feed.atom"), site.url("/news/ferry")])
    assert r1.added == 4 and len(r1.errors) == 1  # the ferry page is in the feed too: one article
    r2 = ingestor.ingest([site.url("/feed.rss"), site.url("/feed.atom")])
    assert r2.chunks_embedded == 0 and r2.unchanged == 4
    assert len(ingestor.store.articles()) == 4
