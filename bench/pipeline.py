"""The pipeline benchmark (issue 11): newsflow against plain trafilatura, in one run.

    make bench            # = .venv/bin/python -m bench.pipeline --articles 2000 --hosts 20
    .venv/bin/python -m bench.pipeline --articles 200 --hosts 5 --fresh-articles 10 \
        --fresh-seconds 20 --poll-interval 5 --out bench/out/

Phases (each prints one line with its counts and elapsed time):

1. ``site``: a generated news site (``bench.site``) on H loopback hosts, one feed each.
2. ``r1``: plain ``trafilatura.extract(..., with_metadata=True)`` in this process over the
   pages (wall seconds of the calls only); the ceiling is ``os.cpu_count() x R1``.
3. ``stack`` / ``embedded``: fresh ``newsflow run --once`` then ``newsflow index
   --until-idle`` processes, as a user runs them (Prefect recording when the stack has
   a Prefect server); wall time from the first start until the index counts every
   article. Unique topic, group and index names per run.
4. ``replay``: the stack run's topic into a new index with a new consumer group.
5. ``stages``: CPU seconds per article of each stage in isolation, in this process.
6. RSS: every subprocess's tree is sampled (``bench.procs``); ``--rss-sizes`` adds
   stack runs at other sizes.
7. ``freshness``: ``newsflow run --every`` and ``newsflow index`` in the background while
   new articles appear in the feeds; appeared -> searchable latency.
8. ``workers``: the embedded pipeline with 1..N extraction workers.

Figures go to ``OUT/pipeline.json`` and ``OUT/pipeline.png``; ``--write-docs`` also writes
``docs/performance.md`` and ``bench/results/``. A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.procs import Watched, cpu_seconds, run_watched
from bench.site import FEED, Item, Site, free_port, generate, host_addresses, write_feed

ROOT = Path(__file__).resolve().parent.parent
NEWSFLOW = str(Path(sys.executable).parent / "newsflow")
STACK = ROOT / "deploy" / "local" / "stack"
STACK_RUN = Path.home() / ".cache" / "newsflow" / "stack" / "run"
_STRIPPED = ("NEWSFLOW_", "PREFECT_API_URL")


def _log(phase: str, message: str, started: float) -> None:
    print(f"[{phase:>9}] {message} ({time.perf_counter() - started:.1f} s)", flush=True)


@contextmanager
def _phase(phase: str) -> Iterator[Callable[[str], None]]:
    started = time.perf_counter()
    print(f"[{phase:>9}] ...", flush=True)
    yield lambda message: _log(phase, message, started)


# --- environment ---------------------------------------------------------------------------


def stack_env() -> dict[str, str]:
    """NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS, NEWSFLOW_ELASTICSEARCH_URL, PREFECT_API_URL."""
    done = subprocess.run(  # noqa: S603
        [str(STACK), "status"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the stack is not running (deploy/local/stack up): {done.stderr}")
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _names(tag: str) -> dict[str, str]:
    name = f"bench-{datetime.now(UTC):%m%d%H%M%S}-{random.getrandbits(20):05x}-{tag}"
    return {
        "NEWSFLOW_KAFKA_TOPIC": f"{name}.articles",
        "NEWSFLOW_KAFKA_DLQ_TOPIC": f"{name}.articles.dlq",
        "NEWSFLOW_KAFKA_CONSUMER_GROUP": f"{name}-indexer",
        "NEWSFLOW_ELASTICSEARCH_INDEX": f"{name}-articles",
        "NEWSFLOW_ELASTICSEARCH_HISTORY_INDEX": f"{name}-history",
        "NEWSFLOW_ELASTICSEARCH_FEEDS_INDEX": f"{name}-feeds",
        "NEWSFLOW_ELASTICSEARCH_REVISITS_INDEX": f"{name}-revisits",
        # Names a newsflow may add later derive from the prefix: unique too.
        "NEWSFLOW_ELASTICSEARCH_PREFIX": name,
    }


class Bench:
    """What the phases share: the site, the stack's addresses, a work directory, figures."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.out = Path(args.out)
        self.stack = stack_env()
        self.figures: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m bench.pipeline", *sys.argv[1:]]),
            "cores": os.cpu_count() or 1,
            "articles": args.articles,
            "hosts": args.hosts,
            "seed": args.seed,
        }
        self.created_indices: list[str] = []
        self.created_topics: list[str] = []
        self.site: Site | None = None
        self.fresh_items: list[Item] = []
        self.stack_topic = ""

    # -- environments ------------------------------------------------------------------------

    def env(self, backend: str, tag: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
        per_host = math.ceil(self.args.articles / self.args.hosts)
        env |= {
            "NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
            "NEWSFLOW_FEED_MAX_ENTRIES": str(max(200, per_host)),
            "NEWSFLOW_DATA_DIR": str(self.work / f"data-{tag}"),
            "PREFECT_HOME": str(self.work / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "NO_COLOR": "1",
        }
        if self.stack.get("PREFECT_API_URL"):
            env["PREFECT_API_URL"] = self.stack["PREFECT_API_URL"]
        if backend == "stack":
            names = _names(tag)
            env |= names
            env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"] = self.stack["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"]
            env["NEWSFLOW_ELASTICSEARCH_URL"] = self.stack["NEWSFLOW_ELASTICSEARCH_URL"]
            self.created_topics += [
                names["NEWSFLOW_KAFKA_TOPIC"],
                names["NEWSFLOW_KAFKA_DLQ_TOPIC"],
            ]
            self.created_indices += [
                value for key, value in names.items() if key.endswith("_INDEX")
            ] + [names["NEWSFLOW_ELASTICSEARCH_PREFIX"]]
        return env | extra

    def feeds_file(self, name: str, feed: str, interval: float | None = None) -> Path:
        assert self.site is not None
        lines = []
        for host in self.site.hosts:
            lines.append(f'[[feeds]]\nurl = "http://{host}:{self.site.port}/{feed}"')
            lines.append(f'name = "Ledger {host}"')
            if interval is not None:
                lines.append(f"poll_interval = {interval:g}")
            lines.append("")
        path = self.work / name
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    def subset_feed(self, count: int) -> tuple[str, int]:
        """A feed per host listing the first ``count`` articles overall; (name, listed)."""
        assert self.site is not None
        chosen = self.site.items[:count]
        name = f"feed-{count}.xml"
        for host, items in self.site.by_host(chosen).items():
            write_feed(self.site.root / host / name, host, self.site.port, items)
        return name, len(chosen)

    # -- counting ------------------------------------------------------------------------------

    def es_count(self, index: str) -> int:
        url = self.stack["NEWSFLOW_ELASTICSEARCH_URL"]
        response = httpx.get(f"{url}/{index}/_count", timeout=10)
        return int(response.json().get("count", 0)) if response.status_code == 200 else 0

    def wait_count(self, count: Callable[[], int], expected: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        seen = count()
        while seen < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = count()
        return seen

    # -- one pipeline run ----------------------------------------------------------------------

    def pipeline(
        self, env: Mapping[str, str], feeds: Path, expected: int, count: Callable[[], int], tag: str
    ) -> dict[str, Any]:
        """Feeds -> searchable, two ways on fresh topics and indices.

        As production runs it (the figure the targets are about): the indexer is a
        service (``newsflow index``) already running when ``newsflow run --once`` starts,
        so indexing overlaps polling. Then as the issue first measured it: ``run --once``,
        then ``index --until-idle``, one after the other (``sequential``).
        """
        concurrent = self._pipeline_once(env, feeds, expected, count, tag, overlap=True)
        backend = "stack" if env.get("NEWSFLOW_ELASTICSEARCH_URL") else "embedded"
        fresh = self.env(backend, f"{tag}-seq")
        if backend == "embedded":
            count = _sqlite_count(Path(fresh["NEWSFLOW_DATA_DIR"]))
        else:
            count = partial(self.es_count, fresh["NEWSFLOW_ELASTICSEARCH_INDEX"])
        sequential = self._pipeline_once(fresh, feeds, expected, count, f"{tag}-seq", overlap=False)
        return {**concurrent, "sequential": sequential}

    def _pipeline_once(
        self,
        env: Mapping[str, str],
        feeds: Path,
        expected: int,
        count: Callable[[], int],
        tag: str,
        *,
        overlap: bool,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        service = None
        if overlap:
            service = Watched([NEWSFLOW, "index"], env, self.out / f"{tag}-indexer.log").start()
        run = run_watched(
            [NEWSFLOW, "run", "--once", "--feeds", str(feeds)], env, self.out / f"{tag}-run.log"
        )
        index: Watched
        if service is not None:
            searchable = self.wait_count(count, expected, timeout=600.0)
            wall = time.perf_counter() - started
            service.stop()
            index = service
        else:
            index = run_watched(
                [NEWSFLOW, "index", "--until-idle"], env, self.out / f"{tag}-index.log"
            )
            searchable = self.wait_count(count, expected)
            wall = time.perf_counter() - started
        return {
            "expected": expected,
            "searchable": searchable,
            "wall_seconds": round(wall, 3),
            "rate": round(searchable / wall, 3),
            "indexer": "service, overlapping the poll" if overlap else "index --until-idle after",
            "run": run.summary(),
            "index": index.summary(),
        }


# --- phases ------------------------------------------------------------------------------------


def phase_site(bench: Bench) -> None:
    args = bench.args
    with _phase("site") as done:
        hosts = host_addresses(args.hosts)
        port = free_port(hosts)
        root = bench.work / "site"
        total = args.articles + args.fresh_articles
        site = generate(root, total, args.hosts, seed=args.seed, port=port)
        # The last fresh_articles pages are held back for the freshness phase.
        fresh = site.items[args.articles :]
        bench.site = replace(site, items=site.items[: args.articles])
        for host, items in bench.site.by_host().items():
            write_feed(root / host / FEED, host, port, items)
        bench.fresh_items = fresh
        sizes = site.page_bytes[: args.articles]
        bench.figures["site"] = {
            "pages": len(sizes),
            "port": port,
            "page_kb": {
                "min": round(min(sizes) / 1000, 1),
                "median": round(statistics.median(sizes) / 1000, 1),
                "max": round(max(sizes) / 1000, 1),
                "total_mb": round(sum(sizes) / 1e6, 1),
            },
        }
        done(f"{len(sizes)} pages on {args.hosts} hosts, {sum(sizes) / 1e6:.0f} MB")


def _pages(bench: Bench, limit: int | None) -> list[Item]:
    assert bench.site is not None
    items = bench.site.items
    if limit and limit < len(items):
        step = len(items) / limit
        items = [items[int(n * step)] for n in range(limit)]
    return items


def phase_r1(bench: Bench) -> None:
    import trafilatura

    assert bench.site is not None
    items = _pages(bench, bench.args.r1_sample)
    with _phase("r1") as done:
        first = bench.site.page(items[0]).read_text(encoding="utf-8")
        trafilatura.extract(first, include_comments=False, include_tables=True)  # warm-up
        spent = cpu = 0.0
        for item in items:
            html = bench.site.page(item).read_text(encoding="utf-8")
            wall, started_cpu = time.perf_counter(), time.process_time()
            trafilatura.extract(
                html, include_comments=False, include_tables=True, with_metadata=True
            )
            spent += time.perf_counter() - wall
            cpu += time.process_time() - started_cpu
        r1 = len(items) / spent
        cores = bench.figures["cores"]
        bench.figures["r1"] = {
            "pages": len(items),
            "seconds": round(spent, 3),
            "cpu_seconds": round(cpu, 3),
            "rate": round(r1, 3),
            "ceiling": round(cores * r1, 3),
        }
        done(
            f"R1 {r1:.1f} pages/s over {len(items)} pages; ceiling {cores} x R1 = {cores * r1:.1f}"
        )


def phase_stack(bench: Bench) -> None:
    with _phase("stack") as done:
        env = bench.env("stack", "stack")
        feeds = bench.feeds_file("feeds.toml", FEED)
        index = env["NEWSFLOW_ELASTICSEARCH_INDEX"]
        since = datetime.now(UTC)
        result = bench.pipeline(
            env, feeds, bench.args.articles, lambda: bench.es_count(index), "stack"
        )
        result["prefect_flow_runs"] = _prefect_runs(bench, since)
        result["topic"] = env["NEWSFLOW_KAFKA_TOPIC"]
        result["ratio_to_ceiling"] = round(result["rate"] / bench.figures["r1"]["ceiling"], 3)
        bench.figures["stack"] = result
        bench.stack_topic = env["NEWSFLOW_KAFKA_TOPIC"]
        done(
            f"{result['searchable']}/{result['expected']} searchable, {result['rate']:.1f} "
            f"articles/s = {result['ratio_to_ceiling']:.2f} x ceiling; "
            f"{len(result['prefect_flow_runs'])} Prefect flow runs"
        )


def _prefect_runs(bench: Bench, since: datetime) -> list[dict[str, str]]:
    api = bench.stack.get("PREFECT_API_URL")
    if not api:
        return []
    body = {"flow_runs": {"start_time": {"after_": since.isoformat()}}, "limit": 50}
    try:
        response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
        runs = response.json()
    except (httpx.HTTPError, ValueError):
        return []
    return [
        {"name": r.get("name", ""), "state": r.get("state_type", ""), "id": r.get("id", "")}
        for r in runs
    ]


def _sqlite_count(data_dir: Path) -> Callable[[], int]:
    from connectors.sqlite_store import SqliteStore

    def count() -> int:
        path = data_dir / "store.sqlite3"
        if not path.exists():
            return 0
        store = SqliteStore(path)
        try:
            return store.count()
        finally:
            store.close()

    return count


def phase_embedded(bench: Bench) -> None:
    with _phase("embedded") as done:
        env = bench.env("embedded", "embedded")
        feeds = bench.feeds_file("feeds.toml", FEED)
        count = _sqlite_count(Path(env["NEWSFLOW_DATA_DIR"]))
        result = bench.pipeline(env, feeds, bench.args.articles, count, "embedded")
        result["ratio_to_ceiling"] = round(result["rate"] / bench.figures["r1"]["ceiling"], 3)
        result["ratio_to_stack"] = round(result["rate"] / bench.figures["stack"]["rate"], 3)
        bench.figures["embedded"] = result
        done(
            f"{result['searchable']}/{result['expected']} searchable, {result['rate']:.1f} "
            f"articles/s = {result['ratio_to_stack']:.2f} x stack"
        )


def phase_replay(bench: Bench) -> None:
    with _phase("replay") as done:
        env = bench.env("stack", "replay")
        env["NEWSFLOW_KAFKA_TOPIC"] = bench.stack_topic
        index = env["NEWSFLOW_ELASTICSEARCH_INDEX"]
        started = time.perf_counter()
        watched = run_watched(
            [NEWSFLOW, "index", "--until-idle"], env, bench.out / "replay-index.log"
        )
        expected = bench.figures["stack"]["searchable"]
        searchable = bench.wait_count(lambda: bench.es_count(index), expected)
        wall = time.perf_counter() - started
        rate = searchable / wall
        bench.figures["replay"] = {
            "expected": expected,
            "searchable": searchable,
            "wall_seconds": round(wall, 3),
            "rate": round(rate, 3),
            "ratio_to_pipeline": round(rate / bench.figures["stack"]["rate"], 3),
            "index": watched.summary(),
        }
        done(
            f"{searchable} indexed at {rate:.1f} articles/s = "
            f"{bench.figures['replay']['ratio_to_pipeline']:.1f} x pipeline"
        )


def _pid(name: str) -> int | None:
    try:
        return int((STACK_RUN / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def phase_stages(bench: Bench) -> None:
    """CPU seconds of each stage alone, in this process (the site runs in another)."""
    import feedparser

    from connectors.elasticsearch import ElasticsearchStore
    from connectors.kafka import KafkaBuffer
    from connectors.sqlite_store import SqliteStore
    from newsflow.extract import extract_page
    from newsflow.fetch import Fetcher, FetchResponse
    from newsflow.indexer import decode
    from newsflow.publish import encode
    from newsflow.settings import ElasticsearchSettings, FetchSettings, KafkaSettings
    from schemas import Article

    assert bench.site is not None
    site = bench.site
    stages: dict[str, Any] = {}
    with _phase("stages") as done:
        # Feed parse: feedparser with the options newsflow uses, over every feed body.
        bodies = [
            httpx.get(f"http://{host}:{site.port}/{FEED}", timeout=30).content
            for host in site.hosts
        ]
        cpu = time.process_time()
        entries = 0
        for host, body in zip(site.hosts, bodies, strict=True):
            parsed = feedparser.parse(
                io.BytesIO(body),
                response_headers={
                    "content-location": f"http://{host}:{site.port}/{FEED}",
                    "content-type": "application/xml; charset=utf-8",
                },
                resolve_relative_uris=True,
                sanitize_html=True,
            )
            entries += len(parsed.entries)
        stages["feed_parse"] = {"cpu_seconds": time.process_time() - cpu, "items": entries}
        done(f"feed parse: {entries} entries")

        # Fetch: the Fetcher (politeness as configured by default) over every page URL.
        urls = [item.url(site.port) for item in site.items]
        settings = FetchSettings(allow_private_networks=True)
        cpu, wall = time.process_time(), time.perf_counter()
        with Fetcher(settings) as fetcher:
            results = fetcher.get_many(urls)
            texts = [r.text() for r in results if isinstance(r, FetchResponse)]
        stages["fetch"] = {
            "cpu_seconds": time.process_time() - cpu,
            "wall_seconds": time.perf_counter() - wall,
            "items": len(texts),
        }
        del texts
        done(f"fetch: {stages['fetch']['items']} pages")

        # Extract: newsflow's extract_page in this process.
        sample = _pages(bench, bench.args.stage_sample)
        cpu_total = 0.0
        for item in sample:
            html = site.page(item).read_text(encoding="utf-8")
            cpu = time.process_time()
            extract_page(html, item.url(site.port), 250)
            cpu_total += time.process_time() - cpu
        stages["extract"] = {"cpu_seconds": cpu_total, "items": len(sample)}
        done(f"extract: {len(sample)} pages")

        # Consume: the stack run's topic with a new group: poll + decode.
        kafka = KafkaSettings(bootstrap_servers=bench.stack["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"])
        buffer = KafkaBuffer(kafka)
        topic = bench.stack_topic
        expected = bench.figures["stack"]["searchable"]
        consumer = buffer.consumer(topic, _names("stages")["NEWSFLOW_KAFKA_CONSUMER_GROUP"])
        articles: list[Article] = []
        kafka_pid = _pid("kafka")
        kafka_cpu = cpu_seconds(kafka_pid) if kafka_pid else 0.0
        cpu, empty = time.process_time(), 0
        while len(articles) < expected and empty < 10:
            records = consumer.poll(500, 1.0)
            empty = 0 if records else empty + 1
            articles.extend(decode(record) for record in records)
        consumer.commit()
        stages["consume"] = {"cpu_seconds": time.process_time() - cpu, "items": len(articles)}
        consumer.close()

        # Publish: encode + KafkaBuffer.publish into a new topic, a feed's worth at a time.
        out_topic = _names("stages")["NEWSFLOW_KAFKA_TOPIC"]
        buffer.ensure_topics([out_topic])
        bench.created_topics.append(out_topic)
        chunk = max(1, math.ceil(len(articles) / len(site.hosts)))
        cpu, encode_cpu = time.process_time(), 0.0
        for start in range(0, len(articles), chunk):
            encoding = time.process_time()
            out = [encode(a) for a in articles[start : start + chunk]]
            encode_cpu += time.process_time() - encoding
            buffer.publish(out_topic, out)
        stages["publish"] = {
            "cpu_seconds": time.process_time() - cpu,
            "encode_cpu_seconds": encode_cpu,
            "items": len(articles),
        }
        buffer.close()
        if kafka_pid:
            stages["kafka_broker_jvm"] = {
                "cpu_seconds": cpu_seconds(kafka_pid) - kafka_cpu,
                "items": len(articles),
                "note": "broker CPU over consume + publish",
            }
        done(f"consume + publish: {len(articles)} records")

        # Bulk index: store.index_batch into a new ES index, and the ES JVM's CPU delta.
        names = _names("stages")
        es = ElasticsearchSettings(
            url=bench.stack["NEWSFLOW_ELASTICSEARCH_URL"],
            index=names["NEWSFLOW_ELASTICSEARCH_INDEX"],
            history_index=names["NEWSFLOW_ELASTICSEARCH_HISTORY_INDEX"],
            feeds_index=names["NEWSFLOW_ELASTICSEARCH_FEEDS_INDEX"],
            revisits_index=names["NEWSFLOW_ELASTICSEARCH_REVISITS_INDEX"],
            prefix=names["NEWSFLOW_ELASTICSEARCH_PREFIX"],
        )
        bench.created_indices += [es.index, es.history_index, es.feeds_index, es.revisits_index]
        store = ElasticsearchStore(es)
        store.ensure()
        es_pid = _pid("es")
        es_cpu = cpu_seconds(es_pid) if es_pid else 0.0
        cpu = time.process_time()
        for start in range(0, len(articles), 500):
            store.index_batch(articles[start : start + 500])
        stages["bulk_index"] = {"cpu_seconds": time.process_time() - cpu, "items": len(articles)}
        if es_pid:
            stages["elasticsearch_jvm"] = {
                "cpu_seconds": cpu_seconds(es_pid) - es_cpu,
                "items": len(articles),
                "note": "ES JVM CPU over the bulk index",
            }
        store.close()

        embedded = SqliteStore(bench.work / "stages-store.sqlite3")
        embedded.ensure()
        cpu = time.process_time()
        for start in range(0, len(articles), 500):
            embedded.index_batch(articles[start : start + 500])
        stages["bulk_index_embedded"] = {
            "cpu_seconds": time.process_time() - cpu,
            "items": len(articles),
        }
        embedded.close()
        done(f"bulk index: {len(articles)} articles")

    for figures in stages.values():
        figures["cpu_seconds"] = round(figures["cpu_seconds"], 4)
        items = max(1, figures["items"])
        figures["cpu_ms_per_article"] = round(1000 * figures["cpu_seconds"] / items, 4)
    overhead = sum(
        stages[name]["cpu_ms_per_article"] for name in ("feed_parse", "publish", "consume")
    )
    extract = stages["extract"]["cpu_ms_per_article"]
    bench.figures["stages"] = stages
    bench.figures["parse_kafka_share_of_extract"] = round(overhead / extract, 4)


def phase_rss_sizes(bench: Bench) -> None:
    sizes = [int(s) for s in bench.args.rss_sizes.split(",") if s.strip()]
    results = []
    for size in sorted(set(sizes)):
        with _phase("rss") as done:
            if size == bench.args.articles:
                stack = bench.figures["stack"]
                results.append({"articles": size, "run": stack["run"], "index": stack["index"]})
                done(f"{size}: the main stack run")
                continue
            size = min(size, bench.args.articles)
            feed, listed = bench.subset_feed(size)
            env = bench.env("stack", f"rss{size}")
            index = env["NEWSFLOW_ELASTICSEARCH_INDEX"]
            feeds = bench.feeds_file(f"feeds-{size}.toml", feed)
            result = bench.pipeline(
                env, feeds, listed, partial(bench.es_count, index), f"rss{size}"
            )
            results.append({"articles": size, "run": result["run"], "index": result["index"]})
            done(f"{size}: run peak {result['run']['peak_rss_mib']}")
    bench.figures["rss_sizes"] = results


def phase_freshness(bench: Bench) -> None:
    from newsflow.identity import canonical_url, doc_id

    assert bench.site is not None
    site = bench.site
    args = bench.args
    fresh: list[Item] = bench.fresh_items
    interval = args.poll_interval
    with _phase("freshness") as done:
        # Each host's fresh feed starts with one article of the site (the warm-up).
        listed: dict[str, list[Item]] = {host: [] for host in site.hosts}
        for host, items in site.by_host().items():
            listed[host] = items[:1]
            write_feed(site.root / host / "fresh.xml", host, site.port, listed[host])
        feeds = bench.feeds_file("feeds-fresh.toml", "fresh.xml", interval)
        env = bench.env("stack", "fresh", NEWSFLOW_FEED_MIN_INTERVAL=f"{interval:g}")
        index = env["NEWSFLOW_ELASTICSEARCH_INDEX"]
        poller = Watched(
            [NEWSFLOW, "run", "--every", f"{interval:g}", "--feeds", str(feeds)],
            env,
            bench.out / "fresh-run.log",
        ).start()
        indexer = Watched([NEWSFLOW, "index"], env, bench.out / "fresh-index.log").start()
        warm = bench.wait_count(lambda: bench.es_count(index), len(site.hosts), 180)
        done(f"warm-up: {warm}/{len(site.hosts)} seed articles searchable")

        ids = {doc_id(canonical_url(item.url(site.port))): item for item in fresh}
        appeared: dict[str, float] = {}
        searchable: dict[str, float] = {}
        gap = args.fresh_seconds / max(1, len(fresh))
        schedule = {key: n * gap for n, key in enumerate(ids)}
        began = time.time()
        deadline = began + args.fresh_seconds + 3 * interval + 60
        es = bench.stack["NEWSFLOW_ELASTICSEARCH_URL"]
        while len(searchable) < len(ids) and time.time() < deadline:
            now = time.time()
            for key, offset in schedule.items():
                if key not in appeared and now >= began + offset:
                    item = ids[key]
                    listed[item.host].append(item)
                    write_feed(site.root / item.host / "fresh.xml", item.host, site.port,
                               listed[item.host])  # fmt: skip
                    appeared[key] = time.time()
            waiting = [key for key in appeared if key not in searchable]
            if waiting:
                query = {"query": {"ids": {"values": waiting}}, "_source": False, "size": 500}
                response = httpx.post(f"{es}/{index}/_search", json=query, timeout=10)
                stamp = time.time()
                for hit in response.json().get("hits", {}).get("hits", []):
                    searchable.setdefault(hit["_id"], stamp)
            time.sleep(0.25)
        latencies = sorted(searchable[k] - appeared[k] for k in searchable)
        poll_code, index_code = poller.stop(), indexer.stop()
        leftovers = {**poller.leftovers(), **indexer.leftovers()}
        for pid in leftovers:
            os.kill(pid, 9)  # processes this benchmark started, by pid
        bench.figures["freshness"] = {
            "poll_interval": interval,
            "articles": len(ids),
            "over_seconds": args.fresh_seconds,
            "searchable": len(latencies),
            "p50": round(_quantile(latencies, 0.5), 2),
            "p95": round(_quantile(latencies, 0.95), 2),
            "max": round(latencies[-1], 2) if latencies else None,
            "target_p95": interval + 5,
            "stopped": {
                "run": poll_code,
                "index": index_code,
                "leftover_processes": {str(pid): role for pid, role in leftovers.items()},
            },
            "run": poller.summary(),
            "index": indexer.summary(),
        }
        done(
            f"{len(latencies)}/{len(ids)} searchable, p50 {_quantile(latencies, 0.5):.1f} s, "
            f"p95 {_quantile(latencies, 0.95):.1f} s (target {interval + 5:g} s); "
            f"exit codes {poll_code}/{index_code}, {len(leftovers)} leftovers"
        )


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def phase_workers(bench: Bench) -> None:
    size = min(bench.args.sweep_articles or bench.args.articles, bench.args.articles)
    feed, listed = bench.subset_feed(size)
    feeds = bench.feeds_file("feeds-sweep.toml", feed)
    points = []
    for workers in range(1, bench.args.max_workers + 1):
        with _phase("workers") as done:
            env = bench.env("embedded", f"w{workers}", NEWSFLOW_EXTRACT_WORKERS=str(workers))
            count = _sqlite_count(Path(env["NEWSFLOW_DATA_DIR"]))
            result = bench.pipeline(env, feeds, listed, count, f"workers{workers}")
            points.append(
                {
                    "workers": workers,
                    "rate": result["rate"],
                    "wall_seconds": result["wall_seconds"],
                    "run_seconds": result["run"]["seconds"],
                    "index_seconds": result["index"]["seconds"],
                    "searchable": result["searchable"],
                }
            )
            done(f"{workers} workers: {result['rate']:.1f} articles/s over {listed}")
    bench.figures["workers"] = {"articles": listed, "backend": "embedded", "points": points}


def cleanup(bench: Bench) -> None:
    """Delete the topics and indices this run created (unless --keep)."""
    es = bench.stack.get("NEWSFLOW_ELASTICSEARCH_URL")
    if es:
        for name in bench.created_indices:
            try:
                resolved = httpx.get(f"{es}/_resolve/index/{name}*", timeout=10).json()
                for index in resolved.get("indices", []):
                    httpx.delete(f"{es}/{index['name']}", timeout=30)
            except (httpx.HTTPError, ValueError):
                pass
    if bench.created_topics and bench.stack.get("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"):
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bench.stack["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"])
        try:
            existing = set(admin.list_topics())
            admin.delete_topics([t for t in bench.created_topics if t in existing])
        except Exception as exc:  # noqa: BLE001 - clean-up is best effort
            print(f"topics not deleted: {exc}")
        finally:
            admin.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="newsflow pipeline benchmark (issue 11)")
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--r1-sample", type=int, default=0, help="R1 over N pages (0: all)")
    parser.add_argument("--stage-sample", type=int, default=0, help="extract CPU over N pages")
    parser.add_argument("--rss-sizes", default="", help="e.g. 1000,2000: stack runs at sizes")
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument("--fresh-articles", type=int, default=40)
    parser.add_argument("--fresh-seconds", type=float, default=60.0)
    parser.add_argument("--sweep-articles", type=int, default=500, help="0: all articles")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip", default="", help="comma list of phases to skip")
    parser.add_argument("--keep", action="store_true", help="keep topics, indices, work dir")
    parser.add_argument("--write-docs", action="store_true", help="docs/performance.md too")
    parser.add_argument(
        "--docs-from", help="only redraw the chart (and docs, with --write-docs) from a JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.docs_from:
        figures = json.loads(Path(args.docs_from).read_text(encoding="utf-8"))
        report.write_all(figures, out, docs=args.write_docs)
        return
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    work = Path(tempfile.mkdtemp(prefix="newsflow-bench-"))
    bench = Bench(args, work)
    started = time.perf_counter()
    phase_site(bench)
    assert bench.site is not None
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "bench.site", "serve", str(bench.site.root), str(bench.site.port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        print(f"[     site] {server.stdout.readline().strip()}", flush=True)
        phases: list[tuple[str, Callable[[Bench], None]]] = [
            ("r1", phase_r1),
            ("stack", phase_stack),
            ("embedded", phase_embedded),
            ("replay", phase_replay),
            ("stages", phase_stages),
            ("rss", phase_rss_sizes),
            ("freshness", phase_freshness),
            ("workers", phase_workers),
        ]
        for name, run in phases:
            if name in skip or (name == "rss" and not args.rss_sizes):
                continue
            run(bench)
            _save(bench, out)
    finally:
        server.terminate()
        server.wait(30)
        if not args.keep:
            cleanup(bench)
            shutil.rmtree(work, ignore_errors=True)
    bench.figures["total_seconds"] = round(time.perf_counter() - started, 1)
    _save(bench, out)
    report.write_all(bench.figures, out, docs=args.write_docs)
    print(f"figures: {out / 'pipeline.json'}; chart: {out / 'pipeline.png'}")


def _save(bench: Bench, out: Path) -> None:
    (out / "pipeline.json").write_text(json.dumps(bench.figures, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
