"""The fetch slot of a feed: which limit, for how long a lease (no server needed).

tests/flows/test_workers.py shows the lease at work: a run killed holding a slot gives
it back once the lease has run out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

import flows.poll_feeds as poll_module
from flows.poll_feeds import FETCH_LEASE, poll_feed_task, poll_feeds
from newsflow.pipeline import FetchSlot, PollRun
from newsflow.summary import PollSummary
from schemas import FeedConfig, FeedState


class _Run:
    """Polls a feed by holding its fetch slot once."""

    def poll_feed(
        self, feed: FeedConfig, state: FeedState | None, *, force: bool, fetch_slot: FetchSlot
    ) -> PollSummary:
        with fetch_slot():
            return PollSummary()


@pytest.fixture
def acquisitions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def concurrency(names: str, **options: Any) -> Iterator[None]:
        calls.append((names, options))
        yield

    monkeypatch.setattr(poll_module, "concurrency", concurrency)
    return calls


@pytest.mark.parametrize("lease", [FETCH_LEASE, 600.0])
def test_a_feed_leases_its_slot_of_the_limit_for_fetch_lease_seconds(
    acquisitions: list[tuple[str, dict[str, Any]]], lease: float
) -> None:
    feed = FeedConfig(url="https://news.example.com/feed.xml")
    run = cast(PollRun, _Run())
    poll_feed_task.fn(run, feed, None, force=False, fetch_limit="newsflow-fetch", fetch_lease=lease)
    assert acquisitions == [("newsflow-fetch", {"lease_duration": lease})]


def test_the_default_lease_is_the_shortest_the_server_grants() -> None:
    assert FETCH_LEASE == 60.0


@pytest.mark.parametrize("lease", [0.0, 59.0, 86401.0])
def test_a_lease_the_server_would_refuse_fails_the_run_before_any_feed(
    tmp_path: Path, lease: float
) -> None:
    with pytest.raises(ValueError, match=f"fetch_lease={lease:g}"):
        poll_feeds.fn(feeds_path=str(tmp_path / "missing.toml"), fetch_lease=lease)
