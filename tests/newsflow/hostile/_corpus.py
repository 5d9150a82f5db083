"""A corpus of malformed and odd feeds: name -> (body, Content-Type, expectation).

The expectation is what polling the feed must yield: the number of entries and the poll's
status, or ``failed`` with the error class recorded in the feed's state.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    body: bytes
    content_type: str
    entries: int
    status: str  # ok, bozo or failed
    error_class: str | None = None


_RSS = "application/rss+xml"
_ATOM = "application/atom+xml"


def _items(n: int, link: str = "http://news.example/{n}.html", extra: str = "") -> str:
    return "".join(
        f"<item><title>Story {i}</title><link>{link.format(n=i)}</link>{extra}</item>"
        for i in range(n)
    )


def _rss2(items: str, head: str = "", version: str = "2.0", encoding: str = "utf-8") -> str:
    return (
        f"<?xml version='1.0' encoding='{encoding}'?><rss version='{version}'{head}><channel>"
        "<title>Corpus</title><link>http://news.example/</link><description>d</description>"
        f"{items}</channel></rss>"
    )


def _atom10(entries: str) -> str:
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        "<title>Corpus</title><id>urn:x</id><updated>2024-04-01T00:00:00Z</updated>"
        f"{entries}</feed>"
    )


def _atom_entry(n: int, link: str = "http://news.example/a{n}.html", extra: str = "") -> str:
    return (
        f"<entry><title>Entry {n}</title><id>urn:e{n}</id><link href='{link.format(n=n)}'/>"
        f"<updated>2024-04-0{n % 9 + 1}T10:00:00Z</updated>{extra}</entry>"
    )


def corpus() -> dict[str, Case]:
    rss3 = _rss2(_items(3)).encode()
    cases: dict[str, Case] = {
        "rss-2.0": Case(rss3, _RSS, 3, "ok"),
        "rss-0.91": Case(_rss2(_items(2), version="0.91").encode(), _RSS, 2, "ok"),
        "rss-0.92": Case(_rss2(_items(2), version="0.92").encode(), _RSS, 2, "ok"),
        "rss-0.91-netscape-doctype": Case(
            (
                "<?xml version='1.0'?><!DOCTYPE rss PUBLIC '-//Netscape Communications//DTD RSS "
                "0.91//EN' 'http://my.netscape.com/publish/formats/rss-0.91.dtd'>"
                + _rss2(_items(2), version="0.91").split("?>", 1)[1]
            ).encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "rss-1.0-rdf": Case(
            (
                "<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'"
                " xmlns='http://purl.org/rss/1.0/'><channel rdf:about='http://news.example/'>"
                "<title>RDF</title><link>http://news.example/</link><description>d</description>"
                "</channel>"
                + "".join(
                    f"<item rdf:about='http://news.example/r{i}.html'><title>R{i}</title>"
                    f"<link>http://news.example/r{i}.html</link></item>"
                    for i in range(4)
                )
                + "</rdf:RDF>"
            ).encode(),
            "application/rdf+xml",
            4,
            "ok",
        ),  # fmt: skip
        "atom-1.0": Case(
            _atom10("".join(_atom_entry(i) for i in range(3))).encode(), _ATOM, 3, "ok"
        ),
        "atom-0.3": Case(
            (
                "<?xml version='1.0'?><feed version='0.3' xmlns='http://purl.org/atom/ns#'>"
                "<title>Old Atom</title><modified>2004-01-01T00:00:00Z</modified>"
                + "".join(
                    f"<entry><title>E{i}</title><link rel='alternate' type='text/html' "
                    f"href='http://news.example/o{i}.html'/><id>urn:o{i}</id>"
                    "<issued>2004-01-01T00:00:00Z</issued></entry>"
                    for i in range(2)
                )
                + "</feed>"
            ).encode(),
            _ATOM,
            2,
            "ok",
        ),  # fmt: skip
        "empty-body": Case(b"", _RSS, 0, "failed", "FeedError"),
        "whitespace-only": Case(b"  \n\t ", _RSS, 0, "failed", "FeedError"),
        "html-page-as-feed": Case(
            b"<!doctype html><html><head><title>Home</title></head><body><p>Not a feed</p>"
            b"<a href='/x'>x</a></body></html>",
            "text/html",
            0,
            "failed",
            "FeedError",
        ),  # fmt: skip
        "json-as-feed": Case(
            json.dumps({"items": [{"url": "http://news.example/j.html"}]}).encode(),
            "application/json",
            0,
            "failed",
            "FeedError",
        ),  # fmt: skip
        "json-feed-1.1": Case(
            json.dumps(
                {
                    "version": "https://jsonfeed.org/version/1.1",
                    "title": "J",
                    "items": [{"id": "1", "url": "http://news.example/j.html"}],
                }
            ).encode(),
            "application/feed+json",
            0,
            "failed",
            "FeedError",
        ),  # fmt: skip
        "plain-text": Case(b"just some text, no markup", "text/plain", 0, "failed", "FeedError"),
        "binary-gif": Case(
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(300),
            "image/gif",
            0,
            "failed",
            "FeedError",
        ),  # fmt: skip
        "truncated-rss": Case(rss3[: len(rss3) // 2 + 40], _RSS, 1, "bozo"),
        "no-items": Case(_rss2("").encode(), _RSS, 0, "ok"),
        "channel-only-no-title": Case(
            b"<?xml version='1.0'?><rss version='2.0'><channel></channel></rss>", _RSS, 0, "ok"
        ),  # fmt: skip
        "items-without-links": Case(
            _rss2("<item><title>No link</title><description>d</description></item>" * 3).encode(),
            _RSS,
            0,
            "ok",
        ),  # fmt: skip
        "guid-is-permalink": Case(
            _rss2(
                "<item><title>G</title><guid isPermaLink='true'>http://news.example/g.html"
                "</guid></item>"
            ).encode(),
            _RSS,
            1,
            "ok",
        ),  # fmt: skip
        "guid-not-permalink-no-link": Case(
            _rss2(
                "<item><title>G</title><guid isPermaLink='false'>tag:x,2024:1</guid></item>"
            ).encode(),
            _RSS,
            0,
            "ok",
        ),  # fmt: skip
        "duplicate-guids": Case(
            _rss2(_items(3, extra="<guid>same</guid>")).encode(), _RSS, 3, "ok"
        ),
        "duplicate-links": Case(
            _rss2(_items(4, link="http://news.example/same.html")).encode(), _RSS, 1, "ok"
        ),
        "relative-links": Case(_rss2(_items(3, link="/rel/{n}.html")).encode(), _RSS, 3, "ok"),
        "relative-links-xml-base": Case(
            _rss2(
                _items(2, link="{n}.html"), head=" xml:base='http://other.example/base/'"
            ).encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "javascript-links": Case(
            _rss2(_items(2, link="javascript:alert({n})")).encode(), _RSS, 0, "ok"
        ),
        "mailto-and-ftp-links": Case(
            _rss2(
                "<item><link>mailto:a@b.example</link></item>"
                "<item><link>ftp://news.example/f</link></item>"
            ).encode(),
            _RSS,
            0,
            "ok",
        ),  # fmt: skip
        "links-with-spaces": Case(
            _rss2(_items(2, link="  http://news.example/{n}.html \n")).encode(), _RSS, 2, "ok"
        ),
        "invalid-dates": Case(
            _rss2(_items(3, extra="<pubDate>not a date at all</pubDate>")).encode(), _RSS, 3, "ok"
        ),
        "dates-out-of-range": Case(
            _rss2(_items(2, extra="<pubDate>Tue, 01 Jan 99999 00:00:00 GMT</pubDate>")).encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "dates-year-0": Case(
            _rss2(_items(2, extra="<pubDate>Mon, 01 Jan 0000 00:00:00 GMT</pubDate>")).encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "atom-bad-updated": Case(
            _atom10(_atom_entry(1).replace("2024-04-02T10:00:00Z", "yesterday")).encode(),
            _ATOM,
            1,
            "ok",
        ),  # fmt: skip
        "utf8-bom": Case(codecs.BOM_UTF8 + rss3, _RSS, 3, "ok"),
        "utf16-le-bom": Case(
            codecs.BOM_UTF16_LE + _rss2(_items(2), encoding="utf-16").encode("utf-16-le"),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "utf16-be-bom": Case(
            codecs.BOM_UTF16_BE + _rss2(_items(2), encoding="utf-16").encode("utf-16-be"),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "latin1-declared-in-xml": Case(
            _rss2(
                _items(2, extra="<description>caf\u00e9</description>"), encoding="iso-8859-1"
            ).encode("latin-1"),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "latin1-bytes-declared-utf8": Case(
            _rss2(_items(2, extra="<description>caf\u00e9</description>")).encode("latin-1"),
            _RSS,
            2,
            "bozo",
        ),  # fmt: skip
        "header-charset-wrong": Case(rss3, "application/rss+xml; charset=koi8-r", 3, "ok"),
        "header-charset-unknown": Case(rss3, "application/rss+xml; charset=x-bogus", 3, "ok"),
        "header-charset-base64": Case(rss3, "application/rss+xml; charset=base64", 3, "ok"),
        "missing-content-type": Case(rss3, "", 3, "ok"),
        "served-as-text-html": Case(rss3, "text/html; charset=utf-8", 3, "ok"),
        "served-as-octet-stream": Case(rss3, "application/octet-stream", 3, "ok"),
        "cdata-everywhere": Case(
            _rss2(
                "".join(
                    f"<item><title><![CDATA[<b>Bold</b> {i}]]></title>"
                    f"<link><![CDATA[http://news.example/c{i}.html]]></link>"
                    "<description><![CDATA[<p>para <script>x()</script></p>]]></description>"
                    "</item>"
                    for i in range(3)
                )
            ).encode(),
            _RSS,
            3,
            "ok",
        ),  # fmt: skip
        "namespaces-media-dc-content": Case(
            _rss2(
                _items(
                    2,
                    extra="<dc:creator>Ann</dc:creator><media:content "
                    "url='http://news.example/i.jpg' medium='image'/><content:encoded>"
                    "&lt;p&gt;x&lt;/p&gt;</content:encoded>",
                ),
                head=" xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:media="
                "'http://search.yahoo.com/mrss/' xmlns:content="
                "'http://purl.org/rss/1.0/modules/content/'",
            ).encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
        "undeclared-namespace-prefix": Case(
            _rss2(_items(2, extra="<foo:bar>x</foo:bar>")).encode(), _RSS, 2, "bozo"
        ),
        "undefined-html-entity": Case(
            _rss2(_items(2, extra="<description>a&nbsp;b&copy;</description>")).encode(),
            _RSS,
            2,
            "bozo",
        ),  # fmt: skip
        "unescaped-ampersand": Case(
            _rss2(_items(2, link="http://news.example/?a=1&b={n}")).encode(), _RSS, 2, "bozo"
        ),
        "control-characters": Case(
            _rss2(_items(2, extra="<description>bad\x01\x02\x0b</description>")).encode(),
            _RSS,
            2,
            "bozo",
        ),  # fmt: skip
        "unclosed-tags": Case(
            _rss2("<item><title>Open<link>http://news.example/u.html</link></item>").encode(),
            _RSS,
            0,
            "bozo",
        ),  # fmt: skip  (the loose parser loses the link)
        "nul-bytes": Case(rss3.replace(b"Story 1", b"Sto\0ry 1"), _RSS, 3, "bozo"),
        "huge-feed-5000-items": Case(_rss2(_items(5000)).encode(), _RSS, 200, "ok"),
        "huge-title": Case(
            _rss2(_items(1).replace("Story 0", "T" * 500_000)).encode(), _RSS, 1, "ok"
        ),
        "mixed-rss-and-atom-elements": Case(
            _rss2(
                _items(2) + _atom_entry(9), head=" xmlns:atom='http://www.w3.org/2005/Atom'"
            ).encode(),
            _RSS,
            3,
            "ok",
        ),  # fmt: skip  (the atom:entry is read as an item)
        "atom-xhtml-content": Case(
            _atom10(
                _atom_entry(
                    1,
                    extra="<content type='xhtml'><div xmlns="
                    "'http://www.w3.org/1999/xhtml'><p>Hi</p></div></content>",
                )
            ).encode(),
            _ATOM,
            1,
            "ok",
        ),  # fmt: skip
        "atom-relative-links-base": Case(
            _atom10(_atom_entry(1, link="rel{n}.html"))
            .replace("<feed ", "<feed xml:base='http://news.example/dir/' ")
            .encode(),
            _ATOM,
            1,
            "ok",
        ),  # fmt: skip
        "atom-no-link-id-url": Case(
            _atom10(
                "<entry><title>x</title><id>http://news.example/id.html</id>"
                "<updated>2024-01-01T00:00:00Z</updated></entry>"
            ).encode(),
            _ATOM,
            1,
            "ok",
        ),  # fmt: skip
        "xml-declaration-only": Case(b"<?xml version='1.0'?>", _RSS, 0, "failed", "FeedError"),
        "garbage-after-root": Case(rss3 + b"<junk>more</junk>", _RSS, 3, "bozo"),
        "two-root-channels": Case(
            _rss2(_items(1))
            .replace(
                "</channel>",
                "</channel><channel><title>2</title>"
                + _items(1, link="http://news.example/b{n}.html")
                + "</channel>",
            )
            .encode(),
            _RSS,
            2,
            "ok",
        ),  # fmt: skip
    }
    return cases
