"""Item 11: slow and silent servers. The fetch deadline is 2 s here (30 s by default).

Each request must end at its deadline (a generous margin on top), a poll must finish the
other feeds while one hangs, and a closed run must leave no thread or socket behind.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import open_store
from newsflow.errors import TransientFetchError
from newsflow.fetch import Fetcher
from newsflow.pipeline import PollRun, drain, poll_once
from newsflow.settings import FetchSettings
from schemas import FeedConfig
from tests.newsflow.hostile._support import embedded_settings, open_fds

DEADLINE = 2.0
_MARGIN = 4.0  # the machine is shared: generous, but far below what no deadline would take
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def slow() -> Iterator[dict[str, int]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.newsflow.hostile._slow_server"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    ports: dict[str, int] = json.loads(child.stdout.readline())
    yield ports
    child.stdin.close()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def _fetch_settings(**overrides: Any) -> FetchSettings:
    values: dict[str, Any] = {
        "allow_private_networks": True,
        "respect_robots": False,
        "per_host_delay": 0.0,
        "deadline": DEADLINE,
    } | overrides
    return FetchSettings(**values)


@pytest.mark.parametrize(
    ("port", "path"),
    [
        ("http", "/drip.html?every=5"),  # 1 byte every 5 s: each read times out
        ("http", "/drip.html?every=0.2"),  # fast enough for every read, not for the deadline
        ("http", "/drip-head.html?every=0.2"),  # even the status line drips
        ("http", "/silent"),  # reads the request, never answers
        ("backlog", "/"),  # accepted by the kernel, never by the server
    ],
)
def test_each_slow_server_is_abandoned_at_the_deadline(
    slow: dict[str, int], port: str, path: str
) -> None:
    # Timeouts per read as long as the defaults: only the overall deadline can stop these.
    with Fetcher(_fetch_settings(read_timeout=15.0, connect_timeout=5.0)) as fetcher:
        started = time.monotonic()
        with pytest.raises(TransientFetchError, match="deadline exceeded"):
            fetcher.get(f"http://127.0.0.1:{slow[port]}{path}")
        took = time.monotonic() - started
    assert DEADLINE - 0.1 <= took < DEADLINE + _MARGIN, took


def _feeds(slow: dict[str, int], count: int, hanging: str) -> list[FeedConfig]:
    base = f"http://127.0.0.1:{slow['http']}"
    feeds = [FeedConfig(url=f"{base}/feed/{n}.rss") for n in range(count - 1)]
    feeds.insert(count // 2, FeedConfig(url=f"{base}{hanging}"))
    return feeds


def _settle(before: tuple[int, int], timeout: float = 10.0) -> tuple[int, int]:
    """Threads and fds once closed pools have wound down (they exit asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = (threading.active_count(), open_fds())
        if (now[0] <= before[0] and now[1] <= before[1]) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


@pytest.mark.parametrize("hanging", ["/silent.rss", "/drip.html?every=0.2"])
def test_one_hanging_feed_among_50_the_cycle_finishes_the_others_and_leaks_nothing(
    slow: dict[str, int], tmp_path: Path, hanging: str
) -> None:
    settings = embedded_settings(
        tmp_path, fetch={"deadline": DEADLINE, "read_timeout": 15.0, "per_host_concurrency": 16}
    )
    feeds = _feeds(slow, 50, hanging)
    # Warm-up: the forkserver and multiprocessing's first task (its resource tracker) stay
    # for the process's lifetime; what a run leaked would show on top of them.
    with PollRun(settings) as run:
        assert run.poll(feeds[:1], force=True).published == 1
    before = (threading.active_count(), open_fds())
    started = time.monotonic()
    summary = poll_once(settings, feeds, force=True)
    took = time.monotonic() - started
    after = _settle(before)

    assert summary.feeds_polled == 50
    assert summary.failed == 1
    assert summary.published == 48  # one published by the warm-up
    assert after[0] <= before[0], f"threads {before[0]} -> {after[0]}"
    assert after[1] <= before[1], f"open fds {before[1]} -> {after[1]}"
    assert took < 60.0, took
    store = open_store(settings)
    try:
        states = {s.feed_url: s for s in store.all_feed_states()}
        hung = states[feeds[25].url]
        assert hung.last_status == "failed" and hung.last_error_class == "TransientFetchError"
        assert "deadline exceeded" in (hung.last_error_message or "")
    finally:
        store.close()
    assert drain(settings).indexed == 49
