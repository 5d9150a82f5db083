"""The fault suite's harness: its own stack instance, a news site that misbehaves on cue,
and the three measures every fault test reports.

* **lost**: doc ids the pipeline acknowledged (records in the topic: published with
  ``acks=all``) that Elasticsearch does not have as an ``_id``;
* **dup**: article documents minus distinct canonical URLs, and history entries minus
  distinct revisions (a ``(doc_id, content_hash)`` pair: the same text twice is one);
* **ahead**: records below a partition's committed offset whose document Elasticsearch
  does not have (nor the dead-letter topic): the committed offset must never pass the
  last offset whose document Elasticsearch acknowledged.

The stack is ``deploy/local/stack`` run with its own home and ports (the shared one is
never touched); :class:`Stack` kills, stops and restarts its JVMs by their pid files.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from newsflow.identity import content_hash

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack"
NEWSFLOW = REPO / ".venv" / "bin" / "newsflow"

FULL = "NEWSFLOW_FAULTS_N" in os.environ
"""The opt-in run (``make faults N=...`` sets NEWSFLOW_FAULTS_N): every fault at its full
count and length. CI leaves it unset and runs a smaller N and fewer faults."""

N = int(os.environ.get("NEWSFLOW_FAULTS_N", "200"))
"""Articles per test: small in CI, ``make faults N=5000`` for the large run."""

LARGE = FULL and N > 200
"""Fault windows at full length (Elasticsearch away 60 s, not 20 s)."""

KILLS = 5 if FULL else 2
"""``kill -9`` rounds of the indexer (test 2)."""

BROKER_KILLS = 3 if FULL else 1
"""Broker ``kill -9`` rounds during polls (test 1)."""

POLLER_KILLS = 3 if FULL else 2
"""``kill -9`` rounds of ``newsflow run --once`` (test 7)."""


def _default_cache() -> str:
    if os.environ.get("NEWSFLOW_STACK_CACHE"):
        return os.environ["NEWSFLOW_STACK_CACHE"]
    return os.path.expanduser("~/.cache/newsflow/stack/jars")


# --- the stack instance ---------------------------------------------------------------


class Stack:
    """One ``deploy/local/stack`` instance of the fault suite (Kafka and Elasticsearch)."""

    def __init__(self, home: Path, kafka_port: int, es_port: int) -> None:
        self.home = home
        self.kafka = f"127.0.0.1:{kafka_port}"
        self.elasticsearch = f"http://127.0.0.1:{es_port}"
        self.env = {
            **os.environ,
            "NEWSFLOW_STACK_HOME": str(home),
            "NEWSFLOW_STACK_CACHE": _default_cache(),
            "NEWSFLOW_STACK_KAFKA_PORT": str(kafka_port),
            "NEWSFLOW_STACK_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
            "NEWSFLOW_STACK_ES_PORT": str(es_port),
            "NEWSFLOW_STACK_ES_TRANSPORT_PORT": str(es_port + 100),
            "NEWSFLOW_STACK_PREFECT": "0",
            "NEWSFLOW_STACK_TIMEOUT": "240",
            "NEWSFLOW_STACK_STOP_GRACE": "10",
        }

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(STACK), *args], env=self.env, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"stack {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self) -> float:
        """Start whatever is not running; the seconds it took."""
        started = time.monotonic()
        self._run("up")
        return time.monotonic() - started

    def down(self) -> None:
        self._run("down")

    def pid(self, name: str) -> int:
        """The pid of ``kafka`` or ``es``."""
        return int((self.home / "run" / f"{name}.pid").read_text().strip())

    def kill(self, name: str) -> None:
        """``kill -9`` the JVM and wait until it is gone."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def pause(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGCONT)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def names(stack: Stack) -> dict[str, str]:
    """NEWSFLOW_* settings for one test: its own topics, group and index prefix."""
    run = uuid.uuid4().hex[:8]
    return {
        "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "NEWSFLOW_KAFKA_TOPIC": f"f{run}.articles",
        "NEWSFLOW_KAFKA_DLQ_TOPIC": f"f{run}.articles.dlq",
        "NEWSFLOW_KAFKA_CONSUMER_GROUP": f"f{run}-indexer",
        "NEWSFLOW_KAFKA_PARTITIONS": "3",
        "NEWSFLOW_KAFKA_REQUEST_TIMEOUT_MS": "5000",
        "NEWSFLOW_ELASTICSEARCH_URL": stack.elasticsearch,
        "NEWSFLOW_ELASTICSEARCH_PREFIX": f"f{run}",
        "NEWSFLOW_ELASTICSEARCH_REQUEST_TIMEOUT": "5",
        **site_polling(N),
        "NEWSFLOW_INDEXER_IDLE_TIMEOUT": "10",
        "NEWSFLOW_INDEXER_RETRY_BACKOFF_MAX": "2",
        "NEWSFLOW_INDEXER_BATCH_SIZE": "50",
    }


def site_polling(pages: int) -> dict[str, str]:
    """NEWSFLOW_* a polling cycle of a loopback :class:`FaultSite` of ``pages`` needs."""
    return {
        "NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSFLOW_FETCH_PER_HOST_DELAY": "0",
        "NEWSFLOW_FETCH_PER_HOST_CONCURRENCY": "8",
        "NEWSFLOW_FEED_MIN_INTERVAL": "0",
        "NEWSFLOW_FEED_MAX_ENTRIES": str(max(200, pages)),
    }


def fetched_or_done(site: FaultSite, target: int, child: subprocess.Popen[str]) -> bool:
    """Whether ``site`` has served ``target`` article pages, or ``child`` has ended."""
    return sum(site.page_hits().values()) >= target or child.poll() is not None


def newsflow(env: Mapping[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``newsflow ARGS`` as a child process (its output captured as text)."""
    return subprocess.Popen(
        [str(NEWSFLOW), *args],
        # Never Prefect: the CLI runs the pipeline itself, as the faults need.
        env={k: v for k, v in {**os.environ, **env}.items() if k != "PREFECT_API_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=env.get("NEWSFLOW_DATA_DIR") or None,
        **popen,
    )


def newsflow_run(env: Mapping[str, str], *args: str, timeout: float = 600) -> tuple[int, str]:
    """Run ``newsflow ARGS`` to its end: exit code and output."""
    child = newsflow(env, *args, start_new_session=True)
    try:
        out, _ = child.communicate(timeout=timeout)
    finally:
        kill_group(child)
    return child.returncode, out


def kill_group(child: subprocess.Popen[str]) -> None:
    """``kill -9`` the process group of ``child`` (started with ``start_new_session``):
    the CLI and every worker it forked; a no-op when they are all gone."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait(timeout=30)


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- the news site ---------------------------------------------------------------------

_WORDS = (
    "council harbour senate markets transit budget drought election vaccine orbit tariff "
    "strike festival reactor pipeline court stadium glacier housing startup river bridge "
    "minister farmers schools hospital museum airport railway union mayor coast forest "
    "weighs rejects backs delays unveils questions expands cuts probes approves revives "
    "halts plan deal inquiry reform overhaul ban rescue merger ruling forecast expansion"
).split()


@dataclass
class Page:
    """One article of the site, as it stands now (``edit`` changes it)."""

    number: int
    host: str
    path: str
    title: str
    paragraphs: list[str]
    published: datetime
    updated: datetime
    edits: int = 0

    @property
    def text_marker(self) -> str:
        return f"Revision note {self.number}-{self.edits}."


@dataclass
class Fault:
    """What the next requests of one path get before they are answered normally."""

    plan: list[str]
    """``"503"``, ``"timeout"`` (stall past the client's read timeout) or ``"drop"``."""


class FaultSite:
    """Article pages and one Atom feed per host on 127.0.0.2, 127.0.0.3, ... one port.

    Every request is counted by URL; ``faults`` makes chosen paths fail first; ``edit``
    rewrites an article and announces it in its feed.
    """

    def __init__(self, articles: int, hosts: int, *, seed: int = 10) -> None:
        self.hosts = [f"127.0.0.{2 + n}" for n in range(hosts)]
        self.port = _free_port(self.hosts)
        rng = random.Random(seed)
        epoch = datetime(2025, 3, 1, tzinfo=UTC)
        self.pages: dict[str, Page] = {}
        # Host i carries i + 1 shares of the articles: feeds of unequal length finish (and
        # publish) one after another, not all at once at the end of a cycle.
        shares = [i for i in range(hosts) for _ in range(i + 1)]
        for number in range(articles):
            host = self.hosts[shares[number % len(shares)]]
            when = epoch + timedelta(minutes=number)
            words = rng.sample(_WORDS, 4)
            page = Page(
                number=number,
                host=host,
                path=f"/news/{when:%Y/%m}/story-{number:06d}.html",
                title=f"{' '.join(w.title() for w in words)} (story {number})",
                paragraphs=[
                    " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 70))).capitalize()
                    + f". Story {number} paragraph {p}."
                    for p in range(rng.randint(3, 6))
                ],
                published=when,
                updated=when,
            )
            self.pages[self.url(page)] = page
        self.hits: Counter[str] = Counter()
        self.faults: dict[str, Fault] = {}
        self.stall = 3.0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    def url(self, page: Page) -> str:
        return f"http://{page.host}:{self.port}{page.path}"

    def feed_url(self, host: str) -> str:
        return f"http://{host}:{self.port}/feed.atom"

    def feeds_toml(self, path: Path) -> Path:
        rows = [f'[[feeds]]\nurl = "{self.feed_url(h)}"\nname = "Site {h}"\n' for h in self.hosts]
        path.write_text("\n".join(rows), encoding="utf-8")
        return path

    def page_hits(self) -> Counter[str]:
        with self._lock:
            return Counter({u: n for u, n in self.hits.items() if u.endswith(".html")})

    def edit(self, page: Page, moment: datetime) -> None:
        """A correction: new text, announced by the feed's ``<updated>``."""
        with self._lock:
            page.edits += 1
            page.updated = moment
            page.paragraphs = [*page.paragraphs, f"{page.text_marker} The story was corrected."]

    # - serving -

    def _feed(self, host: str) -> bytes:
        rows = []
        for page in self.pages.values():
            if page.host != host:
                continue
            url = escape(self.url(page))
            rows.append(
                f'<entry><title>{escape(page.title)}</title><link href="{url}"/>'
                f"<id>{url}</id><published>{page.published.isoformat()}</published>"
                f"<updated>{page.updated.isoformat()}</updated>"
                f"<summary>{escape(page.paragraphs[0][:120])}</summary></entry>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Site {host}</title><id>{self.feed_url(host)}</id>"
            f"<updated>2025-03-01T00:00:00+00:00</updated>{''.join(rows)}</feed>"
        ).encode()

    def _page(self, page: Page) -> bytes:
        body = "".join(f"<p>{escape(p)}</p>" for p in page.paragraphs)
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(page.title)}</title>"
            f'<link rel="canonical" href="{escape(self.url(page))}">'
            f'<meta property="article:published_time" content="{page.published.isoformat()}">'
            f'<meta property="article:modified_time" content="{page.updated.isoformat()}">'
            f'</head><body><header><nav><a href="/">Home</a> <a href="/news/">News</a>'
            f"</nav></header><main><article><h1>{escape(page.title)}</h1>{body}</article>"
            f"</main><footer>Copyright The Fault Gazette</footer></body></html>"
        ).encode()

    def answer(self, host: str, path: str) -> tuple[int, bytes, str] | str:
        """The response to GET http://host:port/path, or a fault to act out."""
        url = f"http://{host}:{self.port}{path}"
        with self._lock:
            self.hits[url] += 1
            fault = self.faults.get(url)
            if fault is not None and fault.plan:
                return fault.plan.pop(0)
            if path == "/robots.txt":
                return 200, b"User-agent: *\nAllow: /\n", "text/plain"
            if path == "/feed.atom":
                return 200, self._feed(host), "application/atom+xml; charset=utf-8"
            page = self.pages.get(url)
            if page is None:
                return 404, b"not found", "text/plain"
            return 200, self._page(page), "text/html; charset=utf-8"

    @contextmanager
    def serving(self) -> Iterator[FaultSite]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                host = str(cast(tuple[str, int], self.server.server_address)[0])
                answer = site.answer(host, urlsplit(self.path).path)
                if answer == "timeout":
                    time.sleep(site.stall)
                    answer = (503, b"too late", "text/plain")
                elif answer == "503":
                    answer = (503, b"busy", "text/plain")
                elif answer == "drop":
                    self.close_connection = True
                    return
                if isinstance(answer, str):
                    raise AssertionError(f"unknown fault {answer!r}")
                status, body, kind = answer
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    if status == 503:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True

        for host in self.hosts:
            server = ThreadingHTTPServer((host, self.port), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        try:
            yield self
        finally:
            for server in self._servers:
                server.shutdown()
                server.server_close()
            self._servers.clear()


def _free_port(hosts: Sequence[str]) -> int:
    for _attempt in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every site host")


# --- Elasticsearch and Kafka, read directly --------------------------------------------


def _es(url: str, method: str, path: str, body: object | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def es_docs(url: str, index: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Every document of ``index`` (``_id`` plus ``fields``), after a refresh; none when
    the index does not exist yet."""
    try:
        _es(url, "POST", f"/{index}/_refresh")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    docs: list[dict[str, Any]] = []
    after: list[Any] | None = None
    while True:
        query: dict[str, Any] = {
            "size": 5000,
            "_source": list(fields),
            "sort": [{"revision": "asc"}, {"doc_id": "asc"}],
            "track_total_hits": False,
        }
        if after is not None:
            query["search_after"] = after
        hits = _es(url, "POST", f"/{index}/_search", query)["hits"]["hits"]
        if not hits:
            return docs
        docs.extend({"_id": h["_id"], **h["_source"]} for h in hits)
        after = hits[-1]["sort"]


def es_ids(url: str, index: str) -> set[str]:
    return {d["_id"] for d in es_docs(url, index, ["doc_id"])}


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]


def topic_records(bootstrap: str, topic: str) -> list[Record]:
    """Everything in ``topic`` now (read with no group, from the beginning to the end)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:  # the topic does not exist (yet)
            return []
        parts = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Record] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                for m in batch:
                    out.append(
                        Record(
                            partition=tp.partition,
                            offset=m.offset,
                            key=m.key.decode() if m.key else None,
                            value=m.value or b"",
                            headers={k: v.decode() for k, v in (m.headers or [])},
                        )
                    )
        return out
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of ``topic`` (0 when none)."""
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=10_000)
    try:
        (info,) = admin.describe_topics([topic])
        wanted = [TopicPartition(topic, int(p["partition_index"])) for p in info["partitions"]]
        offsets = admin.list_group_offsets({group: wanted}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: max(0, meta.offset) for tp, meta in offsets.items()}


# --- the measures ----------------------------------------------------------------------


@dataclass
class Measures:
    acknowledged: int
    documents: int
    lost: list[str] = field(default_factory=list)
    dup: int = 0
    history_dup: int = 0
    ahead: list[tuple[int, int]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"acknowledged={self.acknowledged} documents={self.documents} lost={len(self.lost)} "
            f"dup={self.dup} history_dup={self.history_dup} ahead={len(self.ahead)}"
        )


def measure(env: Mapping[str, str], *, expect_dead: set[str] | None = None) -> Measures:
    """lost, dup and committed-ahead for the test whose settings are ``env``."""
    from newsflow.settings import Settings

    settings = Settings()  # the test's names are in the environment (fault_env)
    url = env["NEWSFLOW_ELASTICSEARCH_URL"]
    kafka = env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    topic = env["NEWSFLOW_KAFKA_TOPIC"]
    records = topic_records(kafka, topic)
    dead = dead_letters(env)
    dead_at = {(int(d.headers["origin-partition"]), int(d.headers["origin-offset"])) for d in dead}
    acknowledged = {r.key for r in records if r.key} - (expect_dead or set())
    docs = es_docs(url, settings.elasticsearch.index, ["doc_id", "url", "content_hash"])
    history = es_docs(url, settings.elasticsearch.history_index, ["doc_id", "content_hash"])
    ids = {d["_id"] for d in docs}
    result = Measures(acknowledged=len(acknowledged), documents=len(docs))
    result.lost = sorted(acknowledged - ids)
    result.dup = len(docs) - len({d["url"] for d in docs})
    result.history_dup = len(history) - len({(h["doc_id"], h["content_hash"]) for h in history})
    result.ahead = ahead(records, committed(kafka, env["NEWSFLOW_KAFKA_CONSUMER_GROUP"], topic),
                         ids, dead_at)  # fmt: skip
    return result


def ahead(
    records: Sequence[Record],
    offsets: Mapping[int, int],
    ids: set[str],
    dead_at: set[tuple[int, int]],
) -> list[tuple[int, int]]:
    """(partition, offset) of records below the committed offset that are not stored."""
    return [
        (r.partition, r.offset)
        for r in records
        if r.offset < offsets.get(r.partition, 0)
        and r.key not in ids
        and (r.partition, r.offset) not in dead_at
    ]


def dead_letters(env: Mapping[str, str]) -> list[Record]:
    return topic_records(env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"], env["NEWSFLOW_KAFKA_DLQ_TOPIC"])


def site_ids(site: FaultSite) -> dict[str, str]:
    """doc_id -> URL of every article of the site."""
    from newsflow.identity import canonical_url, doc_id

    return {doc_id(canonical_url(u, u)): u for u in site.pages}


__all__ = [
    "fetched_or_done",
    "site_polling",
    "BROKER_KILLS",
    "FULL",
    "KILLS",
    "LARGE",
    "POLLER_KILLS",
    "N",
    "FaultSite",
    "Measures",
    "Stack",
    "committed",
    "content_hash",
    "dead_letters",
    "es_docs",
    "es_ids",
    "kill_group",
    "measure",
    "names",
    "newsflow",
    "newsflow_run",
    "site_ids",
    "topic_records",
    "wait_for",
]

# A loopback HTTP proxy in front of Elasticsearch, for the 429 test.


class ThrottlingProxy:
    """Forwards to Elasticsearch; rewrites a share of ``_bulk`` item results to 429."""

    def __init__(self, upstream: str, share: float, *, seed: int = 4) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.share = share
        self.rewritten = 0
        self.bulks = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.url = ""

    def _rewrite(self, body: bytes) -> bytes:
        answer = json.loads(body)
        changed = False
        for item in answer.get("items", []):
            result = next(iter(item.values()))
            with self._lock:
                throttle = self._rng.random() < self.share
            if throttle and int(result.get("status", 0)) in (200, 201):
                result["status"] = 429
                result["error"] = {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution (injected by the fault suite's proxy)",
                }
                changed = True
                with self._lock:
                    self.rewritten += 1
        if changed:
            answer["errors"] = True
        return json.dumps(answer).encode()

    @contextmanager
    def serving(self) -> Iterator[ThrottlingProxy]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
                }
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    if (
                        self.command in ("POST", "PUT")
                        and urlsplit(self.path).path.endswith("/_bulk")
                        and response.status == 200
                    ):
                        with proxy._lock:
                            proxy.bulks += 1
                        data = proxy._rewrite(data)
                    self.send_response(response.status)
                    for k, v in response.getheaders():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def report(test: str, faults: str, measures: Measures, recover: float | None) -> None:
    """Print the test's row of docs/reliability.md (and append it to
    NEWSFLOW_FAULTS_REPORT as a JSON line when set)."""
    row = {
        "test": test,
        "n": N,
        "faults": faults,
        "lost": len(measures.lost),
        "dup": measures.dup + measures.history_dup,
        "ahead": len(measures.ahead),
        "recover_s": None if recover is None else round(recover, 1),
        "measures": measures.line(),
    }
    print("FAULTS " + json.dumps(row))
    target = os.environ.get("NEWSFLOW_FAULTS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
