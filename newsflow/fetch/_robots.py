"""robots.txt: one cached rule set per origin, parsed by protego with RFC 9309 semantics.

protego matches ``*`` and ``$`` and picks the longest matching rule (``Allow`` winning a
tie), which :mod:`urllib.robotparser` does not. The HTTP outcome of fetching robots.txt
decides as RFC 9309 says: 4xx allows everything, 5xx/429 or no answer pauses the host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from protego import Protego

from newsflow.errors import PermanentFetchError, TransientFetchError
from newsflow.fetch._errors import BlockedAddress, RobotsDisallowed, RobotsUnavailable
from newsflow.fetch._models import FetchResponse
from newsflow.fetch._urls import origin

__all__ = ["Robots", "RobotsGet"]

# Log lines name the public package, not this private module (httpx logs as "httpx").
_log = logging.getLogger("newsflow.fetch")

_TTL = 3600.0
_RETRY = 300.0
_DEADLINE = 10.0
_MAX_BYTES = 512 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
_MAX_CRAWL_DELAY = 10.0
_HEADERS = {"Accept": "text/plain, */*;q=0.5"}


class RobotsGet(Protocol):
    """GET ``url`` without consulting robots.txt; a longer body is cut to ``max_bytes``."""

    def __call__(
        self, url: str, *, headers: Mapping[str, str], seconds: float, max_bytes: int
    ) -> FetchResponse: ...


@dataclass(slots=True)
class _Entry:
    parser: Protego | None  # None: everything allowed
    expires: float
    unavailable: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Robots:
    """The robots.txt rules of every origin seen, each fetched once per TTL.

    ``get`` fetches robots.txt (within ``deadline`` seconds, 10 at most); a Crawl-delay
    (10 s at most) is passed to ``on_crawl_delay`` with the URL's host.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        deadline: float,
        get: RobotsGet,
        on_crawl_delay: Callable[[str, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._user_agent = user_agent
        self._deadline = min(deadline, _DEADLINE)
        self._get = get
        self._on_crawl_delay = on_crawl_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def check(self, url: httpx.URL) -> None:
        """Raise unless ``url`` may be fetched now (robots.txt fetched first if stale).

        :class:`RobotsDisallowed` when the rules refuse it, :class:`RobotsUnavailable`
        while the host is paused because its robots.txt could not be read.
        """
        key = origin(url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(None, expires=0.0)
        with entry.lock:  # one fetch per origin, however many threads ask
            if entry.expires <= self._clock():
                self._load(key, url.host, entry)
            unavailable, parser = entry.unavailable, entry.parser
        if unavailable:
            raise RobotsUnavailable(f"{url}: robots.txt of {key} unavailable, retry later")
        if parser is not None and not parser.can_fetch(str(url), self._user_agent):
            raise RobotsDisallowed(f"{url}: disallowed by {key}/robots.txt")

    def _load(self, key: str, host: str, entry: _Entry) -> None:
        """Refresh ``entry`` with RFC 9309 semantics.

        4xx (and other permanent failures, e.g. a redirect loop): everything allowed.
        5xx, 429 or unreachable: everything disallowed for a few minutes (the last good
        rules are kept instead, if we have them), surfacing as a transient error.
        """
        now = self._clock()
        try:
            response = self._get(
                f"{key}/robots.txt",
                headers=_HEADERS,
                seconds=self._deadline,
                max_bytes=_MAX_BYTES,
            )
        except BlockedAddress:
            raise
        except PermanentFetchError as exc:
            _log.debug("robots.txt of %s: %s; allowing everything", key, exc)
            entry.parser, entry.unavailable, entry.expires = None, False, now + _TTL
            return
        except TransientFetchError as exc:
            _log.debug("robots.txt of %s: %s; pausing the host", key, exc)
            if entry.parser is None:  # no earlier rules to fall back on
                entry.unavailable = True
            entry.expires = now + _RETRY
            return
        parser = Protego.parse(response.body.decode("utf-8", errors="replace"))
        entry.parser, entry.unavailable, entry.expires = parser, False, now + _TTL
        crawl_delay = parser.crawl_delay(self._user_agent)
        if crawl_delay is not None:
            self._on_crawl_delay(host, min(float(crawl_delay), _MAX_CRAWL_DELAY))
