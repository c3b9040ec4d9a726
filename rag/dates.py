"""Date awareness for news questions: relative and explicit dates in a question become a date range.

"last week", "yesterday", "in September", "in March 2024", "since May", "before 2024", "on 5 March 2024"
are resolved against a reference date (settings.reference_date, else today). A bare month picks
its most recent occurrence not after the reference date, unless the archive holds no articles
from that month then and does from an earlier year: an archive question is about the archive.
Relative spans ("last week") and since/before/after/between become strict filters; "in/on <date>"
only ranks matching articles higher, and so do bounds when the question holds several dates (each then
describes one report: "the report after 6 November ... its earlier report on 1 November").
"latest"/"most recent" asks for recency ranking; "recently" only describes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Iterable

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
MONTHS["sept"] = 9
_MONTH_RE = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"


# The open ends of a preferred span ("after 6 November" ranks everything from that day on higher).
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(9999, 12, 31)


def span_text(a: dt.date, b: dt.date) -> str:
    return f"{'' if a <= EARLIEST else a.isoformat()}..{'' if b >= LATEST else b.isoformat()}"


@dataclass
class DateIntent:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    recency: bool = False  # "latest", "most recent": prefer newer articles
    # "in September", "on 2023-11-24": articles from these spans rank higher but others stay eligible,
    # since such a phrase may name when something happened rather than when it was reported.
    boost: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)  # what in the question was read as a date
    # "last week's game", "yesterday's match": the date describes the event, as a question restating an older
    # report does; if nothing matches the range, the range may be dropped (a plain "last week" stays strict).
    descriptive: bool = False
    # Each since/after/before/until phrase as a (first day or None, last day or None) bound; when the question
    # holds one range, date_from/date_to are these bounds.
    bounds: list[tuple[dt.date | None, dt.date | None]] = field(default_factory=list)

    def as_preferences(self) -> "DateIntent":
        """The same dates as preferences only: each bound becomes a span whose articles rank higher, and
        nothing is filtered (for a question whose dates each describe one of several reports)."""
        spans = [(a or EARLIEST, b or LATEST) for a, b in self.bounds]
        return DateIntent(recency=self.recency, boost=[*spans, *(s for s in self.boost if s not in spans)], phrases=list(self.phrases))

    def describe(self) -> str:
        if self.date_from and self.date_to:
            return f"{self.date_from.isoformat()} to {self.date_to.isoformat()}" if self.date_from != self.date_to else self.date_from.isoformat()
        if self.date_from:
            return f"from {self.date_from.isoformat()}"
        if self.date_to:
            return f"until {self.date_to.isoformat()}"
        return ""


def _month_range(y: int, m: int) -> tuple[dt.date, dt.date]:
    return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])


def _pick_year(month: int, ref: dt.date, archive_months: set[tuple[int, int]] | None) -> int:
    y = ref.year if month <= ref.month else ref.year - 1
    if archive_months and (y, month) not in archive_months:
        earlier = sorted((yy for yy, mm in archive_months if mm == month and yy <= y), reverse=True)
        if earlier:
            return earlier[0]
    return y


def day_parts(text: str) -> tuple[int | None, int, int] | None:
    """A date expression naming one day ("October 7, 2023", "7th Oct", "2023-10-07") as (year, or None when it is
    not written; month; day); None for anything else (a month, a year)."""
    t = text.strip().lower().rstrip(".,?")
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", t)
    if m:
        return int(m[1]), int(m[2]), int(m[3])
    m = re.fullmatch(_MONTH_RE + r"\s+(\d{1,2})(?!\d)(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?", t)
    if m:
        return (int(m[3]) if m[3] else None), MONTHS[m[1]], int(m[2])
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_RE + r"(?:,?\s+(\d{4}))?", t)
    if m:
        return (int(m[3]) if m[3] else None), MONTHS[m[2]], int(m[1])
    return None


def _point(text: str, ref: dt.date, archive_months: set[tuple[int, int]] | None) -> tuple[dt.date, dt.date] | None:
    """A date expression as a (first day, last day) span."""
    t = text.strip().lower().rstrip(".,?")
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", t)
    if m:
        d = dt.date(int(m[1]), int(m[2]), int(m[3]))
        return d, d
    day = day_parts(t)
    if day is not None:
        year, mon, n = day
        y = year if year is not None else _pick_year(mon, ref, archive_months)
        d = dt.date(y, mon, min(n, calendar.monthrange(y, mon)[1]))
        return d, d
    m = re.fullmatch(_MONTH_RE + r"(?:,?\s+(\d{4}))?", t)
    if m:
        mon = MONTHS[m[1]]
        y = int(m[2]) if m[2] else _pick_year(mon, ref, archive_months)
        return _month_range(y, mon)
    m = re.fullmatch(r"(\d{4})", t)
    if m and 1900 < int(m[1]) < 2200:
        y = int(m[1])
        return dt.date(y, 1, 1), dt.date(y, 12, 31)
    return None


_DATE_EXPR = (
    r"(\d{4}-\d{2}-\d{2}|" + _MONTH_RE + r"\s+\d{1,2}(?!\d)(?:st|nd|rd|th)?(?:,?\s+\d{4})?|\d{1,2}(?:st|nd|rd|th)?\s+" + _MONTH_RE
    + r"(?:,?\s+\d{4})?|" + _MONTH_RE + r"(?:,?\s+\d{4})?|(?:19|20)\d{2})"
)
_DATE_RE = re.compile(r"\b" + _DATE_EXPR + r"\b", re.I)


def first_day(text: str, start: int = 0, end: int | None = None) -> tuple[int | None, int, int] | None:
    """The first date expression in ``text[start:end]`` that names one day, as ``day_parts`` reads it."""
    for m in _DATE_RE.finditer(text, start, len(text) if end is None else end):
        if (day := day_parts(m.group(1))) is not None:
            return day
    return None


# Words that read as dates but, capitalised inside a sentence, are part of a name ("Business Today",
# "USA Today", "Latest Stock Market News", "Last Week Tonight").
_NAME_WORDS = r"(Today|Yesterday|Latest|Newest|Recent|Recently|Current|Currently|Lately|Last|This|Past|Week|Month|Year)"


# Words that make a question about time: its order, its change, or when. "first" and "now" often are not,
# but a date kept that was not needed only costs a few prompt tokens.
_TIME_WORDS = re.compile(r"\b(?:before|after|earlier|later|prior|previous(?:ly)?|subsequent(?:ly)?|since|until|till|first|last|latest|"
                         r"newest|oldest|recent(?:ly)?|when|dated?|dates|days?|weeks?|months?|years?|yesterday|today|tonight|"
                         r"timeline|chronolog\w*|chang\w*|shift\w*|still|anymore|now|then|again|ago|(?:19|20)\d\d)\b", re.I)
# Month and weekday names, capitalised: "may" is more often a verb (and "Mayo", "Marcus" are names).
_CALENDAR_NAMES = re.compile(r"\b(?:" + "|".join(m.capitalize() for m in MONTHS) + r"|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day)\b")


def about_time(question: str) -> bool:
    """Does the question concern time (a date, an order, a change)? Only then does the model read each passage's
    date: a local model reads a date digit by digit, and every prompt token delays the answer."""
    return bool(_TIME_WORDS.search(question) or _CALENDAR_NAMES.search(question))


def _without_names(question: str, names: Iterable[str]) -> str:
    for name in sorted(names, key=len, reverse=True):
        if not re.fullmatch(_NAME_WORDS, name.strip(), re.I):  # an outlet called "Today" must not eat "today"
            question = re.sub(re.escape(name), " ", question, flags=re.I)
    return re.sub(r"(?<=[^\s.?!]) +" + _NAME_WORDS + r"\b", " ·", question)


def resolve(question: str, reference: dt.date | None = None, archive_months: set[tuple[int, int]] | None = None,
            names: Iterable[str] = ()) -> DateIntent:
    """``names``: outlet names etc. to ignore, since they may hold date words ("Business Today")."""
    ref = reference or dt.date.today()
    q = _without_names(question, names).lower()
    intent = DateIntent()
    # "Recently", "currently" describe ("recently removed from OpenAI's board"); only these ask for the newest.
    if re.search(r"\b(latest|most recent|newest)\b", q):
        intent.recency = True
        intent.phrases.append("latest")

    def setr(a: dt.date | None, b: dt.date | None, phrase: str) -> None:
        intent.date_from = a if a is not None else intent.date_from
        intent.date_to = b if b is not None else intent.date_to
        intent.phrases.append(phrase)

    rel = [
        (r"\byesterday\b", lambda: (ref - dt.timedelta(days=1), ref - dt.timedelta(days=1))),
        (r"\btoday\b", lambda: (ref, ref)),
        (r"\b(this|past) week\b", lambda: (ref - dt.timedelta(days=ref.weekday()), ref)),
        (r"\blast week\b", lambda: (ref - dt.timedelta(days=ref.weekday() + 7), ref - dt.timedelta(days=ref.weekday() + 1))),
        (r"\b(past|last) (\d+|few|couple of) days\b", None),
        (r"\bthis month\b", lambda: (ref.replace(day=1), ref)),
        (r"\blast month\b", lambda: _month_range(*(((ref.year - 1, 12) if ref.month == 1 else (ref.year, ref.month - 1))))),
        (r"\bthis year\b", lambda: (dt.date(ref.year, 1, 1), ref)),
        (r"\blast year\b", lambda: (dt.date(ref.year - 1, 1, 1), dt.date(ref.year - 1, 12, 31))),
    ]
    for pat, fn in rel:
        m = re.search(pat, q)
        if not m:
            continue
        if fn is None:
            n = {"few": 3, "couple of": 2}.get(m.group(2)) or int(m.group(2))
            setr(ref - dt.timedelta(days=n), ref, m.group(0))
        else:
            a, b = fn()
            setr(a, b, m.group(0))
        intent.descriptive = q[m.end():m.end() + 2] in ("'s", "’s")
        return intent

    # "since/after X", "before/until X", "between X and Y", "from X to Y", "in/on/during X"
    m = re.search(r"\bbetween\s+" + _DATE_EXPR + r"\s+and\s+" + _DATE_EXPR, q)
    if m:
        a = _point(m.group(1), ref, archive_months)
        b = _point(q[m.start():m.end()].split(" and ", 1)[1], ref, archive_months)
        if a and b:
            setr(a[0], b[1], m.group(0))
            return intent
    taken: list[tuple[int, int]] = []  # where the bounds were read: not read again as points
    for kw, side in (("since", "from"), ("after", "after"), ("from", "from"), ("before", "before"), ("until", "to"), ("till", "to"), ("by", "to")):
        for m in re.finditer(rf"\b{kw}\s+(?:the\s+)?" + _DATE_EXPR + r"\b", q):
            span = _point(m.group(1), ref, archive_months)
            if not span:
                continue
            # A day named as a bound is included: articles are dated by day, without the hour, and a report
            # "after 6 November" in one time zone may carry 6 November in another.
            day = span[0] == span[1]
            if side == "from":
                intent.bounds.append((span[0], None))
            elif side == "after":
                intent.bounds.append((span[0] if day else span[1] + dt.timedelta(days=1), None))
            elif side == "before":
                intent.bounds.append((None, span[1] if day else span[0] - dt.timedelta(days=1)))
            else:
                intent.bounds.append((None, span[1]))
            intent.phrases.append(m.group(0))
            taken.append(m.span())
    points = []
    for m in re.finditer(r"\b(?:in|on|during|of|from|dated)\s+(?:early\s+|late\s+|mid-?)?" + _DATE_EXPR + r"\b", q):
        span = _point(m.group(1), ref, archive_months)
        if span and not any(a < m.end() and m.start() < b for a, b in taken):
            points.append(span)
            intent.phrases.append(m.group(0))
    intent.boost.extend(points)
    lows = [a for a, _ in intent.bounds if a]
    highs = [b for _, b in intent.bounds if b]
    if intent.bounds and (points or len(lows) > 1 or len(highs) > 1):
        # Several dates ("the report after 6 November ... its earlier report on 1 November") each describe one
        # report, not one range for the whole question: each ranks its articles higher, none filters.
        return intent.as_preferences()
    intent.date_from = lows[0] if lows else None
    intent.date_to = highs[0] if highs else None
    return intent
