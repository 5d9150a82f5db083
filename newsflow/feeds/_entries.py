"""Mapping feedparser's entries to :class:`~schemas.FeedEntry`, and HTML fragments to text.

feedparser hands back loosely typed dictionaries; everything here reads them defensively
(any key may be missing or of the wrong type) and keeps only entries with an http(s) link.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from schemas import FeedConfig, FeedEntry

__all__ = ["clean_text", "entries_of"]

# Log lines name the public package, not this private module (httpx logs as "httpx").
_log = logging.getLogger("newsflow.feeds")

_WHITESPACE = re.compile(r"\s+")
_EMAIL_AND_NAME = re.compile(r"\s*[^\s()]+@[^\s()]+\s*\((?P<name>[^()]+)\)\s*")


def entries_of(
    raw_entries: Iterable[Any],
    config: FeedConfig,
    language: str | None,
    base_url: str,
    limit: int,
) -> list[FeedEntry]:
    """The entries of one parsed feed: newest first, one per link, at most ``limit``.

    ``base_url`` resolves relative links unless an entry carries its own xml:base.
    """
    entries: list[FeedEntry] = []
    seen_links: set[str] = set()
    dropped = 0
    for raw in raw_entries:
        entry = _entry(raw, config, language, base_url)
        if entry is None:
            dropped += 1
        elif entry.link not in seen_links:
            seen_links.add(entry.link)
            entries.append(entry)
    if dropped:
        _log.debug("feed=%s dropped=%d reason=no_http_link", config.url, dropped)
    # Newest first; undated entries keep the feed's order after the dated ones.
    entries.sort(key=_age_key)
    return entries[:limit]


def _age_key(entry: FeedEntry) -> tuple[bool, float]:
    when = entry.updated_at or entry.published_at
    return (when is None, -when.timestamp() if when else 0.0)


def _entry(
    raw: Mapping[str, Any], config: FeedConfig, language: str | None, base_url: str
) -> FeedEntry | None:
    base = _entry_base(raw) or base_url
    guid = clean_text(raw.get("id"))
    link = _http_url(raw.get("link"), base)
    if link is None and raw.get("guidislink"):
        link = _http_url(guid, base)
    if link is None:
        return None
    return FeedEntry(
        link=link,
        guid=guid,
        title=_detail_text(raw, "title"),
        summary=_detail_text(raw, "summary"),
        authors=_authors(raw),
        published_at=_utc(raw.get("published_parsed")),
        updated_at=_utc(_updated_parsed(raw)),
        tags=_dedupe([*_entry_tags(raw), *config.tags]),
        language=language,
        image_url=_image(raw, base),
        content=_content(raw),
    )


def _content(raw: Mapping[str, Any]) -> str | None:
    # feedparser lists content:encoded and Atom <content> here; the longest one is the body.
    texts = []
    for item in raw.get("content") or []:
        if isinstance(item, Mapping) and (value := clean_text(item.get("value"))):
            html = item.get("type") in ("text/html", "application/xhtml+xml")
            texts.append(_plain_text(value) if html else _WHITESPACE.sub(" ", value).strip())
    return max((text for text in texts if text), key=len, default=None)


def _entry_base(raw: Mapping[str, Any]) -> str | None:
    # feedparser records the xml:base in effect for each element in its *_detail.
    for key in ("title_detail", "summary_detail"):
        detail = raw.get(key)
        if isinstance(detail, Mapping) and _http_url(detail.get("base"), ""):
            return str(detail["base"])
    return None


def clean_text(value: object) -> str | None:
    """``value`` stripped, if it is a string with something in it; else ``None``."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _http_url(value: object, base: str) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    url = urljoin(base, text) if base else text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def _detail_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = clean_text(raw.get(key))
    if value is None:
        return None
    detail = raw.get(f"{key}_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    if kind in ("text/html", "application/xhtml+xml"):
        return _plain_text(value)
    return _WHITESPACE.sub(" ", value).strip() or None


def _authors(raw: Mapping[str, Any]) -> list[str]:
    # feedparser gathers <author>, dc:creator and atom:author names here.
    names = []
    for author in raw.get("authors") or []:
        if isinstance(author, Mapping):
            name = clean_text(author.get("name"))
            if name and name.count("(") != name.count(")"):
                # feedparser's e-mail pattern stops at a 4-letter TLD and splits
                # "joe@news.example (Joe)" in the wrong place; read the raw value instead.
                match = _EMAIL_AND_NAME.fullmatch(str(raw.get("author") or ""))
                name = clean_text(match["name"]) if match else None
            if name:
                names.append(name)
    if not names:
        name = clean_text(raw.get("author"))
        if name:
            names.append(name)
    return _dedupe(names)


def _entry_tags(raw: Mapping[str, Any]) -> list[str]:
    tags = []
    for tag in raw.get("tags") or []:
        if isinstance(tag, Mapping):
            term = clean_text(tag.get("term")) or clean_text(tag.get("label"))
            if term:
                tags.append(term)
    return tags


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for value in values:
        if value.casefold() not in seen:
            seen.add(value.casefold())
            kept.append(value)
    return kept


def _updated_parsed(raw: Mapping[str, Any]) -> object:
    # FeedParserDict answers a missing updated_parsed with published_parsed (and a
    # DeprecationWarning); a plain dict lookup sees only what the entry really has.
    return dict.get(raw, "updated_parsed") if isinstance(raw, dict) else raw.get("updated_parsed")


def _utc(value: object) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _image(raw: Mapping[str, Any], base: str) -> str | None:
    for media in raw.get("media_content") or []:
        if isinstance(media, Mapping) and (
            media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")
        ):
            url = _http_url(media.get("url"), base)
            if url:
                return url
    for thumbnail in raw.get("media_thumbnail") or []:
        if isinstance(thumbnail, Mapping):
            url = _http_url(thumbnail.get("url"), base)
            if url:
                return url
    for enclosure in raw.get("enclosures") or []:
        if isinstance(enclosure, Mapping) and str(enclosure.get("type", "")).startswith("image/"):
            url = _http_url(enclosure.get("href"), base)
            if url:
                return url
    return None


# --- HTML to plain text ----------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 "
    "h5 h6 header hr li main nav ol p pre section table td th tr ul".split()
)
_SKIPPED_TAGS = frozenset({"script", "style", "template"})


class _TextCollector(HTMLParser):
    """Text of an HTML fragment, with block elements separated by spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _plain_text(html: str) -> str | None:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return _WHITESPACE.sub(" ", "".join(collector.parts)).strip() or None
