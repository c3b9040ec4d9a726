"""Metadata from the shapes real news pages give it (issue 17): bylines in markup and labelled lines, JSON-LD
references, scholarly and Yoast author tags, and a UTC time stamp shown as the page's local day."""

from __future__ import annotations

import pytest

from ingest.htmlmeta import _byline_text, first_date, page_author, read_page
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
    ("Text und Interview: Harald Winter", "Harald Winter"),  # labels joined
    ("Text and photos by Ann Lee", "Ann Lee"),
])
def test_byline_text(raw, expected):
    assert _byline_text(raw) == expected


@pytest.mark.parametrize("raw, sites, expected", [
    ("Adam Lee HarborVoice Staff", ["HarborVoice"], "Adam Lee"),
    ("HARBOR-Experte Robin Kale", ["harbor.example"], "Robin Kale"),
    ("Ann Harbor", ["harbor.example"], "Ann Harbor"),  # a person whose name has the site's word in it
    ("jesusfreak jesusfreak", [], "jesusfreak"),
    ("Jobs & Hire", ["jobsnhire.example"], ""),  # the outlet, spelt out
    ("Text; Interview Harald Winter", [], "Harald Winter"),  # "Text und Interview: Harald Winter", split at "und" by a guesser
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


# --- session 11: bylines in label/value pairs, co-authors, signatures; organisations; kickers; stated dates -----------
@pytest.mark.parametrize("after, expected", [
    # A label in an element of its own, the name in the next one or after it.
    ("<dl><dt>Author</dt><dd><a href='/staff/mara-quist/'>Mara Quist</a></dd><dt>Cover</dt><dd>Port Authority</dd></dl>",
     "Mara Quist"),
    ("<div class='info'><span>Date:</span> 19.11.2021<br><span>Autor:</span> Fritz Olander<br><span>Source:</span> Wire</div>",
     "Fritz Olander"),
    # A weekday column ("Di", "Mi") and a menu's "Texte" link are no labels.
    ("<table><tr><td>Di</td><td>Mi</td></tr></table>", ""),
    ("<ul><li>Texte</li><li>Fotos</li></ul>", ""),
    # Several profile links in one byline element: co-authors.
    ("<div class='byline'><a href='/autor/ines-vidal'>Ines Vidal</a>, <a href='/autor/tomas-reyes'>Tomas Reyes</a></div>",
     "Ines Vidal; Tomas Reyes"),
    # A role after the name.
    ("<p><strong>Autorin: Mara Quist, Projektleiterin des Hafenvereins in Nordby.</strong></p>", "Mara Quist"),
])
def test_bylines_as_label_and_value(after, expected):
    assert parsed(page(after=after)).author == expected


def test_a_dateline_above_the_headline_names_the_writer_but_not_a_section():
    assert parsed(page(before="<small>04.02.2022 | 13:10 Uhr | Rolf Weber</small>")).author == "Rolf Weber"
    assert parsed(page(before="<p><span>24.01.2022</span> - <span>Meldung</span></p>")).author == ""


def test_a_name_signed_at_the_end_of_the_article():
    signed = page().replace("</article>", "<p><b><i>Greta Sommer</i></b></p></article>")
    assert parsed(signed).author == "Greta Sommer"
    # A bold name between paragraphs (a subheading, a quoted person) is no signature.
    middle = page().replace("<p>The harbour board met on Tuesday to discuss item 3", "<p><b>Greta Sommer</b></p><p>The harbour "
                            "board met on Tuesday to discuss item 3", 1)
    assert parsed(middle).author == ""


def test_a_hidden_author_link_yields_to_the_visible_byline():
    after = ('<a href="https://social.example/u/1" rel="author" style="display:none;">Harbor Network</a>'
             '<span class="byline-author">Posted by Noah Price, Ravi Menon, Lena Ortiz and Asha K Rao - Harbour '
             'Timetable Planning team</span>')
    assert parsed(page(after=after)).author == "Noah Price, Ravi Menon, Lena Ortiz and Asha K Rao"


def test_a_teaser_byline_for_another_story_is_not_the_author():
    teaser = "<aside><article><h3>Ferry fares rise</h3><span class='author'>Kate Lund</span></article></aside>"
    assert parsed(page(before=teaser, after="<span class='author'>Ann Marsh</span>")).author == "Ann Marsh"


@pytest.mark.parametrize("raw, expected", [
    ("Harbour Media Systems GmbH", ""),  # the publisher's company or its web agency
    ("Nordby-Verlag GmbH, Nordby, Germany", ""),  # a company's imprint and its address
    ("Landesamt für Hafenbau und Schifffahrt", ""),  # an authority
    ("ist der Mann", ""),  # words of a sentence
    ("Lena Ortiz lena@harbor.example", "Lena Ortiz"),
    ("Text: Lea Brandt", "Lea Brandt"),
    ("Interview Lea Brandt", "Lea Brandt"),
    ("Écrit par Lea Brandt", "Lea Brandt"),
    ("Unbenannt", ""),
    ("Jose de la Cruz and Ann Lee", "Jose de la Cruz and Ann Lee"),  # particles and "and" are a name's words
    ("Kim Se Ri", "Kim Se Ri"),  # not the legal form "SE"
    ("Ann Lee for The Times", "Ann Lee"),  # the writer, and the outlet she wrote it for
    ("By Jose Ruiz Vega for Reuters", "Jose Ruiz Vega"),
    ("Mia Haller for the Guardian", "Mia Haller"),
    ("National Center for Health Statistics", ""),  # a body's name
    ("Bayerische Landesanstalt für Wald und Forstwirtschaft", ""),
])
def test_page_author_drops_organisations_and_non_names(raw, expected):
    assert page_author(raw, []) == expected


def test_organisation_in_meta_gives_way_to_the_byline():
    head = '<meta name="author" content="Landesanstalt für Hafenbau und Schifffahrt - LHS">'
    assert parsed(page(head=head, after="<p>von Joachim Brandt</p>")).author == "Joachim Brandt"


def test_headline_with_a_kicker_in_the_stated_title_or_in_the_h1():
    # "Kicker - Story" in og:title: the <h1> "Story" is the headline, not the site's name.
    head = "<meta property='og:title' content='Winter plan - Night ferries return to the islands'>"
    assert parsed(page(head=head, h1="Night ferries return to the islands")).title == "Night ferries return to the islands"
    # "Kicker / Story" in the <h1>, the story alone in JSON-LD.
    ld = '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Night ferries return to the islands"}</script>'
    assert parsed(page(head=ld, h1='"No more waiting" / Night ferries return to the islands')).title == \
        "Night ferries return to the islands"


def test_title_without_section_trail_and_with_glued_site_name():
    html = page(title="Night ferries return in winter | Travel | Forum | harbor.example", h1="")
    assert parsed(html.replace("<h1></h1>", "")).title == "Night ferries return in winter"
    # A logo <h1> first, then the headline, and a <title> gluing the site's name onto it.
    html = page(h1="Night ferries return", title="Night ferries returnHarbor Courier Online | Harbor Courier Online")
    html = html.replace("<main>", "<main><h1 class='site-title'>Harbor Courier Online</h1>")
    assert parsed(html).title == "Night ferries return"


def test_stated_dates_the_page_shows_and_a_labelled_publication_date():
    # JSON-LD and <meta> disagree: the one the page shows wins.
    ld = '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "2022-01-04T07:29:00Z"}</script>'
    head = ld + '<meta property="article:published_time" content="2022-01-06T08:29:34">'
    assert parsed(page(head=head, after="<p class='date'>06.01.2022</p>")).date_iso == "2022-01-06"
    assert parsed(page(head=head)).date_iso == "2022-01-04"  # none shown: the first statement
    # No stated date: a date labelled as the publication's, not a commenter's.
    comment = '<ol class="comments"><li><time datetime="2019-08-24T03:36:11+02:00">24. August 2019</time></li></ol>'
    assert parsed(page(after="<p>Veröffentlicht am 16.08.2019<br>Dauer: 1 Stunde</p>", tail=comment)).date_iso == "2019-08-16"
    # A sentence naming another publication's date is no statement of this page's.
    assert read_page(page(after="<p>The report, published on March 3, 2021, found delays.</p>")).dateline == ""


def test_a_dateline_under_the_headline_when_nothing_states_a_date():
    # trafilatura would take the modified date.
    html = page(head='<meta property="article:modified_time" content="2022-12-16T10:00:00+01:00">',
                after="<p class='meta'>Von Lea Brandt , 07 Dezember, 2022</p>")
    assert parsed(html).date_iso == "2022-12-07"
    # Day first: "02.01.2022" is the 2nd of January (a date parser reads it month first).
    assert first_date("Harbor board – 02.01.2022, 10:15") == "2022-01-02"
    assert first_date("No date here, 12 items") == ""
    # A day read from the text yields to the URL's.
    html = page(after="<p>The ferry was christened on 18.10.2021 in Nordby.</p>")
    assert parse_html(html, "t.html", "https://harbor.example/2021/10/20/ferry-opens/").date_iso == "2021-10-20"


def test_url_day_over_a_much_later_stated_day_and_a_spanish_dateline():
    html = page(head='<meta itemprop="datePublished" content="2019-06-17T18:28:00+0200">')
    assert parse_html(html, "t.html", "https://harbor.example/home/2017/7/12/night-ferries").date_iso == "2017-07-12"
    # A UTC stamp late in the day: the dateline by the headline ("5 de mayo de 2022") keeps its day, whatever a
    # banner above shows.
    head = '<meta property="article:published_time" content="2022-05-05T22:12:00Z">'
    html = page(head=head, before="<p>06 may 2022</p>", after="<p>05 de mayo de 2022</p>")
    assert parsed(html).date_iso == "2022-05-05"


@pytest.mark.parametrize("description, expected", [
    ("Dana Whitfield - harbour reporter since 2002.", "Dana Whitfield"),  # the author box spells the full name
    ("Dana writes about ferries.", "Dana"),  # no surname beside it
])
def test_a_first_name_byline_takes_the_full_name_from_the_authors_own_description(description, expected):
    ld = ('<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Article", "headline": '
          f'"Night ferries return", "author": {{"@type": "Person", "name": "Dana", "description": "{description}"}}}}</script>')
    assert parsed(page(head=ld)).author == expected
