"""The public result types of ``rag.ask``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


# How an ``Answer.notes`` entry starts when the generator wrote an answer that verification then withheld.
WITHHELD_NOTE = "the generated answer was withheld"


@dataclass(frozen=True)
class Copy:
    """Another outlet's copy of a syndicated story (the same wire text, republished)."""

    article_id: str
    title: str
    source: str
    date: str  # ISO date or ''
    url: str


@dataclass
class Passage:
    """A retrieved chunk, as the generator saw it (``text`` may be trimmed to the sentences that matter)."""

    number: int  # 1-based, the [n] the generator sees
    chunk_id: str
    article_id: str
    title: str
    source: str
    date: str  # ISO date or ''
    url: str
    text: str  # the passage shown to the generator (selected sentences)
    full_text: str  # the whole chunk
    start: int  # character offsets of the chunk in its article
    end: int
    score: float  # fused retrieval score
    dense_score: float = 0.0  # cosine similarity to the question
    author: str = ""
    also_published: tuple[Copy, ...] = ()  # the story's other syndicated copies, earliest first (rag.copies)

    def evidence(self) -> str:
        """What a claim or a question's terms may be found in: the text plus title, outlet and date in words."""
        from rag.text import date_words

        return f"{self.title} {self.source} {date_words(self.date)} {self.full_text}"


@dataclass(frozen=True)
class Sources:
    """What ``ask_stream`` yields first when retrieval found passages, before any text: the passages the
    generator is about to read, so a chat, the CLI or an API can show them while the answer is written."""

    passages: list[Passage]  # numbered as the answer's [n] markers will first point at them (then renumbered to the cited ones)
    standalone_question: str  # what was searched
    filters: dict[str, Any]  # as in Answer.filters
    seconds: float  # since the question was asked


@dataclass
class Citation:
    number: int
    article_id: str
    title: str
    source: str
    date: str
    url: str
    quote: str  # the passage sentence(s) that support the cited answer sentence
    chunk_id: str
    score: float  # support score of the cited sentence against this passage (0-1)
    passage: str = ""  # the whole chunk, for context
    also_published: tuple[Copy, ...] = ()  # as in Passage

    def __str__(self) -> str:
        bits = [b for b in (self.title, self.source, self.date) if b]
        head = f"[{self.number}] " + " — ".join(bits)
        return head + (f" <{self.url}>" if self.url else "")


@dataclass
class Answer:
    question: str
    text: str  # with inline [n] markers that match ``citations``
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    passages: list[Passage] = field(default_factory=list)
    standalone_question: str = ""  # the question after follow-up rewriting (what was searched)
    filters: dict[str, Any] = field(default_factory=dict)  # outlet/date filters applied, incl. resolved relative dates
    generator: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds: retrieve, first_token, generate, verify, total
    notes: list[str] = field(default_factory=list)  # e.g. removed unsupported sentences, truncated question
    prompt_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [self.text]
        if self.citations:
            lines.append("")
            lines.extend(str(c) for c in self.citations)
        return "\n".join(lines)


@dataclass
class Filters:
    """Metadata filters for retrieval. Dates are ISO 'YYYY-MM-DD', inclusive."""

    sources: list[str] = field(default_factory=list)
    date_from: str | None = None
    date_to: str | None = None

    def is_empty(self) -> bool:
        return not (self.sources or self.date_from or self.date_to)

    @classmethod
    def coerce(cls, value: "Filters | dict[str, Any] | None") -> "Filters":
        if value is None:
            return cls()
        if isinstance(value, Filters):
            return value
        src = value.get("sources") or value.get("source") or value.get("outlets") or []
        if isinstance(src, str):
            src = [src]
        return cls(sources=list(src), date_from=value.get("date_from") or value.get("after"), date_to=value.get("date_to") or value.get("before"))
