"""rag.records: the one JSON/JSONL record reader (ingest's per-item errors, the eval's strict files)."""

from __future__ import annotations

import json

import pytest

from rag.records import Record, RecordError, iter_records, read_records


def test_shapes_and_locations():
    assert list(iter_records('{"a": 1}', "f.json", lines=False)) == [Record("f.json", {"a": 1})]
    assert list(iter_records('{"items": [1, 2], "n": 2}', "f.json", lines=False)) == [Record("f.json[0]", 1), Record("f.json[1]", 2)]
    # only the caller's list keys unwrap
    assert list(iter_records('{"questions": [1]}', "f", lines=False, list_keys=("articles",))) == [Record("f", {"questions": [1]})]
    got = list(iter_records('{"a": 1}\n\n{bad\n[2]\n', "f.jsonl", lines=True))
    assert got[0] == Record("f.jsonl:1", {"a": 1}) and got[2] == Record("f.jsonl:4", [2])
    assert isinstance(got[1], RecordError) and got[1].where == "f.jsonl:3" and got[1].reason.startswith("invalid JSON line")


def test_format_told_from_the_text():
    assert [r.value for r in iter_records('[{"a": 1}]', "f")] == [{"a": 1}]
    assert [r.value for r in iter_records('{"a": 1}\n{"a": 2}\n', "f")] == [{"a": 1}, {"a": 2}]  # JSONL
    (err,) = iter_records("a,b\n1,2", "f.csv")
    assert isinstance(err, RecordError) and "not a JSON list or JSONL file" in err.reason


def test_read_records_is_strict(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(json.dumps({"q": 1}) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(json.JSONDecodeError):
        read_records(p)
    p.write_text("\ufeff" + json.dumps({"questions": [{"q": 1}]}), encoding="utf-8")
    assert read_records(p) == [{"q": 1}]
    p.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON list or JSONL file"):
        read_records(p)
