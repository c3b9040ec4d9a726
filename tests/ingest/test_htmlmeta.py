"""Metadata from the shapes real news pages give it (issue 17): bylines in markup and labelled lines, JSON-LD
references, scholarly and Yoast author tags, and a UTC time stamp shown as the page's local day."""

from __future__ import annotations

import pytest

from ingest.htmlmeta import _byline_text, page_author
from ingest.loaders import parse_html

BODY = "".join(f"<p>The harbour board met on Tuesday to discuss item {i} of the ferry plan, and agreed to publish "
               f"the timetable for the winter season after a long debate about costs and routes.</p>" for i in range(8))


def page(head: str = "", before: str = "", after: str = "", tail: str = "", h1: str = "Night ferries return",
         title: str = "") -> str:
    return (f"<html><head><title>{title or h1}</title>{head}</head><body><header><a href='/'>Harbor Courier</a></header>"
            f"<main><article>{before}<h1>{h1}</h1>{after}{BODY}</article>{tail}</main></body></html>")


def parsed(html: str):
    return parse_html(html, "test.html", "https://harbor.example/news/night-ferries-return")


def test_json_ld_author_given_as_a_reference_to_a_person():
    ld = ('<script type="application/ld+json">{"@context": "https://schema.org", "@graph": ['
          '{"@type": "Article", "headline": "Night ferries return", "author": {"@id": "https://harbor.example/#/person/1"}},'
          '{"@type": "Person", "@id": "https://harbor.example/#/person/1", "name": "Dana Whitfield"}]}</script>')
    assert parsed(page(head=ld)).author == "Dana Whitfield"


def test_yoast_written_by_label_and_citation_author_over_a_reference_list():
    yoast = '<meta name="twitter:label1" content="Written by"><meta name="twitter:data1" content="Dana Whitfield">'
    assert parsed(page(head=yoast)).author == "Dana Whitfield"
    scholarly = '<meta name="author" content="AB. Carter, CD. Lindqvist,"><meta name="citation_author" content="Lena K. Ortiz">'
    assert parsed(page(head=scholarly)).author == "Lena K. Ortiz"


def test_byline_markup_over_a_commenter_and_a_guess():
    byline = ('<div class="entry-meta"><span class="entry-date">13. Januar 2014</span> von <span class="author vcard">'
              '<a class="url fn n" href="/author/admin/">hwalden</a></span></div>')
    comments = '<ol class="comment-list"><li class="comment"><a rel="author" href="/u/x">Tom Reader</a> says</li></ol>'
    assert parsed(page(after=byline, tail=comments)).author == "hwalden"
    rel = '<div class="meta">Posted by <a href="/author/ann/" rel="author">Jörg W. Albers</a> at 18:52</div>'
    assert parsed(page(tail=comments + rel)).author == "Jörg W. Albers"


def test_labelled_byline_lines_after_the_headline():
    assert parsed(page(after='<div class="metaInfo">Ein Artikel von <strong>Petra Lindner</strong> | 27.01.2022 - 12:45</div>')).author == "Petra Lindner"
    assert parsed(page(after="<p><i>von Karin Vogt</i></p>")).author == "Karin Vogt"
    # A sentence that starts like a byline is no byline.
    assert parsed(page(after="<p>Von Hamburg nach Kiel mit der Fähre</p>")).author == ""


def test_a_login_name_in_meta_yields_to_the_name_the_byline_spells():
    head = '<meta property="article:author" content="ines_duarte">'
    after = '<span class="submitted">Author: <a href="/autoren/ines-duarte">Inés Duarte</a>, Datum: 03.03.19</span>'
    assert parsed(page(head=head, after=after)).author == "Inés Duarte"


@pytest.mark.parametrize("raw, expected", [
    ("Mia Haller Alle Artikel Kontakt", "Mia Haller"),
    ("Sofia.Marlowe am Samstag, 19. Oktober 2019", "Sofia.Marlowe"),
    ("Redaktion, 24. Januar 2022", "Redaktion"),
    ("Zeige alle Beiträge von Deniz Arslan", "Deniz Arslan"),
    ("Alle Beiträge", ""),
    ("About the Author", ""),
    ("3 de Mayo de 2022", ""),
    ("Posted by Noah Price, Ravi Menon and Asha K Rao - Browser team", "Noah Price, Ravi Menon and Asha K Rao"),
])
def test_byline_text(raw, expected):
    assert _byline_text(raw) == expected


@pytest.mark.parametrize("raw, sites, expected", [
    ("Adam Lee HarborVoice Staff", ["HarborVoice"], "Adam Lee"),
    ("HARBOR-Experte Robin Kale", ["harbor.example"], "Robin Kale"),
    ("Ann Harbor", ["harbor.example"], "Ann Harbor"),  # a person whose name has the site's word in it
    ("jesusfreak jesusfreak", [], "jesusfreak"),
    ("Jobs & Hire", ["jobsnhire.example"], ""),  # the outlet, spelt out
])
def test_page_author_drops_the_outlet_around_a_name(raw, sites, expected):
    assert page_author(raw, sites) == expected


def test_utc_stamp_on_a_page_showing_its_local_day():
    head = '<meta property="article:published_time" content="2022-11-06T23:00:00.000Z">'
    a = parsed(page(head=head, after='<p class="date">07.11.2022</p>'))
    assert a.date_iso == "2022-11-07" and a.published_at.utcoffset().total_seconds() == 3600  # the same instant
    assert parsed(page(head=head)).date_iso == "2022-11-06"  # nothing shown: the stamp's own day
    # A local time written without a zone is not moved, whatever day the page shows.
    naive = '<meta name="datePublished" content="Fri Feb 18 10:27:24 2022">'
    assert parsed(page(head=naive, after="<p>18.02.2022</p><p>Urteil vom 17.02.2022</p>")).date_iso == "2022-02-18"


@pytest.mark.parametrize("after, expected", [
    ("<p>11.12.2019 - Greta Sommer</p>", "Greta Sommer"),  # a dateline naming the writer
    ('<div class="info"><h5>Datum: </h5>03.11.2021 <br><h5>Autor: </h5>Uwe Brandt/SP-X</div>', "Uwe Brandt"),
    ('<div class="meta">yas! <span>| By </span><span>Cara Stiles</span> | <time>April 13, 2020</time></div>', "Cara Stiles"),
    ("<p><em>Courtesy of Harbor News</em></p><p><em>Written by: <a href='https://other.example/'>Irene Walsh</a></em></p>", "Irene Walsh"),
])
def test_bylines_in_datelines_and_after_other_metadata(after, expected):
    assert parsed(page(after=after)).author == expected


def test_a_byline_naming_the_site_gives_way_to_the_next_one():
    after = ('<div class="td-post-author-name"><a href="/author/press/">Harbor Courier</a></div>'
             "<p><em>Written by: Irene Walsh</em></p>")
    assert parsed(page(head='<meta property="og:site_name" content="Harbor Courier">', after=after)).author == "Irene Walsh"


def test_kicker_in_its_own_element_and_site_name_from_the_feed_link():
    h1 = "<span class='kicker'>Winter timetable</span><span>:</span> <span>Night ferries return</span>"
    html = page(head="<meta property='og:title' content='Winter timetable: Night ferries return'>", h1=h1)
    assert parsed(html).title == "Night ferries return"
    feed = '<link rel="alternate" type="application/rss+xml" title="Harbour Notes 2.0 &raquo; Feed" href="/feed/">'
    html = page(head=feed, title="Night ferries return | Harbour Notes 2.0", h1="Blog")  # an unconfirmed <h1>
    assert parsed(html).title == "Night ferries return"


def test_a_bare_year_in_reference_microdata_is_no_publication_day():
    head = '<meta itemprop="datePublished" content="1988"><meta name="dc.date" content="2017-01-30">'
    assert parsed(page(head=head)).date_iso == "2017-01-30"
