"""Issue 10's fault suite on a real Kafka broker and Elasticsearch node of its own.

Every test injects its faults, lets the pipeline recover by itself, and then measures
the same three things (tests/faults/support.py): lost, dup, and whether a committed
offset ever passed what Elasticsearch had acknowledged. CI runs N = 200 with fewer
kills (tests/faults/support.py: KILLS, BROKER_KILLS, POLLER_KILLS); ``make faults N=...``
runs every fault at its full count and length.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from connectors.buffer import OutRecord
from connectors.kafka import KafkaBuffer
from newsflow.feedlist import load_feeds
from newsflow.identity import content_hash, doc_id
from newsflow.pipeline import drain, poll_once
from newsflow.publish import SCHEMA_HEADER
from newsflow.settings import Settings
from schemas import SCHEMA_VERSION, Article
from tests.faults.support import (
    BROKER_KILLS,
    KILLS,
    LARGE,
    POLLER_KILLS,
    Fault,
    FaultSite,
    N,
    Stack,
    ThrottlingProxy,
    committed,
    dead_letters,
    es_docs,
    es_ids,
    fetched_or_done,
    kill_group,
    measure,
    newsflow,
    newsflow_run,
    report,
    site_ids,
    topic_records,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(1800)]

HOSTS = 4


def _poll(feeds: Path) -> None:
    poll_once(Settings(), load_feeds(feeds))


def _assert_clean(env: dict[str, str], site: FaultSite | None = None) -> None:
    found = measure(env)
    assert found.lost == [], f"lost {len(found.lost)}: {found.line()}"
    assert found.dup == 0 and found.history_dup == 0, found.line()
    assert found.ahead == [], f"committed past Elasticsearch: {found.ahead[:5]}"
    if site is not None:
        missing = set(site_ids(site)) - es_ids(
            env["NEWSFLOW_ELASTICSEARCH_URL"], Settings().elasticsearch.index
        )
        assert not missing, f"{len(missing)} site articles never indexed"


def _es_count(env: dict[str, str]) -> int:
    url = env["NEWSFLOW_ELASTICSEARCH_URL"]
    index = Settings().elasticsearch.index
    try:
        # A search-idle shard skips its scheduled refreshes: refresh, then count.
        refresh = urllib.request.Request(f"{url}/{index}/_refresh", method="POST")
        urllib.request.urlopen(refresh, timeout=5).close()
        with urllib.request.urlopen(f"{url}/{index}/_count", timeout=5) as response:
            return int(json.load(response)["count"])
    except OSError:
        return -1


def _topic_end(env: dict[str, str]) -> int:
    return len(topic_records(env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"], env["NEWSFLOW_KAFKA_TOPIC"]))


def _written_or_done(env: dict[str, str], start: int, child: subprocess.Popen[str]) -> bool:
    return _es_count(env) > start or child.poll() is not None


def _published_or_done(env: dict[str, str], start: int, child: subprocess.Popen[str]) -> bool:
    return _topic_end(env) > start or child.poll() is not None


# 1 -------------------------------------------------------------------------------------


def test_kafka_killed_during_polls(
    fault_stack: Stack, fault_env: dict[str, str], tmp_path: Path
) -> None:
    """kill -9 the broker three times in polling cycles; the next cycle completes."""
    site = FaultSite(N, HOSTS)
    feeds = site.feeds_toml(tmp_path / "feeds.toml")
    outcomes: list[int] = []
    recover: list[float] = []
    with site.serving():
        for kill in range(BROKER_KILLS):
            before = sum(site.page_hits().values())
            child = newsflow(fault_env, "run", "--once", "--feeds", str(feeds))
            target = before + max(5, N // 8)
            wait_for(
                partial(fetched_or_done, site, target, child),
                300,
                "the cycle to fetch pages",
            )
            fault_stack.kill("kafka")
            down_at = time.monotonic()
            time.sleep(2)
            fault_stack.up()
            out, _ = child.communicate(timeout=300)
            recover.append(time.monotonic() - down_at)
            outcomes.append(child.returncode)
            # Loudly: a failed cycle exits non-zero and says why.
            assert child.returncode == 0 or "Kafka" in out or "kafka" in out, out[-2000:]
            del kill
        code, out = newsflow_run(fault_env, "run", "--once", "--feeds", str(feeds))
        assert code == 0, out[-3000:]
    drain(Settings(), until_idle=True)
    _assert_clean(fault_env, site)
    report(
        "1 kafka kill -9 during polls",
        f"{BROKER_KILLS} broker kill -9 + restart, cycle exits {outcomes}",
        measure(fault_env),
        max(recover),
    )


# 2 -------------------------------------------------------------------------------------


def _publish_articles(env: dict[str, str], numbers: range) -> set[str]:
    """Articles ``numbers`` (see ``_article``) published straight to the topic: doc ids."""
    headers = {SCHEMA_HEADER: SCHEMA_VERSION}
    articles = [_article(n, f"Story {n}. " + "The council met again. " * 20) for n in numbers]
    buffer = KafkaBuffer(Settings().kafka)
    try:
        buffer.ensure_topics([env["NEWSFLOW_KAFKA_TOPIC"], env["NEWSFLOW_KAFKA_DLQ_TOPIC"]])
        buffer.publish(
            env["NEWSFLOW_KAFKA_TOPIC"],
            [OutRecord(a.doc_id, a.model_dump_json().encode(), headers) for a in articles],
        )
    finally:
        buffer.close()
    return {a.doc_id for a in articles}


def _written_uncommitted(env: dict[str, str]) -> int:
    """Records at or past their partition's committed offset whose document is stored:
    written by a bulk whose commit never came."""
    records = topic_records(env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"], env["NEWSFLOW_KAFKA_TOPIC"])
    offsets = committed(
        env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"],
        env["NEWSFLOW_KAFKA_CONSUMER_GROUP"],
        env["NEWSFLOW_KAFKA_TOPIC"],
    )
    ids = es_ids(env["NEWSFLOW_ELASTICSEARCH_URL"], Settings().elasticsearch.index)
    return sum(1 for r in records if r.offset >= offsets.get(r.partition, 0) and r.key in ids)


def test_indexer_killed_between_bulk_and_commit(
    fault_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 `newsflow index` as documents land, new records before every round:
    nothing lost, nothing doubled, the committed offset never ahead of Elasticsearch."""
    site = FaultSite(N, HOSTS)
    with site.serving():
        _poll(site.feeds_toml(tmp_path / "feeds.toml"))
    rng = random.Random(2)
    batch = "5"
    env = {**fault_env, "NEWSFLOW_INDEXER_BATCH_SIZE": batch}
    monkeypatch.setenv("NEWSFLOW_INDEXER_BATCH_SIZE", batch)
    # Every round has records of its own to index, so every kill lands among bulk
    # requests and commits, never after the topic is drained.
    chunk = max(20, N // KILLS)
    checks: list[str] = []
    between = 0
    for round_ in range(KILLS):
        _publish_articles(env, range(30_000 + round_ * chunk, 30_000 + (round_ + 1) * chunk))
        start = max(0, _es_count(env))
        child = newsflow(env, "index", start_new_session=True)
        try:
            wait_for(
                partial(_written_or_done, env, start, child),
                120,
                "the indexer to write",
                interval=0.02,
            )
            assert child.poll() is None, child.communicate()[0][-3000:]
            time.sleep(rng.uniform(0, 0.3))
        finally:
            kill_group(child)
        found = measure(env)
        assert found.ahead == [], f"committed past Elasticsearch after a kill: {found.ahead[:5]}"
        written = _written_uncommitted(env)
        between += written > 0
        checks.append(f"{found.documents}/{found.acknowledged} (+{written} uncommitted)")
    # The group holds the last killed member until its session times out (45 s): a
    # drain that gave up after the usual idle time would end before it is assigned.
    monkeypatch.setenv("NEWSFLOW_INDEXER_IDLE_TIMEOUT", "120")
    started = time.monotonic()
    summary = drain(Settings(), until_idle=True)
    took = time.monotonic() - started
    _assert_clean(env, site)
    found = measure(env)
    assert found.acknowledged == N + KILLS * chunk, found.line()
    report(
        "2 indexer kill -9",
        f"{KILLS} kill -9 of `newsflow index` (batch {batch}, {chunk} new records before each); "
        f"{between} kills left written-but-uncommitted documents, "
        f"{summary.duplicates} absorbed as duplicates by the final drain "
        f"(docs/acknowledged at kills: {checks})",
        found,
        took,
    )


# 3 -------------------------------------------------------------------------------------


def test_elasticsearch_stopped_during_indexing(
    fault_stack: Stack, fault_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGSTOP Elasticsearch mid-drain: no commits, doctor FAILs, indexing resumes."""
    down = 60.0 if LARGE else 20.0
    site = FaultSite(N, HOSTS)
    with site.serving():
        _poll(site.feeds_toml(tmp_path / "feeds.toml"))
    env = {**fault_env, "NEWSFLOW_INDEXER_BATCH_SIZE": "10"}
    topic, group = env["NEWSFLOW_KAFKA_TOPIC"], env["NEWSFLOW_KAFKA_CONSUMER_GROUP"]
    kafka = env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    child = newsflow(env, "index", start_new_session=True)
    try:
        wait_for(lambda: _es_count(env) > 0, 120, "the indexer to write")
        fault_stack.pause("es")
        try:
            # Records published while Elasticsearch is away: the indexer has work it
            # cannot finish whatever it had left when the stop came (at N = 200 it may
            # well have drained the site's records already).
            late = _publish_articles(env, range(40_000, 40_000 + max(20, N // 4)))
            time.sleep(2)  # a commit of a bulk acknowledged just before the stop may land
            at_stop = committed(kafka, group, topic)
            code, doctor = newsflow_run(env, "doctor", "--timeout", "2", timeout=120)
            time.sleep(max(0.0, down - 2))
            at_end = committed(kafka, group, topic)
        finally:
            fault_stack.resume("es")
        resumed_at = time.monotonic()
        assert child.poll() is None, child.communicate()[0][-3000:]
        assert at_end == at_stop, (
            f"offsets committed while Elasticsearch was down: {at_stop} -> {at_end}"
        )
        assert code == 1, doctor
        assert any(
            line.startswith("FAIL") and "elasticsearch" in line for line in doctor.splitlines()
        ), doctor
        ends = _topic_end(env)
        assert sum(at_end.values()) < ends, (at_end, ends)
        try:
            wait_for(lambda: committed(kafka, group, topic) != at_end, 120, "a commit after resume")
        except AssertionError:
            kill_group(child)
            out, _ = child.communicate()
            raise AssertionError(f"no commit after resume; indexer:\n{out[-4000:]}") from None
        recover = time.monotonic() - resumed_at
        wait_for(lambda: sum(committed(kafka, group, topic).values()) >= ends, 300, "lag 0", 0.5)
    finally:
        kill_group(child)
    missing = late - es_ids(env["NEWSFLOW_ELASTICSEARCH_URL"], Settings().elasticsearch.index)
    assert not missing, f"{len(missing)} of the records published while stopped not indexed"
    _assert_clean(env, site)
    report(
        "3 elasticsearch stopped",
        f"SIGSTOP Elasticsearch {down:.0f} s mid-drain ({sum(at_stop.values())} of "
        f"{ends - len(late)} site records committed at the stop), {len(late)} records "
        "published while stopped; no commit while down; doctor FAIL",
        measure(env),
        recover,
    )


# 4 -------------------------------------------------------------------------------------


def test_bulk_items_answered_429(fault_env: dict[str, str], tmp_path: Path) -> None:
    """A proxy turns 30 % of bulk item results into 429: retried, nothing dead-lettered."""
    site = FaultSite(N, HOSTS)
    with site.serving():
        _poll(site.feeds_toml(tmp_path / "feeds.toml"))
    with ThrottlingProxy(fault_env["NEWSFLOW_ELASTICSEARCH_URL"], 0.3).serving() as proxy:
        started = time.monotonic()
        base = Settings()
        through = base.elasticsearch.model_copy(update={"url": proxy.url})
        settings = base.model_copy(update={"elasticsearch": through})
        summary = drain(settings, until_idle=True)
        took = time.monotonic() - started
    assert proxy.rewritten > 0 and summary.retries > 0, (proxy.rewritten, summary)
    assert summary.dead_lettered == 0 and dead_letters(fault_env) == []
    _assert_clean(fault_env, site)
    report(
        "4 bulk items 429",
        f"{proxy.rewritten} bulk item results rewritten to 429 over {proxy.bulks} bulks (30 %)",
        measure(fault_env),
        took,
    )


# 5 -------------------------------------------------------------------------------------


def _article(number: int, text: str) -> Article:
    url = f"http://127.0.0.9/poison-suite/{number}.html"
    moment = datetime(2025, 4, 1, tzinfo=UTC)
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(moment),
        url=url,
        source_url=url,
        title=f"Article {number}",
        text=text,
        authors=[],
        published_at=moment,
        fetched_at=moment,
        language="en",
        source="Poison",
        domain="127.0.0.9",
        feed_url="http://127.0.0.9/feed.atom",
        tags=[],
        content_hash=content_hash(text),
    )


def test_poison_records(fault_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """100 poison records among N: exactly those dead-lettered, the rest indexed, lag 0."""
    env = {**fault_env, "NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES": "65536"}
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES", "65536")
    headers = {SCHEMA_HEADER: SCHEMA_VERSION}
    good = [_article(n, f"Story {n}. " + "The council met again. " * 20) for n in range(N)]
    records = [OutRecord(a.doc_id, a.model_dump_json().encode(), headers) for a in good]
    poison: dict[str, str] = {}
    for n in range(100):
        if n < 45:
            key, value = f"poison-json-{n}", b'{"doc_id": "x", "title": unterminated'
            poison[key] = "DecodeError"
        elif n < 90:
            article = _article(10_000 + n, "Wrong type. " * 30)
            data = json.loads(article.model_dump_json())
            data["published_at"] = {"when": "yesterday"}
            key, value = article.doc_id, json.dumps(data).encode()
            poison[key] = "DecodeError"
        else:
            article = _article(20_000 + n, "Far too long. " * 6_000)  # ~84 KB > 64 KB
            key, value = article.doc_id, article.model_dump_json().encode()
            poison[key] = "Rejected"
        records.append(OutRecord(key, value, headers))
    random.Random(5).shuffle(records)
    buffer = KafkaBuffer(Settings().kafka)
    try:
        buffer.ensure_topics([env["NEWSFLOW_KAFKA_TOPIC"], env["NEWSFLOW_KAFKA_DLQ_TOPIC"]])
        buffer.publish(env["NEWSFLOW_KAFKA_TOPIC"], records)
    finally:
        buffer.close()
    started = time.monotonic()
    summary = drain(Settings(), until_idle=True)
    took = time.monotonic() - started
    dead = dead_letters(env)
    assert sorted(d.key or "" for d in dead) == sorted(poison), summary
    for letter in dead:
        assert letter.headers["error-class"] == poison[letter.key or ""], letter.headers
        assert letter.headers["error"] and letter.headers["origin-topic"], letter.headers
    stored = es_ids(env["NEWSFLOW_ELASTICSEARCH_URL"], Settings().elasticsearch.index)
    assert stored == {a.doc_id for a in good}
    ends = _topic_end(env)
    offsets = committed(
        env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"],
        env["NEWSFLOW_KAFKA_CONSUMER_GROUP"],
        env["NEWSFLOW_KAFKA_TOPIC"],
    )
    assert sum(offsets.values()) == ends, f"lag left: {offsets} of {ends}"
    found = measure(env, expect_dead=set(poison))
    assert found.lost == [] and found.dup == 0 and found.ahead == [], found.line()
    report(
        "5 poison records",
        "100 poison: 45 invalid JSON, 45 wrong field type, 10 over the bulk byte bound",
        found,
        took,
    )


# 6 -------------------------------------------------------------------------------------


def test_feed_state_wiped_and_articles_edited(fault_env: dict[str, str], tmp_path: Path) -> None:
    """Three polls, feed state wiped between them, 10 % edited: one doc per article."""
    site = FaultSite(N, HOSTS)
    feeds = site.feeds_toml(tmp_path / "feeds.toml")
    url = fault_env["NEWSFLOW_ELASTICSEARCH_URL"]
    rng = random.Random(6)
    edited: set[str] = set()
    dead = 0
    with site.serving():
        for cycle in range(3):
            if cycle:
                request = urllib.request.Request(
                    f"{url}/{Settings().elasticsearch.feeds_index}", method="DELETE"
                )
                urllib.request.urlopen(request, timeout=30).close()
                for page in rng.sample(list(site.pages.values()), max(1, N // 10)):
                    site.edit(page, datetime.now(UTC))
                    edited.add(site.url(page))
            _poll(feeds)
            dead += drain(Settings(), until_idle=True).dead_lettered
    docs = es_docs(url, Settings().elasticsearch.index, ["url", "text"])
    history = es_docs(url, Settings().elasticsearch.history_index, ["doc_id"])
    assert len(docs) == N and {d["url"] for d in docs} == set(site.pages)
    by_url = {d["url"]: d["text"] for d in docs}
    for page_url in edited:
        page = site.pages[page_url]
        assert page.text_marker in by_url[page_url], page_url
    edits = sum(p.edits for p in site.pages.values())
    assert len(history) == N + edits  # every revision once, none refused as a conflict
    assert dead == 0 and dead_letters(fault_env) == []
    hits = site.page_hits()
    assert all(hits[u] == 1 for u in site.pages if u not in edited)
    _assert_clean(fault_env, site)
    report(
        "6 feed state wiped",
        f"3 polls, feed states deleted between them, {edits} edits of {len(edited)} articles",
        measure(fault_env),
        None,
    )


# 7 -------------------------------------------------------------------------------------


def test_poller_killed_mid_cycle(fault_env: dict[str, str], tmp_path: Path) -> None:
    """kill -9 `newsflow run --once` three times: nothing indexed is fetched again."""
    site = FaultSite(N, 8)
    feeds = site.feeds_toml(tmp_path / "feeds.toml")
    url = fault_env["NEWSFLOW_ELASTICSEARCH_URL"]
    index = Settings().elasticsearch.index
    refetched: list[str] = []
    indexed_at_kill: list[int] = []
    with site.serving():
        for _kill in range(POLLER_KILLS):
            indexed = {d["url"] for d in es_docs(url, index, ["url"])}
            before = site.page_hits()
            published = _topic_end(fault_env)
            child = newsflow(fault_env, "run", "--once", "--feeds", str(feeds),
                             start_new_session=True)  # fmt: skip
            try:
                wait_for(
                    partial(_published_or_done, fault_env, published, child),
                    300,
                    "a feed of the cycle to publish",
                    interval=0.2,
                )
            finally:
                kill_group(child)
            fetched = site.page_hits() - before
            refetched += [u for u in fetched if u in indexed]
            drain(Settings(), until_idle=True)
            indexed_at_kill.append(len(es_docs(url, index, ["url"])))
        indexed = {d["url"] for d in es_docs(url, index, ["url"])}
        before = site.page_hits()
        started = time.monotonic()
        code, out = newsflow_run(fault_env, "run", "--once", "--feeds", str(feeds))
        assert code == 0, out[-3000:]
        refetched += [u for u in site.page_hits() - before if u in indexed]
        drain(Settings(), until_idle=True)
        took = time.monotonic() - started
    assert refetched == [], f"{len(refetched)} indexed pages fetched again"
    assert indexed_at_kill[0] < N, "the first kill came after the whole cycle"
    _assert_clean(fault_env, site)
    report(
        "7 poller kill -9",
        f"{POLLER_KILLS} kill -9 of `newsflow run --once` mid-cycle "
        f"(indexed after each: {indexed_at_kill})",
        measure(fault_env),
        took,
    )


# 8 -------------------------------------------------------------------------------------


def test_pages_failing_transiently(
    fault_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 % of pages answer 503 or stall first: retried until every one is indexed."""
    for name, value in {
        "NEWSFLOW_FETCH_READ_TIMEOUT": "1",
        "NEWSFLOW_FETCH_DEADLINE": "2",
        "NEWSFLOW_FEED_PAGE_RETRY_BASE": "0.05",
        "NEWSFLOW_FEED_PAGE_RETRY_MAX": "0.2",
        "NEWSFLOW_FEED_PAGE_RETRIES_PER_POLL": str(N),
    }.items():
        monkeypatch.setenv(name, value)
    site = FaultSite(N, HOSTS)
    feeds = site.feeds_toml(tmp_path / "feeds.toml")
    failing = random.Random(8).sample(sorted(site.pages), max(2, N // 10))
    for number, page_url in enumerate(failing):
        site.faults[page_url] = Fault(["503"] if number % 2 else ["timeout"])
    url = fault_env["NEWSFLOW_ELASTICSEARCH_URL"]
    index = Settings().elasticsearch.index
    wanted = set(site.pages)
    cycles = 0
    started = time.monotonic()
    with site.serving():
        while cycles < 6:
            cycles += 1
            _poll(feeds)
            drain(Settings(), until_idle=True)
            if {d["url"] for d in es_docs(url, index, ["url"])} >= wanted:
                break
            time.sleep(0.3)  # past the (tiny) retry backoff
    took = time.monotonic() - started
    hits = site.page_hits()
    assert cycles >= 2
    assert all(hits[u] == 2 for u in failing), {u: hits[u] for u in failing if hits[u] != 2}
    _assert_clean(fault_env, site)
    report(
        "8 pages failing transiently",
        f"{len(failing)} pages ({len(failing) // 2} x 503, {len(failing) - len(failing) // 2} "
        f"x stalled past the read timeout) then 200; indexed after {cycles} polls",
        measure(fault_env),
        took,
    )
