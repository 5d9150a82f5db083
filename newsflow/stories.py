"""Stories: near-duplicate articles (wire copies, syndicated edits) under one ``story_id``.

Owns the content fingerprint, the similarity of two fingerprints, the keys under which
the store finds candidates, and the assignment of stories at index time.

- :func:`fingerprint` runs in the extraction worker: a bottom-k MinHash of the text's
  distinct word 4-shingles (the 128 smallest 64-bit XXH3 hashes), published with the
  article. xxhash and the standard library only: datasketch pulls numpy and scipy into every worker,
  over 300 MB of address space against the worker's memory cap (docs/stories.md).
- :func:`similarity` estimates the share of the *shorter* text's shingles found in the
  other (containment), so a teaser cut from an article is as much its copy as the article
  with a paragraph dropped; two different stories on one event share few 4-shingles.
- :func:`story_keys` are what the store indexes to find candidates without a scan: the
  sketch's 128 hashes (a copy shares dozens of them, even a teaser; an unrelated text a
  few at most, and candidates are ranked by keys shared), plus identity keys (``u:<doc_id>``
  of the article, its aliases and its cross-site ``rel=canonical``), so a copy declaring
  its original joins it whichever of the two is indexed first.
- :class:`StoryAssigner` runs in the indexer, batch by batch. Two articles are linked when
  they share an identity key or their similarity reaches the threshold; a story is a
  connected component of links and its ``story_id`` is the ``doc_id`` of its earliest
  member (by ``published_at``, else ``fetched_at``, then ``doc_id``). An article linking
  stories merges them into the earliest. Each link is seen when the later of its two
  articles is indexed, so the clusters and their ids do not depend on the order in which
  the topic's partitions are read: replaying the topic into a fresh index gives the same
  stories. Stories never split (a revision that stops matching keeps its story).
"""

from __future__ import annotations

import base64
import heapq
import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import xxhash

from connectors.store import StoryIndex, StoryMember, StoryMerge
from newsflow.identity import canonical_url, doc_id
from schemas import Article

__all__ = [
    "BANDS",
    "NUM_PERM",
    "SHINGLE_WORDS",
    "THRESHOLD",
    "Signature",
    "StoryAssigner",
    "band_keys",
    "fingerprint",
    "identity_keys",
    "in_own_story",
    "parse",
    "similarity",
    "story_keys",
]

logger = logging.getLogger(__name__)

NUM_PERM = 128
"""Hashes per fingerprint (the k of the bottom-k sketch)."""
SHINGLE_WORDS = 4
"""Words per shingle."""
BANDS = NUM_PERM
"""Candidate keys per fingerprint (one per sketch value)."""
MIN_SHINGLES = 8
"""Shorter texts get no fingerprint (too little to tell a copy from a coincidence)."""
THRESHOLD = 0.85
"""Similarity at and above which two articles are one story (tuned by bench/stories.py)."""
CANDIDATES = 50
"""Stored candidates examined per article (those sharing most keys first)."""

_PREFIX = "bk1"
_WORD = re.compile(r"\w+")
_IDENTITY = "u:"
_hash = xxhash.xxh3_64_intdigest
"""64-bit XXH3 (seed 0) of a shingle's UTF-8 bytes."""


def _shingles(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)} if words else set()
    # zip over shifted views: no list slice per shingle (it is the bulk of the cost).
    shifted = [words[offset:] for offset in range(SHINGLE_WORDS)]
    return {" ".join(shingle) for shingle in zip(*shifted, strict=False)}


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed fingerprint: the smallest shingle hashes, sorted, and the shingle count."""

    values: tuple[int, ...]
    shingles: int


def signature(text: str) -> Signature | None:
    """The bottom-k MinHash of ``text`` (None below :data:`MIN_SHINGLES` shingles)."""
    shingles = _shingles(text)
    if len(shingles) < MIN_SHINGLES:
        return None
    smallest = heapq.nsmallest(NUM_PERM, {_hash(shingle.encode()) for shingle in shingles})
    return Signature(tuple(smallest), len(shingles))


def fingerprint(text: str) -> str | None:
    """The published fingerprint of ``text``: ``bk1:<shingles>:<base64 of uint64 LE>``."""
    sig = signature(text)
    if sig is None:
        return None
    packed = base64.b64encode(struct.pack(f"<{len(sig.values)}Q", *sig.values)).decode("ascii")
    return f"{_PREFIX}:{sig.shingles}:{packed}"


def parse(value: str | None) -> Signature | None:
    """The signature in a fingerprint; None for none, or one this version cannot read."""
    if not value:
        return None
    try:
        prefix, count, packed = value.split(":", 2)
        raw = base64.b64decode(packed, validate=True)
        values = struct.unpack(f"<{len(raw) // 8}Q", raw)
    except (ValueError, struct.error):
        return None
    if prefix != _PREFIX or not values or len(raw) % 8 or not count.isdigit():
        return None
    return Signature(tuple(values), int(count))


def similarity(a: Signature, b: Signature) -> float:
    """Estimated share of the smaller shingle set found in the other one (0..1)."""
    # Bottom-k estimate of Jaccard: among the k smallest hashes of the union, the share
    # present in both sketches.
    k = min(len(a.values), len(b.values))
    union = heapq.nsmallest(k, set(a.values) | set(b.values))
    both = set(a.values) & set(b.values)
    jaccard = sum(1 for value in union if value in both) / max(1, len(union))
    # |A ∩ B| = J (|A| + |B|) / (1 + J), divided by the smaller set.
    shared = jaccard * (a.shingles + b.shingles) / (1.0 + jaccard)
    return min(1.0, shared / min(a.shingles, b.shingles))


def band_keys(sig: Signature) -> list[str]:
    """The candidate keys of a signature: ``h:<hash>`` for each of its smallest hashes.

    Two texts sharing many shingles share many of their smallest hashes; a common phrase
    alone is shared with few, and candidates are ranked by the number of shared keys.
    """
    return [f"h:{value:016x}" for value in sig.values]


def identity_keys(
    doc_id_: str, alias_ids: Sequence[str] = (), syndicated_from: str | None = None
) -> list[str]:
    """``u:<doc_id>`` of an article, of its aliases and of the original it declares."""
    ids = [doc_id_, *alias_ids]
    if syndicated_from:
        ids.append(doc_id(canonical_url(syndicated_from)))
    return [f"{_IDENTITY}{value}" for value in dict.fromkeys(ids)]


def story_keys(article: Article) -> list[str]:
    """Every key the store indexes for ``article`` to find its near-duplicates."""
    sig = parse(article.fingerprint)
    identity = identity_keys(article.doc_id, article.alias_ids, article.syndicated_from)
    return identity + (band_keys(sig) if sig is not None else [])


def in_own_story(article: Article) -> Article:
    """``article`` with ``story_id`` defaulted to its own ``doc_id`` (how stores keep it)."""
    return article if article.story_id else article.model_copy(update={"story_id": article.doc_id})


def _rank_time(article: Article) -> datetime:
    return article.published_at or article.fetched_at


@dataclass(slots=True)
class _Node:
    """What assignment knows of one article: stored, or earlier in this batch."""

    doc_id: str
    story_id: str
    started_at: datetime
    signature: Signature | None
    keys: frozenset[str]
    near_duplicate_of: str | None = None
    similarity: float | None = None


@dataclass(slots=True)
class _Stories:
    """Story ids merged so far in this batch (union by the earliest founder)."""

    target: dict[str, str] = field(default_factory=dict)
    started: dict[str, datetime] = field(default_factory=dict)

    def resolve(self, story_id: str) -> str:
        while story_id in self.target:
            story_id = self.target[story_id]
        return story_id


class StoryAssigner:
    """Sets the story fields of each article of a batch before the indexer writes it."""

    def __init__(self, index: StoryIndex, threshold: float = THRESHOLD) -> None:
        self._index = index
        self._threshold = threshold

    def assign(self, articles: Sequence[Article]) -> list[Article]:
        """``articles`` with ``story_id`` and co. set; merges stored stories as needed.

        One candidate request for the batch; stored stories that an article of the batch
        links are merged in the store before this returns (so before the batch is
        written: replaying the batch after a crash redoes the same merges).
        """
        if not articles:
            return []
        key_lists = [story_keys(article) for article in articles]
        found = self._index.story_candidates(key_lists, CANDIDATES)
        stories = _Stories()
        batch: list[_Node] = []
        by_key: dict[str, list[int]] = {}
        for article, keys, stored in zip(articles, key_lists, found, strict=True):
            node = self._place(article, frozenset(keys), stored, batch, by_key, stories)
            for key in keys:
                by_key.setdefault(key, []).append(len(batch))
            batch.append(node)
        merges = [
            StoryMerge(old, final, stories.started[final])
            for old in stories.target
            if (final := stories.resolve(old)) != old
        ]
        if merges:
            self._index.merge_stories(merges)
            logger.info("stories merged=%d", len(merges))
        out = []
        for article, node in zip(articles, batch, strict=True):
            story = stories.resolve(node.story_id)
            near, score = node.near_duplicate_of, node.similarity
            if story != node.story_id and node.doc_id == node.story_id:
                near, score = near or story, score  # a founder whose story was merged away
            out.append(
                article.model_copy(
                    update={
                        "story_id": story,
                        "story_started_at": stories.started.get(story, node.started_at),
                        "near_duplicate_of": None if story == article.doc_id else near,
                        "story_similarity": None if story == article.doc_id else score,
                    }
                )
            )
        return out

    def _place(
        self,
        article: Article,
        keys: frozenset[str],
        stored: Sequence[StoryMember],
        batch: list[_Node],
        by_key: dict[str, list[int]],
        stories: _Stories,
    ) -> _Node:
        sig = parse(article.fingerprint)
        candidates: dict[str, _Node] = {}
        prior: _Node | None = None
        for member in stored:
            node = _Node(
                member.doc_id,
                member.story_id,
                member.story_started_at,
                parse(member.fingerprint),
                frozenset(member.keys),
                member.near_duplicate_of,
                member.similarity,
            )
            if member.doc_id == article.doc_id:
                prior = node
            else:
                candidates[member.doc_id] = node
        for position in sorted({p for key in keys for p in by_key.get(key, [])}):
            node = batch[position]
            if node.doc_id == article.doc_id:
                prior = node  # an earlier revision in this very batch
            else:
                candidates[node.doc_id] = node  # the batch's view wins over the store's
        links: list[tuple[float, str, str]] = []  # (similarity, doc_id, story)
        for node in candidates.values():
            if any(key.startswith(_IDENTITY) for key in keys & node.keys):
                link = 1.0
            elif sig is not None and node.signature is not None:
                link = similarity(sig, node.signature)
                if link < self._threshold:
                    continue
            else:
                continue
            links.append((link, node.doc_id, stories.resolve(node.story_id)))
            stories.started.setdefault(node.story_id, node.started_at)
        # Founding candidates: this article itself and every story it links.
        contenders = {article.doc_id: _rank_time(article)}
        own_story = False  # whether a story with this article's id exists already
        if prior is not None:
            stories.started.setdefault(prior.story_id, prior.started_at)
            prior_story = stories.resolve(prior.story_id)
            own_story = prior_story == article.doc_id
            started = stories.started.get(prior_story, prior.started_at)
            contenders[prior_story] = min(started, contenders.get(prior_story, started))
        for _, _, story in links:
            contenders.setdefault(story, stories.started[story])
        winner = min(contenders, key=lambda story: (contenders[story], story))
        stories.started[winner] = contenders[winner]
        for story in contenders:
            if story != winner and (story != article.doc_id or own_story):
                stories.target[story] = winner
        near: str | None = None
        score: float | None = None
        if winner == article.doc_id:
            pass
        elif links:
            score, near, _ = max(links, key=lambda item: (item[0], item[1] == winner, item[1]))
        elif prior is not None:
            near, score = prior.near_duplicate_of, prior.similarity
        return _Node(article.doc_id, winner, contenders[winner], sig, keys, near, score)
