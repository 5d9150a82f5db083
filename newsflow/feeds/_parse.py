"""Parsing one feed body with feedparser into plain, picklable results.

:func:`parse_feed` runs in a worker process of the run's pool (under its time and memory
limit): feedparser's cost grows faster than the body, so one hostile feed within the body
cap could otherwise stall its poll for hours. Only a :class:`ParsedFeed` (entries as
:class:`~schemas.FeedEntry`, the rest as strings and numbers) crosses back, and every
failure is raised as :class:`~newsflow.errors.FeedError`, which pickles too.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from newsflow.errors import FeedError
from newsflow.feeds._entries import clean_text, entries_of
from schemas import FeedConfig, FeedEntry

__all__ = ["ParsedFeed", "parse_feed"]

# A feed's <ttl> is a request, not a contract: one claiming weeks would go unpolled.
_MAX_TTL_SECONDS = 86400.0

# Past these, feedparser's cost grows far faster than the body (10,000 attributes on one
# element: seconds; 100,000: minutes); no real feed comes near them.
_MAX_DEPTH = 1024
_MAX_ATTRIBUTES = 1024
_LONG_TAG = 2048  # attributes are counted only in tags at least this long
_SKIPPED = re.compile(r"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.S)
_ENTITY_DECLARATION = re.compile(r"<!DOCTYPE[^>\[]*\[[^\]]*<!ENTITY", re.S | re.I)
_TAG = re.compile(r"<(/?)[A-Za-z_][^\s/>]*([^<>]*?)(/?)>")
_ATTRIBUTE = re.compile(r"\s[^\s=]+\s*=")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What the poll needs from one parsed feed body."""

    entries: list[FeedEntry]
    """Newest first, at most ``max_entries``."""
    entries_seen: int
    """Entries in the body, before dropping those without an http(s) link."""
    title: str | None
    ttl_seconds: float | None
    bozo: bool
    """The body was malformed but still yielded a feed."""
    bozo_message: str | None
    """feedparser's complaint (``bozo`` only)."""


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    config: FeedConfig,
    max_entries: int,
) -> ParsedFeed:
    """Parse ``body`` (fetched from ``url`` with ``headers``); FeedError if not a feed."""
    import feedparser

    _screen(body, headers.get("content-type", ""), url)
    try:
        # A stream, never bytes or str: feedparser would treat those as a URL or a path.
        parsed: Mapping[str, Any] = feedparser.parse(
            io.BytesIO(body),
            response_headers=dict(headers),
            resolve_relative_uris=True,
            sanitize_html=True,
        )
        feed: Mapping[str, Any] = parsed.get("feed") or {}
        raw_entries: list[Any] = list(parsed.get("entries") or [])
        complaint = parsed.get("bozo_exception")
        # A feed served as text/html or text/plain is the server's mistake, not the
        # feed's: when that is the only complaint, the body parsed as well-formed XML.
        bozo = bool(parsed.get("bozo")) and not isinstance(complaint, feedparser.NonXMLContentType)
        title = clean_text(feed.get("title"))
        if not raw_entries and (not parsed.get("version") or (bozo and not title)):
            raise FeedError(f"not a feed: {url}: {complaint or 'no feed elements found'}")
        language = clean_text(feed.get("language")) or config.language
        entries = entries_of(raw_entries, config, language, url, max_entries)
    except FeedError:
        raise
    except Exception as e:
        # feedparser reports malformed input as "bozo"; anything it (or the mapping)
        # raises is still about this body, not about newsflow.
        raise FeedError(f"feed parser failed on {url}: {type(e).__name__}: {e}") from None
    return ParsedFeed(
        entries=entries,
        entries_seen=len(raw_entries),
        title=title,
        ttl_seconds=_ttl_seconds(feed),
        bozo=bozo,
        bozo_message=str(complaint) if bozo else None,
    )


def _screen(body: bytes, content_type: str, url: str) -> None:
    """Refuse, before feedparser sees it, a body built to make parsing explode.

    Entity declarations (billion laughs, quadratic blowup, external entities: feeds have
    no use for them), elements nested deeper than ``_MAX_DEPTH`` and elements with more
    than ``_MAX_ATTRIBUTES`` attributes. Tags inside CDATA sections and comments are
    content, not structure, and are not counted.
    """
    charset = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    try:
        text = body.decode(codecs.lookup(charset or "utf-8").name, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if _ENTITY_DECLARATION.search(text, 0, 1 << 16):
        raise FeedError(f"refused: {url} declares XML entities (<!ENTITY>)")
    depth = 0
    for tag in _TAG.finditer(_SKIPPED.sub("", text)):
        closing, attributes, self_closing = tag.groups()
        if closing:
            depth = max(depth - 1, 0)
            continue
        if len(attributes) >= _LONG_TAG and len(_ATTRIBUTE.findall(attributes)) > _MAX_ATTRIBUTES:
            raise FeedError(f"refused: {url} has an element with over {_MAX_ATTRIBUTES} attributes")
        if not self_closing:
            depth += 1
            if depth > _MAX_DEPTH:
                raise FeedError(f"refused: {url} nests elements over {_MAX_DEPTH} levels deep")


def _ttl_seconds(feed: Mapping[str, Any]) -> float | None:
    try:
        minutes = float(str(feed.get("ttl") or "").strip())
    except ValueError:
        return None
    if not minutes > 0:  # also rejects nan
        return None
    return min(minutes * 60.0, _MAX_TTL_SECONDS)
