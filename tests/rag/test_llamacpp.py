"""The xllamacpp adapter: streaming plumbing with a fake server (fast) and the real bundled model (slow)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from rag import llamacpp
from rag.errors import GeneratorError
from rag.generators.chat import stream_chat, yes_probability
from rag.llamacpp import LocalLlamaCpp
from tests.rag.conftest import PASSAGES_PROMPT


@pytest.mark.slow
def test_local_answers_from_passages_and_streams(local_llm: LocalLlamaCpp) -> None:
    assert local_llm.metadata.is_chat_model
    assert local_llm.metadata.context_window == 4096
    deltas = list(stream_chat(local_llm, PASSAGES_PROMPT, max_tokens=40))
    text = "".join(deltas)
    assert len(deltas) > 1, deltas
    assert "2.8" in text, text


@pytest.mark.slow
def test_local_chat_complete_and_concurrent_requests(local_llm: LocalLlamaCpp) -> None:
    msg = [ChatMessage(role="user", content="Reply with just the word: yes")]
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append("".join(stream_chat(local_llm, msg, max_tokens=4)))
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
def test_local_yes_probability_separates_a_true_claim_from_a_false_one(local_llm: LocalLlamaCpp) -> None:
    def ask(claim: str) -> float | None:
        return yes_probability(local_llm, [
            ChatMessage(role="system", content="Reply with one word: Yes or No."),
            ChatMessage(role="user", content=f"Passage: The council approved the budget on Tuesday.\nDoes the passage say that {claim}?")])

    true, false = ask("the council approved the budget"), ask("the council rejected the budget")
    assert true is not None and false is not None and true > 0.5 > false, (true, false)


@pytest.mark.slow
def test_local_stream_abandoned_early_frees_the_model(local_llm: LocalLlamaCpp) -> None:
    it = stream_chat(local_llm, [ChatMessage(role="user", content="Count from 1 to 200, comma separated.")], max_tokens=400)
    next(it)
    it.close()  # a user who leaves mid-answer must not keep the model busy for 400 tokens
    t0 = time.perf_counter()
    out = "".join(stream_chat(local_llm, [ChatMessage(role="user", content="Reply with just: ok")], max_tokens=3))
    # Had the first run not been cancelled this would wait for its 400 tokens (minutes on 2 cores).
    assert out and time.perf_counter() - t0 < 30


@pytest.mark.slow
def test_local_prompt_too_long_is_a_generator_error(local_llm: LocalLlamaCpp) -> None:
    huge = [ChatMessage(role="user", content="news " * 5000)]
    with pytest.raises(GeneratorError, match="context"):
        list(stream_chat(local_llm, huge, max_tokens=8))


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


def _fake_local(server: _FakeServer) -> LocalLlamaCpp:
    llm = LocalLlamaCpp(model_path="/models/fake.gguf")
    llm._server = server
    return llm


def test_local_stream_plumbing_yields_deltas() -> None:
    llm = _fake_local(_FakeServer([{"choices": [{"delta": {"role": "assistant", "content": None}}]}, _delta("Hel"), _delta("lo")]))
    assert list(stream_chat(llm, [ChatMessage(role="user", content="hi")])) == ["Hel", "lo"]


def test_local_crash_mid_stream_is_generator_error() -> None:
    llm = _fake_local(_FakeServer([_delta("partial")], then_raise=RuntimeError("llama_decode failed")))
    got: list[str] = []
    with pytest.raises(GeneratorError) as ei:
        for d in stream_chat(llm, [ChatMessage(role="user", content="hi")]):
            got.append(d)
    assert got == ["partial"]
    assert "llama_decode failed" in str(ei.value) and "/models/fake.gguf" in str(ei.value)


def test_local_error_reply_is_generator_error() -> None:
    err = {"error": {"code": 400, "message": "request (9000 tokens) exceeds the available context size (4096 tokens)",
                     "type": "exceed_context_size_error", "n_ctx": 4096}}
    llm = _fake_local(_FakeServer([err]))
    with pytest.raises(GeneratorError, match="BYLINE_LLM_CONTEXT"):
        list(stream_chat(llm, [ChatMessage(role="user", content="hi")]))


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

    it = stream_chat(_fake_local(Endless()), [ChatMessage(role="user", content="hi")])
    assert next(it) == "x"
    it.close()
    assert Endless.stopped.wait(5)
    assert Endless.calls < 10_000
    # ...and the model lock is free again for the next chat session.
    assert llamacpp._generate_lock.acquire(timeout=5)
    llamacpp._generate_lock.release()


# What get_system_info() said for an xllamacpp built from its sdist on this machine's CPU (AMX, AVX-512).
NATIVE_AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
                   "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")


def test_only_a_build_with_amx_kernels_loads_without_the_weight_repack() -> None:
    import xllamacpp

    from rag.llamacpp import built_with

    assert built_with(NATIVE_AMX_INFO, "AMX_INT8")  # its AMX repack crashes with the bundled model
    assert not built_with(NATIVE_AMX_INFO.replace("AMX_INT8 = 1 | ", ""), "AMX_INT8")
    # The installed build reports its features in the form built_with reads ("NAME = 1 | ").
    assert "AVX2 = 1 | " in xllamacpp.get_system_info()


def test_a_cpu_with_avx512_running_the_avx2_wheel_is_told_of_the_faster_build(tmp_path) -> None:
    import xllamacpp

    from rag.llamacpp import build_info, cpu_flags, faster_build_hint

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_int8\n\nprocessor\t: 1\n")
    flags = cpu_flags(str(cpuinfo))
    assert {"avx2", "avx512f"} <= flags
    wheel_info = NATIVE_AMX_INFO.split("AVX512 = 1")[0]  # what an AVX2-only build reports
    assert "README" in faster_build_hint(wheel_info, flags)
    assert faster_build_hint(NATIVE_AMX_INFO, flags) is None  # already built for it
    assert faster_build_hint(wheel_info, flags - {"avx512f"}) is None  # nothing faster to build for
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()
    # This machine's own answer agrees with what the installed build and /proc/cpuinfo say.
    info = build_info()
    assert info["xllamacpp"] and "AVX2" in info["cpu_features"]
    assert (info["hint"] is not None) == ("avx512f" in cpu_flags() and "AVX512 = 1" not in xllamacpp.get_system_info())
