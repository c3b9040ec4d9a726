"""One reader for JSON and JSON Lines files of records (articles to ingest, questions to evaluate).

``iter_records`` never raises for bad input: it yields each record with where it came from, and a
``RecordError`` for what cannot be read (a broken line of a JSONL file is one error; the lines
around it are still read). ``read_records`` is the strict form: the first error raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

# A JSON object wrapping the list of records under one of these keys is unwrapped (first key found wins).
ARTICLE_LIST_KEYS = ("articles", "items", "data", "records", "results")
QUESTION_LIST_KEYS = ("questions", "queries", "data", "articles", "items")


@dataclass(frozen=True)
class Record:
    where: str  # "FILE" for a file holding one object, "FILE[i]" for a list item, "FILE:LINE" for a JSONL line
    value: Any  # a decoded JSON value (usually a dict; the caller decides what else is acceptable)


@dataclass(frozen=True)
class RecordError:
    where: str
    reason: str
    exc: ValueError | None = None  # the decoding error, when there was one


RecordItem = Union[Record, RecordError]


def iter_records(text: str, source: str, *, lines: bool | None = None,
                 list_keys: Sequence[str] = ARTICLE_LIST_KEYS) -> Iterator[RecordItem]:
    """Records of a JSON document (an object, a list, or an object wrapping a list under ``list_keys``)
    or of JSON Lines (one value per non-blank line).

    ``lines``: True for JSON Lines, False for one JSON document, None to tell from the text: a text
    starting with ``[`` is JSON; one starting with ``{`` is JSON when it parses as a whole, else
    JSON Lines; anything else is an error.
    """
    if lines is None:
        stripped = text.lstrip()
        if stripped.startswith("["):
            lines = False
        elif stripped.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                lines = True
            else:
                yield from _document_records(obj, source, list_keys)
                return
        else:
            yield RecordError(source, "not a JSON list or JSONL file")
            return
    if lines:
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            where = f"{source}:{n}"
            try:
                rec = json.loads(line)
            except ValueError as exc:
                yield RecordError(where, f"invalid JSON line: {exc}", exc)
                continue
            yield Record(where, rec)
        return
    try:
        obj = json.loads(text)
    except ValueError as exc:
        yield RecordError(source, f"invalid JSON: {exc}", exc)
        return
    yield from _document_records(obj, source, list_keys)


def _document_records(obj: Any, source: str, list_keys: Sequence[str]) -> Iterator[Record]:
    if isinstance(obj, dict):
        for key in list_keys:
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
    if isinstance(obj, list):
        for n, rec in enumerate(obj):
            yield Record(f"{source}[{n}]", rec)
    else:
        yield Record(source, obj)


def read_records(path: str | Path, *, list_keys: Sequence[str] = QUESTION_LIST_KEYS) -> list[Any]:
    """The records of a JSON or JSONL file (format told from the text); raises ValueError on the first
    unreadable part (a ``json.JSONDecodeError`` for broken JSON)."""
    p = Path(path)
    out: list[Any] = []
    for item in iter_records(p.read_text(encoding="utf-8-sig"), str(p), list_keys=list_keys):
        if isinstance(item, RecordError):
            raise item.exc if item.exc is not None else ValueError(f"{item.where}: {item.reason}")
        out.append(item.value)
    return out
