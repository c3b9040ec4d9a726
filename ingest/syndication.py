"""Syndicated copies: one story republished by several outlets (with small edits) stored as one group.

At ingest every new or changed article gets a MinHash signature (datasketch) of the 4-word shingles
of its body (the title is left out: copies rewrite headlines). An LSH index over the stored
signatures (``Bands``) finds the articles that may share many of its shingles; the article joins the group of
the closest one whose Jaccard similarity (estimated from the two signatures) reaches MIN_JACCARD,
else it starts a group of its own. Different articles, even on the same event, share almost no
4-word sequences, while a copy keeps most of them through a rewritten headline, a dateline, an added
paragraph, a trimmed ending and a few reworded words (tests/bench/bench_syndication.py measures this).

Persistence: the signature is stored in the metadata of each article's first chunk and the group
key on every chunk (``rag.schema.ChunkMeta``); the keyword index (``rag.keywords``) keeps a table of
them in step with the store's writes and deletes, from which any process builds its LSH index.
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

    def jaccard(self, other: "Signature") -> float:
        """Estimated Jaccard similarity of the two shingle sets."""
        return float(np.mean(self.minhash.hashvalues == other.minhash.hashvalues))


_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)  # built once: its permutations are the costly part
_ENCODED_LEN = len(SIG_PREFIX) + 1 + len(base64.b64encode(bytes(4 * NUM_PERM)))


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


class Bands:
    """MinHash LSH: the articles that share a band (``r`` consecutive hash values, ``b`` bands) with a query
    are its candidates, as in datasketch's MinHashLSH with the same ``b`` and ``r``. The stored signatures are
    indexed at once with numpy (each band's keys sorted), not one by one as datasketch inserts them, which
    every ingest process into a large archive waited for before its first article (tests/bench/RESULTS.md,
    fourteenth session). Articles added later sit in dicts."""

    def __init__(self, b: int, r: int) -> None:
        self.b, self.r = b, r
        self._keys = np.zeros((b, 0), dtype=np.uint64)  # per band, the built rows' keys, sorted
        self._order = np.zeros((b, 0), dtype=np.int64)  # per band, the rows in that order
        self._ids: list[str] = []  # row -> article id
        self._row: dict[str, int] = {}  # article id -> its live built row
        self._alive = np.zeros(0, dtype=bool)
        self._extra: list[dict[int, set[str]]] = [{} for _ in range(b)]  # added since the build: band key -> ids
        self._extra_keys: dict[str, np.ndarray] = {}

    def keys(self, values: np.ndarray) -> np.ndarray:
        """Band keys of signatures (rows of ``values``): each band's ``r`` values mixed into one 64-bit key; a
        collision only adds a candidate, which the Jaccard check then drops."""
        if self.r == 2:  # two 32-bit values are one 64-bit key exactly (no mixing, no collision)
            return np.ascontiguousarray(np.atleast_2d(values)[:, : 2 * self.b], dtype=np.uint32).view(np.uint64)
        v = np.atleast_2d(values).astype(np.uint64)[:, : self.b * self.r].reshape(-1, self.b, self.r)
        k = np.zeros(v.shape[:2], dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(self.r):
                k = k * np.uint64(0x9E3779B97F4A7C15) + v[:, :, j] + np.uint64(j + 1)
        return k  # (n, b)

    def build(self, ids: list[str], values: np.ndarray) -> None:
        keys = self.keys(values).T if len(ids) else np.zeros((self.b, 0), dtype=np.uint64)
        self._order = np.argsort(keys, axis=1)
        self._keys = np.take_along_axis(keys, self._order, axis=1)
        self._ids = list(ids)
        self._row = {aid: i for i, aid in enumerate(ids)}
        self._alive = np.ones(len(ids), dtype=bool)
        self._extra = [{} for _ in range(self.b)]
        self._extra_keys = {}

    def add(self, aid: str, values: np.ndarray) -> None:
        self.remove(aid)
        keys = self.keys(values)[0]
        for band, key in enumerate(keys.tolist()):
            self._extra[band].setdefault(key, set()).add(aid)
        self._extra_keys[aid] = keys

    def remove(self, aid: str) -> None:
        row = self._row.pop(aid, None)
        if row is not None:
            self._alive[row] = False
        keys = self._extra_keys.pop(aid, None)
        if keys is not None:
            for band, key in enumerate(keys.tolist()):
                self._extra[band][key].discard(aid)

    def query(self, values: np.ndarray) -> set[str]:
        keys = self.keys(values)[0]
        found: set[str] = set()
        if self._keys.shape[1]:
            for band in range(self.b):
                lo, hi = np.searchsorted(self._keys[band], keys[band], side="left"), np.searchsorted(self._keys[band], keys[band], side="right")
                rows = self._order[band, lo:hi]
                found.update(self._ids[i] for i in rows[self._alive[rows]])
        for band, key in enumerate(keys.tolist()):
            found |= self._extra[band].get(key, set())
        return found


_BANDS = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM, weights=LSH_WEIGHTS)  # its (b, r) for these settings


def decode_all(encoded: list[str]) -> tuple[list[int], np.ndarray]:
    """The positions of the usable signatures among ``encoded`` and their hash values (n, NUM_PERM), decoded at once."""
    keep, raw = [], []
    for i, s in enumerate(encoded):
        if s.startswith(SIG_PREFIX + ":") and len(s) == _ENCODED_LEN:  # others: written with other parameters
            try:
                raw.append(base64.b64decode(s[len(SIG_PREFIX) + 1 :], validate=True))
            except ValueError:
                continue
            keep.append(i)
    return keep, np.frombuffer(b"".join(raw), dtype=np.uint32).reshape(len(keep), NUM_PERM)


class SyndicationIndex:
    """The LSH index over the store's signatures, kept by one Ingestor (thread-safe)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.bands = Bands(_BANDS.b, _BANDS.r)
        self.sigs: dict[str, np.ndarray] = {}  # article id -> its hash values
        self.groups: dict[str, str] = {}
        self.version: str | None = None  # the store version the index matches; None: rebuild before use

    def refresh(self) -> None:
        """Rebuild from the store if it changed since this index last matched it (call once per run)."""
        with self.lock:
            version = self.store.version()
            if version == self.version:
                return
            # The keyword index keeps every stored signature, caught up with the store's writes: one read of
            # its table instead of every first chunk's metadata from Chroma.
            rows = self.store.keywords.signatures()
            keep, values = decode_all([enc for _aid, _grp, enc in rows])
            ids = [rows[i][0] for i in keep]
            self.bands.build(ids, values)
            self.sigs = dict(zip(ids, values))
            self.groups = {rows[i][0]: rows[i][1] for i in keep}
            self.version = None  # until the run that placed articles in it is written (``written``)
            log.info("syndication index: %d signatures loaded", len(self.sigs))

    def _add(self, aid: str, group: str, values: np.ndarray) -> None:
        self.bands.add(aid, values)
        self.sigs[aid] = values
        self.groups[aid] = group

    def _remove(self, aid: str) -> None:
        if self.sigs.pop(aid, None) is not None:
            self.bands.remove(aid)
        self.groups.pop(aid, None)

    def place(self, article: Article) -> Placement:
        """The group of a new or changed article (which is then a candidate for the articles after it)."""
        sig = signature(article.text)
        with self.lock:
            self._remove(article.id)  # its previous version no longer says anything
            own = own_group(article.id, article.content_hash)
            if sig is None:
                return Placement(own)
            values = np.asarray(sig.minhash.hashvalues, dtype=np.uint32)
            best = ""
            cands = sorted(self.bands.query(values))
            if cands:  # the closest candidate at MIN_JACCARD or above; of equals, the first id
                js = (np.stack([self.sigs[c] for c in cands]) == values).mean(axis=1)  # as Signature.jaccard
                if (js >= MIN_JACCARD).any():
                    best = cands[int(np.argmax(js))]
            group = self.groups[best] if best else own
            self._add(article.id, group, values)
            return Placement(group, sig.encode(), best)

    def written(self) -> None:
        """The run that placed articles has been written: the index matches the store's current version."""
        with self.lock:
            self.version = self.store.version()

    def forget(self) -> None:
        """Rebuild before next use (a run failed, or something was deleted)."""
        with self.lock:
            self.version = None
