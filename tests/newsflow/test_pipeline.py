"""The whole pipeline as a plain library, on the embedded backends, without Prefect."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from connectors import Buffer, open_store
from connectors.sqlite_buffer import SqliteBuffer
from newsflow.errors import BackendUnavailable, Interrupted
from newsflow.feedlist import load_feeds
from newsflow.fetch import FetchResponse
from newsflow.identity import canonical_url, doc_id
from newsflow.pipeline import PollRun, drain, poll_once, select_feeds
from newsflow.publish import publish
from newsflow.settings import Settings
from schemas import Article, FeedConfig
from tests.support.site import FIXTURE_SITE, Site

MANIFEST = tomllib.loads((FIXTURE_SITE / "MANIFEST.toml").read_text(encoding="utf-8"))
INGESTED = [page for page in MANIFEST["pages"] if not page["skip"]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings(data_dir=tmp_path / "data")
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": None}),
            "elasticsearch": base.elasticsearch.model_copy(update={"url": None}),
            "fetch": base.fetch.model_copy(
                update={"allow_private_networks": True, "per_host_delay": 0.0}
            ),
            "indexer": base.indexer.model_copy(update={"poll_timeout": 0.2}),
            "extract": base.extract.model_copy(update={"workers": 2}),
        }
    )


@pytest.fixture
def feeds(site: Site, tmp_path: Path) -> list[FeedConfig]:
    path = tmp_path / "feeds.toml"
    path.write_text(site.read("feeds.toml"), encoding="utf-8")
    return select_feeds(load_feeds(path), None)


def test_poll_then_drain_indexes_every_article_once_without_prefect(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    summary = poll_once(settings, feeds, force=True)
    assert summary.published == len(INGESTED)
    assert summary.failed == 1  # garbage.xml is not a feed
    assert summary.skipped["robots"] == 1 and summary.skipped["too_short"] == 1

    indexed = drain(settings)
    assert indexed.indexed == len(INGESTED) and indexed.dead_lettered == 0
    store = open_store(settings)
    try:
        assert store.count() == len(INGESTED)
        for page in INGESTED:
            assert store.get(doc_id(canonical_url(site.url(page["path"])))) is not None
        # Feed state moved on: the second poll sees every feed unchanged or not modified.
        assert {s.feed_url for s in store.all_feed_states()} == {f.url for f in feeds}
    finally:
        store.close()

    again = poll_once(settings, feeds, force=True)
    assert again.published == 0 and again.new == 0
    assert drain(settings).consumed == 0


def test_one_poll_run_serves_several_cycles(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    with PollRun(settings) as run:
        first = run.poll(feeds, force=True)
        run.new_cycle()
        second = run.poll(feeds, force=True)
    assert first.published == len(INGESTED)
    # The feeds have not changed since: they answer 304, nothing is planned again.
    assert second.not_modified == len(feeds) - 1 and second.published == 0
    assert drain(settings).indexed == len(INGESTED)


def test_a_poll_run_refuses_use_outside_its_block(settings: Settings) -> None:
    run = PollRun(settings)
    with pytest.raises(RuntimeError, match="outside"):
        run.poll_feed(FeedConfig(url="http://127.0.0.1:9/feed.xml"), None)


# --- one bad feed or page never fails the run -------------------------------------------


def test_a_page_labelled_with_a_codec_that_is_no_text_encoding_is_still_ingested(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    # charset=base64 names a Python codec, not a text encoding: decoding with it raised
    # LookupError, which failed the run and closed the extraction pool under other feeds.
    path = "politics/senate-budget-vote.html"
    site.set(path, site.read(path), content_type="text/html; charset=base64")
    summary = poll_once(settings, feeds, force=True)
    assert summary.published == len(INGESTED)
    store = open_store(settings)
    try:
        assert {s.feed_url for s in store.all_feed_states()} == {f.url for f in feeds}
    finally:
        store.close()


def test_an_unexpected_error_on_one_page_is_that_pages_skip(
    site: Site, settings: Settings, feeds: list[FeedConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = site.url("politics/senate-budget-vote.html")
    text = FetchResponse.text

    def failing_text(self: FetchResponse) -> str:
        if self.url.partition("?")[0] == broken:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "canary")
        return text(self)

    monkeypatch.setattr(FetchResponse, "text", failing_text)
    summary = poll_once(settings, feeds, force=True)
    assert summary.skipped["decode_error"] == 1
    assert summary.published == len(INGESTED) - 1
    store = open_store(settings)
    try:
        assert {s.feed_url for s in store.all_feed_states()} == {f.url for f in feeds}
    finally:
        store.close()


def _attribute_bomb(site: Site, items: int) -> str:
    # feedparser's cost grows with the square of the attributes on one element; 1000 per
    # item stays under the screen that refuses more than 1024 (newsflow.feeds._parse), so
    # only the parse timeout stops this one.
    attrs = " ".join(f'a{i}="v"' for i in range(1000))
    link = site.url("politics/reference-article.html")
    body = f"<item {attrs}><title>t</title><link>{link}</link></item>" * items
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Slow</title>'
        f"{body}</channel></rss>"
    )


def test_a_feed_that_parses_too_slowly_fails_alone(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    slow = FeedConfig(url=site.url("feeds/slow.rss"), name="Slow")
    # About 5 s of parsing against a 1 s limit.
    site.set("feeds/slow.rss", _attribute_bomb(site, 400), "application/rss+xml")
    settings = settings.model_copy(
        update={"feed": settings.feed.model_copy(update={"parse_timeout": 1.0})}
    )
    summary = poll_once(settings, [slow, *feeds], force=True)
    assert summary.failed == 2  # garbage.xml and the slow one
    assert summary.published == len(INGESTED)
    assert drain(settings).indexed == len(INGESTED)
    store = open_store(settings)
    try:
        state = store.feed_states([slow.url])[slow.url]
    finally:
        store.close()
    assert state.last_status == "failed" and state.consecutive_failures == 1
    assert state.last_error_class == "FeedParseTimeout"
    assert "1 s" in (state.last_error_message or "")


def test_a_full_disk_fails_the_run_once_and_a_rerun_loses_nothing(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    with PollRun(settings) as run:
        buffer = run._open()[0]
        assert isinstance(buffer, SqliteBuffer)
        with buffer._db.lock:
            db = buffer._db.connection()
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            # SQLite's own "database or disk is full" once the file grows by a few pages.
            db.execute(f"PRAGMA max_page_count = {pages + 6}")
        with pytest.raises(BackendUnavailable, match=r"buffer\.sqlite3 is full"):
            run.poll(feeds, force=True)
    store = open_store(settings)
    try:
        moved = {s.feed_url for s in store.all_feed_states() if s.body_hash}
    finally:
        store.close()
    assert moved != {f.url for f in feeds if f.url != site.url("feeds/garbage.xml")}
    # Space is back (a new connection has no page limit): nothing was lost.
    poll_once(settings, feeds, force=True)
    drain(settings)
    store = open_store(settings)
    try:
        assert store.count() == len(INGESTED)
        for page in INGESTED:
            assert store.get(doc_id(canonical_url(site.url(page["path"])))) is not None
    finally:
        store.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def _hanging_feed(site: Site, silent: str, pages: int) -> FeedConfig:
    items = "".join(
        f"<item><title>Hang {n}</title><link>{silent}/story-{n}.html</link></item>"
        for n in range(pages)
    )
    site.set(
        "feeds/hanging.rss",
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Hanging</title>{items}'
        "</channel></rss>",
        "application/rss+xml",
    )
    return FeedConfig(url=site.url("feeds/hanging.rss"))


def test_stop_cuts_the_requests_in_flight_and_keeps_the_feed_state_unsaved(
    site: Site, settings: Settings, silent_server: str
) -> None:
    hanging = _hanging_feed(site, silent_server, 40)
    slow = settings.model_copy(
        update={
            "fetch": settings.fetch.model_copy(update={"deadline": 120.0, "read_timeout": 120.0})
        }
    )
    started = time.monotonic()
    with PollRun(slow) as run:
        timer = threading.Timer(1.5, run.stop)
        timer.start()
        with pytest.raises(Interrupted):
            run.poll([hanging], force=True)
        timer.join()
    # Far sooner than the 120 s deadline of the requests that were cut.
    assert time.monotonic() - started < 60
    store = open_store(settings)
    try:
        assert store.feed_states([hanging.url]) == {}, "a stopped feed must be polled again"
    finally:
        store.close()


def test_ctrl_c_stops_newsflow_run_with_one_line_and_exit_130(
    site: Site, tmp_path: Path, silent_server: str
) -> None:
    hanging = _hanging_feed(site, silent_server, 40)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{hanging.url}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSFLOW_", "PREFECT_API"))}
    env.update(
        NEWSFLOW_DATA_DIR=str(tmp_path / "data"),
        NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS="true",
        NEWSFLOW_FETCH_DEADLINE="120",
        NEWSFLOW_FETCH_READ_TIMEOUT="120",
        NEWSFLOW_EXTRACT_WORKERS="1",
    )
    newsflow = str(Path(sys.executable).parent / "newsflow")
    process = subprocess.Popen(
        [newsflow, "run", "--once", "--feeds", str(feeds)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the requests hang (the feed answered), then press Ctrl-C.
    deadline = time.monotonic() + 60
    while site.hits[urlsplit(hanging.url).path] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted: feeds in flight stopped without saving their state" in stderr
    assert "Traceback" not in stderr


def test_a_feed_publishes_as_its_pages_are_ready_not_at_its_end(
    site: Site, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = site.read("politics/reference-article.html")
    pages = 60
    items = []
    for n in range(pages):
        body = template.replace(
            "<h1", f"<p>Dispatch {n}: the council met again on day {n} of the session.</p><h1", 1
        )
        site.set(f"burst/{n}.html", body.replace("reference-article.html", f"burst/{n}.html"))
        items.append(
            f"<item><title>Burst {n}</title><link>{site.url(f'burst/{n}.html')}</link></item>"
        )
    site.set(
        "feeds/burst.rss",
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Burst</title>{"".join(items)}'
        "</channel></rss>",
        "application/rss+xml",
    )
    batches: list[tuple[int, int]] = []  # (articles published, pages requested by then)

    def spy(buffer: Buffer, topic: str, articles: Sequence[Article]) -> int:
        requested = sum(hits for path, hits in site.hits.items() if path.startswith("/burst/"))
        batches.append((len(articles), requested))
        return publish(buffer, topic, articles)

    monkeypatch.setattr("newsflow.pipeline.publish", spy)
    # A polite fetch (one request at a time, 50 ms apart) takes the feed 3 s or more:
    # far longer than extracting its first pages.
    polite = settings.fetch.model_copy(update={"per_host_delay": 0.05, "per_host_concurrency": 1})
    slow = settings.model_copy(update={"fetch": polite})
    summary = poll_once(slow, [FeedConfig(url=site.url("feeds/burst.rss"))], force=True)
    assert summary.published == sum(n for n, _ in batches) > 0
    assert len(batches) >= 2, batches
    assert batches[0][1] < pages, "the first articles went out before the feed was done"
