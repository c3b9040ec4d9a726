"""'minilm-onnx': the bundled all-MiniLM-L6-v2 as an int8 ONNX model run by ONNX Runtime (installed with Chroma).

The ONNX copy is made once, offline, into the model cache: ``torch.onnx.export`` of the model with
its mean pooling and L2 normalisation (what the folder's sentence-transformers modules do), then
``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per output channel, MatMul only and
not the feed-forward output projections: quantizing the embedding lookups too, or per tensor,
cost accuracy: cosine to torch fell to 0.92 on news chunks). The copy is checked against the
torch vectors of fixed texts before it replaces anything, and a sidecar marker remembers the
check (as ``rag.gguf`` does for the GGUF). When anything here fails, ``rag.embed.get_embedder``
falls back to the torch embedder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from pydantic import PrivateAttr

from rag.embedders import EmbedderIdentity, folder_fingerprint
from rag.embedders.base import Embedder
from rag.embedders.torch_st import SentenceTransformerEmbedding, bundled_minilm_path
from rag.errors import ModelError

if TYPE_CHECKING:
    from rag.config import Settings

log = logging.getLogger(__name__)

# Part of the fingerprint: change it whenever the export or quantisation changes what the vectors are.
RECIPE = ("onnx/v2: torch.onnx.export opset 17 (TorchScript), mean pooling + L2 norm in the graph; quantize_dynamic MatMul "
          "QInt8 per channel except the feed-forward output projections; one text per run")
OPSET = 17
MIN_COSINE = 0.98  # every verification text, int8 against torch
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Fixed texts the export is checked on: news prose of several lengths, figures, names, stray
# whitespace, and one past the model's 256-token window (truncation must match).
VERIFY_TEXTS = [
    "Hanwha Ocean signed a $2.8 billion deal with South Korea's navy for six frigates, the defence ministry said.",
    "Toyota reported record quarterly sales in Japan, helped by demand for hybrid cars.",
    "  Who is Ali al-Daffayi and what did he announce?  ",
    "The central bank held its benchmark rate at 5.25% on Wednesday, citing stubborn services inflation.",
    "Storm warning",
    "TechCrunch | 2023-10-02 | The startup raised $40M in a Series B round led by Sequoia to expand its AI chip design tools.",
    " ".join(["The city council met on Tuesday to debate the harbour budget, and residents spoke for hours about ferries, rents and flooding."] * 12),
]


@functools.cache
def onnx_fingerprint(source: Path) -> str:
    return folder_fingerprint(source, RECIPE)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # The exporter warns about TorchScript's deprecation and the quantizer logs advice through the root
    # logger; neither is actionable for a user, and the export runs once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


def _pipeline_config(source: Path) -> tuple[int, int]:
    """(max tokens, dimension) of a folder that is Transformer -> mean Pooling -> Normalize; ModelError otherwise."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((source / "modules.json").read_text())]
        pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
        max_len = int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{source} is not a sentence-transformers folder this exporter knows: {exc}") from exc
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    if modules != ["Transformer", "Pooling", "Normalize"] or not mean_only:
        raise ModelError(f"{source}: only Transformer + mean Pooling + Normalize models can be exported (got {modules}, {pooling})")
    return max_len, int(pooling["word_embedding_dimension"])


def _session(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.inter_op_num_threads = 1
    # Idle worker threads would otherwise spin between batches and take CPU from the store writer.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run(session: Any, tokenizer: Any, max_len: int, texts: list[str]) -> Any:
    """Vectors of ``texts``, each run on its own. Dynamic quantisation scales activations over the whole input
    tensor, so in a batch a text's vector would depend on its neighbours and their padding (cosine down
    to 0.98 between the two); alone it is the same every time, and without padding it is also faster
    (``tests/bench/bench_embed.py``)."""
    import numpy as np

    enc = tokenizer(texts, padding=False, truncation="longest_first", max_length=max_len)
    out = np.empty((len(texts), session.get_outputs()[0].shape[1]), dtype=np.float32)
    for i in range(len(texts)):
        out[i] = session.run(None, {k: np.asarray([enc[k][i]], dtype=np.int64) for k in INPUTS})[0][0]
    return out


def _tokenizer(source: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source), local_files_only=True)


# --- the cached, verified export -----------------------------------------------------------------
def _marker_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _marker_ok(model: Path, fingerprint: str) -> bool:
    """The file is the one that was verified: same fingerprint, size and sha256 (23 MB: hashing costs ~50 ms)."""
    try:
        marker = json.loads(_marker_path(model).read_text())
        return (isinstance(marker, dict) and marker.get("fingerprint") == fingerprint
                and marker.get("size") == model.stat().st_size and marker.get("sha256") == _sha256(model))
    except (OSError, ValueError):
        return False


def export_fp32(reference: SentenceTransformerEmbedding, path: Path) -> None:
    """``torch.onnx.export`` of ``reference``'s transformer with its mean pooling and L2 normalisation."""
    import torch

    hf = reference._model[0].auto_model.eval()  # noqa: SLF001 - the bare transformer is what gets exported

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    sample = reference.tokenizer(VERIFY_TEXTS[:2], padding=True, truncation="longest_first", max_length=reference.max_tokens, return_tensors="pt")
    axes = {k: {0: "batch", 1: "tokens"} for k in INPUTS} | {"embedding": {0: "batch"}}
    with _quiet(), torch.no_grad():
        torch.onnx.export(Pooled().eval(), tuple(sample[k] for k in INPUTS), str(path), input_names=list(INPUTS),
                          output_names=["embedding"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _ffn_out_projections(model: Path) -> list[str]:
    """The MatMuls that project each layer's feed-forward (GELU) output back: their inputs have the widest range,
    so int8 there costs the most accuracy (kept in fp32: mean cosine to torch 0.995 instead of 0.992, ~10% slower)."""
    import onnx

    names = [n.name for n in onnx.load(str(model), load_external_data=False).graph.node if n.op_type == "MatMul"]
    found = [n for n in names if "/output/dense/" in n and "/attention/" not in n]
    if not found:
        raise ModelError(f"no feed-forward output projections found in the export of {model} (MatMuls: {names[:6]}...)")
    return found


def export_int8(source: Path, dest: Path) -> dict[str, Any]:
    """Export ``source`` to an int8 ONNX file at ``dest``, verified against torch before it appears there.

    Work happens in a temp folder beside ``dest`` (same filesystem, so the final rename is atomic and a
    crash never leaves a half-written model under the real name). Returns the marker it wrote.
    """
    import numpy as np
    from onnxruntime.quantization import QuantType, quantize_dynamic

    max_len, _dim = _pipeline_config(source)
    t0 = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent))
    try:
        reference = SentenceTransformerEmbedding(str(source), spec="minilm")
        export_fp32(reference, work / "fp32.onnx")
        with _quiet():
            quantize_dynamic(str(work / "fp32.onnx"), str(work / "int8.onnx"), op_types_to_quantize=["MatMul"],
                             per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=_ffn_out_projections(work / "fp32.onnx"))
        got = _run(_session(work / "int8.onnx"), reference.tokenizer, max_len, VERIFY_TEXTS)
        want = reference.embed_array(VERIFY_TEXTS)
        cos = (got * want).sum(axis=1)
        if got.shape != want.shape or not np.all(cos >= MIN_COSINE):
            raise ModelError(f"the int8 ONNX export of {source} does not match torch: cosine {np.round(cos, 4).tolist()} "
                             f"(need >= {MIN_COSINE} for each of {len(VERIFY_TEXTS)} texts)")
        model = work / "int8.onnx"
        model.chmod(0o644)
        os.replace(model, dest)
        marker = {"fingerprint": onnx_fingerprint(source), "sha256": _sha256(dest), "size": dest.stat().st_size,
                  "source": str(source), "min_cosine": round(float(cos.min()), 5), "export_s": round(time.perf_counter() - t0, 2)}
        tmp = work / "marker.json"
        tmp.write_text(json.dumps(marker, indent=2))
        os.replace(tmp, _marker_path(dest))
        return marker
    finally:
        shutil.rmtree(work, ignore_errors=True)


_export_lock = threading.Lock()


def ensure_onnx(cache_dir: Path, source: Path) -> Path:
    """The verified int8 copy of ``source`` in ``cache_dir``, exported on first use (or when damaged)."""
    fp = onnx_fingerprint(source)
    dest = cache_dir / f"{source.name}-{fp[:12]}-int8.onnx"
    with _export_lock:
        if _marker_ok(dest, fp):
            return dest
        if dest.exists():
            log.warning("%s does not match its verification record: exporting it again", dest)
        for old in cache_dir.glob(dest.name + ".*.partial"):  # left by a killed export (only old ones: another process may be at work)
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        log.info("exporting the embedding model to int8 ONNX in %s (once)", dest)
        marker = export_int8(source, dest)
        log.info("ONNX export verified (min cosine to torch %.4f) in %.1f s", marker["min_cosine"], marker["export_s"])
        return dest


class OnnxEmbedding(Embedder):
    """A sentence-transformers folder's int8 ONNX copy, run by ONNX Runtime."""

    model_path: str = ""
    source_path: str = ""
    spec: str = ""
    _session: Any = PrivateAttr()
    _tok: Any = PrivateAttr()
    _max_len: int = PrivateAttr()
    _dim: int = PrivateAttr()

    def __init__(self, source: Path, model: Path, spec: str, embed_batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(model_name=model.name, embed_batch_size=embed_batch_size, model_path=str(model),
                         source_path=str(source), spec=spec, **kwargs)
        self._max_len, self._dim = _pipeline_config(source)
        try:
            self._session = _session(model)
            self._tok = _tokenizer(source)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
            _marker_path(model).unlink(missing_ok=True)  # so the next start exports it again
            raise ModelError(f"cannot load the ONNX embedder {model} (it will be exported again on the next start): {exc}") from exc

    @classmethod
    def class_name(cls) -> str:
        return "OnnxEmbedding"

    @property
    def tokenizer(self) -> Any:
        return self._tok

    @property
    def max_tokens(self) -> int:
        return self._max_len

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def identity(self) -> EmbedderIdentity:
        return EmbedderIdentity(self.spec, onnx_fingerprint(Path(self.source_path)), self._dim)

    def _encode(self, texts: list[str]) -> Any:
        return _run(self._session, self._tok, self._max_len, texts)


class MiniLMOnnx(OnnxEmbedding):
    """'minilm-onnx': the bundled all-MiniLM-L6-v2, int8, ONNX Runtime."""

    fallback: ClassVar[str | None] = "minilm"

    @classmethod
    def create(cls, arg: str | None, settings: "Settings") -> "MiniLMOnnx":
        source = bundled_minilm_path()
        return cls(source, ensure_onnx(settings.resolved_model_cache / "onnx", source), "minilm-onnx", embed_batch_size=settings.embed_batch_size)
