"""The real chat in headless Chromium: streaming, citations, follow-ups, refusals, uploads, escaping, /ask.

Starts ``ui.app.launch`` on 127.0.0.1 (free port) over a temp index holding data/ and
tests/fixtures/corpus/, extractive generator. Needs /usr/bin/chromium and the playwright package.
Prints the time from submit to the first streamed token seen in the page.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from rag.config import Settings
from tests.conftest import DATA_DIR, FIXTURES, REPO

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
ARTIFACTS = REPO / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"
ANSWER_TIMEOUT_MS = 240_000  # 2 shared cores: the first question also loads the engine

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

# A bot message counts as "first token" when it shows text besides its progress line ("Searching the archive… 0 s").
FIRST_TOKEN_JS = """
() => {
  const chat = document.querySelector('#byline-chat');
  window.__t0 = null; window.__tFirst = null;
  window.__nBots0 = chat.querySelectorAll('[data-testid="bot"]').length;
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver(() => {
    if (window.__t0 === null || window.__tFirst !== null) return;
    const bots = chat.querySelectorAll('[data-testid="bot"]');
    if (bots.length <= window.__nBots0) return;
    const bot = bots[bots.length - 1], progress = bot.querySelector('.byline-progress');
    const t = bot.innerText.replace(progress ? progress.innerText : '', '').trim();
    if (t) window.__tFirst = performance.now();
  });
  window.__obs.observe(chat, {subtree: true, childList: true, characterData: true});
}
"""
DONE_JS = """
(n) => {
  const bots = document.querySelectorAll('#byline-chat [data-testid="bot"]');
  if (bots.length <= n) return false;
  const last = bots[bots.length - 1];
  // The answer is final when it has no progress line and the panel shows neither a placeholder nor the passages still being read.
  return last.innerText.trim() && !last.querySelector('.byline-progress')
    && !document.querySelector('#byline-sources .byline-placeholder, #byline-sources .byline-sources-reading');
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    from ingest.pipeline import Ingestor
    from ui.app import launch

    s = Settings(data_dir=tmp_path_factory.mktemp("browser") / "byline", generator="extractive", host="127.0.0.1", port=0)
    rep = Ingestor(s).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    assert rep.added >= 7 and not rep.errors, rep.summary()
    demo = launch(s, block=False, quiet=True)
    try:
        yield demo.local_url, s
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: tuple[str, Settings]) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.dialogs = []  # any alert() would land here
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(server[0], wait_until="load")
    pg.wait_for_selector("#byline-question textarea, #byline-question input", timeout=60_000)
    yield pg
    ctx.close()


def ask(page: Any, question: str) -> float:
    """Type a question, submit, wait for the final answer; returns seconds from submit to first streamed token."""
    box = page.locator("#byline-question textarea, #byline-question input").first
    box.fill(question)
    page.evaluate(FIRST_TOKEN_JS)
    n = page.evaluate("() => window.__nBots0")
    page.evaluate("() => { window.__t0 = performance.now(); document.querySelector('#byline-ask').click(); }")
    page.wait_for_function(DONE_JS, arg=n, timeout=ANSWER_TIMEOUT_MS)
    t0, t1 = page.evaluate("() => [window.__t0, window.__tFirst]")
    assert t1 is not None, "no streamed text was seen"
    return (t1 - t0) / 1000


def last_bot(page: Any) -> Any:
    return page.locator('#byline-chat [data-testid="bot"]').last


def markers(page: Any) -> list[int]:
    return sorted({int(t.strip("[] ")) for t in last_bot(page).locator("sup.byline-marker").all_inner_texts()})


def cards(page: Any) -> list[int]:
    """The citation cards the sources panel shows (the selected answer's)."""
    return [int(t.strip("[] ")) for t in page.locator("#byline-sources .byline-current .byline-cited .byline-num").all_inner_texts()]


def test_the_loading_note_goes_once_the_models_are_loaded(page: Any) -> None:
    # launch() started the warm-up; the page asks each second until it is done, then hides the note and stops asking.
    page.wait_for_function("() => !document.querySelector('#byline-warming .byline-notice')", timeout=60_000)
    assert not page.locator("#byline-warming").is_visible()


def test_chat_streams_cites_and_follows_up(page: Any) -> None:
    ttft = ask(page, "How many Aerio X2 speakers did Novalink recall?")
    print(f"\n[first token, extractive, cold engine] {ttft:.2f} s")
    text = last_bot(page).inner_text()
    assert "184,000" in text
    assert markers(page) and markers(page) == cards(page)
    card = page.locator("#byline-sources .byline-current .byline-card").first
    assert "Metro Wire" in card.inner_text() and "2024-03-07" in card.inner_text()
    assert card.locator("mark").count() >= 1
    link = card.locator(".byline-link a")
    assert card.locator("a.byline-title").get_attribute("href") == link.get_attribute("href")  # the title links too
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("href").startswith("https://")

    ttft_warm = ask(page, "Which outlet reported the Port of Saltmere closure, and which storm caused it?")
    print(f"[first token, extractive, warm] {ttft_warm:.2f} s (server: {page.locator('#byline-sources .byline-current .byline-timing').inner_text()})")
    assert "Ingrid" in last_bot(page).inner_text()
    assert markers(page) == cards(page)

    ask(page, "Who is the harbour master there?")  # a follow-up: "there" needs the conversation
    searched = page.locator("#byline-sources .byline-current .byline-searched")
    assert searched.count() == 1 and "Searched for" in searched.inner_text()
    assert "Saltmere" in searched.inner_text()
    assert markers(page) == cards(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def _open(browser: Any, url: str, width: int, height: int) -> tuple[Any, Any]:
    """A fresh page at this viewport, allowed to read the clipboard: (context, page)."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
    pg = ctx.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(url, wait_until="load")
    pg.wait_for_selector("#byline-question textarea, #byline-question input", timeout=60_000)
    return ctx, pg


def test_citations_are_chips_with_previews_and_copy_is_plain_text(browser: Any, server: tuple[str, Settings]) -> None:
    ctx, page = _open(browser, server[0], 1366, 900)
    ask(page, "How many Aerio X2 speakers did Novalink recall?")
    bot = last_bot(page)
    chip = bot.locator(".byline-chip").first
    preview = chip.locator(".byline-preview")
    assert not preview.is_visible()
    chip.hover()  # hover shows the source: title, outlet, date and the cited sentence
    preview.wait_for(state="visible", timeout=5_000)
    text = preview.inner_text()
    assert "Metro Wire" in text and "2024-03-07" in text and "184,000" in text
    # Nothing paints over it (the sources column did), and it is not see-through.
    assert preview.evaluate("p => { const r = p.getBoundingClientRect();"
                            " return [[r.left + 10, r.top + 10], [r.right - 10, r.top + 10], [r.right - 10, r.bottom - 10]]"
                            ".every(([x, y]) => p.contains(document.elementFromPoint(x, y))); }")
    assert preview.evaluate("p => { let o = 1; for (let e = p; e; e = e.parentElement) o *= +getComputedStyle(e).opacity; return o; }") == 1
    assert chip.evaluate("e => getComputedStyle(e).cursor") == "pointer"
    # One font family for the page's heading, the answer text, the card titles and the preview's bold title
    # (Gradio's own heading font is a small subset that mixed glyphs of two fonts in one headline).
    families = page.evaluate("""() => ['.gradio-container h1, .gradio-container h2', '#byline-chat .md',
        '#byline-sources .byline-title', '#byline-chat .byline-pv-title']
        .map(s => { const e = document.querySelector(s); return e ? getComputedStyle(e).fontFamily : 'missing: ' + s; })""")
    assert len(set(families)) == 1 and "system-ui" in families[0], families
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-preview-1366.png"))
    page.mouse.move(0, 0)
    # Keyboard: Tab reaches the chip, the preview shows on focus, Enter scrolls to and highlights its card.
    chip.focus()
    assert preview.is_visible()
    page.keyboard.press("Enter")
    n = int(chip.inner_text().strip()[1:].split("]")[0])
    card = page.locator(f"#byline-sources .byline-current .byline-cited[data-n='{n}']")
    page.wait_for_function("(n) => { const c = document.querySelector(`#byline-sources .byline-current .byline-cited[data-n='${n}']`);"
                           " const r = c.getBoundingClientRect(); return c.classList.contains('byline-flash') && r.top >= 0 && r.bottom <= innerHeight; }",
                           arg=n, timeout=5_000)
    assert "Metro Wire" in card.inner_text()
    # Copy: plain text, then the sources one per line; never markup.
    bot.locator(".byline-copy.byline-fmt-text").click()
    page.wait_for_function("() => document.querySelector('#byline-chat .byline-copy.byline-fmt-text').innerText.includes('Copied')")
    clip = page.evaluate("() => navigator.clipboard.readText()")
    assert "184,000" in clip and "<" not in clip and "&#" not in clip and "byline" not in clip
    assert "\nSources:\n[1] " in clip and " — Metro Wire — 2024-03-07 — https://" in clip
    bot.locator(".byline-copy.byline-fmt-md").click()
    page.wait_for_timeout(300)
    md = page.evaluate("() => navigator.clipboard.readText()")
    assert "**Sources**" in md and "](https://" in md and "<sup" not in md
    # The message's accessible label is its plain text, not markup.
    page.wait_for_timeout(300)
    label = bot.get_attribute("aria-label")
    assert label.startswith("Byline: ") and "184,000" in label and "<" not in label and "&#" not in label
    assert "<" not in page.locator('#byline-chat [data-testid="user"]').last.get_attribute("aria-label")
    ctx.close()


def test_answer_one_keeps_its_sources_after_answer_two(browser: Any, server: tuple[str, Settings]) -> None:
    ctx, page = _open(browser, server[0], 1366, 900)
    ask(page, "How many Aerio X2 speakers did Novalink recall?")
    ask(page, "Which outlet reported the Port of Saltmere closure, and which storm caused it?")
    first, second = page.locator('#byline-chat [data-testid="bot"]').nth(0), page.locator('#byline-chat [data-testid="bot"]').nth(1)
    # Each answer has its own strip: outlet · date · title chips that link to the articles.
    strip1 = first.locator(".byline-strip a.byline-src")
    assert strip1.count() >= 1 and "Metro Wire" in strip1.first.inner_text()
    assert strip1.first.get_attribute("href").startswith("https://") and strip1.first.get_attribute("target") == "_blank"
    hrefs = strip1.evaluate_all("els => els.map(e => e.href)")
    assert len(hrefs) == len(set(hrefs)), hrefs  # each article once, however many of its passages are cited
    assert "Metro Wire" not in " ".join(second.locator(".byline-strip").all_inner_texts()) or "Saltmere" in second.inner_text()
    # The panel shows the latest answer; answer 1's marker brings its own cards back.
    assert "Saltmere" in page.locator("#byline-sources .byline-current").inner_text()
    first.locator(".byline-chip").first.click()
    page.wait_for_function("() => document.querySelector('#byline-sources .byline-current').id === 'byline-turn-0'", timeout=5_000)
    current = page.locator("#byline-sources .byline-current")
    assert "Metro Wire" in current.inner_text() and current.locator(".byline-flash").count() == 1
    page.screenshot(path=str(ARTIFACTS / "chat-two-answers-1366.png"))
    second.locator(".byline-show").click()  # and the second answer's "Sources" button brings its cards back
    page.wait_for_function("() => document.querySelector('#byline-sources .byline-current').id === 'byline-turn-1'", timeout=5_000)
    # The whole conversation, with each answer's sources, exports as Markdown.
    page.locator("#byline-export").click()
    link = page.locator("#byline-export-file a").first
    link.wait_for(timeout=30_000)
    md = page.evaluate("(u) => fetch(u).then(r => r.text())", link.get_attribute("href"))
    assert md.startswith("# Byline conversation") and md.count("\n## ") == 2 and "Metro Wire" in md and "Harbor Ledger" in md
    ctx.close()


def test_conversation_survives_a_reload_until_cleared(browser: Any, server: tuple[str, Settings]) -> None:
    ctx, page = _open(browser, server[0], 1366, 900)
    ask(page, "How many Aerio X2 speakers did Novalink recall?")
    page.reload(wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('#byline-chat [data-testid=\"bot\"]').length === 1", timeout=60_000)
    assert "184,000" in last_bot(page).inner_text() and markers(page) == cards(page) != []
    last_bot(page).locator(".byline-chip").first.click()  # the restored chips still lead to their cards
    page.wait_for_selector("#byline-sources .byline-current .byline-flash", timeout=5_000)
    page.locator("#byline-clear").click()
    page.wait_for_function("() => document.querySelectorAll('#byline-chat [data-testid=\"bot\"]').length === 0", timeout=30_000)
    page.wait_for_timeout(1000)  # the deletion is saved after the clear
    page.reload(wait_until="load")
    page.wait_for_selector("#byline-question textarea, #byline-question input", timeout=60_000)
    page.wait_for_timeout(2000)
    assert page.locator('#byline-chat [data-testid="bot"]').count() == 0
    ctx.close()


def test_phone_shows_the_sources_under_the_answer(browser: Any, server: tuple[str, Settings]) -> None:
    ctx, page = _open(browser, server[0], 390, 844)
    ask(page, "How many Aerio X2 speakers did Novalink recall?")
    page.evaluate("() => window.scrollTo(0, 0)")
    strip = last_bot(page).locator(".byline-strip")
    strip.scroll_into_view_if_needed()
    box = strip.bounding_box()
    filters = page.locator("#byline-filters").bounding_box()
    assert box["y"] + box["height"] <= filters["y"], "the sources come before the filters"
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "the strip fits the phone's width"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 392, "no sideways scrolling"
    page.screenshot(path=str(ARTIFACTS / "chat-phone-390.png"))
    page.screenshot(path=str(ARTIFACTS / "chat-phone-390-full.png"), full_page=True)
    # The Archive table scrolls sideways instead of breaking dates and headers per character.
    page.get_by_role("tab", name="Archive").click()
    page.wait_for_function("() => document.querySelector('#byline-articles').innerText.includes('2024-03-07')", timeout=30_000)
    # Lines each date, id and header cell's text takes (the text's line boxes, counted by their tops).
    lines = page.evaluate("""() => [...document.querySelectorAll('#byline-articles th, #byline-articles td')]
        .filter(c => /^(\\d{4}-\\d{2}-\\d{2}|passages|date|id|outlet|[0-9a-f]{12,})$/.test(c.innerText.trim()))
        .map(c => { const tops = new Set(), w = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
                    for (let n = w.nextNode(); n; n = w.nextNode()) { const r = document.createRange(); r.selectNodeContents(n);
                      [...r.getClientRects()].filter(x => x.width > 0).forEach(x => tops.add(Math.round(x.top))); }
                    return [c.innerText.trim(), tops.size]; })""")
    assert lines and all(n == 1 for _, n in lines), lines
    page.screenshot(path=str(ARTIFACTS / "archive-phone-390.png"), full_page=True)
    ctx.close()


def test_unanswerable_shows_not_in_archive(page: Any) -> None:
    ask(page, "What is the recipe for Hungarian goulash?")
    assert "Not in the archive" in last_bot(page).inner_text()
    refused = page.locator("#byline-sources .byline-refused")
    assert refused.is_visible() and "Not in the archive" in refused.inner_text()
    assert cards(page) == [] and markers(page) == []
    bubble, panel = last_bot(page).inner_text(), page.locator("#byline-sources").inner_text()
    assert "indexed passages" not in bubble + panel and "does not say" not in bubble
    # The closest articles are cards in the panel and links under the answer, not a run-on sentence.
    near = page.locator("#byline-sources .byline-current .byline-near a.byline-title")
    assert near.count() == last_bot(page).locator(".byline-strip a.byline-src").count()
    page.screenshot(path=str(ARTIFACTS / "chat-refusal-1366.png"))


def test_a_list_of_articles_shows_one_line_each_with_its_card(page: Any) -> None:
    ask(page, "What happened in February 2024?")
    bubble = last_bot(page).inner_text()
    lines = [ln for ln in bubble.splitlines() if ln.startswith("- ")]
    assert bubble.startswith("Articles in the archive published 1 February 2024 to 29 February 2024, newest first:"), bubble
    assert len(lines) == 1 and "Storm Ingrid Shuts Port of Saltmere" in lines[0] and "Harbor Ledger, 12 February 2024" in lines[0], bubble
    assert cards(page) == [1] and markers(page) == [1]


def test_bad_date_is_said_once_beside_the_field(page: Any) -> None:
    page.get_by_text("Filters and answer generator").click()
    page.locator("#byline-from input, #byline-from textarea").first.fill("31/01/2024")
    page.get_by_text("Filters and answer generator").click()  # folded again: the error opens it
    box = page.locator("#byline-question textarea, #byline-question input").first
    box.fill("What did Novalink recall?")
    page.locator("#byline-ask").click()
    note = page.locator("#byline-date-note .byline-notice")
    note.wait_for(timeout=60_000)
    assert "YYYY-MM-DD" in note.inner_text() and note.is_visible()
    page.wait_for_timeout(1500)  # the turn's own event has run by now
    assert page.locator('#byline-chat [data-testid="user"], #byline-chat [data-testid="bot"]').count() == 0  # no failed turn
    assert "YYYY-MM-DD" not in page.locator("#byline-sources").inner_text()
    assert page.locator(".toast-body").count() == 0  # no pop-up either
    assert box.input_value() == "What did Novalink recall?"
    # An empty question is noted by the input, not in the far panel.
    page.locator("#byline-from input, #byline-from textarea").first.fill("")
    box.fill("")
    page.locator("#byline-ask").click()
    page.wait_for_function("() => document.querySelector('#byline-question-note').innerText.includes('Type a question')", timeout=30_000)
    assert page.locator("#byline-date-note .byline-notice").count() == 0
    assert "Traceback" not in page.content()


def test_active_filters_show_beside_the_question_and_clear(page: Any) -> None:
    page.get_by_text("Filters and answer generator").click()
    date_from = page.locator("#byline-from input, #byline-from textarea").first
    assert date_from.get_attribute("placeholder") == "2024-01-18"  # the archive's own first date
    date_from.fill("2024-03-01")
    page.get_by_text("Filters and answer generator").click()  # folded away, the filter is still in sight
    chips = page.locator("#byline-active-filters .byline-fchip")
    chips.first.wait_for(timeout=30_000)
    assert chips.all_inner_texts() == ["from 2024-03-01"] and chips.first.is_visible()
    page.locator("#byline-clear-filters").click()
    page.wait_for_function("() => !document.querySelector('#byline-active-filters .byline-fchip')", timeout=30_000)
    assert date_from.input_value() == ""


def test_empty_chat_offers_the_latest_headlines_as_questions(page: Any) -> None:
    example = page.locator("#byline-chat").get_by_text("Bank of Veloria Holds Key Rate at 4.25% for Fourth Straight Meeting")
    example.first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-empty.png"))
    example.first.click()
    page.wait_for_function(DONE_JS, arg=0, timeout=ANSWER_TIMEOUT_MS)
    assert "Veloria" in page.locator('#byline-chat [data-testid="user"]').last.inner_text()
    assert markers(page) and markers(page) == cards(page)


def test_upload_lists_article_and_escapes_hostile_title(page: Any, server: tuple[str, Settings], tmp_path: Path) -> None:
    _, settings = server
    up = tmp_path / "up"
    up.mkdir()
    hostile = up / "hostile (v2).md"
    hostile.write_text(f"---\ntitle: '{XSS}'\nsource: Quillfeather Post\npublished_at: 2024-07-02\n"
                       "url: https://quillfeather.example/ferry\n---\n"
                       "The harbour of Quillfeather opened a new ferry terminal on Monday, the port authority said. "
                       "The terminal cost 48 million crowns and will serve three islands.\n")
    plain = up / "riverton-budget.md"
    shutil.copy(FIXTURES / "corpus" / "riverton-budget.md", plain)

    page.get_by_role("tab", name="Archive").click()
    page.locator("#byline-files input[type=file]").set_input_files([str(hostile), str(plain)])
    # Both files uploaded: the component lists each with a download link (⇣).
    page.wait_for_function("() => (document.querySelector('#byline-files').innerText.match(/⇣/g) || []).length >= 2", timeout=60_000)
    page.locator("#byline-ingest").click()
    page.wait_for_function("() => document.querySelector('#byline-report').innerText.includes('added')", timeout=ANSWER_TIMEOUT_MS)
    report = page.locator("#byline-report").inner_text()
    assert "1 added" in report and "1 unchanged" in report, report
    assert "hostile_v2_.md" in report  # the saved name was sanitised
    assert sorted(p.name for p in settings.upload_dir.iterdir()) == ["hostile_v2_.md", "riverton-budget.md"]
    table = page.locator("#byline-articles")
    page.wait_for_function("(t) => document.querySelector('#byline-articles').innerText.includes(t)", arg=XSS, timeout=30_000)
    assert "Quillfeather Post" in table.inner_text()
    assert page.locator("img[src='x']").count() == 0
    assert "Quillfeather Post" in page.locator("#byline-stats").text_content()  # in the collapsed outlet list
    page.screenshot(path=str(ARTIFACTS / "archive.png"), full_page=True)

    # Cite it in the chat: the card shows the title as text, and nothing runs.
    page.get_by_role("tab", name="Ask").click()
    ask(page, "How much did the new ferry terminal in Quillfeather cost?")
    card_titles = page.locator("#byline-sources .byline-current .byline-card .byline-title").all_inner_texts()
    assert XSS in card_titles
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#byline-sources img, #byline-chat .message-content img").count() == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []


def test_delete_asks_first_and_can_be_undone(browser: Any, server: tuple[str, Settings]) -> None:
    ctx, page = _open(browser, server[0], 1366, 900)
    page.get_by_role("tab", name="Archive").click()
    title = "Novalink"
    page.wait_for_function("(t) => document.querySelector('#byline-articles').innerText.includes(t)", arg=title, timeout=30_000)
    assert "/chroma" not in page.locator("#byline-stats").inner_text()  # internals are under "Advanced"
    page.locator("#byline-articles").get_by_text(re.compile(f"^{title} Recalls")).first.click()  # fills the id in
    page.wait_for_function("() => document.querySelector('#byline-del-ids textarea, #byline-del-ids input').value.length > 0")
    page.locator("#byline-delete").click()
    page.locator("#byline-confirm").wait_for(state="visible", timeout=30_000)
    assert "Delete 1 article" in page.locator("#byline-del-msg").inner_text() and title in page.locator("#byline-del-msg").inner_text()
    assert title in page.locator("#byline-articles").inner_text()  # nothing deleted yet
    page.screenshot(path=str(ARTIFACTS / "archive-confirm-1366.png"), full_page=True)
    page.locator("#byline-confirm").click()
    page.wait_for_function("(t) => !document.querySelector('#byline-articles').innerText.includes(t)", arg=title, timeout=30_000)
    page.locator("#byline-undo").wait_for(state="visible", timeout=10_000)
    page.locator("#byline-undo").click()
    page.wait_for_function("(t) => document.querySelector('#byline-articles').innerText.includes(t)", arg=title, timeout=30_000)
    assert "Restored 1 article" in page.locator("#byline-del-msg").inner_text()
    assert page.dialogs == []
    ctx.close()
    d = server[1]
    from rag.engine import Engine

    back = Engine(d).ask("How many Aerio X2 speakers did Novalink recall?", generator="extractive")
    assert not back.refused and "184,000" in back.text  # really restored: it answers again


def test_gradio_client_ask(server: tuple[str, Settings]) -> None:
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    result = client.predict("Who did Castlebridge Rovers appoint as head coach?", api_name="/ask")
    assert not result["refused"] and "Lindqvist" in result["text"]
    assert result["citations"] and result["citations"][0]["source"] == "Northern Sentinel"
    quick = client.predict("Who did Castlebridge Rovers appoint as head coach?", generator="extractive", api_name="/ask")
    assert quick["generator"] == "extractive" and "Lindqvist" in quick["text"]
    filtered = client.predict("Who did Castlebridge Rovers appoint as head coach?", ["Valley Courier"], api_name="/ask")
    assert filtered["refused"] or all(c["source"] == "Valley Courier" for c in filtered["citations"])


@pytest.mark.skipif(os.environ.get("BYLINE_TEST_LOCAL_UI") != "1", reason="set BYLINE_TEST_LOCAL_UI=1 to time the local model in the browser")
def test_first_token_local_generator(page: Any) -> None:
    from rag.generators.local import local_available

    if not local_available():
        pytest.skip("local model not installed")
    page.get_by_text("Filters and answer generator").click()
    page.get_by_label("Best answer (local model, slower)").check()
    cold = ask(page, "How many Aerio X2 speakers did Novalink recall?")
    page.locator("#byline-clear").click()  # a fresh conversation: no follow-up rewrite before retrieval
    page.wait_for_function("() => document.querySelectorAll('#byline-chat [data-testid=\"bot\"]').length === 0")
    warm = ask(page, "Which storm closed the Port of Saltmere?")
    server_side = page.locator("#byline-sources .byline-current .byline-timing").inner_text()
    print(f"\n[first token, local, cold (loads the model)] {cold:.2f} s\n[first token, local, warm] {warm:.2f} s (server: {server_side})")
    assert markers(page) == cards(page) or page.locator("#byline-sources .byline-refused").count() == 1


# --- a slow generator: the passages show before the text ---------------------------------
@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, server: tuple[str, Settings]) -> Iterator[tuple[str, Any]]:
    """The same archive, answered by an OpenAI-compatible stub that writes one word every 0.3 s."""
    from tests.stub_openai import StubOpenAI
    from ui.app import launch

    words = " ".join(["Novalink recalled 184,000 Aerio X2 speakers [1]."] * 4).split(" ")

    def reply(messages: list, body: dict) -> str:  # as long as the request allows, as a real endpoint would
        return " ".join(words[: body.get("max_tokens") or None])

    with StubOpenAI(reply=reply, chunk_delay_s=0.3) as stub:
        s = server[1].model_copy(update={"generator": "openai", "openai_base_url": stub.url, "openai_model": "slow"})
        demo = launch(s, block=False, quiet=True)
        try:
            yield demo.local_url, stub
        finally:
            demo.close()


# Records, in the page, when the first source card and the answer's first word appeared: a check made after
# waiting for the cards from the test would race the stub's first word on a busy machine.
FIRST_SEEN_JS = """
() => {
  window.__firstSeen = {};
  const mark = () => {
    const seen = window.__firstSeen, now = performance.now();
    if (seen.cards === undefined && document.querySelector('#byline-sources .byline-sources-reading .byline-card')) seen.cards = now;
    const b = document.querySelectorAll('#byline-chat [data-testid="bot"]');
    if (seen.words === undefined && b.length && b[b.length - 1].innerText.includes('Novalink')) seen.words = now;
  };
  new MutationObserver(mark).observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def _ask_slowly(browser: Any, url: str) -> tuple[Any, Any, Any]:
    """A fresh page on the slow server with a question asked: (context, page, question box)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url, wait_until="load")
    box = page.locator("#byline-question textarea, #byline-question input").first
    box.wait_for(timeout=60_000)
    box.fill("How many Aerio X2 speakers did Novalink recall?")
    page.evaluate(FIRST_SEEN_JS)
    page.locator("#byline-ask").click()
    return ctx, page, box


def test_sources_show_before_the_text(browser: Any, slow_server: tuple[str, Any]) -> None:
    ctx, page, _ = _ask_slowly(browser, slow_server[0])
    reading = page.locator("#byline-sources .byline-sources-reading .byline-card")
    reading.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "Metro Wire" in page.locator("#byline-sources").inner_text()
    page.wait_for_function("() => window.__firstSeen.words !== undefined", timeout=60_000)
    seen = page.evaluate("() => window.__firstSeen")
    assert seen["cards"] < seen["words"], seen  # the cards came before the first words
    assert reading.count() >= 1  # and stay while the words stream
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-reading.png"), full_page=True)
    ctx.close()


# The last answer is being written and its progress line says so, its clock past ``seconds``.
WRITING_JS = """
(seconds) => {
  const b = document.querySelectorAll('#byline-chat [data-testid="bot"]'), last = b[b.length - 1];
  const p = last && last.querySelector('.byline-progress'), m = p && /^Writing the answer… (\\d+) s$/.exec(p.innerText.trim());
  return !!m && last.innerText.includes('Novalink') && Number(m[1]) > seconds;
}
"""


def test_stop_stops_the_answer(browser: Any, slow_server: tuple[str, Any]) -> None:
    url, stub = slow_server
    deadline = time.monotonic() + 30
    while stub.streams_open and time.monotonic() < deadline:  # an earlier test's answer may still be streaming
        time.sleep(0.2)
    ctx, page, box = _ask_slowly(browser, url)
    progress = page.locator('#byline-chat [data-testid="bot"] .byline-progress').last
    # While the words come, the line under them says so, with a clock that moves.
    page.wait_for_function(WRITING_JS, arg=-1, timeout=ANSWER_TIMEOUT_MS)
    first = int(re.fullmatch(r"Writing the answer… (\d+) s", progress.inner_text().strip()).group(1))
    page.wait_for_function(WRITING_JS, arg=first, timeout=5_000)
    assert progress.is_visible()
    assert page.locator("#byline-sources .byline-cited").count() == 0  # the answer is not complete yet
    t_stop = time.monotonic()
    page.locator("#byline-stop").click()
    page.wait_for_function("() => { const b = document.querySelectorAll('#byline-chat [data-testid=\"bot\"]');"
                           " return b.length && b[b.length - 1].innerText.includes('Stopped'); }", timeout=5_000)
    print(f"\n[Stop clicked -> 'Stopped' shown] {time.monotonic() - t_stop:.2f} s")
    bot = page.locator('#byline-chat [data-testid="bot"]').last
    assert "184,000" not in bot.inner_text()  # the unfinished, unverified text is gone
    assert box.input_value() == "How many Aerio X2 speakers did Novalink recall?"  # kept, to edit or re-send
    deadline = time.monotonic() + 3  # the stub writes a word every 0.3 s; a closed stream ends at the next one
    while stub.streams_open and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stub.streams_open == 0, "the model kept writing after Stop"
    page.wait_for_timeout(1500)  # nothing arrives late to pass the unfinished answer off as a verified one
    assert "Stopped" in bot.inner_text() and "Novalink" not in bot.inner_text()
    for verified in (".byline-progress", ".byline-chip", ".byline-foot", ".byline-copy"):  # no clock, chips, sources strip or Copy
        assert bot.locator(verified).count() == 0, verified
    assert page.locator("#byline-sources .byline-cited, #byline-sources .byline-current").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"))
    ctx.close()
