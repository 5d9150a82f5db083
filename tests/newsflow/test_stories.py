"""Near-duplicates: fingerprints, their similarity, and story assignment at index time."""

from __future__ import annotations

import base64
import random
import re
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xxhash

from connectors.sqlite_store import SqliteStore
from newsflow.identity import canonical_url, content_hash, doc_id, elsewhere_canonical
from newsflow.stories import THRESHOLD, StoryAssigner, fingerprint, parse, similarity
from schemas import Article

_WORDS = (
    "council harbor budget storm minister river police court school vote bridge market "
    "hospital strike ferry election museum airport rail energy water farm port festival"
).split()


def _text(seed: int, paragraphs: int = 6) -> list[str]:
    rng = random.Random(seed)  # noqa: S311  (test data, not crypto)
    return [
        " ".join(rng.choice(_WORDS) + str(rng.randrange(40)) for _ in range(45))
        for _ in range(paragraphs)
    ]


def _article(name: str, paragraphs: Sequence[str], minutes: int, **fields: object) -> Article:
    url = f"https://{name}.example/story"
    text = "\n".join(paragraphs)
    moment = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(moment),
        url=url,
        source_url=url,
        title=name,
        text=text,
        published_at=moment,
        fetched_at=moment,
        domain=f"{name}.example",
        feed_url=f"https://{name}.example/feed",
        content_hash=content_hash(text),
        fingerprint=fingerprint(text),
        **fields,
    )


def _corpus() -> list[Article]:
    story, other = _text(1), _text(2)
    return [
        _article("wire", story, 0),
        _article("copy-a", story[:5], 5),  # a paragraph dropped
        _article("copy-b", [story[1], story[0], *story[2:], "Boilerplate line."], 9),
        _article("teaser", story[:2], 12),
        _article("other", other, 3),
        _article("other-copy", other[1:], 20),
        _article("lone", _text(3), 7),
    ]


def _assign(path: Path, articles: Sequence[Article], batch: int) -> dict[str, str]:
    store = SqliteStore(path)
    store.ensure()
    assigner = StoryAssigner(store)
    for start in range(0, len(articles), batch):
        store.index_batch(assigner.assign(articles[start : start + batch]))
    stories = {}
    for article in articles:
        stored = store.get(article.doc_id)
        assert stored is not None and stored.story_id is not None
        stories[article.title] = stored.story_id
    store.close()
    return stories


def test_fingerprints_round_trip_and_measure_containment() -> None:
    story = _text(1)
    whole, teaser, other = (parse(fingerprint("\n".join(p))) for p in (story, story[:2], _text(2)))
    assert whole is not None and teaser is not None and other is not None
    assert similarity(whole, whole) == 1.0
    assert similarity(whole, teaser) >= THRESHOLD
    assert similarity(whole, other) < 0.2
    assert fingerprint("too short") is None
    assert parse("mh0:3:AAAA") is None and parse(None) is None


def test_the_fingerprint_is_the_documented_bottom_k_sketch() -> None:
    # Consumers and other producers rely on docs/consumers.md's definition: rebuild it
    # from that text alone and compare.
    text = "The Harbor-City council, on Monday: " + " ".join(_text(4))
    words = re.findall(r"\w+", text.lower())
    shingles = {" ".join(words[i : i + 4]) for i in range(len(words) - 3)}
    hashes = sorted({xxhash.xxh3_64_intdigest(s.encode("utf-8")) for s in shingles})[:128]
    packed = base64.b64encode(struct.pack(f"<{len(hashes)}Q", *hashes)).decode()
    assert fingerprint(text) == f"bk1:{len(shingles)}:{packed}"
    assert fingerprint(" ".join(_text(4)[:1])[:60]) is None  # under 8 shingles


def test_near_duplicates_join_the_first_article_of_their_story(tmp_path: Path) -> None:
    stories = _assign(tmp_path / "s.sqlite3", _corpus(), batch=100)
    wire = doc_id("https://wire.example/story")
    assert {stories[t] for t in ("wire", "copy-a", "copy-b", "teaser")} == {wire}
    assert stories["other"] == stories["other-copy"] == doc_id("https://other.example/story")
    assert stories["lone"] == doc_id("https://lone.example/story")

    store = SqliteStore(tmp_path / "s.sqlite3")
    copy = store.get(doc_id("https://copy-a.example/story"))
    founder = store.get(wire)
    store.close()
    assert copy is not None and copy.near_duplicate_of is not None
    assert copy.story_similarity is not None and copy.story_similarity >= THRESHOLD
    assert founder is not None and founder.near_duplicate_of is None
    assert founder.story_started_at == founder.published_at


def test_replaying_in_any_order_and_batching_gives_the_same_stories(tmp_path: Path) -> None:
    corpus = _corpus()
    expected = _assign(tmp_path / "first.sqlite3", corpus, batch=100)
    for seed in range(4):
        shuffled = corpus[:]
        random.Random(seed).shuffle(shuffled)  # noqa: S311
        replay = _assign(tmp_path / f"replay-{seed}.sqlite3", shuffled, batch=1 + seed)
        assert replay == expected, f"order {[a.title for a in shuffled]}"


def test_a_cross_site_canonical_joins_the_story_of_its_original(tmp_path: Path) -> None:
    original = _article("origin", _text(5), 0)
    copy_url = "https://partner.example/copied"
    declared = elsewhere_canonical(copy_url, original.url)
    assert declared == original.url
    assert canonical_url(copy_url, original.url) == copy_url  # no doc_id takeover
    rewritten = _article("partner", _text(6), 5, syndicated_from=declared)  # other words
    for order in ([original, rewritten], [rewritten, original]):
        stories = _assign(tmp_path / f"{order[0].title}.sqlite3", order, batch=1)
        assert stories == {"origin": original.doc_id, "partner": original.doc_id}


def test_a_copy_linking_two_stories_merges_them_into_the_earliest(tmp_path: Path) -> None:
    first, second = _text(7), _text(8)
    a = _article("a", first, 0)
    b = _article("b", second, 10)
    bridge = _article("bridge", [*first, *second], 20)  # a round-up quoting both
    stories = _assign(tmp_path / "m.sqlite3", [b, a, bridge], batch=1)
    assert set(stories.values()) == {a.doc_id}
    store = SqliteStore(tmp_path / "m.sqlite3")
    demoted = store.get(b.doc_id)
    store.close()
    assert demoted is not None and demoted.near_duplicate_of == a.doc_id
