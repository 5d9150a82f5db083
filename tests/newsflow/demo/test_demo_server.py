"""The demo news server: {{BASE}} substitution, the phase switch, conditional GET, robots."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest

from newsflow.demo.server import SITE_DIR, DemoSite, serve_demo_site

MANIFEST = json.loads((SITE_DIR.parent / "manifest.json").read_text(encoding="utf-8"))
CHANGED = MANIFEST["changed"]["path"]
CHANGED_FEED = MANIFEST["changed"]["feed"]
UNCHANGED_FEEDS = [
    f["path"] for f in MANIFEST["feeds"] if f["path"] != CHANGED_FEED and f["format"] != "broken"
]


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with serve_demo_site() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as opened:
        yield opened


def test_pages_are_served_with_the_base_placeholder_replaced(
    site: DemoSite, client: httpx.Client
) -> None:
    answer = client.get(site.url("politics/reference-article.html"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "{{BASE}}" not in answer.text
    assert f'<link rel="canonical" href="{site.base}/politics/reference-article.html">' in (
        answer.text
    )
    assert site.base.startswith("http://127.0.0.1:")
    assert client.get(site.url("/")).text.count("<li>") >= 30  # the home page lists stories


def test_feeds_carry_feed_content_types(site: DemoSite, client: httpx.Client) -> None:
    rss = client.get(site.url("feeds/politics.rss"))
    atom = client.get(site.url("feeds/business.atom"))
    assert rss.headers["content-type"].startswith("application/rss+xml")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    # The broken feed is the CMS's error page, and labelled as the HTML it is.
    broken = client.get(site.url("feeds/opinion.rss"))
    assert broken.status_code == 200
    assert broken.headers["content-type"].startswith("text/html")
    assert "<rss" not in broken.text and "maintenance" in broken.text


def test_phase_two_changes_the_article_and_its_feed_and_nothing_else(
    site: DemoSite, client: httpx.Client
) -> None:
    paths = [CHANGED, CHANGED_FEED, *UNCHANGED_FEEDS, "politics/reference-article.html"]
    first = {path: client.get(site.url(path)).text for path in paths}
    site.phase = 2
    second = {path: client.get(site.url(path)).text for path in paths}
    assert "UPDATE, 6:40 p.m." not in first[CHANGED]
    assert "UPDATE, 6:40 p.m." in second[CHANGED]
    assert second[CHANGED_FEED] != first[CHANGED_FEED]
    assert "2024-06-12T18:40:00-04:00" in second[CHANGED_FEED]
    for path in paths[2:]:
        assert second[path] == first[path], path
    site.phase = 1
    assert client.get(site.url(CHANGED)).text == first[CHANGED]


def test_only_phases_one_and_two_exist(site: DemoSite) -> None:
    with pytest.raises(ValueError, match="phase must be 1 or 2"):
        site.phase = 3
    assert site.phase == 1


def test_a_matching_etag_is_answered_not_modified(site: DemoSite, client: httpx.Client) -> None:
    feeds = [CHANGED_FEED, *UNCHANGED_FEEDS]
    etags = {path: client.get(site.url(path)).headers["etag"] for path in feeds}
    for path, etag in etags.items():
        again = client.get(site.url(path), headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == etag
    assert client.get(site.url(CHANGED_FEED), headers={"If-None-Match": '"other"'}).status_code == (
        200
    )
    site.phase = 2
    answers = {
        path: client.get(site.url(path), headers={"If-None-Match": etags[path]}) for path in feeds
    }
    assert answers[CHANGED_FEED].status_code == 200
    assert answers[CHANGED_FEED].headers["etag"] != etags[CHANGED_FEED]
    assert [answers[path].status_code for path in UNCHANGED_FEEDS] == [304] * len(UNCHANGED_FEEDS)
    assert site.not_modified[f"/{UNCHANGED_FEEDS[0]}"] == 2
    assert site.hits[f"/{UNCHANGED_FEEDS[0]}"] == 3


def test_if_modified_since_is_used_without_an_etag(site: DemoSite, client: httpx.Client) -> None:
    first = client.get(site.url(CHANGED_FEED))
    stamp = parsedate_to_datetime(first.headers["last-modified"])
    same = client.get(site.url(CHANGED_FEED), headers={"If-Modified-Since": format_datetime(stamp)})
    assert same.status_code == 304
    older = format_datetime(stamp - timedelta(hours=1), usegmt=True)
    assert client.get(site.url(CHANGED_FEED), headers={"If-Modified-Since": older}).status_code == (
        200
    )
    site.phase = 2
    moved = client.get(
        site.url(CHANGED_FEED), headers={"If-Modified-Since": format_datetime(stamp)}
    )
    assert moved.status_code == 200
    assert parsedate_to_datetime(moved.headers["last-modified"]) > stamp
    # An ETag, when sent, decides alone (RFC 9110).
    both = client.get(
        site.url(CHANGED_FEED),
        headers={"If-None-Match": first.headers["etag"], "If-Modified-Since": "garbage"},
    )
    assert both.status_code == 200


def test_robots_txt_keeps_crawlers_out_of_the_members_area(
    site: DemoSite, client: httpx.Client
) -> None:
    robots = client.get(site.url("robots.txt"))
    assert robots.status_code == 200
    assert robots.headers["content-type"].startswith("text/plain")
    assert "Disallow: /members/" in robots.text
    assert f"Sitemap: {site.base}/sitemap.xml" in robots.text


@pytest.mark.parametrize(
    "path",
    [
        "/_phase2/" + CHANGED,  # the overlay is never served under its own name
        "/politics/no-such-story.html",
        "/static/img/logo.svg",
    ],
)
def test_unknown_and_hidden_paths_are_not_found(
    site: DemoSite, client: httpx.Client, path: str
) -> None:
    assert client.get(site.base + path).status_code == 404
    assert site.hits[path] == 1


@pytest.mark.parametrize(
    "path", ["/../pyproject.toml", "/%2e%2e/manifest.json", "/politics/../../stories.toml"]
)
def test_paths_outside_the_site_are_not_served(site: DemoSite, path: str) -> None:
    # Sent as written: an HTTP client library would normalise the dots away.
    connection = http.client.HTTPConnection(site.base.removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", path)
        assert connection.getresponse().status == 404
    finally:
        connection.close()
    assert site.resolve(path) is None


def test_head_answers_headers_without_a_body(site: DemoSite, client: httpx.Client) -> None:
    answer = client.head(site.url(CHANGED))
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) > 5000
    assert answer.content == b""
