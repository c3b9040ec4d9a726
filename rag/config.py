"""The one settings object. Read from ``BYLINE_*`` environment variables or passed in explicitly.

Nothing in Byline reads a global: every entry point takes a ``Settings`` (or builds the default one).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError

# Offline switches that must be set before chromadb, onnxruntime, gradio or huggingface are imported.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "ORT_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}
for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)


def check_auth(auth: str) -> None:
    """Raise ConfigError unless ``auth`` is 'user:password' with both parts non-empty."""
    if ":" not in auth or auth.startswith(":") or auth.endswith(":"):
        raise ConfigError("auth must look like 'user:password'")


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("byline", appauthor=False))


class Settings(BaseSettings):
    """Every knob Byline has. Environment variables: ``BYLINE_<FIELD>`` (e.g. ``BYLINE_GENERATOR=extractive``)."""

    model_config = SettingsConfigDict(env_prefix="BYLINE_", extra="forbid", validate_assignment=True)

    # --- store -------------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=default_data_dir, description="Folder for Byline's own files (index, model cache, uploads).")
    chroma_path: Path | None = Field(default=None, description="Embedded Chroma folder; default <data_dir>/chroma.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL (http://host:port). When set, Byline uses chromadb.HttpClient instead of a local folder.")
    chroma_host: str | None = Field(default=None, description="Chroma server host (alternative to chroma_url).")
    chroma_port: int = Field(default=8000, ge=1, le=65535, description="Chroma server port, used with chroma_host.")
    chroma_token: str | None = Field(default=None, description="Bearer token for a Chroma server with token auth.")
    collection: str = Field(default="byline", min_length=3, max_length=63, description="Chroma collection holding the chunks.")
    keyword_log_keep: int = Field(default=2000, ge=10, le=1_000_000, description="Change records (one per write) kept in the store for keyword indexes to catch up from; a process further behind (e.g. one on another machine that was stopped) rebuilds its keyword index from the store instead.")

    # --- embedding and chunking --------------------------------------------------------------
    embedder: str = Field(default="auto", description="Embedding model, a name from rag.embedders.REGISTRY: 'auto' (the embedder the archive was made with; for a new archive 'minilm-bf16' where the CPU computes bfloat16 in hardware, else 'minilm'), 'minilm' (the bundled all-MiniLM-L6-v2, torch, float32), 'minilm-bf16' (the same model with bfloat16 weights: about 3x faster on CPUs with AMX or AVX512-BF16, emulated and slower elsewhere), 'minilm-onnx' (an int8 ONNX copy made once in the model cache; torch when it cannot be made), or 'sentence-transformers:/local/model/folder'. An archive's vectors come from one embedder: a different one re-embeds it at the next ingest or `byline reindex --embeddings`, and queries refuse a mismatch.")
    embed_batch_size: int = Field(default=32, ge=1, le=1024, description="Passages per embedding batch.")
    ingest_group_chunks: int = Field(default=2048, ge=1, le=100_000, description="Chunks embedded together and written to the store in one step during ingest: larger groups embed faster (batches cut from a longer length order pad less), smaller ones lose less work to an interruption.")
    chunk_size: int = Field(default=192, ge=32, le=2048, description="Chunk size in the embedder's own tokens (MiniLM reads 256; room is left for the title prefix).")
    chunk_overlap: int = Field(default=32, ge=0, le=512, description="Tokens shared by neighbouring chunks.")

    # --- retrieval ---------------------------------------------------------------------------
    candidates: int = Field(default=30, ge=1, le=500, description="Candidates fetched from each retriever (dense, BM25) before fusion.")
    top_k: int = Field(default=6, ge=1, le=50, description="Passages given to the generator and eligible for citation.")
    max_chunks_per_article: int = Field(default=2, ge=1, le=20, description="At most this many passages from one article in the context (multi-hop questions need several articles).")
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    reranker_path: Path | None = Field(default=None, description="Local folder of a sentence-transformers cross-encoder; off when unset (none ships offline).")
    min_dense_score: float = Field(default=0.25, ge=-1, le=1, description="Best cosine similarity below which (with no strong keyword match) the archive is taken not to hold the answer.")
    off_topic_gap: float = Field(default=0.25, ge=0, le=2, description="A passage whose cosine similarity to the question is this far below the best passage's, and that shares at most one of the question's words, is left out of the answer's context and sources (a named outlet's passages stay): in a small archive the top_k fill up with unrelated stories, which the model would read before its first word.")
    context_tokens: int = Field(default=420, ge=64, le=8000, description="Budget of passage tokens the generator sees; sentences that matter most are kept.")
    article_context_tokens: int = Field(default=240, ge=32, le=8000, description="Budget of passage tokens per article in the context (at most context_tokens in all): a question answered from one story needs that story's best sentences, not all of them, and every prompt token is read before the first word.")
    short_top_k: int = Field(default=4, ge=1, le=50, description="Passages the model reads when it only has to reply with a verdict or a name (plus one per outlet the question names).")
    yes_threshold: float = Field(default=0.65, gt=0, lt=1, description="A yes/no verdict is Yes when the model's probability of answering \"Yes\" (against \"No\") reaches this; models that give no probabilities are read as they reply. Small models lean to Yes, so above 0.5 corrects them (measured on the dev set: tests/bench/RESULTS.md).")
    short_context_tokens: int = Field(default=200, ge=32, le=8000, description="Budget of passage tokens for a verdict-or-name reply: its prompt is most of the wait for the answer.")
    reference_date: dt.date | None = Field(default=None, description="Date that 'last week', 'yesterday' etc. are resolved against; default today.")

    # --- generation --------------------------------------------------------------------------
    generator: str = Field(default="auto", description="'local' (Qwen2.5-Coder-1.5B run by ik_llama.cpp or xllamacpp), 'openai' (any OpenAI-compatible endpoint), 'extractive' (no LLM), or 'auto' (local when installed, else extractive); the names are those of rag.generators.REGISTRY.")
    openai_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1.")
    openai_model: str = Field(default="gpt-4o-mini", description="Model name sent to the OpenAI-compatible endpoint.")
    openai_api_key: str | None = Field(default=None, description="API key for the endpoint (falls back to OPENAI_API_KEY).")
    model_cache_dir: Path | None = Field(default=None, description="Where the joined GGUF and the ONNX copy of the embedder are kept; default <data_dir>/models.")
    llm_threads: int = Field(default=max(1, os.cpu_count() or 1), ge=1, le=256, description="CPU threads for the local model.")
    llm_runtime: Literal["auto", "ik", "xllamacpp"] = Field(default="auto", description="What runs the local model: 'ik' (ik_llama.cpp: reads prompts faster on AVX2 CPUs), 'xllamacpp' (mainline llama.cpp; the faster one when built from source for AVX-512, README: \"A faster local model\"), or 'auto' (xllamacpp when built for AVX-512, else ik where it runs, else xllamacpp).")
    llm_context: int = Field(default=4096, ge=512, le=32768, description="Context window of the local model in tokens.")
    max_new_tokens: int = Field(default=200, ge=8, le=4096, description="Longest answer the generator may write.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature (0 = deterministic).")
    min_support: float = Field(default=0.5, ge=0, le=1, description="Support score an answer sentence needs against the passage it cites to be kept.")
    max_question_chars: int = Field(default=2000, ge=10, description="Longer questions are cut to this length (with a note) before retrieval.")

    # --- when to refuse ----------------------------------------------------------------------
    min_keyword_overlap: float = Field(default=0.6, ge=0, le=1, description="Share of the question's words that one passage sentence must hold to count as a strong keyword match when no passage is close in meaning (min_dense_score).")
    min_key_phrase_coverage: float = Field(default=0.6, ge=0, le=1, description="Share of the question's names and figures that must appear in the retrieved passages, else Byline refuses before generating (on MultiHop-RAG 0.6 refuses 96% of the unanswerable questions and 4% of the others).")
    min_answer_coverage: float = Field(default=0.55, ge=0, le=1, description="Share of a short question's terms that a model's answer plus the passages it cites must contain, else the answer does not address the question and is withheld.")
    long_question_coverage: float = Field(default=0.4, ge=0, le=1, description="The coverage required instead of min_answer_coverage / extractive_min_coverage for questions of more than 8 content words, which restate facts in their own words.")
    extractive_min_coverage: float = Field(default=0.6, ge=0, le=1, description="The extractive generator answers only when the passages contain this share of the question's terms, or when one sentence is close enough in meaning (extractive_min_cosine).")
    extractive_min_cosine: float = Field(default=0.6, ge=-1, le=1, description="Cosine similarity between the question and a passage sentence at which the extractive generator answers even when the passages lack the question's terms (extractive_min_coverage).")

    # --- feed watching (byline watch) ----------------------------------------------------------
    watch_feeds: list[str] = Field(default_factory=list, description="Feed URLs that `byline chat` and `byline serve` poll in the background, besides the feeds watched before in this data folder (JSON list in BYLINE_WATCH_FEEDS).")
    watch_interval: float = Field(default=900, ge=1, le=7 * 86400, description="Seconds between polls of each feed by `byline watch` (its --every overrides it).")
    watch_max_backoff: float = Field(default=6 * 3600, ge=1, le=7 * 86400, description="Longest wait, in seconds, before polling a feed that keeps failing: the interval doubles with each failure in a row up to this (never below the interval).")

    # --- chat server -------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the chat binds; anything but loopback requires auth.")
    port: int = Field(default=7860, ge=0, le=65535, description="Port of the chat (0 = any free port).")
    auth: str | None = Field(default=None, description="'user:password' for the chat; required when host is not loopback.")

    # --- service API (byline serve) -----------------------------------------------------------
    api_requests_per_minute: int = Field(default=0, ge=0, le=1_000_000, description="Requests per minute each API key may make under /v1 and /mcp (/v1/health and /v1/models are free); on loopback, where no key is needed, each client address (behind a proxy on the same machine, the address it forwards). Over it: HTTP 429 with Retry-After. 0 = unlimited.")
    api_burst: int = Field(default=0, ge=0, le=1_000_000, description="Requests a key (or address) may make at once before api_requests_per_minute paces it: the size of its token bucket; 0 = a minute's worth.")

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, v: str) -> str:
        from rag.embedders import parse_spec

        try:
            parse_spec(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None  # pydantic reports ValueErrors with the field and value
        return v

    @field_validator("watch_feeds")
    @classmethod
    def _check_feeds(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"not a feed URL: {bad[0]!r} (use an http:// or https:// address)")
        return v

    @field_validator("generator")
    @classmethod
    def _check_generator(cls, v: str) -> str:
        from rag.generators import generator_names

        if v not in generator_names():
            raise ValueError(f"unknown generator {v!r}; use one of {', '.join(generator_names())}")
        return v

    @field_validator("chroma_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"chroma_url must start with http:// or https://, got {v!r}")
        return v

    @field_validator("auth")
    @classmethod
    def _check_auth(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                check_auth(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None  # pydantic reports ValueErrors with the field and value
        return v

    @model_validator(mode="after")
    def _check_overlap(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self

    # Derived paths -----------------------------------------------------------------------------
    @property
    def resolved_chroma_path(self) -> Path:
        return self.chroma_path or (self.data_dir / "chroma")

    @property
    def resolved_model_cache(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def uses_server(self) -> bool:
        return bool(self.chroma_url or self.chroma_host)

    def describe_store(self) -> str:
        if self.chroma_url:
            return f"Chroma server {self.chroma_url}"
        if self.chroma_host:
            return f"Chroma server http://{self.chroma_host}:{self.chroma_port}"
        return f"Chroma folder {self.resolved_chroma_path}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus overrides; a bad value raises ConfigError naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ())) or "settings"
            env = f"BYLINE_{loc.upper()}" if loc != "settings" else ""
            val = err.get("input")
            parts.append(f"{loc}{f' ({env})' if env else ''} = {val!r}: {err.get('msg')}")
        raise ConfigError("Bad setting: " + "; ".join(parts)) from None
