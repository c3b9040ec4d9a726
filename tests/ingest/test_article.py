"""The Article record: normalisation, stable ids, content hashes, field aliases and date parsing."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from ingest.article import Article, article_from_record, article_id, normalize_text, parse_date

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-03-05", dt.datetime(2024, 3, 5, tzinfo=UTC)),
        ("2024-03-05T10:00:00Z", dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),
        ("2024-03-05T10:00:00+02:00", dt.datetime(2024, 3, 5, 8, tzinfo=UTC)),
        ("Tue, 05 Mar 2024 10:00:00 GMT", dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),  # RFC 2822 (RSS)
        ("Tue, 05 Mar 2024 10:00:00 -0500", dt.datetime(2024, 3, 5, 15, tzinfo=UTC)),
        ("March 5, 2024", dt.datetime(2024, 3, 5, tzinfo=UTC)),
        ("5 March 2024", dt.datetime(2024, 3, 5, tzinfo=UTC)),
        ("Mar 2024", dt.datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024", dt.datetime(2024, 1, 1, tzinfo=UTC)),  # not "this month of 2024"
        (1709632800, dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),  # unix seconds
        (1709632800000, dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),  # unix milliseconds
        (1709632800.0, dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),
        ("1709632800", dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),  # timestamp as a string
        ("1709632800000", dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),
        (20240305, dt.datetime(2024, 3, 5, tzinfo=UTC)),  # YYYYMMDD integer
        ("20240305", dt.datetime(2024, 3, 5, tzinfo=UTC)),
        (dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, tzinfo=UTC)),
        (dt.datetime(2024, 3, 5, 10), dt.datetime(2024, 3, 5, 10, tzinfo=UTC)),  # naive = UTC
    ],
)
def test_parse_date_formats(value, expected):
    d = parse_date(value)
    assert d is not None and d.tzinfo is not None
    assert d == expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_parse_date_missing_is_none_without_warning(value, caplog):
    with caplog.at_level(logging.WARNING, logger="ingest.article"):
        assert parse_date(value) is None
    assert not caplog.records


@pytest.mark.parametrize("value", ["not a date", "yesterday", "3 days ago", "32/13/2024x", "99999-99-99", 0, True, "Mar 5"])
def test_bad_date_is_unknown_with_warning(value, caplog):
    with caplog.at_level(logging.WARNING, logger="ingest.article"):
        assert parse_date(value, where="feed.xml#3") is None
    assert any("kept as unknown" in r.getMessage() for r in caplog.records)
    assert any("feed.xml#3" in r.getMessage() for r in caplog.records)


def test_implausible_year_is_unknown(caplog):
    with caplog.at_level(logging.WARNING, logger="ingest.article"):
        assert parse_date("1066-10-14") is None
    assert caplog.records


def test_normalize_text():
    raw = "\ufeffLine one  \r\nLine two\rLine\x00 three\n\n\n\n\nPara\u0301 end\t \n"
    out = normalize_text(raw.lstrip("\ufeff"))
    assert "\r" not in out and "\x00" not in out
    assert "\n\n\n" not in out
    assert out.startswith("Line one\nLine two\nLine three\n\nPar")
    assert "Para\u0301" not in out and "Par\u00e1" in out  # NFC


def test_ids_are_stable_and_url_based():
    a = Article(text="Some text.", url="https://example.com/a")
    b = Article(text="Edited text, same story.", url=" https://example.com/a ")
    assert a.id == b.id == article_id("https://example.com/a", "")
    assert len(a.id) == 16
    # Without a URL the id is the text's hash, insensitive to whitespace normalisation.
    c = Article(text="Same words.\r\n\r\n\r\nMore.")
    d = Article(text="Same words.\n\nMore.  ")
    assert c.id == d.id
    assert c.id != Article(text="Other words.").id


def test_content_hash_tracks_indexed_fields():
    base = dict(text="Body.", title="T", source="S", author="A", url="https://x.example/1",
                published_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
    h = Article(**base).content_hash
    assert Article(**base).content_hash == h
    for k, v in [("text", "Body changed."), ("title", "T2"), ("source", "S2"), ("author", "B"),
                 ("published_at", dt.datetime(2024, 1, 2, tzinfo=UTC))]:
        assert Article(**{**base, k: v}).content_hash != h, k
    assert Article(**{**base, "origin": "elsewhere.json"}).content_hash == h


def test_header_and_date_iso():
    a = Article(text="x", title="Title", source="Outlet", published_at=dt.datetime(2024, 2, 3, 23, tzinfo=UTC))
    assert a.header() == "Title | Outlet | 2024-02-03"
    assert Article(text="x").header() == "" and Article(text="x").date_iso == ""


@pytest.mark.parametrize(
    "record",
    [
        {"title": "T", "source": "S", "author": "A", "published_at": "2024-03-05", "url": "https://e.example/1", "body": "Text."},
        {"headline": "T", "outlet": "S", "byline": "A", "date": "2024-03-05", "link": "https://e.example/1", "text": "Text."},
        {"Headline": "T", "publisher": "S", "authors": ["A"], "datePublished": "2024-03-05", "canonical_url": "https://e.example/1", "content": "Text."},
        {"title": "T", "site_name": "S", "creator": {"name": "A"}, "pubDate": "Tue, 05 Mar 2024 00:00:00 GMT", "href": "https://e.example/1", "maintext": "Text."},
        {"title": "T", "publication": "S", "writer": "A", "timestamp": 1709596800, "permalink": "https://e.example/1", "article": ["Text."]},
    ],
)
def test_field_aliases(record):
    a = article_from_record(record, origin="x.json")
    assert (a.title, a.source, a.author, a.url, a.text) == ("T", "S", "A", "https://e.example/1", "Text.")
    assert a.date_iso == "2024-03-05"
    assert a.origin == "x.json"


def test_record_extras_and_categories():
    a = article_from_record({"text": "Body", "tags": ["a", "b"], "word_count": 3, "nested": {"x": 1}}, origin="r")
    assert a.category == "a, b"
    assert a.extra == {"word_count": 3}


def test_record_id_used_only_without_url():
    assert article_from_record({"id": "record-0001", "text": "Body"}, origin="r").id == "record-0001"
    # A short id like "1" is not unique across files: the content hash is used instead.
    assert article_from_record({"id": "1", "text": "Body"}, origin="r").id == article_id("", "Body")
    with_url = article_from_record({"id": "rec-1", "url": "https://e.example/x", "text": "Body"}, origin="r")
    assert with_url.id == article_id("https://e.example/x", "")


@pytest.mark.parametrize("record", [{"title": "No body"}, {"text": "   \n  "}, {"body": []}])
def test_record_without_text_is_rejected(record):
    with pytest.raises(ValueError, match="no text"):
        article_from_record(record, origin="r")


def test_record_must_be_object():
    with pytest.raises(ValueError, match="expected an object"):
        article_from_record(["a list"], origin="r")  # type: ignore[arg-type]
