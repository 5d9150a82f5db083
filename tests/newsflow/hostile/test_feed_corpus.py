"""Item 14: a corpus of malformed and odd feeds (``_corpus``), each polled through the real
fetcher (over httpx's MockTransport: decoding, charset) and feedparser.

None may raise; each must yield its parseable entries or a recorded error class.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from newsflow.feeds import poll_feed
from newsflow.fetch import Fetcher
from newsflow.settings import FeedSettings, FetchSettings
from schemas import FeedConfig
from tests.newsflow.hostile._corpus import Case, corpus

CORPUS = corpus()
FEED_URL = "http://news.example/feeds/corpus.xml"


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 50


@pytest.fixture(scope="module")
def fetcher() -> Iterator[Fetcher]:
    def answer(request: httpx.Request) -> httpx.Response:
        case = CORPUS[request.url.params["case"]]
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(case.body))

    settings = FetchSettings(respect_robots=False, per_host_delay=0.0)
    with Fetcher(settings, transport=httpx.MockTransport(answer)) as client:
        yield client


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_feed_yields_its_entries_or_a_recorded_error(fetcher: Fetcher, name: str) -> None:
    case: Case = CORPUS[name]
    config = FeedConfig(url=f"{FEED_URL}?case={name}")
    poll = poll_feed(config, None, fetcher, FeedSettings(), force=True)
    assert poll.status == case.status, (poll.status, poll.state.last_error_message)
    assert len(poll.entries) == case.entries, [e.link for e in poll.entries]
    assert poll.state.last_error_class == case.error_class
    if case.status == "failed":
        assert poll.state.consecutive_failures == 1 and poll.state.next_poll_at is not None
    for entry in poll.entries:
        assert entry.link.startswith(("http://", "https://")), entry.link
