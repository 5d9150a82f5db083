"""Sanity checks for the static fixture news site in tests/fixtures/site/.

Verifies, without any network access, that
  * trafilatura extracts the article body of every fixture page and none of the boilerplate
    (navigation, share buttons, cookie banner, related links, comments, footer),
  * the page metadata (title / author / date) matches MANIFEST.toml,
  * the feeds parse with feedparser as documented (good feeds clean, broken feed partially),
  * feed links, robots.txt, feeds.opml and feeds.toml are consistent with the manifest.
"""

from __future__ import annotations

import re
import tomllib
import urllib.robotparser
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
import trafilatura
from trafilatura.settings import Document

SITE = Path(__file__).parent / "fixtures" / "site"
BASE_PLACEHOLDER = "{{BASE}}"
BASE = "http://127.0.0.1:8000"
TOO_SHORT_LIMIT = 200


# ------------------------------------------------------------------ helpers
@cache
def load_manifest() -> dict[str, Any]:
    with open(SITE / "MANIFEST.toml", "rb") as fh:
        return tomllib.load(fh)


def manifest_pages(skip: str | None = None) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = load_manifest()["pages"]
    if skip is None:
        return pages
    return [p for p in pages if p["skip"] == skip]


def manifest_feeds() -> list[dict[str, Any]]:
    feeds: list[dict[str, Any]] = load_manifest()["feeds"]
    return feeds


def read_site_file(rel: str, base: str = BASE) -> str:
    """Fixture file with the {{BASE}} placeholder substituted (what the test server serves)."""
    return (SITE / rel).read_text(encoding="utf-8").replace(BASE_PLACEHOLDER, base)


def sub_base(value: str, base: str = BASE) -> str:
    return value.replace(BASE_PLACEHOLDER, base)


def page_id(page: dict[str, Any]) -> str:
    return str(page["path"])


@cache
def extracted_text(rel: str) -> str | None:
    html = read_site_file(rel)
    text: str | None = trafilatura.extract(
        html, include_comments=False, include_tables=True, with_metadata=False
    )
    return text


@cache
def extracted_doc(rel: str) -> dict[str, Any]:
    html = read_site_file(rel)
    doc = trafilatura.bare_extraction(
        html, include_comments=False, include_tables=True, with_metadata=True
    )
    assert doc is not None, f"bare_extraction returned None for {rel}"
    # trafilatura >= 2.0 returns a Document object, older versions a dict
    return doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)


def split_authors(value: str | None) -> list[str]:
    if not value:
        return []
    return [a.strip() for a in value.split(";") if a.strip()]


def parse_feed(rel: str) -> Any:
    return feedparser.parse(read_site_file(rel).encode("utf-8"))


def to_utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def feed_id(feed: dict[str, Any]) -> str:
    return str(feed["path"])


INGESTED = [p for p in manifest_pages() if p["skip"] != "too_short"]
GOOD_FEEDS = [f for f in manifest_feeds() if f["format"] in ("rss", "atom")]
REQUIRED_FEED_KEYS = {
    "url", "name", "enabled", "poll_interval", "tags", "language", "respect_robots",
}  # fmt: skip


# ------------------------------------------------------------------ manifest sanity
def test_manifest_covers_every_article_page() -> None:
    listed = {p["path"] for p in manifest_pages()}
    on_disk = {
        str(path.relative_to(SITE)) for path in SITE.rglob("*.html") if path.name != "index.html"
    }
    assert listed == on_disk
    assert len(listed) >= 15
    assert {p["skip"] for p in manifest_pages()} == {"", "too_short", "robots"}
    for page in manifest_pages():
        assert page["must_not_contain"], page["path"]
        if page["skip"] != "too_short":
            assert len(page["must_contain"]) >= 2, page["path"]


def test_fixture_files_use_base_placeholder_only() -> None:
    served = [p for p in SITE.rglob("*") if p.suffix in {".html", ".rss", ".atom", ".xml", ".opml"}]
    served += [SITE / "robots.txt", SITE / "feeds.toml"]
    for path in served:
        text = path.read_text(encoding="utf-8")
        assert "127.0.0.1" not in text and "localhost" not in text, path
    assert BASE_PLACEHOLDER in read_site_file("feeds.toml", base=BASE_PLACEHOLDER)


# ------------------------------------------------------------------ extraction
@pytest.mark.parametrize("page", INGESTED, ids=page_id)
def test_extracted_text(page: dict[str, Any]) -> None:
    text = extracted_text(page["path"])
    assert text, f"no text extracted from {page['path']}"
    for needle in page["must_contain"]:
        assert needle in text, f"missing {needle!r}"
    for needle in page["must_not_contain"]:
        assert needle not in text, f"boilerplate leaked: {needle!r}"
    # bare_extraction must agree with extract on the main text
    doc = extracted_doc(page["path"])
    for needle in page["must_contain"]:
        assert needle in doc["text"]
    for needle in page["must_not_contain"]:
        assert needle not in doc["text"]


@pytest.mark.parametrize("page", [p for p in INGESTED if p.get("expected_text_file")], ids=page_id)
def test_extracted_text_exact(page: dict[str, Any]) -> None:
    expected = (SITE / page["expected_text_file"]).read_text(encoding="utf-8").strip("\n")
    assert extracted_text(page["path"]) == expected


def test_reference_body_matches_source_text() -> None:
    source = (SITE / "expected" / "reference-article.source.txt").read_text(encoding="utf-8")
    lines = [line for line in source.split("\n") if line.strip()]
    body = lines[lines.index("Font Size:") + 1 :]
    expected_file = SITE / "expected" / "reference-article.body.txt"
    expected = expected_file.read_text(encoding="utf-8").strip("\n")
    assert expected.split("\n") == body
    html = read_site_file("politics/reference-article.html")
    for paragraph in body:
        # the paragraph text is in the HTML; the RELATED headlines are links
        plain = re.sub(r"\(RELATED: (.*?)\)", "", paragraph)
        assert plain.strip() in html
    assert html.count("(RELATED: <a href=") == 2
    assert "Font Size:" in html and "(Photo by KARIM JAAFAR/AFP via Getty Images)" in html


@pytest.mark.parametrize("page", INGESTED, ids=page_id)
def test_extracted_metadata(page: dict[str, Any]) -> None:
    doc = extracted_doc(page["path"])
    assert doc["title"] == page["title"]
    assert sorted(split_authors(doc["author"])) == sorted(page["authors"])
    if page["date_on_page"]:
        assert doc["date"] == page["published"][:10]
    else:
        assert doc["date"] is None


@pytest.mark.parametrize("page", [p for p in INGESTED if p["date_on_page"]], ids=page_id)
def test_extracted_full_timestamp(page: dict[str, Any]) -> None:
    """With htmldate's original-date mode the page yields the exact published instant."""
    html = read_site_file(page["path"])
    doc = trafilatura.bare_extraction(
        html,
        url=f"{BASE}/{page['path']}",
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        date_extraction_params={
            "original_date": True,
            "extensive_search": True,
            "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        },
    )
    assert isinstance(doc, Document) and isinstance(doc.date, str)
    assert datetime.fromisoformat(doc.date) == datetime.fromisoformat(page["published"])


@pytest.mark.parametrize("page", manifest_pages(), ids=page_id)
def test_page_markup(page: dict[str, Any]) -> None:
    html = read_site_file(page["path"])
    lang = re.search(r'<html[^>]*\blang="([^"]+)"', html)
    assert lang and lang.group(1).lower().split("-")[0] == page["language"]
    canonical = re.search(r'<link rel="canonical" href="([^"]+)"', html)
    assert canonical and canonical.group(1) == sub_base(page["canonical"])


@pytest.mark.parametrize("page", manifest_pages("too_short"), ids=page_id)
def test_too_short_page(page: dict[str, Any]) -> None:
    text = extracted_text(page["path"])
    assert text is None or len(text) < TOO_SHORT_LIMIT, text


# ------------------------------------------------------------------ feeds
@pytest.mark.parametrize("feed", [f for f in manifest_feeds() if f["exists"]], ids=feed_id)
def test_feed_parses_as_documented(feed: dict[str, Any]) -> None:
    parsed = parse_feed(feed["path"])
    assert bool(parsed.bozo) == feed["bozo"], parsed.get("bozo_exception")
    assert len(parsed.entries) == feed["entries"]
    if feed["format"] == "broken":
        assert len(parsed.entries) >= 1
        assert parsed.entries[0].link.startswith(BASE + "/")
    for entry in parsed.entries:
        link = entry.get("link")
        if not link:
            continue  # the truncated last item of broken.rss has no link
        assert link.startswith(BASE + "/"), link
        path = urlsplit(link).path.lstrip("/")
        assert (SITE / path).is_file(), f"feed link {link} points to a missing file"


@pytest.mark.parametrize("feed", GOOD_FEEDS, ids=feed_id)
def test_feed_entries_match_manifest(feed: dict[str, Any]) -> None:
    parsed = parse_feed(feed["path"])
    assert parsed.version.startswith(feed["format"]), parsed.version
    by_link = {e.link: e for e in parsed.entries}
    pages = [p for p in manifest_pages() if p["feed"] == feed["path"]]
    assert len(pages) == len(parsed.entries)
    for page in pages:
        entry = by_link[sub_base(page["feed_link"])]
        assert entry.title == page["title"]
        authors = [a.get("name") for a in entry.get("authors", [])]
        if len(authors) == 1 and "," in authors[0]:
            authors = [a.strip() for a in authors[0].split(",")]
        assert sorted(authors) == sorted(page["authors"])
        year, month, day, hour, minute, second = (
            entry.get("published_parsed") or entry.get("updated_parsed")
        )[:6]
        stamp = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        assert stamp == to_utc(page["published"])


def test_feed_link_variants() -> None:
    feeds = {f["path"]: parse_feed(f["path"]) for f in GOOD_FEEDS}
    assert feeds["feeds/politics.rss"].feed.get("ttl") == "15"
    links = [e.link for f in feeds.values() for e in f.entries]
    assert any("utm_source=rss" in link for link in links)
    # the feed link carries tracking parameters, the page's canonical URL does not
    story = next(p for p in manifest_pages() if p["path"] == "world/story-123.html")
    assert "?utm_source=" in story["feed_link"]
    assert story["canonical"] == BASE_PLACEHOLDER + "/world/story-123.html"


def test_every_page_is_in_a_good_feed() -> None:
    good = {f["path"] for f in GOOD_FEEDS}
    for page in manifest_pages():
        assert page["feed"] in good
    reference = next(p for p in manifest_pages() if p["path"] == "politics/reference-article.html")
    assert reference["feed"] == "feeds/politics.rss"


def test_broken_feed_links_are_listed_in_also_in_feeds() -> None:
    parsed = parse_feed("feeds/broken.rss")
    linked = {urlsplit(e.link).path.lstrip("/") for e in parsed.entries if e.get("link")}
    # the truncated third item has no link, so only two pages are reachable through it
    assert len(linked) == 2
    listed = {p["path"] for p in manifest_pages() if "feeds/broken.rss" in p["also_in_feeds"]}
    assert linked <= listed
    assert all("utm_source=partner" in e.link for e in parsed.entries if e.get("link"))


def test_garbage_is_not_a_feed() -> None:
    parsed = parse_feed("feeds/garbage.xml")
    assert parsed.bozo and not parsed.entries


# ------------------------------------------------------------------ robots / config files
def test_robots_txt() -> None:
    rp = urllib.robotparser.RobotFileParser()
    rp.parse(read_site_file("robots.txt").splitlines())
    for page in manifest_pages():
        allowed = rp.can_fetch("newsflow/1.0", f"{BASE}/{page['path']}")
        assert allowed == (page["skip"] != "robots"), page["path"]
    assert rp.can_fetch("newsflow/1.0", f"{BASE}/feeds/politics.rss")
    robots_pages = manifest_pages("robots")
    assert robots_pages and all(p["path"].startswith("private/") for p in robots_pages)


def test_opml_and_toml_list_the_same_feeds() -> None:
    root = ET.fromstring(read_site_file("feeds.opml"))  # noqa: S314 (our own fixture file)
    assert root.tag == "opml" and root.get("version") == "2.0"
    feeds = [o for o in root.iter("outline") if o.get("xmlUrl")]
    for outline in feeds:
        for attr in ("text", "title", "xmlUrl", "htmlUrl"):
            assert outline.get(attr), (attr, outline.attrib)
    # nested by category: at least one feed sits two levels below <body>
    body = root.find("body")
    assert body is not None
    assert any(o.find("outline/outline") is not None for o in body)
    opml_urls = {o.get("xmlUrl") for o in feeds}

    with open(SITE / "feeds.toml", "rb") as fh:
        config = tomllib.loads(fh.read().decode("utf-8").replace(BASE_PLACEHOLDER, BASE))
    toml_urls = {f["url"] for f in config["feeds"]}
    for f in config["feeds"]:
        assert REQUIRED_FEED_KEYS <= f.keys()
        assert isinstance(f["poll_interval"], (str, int))
    manifest_urls = {sub_base(f["url"]) for f in manifest_feeds() if f["in_config"]}
    assert opml_urls == toml_urls == manifest_urls
