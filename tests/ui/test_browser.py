"""The real chat in headless Chromium: streaming, citations, follow-ups, refusals, uploads, escaping, /ask.

Starts ``ui.app.launch`` on 127.0.0.1 (free port) over a temp index holding data/ and
tests/fixtures/corpus/, extractive generator. Needs /usr/bin/chromium and the playwright package.
Prints the time from submit to the first streamed token seen in the page.
"""

from __future__ import annotations

import os
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

# A bot message counts as "first token" when it shows text other than the "…" placeholder.
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
    const t = bots[bots.length - 1].innerText.trim();
    if (t && t !== '…') window.__tFirst = performance.now();
  });
  window.__obs.observe(chat, {subtree: true, childList: true, characterData: true});
}
"""
DONE_JS = """
(n) => {
  const bots = document.querySelectorAll('#byline-chat [data-testid="bot"]');
  if (bots.length <= n) return false;
  const last = bots[bots.length - 1].innerText.trim();
  // The answer is final when the panel shows neither a placeholder nor the passages still being read.
  return last && last !== '…' && !document.querySelector('#byline-sources .byline-placeholder, #byline-sources .byline-sources-reading');
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
    return [int(t.strip("[] ")) for t in page.locator("#byline-sources .byline-card .byline-num").all_inner_texts()]


def test_chat_streams_cites_and_follows_up(page: Any) -> None:
    ttft = ask(page, "How many Aerio X2 speakers did Novalink recall?")
    print(f"\n[first token, extractive, cold engine] {ttft:.2f} s")
    text = last_bot(page).inner_text()
    assert "184,000" in text
    assert markers(page) and markers(page) == cards(page)
    card = page.locator("#byline-sources .byline-card").first
    assert "Metro Wire" in card.inner_text() and "2024-03-07" in card.inner_text()
    assert card.locator("mark").count() >= 1
    link = card.locator("a")
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("href").startswith("https://")

    ttft_warm = ask(page, "Which outlet reported the Port of Saltmere closure, and which storm caused it?")
    print(f"[first token, extractive, warm] {ttft_warm:.2f} s (server: {page.locator('#byline-sources .byline-timing').inner_text()})")
    assert "Ingrid" in last_bot(page).inner_text()
    assert markers(page) == cards(page)

    ask(page, "Who is the harbour master there?")  # a follow-up: "there" needs the conversation
    searched = page.locator("#byline-sources .byline-searched")
    assert searched.count() == 1 and "Searched for" in searched.inner_text()
    assert "Saltmere" in searched.inner_text()
    assert markers(page) == cards(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def test_unanswerable_shows_not_in_archive(page: Any) -> None:
    ask(page, "What is the recipe for Hungarian goulash?")
    assert "Not in the archive" in last_bot(page).inner_text()
    refused = page.locator("#byline-sources .byline-refused")
    assert refused.is_visible() and "Not in the archive" in refused.inner_text()
    assert cards(page) == [] and markers(page) == []


def test_bad_date_filter_gets_a_friendly_message(page: Any) -> None:
    page.get_by_text("Filters and answer generator").click()
    page.locator("#byline-from input, #byline-from textarea").first.fill("31/01/2024")
    box = page.locator("#byline-question textarea, #byline-question input").first
    box.fill("What did Novalink recall?")
    page.locator("#byline-ask").click()
    page.wait_for_selector("#byline-sources .byline-notice", timeout=60_000)
    assert "YYYY-MM-DD" in page.locator("#byline-sources").inner_text()
    assert "Traceback" not in page.content()


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
    card_titles = page.locator("#byline-sources .byline-card .byline-title").all_inner_texts()
    assert XSS in card_titles
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#byline-sources img, #byline-chat .message-content img").count() == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []


def test_gradio_client_ask(server: tuple[str, Settings]) -> None:
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    result = client.predict("Who did Castlebridge Rovers appoint as head coach?", api_name="/ask")
    assert not result["refused"] and "Lindqvist" in result["text"]
    assert result["citations"] and result["citations"][0]["source"] == "Northern Sentinel"
    filtered = client.predict("Who did Castlebridge Rovers appoint as head coach?", ["Valley Courier"], api_name="/ask")
    assert filtered["refused"] or all(c["source"] == "Valley Courier" for c in filtered["citations"])


@pytest.mark.skipif(os.environ.get("BYLINE_TEST_LOCAL_UI") != "1", reason="set BYLINE_TEST_LOCAL_UI=1 to time the local model in the browser")
def test_first_token_local_generator(page: Any) -> None:
    from rag.generators.local import local_available

    if not local_available():
        pytest.skip("local model not installed")
    page.get_by_text("Filters and answer generator").click()
    page.get_by_label("Local model (Qwen2.5 1.5B, offline)").check()
    cold = ask(page, "How many Aerio X2 speakers did Novalink recall?")
    page.locator("#byline-clear").click()  # a fresh conversation: no follow-up rewrite before retrieval
    page.wait_for_function("() => document.querySelectorAll('#byline-chat [data-testid=\"bot\"]').length === 0")
    warm = ask(page, "Which storm closed the Port of Saltmere?")
    server_side = page.locator("#byline-sources .byline-timing").inner_text()
    print(f"\n[first token, local, cold (loads the model)] {cold:.2f} s\n[first token, local, warm] {warm:.2f} s (server: {server_side})")
    assert markers(page) == cards(page) or page.locator("#byline-sources .byline-refused").count() == 1


# --- a slow generator: the passages show before the text ---------------------------------
@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, server: tuple[str, Settings]) -> Iterator[tuple[str, Any]]:
    """The same archive, answered by an OpenAI-compatible stub that writes one word every 0.3 s."""
    from tests.stub_openai import StubOpenAI
    from ui.app import launch

    words = " ".join(["Novalink recalled 184,000 Aerio X2 speakers [1]."] * 4)
    with StubOpenAI(reply=words, chunk_delay_s=0.3) as stub:
        s = server[1].model_copy(update={"generator": "openai", "openai_base_url": stub.url, "openai_model": "slow"})
        demo = launch(s, block=False, quiet=True)
        try:
            yield demo.local_url, stub
        finally:
            demo.close()


def _ask_slowly(browser: Any, url: str) -> tuple[Any, Any, Any]:
    """A fresh page on the slow server with a question asked: (context, page, question box)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url, wait_until="load")
    box = page.locator("#byline-question textarea, #byline-question input").first
    box.wait_for(timeout=60_000)
    box.fill("How many Aerio X2 speakers did Novalink recall?")
    page.locator("#byline-ask").click()
    return ctx, page, box


def test_sources_show_before_the_text(browser: Any, slow_server: tuple[str, Any]) -> None:
    ctx, page, _ = _ask_slowly(browser, slow_server[0])
    reading = page.locator("#byline-sources .byline-sources-reading .byline-card")
    reading.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    bots = page.locator('#byline-chat [data-testid="bot"]')
    assert bots.count() == 0 or "Novalink" not in bots.last.inner_text()  # the cards came before the first words
    assert "Metro Wire" in page.locator("#byline-sources").inner_text()
    page.wait_for_function("() => { const b = document.querySelectorAll('#byline-chat [data-testid=\"bot\"]');"
                           " return b.length && b[b.length - 1].innerText.includes('Novalink'); }", timeout=60_000)
    assert reading.count() >= 1  # and stay while the words stream
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-reading.png"), full_page=True)
    ctx.close()


def test_stop_stops_the_answer(browser: Any, slow_server: tuple[str, Any]) -> None:
    url, stub = slow_server
    deadline = time.monotonic() + 30
    while stub.streams_open and time.monotonic() < deadline:  # an earlier test's answer may still be streaming
        time.sleep(0.2)
    ctx, page, box = _ask_slowly(browser, url)
    page.wait_for_function("() => { const b = document.querySelectorAll('#byline-chat [data-testid=\"bot\"]');"
                           " return b.length && b[b.length - 1].innerText.includes('Novalink'); }", timeout=ANSWER_TIMEOUT_MS)
    page.locator("#byline-stop").click()
    page.wait_for_function("() => { const b = document.querySelectorAll('#byline-chat [data-testid=\"bot\"]');"
                           " return b.length && b[b.length - 1].innerText.includes('Stopped'); }", timeout=5_000)
    bot = page.locator('#byline-chat [data-testid="bot"]').last.inner_text()
    assert "184,000" not in bot  # the unfinished, unverified text is gone
    assert box.input_value() == "How many Aerio X2 speakers did Novalink recall?"  # kept, to edit or re-send
    deadline = time.monotonic() + 3  # the stub writes a word every 0.3 s; a closed stream ends at the next one
    while stub.streams_open and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stub.streams_open == 0, "the model kept writing after Stop"
    ctx.close()
