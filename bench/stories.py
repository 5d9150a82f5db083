"""Near-duplicate benchmark: cluster quality, fingerprint CPU, collapsed search latency.

    .venv/bin/python -m bench.stories [--bases 200] [--search-docs 100000]

Everything is generated here, deterministically (no downloads): base articles written
from sentence templates over shared news vocabulary, four or more variants of each
(headline rewrite, paragraph drop, paragraph reorder, boilerplate change, teaser) and
hard negatives that share the event's names and phrasing (another story on the same
event, a follow-up reusing a background paragraph, live-blog updates under one header).
Prints pairwise precision and recall of the story assignment (the real StoryAssigner on
the embedded store, articles in a shuffled order), MinHash against SimHash at several
thresholds, the CPU a fingerprint adds to ``extract_page`` and search latencies.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from elasticsearch import Elasticsearch

from bench.site import generate
from connectors.elasticsearch import ElasticsearchStore
from connectors.sqlite_store import SqliteStore
from connectors.store import SearchQuery, Store
from newsflow.extract import extract_page
from newsflow.identity import content_hash, doc_id
from newsflow.settings import ElasticsearchSettings
from newsflow.stories import StoryAssigner, _shingles, fingerprint, parse, similarity
from schemas import Article

_NAMES = "Alvarez Brennan Chen Dubois Eriksen Fischer Garcia Haddad Ivanova Jensen Kowalski".split()
_PLACES = "Harbor City,Northfield,Port Ellis,Kingsbridge,Lowmoor,Riverton,Westgate".split(",")
_TOPICS = [
    ("council", "budget", "tax", "vote"),
    ("storm", "flood", "evacuation", "shelter"),
    ("strike", "union", "wages", "talks"),
    ("election", "ballot", "turnout", "candidate"),
    ("court", "ruling", "appeal", "judge"),
    ("hospital", "patients", "nurses", "funding"),
    ("rail", "line", "delays", "commuters"),
    ("fire", "crews", "blaze", "residents"),
]
_TEMPLATES = [
    "{name} said on {day} that the {a} would {verb} the {b} before the end of the month.",
    "Officials in {place} confirmed that {n} people were affected by the {a} and the {b}.",
    "The {c} in {place} has {verb2} since {day}, according to figures seen by reporters.",
    "{name}, who leads the {a} committee, told reporters the {d} was not yet settled.",
    "Critics said the {b} plan left {n} families in {place} without a clear answer.",
    "A spokesperson for {name} declined to comment on the {c} late on {day}.",
    "The {d} is expected to come before the {a} again next week, {name} said.",
    "Residents of {place} gathered on {day} to demand more on the {b} and the {c}.",
    "{name} added that {n} officers had been sent to {place} to deal with the {c}.",
    "Earlier this year the {a} approved {n} million for the {b} in {place}.",
    "Speaking in {place}, {name} called the {d} a turning point for the {a}.",
    "Local groups warned that the {c} could cost {place} as many as {n} jobs.",
]
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_VERBS = "review delay approve reject expand cut".split()
_VERBS2 = "risen fallen doubled stalled grown eased".split()
_BOILERPLATE = [
    "Copyright {year} The Wire Service. All rights reserved. This material may not be "
    "published, broadcast, rewritten or redistributed.",
    "Sign up for our morning newsletter to get the day's top stories in your inbox.",
    "This story was originally published by a partner newsroom and is republished here.",
]


def _sentence(rng: random.Random, event: dict[str, str]) -> str:
    template = rng.choice(_TEMPLATES)
    return template.format(
        name=rng.choice([event["name"], event["name2"], rng.choice(_NAMES)]),
        place=event["place"],
        day=rng.choice(_DAYS),
        n=rng.randrange(2, 900),
        verb=rng.choice(_VERBS),
        verb2=rng.choice(_VERBS2),
        a=event["a"],
        b=event["b"],
        c=event["c"],
        d=event["d"],
    )


def _paragraphs(rng: random.Random, event: dict[str, str], count: int) -> list[str]:
    return [" ".join(_sentence(rng, event) for _ in range(rng.randint(3, 5))) for _ in range(count)]


@dataclass(frozen=True)
class Doc:
    name: str
    truth: str
    """Ground-truth story: the base's name for it and its variants; own name otherwise."""
    kind: str
    title: str
    paragraphs: list[str]
    minutes: int


def corpus(bases: int, seed: int = 13) -> list[Doc]:
    """Bases, their variants and hard negatives, deterministically from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 (benchmark data)
    docs: list[Doc] = []
    for number in range(bases):
        a, b, c, d = _TOPICS[number % len(_TOPICS)]
        event = {
            "name": rng.choice(_NAMES),
            "name2": rng.choice(_NAMES),
            "place": rng.choice(_PLACES),
            "a": a,
            "b": b,
            "c": c,
            "d": d,
        }
        body = _paragraphs(rng, event, rng.randint(6, 10))
        base = f"base{number}"
        title = f"{event['place']} {a} {b}: {event['name']} speaks"
        t0 = number * 30
        docs.append(Doc(base, base, "base", title, body, t0))
        dropped = body[:]
        del dropped[rng.randrange(1, len(dropped))]
        reordered = body[:]
        i = rng.randrange(1, len(body) - 1)
        reordered[i], reordered[i + 1] = reordered[i + 1], reordered[i]
        boiler = [*body, rng.choice(_BOILERPLATE).format(year=2024)]
        teaser = body[: max(2, len(body) // 3)] + ["Read the full story on our website."]
        variants = [
            ("headline", f"{event['name']} on the {b} in {event['place']}", body),
            ("drop", title, dropped),
            ("reorder", title, reordered),
            ("boilerplate", title, boiler),
            ("teaser", title, teaser),
        ]
        for k, (kind, vtitle, paragraphs) in enumerate(variants):
            docs.append(Doc(f"{base}-{kind}", base, kind, vtitle, paragraphs, t0 + 5 + k))
        # Hard negatives on the same event: other story, follow-up, live-blog updates.
        if number % 2 == 0:
            other = _paragraphs(rng, event, rng.randint(5, 8))
            docs.append(Doc(f"{base}-other", f"{base}-other", "other", title, other, t0 + 2))
            follow = [*_paragraphs(rng, event, rng.randint(4, 6)), body[-1]]
            docs.append(Doc(f"{base}-followup", f"{base}-followup", "followup", title, follow,
                            t0 + 20))  # fmt: skip
            header = f"Live: {event['place']} {c} updates. Follow our coverage as it happens."
            for update in range(2):
                entries = [header, *_paragraphs(rng, event, 2)]
                name = f"{base}-live{update}"
                docs.append(Doc(name, name, "live", f"Live: {c}", entries, t0 + 25 + update))
    return docs


def _article(doc: Doc, fp: str | None) -> Article:
    url = f"https://{doc.name}.example/story"
    text = "\n".join(doc.paragraphs)
    moment = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=doc.minutes)
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(moment),
        url=url,
        source_url=url,
        title=doc.title,
        text=text,
        published_at=moment,
        fetched_at=moment,
        domain=f"{doc.name}.example",
        feed_url=f"https://{doc.name}.example/feed",
        content_hash=content_hash(text),
        fingerprint=fp,
    )


def _pairs(labels: dict[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for name, label in labels.items():
        groups.setdefault(label, []).append(name)
    return {pair for group in groups.values() for pair in itertools.combinations(sorted(group), 2)}


def _score(truth: dict[str, str], got: dict[str, str]) -> tuple[float, float]:
    expected, predicted = _pairs(truth), _pairs(got)
    hits = len(expected & predicted)
    return hits / max(1, len(predicted)), hits / max(1, len(expected))


def assignment_quality(docs: Sequence[Doc], threshold: float, workdir: Path) -> tuple[float, float]:
    """Pairwise precision and recall of StoryAssigner on the embedded store."""
    order = list(docs)
    random.Random(7).shuffle(order)  # noqa: S311 - not the generation order
    store = SqliteStore(workdir / f"assign-{threshold}.sqlite3")
    store.ensure()
    assigner = StoryAssigner(store, threshold=threshold)
    articles = [_article(doc, fingerprint("\n".join(doc.paragraphs))) for doc in order]
    for start in range(0, len(articles), 50):
        store.index_batch(assigner.assign(articles[start : start + 50]))
    got = {}
    for doc, article in zip(order, articles, strict=True):
        stored = store.get(article.doc_id)
        assert stored is not None and stored.story_id is not None
        got[doc.name] = stored.story_id
    store.close()
    return _score({doc.name: doc.truth for doc in docs}, got)


def _simhash(text: str) -> int:
    hashes = np.array([zlib.crc32(s.encode()) for s in _shingles(text)], dtype=np.uint64)
    spread = (hashes * np.uint64(0x9E3779B97F4A7C15)) ^ (hashes << np.uint64(29))
    bits = (spread[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    weights = bits.astype(np.int64).sum(axis=0) * 2 - len(hashes)
    return int(sum(1 << i for i in range(64) if weights[i] > 0))


def pairwise_comparison(docs: Sequence[Doc]) -> list[str]:
    """Best pairwise precision/recall of MinHash containment and SimHash (all pairs)."""
    texts = ["\n".join(doc.paragraphs) for doc in docs]
    truth = {doc.name: doc.truth for doc in docs}
    expected = _pairs(truth)
    sigs = [parse(fingerprint(text)) for text in texts]
    sims = [_simhash(text) for text in texts]
    lines = []
    pairs = list(itertools.combinations(range(len(docs)), 2))
    minhash = [similarity(sigs[i], sigs[j]) for i, j in pairs]  # type: ignore[arg-type]
    hamming = [bin(sims[i] ^ sims[j]).count("1") for i, j in pairs]

    def rate(selected: list[bool]) -> tuple[float, float]:
        chosen = {
            tuple(sorted((docs[i].name, docs[j].name)))
            for (i, j), s in zip(pairs, selected, strict=True)
            if s
        }
        hits = len(expected & chosen)
        return hits / max(1, len(chosen)), hits / max(1, len(expected))

    for threshold in (0.4, 0.5, 0.6, 0.7, 0.8):
        p, r = rate([s >= threshold for s in minhash])
        lines.append(f"| MinHash containment ≥ {threshold} | {p:.3f} | {r:.3f} |")
    for bits in (3, 6, 10, 14):
        p, r = rate([h <= bits for h in hamming])
        lines.append(f"| SimHash-64 Hamming ≤ {bits} | {p:.3f} | {r:.3f} |")
    return lines


_PAGE = """<!doctype html><html lang="en"><head><title>{title}</title>
<meta property="og:site_name" content="Example News"></head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/local">Local</a></nav>
<div class="cookie">We use cookies. <button>Accept</button></div>
<article><h1>{title}</h1><p class="byline">By Staff</p>{body}</article>
<aside><h3>Related</h3><ul><li><a href="/a">Another story</a></li></ul></aside>
<footer>Contact · Privacy · Terms</footer></body></html>"""


def cpu_cost(docs: Sequence[Doc], rounds: int = 3) -> tuple[float, float]:
    """Mean ms per page: extract_page (with the fingerprint) and the fingerprint alone."""
    pages = [
        (
            _PAGE.format(title=d.title, body="".join(f"<p>{p}</p>" for p in d.paragraphs)),
            "https://x.example/a",
        )
        for d in docs
    ]
    extract_ms, print_ms, _ = _cost(pages, rounds)
    return extract_ms, print_ms


def site_cpu_cost(count: int, workdir: Path) -> tuple[float, float, int]:
    """Mean ms per page on ``bench.site`` pages (the pipeline benchmark's news pages).

    Returns extract_page's ms (with the fingerprint), the fingerprint's and the mean
    number of words of the extracted texts.
    """
    generate(workdir / "site", count, 4, port=8000)
    pages = [
        (
            path.read_text(encoding="utf-8"),
            f"http://{path.relative_to(workdir / 'site').parts[0]}/a",
        )
        for path in sorted((workdir / "site").rglob("*.html"))
    ]
    return _cost(pages, 3)


def _cost(pages: Sequence[tuple[str, str]], rounds: int) -> tuple[float, float, int]:
    """Median over ``rounds`` of the CPU ms per page of extract_page (fingerprint
    included) and of the fingerprint alone; the mean words of the texts."""
    extract_page(pages[0][0], pages[0][1], 100)  # warm-up: imports
    extract_ms, print_ms = [], []
    texts: list[str] = []
    for _ in range(rounds):
        started = time.process_time()
        texts = [getattr(extract_page(html, url, 100), "text", "") for html, url in pages]
        extract_ms.append((time.process_time() - started) * 1000 / len(pages))
        started = time.process_time()
        for text in texts:
            fingerprint(text)
        print_ms.append((time.process_time() - started) * 1000 / len(pages))
    words = sum(len(text.split()) for text in texts) // max(1, len(texts))
    return statistics.median(extract_ms), statistics.median(print_ms), words


def _search_store(kind: str, workdir: Path) -> tuple[Store, Callable[[], None]]:
    """The store to measure search on, and how to remove what the bench put there."""
    if kind == "sqlite":
        sqlite = SqliteStore(workdir / "search.sqlite3")
        return sqlite, sqlite.close
    prefix = f"bench-stories-{os.getpid()}"
    # Built anew, not model_copy'd: the index names derive from the prefix in validation.
    settings = ElasticsearchSettings(prefix=prefix)  # the rest from NEWSFLOW_ELASTICSEARCH_*
    if not settings.url:
        raise SystemExit("--search-store elasticsearch needs NEWSFLOW_ELASTICSEARCH_URL")
    assert settings.index.startswith(prefix), settings.index
    es = ElasticsearchStore(settings)

    def remove() -> None:
        client = Elasticsearch(settings.url)
        names = [i["name"] for i in client.indices.resolve_index(name=f"{prefix}*")["indices"]]
        if names:
            client.indices.delete(index=",".join(names))
        es.close()

    return es, remove


def search_latency(count: int, workdir: Path, kind: str = "sqlite") -> list[str]:
    """Median and max ms of searches on ``count`` stored articles (stories of 1-4)."""
    rng = random.Random(5)  # noqa: S311
    store, remove = _search_store(kind, workdir)
    store.ensure()
    started = time.perf_counter()
    batch: list[Article] = []
    story = ""
    for number in range(count):
        a, b, c, d = _TOPICS[number % len(_TOPICS)]
        event = {"name": rng.choice(_NAMES), "name2": rng.choice(_NAMES),
                 "place": rng.choice(_PLACES), "a": a, "b": b, "c": c, "d": d}  # fmt: skip
        doc = Doc(f"s{number}", "", "base", f"{event['place']} {a}", _paragraphs(rng, event, 3),
                  number)  # fmt: skip
        article = _article(doc, None)
        story = article.doc_id if rng.random() < 0.4 or not story else story
        # 50 sites, so that a domain filter keeps 2% of the matches
        domain = f"site{number % 50}.example"
        batch.append(article.model_copy(update={"story_id": story, "domain": domain}))
        if len(batch) == 1000:
            store.index_batch(batch)
            batch = []
    store.index_batch(batch)
    if isinstance(store, ElasticsearchStore):
        store.refresh()
    load = time.perf_counter() - started
    lines = [f"loaded {count} articles in {load:.0f} s"]
    queries = [
        ("two words", SearchQuery(text="harbor council")),
        ("three words", SearchQuery(text="Alvarez budget Northfield")),
        ("phrase", SearchQuery(text='"declined to comment"')),
        ("word + filter", SearchQuery(text="flood", domain="site5.example")),
        ("by date", SearchQuery(text="strike wages", sort="date")),
        ("page 5", SearchQuery(text="storm", offset=40)),
    ]
    for label, query in queries:
        for collapse in (True, False):
            q = dataclasses.replace(query, collapse=collapse)
            times = []
            result = store.search(q)
            for _ in range(7):
                t = time.perf_counter()
                result = store.search(q)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            lines.append(
                f"| {label} | {'collapsed' if collapse else '--all'} | {result.total} | "
                f"{result.articles} | {statistics.median(times):.0f} | {times[-1]:.0f} |"
            )
    remove()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bases", type=int, default=200)
    parser.add_argument("--search-docs", type=int, default=100_000)
    parser.add_argument(
        "--search-store",
        choices=("sqlite", "elasticsearch"),
        default="sqlite",
        help="where to measure search (elasticsearch: NEWSFLOW_ELASTICSEARCH_URL)",
    )
    parser.add_argument("--site-pages", type=int, default=200)
    parser.add_argument("--only-search", action="store_true", help="skip the other parts")
    args = parser.parse_args()
    docs = corpus(args.bases)
    kinds: dict[str, int] = {}
    for doc in docs:
        kinds[doc.kind] = kinds.get(doc.kind, 0) + 1
    print(f"corpus: {len(docs)} articles {kinds}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.only_search:
            _quality_and_cost(docs, args.site_pages, work)
        if args.search_docs:
            print(
                f"\nsearch on {args.search_store}\n"
                "| query | mode | total | articles | median ms | max ms |\n"
                "|---|---|---|---|---|---|"
            )
            for line in search_latency(args.search_docs, work, args.search_store):
                print(line)


def _quality_and_cost(docs: Sequence[Doc], site_pages: int, work: Path) -> None:
    print("\n| story assignment (indexer) | precision | recall |\n|---|---|---|")
    for threshold in (0.7, 0.8, 0.85, 0.9):
        p, r = assignment_quality(docs, threshold, work)
        print(f"| StoryAssigner, threshold {threshold} | {p:.3f} | {r:.3f} |")
    print("\n| pairwise, all pairs | precision | recall |\n|---|---|---|")
    for line in pairwise_comparison(docs):
        print(line)
    extract_ms, print_ms = cpu_cost(docs[:300])
    share = print_ms / max(1e-9, extract_ms - print_ms)
    print(
        f"\nCPU per page, the corpus's small pages: extract_page {extract_ms:.2f} ms "
        f"including the fingerprint {print_ms:.2f} ms: +{share:.1%} over extraction without it"
    )
    if site_pages:
        extract_ms, print_ms, words = site_cpu_cost(site_pages, work)
        share = print_ms / max(1e-9, extract_ms - print_ms)
        print(
            f"CPU per page, {site_pages} bench.site news pages ({words} words of text on "
            f"average): extract_page {extract_ms:.2f} ms including the fingerprint "
            f"{print_ms:.2f} ms: +{share:.1%} over extraction without it"
        )


if __name__ == "__main__":
    main()
