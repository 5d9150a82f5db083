"""Polling feeds against a local HTTP server: parsing, conditional GET, scheduling, failures."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsflow import feeds
from newsflow.errors import FeedError, PermanentFetchError, TransientFetchError
from newsflow.feeds import FeedPoll, is_due, poll_feed
from newsflow.fetch import Fetcher, HttpStatusError, RobotsDisallowed
from newsflow.settings import FeedSettings, FetchSettings
from schemas import FeedConfig, FeedState

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


# --- a local feed server ---------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


Route = Reply | Callable[[dict[str, str]], Reply]


class FeedServer:
    """Serves ``routes`` (path -> reply, or a function of the request headers -> reply)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(Seen(self.path, headers))
                route = server.routes.get(self.path, Reply(404, b"not found"))
                reply = route(headers) if callable(route) else route
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() (which waits for the loop) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests if seen.path != "/robots.txt"]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    feeds = FeedServer()
    feeds.thread.start()
    yield feeds
    feeds.httpd.shutdown()
    feeds.httpd.server_close()


@pytest.fixture(scope="module")
def fetcher() -> Iterator[Fetcher]:
    # One for the module, as in production: building its HTTP client costs ~0.1 s.
    f = Fetcher(FetchSettings(allow_private_networks=True, per_host_delay=0, respect_robots=False))
    yield f
    f.close()


SETTINGS = FeedSettings(min_interval=300, backoff_base=60, backoff_max=3600, max_entries=200)


def poll(
    url: str,
    state: FeedState | None,
    fetcher: Fetcher,
    *,
    now: datetime = NOW,
    settings: FeedSettings = SETTINGS,
    force: bool = True,
    rng: random.Random | None = None,
    **config: object,
) -> FeedPoll:
    feed = FeedConfig(url=url, **config)
    return poll_feed(feed, state, fetcher, settings, now=now, force=force, rng=rng)


# --- fixture feeds ---------------------------------------------------------------------

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
  <title>Example News &amp; Views</title>
  <link>https://news.example/</link>
  <description>All the news</description>
  <language>en-GB</language>
  <ttl>60</ttl>
  <item>
    <title>Older story</title>
    <link>/2025/06/09/older-story</link>
    <guid isPermaLink="false">older-1</guid>
    <description>&lt;p&gt;First &lt;b&gt;para&lt;/b&gt;.&lt;/p&gt;
      &lt;p&gt;Second&amp;nbsp;para.&lt;/p&gt;</description>
    <pubDate>Mon, 09 Jun 2025 08:30:00 +0200</pubDate>
    <dc:creator>Jane Doe</dc:creator>
    <category>Politics</category>
    <category>world</category>
    <media:content url="/img/older.jpg" medium="image" width="800"/>
  </item>
  <item>
    <title>Newest story: AT&amp;T &lt;em&gt;rises&lt;/em&gt;</title>
    <guid isPermaLink="true">https://news.example/2025/06/10/newest</guid>
    <pubDate>Tue, 10 Jun 2025 09:15:00 GMT</pubDate>
    <author>joe@news.example (Joe Bloggs)</author>
    <enclosure url="https://cdn.news.example/newest.png" type="image/png" length="1234"/>
  </item>
  <item>
    <title>No link at all</title>
    <description>dropped</description>
  </item>
  <item>
    <title>Undated</title>
    <link>https://news.example/undated</link>
  </item>
  <item>
    <title>Middle story</title>
    <link>https://news.example/2025/06/09/middle</link>
    <pubDate>Mon, 09 Jun 2025 18:00:00 -0400</pubDate>
    <media:thumbnail url="https://cdn.news.example/middle-thumb.jpg"/>
  </item>
</channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
  <title type="text">Beispiel Blog</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2025-06-10T10:00:00Z</updated>
  <entry>
    <title type="html">Erster &lt;i&gt;Eintrag&lt;/i&gt;</title>
    <link rel="alternate" type="text/html" href="posts/erster.html"/>
    <id>tag:blog.example,2025:1</id>
    <published>2025-06-01T10:00:00+02:00</published>
    <updated>2025-06-10T09:00:00+02:00</updated>
    <author><name>Anna Schmidt</name></author>
    <author><name>Ben Meyer</name><email>ben@blog.example</email></author>
    <category term="wissenschaft" label="Wissenschaft"/>
    <summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
      Kurz <b>und</b> gut</div></summary>
  </entry>
  <entry>
    <title>Zweiter</title>
    <link href="/absolute/zweiter"/>
    <id>tag:blog.example,2025:2</id>
    <updated>2025-06-10T11:30:00Z</updated>
    <summary>Plain &lt;b&gt; summary</summary>
  </entry>
</feed>
"""


def rss_item_feed(*links: str, ttl: str = "") -> bytes:
    items = "".join(f"<item><title>{link}</title><link>{link}</link></item>" for link in links)
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{ttl}'
        f"{items}</channel></rss>"
    ).encode()


XML = {"Content-Type": "application/rss+xml; charset=utf-8"}


# --- parsing ---------------------------------------------------------------------------


def test_rss_entries(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/news/rss.xml"] = Reply(200, RSS, XML)

    result = poll(server.url("/news/rss.xml"), None, fetcher, tags=["news", "World"], language="fr")

    assert result.status == "ok"
    assert result.error is None
    links = [entry.link for entry in result.entries]
    assert links == [
        "https://news.example/2025/06/10/newest",  # guid isPermaLink
        "https://news.example/2025/06/09/middle",  # 22:00 UTC
        server.url("/2025/06/09/older-story"),  # relative, resolved against the feed URL
        "https://news.example/undated",  # undated entries last
    ]
    newest, middle, older, undated = result.entries
    assert newest.title == "Newest story: AT&T rises"
    assert newest.guid == "https://news.example/2025/06/10/newest"
    assert newest.authors == ["Joe Bloggs"]
    assert newest.published_at == datetime(2025, 6, 10, 9, 15, tzinfo=UTC)
    assert newest.image_url == "https://cdn.news.example/newest.png"
    assert newest.tags == ["news", "World"]

    assert middle.published_at == datetime(2025, 6, 9, 22, 0, tzinfo=UTC)
    assert middle.published_at.utcoffset() == timedelta(0)
    assert middle.image_url == "https://cdn.news.example/middle-thumb.jpg"

    assert older.guid == "older-1"
    assert older.summary == "First para. Second para."  # entities decoded, blocks spaced
    assert older.authors == ["Jane Doe"]
    assert older.published_at == datetime(2025, 6, 9, 6, 30, tzinfo=UTC)
    assert older.updated_at is None
    assert older.tags == ["Politics", "world", "news"]  # deduped case-insensitively, order kept
    assert older.image_url == server.url("/img/older.jpg")
    assert older.language == "en-GB"  # the feed's own language wins over the config hint

    assert undated.published_at is None

    state = result.state
    assert state.feed_url == server.url("/news/rss.xml")
    assert state.name == "Example News & Views"
    assert state.last_status == "ok"
    assert state.entries_seen == 5
    assert state.ttl_seconds == 3600
    assert state.consecutive_failures == 0
    assert state.last_success_at == NOW
    assert state.body_hash is not None and len(state.body_hash) == 64
    assert state.fetch_url is None


def test_atom_entries(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/blog/atom.xml"] = Reply(200, ATOM, {"Content-Type": "application/atom+xml"})

    result = poll(server.url("/blog/atom.xml"), None, fetcher, name="Mein Blog", language="en")

    assert result.status == "ok"
    second, first = result.entries  # newest (by updated) first
    assert first.link == server.url("/blog/posts/erster.html")
    assert first.title == "Erster Eintrag"
    assert first.summary == "Kurz und gut"
    assert first.authors == ["Anna Schmidt", "Ben Meyer"]
    assert first.published_at == datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2025, 6, 10, 7, 0, tzinfo=UTC)
    assert first.tags == ["wissenschaft"]
    assert first.guid == "tag:blog.example,2025:1"
    assert second.link == server.url("/absolute/zweiter")
    assert second.summary == "Plain <b> summary"  # type="text": markup-looking text is text
    assert second.published_at is None
    assert second.updated_at == datetime(2025, 6, 10, 11, 30, tzinfo=UTC)
    assert second.language == "de"  # xml:lang of the feed wins over the config hint
    assert result.state.name == "Mein Blog"  # configured name wins
    assert result.state.ttl_seconds is None


def test_entries_capped_newest_first(server: FeedServer, fetcher: Fetcher) -> None:
    items = "".join(
        f"<item><link>https://x.example/{day}</link>"
        f"<pubDate>{day:02d} Jun 2025 00:00:00 GMT</pubDate></item>"
        for day in (3, 9, 1, 7, 5)
    )
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    server.routes["/f"] = Reply(200, body, XML)
    settings = SETTINGS.model_copy(update={"max_entries": 3})

    result = poll(server.url("/f"), None, fetcher, settings=settings)

    assert [e.link for e in result.entries] == [f"https://x.example/{d}" for d in (9, 7, 5)]
    assert result.state.entries_seen == 5


def test_duplicate_links_in_one_body_give_one_entry(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(
        200, rss_item_feed("https://x.example/a", "https://x.example/a"), XML
    )
    result = poll(server.url("/f"), None, fetcher)
    assert [e.link for e in result.entries] == ["https://x.example/a"]


def test_bozo_feed_keeps_entries(server: FeedServer, fetcher: Fetcher) -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title>'
        b"<item><title>One <b>bold</title><link>https://x.example/1</link></item>"
        b"<item><title>Two</title><link>https://x.example/2</link></item>"
        b"</channel></rss>"
    )
    server.routes["/f"] = Reply(200, body, XML)

    result = poll(server.url("/f"), None, fetcher)

    assert result.status == "bozo"
    assert result.error is None
    assert {e.link for e in result.entries} == {"https://x.example/1", "https://x.example/2"}
    assert result.state.last_status == "bozo"
    assert result.state.bozo_message and "mismatched tag" in result.state.bozo_message
    assert result.state.bozo

    # The same body again (or a 304) says nothing new: the complaint still holds.
    same = poll(server.url("/f"), result.state, fetcher)
    assert same.status == "unchanged" and same.state.last_status == "unchanged"
    assert same.state.bozo and same.state.bozo_message == result.state.bozo_message

    # A clean body afterwards clears the complaint.
    server.routes["/f"] = Reply(200, rss_item_feed("https://x.example/3"), XML)
    again = poll(server.url("/f"), same.state, fetcher)
    assert again.status == "ok"
    assert again.state.bozo_message is None and not again.state.bozo


def test_html_page_is_not_a_feed(server: FeedServer, fetcher: Fetcher) -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>Oops</title></head><body><h1>Error</h1></body></html>"
    )
    server.routes["/f"] = Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})

    result = poll(server.url("/f"), None, fetcher)

    assert result.status == "failed"
    assert isinstance(result.error, FeedError)
    assert str(result.error).startswith(f"not a feed: {server.url('/f')}")
    assert result.entries == []
    assert result.state.last_error_class == "FeedError"
    assert result.state.consecutive_failures == 1
    assert result.state.body_hash is None  # a failed body must not count as "unchanged" later

    again = poll(server.url("/f"), result.state, fetcher)
    assert again.status == "failed"
    assert again.state.consecutive_failures == 2


@pytest.mark.parametrize(
    "content_type", ["text/xml", "text/plain", "text/html; charset=utf-8", "application/xml"]
)
def test_sloppy_content_type_is_not_bozo(
    server: FeedServer, fetcher: Fetcher, content_type: str
) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Zürich Ünïcode</title><item><title>Café</title>"
        "<link>https://x.example/1</link></item></channel></rss>"
    ).encode()
    server.routes["/f"] = Reply(200, body, {"Content-Type": content_type})

    result = poll(server.url("/f"), None, fetcher)

    assert result.status == "ok"
    assert result.state.bozo_message is None
    assert result.state.name == "Zürich Ünïcode"
    assert result.entries[0].title == "Café"


def test_latin1_feed_is_decoded_by_its_declaration(server: FeedServer, fetcher: Fetcher) -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel>'
        "<title>Fran\u00e7ais</title><item><link>https://x.example/1</link></item>"
        "</channel></rss>"
    ).encode("iso-8859-1")
    server.routes["/f"] = Reply(200, body, {"Content-Type": "text/xml"})
    result = poll(server.url("/f"), None, fetcher)
    assert result.status == "ok"
    assert result.state.name == "Fran\u00e7ais"


def test_empty_but_valid_feed_is_ok(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(200, rss_item_feed(), XML)
    result = poll(server.url("/f"), None, fetcher)
    assert result.status == "ok"
    assert result.entries == []


# --- conditional GET -------------------------------------------------------------------


def test_conditional_get_and_not_modified(server: FeedServer, fetcher: Fetcher) -> None:
    etag = '"v1"'
    modified = "Tue, 10 Jun 2025 09:00:00 GMT"

    def feed(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == etag:
            return Reply(304)
        return Reply(200, RSS, {**XML, "ETag": etag, "Last-Modified": modified})

    server.routes["/f"] = feed
    first = poll(server.url("/f"), None, fetcher)
    assert first.status == "ok"
    assert (first.state.etag, first.state.last_modified) == (etag, modified)
    assert "if-none-match" not in server.requests[-1].headers

    later = NOW + timedelta(hours=2)
    second = poll(server.url("/f"), first.state, fetcher, now=later, force=False)

    sent = server.requests[-1].headers
    assert sent["if-none-match"] == etag
    assert sent["if-modified-since"] == modified
    assert second.status == "not_modified"
    assert second.entries == []
    assert (second.state.etag, second.state.last_modified) == (etag, modified)  # kept on 304
    assert second.state.last_status == "not_modified"
    assert second.state.last_success_at == later
    assert second.state.ttl_seconds == 3600
    assert second.state.next_poll_at == later + timedelta(hours=1)
    assert second.state.body_hash == first.state.body_hash
    assert second.state.entries_seen == first.state.entries_seen


def test_server_ignoring_conditional_headers_gives_unchanged(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/f"] = Reply(200, RSS, {**XML, "ETag": '"same"'})
    first = poll(server.url("/f"), None, fetcher)
    second = poll(server.url("/f"), first.state, fetcher, now=NOW + timedelta(minutes=10))

    assert server.requests[-1].headers["if-none-match"] == '"same"'
    assert second.status == "unchanged"
    assert second.entries == []
    assert second.state.last_status == "unchanged"
    assert second.state.etag == '"same"'

    server.routes["/f"] = Reply(200, RSS.replace(b"Older story", b"Older story, updated"), XML)
    third = poll(server.url("/f"), second.state, fetcher, now=NOW + timedelta(minutes=20))
    assert third.status == "ok"
    assert len(third.entries) == 4
    assert third.state.etag is None  # the new body came without one


# --- scheduling ------------------------------------------------------------------------


def test_next_poll_uses_interval_or_ttl_whichever_is_longer(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/ttl"] = Reply(
        200, rss_item_feed("https://x.example/a", ttl="<ttl>45</ttl>"), XML
    )
    server.routes["/plain"] = Reply(200, rss_item_feed("https://x.example/a"), XML)

    with_ttl = poll(server.url("/ttl"), None, fetcher)
    assert with_ttl.state.next_poll_at == NOW + timedelta(minutes=45)

    configured = poll(server.url("/ttl"), None, fetcher, poll_interval=7200)
    assert configured.state.next_poll_at == NOW + timedelta(hours=2)

    default = poll(server.url("/plain"), None, fetcher)
    assert default.state.next_poll_at == NOW + timedelta(seconds=SETTINGS.min_interval)


def test_is_due() -> None:
    config = FeedConfig(url="https://x.example/feed")
    state = FeedState(feed_url=config.url, next_poll_at=NOW)
    assert is_due(config, None, NOW)
    assert is_due(config, FeedState(feed_url=config.url), NOW)
    assert is_due(config, state, NOW)
    assert not is_due(config, state, NOW - timedelta(seconds=1))
    assert not is_due(config.model_copy(update={"enabled": False}), None, NOW)


def test_not_due_and_disabled_make_no_request(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(200, rss_item_feed("https://x.example/a"), XML)
    first = poll(server.url("/f"), None, fetcher)
    assert server.paths() == ["/f"]

    early = poll(
        server.url("/f"), first.state, fetcher, now=NOW + timedelta(seconds=10), force=False
    )
    assert early.status == "not_due"
    assert early.state == first.state
    assert early.entries == []

    disabled = poll(server.url("/f"), first.state, fetcher, force=True, enabled=False)
    assert disabled.status == "disabled"
    assert disabled.state == first.state
    assert server.paths() == ["/f"]

    forced = poll(server.url("/f"), first.state, fetcher, now=NOW + timedelta(seconds=10))
    assert forced.status == "unchanged"
    assert server.paths() == ["/f", "/f"]


def test_state_of_another_feed_is_a_programming_error(fetcher: Fetcher) -> None:
    with pytest.raises(ValueError, match="state of"):
        poll("https://x.example/a", FeedState(feed_url="https://x.example/b"), fetcher)


# --- failures and backoff --------------------------------------------------------------


class FixedRandom(random.Random):
    """Draws the given fraction of every uniform() range."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_failures_back_off_exponentially_up_to_the_cap(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/f"] = Reply(500, b"boom")
    settings = FeedSettings(backoff_base=60, backoff_max=600)
    state: FeedState | None = None
    waits = []
    for _ in range(6):
        result = poll(server.url("/f"), state, fetcher, settings=settings, rng=FixedRandom(1.0))
        assert result.status == "failed"
        assert isinstance(result.error, TransientFetchError)
        assert isinstance(result.error, HttpStatusError)
        state = result.state
        assert state.next_poll_at is not None
        waits.append((state.next_poll_at - NOW).total_seconds())

    assert waits == [60, 120, 240, 480, 600, 600]
    assert state is not None
    assert state.consecutive_failures == 6
    assert state.last_error_class == type(result.error).__name__
    assert state.last_error_message == str(result.error)
    assert state.last_attempt_at == NOW
    assert state.last_success_at is None
    assert state.last_status == "failed"


def test_backoff_jitter_stays_within_half_and_full(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(502, b"")
    low = poll(server.url("/f"), None, fetcher, rng=FixedRandom(0.0))
    assert low.state.next_poll_at == NOW + timedelta(seconds=30)

    rng = random.Random(1234)  # noqa: S311 - jitter, not cryptography
    state = FeedState(feed_url=server.url("/f"), consecutive_failures=3)
    waits = set()
    for _ in range(20):
        result = poll(server.url("/f"), state, fetcher, rng=rng)
        assert result.state.next_poll_at is not None
        wait = (result.state.next_poll_at - NOW).total_seconds()
        assert 240 <= wait <= 480  # 4th failure: 60 * 2**3, jittered to 50-100%
        waits.add(wait)
    assert len(waits) > 1


def test_retry_after_is_honoured(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(503, b"busy", {"Retry-After": "600"})

    result = poll(server.url("/f"), None, fetcher)

    assert result.status == "failed"
    assert isinstance(result.error, HttpStatusError)
    assert result.error.retry_after == 600
    assert result.state.next_poll_at is not None
    assert result.state.next_poll_at >= NOW + timedelta(seconds=600)


def test_permanent_http_error_is_counted_not_raised(server: FeedServer, fetcher: Fetcher) -> None:
    result = poll(server.url("/gone"), None, fetcher)
    assert result.status == "failed"
    assert isinstance(result.error, PermanentFetchError)
    assert result.state.consecutive_failures == 1


def test_unreachable_server_is_a_transient_failure(fetcher: Fetcher) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/feed"
    closed.server_close()

    result = poll(url, None, fetcher)

    assert result.status == "failed"
    assert isinstance(result.error, TransientFetchError)


def test_revived_feed_recovers(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(500, b"down")
    state: FeedState | None = None
    for _ in range(3):
        state = poll(server.url("/f"), state, fetcher).state
    assert state is not None and state.consecutive_failures == 3

    server.routes["/f"] = Reply(200, rss_item_feed("https://x.example/back"), XML)
    later = NOW + timedelta(hours=1)
    result = poll(server.url("/f"), state, fetcher, now=later)

    assert result.status == "ok"
    assert [e.link for e in result.entries] == ["https://x.example/back"]
    assert result.state.consecutive_failures == 0
    assert result.state.last_success_at == later
    assert result.state.next_poll_at == later + timedelta(seconds=SETTINGS.min_interval)


# --- redirects -------------------------------------------------------------------------


def test_permanent_redirect_is_remembered(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/old"] = Reply(301, b"", {"Location": "/new"})
    server.routes["/new"] = Reply(200, rss_item_feed("rel/1"), XML)

    first = poll(server.url("/old"), None, fetcher)

    assert first.status == "ok"
    assert first.state.feed_url == server.url("/old")
    assert first.state.fetch_url == server.url("/new")
    assert first.entries[0].link == server.url("/rel/1")  # resolved against the final URL

    server.requests.clear()
    second = poll(server.url("/old"), first.state, fetcher)
    assert server.paths() == ["/new"]
    assert second.status == "unchanged"
    assert second.state.fetch_url == server.url("/new")


def test_temporary_redirect_is_not_remembered(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/old"] = Reply(302, b"", {"Location": "/new"})
    server.routes["/new"] = Reply(200, rss_item_feed("https://x.example/1"), XML)
    result = poll(server.url("/old"), None, fetcher)
    assert result.status == "ok"
    assert result.state.fetch_url is None


def test_remembered_url_that_is_gone_falls_back_to_configured(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/f"] = Reply(200, rss_item_feed("https://x.example/1"), XML)
    state = FeedState(feed_url=server.url("/f"), fetch_url=server.url("/moved-away"))

    failed = poll(server.url("/f"), state, fetcher)
    assert failed.status == "failed"
    assert failed.state.fetch_url is None

    recovered = poll(server.url("/f"), failed.state, fetcher)
    assert recovered.status == "ok"
    assert server.paths() == ["/moved-away", "/f"]


def test_retry_after_is_capped_by_backoff_max(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/f"] = Reply(429, b"slow down", {"Retry-After": "999999"})
    result = poll(server.url("/f"), None, fetcher)
    assert result.state.next_poll_at == NOW + timedelta(seconds=SETTINGS.backoff_max)


# --- robots.txt ------------------------------------------------------------------------


def test_feed_can_opt_into_robots_txt(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/robots.txt"] = Reply(
        200, b"User-agent: *\nDisallow: /private/\n", {"Content-Type": "text/plain"}
    )
    server.routes["/private/feed"] = Reply(200, rss_item_feed("https://x.example/1"), XML)

    ignored = poll(server.url("/private/feed"), None, fetcher)  # the global setting: ignore
    assert ignored.status == "ok"

    respected = poll(server.url("/private/feed"), None, fetcher, respect_robots=True)
    assert respected.status == "failed"
    assert isinstance(respected.error, RobotsDisallowed)
    assert respected.state.last_error_class == "RobotsDisallowed"


def test_public_face_is_the_package() -> None:
    assert sorted(feeds.__all__) == ["FeedPoll", "FeedStatus", "is_due", "poll_feed"]
    assert all(hasattr(feeds, name) for name in feeds.__all__)
