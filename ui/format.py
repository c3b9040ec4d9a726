"""Rendering an Answer for the terminal (and, in ui.app, for the browser)."""

from __future__ import annotations

from rag.types import Answer


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
