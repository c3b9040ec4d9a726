"""Small text utilities shared by retrieval, sentence selection and citation checks."""

from __future__ import annotations

import re

_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rep", "rev",
    "inc", "corp", "co", "ltd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "no", "vs", "etc", "u.s", "u.k", "u.n", "e.g", "i.e", "a.m", "p.m", "approx", "est", "dept", "fig",
}
_END = re.compile(r'[.!?…]+["”’)\]]*\s+')

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being it its this that these those
    there here what which who whom whose when where why how does do did done has have had having will would shall should can could may might
    must not no nor so than too very just also about into over under after before between during through up down out off again further
    once all any both each few more most other some such only own same i me my we our you your he him his she her they them their
    said says say according per via while whether yet because since until upon within without against among across toward towards
    article report reported reports news story""".split()
)
# Words that say what kind of answer is wanted, not what it is about: they need not appear in the evidence.
ANSWER_TYPE_WORDS = frozenset(
    """date day dates time year years month many much number amount level name named names kind type long old large big
    happen happened happens tell know thing things someone something place""".split()
)
_WORD = re.compile(r"[\w][\w'’\-]*", re.U)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences. Regex-based and deterministic; keeps abbreviations like 'U.S.' and 'Oct. 7' intact."""
    spans: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    # Paragraph breaks always end a sentence.
    for m in _END.finditer(text):
        end = m.end()
        seg = text[start : m.start() + 1]
        last = re.search(r"([\w.]+)[.!?…]*$", text[start : m.start() + 1])
        token = (last.group(1).lower().rstrip(".") if last else "")
        nxt = text[end : end + 1]
        if token in _ABBREV or (len(token) == 1 and token.isalpha()) or (nxt and nxt.islower()):
            continue
        if seg.strip():
            spans.extend(_split_paragraphs(text, start, m.end()))
        start = end
    if start < n and text[start:].strip():
        spans.extend(_split_paragraphs(text, start, n))
    return spans


def _split_paragraphs(text: str, a: int, b: int) -> list[tuple[int, int]]:
    out = []
    pos = a
    for m in re.finditer(r"\n\s*\n|\n(?=[\"“A-Z0-9])", text[a:b]):
        s, e = pos, a + m.start()
        if text[s:e].strip():
            out.append(_trim(text, s, e))
        pos = a + m.end()
    if text[pos:b].strip():
        out.append(_trim(text, pos, b))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def words(text: str) -> list[str]:
    return [w.lower().strip("'’-") for w in _WORD.findall(text)]


# Irregular past forms news questions ask with their present ("What did X tell the jury?" / "X told jurors").
_IRREGULAR = {
    "told": "tell", "said": "say", "gave": "give", "given": "give", "made": "make", "took": "take", "taken": "take",
    "won": "win", "lost": "lose", "found": "find", "bought": "buy", "sold": "sell", "paid": "pay", "met": "meet",
    "left": "leave", "began": "begin", "begun": "begin", "wrote": "write", "written": "write", "spoke": "speak",
    "spoken": "speak", "chose": "choose", "chosen": "choose", "ran": "run", "saw": "see", "seen": "see", "went": "go",
    "gone": "go", "came": "come", "knew": "know", "known": "know", "thought": "think", "brought": "bring", "held": "hold",
    "led": "lead", "fell": "fall", "fallen": "fall", "rose": "rise", "risen": "rise", "struck": "strike",
    "fought": "fight", "sent": "send", "spent": "spend", "built": "build", "drove": "drive", "driven": "drive",
    "grew": "grow", "grown": "grow", "threw": "throw", "thrown": "throw", "broke": "break", "broken": "break",
    "stole": "steal", "stolen": "steal", "became": "become", "got": "get", "kept": "keep", "felt": "feel",
    "heard": "hear", "taught": "teach", "caught": "catch", "sought": "seek", "withdrew": "withdraw", "shot": "shoot",
    "fled": "flee", "hid": "hide", "hidden": "hide", "forgave": "forgive", "swore": "swear", "sworn": "swear",
    "sank": "sink", "sunk": "sink", "froze": "freeze", "frozen": "freeze", "overtook": "overtake", "ate": "eat",
    "jurors": "jury", "juror": "jury",
}


def stem(w: str) -> str:
    """A light suffix stripper after irregular forms: 'militias'/'militia', 'announced'/'announce', 'told'/'tell'.

    Lighter than Snowball on purpose: 'mayoral' must not become 'mayor', or a question about a mayoral election
    finds its words in an article that only names the mayor.
    """
    w = _IRREGULAR.get(w, w)
    for suf in ("'s", "’s", "ies", "es", "s", "ing", "ed", "ly"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            w = w[: -len(suf)] + ("y" if suf == "ies" else "")
            break
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


def content_words(text: str) -> list[str]:
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


def numbers(text: str) -> set[str]:
    """Numbers as written (commas dropped), e.g. '2.8', '1991', '50'."""
    return {m.replace(",", "") for m in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def lexical_support(claim: str, evidence: str, ignore: frozenset[str] = frozenset()) -> float:
    """Share of the claim's content words that the evidence contains (0-1)."""
    cw = [w for w in content_words(claim) if w not in ignore]
    if not cw:
        return 0.0
    ev = set(content_words(evidence))
    return sum(1 for w in cw if w in ev) / len(cw)


def approx_tokens(text: str) -> int:
    """Rough LLM token count (~0.75 words per token) for budgeting without loading a tokenizer."""
    return int(len(text.split()) * 1.35) + 1


def date_words(iso: str) -> str:
    """'2024-06-12' -> '2024-06-12 June 2024 12', so 'in June 2024' or 'June 12' can match an article's date."""
    import datetime as dt

    try:
        d = dt.date.fromisoformat(iso)
    except ValueError:
        return ""
    return f"{iso} {d.strftime('%B')} {d.year} {d.day}"
