"""Syndicated copies at answer time: one passage per group, cited from the earliest copy, the others listed.

Ingest (``ingest.syndication``) stores a group key on every chunk; the retriever keeps the best
passage of each group only. Then the members still stored are looked up (their first chunks):

- the canonical copy is the earliest published one (undated copies last, ties by article id): the
  outlet that ran a story first is the likeliest original, and the rule needs no list of wire
  services. It is decided here, from what is stored now, so deleting a copy promotes the next;
- a passage found in another copy is cited from the canonical copy instead when that copy holds the
  same passage (a chunk containing nearly all of its word sequences) and passes the question's
  filters; otherwise it stays cited where it was found (an added paragraph, say, is only there);
- the other copies are listed in the passage's ``also_published``.

The lookup is skipped when no group among the passages holds a copy that joined it (``joined``, which the
keyword index keeps as ``joined_groups``): a group of two or more stored articles always holds one, since
only one article can be the one that started it (the key names it). Most groups have a single member.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Collection, Sequence

from rag.schema import CHUNK_INDEX, GROUP, ChunkMeta, where_articles
from rag.types import Copy, Passage

if TYPE_CHECKING:  # rag.keywords, which rag.store imports, uses ``joined``
    from rag.store import Store

SAME_TEXT = 0.9  # share of a passage's 4-word shingles a chunk of the canonical copy must hold to be cited instead

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> set[bytes]:
    """The distinct n-word shingles of the case-folded words (punctuation, quotes and spacing ignored)."""
    words = _WORD.findall(text.casefold())
    if len(words) < n:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def own_group(article_id: str, content_hash: str) -> str:
    """The key of the group that an article version starts when it is a copy of no stored article."""
    return f"{article_id}@{content_hash[:8]}"


def joined(m: ChunkMeta) -> bool:
    """Whether the chunk's article is in a group that another article started (a copy that joined it)."""
    return bool(m.group) and m.group not in (m.article_id, own_group(m.article_id, m.content_hash))


def story(p: Passage) -> frozenset[str]:
    """The articles of a passage's syndicated story: its own and the copies ``with_copies`` listed. That lists
    every stored member of the group whatever the filters, so the passages of one story that different searches
    found share this key."""
    return frozenset((p.article_id, *(c.article_id for c in p.also_published)))


def _first(m: ChunkMeta) -> tuple[bool, float, str]:
    """Sort key: earliest publication first (as instants: copies carry other time zones), undated last."""
    try:
        t = dt.datetime.fromisoformat(m.published_at)
    except ValueError:
        return (True, 0.0, m.article_id)
    return (False, (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp(), m.article_id)


def with_copies(store: Store, passages: Sequence[Passage], groups: Sequence[str],
                allowed: Callable[[ChunkMeta], bool] = lambda m: True, shared: Collection[str] | None = None) -> list[Passage]:
    """``passages`` (one group each, ``groups`` their keys) cited from their canonical copies where
    those hold the same text, each listing the group's other copies; renumbered from 1. ``shared``: the
    groups that hold a copy which joined them (``KeywordIndex.joined_groups``); None: look all up."""
    if not passages:
        return []
    keys = sorted(set(groups))
    if shared is not None and not any(k in shared for k in keys):
        return list(passages)  # every group among them has one stored article: what the lookup would find
    members: dict[str, list[ChunkMeta]] = defaultdict(list)
    for _cid, md, _ in store.iter_metadatas(where={"$and": [{GROUP: {"$in": keys}}, {CHUNK_INDEX: 0}]}):
        m = ChunkMeta.from_metadata(md)
        members[m.group].append(m)
    multi = {k: sorted(ms, key=_first) for k, ms in members.items() if len(ms) > 1}
    if not multi:
        return list(passages)
    canon_of = {k: ms[0] for k, ms in multi.items()}
    need = sorted({canon_of[g].article_id for p, g in zip(passages, groups)
                   if g in canon_of and p.article_id != canon_of[g].article_id and allowed(canon_of[g])})
    chunks: dict[str, list[tuple[str, ChunkMeta, str]]] = defaultdict(list)
    if need:
        for cid, md, doc in store.iter_metadatas(where=where_articles(need), documents=True):
            m = ChunkMeta.from_metadata(md)
            chunks[m.article_id].append((cid, m, doc))
    out: list[Passage] = []
    used: set[str] = set()
    for p, g in zip(passages, groups):
        ms = multi.get(g)
        if ms:
            canon = canon_of[g]
            if chunks.get(canon.article_id) and p.article_id != canon.article_id:
                p = _moved(p, chunks[canon.article_id])
            p = dataclasses.replace(p, also_published=tuple(Copy(m.article_id, m.title, m.source, m.date, m.url)
                                                            for m in ms if m.article_id != p.article_id))
        if p.chunk_id in used:
            continue  # two passages of one copy that the canonical copy holds in one chunk
        used.add(p.chunk_id)
        out.append(dataclasses.replace(p, number=len(out) + 1))
    return out


def _moved(p: Passage, candidates: list[tuple[str, ChunkMeta, str]]) -> Passage:
    """``p`` cited from the candidate chunk holding its text, or ``p`` itself when none does."""
    mine = shingles(p.full_text)
    if not mine:
        return p
    best, share = None, 0.0
    for cid, m, doc in candidates:
        s = len(mine & shingles(doc)) / len(mine)
        if s > share:
            best, share = (cid, m, doc), s
    if best is None or share < SAME_TEXT:
        return p
    cid, m, doc = best
    return dataclasses.replace(p, chunk_id=cid, article_id=m.article_id, title=m.title, source=m.source, date=m.date, url=m.url,
                               author=m.author, text=doc, full_text=doc, start=m.start, end=m.end)
