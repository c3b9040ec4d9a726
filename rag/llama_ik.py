"""The bundled GGUF run by ik_llama.cpp (the ``ik-llama-cpp-python`` wheel), behind the request interface Byline uses
of xllamacpp's server: ``handle_chat_completions(req, callback=None)`` with OpenAI-style replies and llama.cpp's
``timings``.

Why a second runtime: ik_llama.cpp's CPU kernels read a prompt faster than mainline llama.cpp's on the same
AVX2 CPU (tests/bench/RESULTS.md), and on 2 cores reading the prompt is most of the wait for the first words.
Its Python package is thin ctypes bindings, so decoding, the prompt cache and sampling are done here:

- a prompt cache as llama.cpp server's (its ``cache_prompt`` and prompt cache in RAM): the KV cache holds one
  sequence, the last request's; before a request overwrites a part of it, that sequence's state is saved in RAM,
  and a request starts from whichever (the KV cache or a saved state) shares the longest prefix with it. So a
  follow-up prompt that repeats the passages reads only what is new, even after a per-claim prompt came between,
  and the next question reuses the instructions of the last;
- greedy decoding at temperature 0 (llama.cpp's default sampler chain reduces to the same argmax), sampling from the
  40 likeliest tokens otherwise. Greedy replies are drafted from their prompt (prompt-lookup decoding): answers
  quote their passages, and a quoted stretch is checked several tokens per decode;
- log-probabilities are the softmax of the raw logits, as llama.cpp's ``top_logprobs`` reports them.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# What the wheel is built for (no AVX-512 instructions in it); without these it would die of SIGILL.
REQUIRED_FLAGS = frozenset({"avx2", "fma", "f16c"})
# Its flash attention (faster) asserts on longer prompts without AVX-VNNI (the package's own note, ik_llama_cpp/llama.py).
_FA_FLAG = "avx_vnni"
# One sequence, not several side by side: its flash attention reads other sequences' cells (a claim prompt's verdict
# changed when a short prompt was cached beside it), and without it prompts read slower as the cache fills.
# States kept in RAM (a question's short prompt, its per-claim prompts, a chat's rewrite prompt), at most this many
# and this many bytes (~28 KB a token: a 500-token prompt is 14 MB).
SAVED = 8
SAVED_BYTES = 256 << 20
# A request that would overwrite fewer tokens than this saves nothing (a reply's own tail is not worth keeping).
SAVE_MIN = 32
# Prompt-lookup drafts: the last DRAFT_NGRAM..2 tokens looked up, DRAFT_MIN..DRAFT_MAX tokens drafted after them.
DRAFT_NGRAM = 4
DRAFT_MIN = 2
DRAFT_MAX = 8


def available(flags: frozenset[str]) -> bool:
    """Whether ik_llama.cpp is installed and this CPU runs its wheel, without loading its 26 MB library."""
    import importlib.util

    return importlib.util.find_spec("ik_llama_cpp") is not None and REQUIRED_FLAGS <= flags


def version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ik-llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def _bind(lib: Any, name: str, argtypes: list[Any], restype: Any) -> Any:
    func = getattr(lib, name)
    func.argtypes, func.restype = argtypes, restype
    return func


_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@_LOG_CB
def _log(level: int, text: bytes | None, _user: Any) -> None:
    # The library logs every tensor it loads; that belongs at debug level, not on a user's terminal.
    if text and logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", text.decode("utf-8", "replace").rstrip())


class _Api:
    """The C functions used here: the package's own bindings plus the few it does not declare."""

    def __init__(self) -> None:
        from ik_llama_cpp import _ctypes_api as c

        self.c = c
        lib = c._lib
        self.kv_seq_rm = _bind(lib, "llama_kv_cache_seq_rm", [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32], ctypes.c_bool)
        u8p = ctypes.POINTER(ctypes.c_uint8)
        self.state_size = _bind(lib, "llama_state_seq_get_size", [ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint32], ctypes.c_size_t)
        self.state_get = _bind(lib, "llama_state_seq_get_data", [ctypes.c_void_p, u8p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32], ctypes.c_size_t)
        self.state_set = _bind(lib, "llama_state_seq_set_data", [ctypes.c_void_p, u8p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32], ctypes.c_size_t)
        self.meta_str = _bind(lib, "llama_model_meta_val_str", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int32)
        self.n_vocab = _bind(lib, "llama_n_vocab", [ctypes.c_void_p], ctypes.c_int32)
        _bind(lib, "llama_log_set", [_LOG_CB, ctypes.c_void_p], None)(_log, None)


def render_chat(template: str, messages: Sequence[dict[str, str]]) -> str:
    """The model's own chat template (from its GGUF) applied as Hugging Face and llama.cpp apply it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=list(messages), add_generation_prompt=True)


def _error(message: str, kind: str = "invalid_request_error", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message, "type": kind, **extra}}


class _NgramIndex:
    """A reply's tokens so far (its prompt first), and where each run of 2 to DRAFT_NGRAM of them last ended, so
    that what followed the reply's last few tokens earlier can be drafted."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens = list(tokens)
        self._ends: dict[tuple[int, ...], int] = {}
        self._noted = 0  # runs ending at positions up to this one are in _ends

    def add(self, token: int) -> None:
        self.tokens.append(token)

    def draft(self, room: int) -> list[int]:
        """Up to ``room`` tokens that followed the longest earlier run equal to the tokens' end (none: [])."""
        toks, end = self.tokens, len(self.tokens)
        while self._noted < end - 1:  # not the run ending here: that is the one looked up
            self._noted += 1
            for n in range(2, min(DRAFT_NGRAM, self._noted) + 1):
                self._ends[tuple(toks[self._noted - n : self._noted])] = self._noted
        for n in range(DRAFT_NGRAM, 1, -1):
            at = self._ends.get(tuple(toks[end - n :]))
            if at is not None:
                return toks[at : min(at + room, end)]
        return []


class IkServer:
    """One loaded model and context; requests are serialised (one sequence, one KV cache)."""

    def __init__(self, model_path: str, n_ctx: int, n_threads: int, flags: frozenset[str]) -> None:
        self.api = api = _Api()
        c = api.c
        c.llama_backend_init()
        mp = c.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.repack_tensors = True  # weights laid out for its row-interleaved kernels: a faster prompt read
        self._model = c.llama_model_load_from_file(model_path.encode(), mp)
        if not self._model:
            raise RuntimeError(f"ik_llama.cpp could not load {model_path}")
        cp = c.llama_context_default_params()
        cp.n_ctx = cp.n_batch = n_ctx
        cp.n_threads = cp.n_threads_batch = n_threads
        cp.flash_attn = _FA_FLAG in flags
        self._ctx = c.llama_init_from_model(self._model, cp)
        if not self._ctx:
            c.llama_free_model(self._model)
            raise RuntimeError(f"ik_llama.cpp could not make a context of {n_ctx} tokens")
        self.n_ctx = n_ctx
        self.n_vocab = api.n_vocab(self._model)
        self._batch = c.llama_batch_init(n_ctx, 0, 1)
        self._cached: list[int] = []  # the tokens whose keys and values the KV cache holds, from position 0
        self._saved: list[tuple[list[int], ctypes.Array[ctypes.c_uint8]]] = []  # (tokens, state), oldest first
        self._lock = threading.RLock()
        self._pieces: dict[int, bytes] = {}
        buf = ctypes.create_string_buffer(1 << 16)
        n = api.meta_str(self._model, b"tokenizer.chat_template", buf, len(buf))
        if n <= 0:
            raise RuntimeError(f"{model_path} has no chat template")
        self.template = buf.value.decode("utf-8")

    # --- tokens -------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        c, raw = self.api.c, text.encode("utf-8")
        n = abs(c.llama_tokenize(self._model, raw, len(raw), None, 0, True, True))
        buf = (c.llama_token * n)()
        return list(buf[: c.llama_tokenize(self._model, raw, len(raw), buf, n, True, True)])

    def piece(self, token: int) -> bytes:
        got = self._pieces.get(token)
        if got is None:
            buf = ctypes.create_string_buffer(256)
            n = self.api.c.llama_token_to_piece(self._model, token, buf, len(buf), 0, False)
            got = self._pieces[token] = buf.raw[: max(n, 0)]
        return got

    # --- decoding -----------------------------------------------------------------------------
    def _decode(self, tokens: Sequence[int], every: bool = False) -> None:
        """Append ``tokens`` to the sequence in the KV cache; logits for the last one only, or for ``every`` one."""
        start, b = len(self._cached), self._batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, start + i, 1
            b.seq_id[i][0] = 0
            b.logits[i] = every or i == len(tokens) - 1
        rc = self.api.c.llama_decode(self._ctx, b)
        if rc != 0:
            self._truncate(start)
            raise RuntimeError(f"llama_decode failed with code {rc}")
        self._cached.extend(tokens)

    def _truncate(self, keep: int) -> None:
        self.api.kv_seq_rm(self._ctx, 0, keep, -1)
        del self._cached[keep:]

    def _save(self) -> None:
        """Keep the sequence's state in RAM (saved states it extends hold nothing more, and are dropped)."""
        cached = self._cached
        if any(t == cached for t, _ in self._saved):
            return
        self._saved = [(t, st) for t, st in self._saved if cached[: len(t)] != t]
        size = self.api.state_size(self._ctx, 0, 0)
        state = (ctypes.c_uint8 * size)()
        if self.api.state_get(self._ctx, state, size, 0, 0) == size:
            self._saved = [*self._saved, (list(cached), state)][-SAVED:]
        while sum(len(st) for _, st in self._saved) > SAVED_BYTES:
            self._saved.pop(0)

    def _start(self, prompt: list[int]) -> int:
        """Put the cached prefix this prompt shares longest in the KV cache; its length (tokens not to read)."""

        def shared(tokens: list[int]) -> int:
            n = 0
            for a, b in zip(tokens, prompt):
                if a != b:
                    break
                n += 1
            return n

        here = shared(self._cached)
        lengths = [shared(tokens) for tokens, _ in self._saved]
        best = max(range(len(lengths)), key=lengths.__getitem__, default=None)
        if best is not None and lengths[best] > here:
            tokens, state = self._saved.pop(best)
            if len(self._cached) - here >= SAVE_MIN:
                self._save()
            if self.api.state_set(self._ctx, state, len(state), 0, 0):
                self._cached, here = list(tokens), lengths[best]
                self._saved.append((tokens, state))
            else:  # could not be restored: start from nothing
                self._truncate(0)
                here = 0
        reuse = min(here, len(prompt) - 1)  # the last prompt token is read again for its logits
        if len(self._cached) - reuse >= SAVE_MIN:
            self._save()
        self._truncate(reuse)
        return reuse

    def _raw_logits(self, i: int = -1) -> np.ndarray:
        """The logits of the last decode's ``i``-th token (a view, valid until the next decode)."""
        return np.ctypeslib.as_array(self.api.c.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,))

    # --- the tokens of a reply ----------------------------------------------------------------
    def _sampled(self, temperature: float, rng: np.random.Generator, top_k: int, lp_content: list[dict[str, Any]]) -> Iterator[int]:
        """One token per decode: sampled, or greedy with log-probabilities (recorded in ``lp_content``)."""
        while True:
            logits = self._raw_logits().astype(np.float64)
            tok = self._choose(logits, temperature, rng)
            if top_k:
                logprobs = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
                lp_content.append(self._lp_entry(tok, float(logprobs[tok])) | {"top_logprobs": self._top_logprobs(logprobs, top_k)})
            yield tok
            if len(self._cached) + 1 >= self.n_ctx:
                return
            self._decode([tok])

    def _greedy(self, max_tokens: int, stats: dict[str, int]) -> Iterator[int]:
        """Greedy tokens, several per decode where the reply repeats its prompt (prompt-lookup decoding).

        Answers quote their passages: after each token, the words that followed its last few tokens where they
        last occurred are decoded with it as a draft, and the draft's tokens that the model itself would have chosen
        next (the argmax at each position) are kept. The output is the argmax at every step, as without drafts, up to
        the rounding of a batched decode (which can flip a near tie); a batch of several tokens costs far less than
        decoding them one by one (RESULTS.md), so a quote comes out several times faster."""
        index = _NgramIndex(self._cached)
        tok = int(np.argmax(self._raw_logits()))
        made, size = 1, DRAFT_MAX
        while True:
            yield tok
            start = len(self._cached)
            room = min(max_tokens - made, self.n_ctx - start - 2, size)
            if room < 0:
                return
            index.add(tok)
            draft = index.draft(room) if room >= DRAFT_MIN else []
            self._decode([tok, *draft], every=bool(draft))
            if not draft:
                tok, made = int(np.argmax(self._raw_logits())), made + 1
                continue
            picks = [int(np.argmax(self._raw_logits(i))) for i in range(len(draft) + 1)]
            kept = 0
            while kept < len(draft) and picks[kept] == draft[kept]:
                kept += 1
            stats["drafted"] += len(draft)
            stats["accepted"] += kept
            if kept < len(draft):
                self._truncate(start + 1 + kept)
            # A draft the model mostly rejects costs more than it saves: the next is shorter, a kept one longer.
            size = min(DRAFT_MAX, size + 2) if kept == len(draft) else max(DRAFT_MIN, kept + 1)
            for t in draft[:kept]:
                index.add(t)
                yield t
            tok, made = picks[kept], made + kept + 1

    def _top_logprobs(self, logprobs: np.ndarray, k: int) -> list[dict[str, Any]]:
        top = np.argpartition(-logprobs, k)[:k]
        top = top[np.argsort(-logprobs[top])]
        return [self._lp_entry(int(t), float(logprobs[t])) for t in top]

    def _lp_entry(self, token: int, logprob: float) -> dict[str, Any]:
        raw = self.piece(token)
        return {"id": token, "token": raw.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(raw)}

    # --- the request interface ----------------------------------------------------------------
    def handle_chat_completions(self, req: dict[str, Any], callback: Callable[[dict[str, Any]], Any] | None = None) -> Any:
        try:
            prompt = self.tokenize(render_chat(self.template, req["messages"]))
        except (KeyError, TypeError, ValueError) as exc:
            out = _error(f"bad request: {exc}")
        else:
            if len(prompt) >= self.n_ctx:
                out = _error(f"the request ({len(prompt)} tokens) exceeds the available context size ({self.n_ctx} tokens)",
                             "exceed_context_size_error", n_ctx=self.n_ctx, n_prompt_tokens=len(prompt))
            else:
                with self._lock:
                    out = self._complete(prompt, req, callback)
        if callback is not None and out is not None:  # an error: a stream reports it as its one chunk
            callback(out)
            return None
        return out

    def _complete(self, prompt: list[int], req: dict[str, Any], callback: Callable[[dict[str, Any]], Any] | None) -> Any:
        t0 = time.perf_counter()
        reuse = self._start(prompt)
        try:
            self._decode(prompt[reuse:])
        except RuntimeError as exc:
            return _error(str(exc), "server_error")
        t1 = time.perf_counter()

        max_tokens = int(req.get("max_tokens") or 200)
        temperature = float(req.get("temperature") or 0.0)
        top_k = int(req.get("top_logprobs") or 5) if req.get("logprobs") else 0
        stops = [s for s in (req.get("stop") or ()) if s]
        hold = max((len(s) for s in stops), default=1) - 1
        text, sent, finish, lp_content = "", 0, "length", []
        stats = {"drafted": 0, "accepted": 0}
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        n_out = 0
        if temperature <= 0 and not top_k:
            tokens = self._greedy(max_tokens, stats)
        else:
            tokens = self._sampled(temperature, np.random.default_rng(req.get("seed")), top_k, lp_content)
        try:
            for tok in tokens:
                if self.api.c.llama_token_is_eog(self._model, tok):
                    finish = "stop"
                    break
                n_out += 1
                text += utf8.decode(self.piece(tok))
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                    break
                if callback is not None and len(text) - hold > sent:
                    if callback(_chunk(text[sent : len(text) - hold])):
                        finish = "cancelled"
                        break
                    sent = len(text) - hold
                if n_out >= max_tokens:
                    break
        except RuntimeError as exc:
            return _error(str(exc), "server_error")
        t2 = time.perf_counter()
        timings = {
            "cache_n": reuse, "prompt_n": len(prompt) - reuse, "prompt_ms": (t1 - t0) * 1000,
            "prompt_per_second": (len(prompt) - reuse) / max(t1 - t0, 1e-9),
            "predicted_n": n_out, "predicted_ms": (t2 - t1) * 1000, "draft_n": stats["drafted"], "draft_n_accepted": stats["accepted"],
        }
        usage = {"prompt_tokens": len(prompt), "completion_tokens": n_out, "total_tokens": len(prompt) + n_out}
        if callback is not None:
            if finish == "cancelled" or (len(text) > sent and callback(_chunk(text[sent:]))):
                return None
            callback({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage, "timings": timings})
            return None
        return {
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text},
                         "logprobs": {"content": lp_content} if top_k else None}],
            "usage": usage, "timings": timings,
        }

    def _choose(self, logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
        if temperature <= 0:
            return int(np.argmax(logits))
        top = np.argpartition(-logits, 40)[:40]  # llama.cpp's default top-k
        p = np.exp((logits[top] - logits[top].max()) / temperature)
        return int(rng.choice(top, p=p / p.sum()))

    def close(self) -> None:
        c = self.api.c
        if self._ctx:
            c.llama_batch_free(self._batch)
            c.llama_free(self._ctx)
            c.llama_free_model(self._model)
            self._ctx = self._model = None


def _chunk(delta: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]}
