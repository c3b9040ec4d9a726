"""The registry of embedders: the one list that settings, the loader and the store read.

Adding an embedder: a module under ``rag/embedders/`` with a class following ``base.Embedder``
(a ``create(arg, settings)`` class method and an ``identity``), and one line in ``REGISTRY``.
A name ending in ':' takes an argument (a folder): ``sentence-transformers:/path/to/model``.
Entries are imported only when used, so validating a setting is cheap.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.embedders.base import Embedder

# spec name -> "module:Class"
REGISTRY: dict[str, str] = {
    "minilm": "rag.embedders.torch_st:MiniLM",
    "minilm-onnx": "rag.embedders.onnx:MiniLMOnnx",
    "minilm-bf16": "rag.embedders.torch_st:MiniLMBf16",
    "sentence-transformers:": "rag.embedders.torch_st:SentenceTransformerFolder",
}

# An archive written before embedder identities were recorded was embedded by this one.
LEGACY = "minilm"
# 'auto': the embedder the archive was made with; for a new archive, preferred() (rag.embed.resolve_spec).
AUTO = "auto"


def preferred() -> str:
    """The embedder a new archive gets under 'auto': the bundled model in bfloat16 where the CPU computes it in
    hardware (about 3x the float32 speed, tests/bench/RESULTS.md), else in float32. The int8 ONNX copy
    measured no faster than float32 torch on a quiet machine, so it is never the choice."""
    from rag.embedders.torch_st import native_bf16

    return "minilm-bf16" if native_bf16() else "minilm"


def embedder_names(*, auto: bool = True) -> list[str]:
    """Every spec form ``BYLINE_EMBEDDER`` accepts ('name', or 'name:/folder' for entries that take one)."""
    return [AUTO] * auto + [n + "/path/to/model" if n.endswith(":") else n for n in REGISTRY]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """('minilm', None) or ('sentence-transformers:', '/path'); ConfigError for an unknown or malformed spec."""
    if (spec in REGISTRY and not spec.endswith(":")) or spec == AUTO:
        return spec, None
    name, sep, arg = spec.partition(":")
    if sep and name + ":" in REGISTRY and arg.strip():
        return name + ":", arg
    raise ConfigError(f"unknown embedder {spec!r}; use one of {', '.join(repr(n) for n in embedder_names())}")


def embedder_class(spec: str) -> "type[Embedder]":
    name, _ = parse_spec(spec)
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


@dataclass(frozen=True)
class EmbedderIdentity:
    """What a collection's vectors were made by. Two embedders are interchangeable when fingerprint and
    dimension agree (the name is for people: one model reached by two specs is still one model)."""

    name: str
    fingerprint: str
    dim: int

    def same_vectors(self, other: "EmbedderIdentity") -> bool:
        return self.fingerprint == other.fingerprint and self.dim == other.dim

    @property
    def tag(self) -> str:
        """Short form stored on each chunk a re-embedding has rewritten (so an interrupted run resumes)."""
        return f"{self.fingerprint[:16]}-{self.dim}"

    def describe(self) -> str:
        return f"{self.name!r} ({self.dim} dims, fingerprint {self.fingerprint[:12]})"

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "fingerprint": self.fingerprint, "dim": self.dim}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: Any) -> "EmbedderIdentity | None":
        try:
            d = json.loads(raw)
            return cls(str(d["name"]), str(d["fingerprint"]), int(d["dim"]))
        except (TypeError, ValueError, KeyError):
            return None


# Files that define what a sentence-transformers folder computes. Weights are identified by name and
# size, not hashed: hashing hundreds of MB on every start costs more than it protects against here.
_DEFINING_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                   "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def folder_fingerprint(path: str | Path, recipe: str = "") -> str:
    """sha256 over a model folder's defining files (their bytes) and weight files (name and size), plus ``recipe``:
    the same on every copy of the folder, different for another model or another way of running it."""
    root = Path(path)
    h = hashlib.sha256(recipe.encode())
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if p.name in _DEFINING_FILES:
            h.update(f"{rel}\0".encode() + p.read_bytes())
        elif p.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{rel}\0{p.stat().st_size}\0".encode())
    return h.hexdigest()
