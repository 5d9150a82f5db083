"""The bundled demo site: rendered from its source, realistic, and shaped for the demo."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import feedparser
import pytest

from newsflow.demo import _sitegen
from newsflow.demo.server import SITE_DIR
from newsflow.identity import canonical_url, doc_id

DEMO_DIR = SITE_DIR.parent
FIXTURE_SITE = Path(__file__).resolve().parents[2] / "fixtures" / "site"
MANIFEST = json.loads((DEMO_DIR / "manifest.json").read_text(encoding="utf-8"))
BASE = "http://127.0.0.1:8080"
INDEXED = [page for page in MANIFEST["pages"] if page["outcome"] == "indexed"]


def read(path: str, phase2: bool = False) -> str:
    file = SITE_DIR / ("_phase2" if phase2 else "") / path
    return file.read_text(encoding="utf-8").replace("{{BASE}}", BASE)


def parse(path: str, phase2: bool = False) -> feedparser.FeedParserDict:
    return feedparser.parse(io.BytesIO(read(path, phase2).encode("utf-8")))


def test_the_committed_site_is_what_the_generator_renders() -> None:
    rendered = _sitegen.render()
    stale = [path for path, text in rendered.items() if not (DEMO_DIR / path).is_file()
             or (DEMO_DIR / path).read_text(encoding="utf-8") != text]  # fmt: skip
    assert not stale, f"run `.venv/bin/python -m newsflow.demo._sitegen`: {stale}"
    hand_kept = {"site/robots.txt", "site/politics/reference-article.html"}
    on_disk = {str(p.relative_to(DEMO_DIR)) for p in SITE_DIR.rglob("*") if p.is_file()}
    assert on_disk - {p for p in rendered if p.startswith("site/")} == hand_kept


def test_the_reference_article_is_the_fixture_page_unchanged() -> None:
    name = "politics/reference-article.html"
    assert (SITE_DIR / name).read_bytes() == (FIXTURE_SITE / name).read_bytes()
    fixture_feed = (FIXTURE_SITE / "feeds/politics.rss").read_text(encoding="utf-8")
    item = re.search(r"\t<item>\n\t\t<title>US Peace Envoy.*?</item>", fixture_feed, re.S)
    assert item is not None
    assert item.group(0) in (SITE_DIR / "feeds/politics.rss").read_text(encoding="utf-8")


def test_the_site_is_a_modest_realistic_news_site() -> None:
    assert len(INDEXED) >= 30
    assert sum(p.stat().st_size for p in SITE_DIR.rglob("*") if p.is_file()) < 2_000_000
    for page in INDEXED:
        assert 4 <= page["paragraphs"] <= 10 or page["path"] == MANIFEST["reference"], page
        html = read(page["path"])
        for part in ("<nav", 'property="og:title"', 'rel="canonical"', "<time", "<footer"):
            assert part in html, (page["path"], part)
        assert "lorem ipsum" not in html.lower()
    with_jsonld = [p for p in INDEXED if "application/ld+json" in read(p["path"])]
    with_comments = [p for p in INDEXED if 'id="comments"' in read(p["path"])]
    assert len(with_jsonld) >= 10 and len(with_comments) >= 3
    taliban = [p for p in INDEXED if "Taliban" in read(p["path"])]
    assert len(taliban) >= 3


def test_feeds_are_rss_and_atom_and_link_to_pages_of_the_site() -> None:
    versions = {}
    for feed in MANIFEST["feeds"]:
        parsed = parse(feed["path"])
        if feed["format"] == "broken":
            assert parsed.bozo and not parsed.entries and not parsed.version
            continue
        assert not parsed.bozo, (feed["path"], parsed.get("bozo_exception"))
        versions[feed["path"]] = parsed.version
        for entry in parsed.entries:
            path = entry.link.removeprefix(BASE + "/").split("?")[0]
            assert (SITE_DIR / path).is_file(), entry.link
    assert {"rss20", "atom10"} <= set(versions.values())
    assert len(versions) >= 3


def test_every_indexed_article_is_listed_once_by_its_own_feed() -> None:
    listed: dict[str, list[str]] = {}
    for feed in MANIFEST["feeds"]:
        for entry in parse(feed["path"]).entries:
            listed.setdefault(doc_id(canonical_url(entry.link)), []).append(feed["key"])
    for page in INDEXED:
        feeds = listed.get(doc_id(canonical_url(f"{BASE}/{page['path']}")))
        assert feeds is not None and page["feed"] in feeds, page["path"]


def test_the_syndicated_copy_points_to_its_original_on_the_same_site() -> None:
    (copy,) = [p for p in MANIFEST["pages"] if p["outcome"] == "syndicated"]
    assert copy["path"] != copy["canonical"]
    html = read(copy["path"])
    canonical = re.search(r'<link rel="canonical" href="([^"]+)">', html)
    assert canonical is not None
    assert canonical.group(1) == f"{BASE}/{copy['canonical']}"
    link = f"{BASE}/{copy['path']}"
    assert canonical_url(link, canonical.group(1)) == canonical_url(f"{BASE}/{copy['canonical']}")
    original = read(copy["canonical"])
    for paragraph in re.findall(r"<p>(.*?)</p>", original):
        assert paragraph in html


def test_phase_two_moves_only_the_changed_entry_forward() -> None:
    changed = MANIFEST["changed"]
    before = {e.link: e for e in parse(changed["feed"]).entries}
    after = {e.link: e for e in parse(changed["feed"], phase2=True).entries}
    assert before.keys() == after.keys()
    moved = [link for link in before if before[link].updated != after[link].updated]
    assert moved == [f"{BASE}/{changed['path']}"]
    assert after[moved[0]].updated_parsed > before[moved[0]].updated_parsed
    page = read(changed["path"], phase2=True)
    assert changed["update"].split(":")[0] in page
    assert f'content="{changed["updated"]}"' in page  # article:modified_time moved as well
    assert changed["update"].split(":")[0] not in read(changed["path"])


@pytest.mark.parametrize("outcome", ["too_short", "robots"])
def test_the_site_has_pages_the_pipeline_must_skip(outcome: str) -> None:
    pages = [p for p in MANIFEST["pages"] if p["outcome"] == outcome]
    assert len(pages) == 1
    if outcome == "robots":
        robots = (SITE_DIR / "robots.txt").read_text(encoding="utf-8")
        assert f"Disallow: /{pages[0]['path'].split('/')[0]}/" in robots
