"""Syndicated copies: one story republished by several outlets (with small edits) stored as one group.

At ingest every new or changed article gets a MinHash signature (datasketch) of the 4-word shingles
of its body (the title is left out: copies rewrite headlines). A MinHashLSH index over the stored
signatures finds the articles that may share many of its shingles; the article joins the group of
the closest one whose Jaccard similarity (estimated from the two signatures) reaches MIN_JACCARD,
else it starts a group of its own. Different articles, even on the same event, share almost no
4-word sequences, while a copy keeps most of them through a rewritten headline, a dateline, an added
paragraph, a trimmed ending and a few reworded words (tests/bench/bench_syndication.py measures this).

Persistence: the signature is stored in the metadata of each article's first chunk and the group
key on every chunk (``rag.schema.ChunkMeta``), so the LSH index is rebuilt from the store by any
process, deleted articles disappear with their chunks, and nothing else has to be kept in step.
The index is rebuilt when the store changed since this process last saw it (a write or delete by
anyone else, or a failed run of its own); a run's own articles are added as it places them. Two
processes ingesting copies of one story at the same moment may each start a group: neither sees
the other's article before it is written.

Group keys are stable: ``<article id>@<content hash>`` of the article that started the group. An
article never changes group unless its own text changes; which member is cited (the earliest) is
decided at answer time from the members still stored (``rag.copies``), so deleting one promotes another.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from ingest.article import Article
from rag.copies import own_group, shingles
from rag.schema import CHUNK_INDEX, ChunkMeta
from rag.store import Store

log = logging.getLogger(__name__)

SHINGLE_WORDS = 4  # 4 rather than 5: one reworded word breaks fewer shingles, which matters in short texts
NUM_PERM = 128  # Jaccard estimates within about ±0.04; 512 bytes per article
SCHEME = "affine32"
SIG_PREFIX = "mh1"  # bump when any of the above changes: older signatures are then ignored, not compared
MIN_JACCARD = 0.3  # chosen on the dev half of tests/bench/bench_syndication.py
# LSH finds the candidates, each then checked against MIN_JACCARD; its threshold sits below that and
# false negatives weigh more, so a pair at MIN_JACCARD is a candidate with probability about 0.995.
LSH_THRESHOLD, LSH_WEIGHTS = 0.2, (0.2, 0.8)
MIN_SHINGLES = 8  # texts shorter than this (about 11 words) are never grouped: too little to tell a copy from a quote


@dataclass(frozen=True)
class Signature:
    """An article's MinHash, as stored (``encode``: base64 of 128 uint32 values, prefixed by the parameters' version)."""

    minhash: LeanMinHash

    def encode(self) -> str:
        raw = np.asarray(self.minhash.hashvalues, dtype=np.uint32).tobytes()
        return f"{SIG_PREFIX}:{base64.b64encode(raw).decode()}"

    @classmethod
    def decode(cls, s: str) -> "Signature | None":
        """None for an empty value or one written with other parameters."""
        prefix, _, b64 = s.partition(":")
        if prefix != SIG_PREFIX:
            return None
        try:
            values = np.frombuffer(base64.b64decode(b64), dtype=np.uint32)
        except ValueError:
            return None
        if len(values) != NUM_PERM:
            return None
        return cls(LeanMinHash(seed=1, hashvalues=values.astype(np.uint64), scheme=SCHEME))

    def jaccard(self, other: "Signature") -> float:
        """Estimated Jaccard similarity of the two shingle sets."""
        return float(np.mean(self.minhash.hashvalues == other.minhash.hashvalues))


_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)  # built once: its permutations are the costly part


def signature(text: str) -> Signature | None:
    """The text's signature, or None when it is too short to group."""
    sh = shingles(text, SHINGLE_WORDS)
    if len(sh) < MIN_SHINGLES:
        return None
    m = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME, permutations=_TEMPLATE.permutations)
    m.update_batch(sh)
    return Signature(LeanMinHash(m))


@dataclass(frozen=True)
class Placement:
    """Where an article goes: its group key (on every chunk) and signature (on its first chunk)."""

    group: str
    signature: str = ""  # "" when the text is too short to group
    joined: str = ""  # the article id of the copy it matched ("": it starts its own group)


class SyndicationIndex:
    """The LSH index over the store's signatures, kept by one Ingestor (thread-safe)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM, weights=LSH_WEIGHTS)
        self.sigs: dict[str, Signature] = {}
        self.groups: dict[str, str] = {}
        self.version: str | None = None  # the store version the index matches; None: rebuild before use

    def refresh(self) -> None:
        """Rebuild from the store if it changed since this index last matched it (call once per run)."""
        with self.lock:
            version = self.store.version()
            if version == self.version:
                return
            self.lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM, weights=LSH_WEIGHTS)
            self.sigs, self.groups = {}, {}
            for _cid, md, _ in self.store.iter_metadatas(where={CHUNK_INDEX: 0}):
                m = ChunkMeta.from_metadata(md)
                sig = Signature.decode(m.minhash) if m.minhash else None
                if sig is None or not m.group:
                    continue  # too short, or written before grouping existed: never a candidate
                self._add(m.article_id, m.group, sig)
            self.version = None  # until the run that placed articles in it is written (``written``)
            log.info("syndication index: %d signatures loaded", len(self.sigs))

    def _add(self, aid: str, group: str, sig: Signature) -> None:
        self.lsh.insert(aid, sig.minhash, check_duplication=False)
        self.sigs[aid] = sig
        self.groups[aid] = group

    def _remove(self, aid: str) -> None:
        if self.sigs.pop(aid, None) is not None:
            self.lsh.remove(aid)
        self.groups.pop(aid, None)

    def place(self, article: Article) -> Placement:
        """The group of a new or changed article (which is then a candidate for the articles after it)."""
        sig = signature(article.text)
        with self.lock:
            self._remove(article.id)  # its previous version no longer says anything
            own = own_group(article.id, article.content_hash)
            if sig is None:
                return Placement(own)
            best, best_j = "", -1.0
            for cand in self.lsh.query(sig.minhash):
                j = sig.jaccard(self.sigs[cand])
                if j >= MIN_JACCARD and (j > best_j or (j == best_j and cand < best)):
                    best, best_j = cand, j
            group = self.groups[best] if best else own
            self._add(article.id, group, sig)
            return Placement(group, sig.encode(), best)

    def written(self) -> None:
        """The run that placed articles has been written: the index matches the store's current version."""
        with self.lock:
            self.version = self.store.version()

    def forget(self) -> None:
        """Rebuild before next use (a run failed, or something was deleted)."""
        with self.lock:
            self.version = None
