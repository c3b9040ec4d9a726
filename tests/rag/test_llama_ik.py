"""ik_llama.cpp behind the request interface of xllamacpp's server: the real bundled model (slow) and the runtime choice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rag import llama_ik
from rag.errors import ModelError
from rag.llamacpp import choose_runtime, cpu_flags
from rag.prompts import CLAIM_USER, SHORT_SYSTEM

AVX2 = frozenset({"avx2", "fma", "f16c"})

PASSAGE = ("Seoul, 3 March 2025. Hanwha Ocean signed a shipbuilding deal with South Korea's navy worth $2.8 billion "
           "for six frigates, the defence ministry said. The first ship is due in 2028, and the navy said the "
           "frigates will replace ships built in the 1980s.")


def _short(question: str, task: str = "Reply with one word: Yes or No.") -> list[dict[str, str]]:
    return [{"role": "system", "content": SHORT_SYSTEM},
            {"role": "user", "content": f"Passages:\n[1] (Deal signed — Korea Herald)\n{PASSAGE}\n\nQuestion: {question}\n{task}\nAnswer:"}]


def _claim(claim: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": CLAIM_USER.format(passage=PASSAGE, claim=claim)}]


def _p_yes(reply: dict[str, Any]) -> float:
    """P(Yes) among Yes and No for the reply's first token, as rag.generators.chat.yes_probability reads it."""
    tops = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    p = {t["token"]: math.exp(t["logprob"]) for t in tops if t["token"] in ("Yes", "No")}
    assert p.keys() == {"Yes", "No"}, tops
    return p["Yes"] / (p["Yes"] + p["No"])


def _ask(server: Any, messages: list[dict[str, str]], **kw: Any) -> dict[str, Any]:
    reply = server.handle_chat_completions({"messages": messages, "max_tokens": 40, "temperature": 0, **kw})
    assert "error" not in reply, reply
    return reply


@pytest.fixture(scope="module")
def ik_server(local_gguf: Path) -> Any:
    if not llama_ik.available(cpu_flags()):
        pytest.skip("ik_llama.cpp is not installed or this CPU lacks AVX2")
    server = llama_ik.IkServer(str(local_gguf), 2048, 1, cpu_flags())
    yield server
    server.close()


def test_auto_takes_ik_where_its_wheel_runs_and_xllamacpp_elsewhere() -> None:
    installed = llama_ik.available(cpu_flags() | AVX2)
    assert choose_runtime("auto", AVX2) == ("ik" if installed else "xllamacpp")
    assert choose_runtime("auto", frozenset({"sse2", "avx"})) == "xllamacpp"  # its wheel would die of SIGILL here
    assert choose_runtime("ik", frozenset()) == "ik" and choose_runtime("xllamacpp", AVX2) == "xllamacpp"
    with pytest.raises(ModelError, match="'fast'"):
        choose_runtime("fast")


@pytest.mark.slow
def test_the_chat_template_is_the_models_own(ik_server: Any) -> None:
    text = llama_ik.render_chat(ik_server.template, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    # Without a system message the template adds Qwen's own, as llama.cpp's server does.
    assert "You are Qwen" in llama_ik.render_chat(ik_server.template, [{"role": "user", "content": "U"}])


@pytest.mark.slow
def test_ik_reads_the_same_prompt_and_gives_the_same_reply_as_xllamacpp(ik_server: Any, local_gguf: Path) -> None:
    from rag.llamacpp import _load_server

    x = _load_server(str(local_gguf), 2048, 1, "xllamacpp")
    for messages, kw in ((_short("How much was the deal worth?", "Reply with the answer only."), {}),
                         (_claim("the deal is worth $2.8 billion"), {"logprobs": True, "top_logprobs": 5, "max_tokens": 1})):
        a, b = _ask(ik_server, messages, **kw), _ask(x, messages, **kw)
        assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
        if kw:  # the verdict's probability, which decides yes/no answers, agrees to rounding
            assert abs(_p_yes(a) - _p_yes(b)) < 0.02, (_p_yes(a), _p_yes(b))


@pytest.mark.slow
def test_a_follow_up_reads_only_what_is_new_even_after_another_prompt_came_between(ik_server: Any) -> None:
    first = _short("Did the navy order six frigates?")
    fresh = _ask(ik_server, _claim("the first ship is due in 2028"), logprobs=True, top_logprobs=5, max_tokens=1)
    _ask(ik_server, first, max_tokens=1)
    between = _ask(ik_server, _claim("the first ship is due in 2028"), logprobs=True, top_logprobs=5, max_tokens=1)
    # The short prompt, saved and then restored around the claim prompt, must not change what the model reads.
    assert abs(_p_yes(fresh) - _p_yes(between)) < 0.005, (_p_yes(fresh), _p_yes(between))
    follow = first[:1] + [{"role": "user", "content": first[1]["content"].replace("Reply with one word: Yes or No.", "Write one sentence.")}]
    reply = _ask(ik_server, follow)
    t = reply["timings"]
    shared = len(ik_server.tokenize(llama_ik.render_chat(ik_server.template, first).split("Reply with one word")[0]))
    assert t["cache_n"] >= shared - 1 and t["prompt_n"] < 40, t
    assert "frigate" in reply["choices"][0]["message"]["content"].lower()


@pytest.mark.slow
def test_streams_stops_and_limits(ik_server: Any) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 30, comma separated."}]
    whole = _ask(ik_server, messages, max_tokens=30)["choices"][0]["message"]["content"]
    chunks: list[dict[str, Any]] = []
    assert ik_server.handle_chat_completions({"messages": messages, "max_tokens": 30, "stream": True}, lambda c: chunks.append(c)) is None
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert len(deltas) > 5 and "".join(deltas) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[-1]["timings"]["predicted_n"] == 30

    got: list[str] = []
    ik_server.handle_chat_completions({"messages": messages, "max_tokens": 30}, lambda c: got.append(c) or len(got) >= 3)
    assert len(got) == 3  # the consumer said stop after its third chunk: no more came

    stopped = _ask(ik_server, messages, max_tokens=30, stop=[", 5"])["choices"][0]
    assert stopped["message"]["content"] == "1, 2, 3, 4" and stopped["finish_reason"] == "stop"

    long = [{"role": "user", "content": "news " * 3000}]
    err = ik_server.handle_chat_completions({"messages": long, "max_tokens": 8})["error"]
    assert err["type"] == "exceed_context_size_error" and err["n_ctx"] == 2048
    streamed: list[dict[str, Any]] = []
    ik_server.handle_chat_completions({"messages": long, "max_tokens": 8}, streamed.append)
    assert [c["error"]["type"] for c in streamed] == ["exceed_context_size_error"]


@pytest.mark.slow
def test_prompts_restored_from_saved_states_answer_as_when_first_read(local_gguf: Path) -> None:
    small = llama_ik.IkServer(str(local_gguf), 512, 1, cpu_flags())
    try:
        claims = ["the deal is worth $2.8 billion", "the navy ordered submarines", "the first ship is due in 2028"]
        asked = [(_claim(c), c) for c in claims] + [(_short(f"Did the report say that {c}?"), c) for c in claims]
        first = [_p_yes(_ask(small, m, logprobs=True, top_logprobs=5, max_tokens=1)) for m, _ in asked]
        for i in reversed(range(len(asked))):
            again = _p_yes(_ask(small, asked[i][0], logprobs=True, top_logprobs=5, max_tokens=1))
            assert abs(first[i] - again) < 0.005, (asked[i][1], first[i], again)
    finally:
        small.close()


@pytest.mark.slow
def test_a_quoting_reply_is_drafted_from_its_prompt_and_is_the_same_as_token_by_token(ik_server: Any) -> None:
    messages = _short("What did the navy say about the frigates?", "Quote the passage's sentence that answers, word for word.")
    drafted = _ask(ik_server, messages, max_tokens=60)
    # With log-probabilities asked for, every token is decoded alone: the reply drafts must not change.
    plain = _ask(ik_server, messages, max_tokens=60, logprobs=True, top_logprobs=1)
    assert drafted["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert "replace ships built in the 1980s" in drafted["choices"][0]["message"]["content"]
    t = drafted["timings"]
    assert t["draft_n_accepted"] >= 10 and t["predicted_n"] == plain["timings"]["predicted_n"], t
    assert plain["timings"]["draft_n"] == 0


def test_drafts_follow_the_last_earlier_run_of_the_replys_last_tokens() -> None:
    index = llama_ik._NgramIndex([5, 1, 2, 3, 4, 9, 1, 2, 7, 8])
    index.add(1)
    assert index.draft(4) == []  # [8, 1] never came before
    index.add(2)
    assert index.draft(4) == [7, 8, 1, 2]  # [1, 2] last ended before 7; the longer [8, 1, 2] is new
    assert index.draft(1) == [7]
    index.add(3)
    assert index.draft(8) == [4, 9, 1, 2, 7, 8, 1, 2]  # [1, 2, 3] ended once, before 4; stops at the reply's end
