"""Real-world pages and feeds: legacy charsets (file, meta charset, HTTP charset only), UTF-16/32, CDF and
namespace-less feeds, page metadata, near-empty extractions. Fixtures: tests/fixtures/pages/README.md."""

from __future__ import annotations

import logging
import re

import pytest

from ingest.article import Article, clean_author
from ingest.decode import decode_bytes, detect_encoding
from ingest.htmlmeta import clean_title, page_author, page_title, url_date
from ingest.loaders import load_sources
from rag.errors import IngestError
from tests.conftest import FIXTURES

PAGES = FIXTURES / "pages"

PL_TITLE = "Sejm przyjął ustawę o funduszach unijnych dla gmin"
PL_SENTENCE = "Sejm zagłosował w piątek „za” ustawą, która ma ułatwić gminom korzystanie z funduszy unijnych."
ZH_TITLE = "短缺药品保供稳价工作取得新进展"
ZH_SENTENCE = "全国已有二十八个省份建立了短缺药品监测网络"
JA_TITLE = "東京都、新たな防災計画を発表"
JA_SENTENCE = "東京都は十日、大地震に備えた新しい防災計画を発表した。"

LEGACY = [  # (file, its encoding, title, a sentence of its text, outlet, author, local date)
    ("pl-sejm-windows-1250.html", "windows-1250", PL_TITLE, PL_SENTENCE, "Kurier Nadwiślański", "Agnieszka Wróbel", "2024-05-17"),
    ("zh-drugs-gbk.html", "gbk", ZH_TITLE, ZH_SENTENCE, "江南日报", "李明", "2024-04-10"),
    ("ja-bousai-shift_jis.html", "shift_jis", JA_TITLE, JA_SENTENCE, "湾岸新報", "佐藤花子", "2024-03-10"),
]


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Article)], [i for i in items if isinstance(i, IngestError)]


def one(src) -> Article:
    arts, errs = split(load_sources([str(src)]))
    assert not errs, errs
    assert len(arts) == 1
    return arts[0]


def without_meta_charset(data: bytes) -> bytes:
    """The page with its charset declaration removed (the head is ASCII in all three encodings)."""
    stripped = re.sub(rb"<meta[^>]*charset[^>]*>\s*", b"", data, flags=re.I)
    assert b"charset" not in stripped.lower()
    return stripped


# --- legacy charsets -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, encoding, title, sentence, outlet, author, date", LEGACY)
def test_legacy_charset_file_with_meta_charset(name, encoding, title, sentence, outlet, author, date):
    a = one(PAGES / name)
    assert (a.title, a.source, a.author, a.date_iso) == (title, outlet, author, date)
    assert sentence in a.text
    assert "\ufffd" not in a.text


@pytest.mark.parametrize("name, encoding, title, sentence, outlet, author, date", LEGACY)
def test_legacy_charset_from_http_header_only(web, name, encoding, title, sentence, outlet, author, date):
    web.routes["/page"] = (200, f"text/html; charset={encoding}", without_meta_charset((PAGES / name).read_bytes()))
    a = one(web.url("/page"))
    assert (a.title, a.source, a.author) == (title, outlet, author)
    assert sentence in a.text and a.url == one(PAGES / name).url  # the page's canonical URL, as from the file


def test_meta_charset_beats_a_guess_and_utf8_beats_a_wrong_label(web):
    pl = (PAGES / "pl-sejm-windows-1250.html").read_bytes()
    # The same page in UTF-8 but still labelled windows-1250 (a common server mistake): read as UTF-8.
    relabelled = pl.decode("cp1250").encode("utf-8")
    web.routes["/mislabelled"] = (200, "text/html; charset=windows-1250", relabelled)
    assert PL_SENTENCE in one(web.url("/mislabelled")).text
    # A wrong HTTP charset the bytes cannot be decoded in gives way to the page's own declaration.
    web.routes["/wrong-header"] = (200, "text/html; charset=utf-8", pl)
    assert PL_SENTENCE in one(web.url("/wrong-header")).text


@pytest.mark.parametrize("text, encoding", [
    ("Posłowie przyjęli projekt większością głosów, a rząd zapowiedział szybkie wdrożenie przepisów o gminach.", "cp1250"),
    ("医院报告的短缺药品品种比去年同期减少了三成，有关部门将继续加强信息共享。", "gb18030"),
    ("都の担当者は、家庭でも一週間分の食料と水を用意するよう呼びかけている。", "cp932"),
    ("The café on the Rue Saint-Honoré closed; señor Núñez paid €5 for the last croissant.", "cp1252"),
])
def test_undeclared_text_is_detected(tmp_path, text, encoding):
    p = tmp_path / "story.txt"
    p.write_bytes(text.encode(encoding))
    assert detect_encoding(p.read_bytes())[0] == encoding
    assert one(p).text == text


def test_boms_and_wide_encodings_without_bom():
    text = "Zażółć gęślą jaźń — 東京"
    for enc in ("utf-8-sig", "utf-16", "utf-32", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        assert decode_bytes(text.encode(enc), "x") == text, enc


def test_json_values_quoting_a_meta_charset_stay_utf8(tmp_path):
    p = tmp_path / "records.json"
    p.write_text('{"title": "Zażółć", "body": "<meta charset=\\"windows-1250\\"> Gęślą jaźń, said the mayor."}', encoding="utf-8")
    a = one(p)
    assert a.title == "Zażółć" and "Gęślą jaźń" in a.text


def test_polish_question_finds_the_polish_article(settings, embedder, corpus):
    from ingest.pipeline import Ingestor
    from rag import ask

    report = Ingestor(settings, embedder=embedder).ingest([str(corpus), str(PAGES / "pl-sejm-windows-1250.html")])
    assert report.added == 7 and not report.errors
    a = ask("Ilu posłów głosowało za ustawą o funduszach unijnych dla gmin?", settings=settings)
    assert a.passages and a.passages[0].title == PL_TITLE
    assert "312 posłów" in a.passages[0].full_text


# --- feeds -----------------------------------------------------------------------------------------
FEEDS = {  # file: (encoding, content type it is served with, titles, authors)
    "feed-utf16.rss": ("utf-16", "application/rss+xml", ["Most w Żółkiewce otwarty po remoncie", "Szkoły dostaną nowe pracownie"],
                       ["Redakcja Kurier", "Agnieszka Wróbel"]),
    "feed-utf32.atom": ("utf-32", "application/atom+xml", ["港区で新しい防波堤が完成", "都バス、深夜便を増便"], ["佐藤花子", ""]),
    "harbor.cdf": ("utf-8", "application/x-cdf", ["Tugboat crews end strike", "Lighthouse museum reopens"], ["", ""]),
    "metro-no-namespace.atom": ("utf-8", "text/xml", ["Transit fares frozen for 2025", "Library hours extended"], ["Priya Raman", ""]),
}


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_feed_files_give_one_article_per_entry(name):
    _, _, titles, authors = FEEDS[name]
    arts, errs = split(load_sources([str(PAGES / name)]))
    assert not errs
    assert [a.title for a in arts] == titles and [a.author for a in arts] == authors
    assert all(a.text and "<" not in a.text and a.url.startswith("https://") and a.date_iso for a in arts)


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_feeds_by_url_give_one_article_per_entry(web, name):
    encoding, ctype, titles, _ = FEEDS[name]
    # Entry links point at the loopback server (which answers 404), so each entry falls back to its own text.
    text = (PAGES / name).read_bytes().decode(encoding)
    text = re.sub(r"https://[a-z]+\.example", web.base, text)
    web.routes["/feed"] = (200, ctype, text.encode(encoding))
    arts, errs = split(load_sources([web.url("/feed")]))
    assert not errs and [a.title for a in arts] == titles
    assert all(a.text and "<?xml" not in a.text for a in arts)


def test_utf16_feed_entry_text_is_exact():
    arts, _ = split(load_sources([str(PAGES / "feed-utf16.rss")]))
    assert arts[0].text == "Po dwóch latach remontu most na rzece Wieprz znów łączy oba brzegi gminy. Koszt prac wyniósł 24 mln zł."
    assert arts[1].text == "Ministerstwo edukacji przeznaczy 300 mln zł na pracownie przyrodnicze w szkołach podstawowych."
    assert arts[0].source == "Kurier Nadwiślański" and arts[0].date_iso == "2024-06-03"


def test_local_feed_entry_without_text_says_why(tmp_path):
    p = tmp_path / "feed.rss"
    p.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
                 '<item><title>Empty</title><link>https://t.example/a</link></item></channel></rss>')
    arts, errs = split(load_sources([str(p)]))
    assert not arts and len(errs) == 1
    assert errs[0].source == f"{p}#0" and errs[0].reason == "feed entry has no text (no summary or content in the entry)"


# --- metadata --------------------------------------------------------------------------------------
def test_site_banner_date_and_junk_author_are_not_used():
    a = one(PAGES / "banner-date.html")
    assert a.published_at is None  # "Welcome to ... Mon, 25 Dec 2023" is the site's today, not the story's date
    assert a.author == ""  # not "Submitted", not the commenter
    assert a.title == "Footbridge to be rebuilt"


def test_namespace_url_date_is_not_used():
    a = one(PAGES / "namespace-date.html")
    assert a.published_at is None  # not 2000-01-01 from w3.org/2000/01/rdf-schema
    assert a.author == "Tom Hale"


def test_url_date_beats_a_year_only_date_and_breadcrumbs_leave_the_title(web):
    web.routes["/noticias/2013/8/3/lluvias-ruta-5"] = (200, "text/html; charset=utf-8", (PAGES / "year-only-date-breadcrumbs.html").read_bytes())
    a = one(web.url("/noticias/2013/8/3/lluvias-ruta-5"))
    assert a.date_iso == "2013-08-03"
    assert a.title == "Lluvias cortan la ruta 5 “por tiempo indefinido”"
    assert a.source == "El Valle Hoy"


def test_site_suffix_entities_byline_over_publisher_and_local_date():
    a = one(PAGES / "site-suffix-publisher-author.html")
    assert a.title == "'We were never told': ferry workers on the timetable cuts"
    assert a.author == "Lena Okafor"  # the byline, not the JSON-LD publisher given as author
    assert a.date_iso == "2024-02-20"  # the page's own day (UTC would be the 21st)
    assert a.published_at.isoformat() == "2024-02-20T23:45:00-08:00"


def test_unreadable_meta_date_gives_way_quietly(tmp_path, caplog):
    page = (PAGES / "namespace-date.html").read_text().replace(
        '<meta charset="utf-8">', '<meta charset="utf-8"><meta property="article:published_time" content="TBD">'
                                  '<meta name="dc.date" content="2024-06-10">')
    p = tmp_path / "page.html"
    p.write_text(page)
    with caplog.at_level(logging.WARNING, logger="ingest"):
        assert one(p).date_iso == "2024-06-10"
    assert not caplog.records


def test_visible_headline_over_kicker_and_logo_and_outlet_as_author():
    a = one(PAGES / "headline-kicker-logo.html")
    assert a.title == "Night ferries return to the harbour"  # not og:title's kicker, not the logo's <h1>
    assert a.author == "Lena Okafor"  # not the outlet's own name, and without the "Autor:" label
    assert a.date_iso == "2024-03-12"


def test_kicker_inside_the_h1_and_a_utc_stamp_on_the_urls_day(web):
    a = one(PAGES / "headline-in-h1-kicker.html")
    assert a.title == "Pier repairs to start in May"  # the <h1>'s kicker element left out
    assert a.published_at.isoformat() == "2024-03-31T22:30:00+00:00"
    web.routes["/news/2024/04/01/pier-repairs"] = (200, "text/html; charset=utf-8", (PAGES / "headline-in-h1-kicker.html").read_bytes())
    b = one(web.url("/news/2024/04/01/pier-repairs"))
    # A UTC stamp whose local day the URL spells: that day, and still the same instant.
    assert b.date_iso == "2024-04-01" and b.published_at == a.published_at and b.published_at.utcoffset().total_seconds() > 0


def test_dateline_above_the_headline_is_the_date_and_a_copyright_year_is_not():
    assert one(PAGES / "dateline-above-headline.html").date_iso == "2024-03-12"  # not the top bar's "today" (the 19th)
    assert one(PAGES / "copyright-year-only.html").published_at is None  # not 2013-01-01 from "Copyright 2013"


def test_date_from_a_json_ld_webpage_object():
    a = one(PAGES / "webpage-json-ld-date.html")
    assert a.published_at.isoformat() == "2024-02-14T09:15:00+01:00"  # not dateModified, not the masthead's day


@pytest.mark.parametrize("raw, sites, expected", [
    ("Harbor Courier", ["Harbor Courier"], ""),
    ("Kath Example", ["www.kath.example"], ""),
    ("Portscape", ["portsca.pe"], ""),  # a site's name spelt from its domain
    ("Dana Whitfield", ["dana.example"], "Dana Whitfield"),  # a person's own site
    ("Name", [], ""),  # a comment form's label
    ("Auteur Ana Vidal", [], "Ana Vidal"),
    ("Interview: Jonas Berg", [], "Jonas Berg"),
    ("ana[at]vidal.example", [], ""),
    ("'Ana Vidal, Jonas Berg'", [], "Ana Vidal, Jonas Berg"),
])
def test_page_author(raw, sites, expected):
    assert page_author(raw, sites) == expected


@pytest.mark.parametrize("stated, h1s, parts, expected", [
    (["Ferry timetable: Night ferries return | Harbor Courier"], ["Harbor Courier", "Night ferries return"], None, "Night ferries return"),
    (["Night ferries return | Harbor Courier"], ["Harbor Courier"], None, "Night ferries return"),  # the <h1> is the logo
    (["Night ferries return"], ["Harbour works Night ferries return"], [["Harbour works", "Night ferries return"]], "Night ferries return"),
    (["Night ferries are back"], ["Local news"], None, "Night ferries are back"),  # a section name in the <h1>
    (["Ferries return after winter break"], ["Night ferries return after a winter break"], None, "Night ferries return after a winter break"),
])
def test_page_title(stated, h1s, parts, expected):
    assert page_title(stated, h1s, ["Harbor Courier"], parts or [[h] for h in h1s]) == expected


@pytest.mark.parametrize("raw, sites, expected", [
    ("Footbridge to be rebuilt -- Sott.net", [], "Footbridge to be rebuilt"),
    ("Pier opens | Harbor Media - Analysis Opinion", ["Harbor Media - Analysis Opinion"], "Pier opens"),
    ("harbor.example //   &raquo; Pier opens", [], "Pier opens"),
    ("Blog Archive » Pier opens", [], "Pier opens"),
    ("Pier opens -", [], "Pier opens"),
    ("Lluvias cortan la ruta 5 » Local » Noticias", [], "Lluvias cortan la ruta 5"),
    ("Pier opens | Valley Courier", ["Valley Courier"], "Pier opens"),
    ("Pier opens - The Valley Courier Online", ["The Valley Courier"], "Pier opens"),
    ("Pier opens | Valley Courier", [], "Pier opens | Valley Courier"),  # an unknown site name is kept
    ("Left | Right: a debate on the pier", ["Valley Courier"], "Left | Right: a debate on the pier"),
    ("Council says yes / no vote needed", [], "Council says yes / no vote needed"),
    ("&#039;Massive intel failure by Mossad&#039;", [], "'Massive intel failure by Mossad'"),
    ("&amp;#039;Massive intel failure&amp;#039; - harbor.example", ["harbor.example"], "'Massive intel failure'"),
])
def test_clean_title(raw, sites, expected):
    assert clean_title(raw, sites) == expected


@pytest.mark.parametrize("raw, expected", [
    ("support@example.com (Team)", "Team"),
    ("View all posts by Dana Whitfield", "Dana Whitfield"),
    ("Submitted", ""),
    ("By Ann Lee", "Ann Lee"),
    ("news@harbor.example", ""),
    ("Ann Lee <ann@harbor.example>", "Ann Lee"),
    ("Byron Kale", "Byron Kale"),
])
def test_clean_author(raw, expected):
    assert clean_author(raw) == expected
    assert Article(text="x", author=raw).author == expected


def test_entities_decoded_in_record_titles(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"title": "&#039;Massive intel failure by Mossad&#039;", "author": "support@example.com (Team)", "body": "Text."}')
    a = one(p)
    assert a.title == "'Massive intel failure by Mossad'" and a.author == "Team"


def test_url_date_shapes():
    assert str(url_date("https://e.example/news/2013/8/3/story")) == "2013-08-03"
    assert str(url_date("https://e.example/2024-02-14-pier-opens")) == "2024-02-14"
    assert str(url_date("https://e.example/a/20240214/pier")) == "2024-02-14"
    assert url_date("https://e.example/a/2024/pier") is None


# --- near-empty extractions ------------------------------------------------------------------------
def test_caption_only_page_uses_json_ld_article_body(caplog):
    with caplog.at_level(logging.WARNING, logger="ingest"):
        a = one(PAGES / "caption-only-jsonld.html")
    assert a.text.startswith("The Riverside council voted on Tuesday to rebuild the Mill Street footbridge")
    assert "600,000 dollars over ten years." in a.text and "Photo:" not in a.text
    assert (a.title, a.author, a.date_iso) == ("Council backs new Mill Street footbridge", "Tom Hale", "2024-06-11")
    assert not caplog.records


def test_caption_only_page_without_article_body_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="ingest"):
        a = one(PAGES / "caption-only.html")
    assert "Mill Street footbridge" in a.text
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "caption-only.html" in warnings[0] and "characters of article text" in warnings[0]


# --- one story once --------------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("https://kurier.example/kraj/a", "https://kurier.example/kraj/a"),
    ("http://www.Kurier.example:80/kraj/a/?utm_source=rss&utm_medium=feed#comments", "https://kurier.example/kraj/a"),
    ("https://kurier.example/kraj/a?page=2&fbclid=x1", "https://kurier.example/kraj/a?page=2"),
    ("https://kurier.example:8443/a/", "https://kurier.example:8443/a"),
])
def test_identity_url(url, expected):
    from ingest.article import article_id, identity_url

    assert identity_url(url) == expected
    assert article_id(url, "") == article_id(expected, "other text")


def test_page_as_file_and_by_url_is_one_article(web, ingestor):
    data = (PAGES / "pl-sejm-windows-1250.html").read_bytes()
    web.routes["/kraj/sejm"] = (200, "text/html; charset=windows-1250", data)
    r1 = ingestor.ingest([str(PAGES / "pl-sejm-windows-1250.html")])
    assert r1.added == 1
    # The fetched copy, at another address with tracking parameters, declares the same canonical URL.
    r2 = ingestor.ingest([web.url("/kraj/sejm?utm_source=rss&utm_medium=feed")])
    assert (r2.added, r2.unchanged, r2.chunks_embedded) == (0, 1, 0)
    # Both in one run: one article, and the summary says a duplicate was merged.
    r3 = ingestor.ingest([str(PAGES / "pl-sejm-windows-1250.html"), web.url("/kraj/sejm?utm_source=rss")])
    assert (r3.unchanged, r3.merged) == (1, 1) and "1 duplicate merged" in r3.summary() and r3.as_dict()["merged"] == 1
    arts = ingestor.store.articles()
    assert len(arts) == 1 and arts[0].url == "https://kurier.example/kraj/2024/05/17/sejm-fundusze-gminy"


def test_two_different_pages_with_one_url_are_reported(tmp_path, ingestor, caplog):
    for name, body in (("a.md", "First version of the pier story."), ("b.md", "A different story about the harbour.")):
        (tmp_path / name).write_text(f"---\ntitle: Pier\nurl: https://harbor.example/pier\n---\n{body}\n")
    with caplog.at_level(logging.WARNING, logger="ingest"):
        r = ingestor.ingest([str(tmp_path)])
    assert (r.added, r.merged) == (1, 1) and "1 duplicate merged" in r.summary()
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any("a.md" in m and "b.md" in m and "different text" in m for m in msgs)


def test_a_front_page_canonical_is_not_the_identity(web):
    page = (PAGES / "year-only-date-breadcrumbs.html").read_text().replace(
        "<meta charset=\"utf-8\">", "<meta charset=\"utf-8\"><link rel=\"canonical\" href=\"/\">")
    web.routes["/noticias/2013/8/3/lluvias"] = (200, "text/html; charset=utf-8", page.encode())
    assert one(web.url("/noticias/2013/8/3/lluvias")).url == web.url("/noticias/2013/8/3/lluvias")
