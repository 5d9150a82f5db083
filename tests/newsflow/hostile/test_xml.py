"""Item 12: XML attacks on feeds (feedparser, in the run's pool) and on OPML feed lists.

Each is bounded in time and memory, reads no local file (the marker never shows up in
the buffer, the store or the published records) and fetches no DTD (the canary stays at
0 connections).
"""

from __future__ import annotations

import os
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import open_store
from newsflow.cli import app
from newsflow.errors import ConfigError, FeedError
from newsflow.feedlist import load_feeds
from newsflow.feeds._parse import parse_feed
from newsflow.pipeline import drain, poll_once
from schemas import FeedConfig
from tests.newsflow.hostile._support import Canary, Web, article_html, embedded_settings, reply

_SECONDS = 10.0
_MEMORY = 64 * 1024 * 1024


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    secret = f"MARKER-{uuid.uuid4().hex}"
    path = tmp_path / "marker.txt"
    path.write_text(secret, encoding="utf-8")
    yield path, secret


def _rss(doctype: str, title: str = "Hostile", extra: str = "", link: str = "") -> bytes:
    link = link or "http://news.example/story.html"
    return (
        f"<?xml version='1.0' encoding='utf-8'?>{doctype}<rss version='2.0'><channel>"
        f"<title>{title}</title><link>http://news.example/</link><description>d</description>"
        f"<item><title>{title}</title><link>{link}</link>{extra}</item></channel></rss>"
    ).encode()


_LAUGHS = (
    "<!DOCTYPE rss [<!ENTITY a0 'lol'>"
    + "".join(f"<!ENTITY a{i} '{f'&a{i - 1};' * 10}'>" for i in range(1, 10))
    + "]>"
)


def _attacks(marker: Path, canary: int) -> dict[str, tuple[bytes, bool]]:
    """Name -> (feed body, refused before parsing)."""
    big = "A" * 100_000
    many = " ".join(f"a{i}='v'" for i in range(100_000))
    return {
        "billion-laughs": (_rss(_LAUGHS, "&a9;"), True),
        "quadratic-blowup": (_rss(f"<!DOCTYPE rss [<!ENTITY x '{big}'>]>", "&x;" * 20_000), True),
        "external-entity-file": (
            _rss(f"<!DOCTYPE rss [<!ENTITY x SYSTEM '{marker.as_uri()}'>]>", "&x;"),
            True,
        ),
        "external-parameter-entity": (
            _rss(f"<!DOCTYPE rss [<!ENTITY % p SYSTEM '{marker.as_uri()}'> %p;]>"),
            True,
        ),
        "external-entity-http": (
            _rss(f"<!DOCTYPE rss [<!ENTITY x SYSTEM 'http://127.0.0.1:{canary}/x'>]>", "&x;"),
            True,
        ),
        "dtd-at-canary": (_rss(f"<!DOCTYPE rss SYSTEM 'http://127.0.0.1:{canary}/x.dtd'>"), False),
        "public-dtd-at-canary": (
            _rss(f"<!DOCTYPE rss PUBLIC '-//X//DTD X//EN' 'http://127.0.0.1:{canary}/x.dtd'>"),
            False,
        ),
        "xinclude-file": (
            _rss(
                "",
                extra="<description><xi:include xmlns:xi='http://www.w3.org/2001/XInclude' "
                f"href='{marker.as_uri()}' parse='text'/></description>",
            ),
            False,
        ),
        "attributes-100k": (_rss("", extra=f"<description {many}>d</description>"), True),
        "nested-100k": (
            _rss("", extra="<description>" + "<x>" * 100_000 + "</x>" * 100_000 + "</description>"),
            True,
        ),
        "unclosed-100k": (
            _rss("", extra="<description>" + "<x>" * 100_000 + "</description>"),
            True,
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "billion-laughs",
        "quadratic-blowup",
        "external-entity-file",
        "external-parameter-entity",
        "external-entity-http",
        "dtd-at-canary",
        "public-dtd-at-canary",
        "xinclude-file",
        "attributes-100k",
        "nested-100k",
        "unclosed-100k",
    ],
)
def test_feed_attack_is_bounded_and_reads_nothing(
    canary: Canary, marker: tuple[Path, str], name: str
) -> None:
    body, refused = _attacks(marker[0], canary.port)[name]
    config = FeedConfig(url="http://news.example/feed.rss")
    headers = {"content-type": "application/rss+xml; charset=utf-8"}
    tracemalloc.start()
    started = time.monotonic()
    try:
        if refused:
            with pytest.raises(FeedError, match="refused"):
                parse_feed(body, headers, config.url, config, 200)
        else:
            parsed = parse_feed(body, headers, config.url, config, 200)
            assert [e.link for e in parsed.entries] == ["http://news.example/story.html"]
            assert marker[1] not in repr(parsed)
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < _SECONDS
    assert peak < _MEMORY, peak
    assert canary.accepted == 0


def _files_containing(root: Path, needle: str) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(path)
    return found


def test_feed_attacks_in_a_run_leave_no_marker_and_the_normal_feed_is_indexed(
    web: Web, canary: Canary, marker: tuple[Path, str], tmp_path: Path
) -> None:
    attacks = _attacks(marker[0], canary.port)
    feeds = []
    for name, (body, _) in attacks.items():
        # Each attack carries a real article link, so a parse that slipped through would
        # publish it with whatever the entities expanded to.
        body = body.replace(b"http://news.example/story.html", web.url(f"/{name}.html").encode())
        web.routes[f"/{name}.rss"] = reply(body=body, content_type="application/rss+xml")
        web.routes[f"/{name}.html"] = reply(body=article_html(f"Story behind {name}"))
        feeds.append(FeedConfig(url=web.url(f"/{name}.rss")))
    web.routes["/normal.rss"] = reply(
        body=_rss("", "Normal", link=web.url("/normal.html")), content_type="application/rss+xml"
    )
    web.routes["/normal.html"] = reply(body=article_html("Normal story"))
    feeds.append(FeedConfig(url=web.url("/normal.rss")))
    settings = embedded_settings(tmp_path, feed={"parse_timeout": _SECONDS})

    summary = poll_once(settings, feeds, force=True)
    refused = sum(1 for _, was_refused in attacks.values() if was_refused)
    assert summary.feeds_polled == len(feeds)
    assert summary.failed == refused
    # The DTD and XInclude feeds parse (nothing fetched, nothing included) plus the normal one.
    assert summary.published == len(attacks) - refused + 1
    assert drain(settings).indexed == summary.published
    store = open_store(settings)
    try:
        states = {s.feed_url: s for s in store.all_feed_states()}
        for name, (_, was_refused) in attacks.items():
            state = states[web.url(f"/{name}.rss")]
            if was_refused:
                assert state.last_error_class == "FeedError", name
                assert "refused" in (state.last_error_message or ""), name
    finally:
        store.close()
    assert _files_containing(settings.data_dir, marker[1]) == []
    assert canary.accepted == 0


# --- OPML ------------------------------------------------------------------------------


def _opml(doctype: str, outline: str = "") -> str:
    outline = outline or "<outline type='rss' text='&x;' xmlUrl='http://news.example/f.rss'/>"
    return (
        f"<?xml version='1.0'?>{doctype}<opml version='2.0'><head><title>t</title></head>"
        f"<body>{outline}</body></opml>"
    )


def _opml_attacks(marker: Path, canary: int) -> dict[str, str]:
    many = " ".join(f"a{i}='v'" for i in range(100_000))
    return {
        "billion-laughs": _opml(
            _LAUGHS.replace("rss", "opml"),
            "<outline type='rss' text='&a9;' xmlUrl='http://news.example/f.rss'/>",
        ),
        "quadratic-blowup": _opml(f"<!DOCTYPE opml [<!ENTITY x '{'A' * 100_000}'>]>"),
        "external-entity-file": _opml(f"<!DOCTYPE opml [<!ENTITY x SYSTEM '{marker.as_uri()}'>]>"),
        "dtd-at-canary": _opml(f"<!DOCTYPE opml SYSTEM 'http://127.0.0.1:{canary}/x.dtd'>"),
        "attributes-100k": _opml(
            "", f"<outline {many} type='rss' text='&#65;' xmlUrl='http://news.example/f.rss'/>"
        ),
        "nested-100k": _opml("", "<outline text='a'>" * 100_000 + "</outline>" * 100_000),
    }


_OPML_NAMES = [
    "billion-laughs",
    "quadratic-blowup",
    "external-entity-file",
    "dtd-at-canary",
    "attributes-100k",
    "nested-100k",
]
# 100,000 attributes are no trouble for expat (linear): that list loads, its one feed kept.
_OPML_LOADS = {"attributes-100k"}


@pytest.mark.parametrize("name", _OPML_NAMES)
def test_opml_attack_with_load_feeds(
    canary: Canary, marker: tuple[Path, str], tmp_path: Path, name: str
) -> None:
    path = tmp_path / f"{name}.opml"
    path.write_text(_opml_attacks(marker[0], canary.port)[name], encoding="utf-8")
    started = time.monotonic()
    if name in _OPML_LOADS:
        assert [f.url for f in load_feeds(path)] == ["http://news.example/f.rss"]
    else:
        with pytest.raises(ConfigError) as caught:
            load_feeds(path)
        assert marker[1] not in str(caught.value)
    assert time.monotonic() - started < _SECONDS
    assert canary.accepted == 0


@pytest.mark.parametrize("name", _OPML_NAMES)
def test_opml_attack_with_feeds_import(
    canary: Canary,
    marker: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    for variable in list(os.environ):
        if variable.startswith("NEWSFLOW_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    source = tmp_path / f"{name}.opml"
    source.write_text(_opml_attacks(marker[0], canary.port)[name], encoding="utf-8")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["feeds", "import", str(source)])
    assert time.monotonic() - started < _SECONDS
    feeds_file = tmp_path / "feeds.toml"
    if name in _OPML_LOADS:
        assert result.exit_code == 0, result.output
        assert "http://news.example/f.rss" in feeds_file.read_text(encoding="utf-8")
    else:
        assert result.exit_code != 0, result.output
        assert not feeds_file.exists() or marker[1] not in feeds_file.read_text(encoding="utf-8")
    assert marker[1] not in result.output
    assert canary.accepted == 0
