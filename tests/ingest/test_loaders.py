"""File readers: every format, metadata extraction, encodings, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.article import Article
from ingest.loaders import load_sources
from rag.errors import IngestError

BODY = ("The harbour authority said on Monday that the new pier will open in May. "
        "Officials expect 40 extra ships a year to dock at the terminal.")


def load(*paths) -> tuple[list[Article], list[IngestError]]:
    items = list(load_sources([str(p) for p in paths]))
    return [i for i in items if isinstance(i, Article)], [i for i in items if isinstance(i, IngestError)]


def one(path) -> Article:
    arts, errs = load(path)
    assert not errs, errs
    assert len(arts) == 1
    return arts[0]


def one_error(path) -> IngestError:
    arts, errs = load(path)
    assert not arts
    assert len(errs) == 1, errs
    assert Path(str(path)).name in errs[0].source
    assert str(errs[0]).startswith(errs[0].source)
    return errs[0]


# --- the synthetic corpus --------------------------------------------------------------------------
def test_corpus_loads_every_article(corpus):
    arts, errs = load(corpus)
    assert not errs
    by_source = {a.source: a for a in arts}
    assert sorted(by_source) == ["Canyon Gazette", "Capital Dispatch", "Harbor Ledger", "Metro Wire", "Northern Sentinel", "Valley Courier"]
    assert sorted(a.date_iso for a in arts) == ["2024-01-18", "2024-02-12", "2024-03-07", "2024-04-22", "2024-05-14", "2024-06-12"]
    assert all(a.url.startswith("https://") and a.title and a.author for a in arts)
    assert len({a.id for a in arts}) == 6
    for a in arts:
        assert 150 <= len(a.text.split()) <= 400, a.title


# --- text and markdown -----------------------------------------------------------------------------
def test_txt_plain(tmp_path):
    p = tmp_path / "pier-story.txt"
    p.write_text(BODY + "\n")
    a = one(p)
    assert a.text == BODY
    assert a.title == "pier-story"  # file stem when nothing better
    assert a.source == a.author == a.url == "" and a.published_at is None
    assert a.origin == str(p)


def test_txt_with_header_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Title: New Pier Opens\nSource: Harbor Ledger\nAuthor: Ann Lee\nDate: March 5, 2024\n"
                 "URL: https://harborledger.example/pier\n\n" + BODY)
    a = one(p)
    assert (a.title, a.source, a.author, a.url, a.date_iso) == ("New Pier Opens", "Harbor Ledger", "Ann Lee", "https://harborledger.example/pier", "2024-03-05")
    assert a.text == BODY


def test_txt_body_line_that_looks_like_prose_is_kept(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Residents said: the pier is late.\n" + BODY)
    assert one(p).text.startswith("Residents said: the pier is late.")


def test_md_front_matter(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("---\ntitle: \"Pier: a history\"\noutlet: Valley Courier\nauthor: [Ann Lee, Bo Chan]\n"
                 "published_at: 2024-03-05\nurl: https://vc.example/p\ncategory: local\n---\n# Ignored heading stays in body\n\n" + BODY)
    a = one(p)
    assert a.title == "Pier: a history" and a.source == "Valley Courier" and a.author == "Ann Lee, Bo Chan"
    assert a.date_iso == "2024-03-05" and a.category == "local" and a.url == "https://vc.example/p"
    assert a.text.startswith("# Ignored heading") and "---" not in a.text


def test_md_heading_is_title_without_front_matter(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("# The Pier Opens\n\n" + BODY)
    a = one(p)
    assert a.title == "The Pier Opens" and a.text == BODY


def test_md_front_matter_crlf_and_closing_at_eof(tmp_path):
    p = tmp_path / "a.md"
    p.write_bytes(("---\r\ntitle: CRLF story\r\nsource: Metro Wire\r\n---\r\n" + BODY.replace(". ", ".\r\n")).encode())
    a = one(p)
    assert a.title == "CRLF story" and a.source == "Metro Wire" and "\r" not in a.text
    q = tmp_path / "only-meta.md"
    q.write_text("---\ntitle: Only metadata\n---")
    e = one_error(q)
    assert "no text" in e.reason


def test_md_bad_yaml_front_matter(tmp_path):
    p = tmp_path / "bad-yaml.md"
    p.write_text("---\ntitle: [unclosed\nsource: : :\n---\n" + BODY)
    assert "bad YAML front matter" in one_error(p).reason


def test_md_front_matter_not_a_mapping(tmp_path):
    p = tmp_path / "list.md"
    p.write_text("---\n- a\n- b\n---\n" + BODY)
    assert "not a mapping" in one_error(p).reason


def test_md_bad_date_kept_unknown(tmp_path, caplog):
    p = tmp_path / "a.md"
    p.write_text("---\ntitle: T\ndate: sometime last spring\n---\n" + BODY)
    with caplog.at_level("WARNING", logger="ingest.article"):
        a = one(p)
    assert a.published_at is None
    assert any("a.md" in r.getMessage() and "kept as unknown" in r.getMessage() for r in caplog.records)


# --- HTML ------------------------------------------------------------------------------------------
def test_html_fixture_metadata_and_boilerplate(corpus):
    a = one(corpus / "novalink-recall.html")
    assert a.title == "Novalink Recalls 184,000 Aerio X2 Smart Speakers Over Battery Fire Risk"
    assert a.source == "Metro Wire" and a.author == "Priya Raman"
    assert a.date_iso == "2024-03-07"
    assert a.url == "https://metrowire.example/tech/2024/03/07/novalink-recalls-aerio-x2-speakers"
    assert "recalling 184,000 units of its Aerio X2" in a.text
    for junk in ("Subscribe for $1", "dataLayer", "font-family", "All rights reserved", "Cookie settings", "40% off all blenders", "Ten phones to buy"):
        assert junk not in a.text, junk


def test_html_without_json_ld_uses_title_and_meta(tmp_path):
    paras = "".join(f"<p>{BODY} Paragraph {i} adds more detail about the pier and the ships.</p>" for i in range(4))
    p = tmp_path / "plain.html"
    p.write_text(f"<html><head><title>Pier Opens Early</title><meta property=\"og:site_name\" content=\"Valley Courier\">"
                 f"<meta name=\"author\" content=\"Ann Lee\"><meta property=\"article:published_time\" content=\"2024-04-02T08:00:00Z\">"
                 f"</head><body><nav><a href='/'>Home</a> <a href='/x'>Sections</a></nav><article>{paras}</article>"
                 f"<footer>Copyright Valley Courier Media</footer></body></html>")
    a = one(p)
    assert a.title == "Pier Opens Early" and a.source == "Valley Courier" and a.author == "Ann Lee"
    assert a.date_iso == "2024-04-02"
    assert "Paragraph 3" in a.text and "Copyright" not in a.text


def test_html_short_article_still_extracted(tmp_path):
    p = tmp_path / "short.html"
    p.write_text(f"<html><head><title>Short</title></head><body><p>{BODY}</p></body></html>")
    assert "40 extra ships" in one(p).text


def test_html_only_scripts_is_an_error(tmp_path):
    p = tmp_path / "scripts.html"
    p.write_text("<html><head><script>var a = 1;</script><style>p{}</style></head><body><script>track()</script></body></html>")
    assert "no article text" in one_error(p).reason


# --- JSON / JSONL ----------------------------------------------------------------------------------
def _rec(i: int, **kw) -> dict:
    return {"title": f"Story {i}", "source": "Metro Wire", "date": f"2024-0{i}-01", "url": f"https://mw.example/{i}", "text": f"{BODY} Story number {i}.", **kw}


@pytest.mark.parametrize("shape", ["object", "list", "articles", "items"])
def test_json_shapes(tmp_path, shape):
    recs = [_rec(1), _rec(2)]
    data = {"object": recs[0], "list": recs, "articles": {"articles": recs, "total": 2}, "items": {"items": recs}}[shape]
    p = tmp_path / "a.json"
    p.write_text(json.dumps(data))
    arts, errs = load(p)
    assert not errs
    assert [a.title for a in arts] == (["Story 1"] if shape == "object" else ["Story 1", "Story 2"])
    assert arts[0].date_iso == "2024-01-01" and arts[0].url == "https://mw.example/1"


def test_json_list_with_bad_record(tmp_path):
    p = tmp_path / "mixed.json"
    p.write_text(json.dumps([_rec(1), {"title": "no body"}, "a string", _rec(2)]))
    arts, errs = load(p)
    assert [a.title for a in arts] == ["Story 1", "Story 2"]
    assert [e.source for e in errs] == [f"{p}[1]", f"{p}[2]"]
    assert "no text" in errs[0].reason and "expected an object" in errs[1].reason


def test_broken_json(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"title": "x", "text": "unterminated')
    assert "invalid JSON" in one_error(p).reason


def test_empty_json_list(tmp_path):
    p = tmp_path / "empty.json"
    p.write_text("[]")
    assert "no articles" in one_error(p).reason


def test_jsonl_with_broken_line(tmp_path):
    p = tmp_path / "feed.jsonl"
    p.write_text(json.dumps(_rec(1)) + "\n\n{broken json\n" + json.dumps(_rec(2)) + "\r\n")
    arts, errs = load(p)
    assert [a.title for a in arts] == ["Story 1", "Story 2"]
    assert len(errs) == 1 and errs[0].source == f"{p}:3" and "invalid JSON line" in errs[0].reason


def test_jsonl_fixture_aliases(corpus):
    arts, errs = load(corpus / "regional-wire.jsonl")
    assert not errs and len(arts) == 2
    fire, bank = arts
    assert fire.source == "Canyon Gazette" and fire.date_iso == "2024-05-14" and fire.url.endswith("pinecrest-fire-alder-springs-evacuation")
    assert bank.source == "Capital Dispatch" and bank.author == "Henrik Sollen" and bank.date_iso == "2024-06-12"
    assert bank.category == "economy, central banks"


# --- encodings -------------------------------------------------------------------------------------
def test_latin1_text(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("Title: Café owners protest\n\nThe café on the Rue Saint-Honoré closed; señor Núñez paid €5.".encode("cp1252"))
    a = one(p)
    assert a.title == "Café owners protest" and "Saint-Honoré" in a.text and "Núñez" in a.text and "€5" in a.text


def test_latin1_bytes_undefined_in_cp1252(tmp_path):
    p = tmp_path / "latin1b.txt"
    p.write_bytes(b"Caf\xe9 \x81 text about the harbour. " * 3)
    assert "Café" in one(p).text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-16-le"])
def test_utf16_and_bom(tmp_path, encoding):
    p = tmp_path / f"{encoding}.md"
    p.write_bytes("---\ntitle: Ünïcode story\n---\nThe mayor of Zürich said “yes” — 日本語 too.".encode(encoding))
    a = one(p)
    assert a.title == "Ünïcode story" and "Zürich" in a.text and "日本語" in a.text and "\ufeff" not in a.text


# --- PDF -------------------------------------------------------------------------------------------
def _make_pdf(path: Path, lines: list[str] | None, title: str | None = None, author: str | None = None) -> None:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), invariant=1)
    if title:
        c.setTitle(title)
    if author:
        c.setAuthor(author)
    if lines is None:
        c.rect(72, 600, 200, 100, fill=1)  # a drawing only: no text layer, like a scan
    else:
        y = 760
        for line in lines:
            c.drawString(72, y, line)
            y -= 16
    c.showPage()
    c.save()


def test_pdf_text_layer(tmp_path):
    p = tmp_path / "council-minutes.pdf"
    _make_pdf(p, ["Riverton council minutes.", "The council approved the budget of $412.6 million.", "Mayor Elena Marquez spoke."],
              title="Council Minutes", author="City Clerk")
    a = one(p)
    assert a.title == "Council Minutes" and a.author == "City Clerk"
    assert "approved the budget of $412.6 million" in a.text


def test_pdf_default_metadata_is_not_a_title(tmp_path):
    p = tmp_path / "untitled-export.pdf"
    _make_pdf(p, ["Some article text for the archive."])
    a = one(p)
    assert a.title == "untitled-export" and a.author == ""  # not reportlab's 'untitled' / 'anonymous'


def test_pdf_without_text_layer(tmp_path):
    p = tmp_path / "scan.pdf"
    _make_pdf(p, None)
    assert "no text layer" in one_error(p).reason


def test_corrupt_pdf(tmp_path):
    p = tmp_path / "corrupt.pdf"
    p.write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\x01\x02")
    e = one_error(p)
    assert "PDF" in e.reason


# --- bad inputs ------------------------------------------------------------------------------------
def test_binary_file(tmp_path):
    p = tmp_path / "photo.txt"
    p.write_bytes(bytes(range(256)) * 50)
    assert "binary" in one_error(p).reason


def test_binary_without_nul_bytes(tmp_path):
    import random

    rnd = random.Random(7)
    p = tmp_path / "noise.md"
    p.write_bytes(bytes(rnd.choice([b for b in range(1, 256)]) for _ in range(20000)))
    assert "binary" in one_error(p).reason


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.md"
    p.write_bytes(b"")
    assert "empty file" in one_error(p).reason


def test_whitespace_only_file(tmp_path):
    p = tmp_path / "blank.txt"
    p.write_text("  \n\n\t \n")
    assert "no text" in one_error(p).reason


def test_nonexistent_path(tmp_path):
    arts, errs = load(tmp_path / "missing.md")
    assert not arts and len(errs) == 1 and "no such file" in errs[0].reason and "missing.md" in errs[0].source


def test_unsupported_extension(tmp_path):
    p = tmp_path / "sheet.xlsx"
    p.write_bytes(b"PK\x03\x04 zip")
    assert "unsupported file type '.xlsx'" in one_error(p).reason


def test_too_large_file_rejected_without_reading(tmp_path, monkeypatch):
    p = tmp_path / "huge.txt"
    with open(p, "wb") as fh:  # sparse ~25 MB file: cheap to create
        fh.truncate(25 * 1024 * 1024)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("a too-large file must not be read"))
    assert "too large" in one_error(p).reason


def test_folder_walk_skips_hidden_readme_and_unsupported(tmp_path):
    (tmp_path / "README.md").write_text("# About this folder\n\nNot an article.")
    (tmp_path / ".hidden.md").write_text(BODY)
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "story.txt").write_text(BODY)
    arts, errs = load(tmp_path)
    assert not errs and [Path(a.origin).name for a in arts] == ["story.txt"]


def test_empty_folder(tmp_path):
    (tmp_path / "x.docx").write_bytes(b"PK")
    arts, errs = load(tmp_path)
    assert not arts and len(errs) == 1 and "no supported files" in errs[0].reason


def test_local_feed_file(tmp_path):
    p = tmp_path / "feed.rss"
    p.write_text("""<?xml version="1.0"?><rss version="2.0"><channel><title>Harbor Ledger</title>
      <item><title>Pier opens</title><link>https://hl.example/pier</link><pubDate>Tue, 05 Mar 2024 10:00:00 GMT</pubDate>
      <description>&lt;p&gt;The pier opened on Tuesday.&lt;/p&gt;</description></item>
      <item><title>Empty</title><link>https://hl.example/empty</link></item></channel></rss>""")
    arts, errs = load(p)
    assert len(arts) == 1 and arts[0].source == "Harbor Ledger" and arts[0].text == "The pier opened on Tuesday."
    assert arts[0].url == "https://hl.example/pier" and arts[0].date_iso == "2024-03-05"
    assert len(errs) == 1 and errs[0].source == f"{p}#1" and "no text" in errs[0].reason


def test_xml_that_is_not_a_feed(tmp_path):
    p = tmp_path / "sitemap.xml"
    p.write_text('<?xml version="1.0"?><urlset><url><loc>https://e.example/</loc></url></urlset>')
    assert "no entries" in one_error(p).reason


def test_html_canonical_url_without_json_ld(tmp_path):
    p = tmp_path / "canon.html"
    p.write_text(f"<html><head><title>T</title><link rel=\"canonical\" href=\"https://vc.example/pier-opens\">"
                 f"</head><body><article><p>{BODY}</p><p>{BODY}</p></article></body></html>")
    assert one(p).url == "https://vc.example/pier-opens"
