"""Polling one feed: conditional GET, parsing with feedparser, entries, and the feed's state.

:func:`poll_feed` is the entry point. It never raises for a feed's own trouble (network,
HTTP status, a body that is not a feed): that is a counted outcome, returned as a
:class:`FeedPoll` with status ``"failed"``, its error, and a state that schedules the next
attempt with exponential backoff. Failing feeds are never given up on; a revived feed
recovers by itself on its next due poll.

Bytes are fetched with newsflow's own :class:`~newsflow.fetch.Fetcher` (timeouts, size cap,
SSRF guard, robots.txt); feedparser only parses.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import feedparser

from newsflow.errors import FeedError, FetchError, NewsflowError, PermanentFetchError
from newsflow.fetch import Fetcher, FetchResponse
from newsflow.settings import FeedSettings
from schemas import FeedConfig, FeedEntry, FeedState

__all__ = ["FeedPoll", "FeedStatus", "is_due", "poll_feed"]

log = logging.getLogger(__name__)

FeedStatus = Literal["ok", "bozo", "not_modified", "unchanged", "failed", "not_due", "disabled"]

_MAX_ERROR_MESSAGE = 500
# A feed's <ttl> is a request, not a contract: one claiming weeks would go unpolled.
_MAX_TTL_SECONDS = 86400.0
# 2**60 backoff steps are far past any backoff_max; the cap keeps the float finite.
_MAX_BACKOFF_EXPONENT = 60
# Jitter spreads retries of feeds that failed together ("equal jitter": 50-100%).
_JITTER_LOW = 0.5
_random = random.Random()  # noqa: S311 - scheduling jitter, not security


@dataclass(frozen=True)
class FeedPoll:
    """The outcome of one poll of one feed."""

    state: FeedState
    """The feed's new state, to be stored."""
    entries: list[FeedEntry]
    """Newest first, at most ``FeedSettings.max_entries``; empty unless status is ok/bozo."""
    status: FeedStatus
    """What happened; ``failed`` carries ``error``."""
    error: NewsflowError | None = None
    """Why the poll failed (status ``failed`` only)."""


def is_due(config: FeedConfig, state: FeedState | None, now: datetime) -> bool:
    """Whether ``config`` should be polled at ``now`` (never, if it is disabled)."""
    if not config.enabled:
        return False
    if state is None or state.next_poll_at is None:
        return True
    return now >= state.next_poll_at


def poll_feed(
    config: FeedConfig,
    state: FeedState | None,
    fetcher: Fetcher,
    settings: FeedSettings,
    *,
    now: datetime | None = None,
    force: bool = False,
    rng: random.Random | None = None,
) -> FeedPoll:
    """Poll one feed if it is due (or ``force``), and return its entries and new state.

    A disabled feed is never fetched, not even with ``force``. ``rng`` draws the backoff
    jitter (default: a module-level generator).
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    if state is None:
        state = FeedState(feed_url=config.url, name=config.name)
    elif state.feed_url != config.url:
        raise ValueError(f"state of {state.feed_url!r} passed for feed {config.url!r}")

    if not config.enabled:
        return FeedPoll(state=state, entries=[], status="disabled")
    if not force and not is_due(config, state, now):
        return FeedPoll(state=state, entries=[], status="not_due")

    url = state.fetch_url or config.url
    try:
        response = fetcher.get(
            url, headers=_conditional_headers(state), respect_robots=config.respect_robots
        )
        if response.status == 304:
            poll = _not_modified(config, state, response, settings, now)
        else:
            poll = _parsed(config, state, response, settings, now)
    except (FetchError, FeedError) as error:
        poll = _failed(state, error, settings, now, rng or _random)
    log.debug(
        "feed=%s status=%s entries=%d failures=%d next_poll_at=%s",
        config.url,
        poll.status,
        len(poll.entries),
        poll.state.consecutive_failures,
        poll.state.next_poll_at.isoformat() if poll.state.next_poll_at else None,
    )
    return poll


# --- outcomes --------------------------------------------------------------------------


def _conditional_headers(state: FeedState) -> dict[str, str]:
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def _interval(config: FeedConfig, settings: FeedSettings) -> float:
    return config.poll_interval if config.poll_interval is not None else settings.min_interval


def _success_update(
    config: FeedConfig,
    state: FeedState,
    response: FetchResponse,
    settings: FeedSettings,
    now: datetime,
    ttl_seconds: float | None,
) -> dict[str, Any]:
    """State fields every successful poll sets (200 or 304)."""
    wait = max(_interval(config, settings), ttl_seconds or 0.0)
    fetch_url = state.fetch_url
    if response.permanent_redirect:
        fetch_url = (
            None if response.permanent_redirect == config.url else response.permanent_redirect
        )
    return {
        "fetch_url": fetch_url,
        "ttl_seconds": ttl_seconds,
        "last_attempt_at": now,
        "last_success_at": now,
        "next_poll_at": now + timedelta(seconds=wait),
        "consecutive_failures": 0,
    }


def _validators(response: FetchResponse, state: FeedState, *, keep: bool) -> dict[str, Any]:
    # On 304 (and an unchanged body) missing validators mean "the old ones still hold";
    # on a new body they describe that body, so missing means none.
    etag = response.headers.get("etag")
    last_modified = response.headers.get("last-modified")
    if keep:
        etag = etag or state.etag
        last_modified = last_modified or state.last_modified
    return {"etag": etag, "last_modified": last_modified}


def _not_modified(
    config: FeedConfig,
    state: FeedState,
    response: FetchResponse,
    settings: FeedSettings,
    now: datetime,
) -> FeedPoll:
    update = _success_update(config, state, response, settings, now, state.ttl_seconds)
    update.update(_validators(response, state, keep=True), last_status="not_modified")
    return FeedPoll(state=state.model_copy(update=update), entries=[], status="not_modified")


def _parsed(
    config: FeedConfig,
    state: FeedState,
    response: FetchResponse,
    settings: FeedSettings,
    now: datetime,
) -> FeedPoll:
    body_hash = hashlib.sha256(response.body).hexdigest()
    if body_hash == state.body_hash:
        # The server ignored our conditional headers and sent the same bytes again.
        update = _success_update(config, state, response, settings, now, state.ttl_seconds)
        update.update(_validators(response, state, keep=True), last_status="unchanged")
        return FeedPoll(state=state.model_copy(update=update), entries=[], status="unchanged")

    parsed = _parse(response)
    feed: Mapping[str, Any] = parsed.get("feed") or {}
    raw_entries: list[Any] = list(parsed.get("entries") or [])
    complaint = parsed.get("bozo_exception")
    # A feed served as text/html or text/plain is the server's mistake, not the feed's:
    # when that is the only complaint, the body parsed as well-formed XML.
    bozo = bool(parsed.get("bozo")) and not isinstance(complaint, feedparser.NonXMLContentType)
    title = _text(feed.get("title"))
    if not raw_entries and (not parsed.get("version") or (bozo and not title)):
        reason = complaint or "no feed elements found"
        raise FeedError(f"not a feed: {response.url}: {reason}")

    language = _text(feed.get("language")) or config.language
    entries = _entries(raw_entries, config, language, response.url, settings.max_entries)
    status: FeedStatus = "bozo" if bozo else "ok"
    update = _success_update(config, state, response, settings, now, _ttl_seconds(feed))
    update.update(
        _validators(response, state, keep=False),
        name=config.name or title or state.name,
        body_hash=body_hash,
        last_status=status,
        bozo_message=_truncate(str(complaint)) if bozo else None,
        entries_seen=len(raw_entries),
    )
    return FeedPoll(state=state.model_copy(update=update), entries=entries, status=status)


def _failed(
    state: FeedState,
    error: NewsflowError,
    settings: FeedSettings,
    now: datetime,
    rng: random.Random,
) -> FeedPoll:
    failures = state.consecutive_failures + 1
    backoff = min(
        settings.backoff_max,
        settings.backoff_base * 2.0 ** min(failures - 1, _MAX_BACKOFF_EXPONENT),
    )
    wait = backoff * rng.uniform(_JITTER_LOW, 1.0)
    retry_after = _retry_after(error)
    if retry_after is not None:
        # The server said when to come back; never later than backoff_max, the promise
        # that a failing feed is retried at least that often.
        wait = max(wait, min(retry_after, settings.backoff_max))
    fetch_url = state.fetch_url
    if fetch_url and isinstance(error, PermanentFetchError):
        # Where a redirect once led is gone or refused: start again from the configured
        # URL next time (following its redirects anew).
        fetch_url = None
    update = {
        "fetch_url": fetch_url,
        "last_attempt_at": now,
        "next_poll_at": now + timedelta(seconds=wait),
        "consecutive_failures": failures,
        "last_error_class": type(error).__name__,
        "last_error_message": _truncate(str(error)),
        "last_status": "failed",
    }
    return FeedPoll(state=state.model_copy(update=update), entries=[], status="failed", error=error)


def _retry_after(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _truncate(message: str) -> str:
    if len(message) <= _MAX_ERROR_MESSAGE:
        return message
    return message[: _MAX_ERROR_MESSAGE - 1] + "…"


# --- parsing ---------------------------------------------------------------------------


def _parse(response: FetchResponse) -> Mapping[str, Any]:
    content_type = response.headers.get("content-type") or response.content_type
    if content_type and response.encoding and "charset=" not in content_type.lower():
        # RFC 7303: without a charset parameter the BOM or XML declaration decides, and the
        # fetcher has read them; feedparser would assume us-ascii for text/xml (RFC 3023)
        # and call every such feed bozo.
        content_type = f"{content_type}; charset={response.encoding}"
    headers = {
        # The final URL is the base for relative links (unless the feed sets xml:base).
        "content-location": response.url,
        "content-type": content_type,
    }
    if response.headers.get("content-language"):
        headers["content-language"] = response.headers["content-language"]
    try:
        # A stream, never bytes or str: feedparser would treat those as a URL or a path.
        result: Mapping[str, Any] = feedparser.parse(
            io.BytesIO(response.body),
            response_headers=headers,
            resolve_relative_uris=True,
            sanitize_html=True,
        )
    except Exception as e:
        # feedparser reports malformed input as "bozo"; anything it raises is still about
        # this body, not about newsflow.
        raise FeedError(f"feed parser failed on {response.url}: {type(e).__name__}: {e}") from e
    return result


def _ttl_seconds(feed: Mapping[str, Any]) -> float | None:
    try:
        minutes = float(str(feed.get("ttl") or "").strip())
    except ValueError:
        return None
    if not minutes > 0:  # also rejects nan
        return None
    return min(minutes * 60.0, _MAX_TTL_SECONDS)


def _entries(
    raw_entries: Iterable[Any],
    config: FeedConfig,
    language: str | None,
    base_url: str,
    limit: int,
) -> list[FeedEntry]:
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
        log.debug("feed=%s dropped=%d reason=no_http_link", config.url, dropped)
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
    guid = _text(raw.get("id"))
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
    )


def _entry_base(raw: Mapping[str, Any]) -> str | None:
    # feedparser records the xml:base in effect for each element in its *_detail.
    for key in ("title_detail", "summary_detail"):
        detail = raw.get(key)
        if isinstance(detail, Mapping) and _http_url(detail.get("base"), ""):
            return str(detail["base"])
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _http_url(value: object, base: str) -> str | None:
    text = _text(value)
    if text is None:
        return None
    url = urljoin(base, text) if base else text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def _detail_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = _text(raw.get(key))
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
            name = _text(author.get("name"))
            if name and name.count("(") != name.count(")"):
                # feedparser's e-mail pattern stops at a 4-letter TLD and splits
                # "joe@news.example (Joe)" in the wrong place; read the raw value instead.
                match = _EMAIL_AND_NAME.fullmatch(str(raw.get("author") or ""))
                name = _text(match["name"]) if match else None
            if name:
                names.append(name)
    if not names:
        name = _text(raw.get("author"))
        if name:
            names.append(name)
    return _dedupe(names)


def _entry_tags(raw: Mapping[str, Any]) -> list[str]:
    tags = []
    for tag in raw.get("tags") or []:
        if isinstance(tag, Mapping):
            term = _text(tag.get("term")) or _text(tag.get("label"))
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

_WHITESPACE = re.compile(r"\s+")
_EMAIL_AND_NAME = re.compile(r"\s*[^\s()]+@[^\s()]+\s*\((?P<name>[^()]+)\)\s*")
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
