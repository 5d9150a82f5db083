"""Item 10: compression bombs and oversized bodies, alone and among normal pages of a run.

The body cap is 1 MiB here; each bomb expands far past it. Each must be refused within a
few seconds with memory that grows by the cap (a small multiple), never by the bomb.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import open_store
from newsflow.errors import FetchError, PermanentFetchError
from newsflow.fetch import BodyTooLarge, Fetcher
from newsflow.identity import canonical_url, doc_id
from newsflow.pipeline import drain, poll_once
from newsflow.settings import FetchSettings
from schemas import FeedConfig
from tests.newsflow.hostile._support import (
    Web,
    article_html,
    embedded_settings,
    reply,
    rss,
    streamed,
)

CAP = 1024 * 1024
_BOMB_BYTES = 256 * 1024 * 1024  # what each bomb would inflate to
_SECONDS = 10.0  # generous: this machine is shared and loaded


def _compressed(size: int, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


@pytest.fixture(scope="module")
def bombs() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Path -> (raw body, headers) of every hostile answer."""
    gzip_bomb = _compressed(_BOMB_BYTES, 16 + zlib.MAX_WBITS)
    html = {"Content-Type": "text/html; charset=utf-8"}
    return {
        "/gzip-bomb.html": (gzip_bomb, html | {"Content-Encoding": "gzip"}),
        "/deflate-bomb.html": (
            _compressed(_BOMB_BYTES, zlib.MAX_WBITS),
            html | {"Content-Encoding": "deflate"},
        ),
        "/raw-deflate-bomb.html": (
            _compressed(_BOMB_BYTES, -zlib.MAX_WBITS),
            html | {"Content-Encoding": "deflate"},
        ),
        # gzip inside gzip, declared twice: a coding stack we do not unwrap.
        "/gzip-gzip.html": (gzip.compress(gzip_bomb), html | {"Content-Encoding": "gzip, gzip"}),
        # gzip inside gzip, declared once: the inner bomb arrives as a binary "page".
        "/gzip-in-gzip.html": (gzip.compress(gzip_bomb), html | {"Content-Encoding": "gzip"}),
    }


def _serve(web: Web, bombs: dict[str, tuple[bytes, dict[str, str]]]) -> None:
    for path, (body, headers) in bombs.items():
        web.routes[path] = reply(body=body, headers=headers)
    # 50 MB with no Content-Length, 64 KiB at a time until the client hangs up.
    chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
    web.routes["/endless.html"] = streamed(
        (chunk for _ in range(50 * 16)), {"Content-Type": "text/html"}
    )
    # A JPEG-looking body (under the cap) where an article was announced.
    image = b"\xff\xd8\xff\xe0\0\x10JFIF\0" + bytes(range(256)) * 2048
    web.routes["/photo.html"] = reply(body=image, content_type="image/jpeg")


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    settings = FetchSettings(
        allow_private_networks=True,
        respect_robots=False,
        per_host_delay=0.0,
        max_body_bytes=CAP,
        deadline=_SECONDS,
    )
    with Fetcher(settings) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/gzip-bomb.html", BodyTooLarge),
        ("/deflate-bomb.html", BodyTooLarge),
        ("/raw-deflate-bomb.html", BodyTooLarge),
        ("/gzip-gzip.html", PermanentFetchError),
        ("/endless.html", BodyTooLarge),
    ],
)
def test_each_bomb_is_refused_quickly_within_the_cap(
    web: Web,
    fetcher: Fetcher,
    bombs: dict[str, tuple[bytes, dict[str, str]]],
    path: str,
    refused: type[FetchError],
) -> None:
    _serve(web, bombs)
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(refused):
            fetcher.get(web.url(path))
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < _SECONDS
    # The body buffer, its copy and a decoder's chunk: a few caps, never the bomb's size.
    assert peak < 4 * CAP, f"peak {peak} bytes"


def test_a_body_inside_a_single_gzip_is_read_only_up_to_the_cap(
    web: Web, fetcher: Fetcher, bombs: dict[str, tuple[bytes, dict[str, str]]]
) -> None:
    # Double compression declared once: we unwrap one layer only, and that layer is small.
    _serve(web, bombs)
    response = fetcher.get(web.url("/gzip-in-gzip.html"))
    assert len(response.body) <= CAP
    assert response.body[:2] == b"\x1f\x8b"


def test_bombs_among_normal_pages_the_others_are_indexed(
    web: Web, bombs: dict[str, tuple[bytes, dict[str, str]]], tmp_path: Path
) -> None:
    _serve(web, bombs)
    normal = [f"/news/story-{n}.html" for n in range(3)]
    for n, path in enumerate(normal):
        web.routes[path] = reply(body=article_html(f"Harbour ferry story {n}"))
    hostile = [*bombs, "/endless.html", "/photo.html"]
    web.routes["/feed.rss"] = reply(
        body=rss([web.url(p) for p in [*hostile, *normal]]), content_type="application/rss+xml"
    )
    settings = embedded_settings(tmp_path, fetch={"max_body_bytes": CAP, "deadline": _SECONDS})
    started = time.monotonic()
    summary = poll_once(settings, [FeedConfig(url=web.url("/feed.rss"))], force=True)
    took = time.monotonic() - started
    assert summary.failed == 0
    assert summary.published == len(normal)
    assert summary.skipped["too_large"] == 4  # gzip, deflate, raw deflate, endless
    assert summary.skipped["fetch_error"] == 1  # Content-Encoding: gzip, gzip
    # The image, and the inner gzip stream that arrives as a "text/html" page.
    assert summary.skipped["not_html"] == 2
    assert sum(summary.skipped.values()) == len(hostile)
    assert drain(settings).indexed == len(normal)
    store = open_store(settings)
    try:
        assert store.count() == len(normal)
        for path in normal:
            assert store.get(doc_id(canonical_url(web.url(path)))) is not None
    finally:
        store.close()
    assert took < 60.0, took
