"""Handler-level tests of the chat UI: formatting, escaping, refusal state, filters, uploads, ingest, delete.

The formatting tests use hand-made Answers; the ``archive`` tests run the real pipeline (bundled
embedder, extractive generator) against a temp index holding data/ and tests/fixtures/corpus/.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag.config import Settings
from rag.errors import ConfigError, StoreError
from rag.types import Answer, Citation, Passage, Sources
from tests.conftest import DATA_DIR, FIXTURES
from ui import format as fmt
from ui.app import STOPPED_MESSAGE, BylineUI, build_app, build_filters, check_binding, run_from_cli, safe_upload_name, save_uploads

CORPUS = FIXTURES / "corpus"
XSS = "<img src=x onerror=alert(1)>"


def _cit(n: int = 1, **kw) -> Citation:
    d = dict(number=n, article_id=f"a{n}", title="Riverton budget", source="Valley Courier", date="2024-01-18",
             url="https://valleycourier.example/x", quote="The budget passed 7-2.", chunk_id=f"a{n}:0", score=0.9,
             passage="After a long night. The budget passed 7-2. Mayor Marquez spoke.")
    d.update(kw)
    return Citation(**d)


def _answer(**kw) -> Answer:
    d = dict(question="How did the vote go?", text="The budget passed 7-2 [1].", citations=[_cit()], standalone_question="How did the vote go?")
    d.update(kw)
    return Answer(**d)


def _final(gen):
    out = None
    for out in gen:
        pass
    return out


def _card_numbers(panel: str) -> list[int]:
    """The citation cards of the answer the panel shows."""
    current = re.search(r'<section class="byline-turn byline-current".*?</section>', panel, re.S)
    return [int(n) for n in re.findall(r'class="byline-card byline-cited" id="byline-cite-\d+-\d+" data-n="(\d+)"',
                                       current.group(0) if current else "")]


def _marker_numbers(chat: str) -> list[int]:
    return sorted({int(n) for n in re.findall(r'class="byline-marker[^"]*" data-n="(\d+)"', chat)})


# --- formatting and escaping -------------------------------------------------------------------------
def test_chat_text_is_html_and_markdown_inert() -> None:
    out = fmt.esc_chat(f"{XSS} [x](javascript:alert(1)) ![i](http://e/i.png) **b** $x$ www.evil.example")
    assert "<" not in out and ">" not in out
    for ch in "[]()*!$:":
        assert ch not in out, ch
    assert "&#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62;" in out


def test_markers_styled_only_when_a_card_exists() -> None:
    out = fmt.answer_to_chat("A [1]. B [2]. C [3].", [1, 3])
    assert _marker_numbers(out) == [1, 3]
    assert "&#91;2&#93;" not in out and "[2]" not in out


def test_card_escapes_everything_and_highlights_the_quote() -> None:
    c = _cit(title=XSS, source="<b>Outlet</b>", date="", url="javascript:alert(1)",
             quote="passed <script>x</script>.", passage="Intro. The vote passed <script>x</script>. Outro.")
    html = fmt.citation_card(c)
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "date unknown" in html
    assert "href" not in html  # javascript: is never a link
    assert "<mark>passed &lt;script&gt;x&lt;/script&gt;.</mark>" in html


def test_card_link_is_http_only_with_noopener() -> None:
    html = fmt.citation_card(_cit(url='https://ex.example/a?b=1&c="2"'))
    assert 'href="https://ex.example/a?b=1&amp;c=&quot;2&quot;"' in html
    assert 'rel="noopener noreferrer"' in html and 'target="_blank"' in html
    for bad in ("javascript:alert(1)", "data:text/html,x", "ftp://ex.example/f", "//ex.example/x", "https://"):
        assert fmt.safe_url(bad) is None, bad
        assert "href" not in fmt.link_html(bad)


def test_highlight_tolerates_whitespace_and_missing_quote() -> None:
    assert "<mark>The budget\npassed 7-2.</mark>" in fmt.highlight_passage("Intro. The budget\npassed 7-2. End.", "The budget passed 7-2.")
    assert fmt.highlight_passage("Other text.", "Not there <b>.") == "<mark>Not there &lt;b&gt;.</mark>"


def test_sources_panel_cards_match_markers() -> None:
    a = _answer(text="Passed [1]. Mayor spoke [2].", citations=[_cit(1), _cit(2, quote="Mayor Marquez spoke.")])
    panel, chat = fmt.sources_panel(a), fmt.answer_chat_message(a)
    assert _card_numbers(panel) == [1, 2] == _marker_numbers(chat)
    assert "Sources (2)" in panel and "Not in the archive" not in panel


def test_refusal_state_is_visible() -> None:
    a = _answer(text="The archive does not say who won.", citations=[], refused=True)
    panel, chat = fmt.sources_panel(a), fmt.answer_chat_message(a)
    assert "Not in the archive" in panel and "byline-refused" in panel and not _card_numbers(panel)
    assert chat.startswith("**Not in the archive:**") and "does not say" not in chat


def test_copy_texts_are_plain_text_and_markdown_with_the_sources() -> None:
    a = _answer(text="Passed 7-2 [1]. Dropped [9].", citations=[_cit(1, title="Budget *passes*")])
    assert fmt.answer_plain_text(a) == ("Passed 7-2 [1]. Dropped .\n\nSources:\n"
                                        "[1] Budget *passes* — Valley Courier — 2024-01-18 — https://valleycourier.example/x")
    md = fmt.answer_markdown(a)
    assert md.startswith("Passed 7-2 [\\[1\\]](https://valleycourier.example/x).")
    assert "1. [Budget \\*passes\\*](https://valleycourier.example/x) — Valley Courier — 2024-01-18" in md
    chat = fmt.answer_chat_message(a, turn=4)
    # The copied texts ride in the message, escaped, one line per source (the page's script reads them).
    plain = re.search(r'<div class="byline-copytext">(.*?)</div>', chat).group(1)
    assert "<" not in plain and "&#10;&#91;1&#93; Budget &#42;passes&#42;" in plain
    assert "byline-copymd" in chat and ">Copy</button>" in chat and ">Copy as Markdown</button>" in chat


def test_marker_chips_preview_their_source_escaped() -> None:
    a = _answer(text="Passed [1].", citations=[_cit(1, title=XSS, source="[Evil](javascript:x)", quote="The budget *passed* <b>7-2</b>.")])
    chat = fmt.answer_chat_message(a, turn=2)
    chip = re.search(r'<sup class="byline-marker byline-chip byline-t-2 byline-n-1".*?</sup>', chat).group(0)
    assert 'tabindex="0"' in chip and 'role="button"' in chip and 'class="byline-preview"' in chip
    assert "<img" not in chip and "<b>" not in chip and "](" not in chip and "*" not in chip
    for part in ("&#60;img src&#61;x", "2024&#45;01&#45;18", "&#91;Evil&#93;"):
        assert part in chip, part


def test_each_answer_keeps_its_own_sources() -> None:
    a1 = _answer(text="Passed [1].")
    a2 = _answer(text="Spoke [1].", citations=[_cit(1, title="Mayor speaks", url="https://valleycourier.example/mayor")])
    chat1 = fmt.answer_chat_message(a1, 0)
    panel = fmt.sources_panel(a2, 1, earlier=[fmt.answer_sources(a1, 0)])
    # Answer 1's strip still links its own article, and its cards are still in the panel (hidden until asked for).
    assert 'id="byline-src-0-1" href="https://valleycourier.example/x"' in chat1 and "byline-show byline-t-0" in chat1
    assert 'id="byline-turn-0"' in panel and 'id="byline-cite-0-1"' in panel and 'id="byline-cite-1-1"' in panel
    assert _card_numbers(panel) == [1] and "Mayor speaks" in re.search(r'byline-current.*', panel, re.S).group(0)
    assert panel.count("byline-current") == 1
    # Card titles link to the article.
    assert '<a class="byline-title" href="https://valleycourier.example/mayor"' in panel


def test_the_strip_shows_each_cited_article_once_with_its_citation_numbers() -> None:
    # Two passages of one article cited ([1] and [3]), between them another article's.
    a = _answer(text="Passed 7-2 [1]. Mayor spoke [2]. Overtime pay rose [3].",
                citations=[_cit(1, article_id="budget"), _cit(2, article_id="mayor", title="Mayor speaks", url="https://valleycourier.example/m"),
                           _cit(3, article_id="budget", chunk_id="budget:1")])
    assert [(c.article_id, nums) for c, nums in fmt.strip_items(a.citations)] == [("budget", [1, 3]), ("mayor", [2])]
    strip = re.search(r'<div class="byline-strip">.*?</div>', fmt.answer_chat_message(a, turn=5)).group(0)
    chips = re.findall(r'<a class="byline-src byline-t-5 ([^"]*)" id="byline-src-5-(\d+)" href="([^"]+)"', strip)
    assert chips == [("byline-n-1 byline-n-3", "1", "https://valleycourier.example/x"), ("byline-n-2", "2", "https://valleycourier.example/m")]
    assert re.findall(r'<span class="byline-src-n">([^<]*)</span>', strip) == ["1, 3", "2"]
    # Each citation keeps its own card in the panel (their quotes differ).
    assert _card_numbers(fmt.sources_panel(a, 5)) == [1, 2, 3]


def test_refusal_is_one_sentence_with_the_closest_articles_as_cards() -> None:
    near = [Passage(number=i, chunk_id=f"a{i}:0", article_id=f"a{i % 2}", title=f"Story {i % 2}", source="Metro Wire", date="2024-03-07",
                    url=f"https://metro.example/{i % 2}", text="x", full_text="Some text.", start=0, end=9, score=0.2) for i in range(1, 4)]
    a = _answer(text="The archive does not say. I searched for “q” in 65 indexed passages.", citations=[], refused=True, passages=near)
    chat, panel = fmt.answer_chat_message(a), fmt.sources_panel(a)
    assert "indexed passages" not in chat + panel and "does not say" not in chat
    assert chat.count("byline-src ") == 2 and "Closest articles" in chat  # one chip per article, linked
    assert panel.count('class="byline-card byline-near"') == 2 and 'href="https://metro.example/1"' in panel
    assert fmt.answer_plain_text(a).splitlines()[-1] == "- Story 0 — Metro Wire — 2024-03-07 — https://metro.example/0"


def test_stats_use_plurals_and_keep_internals_apart() -> None:
    st = {"store": "/srv/byline/chroma", "collection": "byline", "articles": 1, "chunks": 1, "outlets": {"Metro Wire": 1},
          "first_date": "2024-03-07", "last_date": "2024-03-07", "undated": 0}
    html = fmt.stats_html(st)
    assert "1 article</strong>, 1 passage." in html and "1 outlet" in html and "/srv/byline" not in html
    assert "/srv/byline/chroma" in fmt.store_html(st) and "2 articles" in fmt.stats_html({**st, "articles": 2})


def test_searched_for_only_when_rewritten() -> None:
    assert "Searched for" not in fmt.sources_panel(_answer())
    panel = fmt.sources_panel(_answer(question="and him?", standalone_question=f"What did {XSS} announce?"))
    assert "Searched for" in panel and "<img" not in panel and "&lt;img" in panel


def test_terminal_format_still_works() -> None:
    out = fmt.answer_to_terminal(_answer(standalone_question="rewritten"))
    assert "[1] Riverton budget — Valley Courier — 2024-01-18" in out and "(searched for: rewritten)" in out


# --- filters, binding, uploads -------------------------------------------------------------------------
def test_build_filters_valid() -> None:
    assert build_filters([], "", " ") is None
    assert build_filters(["Valley Courier"], "2024-01-01", "2024-06-30") == {"sources": ["Valley Courier"], "date_from": "2024-01-01", "date_to": "2024-06-30"}


@pytest.mark.parametrize("f,t,needle", [("2024/01/01", "", "YYYY-MM-DD"), ("2024-02-30", "", "not a real calendar date"),
                                        ("", "yesterday", "YYYY-MM-DD"), ("2024-06-01", "2024-01-01", "after the To date")])
def test_build_filters_friendly_errors(f: str, t: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_filters([], f, t)


@pytest.mark.parametrize("host,auth,ok", [("127.0.0.1", None, True), ("localhost", None, True), ("::1", None, True),
                                          ("0.0.0.0", None, False), ("192.168.1.5", None, False), ("0.0.0.0", "u:p", True)])
def test_check_binding(host: str, auth: str | None, ok: bool) -> None:
    if ok:
        check_binding(host, auth)
    else:
        with pytest.raises(ConfigError, match="--auth"):
            check_binding(host, auth)


def test_run_from_cli_refuses_public_bind_without_auth(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.app

    monkeypatch.setattr(ui.app, "launch", lambda *a, **k: pytest.fail("must not launch"))
    args = argparse.Namespace(host="0.0.0.0", port=None, auth=None, generator=None)
    with pytest.raises(ConfigError, match="refusing to bind"):
        run_from_cli(args, settings)
    from ui.cli import main

    assert main(["chat", "--host", "0.0.0.0", "--data-dir", str(settings.data_dir)]) == 1


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd"), ("..\\..\\win.ini", "win.ini"), ("/abs/path/story.md", "story.md"),
    ("..", "upload"), ("...md", "md"), (".hidden.md", "hidden.md"), ("a b<c>|d?.md", "a_b_c_d_.md"),
    ("naïve café.txt", "naive_cafe.txt"), ("x\x00y.md", "xy.md"), ("file..md", "file.md"), ("", "upload"),
])
def test_safe_upload_name(name: str, expected: str) -> None:
    assert safe_upload_name(name) == expected


def test_safe_upload_name_long_keeps_extension() -> None:
    out = safe_upload_name("a" * 500 + ".jsonl")
    assert len(out) <= 120 and out.endswith(".jsonl")


def test_save_uploads_never_leave_upload_dir(tmp_path: Path) -> None:
    class Up:  # what a file object with an original name looks like
        def __init__(self, path: Path, orig: str) -> None:
            self.name, self.orig_name = str(path), orig

    src = tmp_path / "src.md"
    src.write_text("hello")
    up = tmp_path / "uploads"
    saved, errors = save_uploads([Up(src, "../../../escape.md"), Up(src, "..\\x\\..\\evil.md"), str(src)], up)
    assert not errors
    assert [p.name for p in saved] == ["escape.md", "evil.md", "src.md"]
    assert all(p.parent == up.resolve() for p in saved)
    assert not (tmp_path / "escape.md").exists()


# --- chat handler with a stand-in pipeline ------------------------------------------------------------
def _with_pipeline(settings: Settings, ask_stream: Any) -> BylineUI:
    """A chat whose engine is replaced by ``ask_stream`` (same signature as ``Engine.ask_stream``)."""
    ui = BylineUI(settings)
    ui._engine = SimpleNamespace(ask_stream=ask_stream)
    return ui


def test_respond_streams_then_shows_the_verified_text(settings: Settings) -> None:
    final = _answer(text="Verified [1].")

    def fake(question, *, history=None, filters=None, generator=None):
        assert filters == {"sources": ["Valley Courier"]}
        assert generator is None and settings.generator == "extractive"  # the configured extractive generator
        yield "Unverified claim "
        yield f"{XSS} [1]."
        yield final

    ui = _with_pipeline(settings, fake)
    steps = list(ui.respond("How did the vote go?", None, ["Valley Courier"], "", "", "extractive"))
    streamed = [s[0][-1]["content"] for s in steps]
    assert any("Unverified claim" in c for c in streamed)
    assert all("<img" not in c for c in streamed)
    display, state, panel, box = steps[-1]
    assert display[-1]["content"].startswith("Verified") and "Unverified" not in display[-1]["content"]
    assert _card_numbers(panel) == [1] == _marker_numbers(display[-1]["content"])
    assert state["history"] == [{"role": "user", "content": "How did the vote go?"}, {"role": "assistant", "content": "Verified [1]."}]
    assert box == ""


def test_export_is_the_conversation_in_markdown_with_sources(settings: Settings) -> None:
    answers = iter([_answer(text="Passed 7-2 [1]."), _answer(text="He spoke [1].", citations=[_cit(1, title="Mayor [speaks]")])])
    ui = _with_pipeline(settings, lambda question, **k: iter([next(answers)]))
    assert ui.export(None) is None
    _, state, _, _ = _final(ui.respond("How did the vote go?", None, [], "", "", "extractive"))
    _, state, _, _ = _final(ui.respond("And the mayor?", state, [], "", "", "extractive"))
    text = Path(ui.export(state)).read_text(encoding="utf-8")
    assert text.startswith("# Byline conversation\n\n## How did the vote go?\n\nPassed 7-2 [\\[1\\]](https://valleycourier.example/x).")
    assert "## And the mayor?" in text and "1. [Mayor \\[speaks\\]](https://valleycourier.example/x) — Valley Courier — 2024-01-18" in text
    assert ui.clear()[1]["exported"] == []


def test_exported_conversations_are_removed_when_the_chat_ends(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from rag.config import Settings; from ui.app import BylineUI\n"
            "ui = BylineUI(Settings(data_dir=Path(sys.argv[1])))\n"
            "print(ui.export({'exported': ['## How did the vote go?\\n\\nPassed 7-2.']}), flush=True)\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    path = Path(run.stdout.strip().splitlines()[-1])
    assert path.name.startswith("byline-conversation-") and path.parent.name.startswith("byline-export-")
    assert not path.exists() and not path.parent.exists()


def test_conversation_is_kept_per_browser_and_deleted_with_new_conversation(settings: Settings) -> None:
    ui = _with_pipeline(settings, lambda question, **k: iter([_answer(text="Passed 7-2 [1].")]))
    display, state, panel, bid = ui.restore("")  # a new browser gets an id, and nothing to restore
    assert re.fullmatch(r"[0-9a-f]{32}", bid) and display == [] and "Sources for the answer" in panel
    _, state, _, _ = _final(ui.respond("How did the vote go?", state, [], "", "", "extractive"))
    ui.save_conversation(bid, state)
    display, again, panel, same = ui.restore(bid)  # the page is reloaded
    assert same == bid and again == state and display == state["display"] and _card_numbers(panel) == [1]
    assert ui.restore(uuid.uuid4().hex)[0] == []  # another browser sees nothing of it
    for bad in ("../../etc/passwd", "A" * 32, None, 7):
        assert ui._conversation_file(bad) is None
        ui.save_conversation(bad, state)  # never written anywhere
    assert [p.name for p in (settings.data_dir / "conversations").glob("*.json")] == [f"{bid}.json"]
    ui.save_conversation(bid, ui.clear()[1])  # "New conversation" deletes it
    assert ui.restore(bid)[0] == [] and not (settings.data_dir / "conversations" / f"{bid}.json").exists()
    (settings.data_dir / "conversations" / f"{bid}.json").write_text("{not json")
    assert ui.restore(bid)[0] == []  # a damaged file costs the conversation, never the page


def test_respond_shows_the_passages_before_the_answer_text(settings: Settings) -> None:
    passage = Passage(number=1, chunk_id="a1:0", article_id="a1", title=f"Riverton {XSS}", source="Valley Courier", date="2024-01-18",
                      url="https://valleycourier.example/x", text="The budget passed 7-2.", full_text="The budget passed 7-2.",
                      start=0, end=22, score=1.0)

    def fake(question, *, history=None, filters=None, generator=None):
        yield Sources([passage], question, {}, 0.05)
        yield "The budget "
        yield "passed [1]."
        yield _answer(text="The budget passed 7-2 [1].")

    steps = list(_with_pipeline(settings, fake).respond("How did the vote go?", None, [], "", "", "extractive"))
    first_with_cards = next(i for i, (_, _, panel, _) in enumerate(steps) if "byline-reading" in panel)
    first_with_text = next(i for i, (display, _, _, _) in enumerate(steps) if "budget" in display[-1]["content"])
    assert first_with_cards < first_with_text
    panel = steps[first_with_cards][2]
    assert "Reading 1 passage " in panel and "Valley Courier" in panel and "<img" not in panel
    assert "byline-reading" in steps[first_with_text][2]  # the cards stay while the text streams
    assert _card_numbers(steps[-1][2]) == [1]  # then the verified answer's citations replace them


def test_stop_ends_the_turn_at_once_and_closes_the_answer_stream(settings: Settings) -> None:
    closed = threading.Event()
    passage = Passage(number=1, chunk_id="a1:0", article_id="a1", title="Riverton", source="Valley Courier", date="2024-01-18",
                      url="", text="The budget passed 7-2.", full_text="The budget passed 7-2.", start=0, end=22, score=1.0)

    def endless(question, *, history=None, filters=None, generator=None):
        try:
            yield Sources([passage], question, {}, 0.05)
            while True:  # a model that would write for ever
                time.sleep(0.05)
                yield "word "
        finally:
            closed.set()

    ui = _with_pipeline(settings, endless)
    steps = []
    for step in ui.respond("How did the vote go?", None, [], "", "", "extractive"):
        steps.append(step)
        if "word word" in step[0][-1]["content"] and not closed.is_set():
            t = time.monotonic()
            ui.stop()
    display, state, panel, box = steps[-1]
    assert time.monotonic() - t < 1.0
    assert display[-1]["content"] == STOPPED_MESSAGE and "word" not in display[-1]["content"]  # never shown as an answer
    assert box == "How did the vote go?" and state["history"] == []  # the question is kept to re-send; nothing remembered
    assert "Valley Courier" in panel  # the passages found stay visible
    assert closed.wait(2)  # the stream (and with it the model) was stopped, not left running
    assert ui._stops == {}  # a finished turn's stop signal is not kept


def test_a_finished_turn_forgets_its_stop_signal(settings: Settings) -> None:
    ui = _with_pipeline(settings, lambda question, **k: iter([_answer(text="Done [1].")]))
    _final(ui.respond("q?", None, [], "", "", "extractive"))
    assert ui._stops == {}
    ui.stop()  # nothing to stop: a no-op


def test_respond_passes_history_on_follow_up(settings: Settings) -> None:
    seen = []

    def fake(question, *, history=None, filters=None, generator=None):
        seen.append(history)
        yield _answer(question=question, standalone_question="What did the mayor say about the budget?")

    ui = _with_pipeline(settings, fake)
    _, state, _, _ = _final(ui.respond("How did the vote go?", None, [], "", "", "extractive"))
    _, state, panel, _ = _final(ui.respond("And the mayor?", state, [], "", "", "extractive"))
    assert seen[0] == [] and [m["role"] for m in seen[1]] == ["user", "assistant"]
    assert "Searched for: <q>What did the mayor say about the budget?</q>" in panel


def test_respond_bad_date_is_said_once_beside_the_field(settings: Settings) -> None:
    import gradio as gr

    ui = _with_pipeline(settings, lambda *a, **k: pytest.fail("must not ask"))
    q_note, date_note, fold = ui.check_inputs("q?", "31/01/2024", "")
    assert "YYYY-MM-DD" in date_note and q_note == "" and fold.get("open") is True
    before = {"display": [{"role": "user", "content": "a"}], "history": [], "sections": [], "exported": []}
    steps = list(ui.respond("q?", before, [], "31/01/2024", "", "extractive"))
    display, state, panel, box = steps[-1]
    assert len(steps) == 1 and display == before["display"]  # the failed turn is not added to the conversation
    assert isinstance(panel, type(gr.skip())) and box == "q?"  # the panel is left alone; the question stays to fix
    assert ui.check_inputs("q?", "2024-01-01", "") == ("", "", gr.update())


def test_empty_question_is_noted_by_the_input(settings: Settings) -> None:
    ui = _with_pipeline(settings, lambda *a, **k: pytest.fail("must not ask"))
    q_note, date_note, _ = ui.check_inputs("  ", "", "")
    assert "Type a question" in q_note and date_note == ""
    display, _, _, _ = _final(ui.respond("  ", None, [], "", "", "extractive"))
    assert display == []


@pytest.mark.parametrize("exc,needle", [(StoreError("Chroma server at 127.0.0.1:9 is unreachable"), "unreachable"),
                                        (RuntimeError("secret internals"), "server log")])
def test_respond_errors_are_friendly(settings: Settings, exc: Exception, needle: str) -> None:
    def boom(*a, **k):
        raise exc
        yield  # pragma: no cover

    display, _, panel, _ = _final(_with_pipeline(settings, boom).respond("q?", None, [], "", "", "extractive"))
    assert needle in display[-1]["content"] and needle not in panel  # said once, in the answer's place
    assert "Traceback" not in display[-1]["content"] and "secret internals" not in display[-1]["content"]


def test_active_filters_are_chips(settings: Settings) -> None:
    html, clear = BylineUI.active_filters([XSS, ""], " 2024-03-01 ", "")
    assert re.findall(r'<span class="byline-fchip">(.*?)</span>', html) == ["&lt;img src=x onerror=alert(1)&gt;", "from 2024-03-01"]
    assert clear["visible"] is True
    assert BylineUI.active_filters([], "", "") == ("", {"__type__": "update", "visible": False})


def test_generator_choice_validated(settings: Settings) -> None:
    ui = BylineUI(settings)
    assert ("Instant quotes (no model)", "extractive") in ui.generator_choices()
    assert "openai" not in [v for _, v in ui.generator_choices()]  # offered only when an endpoint is configured
    assert "auto" not in [v for _, v in ui.generator_choices()]  # 'auto' is one of the others, not a third behaviour
    auto = BylineUI(settings.model_copy(update={"generator": "auto"}))
    assert auto.default_generator() in [v for _, v in auto.generator_choices()] and auto.generator_for("auto") is None
    with pytest.raises(ConfigError):
        ui.generator_for("openai")
    s2 = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    assert BylineUI(s2).generator_for("openai") == "openai"
    assert ("OpenAI-compatible endpoint", "openai") in BylineUI(s2.model_copy(update={"openai_model": ""})).generator_choices() or \
        any(v == "openai" and label.startswith("OpenAI-compatible endpoint") for label, v in BylineUI(s2).generator_choices())


# --- the real pipeline on a temp archive ----------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> BylineUI:
    from ingest.pipeline import Ingestor

    s = Settings(data_dir=tmp_path_factory.mktemp("archive") / "byline", generator="extractive")
    rep = Ingestor(s).ingest([str(DATA_DIR), str(CORPUS)])
    assert rep.added >= 7, rep.summary()
    return BylineUI(s)


def test_real_answer_markers_match_cards(archive: BylineUI) -> None:
    display, state, panel, _ = _final(archive.respond("How many Aerio X2 speakers did Novalink recall?", None, [], "", "", "extractive"))
    chat = display[-1]["content"]
    assert "184&#44;000" in chat or "184,000" in chat
    assert _marker_numbers(chat) and _marker_numbers(chat) == _card_numbers(panel)
    assert "Metro Wire" in panel and "<mark>" in panel and 'rel="noopener noreferrer"' in panel


class _Unhurried:
    """The real engine, its stream held back before retrieval's result and before the verified answer, as on a busy
    machine (the extractive generator is otherwise done before a clock could tick)."""

    def __init__(self, engine: Any, before_sources: float, before_answer: float) -> None:
        self.engine, self.pauses = engine, {Sources: before_sources, Answer: before_answer}

    def ask_stream(self, question: str, **kw: Any):
        for piece in self.engine.ask_stream(question, **kw):
            time.sleep(self.pauses.get(type(piece), 0.0))
            yield piece


def _progress(content: str) -> tuple[str, int] | None:
    """(stage, seconds) of the progress line of a chat bubble, or None when it has none."""
    m = re.search(r'<div class="byline-progress">(.*?)</div>', content)
    if m is None:
        return None
    text = html.unescape(m.group(1))
    parts = re.fullmatch(r"(.+)… (\d+) s", text)
    assert parts, text
    return parts.group(1), int(parts.group(2))


def test_progress_shows_each_stage_with_the_time_so_far(archive: BylineUI) -> None:
    ui = BylineUI(archive.settings)
    ui._engine = _Unhurried(archive.engine, before_sources=1.3, before_answer=1.9)
    steps = list(ui.respond("How many Aerio X2 speakers did Novalink recall?", None, [], "", "", "extractive"))
    contents = [display[-1]["content"] for display, _, _, _ in steps]
    shown = [_progress(c) for c in contents[:-1]]
    assert all(shown), "every bubble before the answer has its progress line"
    stages = list(dict.fromkeys(stage for stage, _ in shown))
    assert stages[0] == "Searching the archive" and re.fullmatch(r"Reading \d+ passages?", stages[1])
    assert stages[2:] == ["Writing the answer", "Checking citations"]
    seconds = [sec for _, sec in shown]
    assert seconds == sorted(seconds) and ("Searching the archive", 1) in shown and seconds[-1] >= 2  # the clock runs
    assert all(a != b for a, b in zip(steps, steps[1:])), "nothing is sent again unchanged (the clock moves once a second)"
    writing = next(c for c in contents if "Writing the answer" in c)
    assert "184,000" in writing and "byline-chip" not in writing  # the text so far, as written, above its stage
    final = contents[-1]
    assert _progress(final) is None and "byline-chip" in final and _card_numbers(steps[-1][2])  # then the verified answer
    assert fmt.elapsed_text(125.4) == "2 min 05 s"  # a slow answer's clock reads in minutes


def test_real_refusal(archive: BylineUI) -> None:
    display, _, panel, _ = _final(archive.respond("What is the recipe for Hungarian goulash?", None, [], "", "", "extractive"))
    assert "Not in the archive" in display[-1]["content"] and "Not in the archive" in panel


def test_real_outlet_filter_and_api(archive: BylineUI) -> None:
    assert "Metro Wire" in archive.outlets()
    d = archive.ask_api("How many Aerio X2 speakers did Novalink recall?", sources=["Metro Wire"], date_from="2024-03-01", date_to="2024-03-31")
    assert not d["refused"] and d["citations"] and all(c["source"] == "Metro Wire" for c in d["citations"])
    assert {int(n) for n in re.findall(r"\[(\d+)\]", d["text"])} == {c["number"] for c in d["citations"]}
    import gradio as gr

    with pytest.raises(gr.Error, match="YYYY-MM-DD"):
        archive.ask_api("x?", date_from="March")


def test_examples_are_the_newest_plain_headlines(archive: BylineUI) -> None:
    ex = archive.example_questions()
    assert [e["display_text"] for e in ex][0] == "Bank of Veloria Holds Key Rate at 4.25% for Fourth Straight Meeting"
    assert len(ex) == 3 and all(e["text"].startswith("What does the archive say about “") for e in ex)


def test_build_app_exposes_ask_endpoint(archive: BylineUI) -> None:
    demo = build_app(archive.settings)
    info = demo.get_api_info()
    assert "/ask" in info["named_endpoints"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/ask"]["parameters"]][0] == "question"
    assert len(info["named_endpoints"]) == 1  # the UI's own events are private


# --- ingest and delete with real files ------------------------------------------------------------------
def test_ingest_and_delete_handlers(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "byline", generator="extractive")
    ui = BylineUI(s)
    up = tmp_path / "incoming"
    up.mkdir()
    good = up / "riverton-budget.md"
    shutil.copy(CORPUS / "riverton-budget.md", good)
    xss = up / "xss.md"
    xss.write_text(f"---\ntitle: '{XSS}'\nsource: '<b>Evil</b>'\n---\nThe harbour opened a new ferry terminal on Monday.\n")
    empty = up / "empty.txt"
    empty.write_bytes(b"")
    seen = []
    report, rows, stats, outlets = ui.ingest([str(good), str(xss), str(empty)], "ftp://nope.example/feed\n\n# comment",
                                             progress=lambda *a, **k: seen.append((a, k)))
    assert "2 added" in report and "empty.txt" in report and "empty file" in report and "ftp://nope.example/feed" in report
    assert seen  # progress was reported
    assert "<img" not in report + stats and "<b>Evil" not in stats
    assert sorted(p.name for p in s.upload_dir.iterdir()) == ["empty.txt", "riverton-budget.md", "xss.md"]
    titles = {r[3]: r for r in rows}
    assert XSS in titles and "Riverton City Council Approves $412.6 Million Budget for 2024" in titles
    assert "Valley Courier" in outlets["choices"] or ("Valley Courier", "Valley Courier") in outlets["choices"]
    # Re-uploading the same file is idempotent.
    report2, rows2, _, _ = ui.ingest([str(good)], "")
    assert "1 unchanged" in report2 and len(rows2) == 2
    # Delete one by id; an unknown id is reported.
    aid = titles[XSS][0]
    ask, ok = ui.ask_delete(f"{aid}, nosuchid")  # asked first, with the title and size of what goes
    assert ok and "Delete 1 article from the archive" in ask and "1 passage)" in ask and "nosuchid" in ask and "<img" not in ask
    assert len(ui.articles_rows()) == 2  # asking deletes nothing
    msg, rows3, stats3, _ = ui.delete(f"{aid}, nosuchid")
    assert "Deleted 1 article: " in msg and "No article with id nosuchid" in msg and "<img" not in msg
    assert [r[0] for r in rows3] == [titles["Riverton City Council Approves $412.6 Million Budget for 2024"][0]]
    assert "<strong>1 article</strong>" in stats3 and ui.can_undo()
    # Undo puts the very same passages back: the article answers questions again.
    msg, rows4, stats4, _ = ui.undo_delete()
    assert "Restored 1 article" in msg and sorted(r[0] for r in rows4) == sorted(r[0] for r in rows)
    assert "<strong>2 articles</strong>" in stats4 and not ui.can_undo()
    from rag.engine import Engine

    back = Engine(s).ask("What did the harbour open on Monday?", generator="extractive")
    assert any(c.article_id == aid for c in back.citations), back.text
    assert "Nothing to undo" in ui.undo_delete()[0]
    assert "Enter an article id" in ui.delete("  ")[0] and ui.ask_delete("")[1] is False
    assert "Nothing to ingest" in ui.ingest(None, "")[0]


def test_launch_with_auth_needs_login_and_keeps_loopback(settings: Settings) -> None:
    import httpx
    from gradio_client import Client

    from ui.app import launch

    demo = launch(settings, port=0, auth="editor:s3cret", block=False, quiet=True)
    try:
        url = demo.local_url
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "config", timeout=10).status_code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False)
        client = Client(url, auth=("editor", "s3cret"), verbose=False)
        assert "/ask" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert getattr(demo, "share_url", None) is None
    finally:
        demo.close()


def test_launch_on_busy_port_is_a_friendly_error(settings: Settings) -> None:
    import socket

    from ui.app import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match="cannot serve the chat"):
            launch(settings, port=s.getsockname()[1], block=False, quiet=True)


def test_feeds_table_escapes_and_reports_health() -> None:
    from ingest.watch import FeedState

    ok = FeedState(url="https://example.org/feed?a=<b>", last_poll="2026-11-30T09:15:02+00:00", next_poll="2026-11-30T09:30:02+00:00",
                   new_items=1, changed_items=2)
    bad = FeedState(url="https://example.org/broken", last_poll="2026-11-30T09:15:02+00:00", next_poll="2026-11-30T11:15:02+00:00",
                    failures=2, last_error="HTTP 500 <oops>", last_error_at="2026-11-30T09:15:02+00:00")
    page = fmt.feeds_html({ok.url: ok, bad.url: bad})
    assert "<b>" not in page and "&lt;oops&gt;" in page
    assert "2026-11-30 09:15 UTC: 1 new article, 2 changed" in page and "ok, next poll 2026-11-30 09:30 UTC" in page
    assert "failing (2 in a row), next try 2026-11-30 11:15 UTC" in page and "last error 2026-11-30 09:15 UTC" in page
    assert "No feeds watched" in fmt.feeds_html({})
    assert [fmt.every_text(s) for s in (900, 7200, 86400, 90)] == ["15 minutes", "2 hours", "1 day", "90 seconds"]


def test_archive_tab_watches_feeds_in_the_background(settings) -> None:
    from tests.ingest.test_watch import FeedSite, wait_for

    site = FeedSite()
    site.set_feed("/feed.rss", ["1", "3"])
    url = site.url("/feed.rss")
    ui = BylineUI(settings)
    try:
        msg, view, box = ui.watch_feed(f"{url}\nnot a url")
        assert "Watching 1 new feed: each is polled now, then every 15 minutes." in msg and box == ""
        assert "not a url" in msg  # the bad line is named; the good one is watched
        wait_for(lambda: "2 new articles" in ui.feeds_view())
        assert len(ui.store().articles()) == 2
        assert "already watched" in ui.watch_feed(url)[0]
        msg, view, _ = ui.unwatch_feed(url)
        assert "Stopped watching 1 feed" in msg and "No feeds watched" in view and len(ui.store().articles()) == 2
    finally:
        ui.feeds.stop()
        site.close()


class _Loading:
    """The real engine, whose warm-up (and a question asked meanwhile) waits until ``loaded`` is set, as while a
    model loads from disk."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.loaded = engine, threading.Event()

    def warm_up(self) -> None:
        assert self.loaded.wait(30)
        self.engine.warm_up()

    def ask_stream(self, question: str, **kw: Any):
        assert self.loaded.wait(30)
        yield from self.engine.ask_stream(question, **kw)


def test_while_the_models_load_the_page_and_a_question_say_so(archive: BylineUI) -> None:
    ui = BylineUI(archive.settings)
    note, timer = ui.warm_note()
    assert note == "" and timer.active is False  # no warm-up started: nothing is loading
    ui._engine = loading = _Loading(archive.engine)
    warmed = threading.Event()
    ui.warm_up(then=warmed.set)
    note, timer = ui.warm_note()
    assert "Loading the models" in note and timer.active is True
    steps = ui.respond("How many Aerio X2 speakers did Novalink recall?", None, [], "", "", "extractive")
    display, _, panel, _ = next(steps)
    assert _progress(display[-1]["content"]) == ("Loading the models", 0) and "Loading the models" in panel
    loading.loaded.set()
    display, _, panel, _ = list(steps)[-1]
    assert "184" in display[-1]["content"] and "Metro Wire" in panel
    assert warmed.wait(30)
    note, timer = ui.warm_note()
    assert note == "" and timer.active is False and archive.engine.warm
