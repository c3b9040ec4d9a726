"""Reading a question before answering it: which outlets it names, and what kind of answer it wants.

All in code (no model): the plan decides how retrieval is split (one search per outlet named) and how
the answer is made (a verdict, a name, an outlet or date read from the articles' metadata, an order
of two reports computed from their dates, or free text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

from rag.dates import day_parts, first_day
from rag.policy import is_yes_no_question
from rag.text import STOPWORDS, words

T = TypeVar("T")

# What the question asks for.
YES_NO = "yes_no"  # "Does X say ...?", "Was A reported before B?"
ENTITY = "entity"  # "Which company ...?", "Who is the person ...?": a name
CHOICE = "choice"  # "..., consistent or inconsistent?": one of the options it lists
OUTLET = "outlet"  # "Which outlet reported ...?": the article's own metadata
PUBLISHED = "published"  # "When was ... reported?": the article's own date
FIRST = "first"  # "Which came first: X or Y?": the order of two reports, by their dates
DIGEST = "digest"  # "What happened in February 2024?", "What did Breitbart report?": the articles themselves, newest first
ARTICLES = "articles"  # "List the articles about Iraq", "Which stories mention Saltmere?": the articles on a topic
OPEN = "open"  # anything else: sentences written from the passages

_WH = r"(?:who|whom|whose|what|which|when|where|why|how)"
_AUX = r"(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)"
_OUTLET_WORDS = r"(?:(?:outlet|news\s+source|news\s+outlet|publication|newspaper|paper|site|website|news\s+site|source|media\s+outlet|news\s+organi[sz]ation|magazine|blog)s?)"
_REPORT = r"(?:report(?:ed|s)?|publish(?:ed|es)?|cover(?:ed|s)?|wrote|write|writes|first\s+report(?:ed)?|broke|announce[ds]?|ran)"


@dataclass(frozen=True)
class QuestionPlan:
    kind: str
    outlets: tuple[str, ...] = ()  # archive outlets the question names, in order of mention
    options: tuple[str, ...] = ()  # CHOICE / FIRST: the alternatives, as written
    topic: str = ""  # OUTLET / PUBLISHED: what was reported (the question without the metadata ask)


def _aliases(source: str) -> list[str]:
    """Ways a question may name an outlet: 'The Roar | Sports Writers Blog' is also 'The Roar';
    'The Independent - Sports' also 'The Independent'; 'Cnbc | World ...' also 'CNBC'."""
    out = [source]
    head = re.split(r"\s+[|–—-]\s+|:\s+", source)[0].strip()
    if head and head != source:
        out.append(head)
    for name in list(out):
        if name.lower().startswith("the ") and len(name) > 8:
            out.append(name[4:])
    return [a for a in dict.fromkeys(out) if len(a) >= 3]


def match_outlets(question: str, sources: Iterable[str]) -> tuple[str, ...]:
    """The archive outlets a question names, in order of mention. A short name shared by several outlets
    ('The Independent') names them all; the longest name wins where names overlap."""
    hits: list[tuple[int, int, str]] = []  # (start, end, source)
    for src in sources:
        if not src:
            continue
        for alias in _aliases(src):
            # Case-sensitive ("The Age" the outlet, not "the age of"), except that an acronym may be
            # written in capitals ("Cnbc" is asked about as "CNBC").
            pat = re.compile(r"(?<![\w])" + re.escape(alias) + r"(?![\w])")
            found = list(pat.finditer(question))
            if not found and alias[:1].isupper() and alias[1:].islower() and len(alias) <= 6:
                found = [m for m in re.finditer(r"(?<![\w])" + re.escape(alias.upper()) + r"(?![\w])", question)]
            hits.extend((m.start(), m.end(), src) for m in found)
    # The longest match at each place wins; overlapping shorter ones are dropped, equal spans all kept.
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    kept: list[tuple[int, int, str]] = []
    for h in hits:
        if any(k[0] <= h[0] < k[1] and (k[1] - k[0]) > (h[1] - h[0]) for k in kept):
            continue
        kept.append(h)
    return tuple(dict.fromkeys(s for _, _, s in sorted(kept)))


def _first_options(question: str) -> tuple[str, ...]:
    """'Which came first: X or Y?', 'Which happened earlier, X or Y?', 'What was reported first, X or Y?'."""
    m = re.match(rf"\s*{_WH}\b[^:,?]*?\b(?:first|earlier|sooner|later|last|more\s+recent(?:ly)?|most\s+recent(?:ly)?)\b\s*[:,]?\s*(.+?)\s+or\s+(.+?)\s*\?*\s*$",
                 question, re.I)
    if not m:
        return ()
    a, b = (x.strip(" \"'“”‘’,:") for x in m.groups())
    return (a, b) if a and b else ()


def first_wants_later(question: str) -> bool:
    """'Which came later/last/more recently' asks for the second of the two, not the first."""
    return bool(re.search(r"\b(later|last|more\s+recent(?:ly)?|most\s+recent(?:ly)?)\b", question.split(":")[0], re.I))


# Relations a question may ask to choose between, wherever they stand in it ("... reported before or after ...").
_RELATION_PAIRS = r"(before|after|earlier|later|consistent|inconsistent|agree|disagree|similar|different|same|change|consistency|" \
                  r"increase|decrease|higher|lower|more|less|positive|negative|support|oppose)"


def _choice_options(question: str) -> tuple[str, ...]:
    """An either/or: a relation pair anywhere ('before or after', 'consistent or inconsistent'), or short
    alternatives of the same shape ending the question ('..., The Verge or Wired?')."""
    m = re.search(rf"\b{_RELATION_PAIRS}\s+or\s+{_RELATION_PAIRS}\b", question, re.I)
    if m and m.group(1).lower() != m.group(2).lower():
        return (m.group(1), m.group(2))
    m = re.search(r"\s+or\s+((?:[\w'’.\-]+\s){0,2}[\w'’.\-]+)\s*\?\s*$", question)
    if not m:
        return ()
    b = m.group(1).strip()
    before = re.split(r"[,:;]", question[: m.start()])[-1].split()
    a = " ".join(before[-len(b.split()):]).strip()
    if not a or not b or a.lower() == b.lower() or re.fullmatch(rf"{_AUX}|{_WH}|not", a, re.I):
        return ()
    # Only names ("The Verge or Wired?"): plain words there usually end a yes/no question ("... conditions or treatments?").
    if not (a[:1].isupper() and b[:1].isupper()):
        return ()
    return (a, b)


# "List the articles about X", "Show me stories on X", "Which articles mention X?": a list, not an answer.
_LIST = re.compile(r"\s*(?:please\s+)?(?:(?:list|show(?:\s+me)?|find|give\s+me|are\s+there)\s+(?:all\s+|any\s+)?(?:the\s+)?|(?:which|what)\s+)"
                   r"(?:articles|stories|reports|news\s+stories|pieces)\s+(?:(?:are|were)\s+)?(?:about|on|mentioning|(?:that\s+)?mention(?:ed)?|covering|(?:that\s+)?cover(?:ed)?)\s+(.+)$", re.I)


def plan_question(question: str, sources: Iterable[str] = ()) -> QuestionPlan:
    """The kind of answer a question wants and the outlets it names (matched against ``sources``)."""
    q = question.strip()
    outlets = match_outlets(q, sources)
    if first := _first_options(q):
        return QuestionPlan(FIRST, outlets, first)
    # The main clause: the first question word or auxiliary at the start or after a lead-in clause
    # ("Considering the articles by X and Y, which company ...", "After X reported ..., did Y ...").
    head = re.search(rf"(?:^|,\s*)(?:in\s+)?({_WH}|{_AUX})\b", q, re.I)
    main = q[head.start():].lstrip(", ") if head else q
    m = re.match(rf"\s*(?:which|what)\s+{_OUTLET_WORDS}\s+(?:(?:first\s+)?{_REPORT}|(?:was|is)\s+(?:it\s+)?(?:that|the\s+one\s+that)\s+{_REPORT})\s+(?:that\s+|on\s+|about\s+)?(.+)$", main, re.I) \
        or re.match(rf"\s*who\s+(?:first\s+)?(?:reported|published|broke\s+the\s+news|covered)\s+(?:that\s+|on\s+|about\s+)?(.+)$", main, re.I) \
        or re.match(rf"\s*in\s+which\s+{_OUTLET_WORDS}\s+(?:was|did|were)\s+(.+?)\s+(?:reported|published|covered|appear)\b.*$", main, re.I)
    if m:
        return QuestionPlan(OUTLET, outlets, topic=m.group(1).rstrip(" ?"))
    m = re.match(rf"\s*when\s+(?:was|were)\s+(.+?)\s+(?:first\s+)?(?:reported|published|covered)\b(.*)$", main, re.I) \
        or re.match(rf"\s*when\s+did\s+(.+?)\s+(?:first\s+)?(?:report|publish|cover|write\s+about)\s+(.+)$", main, re.I) \
        or re.match(rf"\s*on\s+what\s+(?:date|day)\s+(?:was|were|did)\s+(.+?)\s+(?:reported|published|report|publish)\b(.*)$", main, re.I)
    if m:
        topic = " ".join(g.strip(" ?") for g in m.groups() if g and g.strip(" ?"))
        return QuestionPlan(PUBLISHED, outlets, topic=topic)
    if m := _LIST.match(q):
        return QuestionPlan(ARTICLES, outlets, topic=m.group(1).rstrip(" ?."))
    if choice := _choice_options(q):
        return QuestionPlan(CHOICE, outlets, choice)
    if is_yes_no_question(main):
        return QuestionPlan(YES_NO, outlets)
    # "Who is Ali al-Daffayi?" asks about a person already named: that wants sentences, not a name.
    if re.match(r"\s*(?i:who|what)\s+(?i:is|was|are|were)\s+(?!the\b|a\b|an\b)[A-Z0-9]", main):
        return QuestionPlan(OPEN, outlets)
    if re.match(r"\s*(?:in\s+)?(?:which|who|whom|what\s+(?:is|was|are|were)\s+the\s+name|what\s+(?:type|kind|sort)s?\s+of|what\s+(?:\w+\s+){0,2}(?:company|person|team|organi[sz]ation|"
                r"individual|entity|entities|country|city|player|firm|platform|product|event|institution|agency|brand|group|club|athlete|"
                r"politician|executive|figure|celebrity|artist|musician|film|show|movie|game|app|service|sportsbook|league|state|author|"
                r"character|network|model|device|console|book|song|album)\b)", main, re.I):
        return QuestionPlan(ENTITY, outlets)
    return QuestionPlan(OPEN, outlets)




def outlet_clause(question: str, outlet: str) -> str:
    """The part of the question about one outlet: from where it is named to the next clause
    ("Does The Verge say X, while The Age implies Y?" -> "The Verge say X"); '' when it is not named."""
    spans = _mentions(question, outlet)
    if not spans:
        return ""
    start = spans[0][0]
    end = re.search(r",\s+(?:while|and|but|whereas)\s+|;\s+|\s+(?:while|whereas)\s+", question[start:])
    return question[start: start + end.start()] if end else question[start:]


def _mentions(question: str, outlet: str) -> list[tuple[int, int]]:
    """Where the question names the outlet; overlapping names ("The Independent - Sports", "The Independent") once."""
    spans = sorted((m.start(), m.end()) for a in _aliases(outlet) for m in re.finditer(r"(?<![\w])" + re.escape(a) + r"(?![\w])", question))
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


_SEGMENT = re.compile(r",\s+|;\s+|\s+(?:while|whereas)\s+")


def outlet_parts(question: str, outlet: str, outlets: Iterable[str]) -> list[str]:
    """What the question says of this outlet, one text per time it names it: the piece between commas that
    names it and no other outlet ("…, also offers a two-pack of cables as noted by Polygon, …"), or, when that
    piece says nothing else ("…, as reported by TechCrunch, …"), the piece before it; '' where neither says
    anything of its own. Outlet names are left out."""
    names = {outlet, *outlets}
    aliases = {a for o in names for a in _aliases(o)}

    def names_of(piece: str) -> set[str]:
        return {o for o in names if _mentions(piece, o)}

    def said(piece: str) -> str:
        rest = " ".join(_without(piece, aliases).split()).strip(" ?,'\"")
        return rest if len(_topic_words(rest)) >= 3 else ""

    pieces = _SEGMENT.split(question)
    out = []
    for i, piece in enumerate(pieces):
        if outlet not in names_of(piece):
            continue
        if len(names_of(piece)) > 1:
            out.append("")
        elif own := said(piece):
            out.append(own)
        else:
            out.append(said(pieces[i - 1]) if i > 0 and not names_of(pieces[i - 1]) else "")
    return out


def outlet_mentions(question: str, outlet: str) -> int:
    """How many times the question names the outlet ("the TechCrunch article ... the later TechCrunch report": 2)."""
    return len(_mentions(question, outlet))


# "between the report of 28 September and the subsequent one", "both articles", "another report", "while the same
# source indicates": two reports.
_TWO_REPORTS = re.compile(r"\bbetween\b[^?]{0,80}?\b(?:reports?|articles?|pieces?|stor(?:y|ies)|coverage|publications?)\b"
                          r"|\bsame\s+(?:source|outlet|publication|publisher)\b"
                          r"|\b(?:subsequent|another|both|former|latter|two\s+(?:articles|reports|pieces))\b"
                          r"|\b(?:earlier|later|previous|prior|follow-up|second)\s+(?:article|report|piece|story|coverage)\b", re.I)


# A yes/no question about a negative ("Was there inconsistency …?", "… portray it inconsistently?") is put to the
# model in the affirmative and its verdict reversed: a 1.5B model answered "Yes" to both forms.
_INCONSISTENT = re.compile(r"\binconsisten(?:t|cy|cies|tly)\b", re.I)
_TWO_TIMES = re.compile(r"\b(between|before|after|then|subsequent|later|earlier|previous|prior)\b", re.I)


def affirmative(question: str, named: Iterable[str]) -> str | None:
    """The question with "inconsistent" (-cy, -tly) made "consistent", where the word relates reports to each
    other: two of them named (``named``: the outlets the question names), or one at two times ("Was there inconsistency between A's report and B's?", "… after
    its report of 6 October?"). None when it has no such word, or several, or when the word is part of what a
    report says ("Did A report that the results were inconsistent?": its opposite is not "A reported that they
    were consistent")."""
    hits = list(_INCONSISTENT.finditer(question))
    if len(hits) != 1 or re.search(r"\bthat\b", re.split(r"[,;:]", question[: hits[0].start()])[-1], re.I):
        return None
    if sum(reports_named(question, named).values()) < 2 and not _TWO_TIMES.search(question):
        return None
    word = hits[0].group(0)
    consistent = word[2].upper() + word[3:] if word[0].isupper() else word[2:]  # "in" dropped
    return question[: hits[0].start()] + consistent + question[hits[0].end():]


def reports_named(question: str, outlets: Iterable[str]) -> dict[str, int]:
    """For each outlet the question names, how many of its reports the question is about: each naming counts,
    and a question naming one outlet but two reports ("Has TechCrunch's view changed between the article
    of 28 September and the subsequent one?") is about two of that outlet's."""
    counts = {o: max(1, outlet_mentions(question, o)) for o in outlets}
    if len(counts) == 1 and _TWO_REPORTS.search(question):
        (only,) = counts
        counts[only] = max(counts[only], 2)
    return counts


def stated_days(question: str, outlet: str, outlets: Iterable[str]) -> list[tuple[int | None, int, int]]:
    """The days the question gives for this outlet's reports, as (year or None, month, day): the first day written
    after a naming of it and before the next naming of any outlet ("the TechCrunch report on … published on
    October 7, 2023, and The Verge's …" -> TechCrunch: (2023, 10, 7))."""
    names = {outlet, *outlets}
    starts = sorted(s for o in names for s, _ in _mentions(question, o))
    out = []
    for _, end in _mentions(question, outlet):
        day = first_day(question, end, next((s for s in starts if s >= end), len(question)))
        if day is not None:
            out.append(day)
    return out


def dated_first(items: Sequence[T], date_of: Callable[[T], str], days: Sequence[tuple[int | None, int, int]]) -> list[T]:
    """``items`` with, for each stated day in turn, the first one of that day moved to the front (a question about
    the reports of 26 September and of 6 December wants one of each, not two of 6 December); the rest keep their order."""
    front: list[T] = []
    for day in days:
        hit = next((x for x in items if x not in front and on_day(date_of(x), [day])), None)
        if hit is not None:
            front.append(hit)
    return front + [x for x in items if x not in front]


def on_day(iso_date: str, days: Iterable[tuple[int | None, int, int]]) -> bool:
    """Whether an article's date (ISO, or '') is one of ``days`` (a day without its year matches any year)."""
    got = day_parts((iso_date or "")[:10])
    return got is not None and any(got[1:] == (month, day) and year in (None, got[0]) for year, month, day in days)


# Words of a question that asks what the archive holds, not about something in particular.
_BROWSE = frozenset("""happen happened happening happens news new newest latest recent recently today going go goes on
    report reported reports reporting say said write wrote written cover covered covers coverage publish published
    story stories article articles headline headlines anything something everything tell me give show list summary
    summarise summarize update updates whats what's any top main big biggest""".split())


def is_digest(question: str, date_phrases: Iterable[str], outlets: Iterable[str], scoped: bool) -> bool:
    """Whether a question names only a time, an outlet or recency, and no topic ("What happened in February
    2024?", "What did Breitbart report?", "Latest news?"): it asks which articles the archive holds there.
    ``scoped``: the question asks for the latest, or the user chose outlets or dates ("What's new?" then too)."""
    outlets = list(outlets)
    phrases = [p for p in date_phrases if p]
    if not (phrases or outlets or scoped):
        return False
    return not _topic_words(_without(question, {a for o in outlets for a in _aliases(o)} | set(phrases), re.I))


def _without(text: str, names: Iterable[str], flags: int = 0) -> str:
    """The text with each name taken out, the longest first."""
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(r"(?<![\w])" + re.escape(name) + r"(?![\w])", " ", text, flags=flags)
    return text


def _topic_words(text: str) -> list[str]:
    """The words of a text that say what it is about: not stopwords, numbers, or words of asking for news."""
    return [w for w in words(text) if len(w) > 1 and w not in STOPWORDS and w not in _BROWSE and not w.isdigit()]
