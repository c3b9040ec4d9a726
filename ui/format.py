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


def answer_to_chat(text: str, numbers: Iterable[int] | None = None) -> str:
    """The answer text for the chat bubble, escaped, with [n] markers styled (only those with a card)."""
    keep = None if numbers is None else set(numbers)
    out: list[str] = []
    pos = 0
    for m in MARKER_RE.finditer(text):
        out.append(esc_chat(text[pos : m.start()]))
        n = int(m.group(1))
        if keep is None or n in keep:
            out.append(f'<sup class="byline-marker" data-n="{n}">&#91;{n}&#93;</sup>')
        else:  # a marker with no source card is dropped rather than shown dangling
            pass
        pos = m.end()
    out.append(esc_chat(text[pos:]))
    return "".join(out).strip()



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
    passage = _re.sub(r"\n\s*\n+", "\n", passage or "")  # blank lines between paragraphs waste the card's height
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


def citation_card(c: Citation) -> str:
    return _card(c, f'id="byline-cite-{int(c.number)}" data-n="{int(c.number)}"', highlight_passage(c.passage or c.quote, c.quote))


def passage_card(p: Passage, chars: int = 280) -> str:
    """A passage the generator is reading (before the answer exists): its opening, no highlight."""
    text = " ".join(p.full_text.split())
    body = esc(text[:chars]) + ("…" if len(text) > chars else "")
    return _card(p, f'data-passage="{int(p.number)}"', body, extra_class=" byline-reading")


def _card(item: Citation | Passage, attrs: str, body_html: str, extra_class: str = "") -> str:
    """One source card: number, title, outlet · date · link, then the passage."""
    link = link_html(item.url)
    meta = [f'<span class="byline-outlet">{esc(item.source or "unknown outlet")}</span>',
            f'<span class="byline-date{" byline-undated" if not item.date else ""}">{esc(item.date or "date unknown")}</span>']
    if link:
        meta.append(f'<span class="byline-link">{link}</span>')
    return (
        f'<li class="byline-card{extra_class}" {attrs}>'
        f'<div class="byline-card-head"><span class="byline-num">[{int(item.number)}]</span> '
        f'<span class="byline-title">{esc(item.title or "(untitled)")}</span></div>'
        f'<div class="byline-meta">{" · ".join(meta)}</div>'
        f'<blockquote class="byline-quote">{body_html}</blockquote>'
        "</li>"
    )


def reading_panel(sources: Sources) -> str:
    """The sources panel while the answer is written: the passages found, before any is cited."""
    n = len(sources.passages)
    return ('<div class="byline-sources byline-sources-reading">'
            f'<h3 class="byline-sources-title">Reading {n} passage{"s" if n != 1 else ""} '
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


def sources_panel(answer: Answer) -> str:
    """The sources panel for a finished answer: one card per citation, or the refusal state."""
    parts = ['<div class="byline-sources">', searched_for_html(answer), _filters_line(answer.filters)]
    if answer.refused:
        parts.append(
            f'<div class="byline-refused" role="status"><strong>{REFUSAL_TITLE}</strong>'
            "<p>None of the indexed articles supports an answer to this question. Try other words, widen the "
            "outlet or date filters, or add articles in the Archive tab.</p></div>")
    elif answer.citations:
        parts.append(f'<h3 class="byline-sources-title">Sources ({len(answer.citations)})</h3><ol class="byline-cards">')
        parts.extend(citation_card(c) for c in sorted(answer.citations, key=lambda c: c.number))
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
    parts.append("</div>")
    return "".join(p for p in parts if p)


def answer_chat_message(answer: Answer) -> str:
    """The final chat bubble: the verified answer text (never the raw stream) with its markers."""
    if answer.refused:
        body = answer_to_chat(answer.text, []) if answer.text.strip() else ""
        return f"**{REFUSAL_TITLE}.** " + (body or "The indexed articles do not answer this question.")
    return answer_to_chat(answer.text, [c.number for c in answer.citations]) or "(empty answer)"


def placeholder_panel(message: str) -> str:
    return f'<div class="byline-sources byline-placeholder"><small>{esc(message)}</small></div>'


def notice_html(message: str, kind: str = "error") -> str:
    return f'<div class="byline-notice byline-{esc(kind)}" role="alert">{esc(message)}</div>'


def stats_html(stats: dict[str, Any]) -> str:
    outlets = stats.get("outlets") or {}
    rows = "".join(f"<li>{esc(k)} ({int(v)})</li>" for k, v in outlets.items())
    return (
        '<div class="byline-stats">'
        f"<p><strong>{int(stats.get('articles', 0))}</strong> articles, <strong>{int(stats.get('chunks', 0))}</strong> passages, "
        f"{int(stats.get('undated', 0))} undated. Dates: {esc(stats.get('first_date') or '–')} … {esc(stats.get('last_date') or '–')}.</p>"
        f"<p><small>{esc(stats.get('store', ''))} · collection {esc(stats.get('collection', ''))}</small></p>"
        + (f"<details><summary>Outlets ({len(outlets)})</summary><ul>{rows}</ul></details>" if outlets else "")
        + "</div>"
    )


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
