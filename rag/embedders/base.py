"""What every embedder shares: llama-index's ``BaseEmbedding`` interface, normalised vectors (cosine = dot),
batches cut by token length, a small cache for recurring sentences, and an identity for the store."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embedders import EmbedderIdentity


class Embedder(BaseEmbedding):
    """Subclasses set ``tokenizer`` (a Hugging Face tokenizer), ``max_tokens``, ``dimension``, ``identity``
    and implement ``_encode`` (one batch, already in token order, to a float32 (n, dim) array)."""

    # A registry name to use instead when this one cannot be loaded here (rag.embed.get_embedder warns once).
    fallback: ClassVar[str | None] = None
    _lock: Any = PrivateAttr()
    _sentence_cache: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._sentence_cache = {}

    @classmethod
    def create(cls, arg: str | None, settings: "Settings") -> "Embedder":  # pragma: no cover - interface
        """Build from the spec's argument (a folder for 'name:/folder' entries, else None)."""
        raise NotImplementedError

    @property
    def tokenizer(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def max_tokens(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def dimension(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def identity(self) -> "EmbedderIdentity":  # pragma: no cover - interface
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def tokenize(self, text: str) -> list[int]:
        """The model's own word pieces, without special tokens: chunk sizes are counted in these."""
        return self.tokenizer.encode(text, add_special_tokens=False, verbose=False)

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
        is encoded on its own. Sorting by characters (what ``SentenceTransformer.encode`` does) pads
        a batch to its longest member in tokens: on the news chunks of the ingest benchmark that is
        15% more tokens than the texts hold when 1,024 are sorted together (6% even when all 10,155
        are), against under 4% when batches are cut from the token order (``tests/bench/RESULTS.md``).
        The vectors are the same (to 1e-7); the extra tokenizer pass costs about 0.2 ms a text.
        """
        import numpy as np

        bs = batch_size or self.embed_batch_size
        items = list(texts)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        order = self._longest_first(items) if len(items) > bs else np.arange(len(items))
        for i in range(0, len(items), bs):
            idx = order[i : i + bs]
            with self._lock:  # on 2 cores concurrent encodes only thrash
                out[idx] = self._encode([items[k] for k in idx])
            if on_batch:
                on_batch(len(idx))
        return out

    def _longest_first(self, texts: list[str]) -> Any:
        """Indexes of ``texts`` by token count (as the model truncates it), longest first, ties in input order."""
        import numpy as np

        try:
            ids = self.tokenizer(texts, truncation=True, max_length=self.max_tokens, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
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
