"""Polling one feed: conditional GET, parsing with feedparser, and the feed's state.

:func:`poll_feed` is the entry point. It never raises for a feed's own trouble (network,
HTTP status, a body that is not a feed): that is a counted outcome, returned as a
:class:`FeedPoll` with status ``"failed"``, its error, and a state that schedules the next
attempt with exponential backoff. Failing feeds are never given up on; a revived feed
recovers by itself on its next due poll.

Bytes are fetched with newsflow's own :class:`~newsflow.fetch.Fetcher` (timeouts, size cap,
SSRF guard, robots.txt); feedparser only parses, in a worker process of the ``runner``
under a time and memory limit (:mod:`._parse`), and :mod:`._entries` maps what it parsed
to entries.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from newsflow.errors import (
    FeedError,
    FeedParseTimeout,
    FetchError,
    NewsflowError,
    PermanentFetchError,
)
from newsflow.feeds._parse import ParsedFeed, parse_feed
from newsflow.fetch import Fetcher, FetchResponse
from newsflow.settings import FeedSettings
from schemas import FeedConfig, FeedEntry, FeedState

__all__ = ["FeedPoll", "FeedStatus", "is_due", "poll_feed"]

# Log lines name the public package, not this private module (httpx logs as "httpx").
log = logging.getLogger("newsflow.feeds")

FeedStatus = Literal["ok", "bozo", "not_modified", "unchanged", "failed", "not_due", "disabled"]

_MAX_ERROR_MESSAGE = 500
# 2**60 backoff steps are far past any backoff_max; the cap keeps the float finite.
_MAX_BACKOFF_EXPONENT = 60
# Jitter spreads retries of feeds that failed together ("equal jitter": 50-100%).
_JITTER_LOW = 0.5
_random = random.Random()  # noqa: S311 - scheduling jitter, not security

_T = TypeVar("_T")


class Runner(Protocol):
    """Runs a function in a worker process under a time and memory limit.

    :class:`newsflow.extract.Extractor` is one: feeds are parsed in the run's pool.
    """

    def run(self, fn: Callable[..., _T], args: tuple[Any, ...], timeout: float) -> _T:
        """``fn(*args)``; TimeoutError once it has run ``timeout`` seconds."""
        ...


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
    runner: Runner | None = None,
) -> FeedPoll:
    """Poll one feed if it is due (or ``force``), and return its entries and new state.

    A disabled feed is never fetched, not even with ``force``. ``rng`` draws the backoff
    jitter (default: a module-level generator). The body is parsed by ``runner`` within
    ``settings.parse_timeout``; without one, in this process and without a time limit.
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
        poll = _answered(config, state, response, settings, now, runner)
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


def _answered(
    config: FeedConfig,
    state: FeedState,
    response: FetchResponse,
    settings: FeedSettings,
    now: datetime,
    runner: Runner | None,
) -> FeedPoll:
    """The outcome of a 2xx or 304 answer; a body that is not a feed raises FeedError."""
    body_hash = hashlib.sha256(response.body).hexdigest()
    if response.status == 304 or body_hash == state.body_hash:
        # Nothing new: a 304, or the server ignored our conditional headers and sent the
        # same bytes again. What the last parse found (bozo, bozo_message) still holds.
        same: FeedStatus = "not_modified" if response.status == 304 else "unchanged"
        update = _success_update(config, state, response, settings, now, state.ttl_seconds)
        update.update(_validators(response, state, keep=True), last_status=same)
        return FeedPoll(state=state.model_copy(update=update), entries=[], status=same)

    parsed = _parse(response, config, settings, runner)
    status: FeedStatus = "bozo" if parsed.bozo else "ok"
    update = _success_update(config, state, response, settings, now, parsed.ttl_seconds)
    update.update(
        _validators(response, state, keep=False),
        name=config.name or parsed.title or state.name,
        body_hash=body_hash,
        last_status=status,
        bozo_message=_truncate(parsed.bozo_message) if parsed.bozo_message else None,
        bozo=parsed.bozo,
        entries_seen=parsed.entries_seen,
    )
    return FeedPoll(state=state.model_copy(update=update), entries=parsed.entries, status=status)


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


def _parse(
    response: FetchResponse, config: FeedConfig, settings: FeedSettings, runner: Runner | None
) -> ParsedFeed:
    content_type = response.headers.get("content-type") or response.content_type
    if content_type and response.encoding:
        # The fetcher's codec, never the server's label: that one may name no text
        # encoding at all (charset=base64). RFC 7303: without a charset parameter the BOM
        # or XML declaration decides, and the fetcher has read them; feedparser would
        # assume us-ascii for text/xml (RFC 3023) and call every such feed bozo.
        content_type = f"{content_type.partition(';')[0].strip()}; charset={response.encoding}"
    headers = {
        # The final URL is the base for relative links (unless the feed sets xml:base).
        "content-location": response.url,
        "content-type": content_type,
    }
    if response.headers.get("content-language"):
        headers["content-language"] = response.headers["content-language"]
    args = (response.body, headers, response.url, config, settings.max_entries)
    if runner is None:
        return parse_feed(*args)
    try:
        return runner.run(parse_feed, args, settings.parse_timeout)
    except TimeoutError:
        raise FeedParseTimeout(
            f"feed parser took over {settings.parse_timeout:g} s on {response.url}"
        ) from None
    except FeedError:
        raise
    except Exception as e:  # the worker died (memory limit) or could not answer
        raise FeedError(f"feed parser failed on {response.url}: {type(e).__name__}: {e}") from e
