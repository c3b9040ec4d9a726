"""The embedder registry, the bfloat16 and int8 ONNX forms of the bundled model, and one embedder per archive (re-embedding)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import Ingestor
from rag import embed
from rag.config import Settings, load_settings
from rag.embedders import REGISTRY, EmbedderIdentity, embedder_class, embedder_names, parse_spec, preferred
from rag.embedders.onnx import MIN_COSINE, MiniLMOnnx, _marker_path, ensure_onnx
from rag.embedders.torch_st import MiniLM, MiniLMBf16, SentenceTransformerFolder, bundled_minilm_path, native_bf16
from rag.errors import ConfigError
from rag.retrieve import Retriever
from rag.schema import ChunkMeta
from rag.store import Store
from tests.conftest import DATA_DIR, FIXTURES


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding the verified int8 export, made once for this module (the real export)."""
    cache = tmp_path_factory.mktemp("models")
    ensure_onnx(cache / "onnx", bundled_minilm_path())
    return cache


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache: Path) -> MiniLMOnnx:
    return MiniLMOnnx.create(None, Settings(data_dir=onnx_cache.parent / "unused", model_cache_dir=onnx_cache))


@pytest.fixture(scope="module")
def torch_minilm():
    """'minilm': float32 torch, what the ONNX copy falls back to and what an archive without a record was made by."""
    return embed.get_embedder(Settings(data_dir=Path("/nonexistent-unused"), embedder="minilm"))


def _stored(store: Store) -> tuple[list[str], np.ndarray, list[str]]:
    """(ids, vectors, the texts that were embedded) of every chunk, in id order."""
    got = store.collection.get(include=["embeddings", "metadatas", "documents"])
    order = np.argsort(got["ids"])
    texts = [ChunkMeta.from_metadata(got["metadatas"][i]).headed(got["documents"][i]) for i in order]
    return [got["ids"][i] for i in order], np.asarray(got["embeddings"], dtype=np.float32)[order], texts


# --- registry ---------------------------------------------------------------------------------------
def test_every_registered_name_is_a_valid_setting_and_loads_its_class() -> None:
    for name in embedder_names(auto=False):
        spec = name.replace("/path/to/model", str(bundled_minilm_path()))
        assert load_settings(embedder=spec).embedder == spec
        assert REGISTRY[parse_spec(spec)[0]].endswith(":" + embedder_class(spec).__name__)
    assert embedder_class("minilm") is MiniLM and embedder_class("minilm-onnx") is MiniLMOnnx
    assert embedder_class("minilm-bf16") is MiniLMBf16
    assert embedder_class("sentence-transformers:/x") is SentenceTransformerFolder


@pytest.mark.parametrize("bad", ["nope", "sentence-transformers:", "minilm:/x", "MiniLM"])
def test_an_unknown_embedder_setting_names_the_value_and_the_choices(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(embedder=bad)
    assert repr(bad) in str(err.value) and "'minilm-onnx'" in str(err.value) and "BYLINE_EMBEDDER" in str(err.value)


def test_one_model_reached_by_two_specs_has_the_same_vectors(embedder, torch_minilm) -> None:
    folder = embed.get_embedder(Settings(data_dir=Path("/nonexistent-unused"), embedder=f"sentence-transformers:{bundled_minilm_path()}"))
    assert embed.get_embedder(Settings(data_dir=Path("/nonexistent-unused"))) is embedder  # loaded once per process
    assert folder.identity.name != torch_minilm.identity.name
    assert folder.identity.same_vectors(torch_minilm.identity)
    assert EmbedderIdentity.from_json(embedder.identity.to_json()) == embedder.identity


# --- bfloat16 ---------------------------------------------------------------------------------------
def test_a_new_archive_gets_bfloat16_where_the_cpu_computes_it() -> None:
    assert preferred() == ("minilm-bf16" if native_bf16() else "minilm")


def test_bfloat16_vectors_are_the_float32_ones_to_within_a_thousandth_but_an_embedder_of_their_own(torch_minilm) -> None:
    bf16 = embed.get_embedder(Settings(data_dir=Path("/nonexistent-unused"), embedder="minilm-bf16"))
    texts = [p.read_text()[:1200] for p in sorted([*DATA_DIR.glob("*.md"), *(FIXTURES / "corpus").glob("*.md")])]
    texts += ["Who is Ali al-Daffayi?", "Hanwha Ocean"]  # queries are short
    got = bf16.embed_array(texts, batch_size=4)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # normalised in float32
    cos = (got * torch_minilm.embed_array(texts)).sum(axis=1)
    assert cos.min() >= 0.999, cos
    alone = np.stack([bf16.embed_array([t])[0] for t in texts])
    assert (alone * got).sum(axis=1).min() >= 0.9995  # batching moves a vector by rounding only
    assert bf16.identity.name == "minilm-bf16" and not bf16.identity.same_vectors(torch_minilm.identity)
    assert bf16.tokenize("Hanwha Ocean") == torch_minilm.tokenize("Hanwha Ocean") and bf16.dimension == torch_minilm.dimension


# --- the ONNX copy ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_onnx_export_is_verified_recorded_and_reused(onnx_cache: Path, onnx_embedder: MiniLMOnnx, embedder, caplog) -> None:
    model = Path(onnx_embedder.model_path)
    marker = json.loads(_marker_path(model).read_text())
    assert model.parent == onnx_cache / "onnx" and marker["min_cosine"] >= MIN_COSINE
    assert not list(model.parent.glob("*.partial"))
    # Texts it was not verified on: news chunks of the repo's sample article, as ingest embeds them.
    texts = [p.read_text()[:1200] for p in sorted([*DATA_DIR.glob("*.md"), *(FIXTURES / "corpus").glob("*.md")])]
    together = onnx_embedder.embed_array(texts, batch_size=4)
    cos = (together * embedder.embed_array(texts)).sum(axis=1)
    assert cos.min() >= MIN_COSINE, cos
    # A text's vector does not depend on what it is batched with (each runs alone: see rag.embedders.onnx._run).
    np.testing.assert_allclose(together, np.stack([onnx_embedder.embed_array([t])[0] for t in texts]), atol=1e-6)
    assert onnx_embedder.dimension == embedder.dimension and onnx_embedder.tokenize("Hanwha Ocean") == embedder.tokenize("Hanwha Ocean")
    # Later starts trust the record: no second export.
    mtime = model.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="rag.embedders.onnx"):
        assert ensure_onnx(onnx_cache / "onnx", bundled_minilm_path()) == model
    assert model.stat().st_mtime_ns == mtime and "exporting" not in caplog.text


@pytest.mark.slow
def test_a_corrupt_onnx_file_falls_back_to_torch_once_and_is_exported_again_next_start(onnx_cache: Path, tmp_path: Path, torch_minilm,
                                                                                       monkeypatch, caplog) -> None:
    cache = tmp_path / "models"
    (cache / "onnx").mkdir(parents=True)
    src = next((onnx_cache / "onnx").glob("*-int8.onnx"))
    bad = cache / "onnx" / src.name
    bad.write_bytes(b"not an onnx model" * 1000)
    # A record that matches the damaged bytes (as a copy made by another tool would have): only loading finds the damage.
    import hashlib

    marker = json.loads(_marker_path(src).read_text()) | {"sha256": hashlib.sha256(bad.read_bytes()).hexdigest(), "size": bad.stat().st_size}
    _marker_path(bad).write_text(json.dumps(marker))
    monkeypatch.setattr(embed, "_LOADED", {})  # a fresh process's loader
    s = Settings(data_dir=tmp_path / "byline", model_cache_dir=cache, embedder="minilm-onnx")
    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        got = embed.get_embedder(s)
        assert embed.get_embedder(s) is got
    assert got.identity == torch_minilm.identity  # what really makes the vectors: torch
    assert [r.levelname for r in caplog.records if r.name == "rag.embed"] == ["WARNING"]
    assert "minilm-onnx" in caplog.text and "using 'minilm' instead" in caplog.text
    assert not _marker_path(bad).exists()  # the next start exports it again


def test_an_unusable_model_cache_falls_back_to_torch(tmp_path: Path, torch_minilm, monkeypatch, caplog) -> None:
    (tmp_path / "models").write_text("a file where the cache folder should be")
    monkeypatch.setattr(embed, "_LOADED", {})
    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        got = embed.get_embedder(Settings(data_dir=tmp_path / "byline", model_cache_dir=tmp_path / "models", embedder="minilm-onnx"))
    assert got.identity == torch_minilm.identity and "using 'minilm' instead" in caplog.text


# --- one embedder per archive -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_changed_embedder_reembeds_the_archive_and_queries_check_it(settings: Settings, embedder, onnx_embedder, caplog) -> None:
    Ingestor(settings, embedder=embedder).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    store = Store(settings)
    assert store.embedder_state() == (embedder.identity, None)
    ids, before, texts = _stored(store)
    np.testing.assert_allclose(before, embedder.embed_array(texts), atol=1e-5)

    with pytest.raises(ConfigError) as err:  # a query with the other model fails fast, naming both and the fix
        Retriever(settings, store, onnx_embedder).retrieve("harbour")
    msg = str(err.value)
    assert repr(embedder.identity.name) in msg and "'minilm-onnx'" in msg and "byline reindex --embeddings" in msg

    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        rep = Ingestor(settings, store=store, embedder=onnx_embedder).ingest([str(DATA_DIR)])  # any ingest moves the archive
    assert rep.unchanged == 1 and f"re-embedding {len(ids)} of {len(ids)} chunks" in caplog.text
    ids2, after, texts2 = _stored(Store(settings))
    assert (ids2, texts2) == (ids, texts)
    np.testing.assert_allclose(after, onnx_embedder.embed_array(texts), atol=1e-5)
    assert store.embedder_state() == (onnx_embedder.identity, None)
    assert Retriever(settings, store, onnx_embedder).retrieve("harbour")
    with pytest.raises(ConfigError, match="BYLINE_EMBEDDER=minilm-onnx"):
        Retriever(settings, store, embedder).retrieve("harbour")
    assert embed.reembed(store, onnx_embedder) == 0  # idempotent


@pytest.mark.slow
def test_an_interrupted_reembedding_is_refused_by_queries_and_finished_by_the_next_run(settings: Settings, embedder, onnx_embedder) -> None:
    Ingestor(settings, embedder=embedder).ingest([str(DATA_DIR), str(FIXTURES / "corpus")])
    store = Store(settings)
    ids, _, texts = _stored(store)
    # What a run killed half-way leaves: the target marked pending, some chunks rewritten (and tagged), no new identity.
    target = onnx_embedder.identity
    store.begin_reembed(target)
    half = len(ids) // 2
    store.rewrite_vectors(ids[:half], onnx_embedder.embed_array(texts[:half]), target.tag)
    assert store.embedder_state() == (embedder.identity, target)
    for e in (embedder, onnx_embedder):
        with pytest.raises(ConfigError, match="part-way through re-embedding"):
            Retriever(settings, store, e).retrieve("harbour")

    done: list[tuple[int, int]] = []
    assert embed.reembed(store, onnx_embedder, progress=lambda n, total: done.append((n, total))) == len(ids) - half
    assert done[-1] == (len(ids), len(ids))
    _, vecs, _ = _stored(store)
    np.testing.assert_allclose(vecs, onnx_embedder.embed_array(texts), atol=1e-5)
    assert store.embedder_state() == (target, None)


def test_an_archive_without_a_recorded_embedder_is_minilm(settings: Settings, torch_minilm, monkeypatch) -> None:
    embedder = torch_minilm
    Ingestor(settings, embedder=embedder).ingest([str(DATA_DIR)])
    store = Store(settings)
    assert store.EMBEDDER in Store(settings).collection.metadata
    store.collection.modify(metadata={"byline": "chunks"})  # as an archive written before identities were recorded
    store.bump_version()
    recorded, pending = store.embedder_state()
    assert (recorded, pending) == (embedder.identity, None) and recorded.name == "minilm"
    assert Retriever(settings, store, embedder).retrieve("Iraq militias")  # keeps working, nothing re-embedded
    assert embed.adopt_embedder(store, embedder) == 0
    assert EmbedderIdentity.from_json(Store(settings).collection.metadata[store.EMBEDDER]) == embedder.identity  # recorded now
    other = EmbedderIdentity("minilm-onnx", "f" * 64, embedder.dimension)
    with pytest.raises(ConfigError, match="was embedded with 'minilm'"):
        store.check_embedder(other)


def test_an_empty_archive_takes_any_embedder(settings: Settings, embedder) -> None:
    store = Store(settings)
    assert store.embedder_state() == (None, None)
    store.check_embedder(EmbedderIdentity("x", "0" * 64, 7))
    assert embed.adopt_embedder(store, embedder) == 0
    assert EmbedderIdentity.from_json(Store(settings).collection.metadata[store.EMBEDDER]) == embedder.identity


def test_an_emptied_archive_keeps_its_record_and_still_takes_any_embedder(settings: Settings, embedder) -> None:
    Ingestor(settings, embedder=embedder).ingest([str(DATA_DIR)])
    store = Store(settings)
    for article_id in {md["article_id"] for _, md, _ in store.iter_metadatas()}:
        store.delete_article(article_id)
    store.bump_version()
    assert store.count() == 0
    assert store.embedder_state() == (embedder.identity, None)  # read from the record, without counting
    other = EmbedderIdentity("minilm-onnx", "f" * 64, embedder.dimension)
    store.check_embedder(other)  # nothing stored: no vectors of another model to mix with
    assert embed.adopt_embedder(store, embedder) == 0


def test_auto_follows_the_archive_and_gives_a_new_one_the_preferred_embedder(settings: Settings, torch_minilm) -> None:
    auto = settings.model_copy(update={"embedder": "auto"})
    assert "auto" in embedder_names() and load_settings().embedder == "auto"  # the default
    assert embed.resolve_spec(auto) == preferred()  # nothing there yet
    Store(auto)
    assert embed.resolve_spec(auto) == preferred()  # an empty archive
    Ingestor(settings.model_copy(update={"embedder": "minilm"})).ingest([str(DATA_DIR)])
    assert embed.resolve_spec(auto) == "minilm"  # an archive keeps its embedder whatever the default
    store = Store(settings)
    store.collection.modify(metadata={"byline": "chunks"})  # an archive from before identities were recorded
    store.bump_version()
    assert embed.resolve_spec(auto) == "minilm"
    assert embed.get_embedder(auto) is torch_minilm
    store.begin_reembed(EmbedderIdentity("minilm-onnx", "f" * 64, 384))  # a move under way: finish it with its target
    assert embed.resolve_spec(auto) == "minilm-onnx"
