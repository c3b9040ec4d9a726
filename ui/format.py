"""Rendering an Answer for the terminal (and, in ui.app, for the browser)."""

from __future__ import annotations

from rag.types import Answer, Citation, Passage, Sources


def answer_to_terminal(answer: Answer) -> str:
    lines = [answer.text.strip()]
    if answer.standalone_question and answer.standalone_question != answer.question:
        lines.append(f"\n(searched for: {answer.standalone_question})")
    if answer.citations:
        lines.append("\nSources:")
        for c in answer.citations:
            meta = " — ".join(b for b in (c.source or "unknown outlet", c.date or "date unknown") if b)
            lines.append(f"  [{c.number}] {c.title or '(untitled)'} — {meta}")
            if c.url:
                lines.append(f"      {c.url}")
            quote = " ".join(c.quote.split())
            lines.append(f"      “{quote[:300]}{'…' if len(quote) > 300 else ''}”")
            if c.also_published:
                lines.append(f"      {also_published_line(c)}")
    for note in answer.notes:
        lines.append(f"\nnote: {note}")
    return "\n".join(lines)


def sources_to_terminal(sources: Sources) -> str:
    """What ``byline ask`` shows while the answer is written: the passages found, one line each."""
    lines = [f"Reading {len(sources.passages)} passages (found in {sources.seconds:.1f} s):"]
    for p in sources.passages:
        lines.append(f"  {p.title or '(untitled)'} — {p.source or 'unknown outlet'} — {p.date or 'date unknown'}")
    return "\n".join(lines)


# --- Browser rendering (ui.app) ---------------------------------------------------------------------
# Everything that comes from an article (title, outlet, text, URL) or from the generator is escaped
# here. The chat bubble is Markdown rendered by the browser, so besides HTML-escaping we also turn the
# characters Markdown (and autolinking, and LaTeX) reacts to into numeric entities: article text can
# never become a link, an image, a heading or markup. Source cards are plain HTML.

import html as _html
import re as _re
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit


MARKER_RE = _re.compile(r"\[(\d{1,3})\]")
# One character at a time: HTML specials and the characters Markdown/autolinks/LaTeX react to.
_CHAT_TABLE = str.maketrans({ch: f"&#{ord(ch)};" for ch in "&<>\"'\\`*_{}[]()#+-.!|~$:=^@%"})


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included); None becomes ''."""
    return _html.escape("" if value is None else str(value), quote=True)


def esc_chat(text: str) -> str:
    """Escape text for a Markdown chat bubble: HTML-escaped and Markdown-inert, newlines kept."""
    return ("" if text is None else str(text)).translate(_CHAT_TABLE)


def safe_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL with a host, else None."""
    if not url:
        return None
    u = str(url).strip()
    if any(ch in u for ch in "\x00\r\n\t ") or len(u) > 2048:
        return None
    try:
        parts = urlsplit(u)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return u


def link_html(url: str | None, text: str | None = None) -> str:
    """An inert, escaped link for an http(s) URL; other schemes are shown as plain text (or nothing)."""
    u = safe_url(url)
    if u is None:
        return f'<span class="byline-nolink">{esc(url)}</span>' if url else ""
    shown = text if text is not None else _short_url(u)
    return f'<a href="{esc(u)}" target="_blank" rel="noopener noreferrer">{esc(shown)}</a>'


def _short_url(u: str, limit: int = 60) -> str:
    parts = urlsplit(u)
    s = parts.netloc + parts.path
    return s if len(s) <= limit else s[: limit - 1] + "…"


def answer_to_chat(text: str, numbers: Iterable[int] | None = None, citations: Sequence[Citation] = (), turn: int | None = None) -> str:
    """The answer text for the chat bubble, escaped, with [n] markers styled (only those with a card).

    With ``citations`` (the final answer) each marker is a chip: focusable, with a preview of its
    source (title, outlet, date, the cited sentence) shown on hover or focus; ``turn`` ties the chip to
    this answer's cards (the page's script scrolls to the card on click).
    """
    keep = None if numbers is None else set(numbers)
    by_n = {int(c.number): c for c in citations}
    out: list[str] = []
    pos = 0
    for m in MARKER_RE.finditer(text):
        out.append(esc_chat(text[pos : m.start()]))
        n = int(m.group(1))
        if keep is None or n in keep:  # a marker with no source card is dropped rather than shown dangling
            out.append(_marker_chip(n, by_n.get(n), turn))
        pos = m.end()
    out.append(esc_chat(text[pos:]))
    return "".join(out).strip()


def elapsed_text(seconds: float) -> str:
    """``7 s``; ``2 min 05 s`` from a minute on."""
    s = max(0, int(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def every_text(seconds: float) -> str:
    """``15 minutes``, ``2 hours``, ``90 seconds``: an interval as a person says it."""
    s = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            return plural(s // size, unit)
    return plural(s, "second")


def progress_html(stage: str, seconds: float) -> str:
    """The line under an answer being produced: what Byline is doing, and for how long so far."""
    return f'<div class="byline-progress">{esc_chat(stage)}… {esc_chat(elapsed_text(seconds))}</div>'


def writing_message(streamed: str, stage: str, seconds: float) -> str:
    """The chat bubble while an answer is produced: the text so far (unverified, plain markers) over its progress line."""
    text = answer_to_chat(streamed)
    return (text + "\n\n" if text else "") + progress_html(stage, seconds)


def _marker_chip(n: int, c: Citation | None, turn: int | None) -> str:
    if c is None:
        return f'<sup class="byline-marker" data-n="{n}">&#91;{n}&#93;</sup>'
    # The sanitizer of the chat drops data-* and aria-* attributes: the turn and number ride on classes.
    quote = " ".join((c.quote or "").split())
    quote = quote if len(quote) <= 280 else quote[:279] + "…"
    preview = ('<span class="byline-preview" role="tooltip">'
               f'<span class="byline-pv-title">{esc_chat(c.title or "(untitled)")}</span>'
               f'<span class="byline-pv-meta">{esc_chat(c.source or "unknown outlet")} · {esc_chat(c.date or "date unknown")}</span>'
               + (f'<span class="byline-pv-quote">“{esc_chat(quote)}”</span>' if quote else "")
               + "</span>")
    return (f'<sup class="byline-marker byline-chip byline-t-{int(turn or 0)} byline-n-{n}" data-n="{n}" tabindex="0" role="button">&#91;{n}&#93;{preview}</sup>')


def _find_quote(passage: str, quote: str) -> tuple[int, int] | None:
    """Character span of ``quote`` in ``passage`` (tolerant of whitespace differences)."""
    if not quote or not passage:
        return None
    i = passage.find(quote)
    if i >= 0:
        return i, i + len(quote)
    words = quote.split()
    if not words:
        return None
    pattern = r"\s+".join(_re.escape(w) for w in words)
    m = _re.search(pattern, passage)
    if m:
        return m.start(), m.end()
    m = _re.search(pattern, passage, _re.I)
    return (m.start(), m.end()) if m else None


def highlight_passage(passage: str, quote: str, context: int = 320) -> str:
    """Escaped passage with the cited sentence(s) in <mark>, trimmed to some context around it."""
    passage = _re.sub(r"\n\s*\n+", "\n", (passage or "").strip())  # blank lines between paragraphs waste the card's height
    quote = (quote or "").strip()
    span = _find_quote(passage, quote)
    if span is None:
        if quote:
            return f"<mark>{esc(quote)}</mark>"
        text = passage if len(passage) <= 2 * context else passage[: 2 * context] + "…"
        return esc(text)
    a, b = span
    start = max(0, a - context)
    end = min(len(passage), b + context)
    # Cut at word boundaries so the context does not start mid-word.
    if start > 0:
        sp = passage.find(" ", start)
        start = sp + 1 if 0 <= sp < a else start
    if end < len(passage):
        sp = passage.rfind(" ", b, end)
        end = sp if sp > b else end
    pre = ("…" if start > 0 else "") + passage[start:a]
    post = passage[b:end] + ("…" if end < len(passage) else "")
    return f"{esc(pre)}<mark>{esc(passage[a:b])}</mark>{esc(post)}"


def citation_card(c: Citation, turn: int = 0) -> str:
    return _card(c, f'id="byline-cite-{int(turn)}-{int(c.number)}" data-n="{int(c.number)}"', highlight_passage(c.passage or c.quote, c.quote),
                 extra_class=" byline-cited")


def passage_card(p: Passage, chars: int = 280, extra_class: str = " byline-reading") -> str:
    """A passage the generator is reading (before the answer exists): its opening, no highlight."""
    text = " ".join(p.full_text.split())
    body = esc(text[:chars]) + ("…" if len(text) > chars else "")
    return _card(p, f'data-passage="{int(p.number)}"', body, extra_class=extra_class, numbered=extra_class == " byline-reading")


def also_published_line(item: Citation | Passage) -> str:
    """``Also published by Outlet B (2024-03-02), Outlet C``: the story's other syndicated copies, or ''."""
    if not item.also_published:
        return ""
    return "Also published by " + ", ".join(f"{c.source or 'unknown outlet'}{f' ({c.date})' if c.date else ''}" for c in item.also_published)


def _card(item: Citation | Passage, attrs: str, body_html: str, extra_class: str = "", numbered: bool = True) -> str:
    """One source card: number, title (a link to the article), outlet · date · link, then the passage, then other copies."""
    link = link_html(item.url)
    meta = [f'<span class="byline-outlet">{esc(item.source or "unknown outlet")}</span>',
            f'<span class="byline-date{" byline-undated" if not item.date else ""}">{esc(item.date or "date unknown")}</span>']
    if link:
        meta.append(f'<span class="byline-link">{link}</span>')
    title = item.title or "(untitled)"
    title_html = (link_html(item.url, title).replace("<a ", '<a class="byline-title" ', 1) if safe_url(item.url)
                  else f'<span class="byline-title">{esc(title)}</span>')
    num = f'<span class="byline-num">[{int(item.number)}]</span> ' if numbered else ""
    return (
        f'<li class="byline-card{extra_class}" {attrs}>'
        f'<div class="byline-card-head">{num}{title_html}</div>'
        f'<div class="byline-meta">{" · ".join(meta)}</div>'
        f'<blockquote class="byline-quote">{body_html}</blockquote>'
        + (f'<div class="byline-copies"><small>{esc(also_published_line(item))}</small></div>' if item.also_published else "")
        + "</li>"
    )


def reading_panel(sources: Sources) -> str:
    """The sources panel while the answer is written: the passages found, before any is cited."""
    n = len(sources.passages)
    return ('<div class="byline-sources byline-sources-reading">'
            f'<h3 class="byline-sources-title">Reading {plural(n, "passage")} '
            f'<small>(found in {sources.seconds:.1f} s; the answer cites the ones that support it)</small></h3>'
            '<ol class="byline-cards">' + "".join(passage_card(p) for p in sources.passages) + "</ol></div>")


def searched_for_html(answer: Answer) -> str:
    sq = (answer.standalone_question or "").strip()
    if not sq or sq == (answer.question or "").strip():
        return ""
    return (f'<details class="byline-searched" open><summary>Searched for: <q>{esc(sq)}</q></summary>'
            f'<small>Your follow-up was rewritten using the conversation so far; this is what the archive was searched for.</small></details>')


def _filters_line(filters: dict[str, Any] | None) -> str:
    if not filters:
        return ""
    bits = []
    src = filters.get("sources") or []
    if src:
        bits.append("outlets: " + ", ".join(str(s) for s in src))
    if filters.get("date_from") or filters.get("date_to"):
        bits.append(f"dates: {filters.get('date_from') or '…'} to {filters.get('date_to') or '…'}")
    return f'<div class="byline-filters"><small>Filtered by {esc("; ".join(bits))}</small></div>' if bits else ""


REFUSAL_TITLE = "Not in the archive"
REFUSAL_LINE = "none of the articles found answers this question."


def closest_articles(answer: Answer, limit: int = 3) -> list[Passage]:
    """The best passage of each of the (at most ``limit``) articles a refused question came closest to."""
    seen: dict[str, Passage] = {}
    for p in answer.passages:
        key = p.article_id or p.chunk_id
        if key not in seen:
            seen[key] = p
        if len(seen) >= limit:
            break
    return list(seen.values())


def _source_line(item: Citation | Passage) -> str:
    """``Title — Outlet — date — url`` (plain text)."""
    bits = [item.title or "(untitled)", item.source or "unknown outlet", item.date or "date unknown"]
    if item.url:
        bits.append(item.url)
    return " — ".join(bits)


def answer_plain_text(answer: Answer) -> str:
    """What "Copy" puts on the clipboard: the answer as plain text, then its sources, one per line."""
    if answer.refused:
        lines = [f"{REFUSAL_TITLE}: {REFUSAL_LINE}"]
        near = closest_articles(answer)
        if near:
            lines += ["", "Closest articles:"] + [f"- {_source_line(p)}" for p in near]
        return "\n".join(lines)
    cits = sorted(answer.citations, key=lambda c: c.number)
    keep = {c.number for c in cits}
    text = MARKER_RE.sub(lambda m: m.group(0) if int(m.group(1)) in keep else "", answer.text).strip()
    if not cits:
        return text
    return "\n".join([text, "", "Sources:"] + [f"[{c.number}] {_source_line(c)}" for c in cits])


def _md(text: str) -> str:
    """Text that Markdown shows as itself (titles and outlets in a Markdown link or list)."""
    return _re.sub(r"([\\`*_{}\[\]()#+!|<>])", r"\\\1", text or "")


def answer_markdown(answer: Answer) -> str:
    """What "Copy as Markdown" puts on the clipboard: linked markers, then a numbered list of sources."""
    if answer.refused:
        near = closest_articles(answer)
        lines = [f"**{REFUSAL_TITLE}:** {REFUSAL_LINE}"]
        if near:
            lines += ["", "Closest articles:", ""] + [f"- {_md_source(p)}" for p in near]
        return "\n".join(lines)
    cits = {c.number: c for c in answer.citations}

    def marker(m: _re.Match) -> str:
        c = cits.get(int(m.group(1)))
        if c is None:
            return ""
        u = safe_url(c.url)
        return f"[\\[{c.number}\\]]({u})" if u else f"\\[{c.number}\\]"

    text = MARKER_RE.sub(marker, answer.text).strip()
    if not cits:
        return text
    return "\n".join([text, "", "**Sources**", ""] + [f"{n}. {_md_source(cits[n])}" for n in sorted(cits)])


def _md_source(item: Citation | Passage) -> str:
    u = safe_url(item.url)
    title = _md(item.title or "(untitled)")
    head = f"[{title}]({u})" if u else title
    return f"{head} — {_md(item.source or 'unknown outlet')} — {item.date or 'date unknown'}"


def strip_items(citations: Sequence[Citation]) -> list[tuple[Citation, list[int]]]:
    """The strip's chips: each cited article once (an answer may cite two passages of one), with the numbers
    of the citations that point into it, in the order of their first number."""
    by_article: dict[str, tuple[Citation, list[int]]] = {}
    for c in sorted(citations, key=lambda c: c.number):
        by_article.setdefault(c.article_id or c.chunk_id, (c, []))[1].append(int(c.number))
    return list(by_article.values())


def _strip_chip(item: Citation | Passage, turn: int, numbers: Sequence[int] = ()) -> str:
    """One chip of the strip under an answer: (numbers) outlet · date · title, a link to the article; unnumbered
    without ``numbers`` (the closest articles of a refusal)."""
    nums = [int(n) for n in numbers]
    inner = ((f'<span class="byline-src-n">{", ".join(map(str, nums))}</span> ' if nums else "")
             + f'<span class="byline-src-meta">{esc_chat(item.source or "unknown outlet")} · {esc_chat(item.date or "date unknown")}</span> '
             + f'<span class="byline-src-title">{esc_chat(item.title or "(untitled)")}</span>')
    ident = f'id="byline-src-{int(turn)}-{nums[0]}" ' if nums else ""
    # A class per number: the page's script finds the chip of any citation (one id per element only).
    classes = f"byline-src byline-t-{int(turn)} " + " ".join(f"byline-n-{n}" for n in nums or [int(item.number)])
    u = safe_url(item.url)
    if u:
        return f'<a class="{classes}" {ident}href="{esc(u)}" target="_blank" rel="noopener noreferrer">{inner}</a>'
    return f'<span class="{classes}" {ident}>{inner}</span>'


def answer_footer(answer: Answer, turn: int) -> str:
    """Under a finished answer: its own sources (so they stay reachable after later answers), Copy
    buttons, and the texts they copy (hidden; the page's script reads them)."""
    if answer.refused:
        items, label = [(p, []) for p in closest_articles(answer)], "Closest articles"
    else:
        items, label = strip_items(answer.citations), "Sources"
    parts = [f'<div class="byline-foot byline-t-{int(turn)}">']
    if items:
        parts.append(f'<div class="byline-strip"><button type="button" class="byline-show byline-t-{int(turn)}">{label}</button>'
                     + "".join(_strip_chip(i, turn, nums) for i, nums in items) + "</div>")
    parts.append('<div class="byline-actions"><button type="button" class="byline-copy byline-fmt-text">Copy</button>'
                 '<button type="button" class="byline-copy byline-fmt-md">Copy as Markdown</button></div>')
    for cls, text in (("byline-copytext", answer_plain_text(answer)), ("byline-copymd", answer_markdown(answer))):
        parts.append(f'<div class="{cls}">{esc_chat(text).replace(chr(10), "&#10;")}</div>')
    parts.append("</div>")
    return "".join(parts)


def answer_sources(answer: Answer, turn: int = 0, current: bool = False) -> str:
    """One answer's part of the sources panel: a card per citation, or the refusal with the closest articles."""
    parts = [f'<section class="byline-turn{" byline-current" if current else ""}" id="byline-turn-{int(turn)}">',
             searched_for_html(answer), _filters_line(answer.filters)]
    if answer.refused:
        parts.append(f'<div class="byline-refused" role="status"><strong>{REFUSAL_TITLE}</strong>'
                     f"<p>{esc(REFUSAL_LINE[0].upper() + REFUSAL_LINE[1:])} Try other words or wider filters, or add articles "
                     "in the Archive tab.</p></div>")
        near = closest_articles(answer)
        if near:
            parts.append('<h3 class="byline-sources-title">Closest articles</h3><ol class="byline-cards">'
                         + "".join(passage_card(p, extra_class=" byline-near") for p in near) + "</ol>")
    elif answer.citations:
        parts.append(f'<h3 class="byline-sources-title">Sources ({len(answer.citations)})</h3><ol class="byline-cards">')
        parts.extend(citation_card(c, turn) for c in sorted(answer.citations, key=lambda c: c.number))
        parts.append("</ol>")
    else:
        parts.append('<div class="byline-empty">No passages were cited for this answer.</div>')
    if answer.notes:
        parts.append('<ul class="byline-notes">' + "".join(f"<li><small>{esc(n)}</small></li>" for n in answer.notes) + "</ul>")
    timings = answer.timings or {}
    t, ft = timings.get("total"), timings.get("first_token")
    if t is not None or answer.generator:
        bits = []
        if answer.generator:
            bits.append(f"generator: {answer.generator}")
        if ft is not None:
            bits.append(f"first words after {float(ft):.1f} s")
        if t is not None:
            bits.append(f"total {float(t):.1f} s")
        parts.append(f'<div class="byline-timing"><small>{esc(" · ".join(bits))}</small></div>')
    parts.append("</section>")
    return "".join(p for p in parts if p)


def sources_panel(answer: Answer, turn: int = 0, earlier: Sequence[str] = ()) -> str:
    """The sources panel after an answer: its sources shown, ``earlier`` answers' sections kept (hidden)
    so that their markers and "Sources" buttons can bring them back."""
    return '<div class="byline-sources">' + "".join(earlier) + answer_sources(answer, turn, current=True) + "</div>"


def answer_chat_message(answer: Answer, turn: int = 0) -> str:
    """The final chat bubble: the verified answer text (never the raw stream) with its marker chips,
    then its sources strip and Copy buttons."""
    if answer.refused:
        body = f"**{REFUSAL_TITLE}:** {esc_chat(REFUSAL_LINE)}"
    else:
        body = answer_to_chat(answer.text, [c.number for c in answer.citations], answer.citations, turn) or "(empty answer)"
    return body + "\n\n" + answer_footer(answer, turn)


def filter_chips_html(chips: Sequence[str]) -> str:
    """The filters in force, one chip each ('' when none)."""
    if not chips:
        return ""
    return ('<div class="byline-fchips" role="status"><span>Searching only:</span>'
            + "".join(f'<span class="byline-fchip">{esc(c)}</span>' for c in chips) + "</div>")


def placeholder_panel(message: str) -> str:
    return f'<div class="byline-sources byline-placeholder"><small>{esc(message)}</small></div>'


def notice_html(message: str, kind: str = "error") -> str:
    return f'<div class="byline-notice byline-{esc(kind)}" role="alert">{esc(message)}</div>'


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 article``, ``2 articles`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def stats_html(stats: dict[str, Any]) -> str:
    """The archive's size, dates and outlets (the store's location is in ``store_html``, under "Advanced")."""
    outlets = stats.get("outlets") or {}
    rows = "".join(f"<li>{esc(k)} ({int(v)})</li>" for k, v in outlets.items())
    n_art, n_chunks, undated = int(stats.get("articles", 0)), int(stats.get("chunks", 0)), int(stats.get("undated", 0))
    return (
        '<div class="byline-stats">'
        f"<p><strong>{esc(plural(n_art, 'article'))}</strong>, {esc(plural(n_chunks, 'passage'))}"
        + (f", {undated:,} undated" if undated else "")
        + f". Dates: <span class=\"byline-nowrap\">{esc(stats.get('first_date') or '–')}</span> … "
        f"<span class=\"byline-nowrap\">{esc(stats.get('last_date') or '–')}</span>.</p>"
        + (f"<details><summary>{esc(plural(len(outlets), 'outlet'))}</summary><ul>{rows}</ul></details>" if outlets else "")
        + "</div>"
    )


def store_html(stats: dict[str, Any]) -> str:
    """Where the index lives (for whoever runs the server)."""
    return (f'<div class="byline-store"><p>Index: <code>{esc(stats.get("store", ""))}</code></p>'
            f'<p>Collection: <code>{esc(stats.get("collection", ""))}</code></p></div>')


def ingest_report_html(summary: str, errors: Sequence[tuple[str, str]], saved: Sequence[str] = ()) -> str:
    parts = [f'<div class="byline-ingest"><p>{esc(summary)}</p>']
    if saved:
        parts.append("<p><small>Saved uploads: " + esc(", ".join(saved)) + "</small></p>")
    if errors:
        parts.append(f'<p><strong>{len(errors)} could not be read:</strong></p><ul class="byline-errors">')
        parts.extend(f"<li><code>{esc(src)}</code>: {esc(reason)}</li>" for src, reason in errors)
        parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)


def _when(iso: str) -> str:
    """'2026-11-30 09:15 UTC' from an ISO timestamp; '' for none."""
    return f"{iso[:10]} {iso[11:16]} UTC" if len(iso) >= 16 else iso


def feeds_html(feeds: dict[str, Any], blocked: str = "") -> str:
    """The Archive tab's watched feeds: per feed its last poll, what it brought, health and last error."""
    if not feeds:
        note = "No feeds watched. Paste a feed's URL and press Watch: it is polled now and then every so often."
        return f'<div class="byline-feeds"><p>{esc(blocked or note)}</p></div>'
    rows = []
    for url, st in feeds.items():
        if not st.last_poll:
            last, health = "not yet", "first poll due"
        else:
            last = f"{_when(st.last_poll)}: {plural(st.new_items, 'new article')}, {st.changed_items} changed"
            health = (f"failing ({st.failures} in a row), next try {_when(st.next_poll)}" if st.failures
                      else f"ok, next poll {_when(st.next_poll)}")
        error = f'<br><small class="byline-feed-error">last error {esc(_when(st.last_error_at))}: {esc(st.last_error)}</small>' \
            if st.last_error else ""
        entry = f'<br><small>{esc(plural(len(st.entry_errors), "entry", "entries"))} could not be read</small>' if st.entry_errors else ""
        rows.append(f"<tr><td>{link_html(url)}</td><td>{esc(last)}</td><td>{esc(health)}{error}{entry}</td></tr>")
    head = f"<p>{esc(blocked)}</p>" if blocked else ""
    return (f'<div class="byline-feeds">{head}<table><thead><tr><th>Feed</th><th>Last poll</th><th>Status</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")
