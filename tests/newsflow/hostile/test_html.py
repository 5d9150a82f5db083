"""Item 13: pathological article pages among normal ones: bounded, counted, the run goes on."""

from __future__ import annotations

import time
from pathlib import Path

from connectors import open_store
from newsflow.pipeline import drain, poll_once
from schemas import FeedConfig
from tests.newsflow.hostile._support import Web, article_html, embedded_settings, reply, rss

_PAGE_TIMEOUT = 10.0


def _pages() -> dict[str, tuple[bytes, str]]:
    """Path -> (body, Content-Type) of each hostile page."""
    html = "text/html; charset=utf-8"
    table = "<table>" + "<tr>" + "<td>cell</td>" * 200 + "</tr>" * 0
    rows = "".join("<tr>" + "<td>1</td>" * 50 + "</tr>" for _ in range(20_000))
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 1024
    text = article_html("Charset story").encode("utf-8")
    return {
        "/huge-table.html": (f"<html><body>{table}{rows}</table></body></html>".encode(), html),
        "/nested-divs.html": (
            ("<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000).encode(),
            html,
        ),
        "/huge-attribute.html": (
            f"<html><body><div title='{'x' * 4_000_000}'>big</div></body></html>".encode(),
            html,
        ),
        "/binary.html": (png, html),
        "/utf16-declared.html": (text, "text/html; charset=utf-16"),
        "/base64-declared.html": (text, "text/html; charset=base64"),
        "/unknown-charset.html": (text, "text/html; charset=x-no-such-charset"),
        "/meta-utf7.html": (
            b"<meta charset='utf-7'>" + text.replace(b"<p>", b"<p>+ADw-script+AD4-", 1),
            "text/html",
        ),
        "/garbage-bytes.html": (bytes(range(128, 256)) * 20_000, "text/html; charset=utf-8"),
    }


def test_pathological_pages_are_bounded_counted_and_the_run_continues(
    web: Web, tmp_path: Path
) -> None:
    pages = _pages()
    for path, (body, content_type) in pages.items():
        web.routes[path] = reply(body=body, content_type=content_type)
    normal = [f"/news/normal-{n}.html" for n in range(3)]
    for n, path in enumerate(normal):
        web.routes[path] = reply(body=article_html(f"Normal story {n}"))
    web.routes["/feed.rss"] = reply(
        body=rss([web.url(p) for p in [*pages, *normal]]), content_type="application/rss+xml"
    )
    settings = embedded_settings(tmp_path, extract={"page_timeout": _PAGE_TIMEOUT})
    started = time.monotonic()
    summary = poll_once(settings, [FeedConfig(url=web.url("/feed.rss"))], force=True)
    took = time.monotonic() - started
    assert summary.failed == 0
    # The three normal pages and the three mislabelled ones whose text survives decoding.
    assert summary.published == 6
    assert dict(summary.skipped) == {
        "too_large": 1,  # the 10 MB table, past the 5 MiB cap
        "not_html": 1,  # the PNG served as text/html
        "no_text": 3,  # 100k nested divs, the 4 MB attribute, undecodable bytes
        "too_short": 1,
    }
    # Every page is accounted for: published, or skipped with a reason.
    assert summary.published + sum(summary.skipped.values()) == len(pages) + len(normal)
    assert summary.skipped["not_html"] >= 1  # the PNG served as text/html
    assert summary.skipped.get("error", 0) == 0 and summary.skipped.get("decode_error", 0) == 0
    assert took < 90.0, took
    assert drain(settings).indexed == summary.published
    store = open_store(settings)
    try:
        assert store.count() == summary.published
    finally:
        store.close()
