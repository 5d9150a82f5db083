"""The client: :class:`Fetcher`, one GET with its redirects, deadline and final answer.

It composes the other private modules: URLs are checked by :mod:`._urls`, connections go
through the SSRF guard of :mod:`._guard`, robots.txt is consulted via :mod:`._robots`,
slots come from :mod:`._politeness`, and bodies are read by :mod:`._decode`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from types import MappingProxyType

import httpx

from newsflow.errors import FetchError, PermanentFetchError
from newsflow.fetch._decode import ACCEPT_ENCODING, media_type_and_encoding, read_body
from newsflow.fetch._errors import status_error, translated
from newsflow.fetch._guard import GuardedTransport, deadline_scope
from newsflow.fetch._models import FetchResponse
from newsflow.fetch._politeness import Politeness
from newsflow.fetch._robots import Robots
from newsflow.fetch._urls import origin, parse_url, redirect_target
from newsflow.settings import FetchSettings

__all__ = ["Fetcher"]

# Log lines name the public package, not this private module (httpx logs as "httpx").
_log = logging.getLogger("newsflow.fetch")

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_CROSS_ORIGIN_DROPPED = ("authorization", "cookie", "proxy-authorization")


@dataclass(frozen=True, slots=True)
class _Budget:
    seconds: float
    max_bytes: int
    truncate: bool = False  # keep the first max_bytes instead of failing (robots.txt)


def _final_body(url: str, response: httpx.Response, deadline_at: float, budget: _Budget) -> bytes:
    """The decompressed body of a final answer, or the error that answer means."""
    status = response.status_code
    if status == 304:
        return b""
    if not 200 <= status <= 299:
        raise status_error(url, response)
    return read_body(url, response, deadline_at, budget.max_bytes, truncate=budget.truncate)


def _fetch_response(
    url: httpx.URL,
    response: httpx.Response,
    body: bytes,
    permanent: str | None,
    elapsed: float,
) -> FetchResponse:
    media_type, encoding = media_type_and_encoding(response.headers.get("content-type", ""), body)
    _log.debug("GET %s -> %d, %d bytes in %.3fs", url, response.status_code, len(body), elapsed)
    return FetchResponse(
        url=str(url),
        status=response.status_code,
        headers=MappingProxyType(dict(response.headers.items())),
        body=body,
        content_type=media_type,
        encoding=encoding,
        permanent_redirect=permanent,
        elapsed=elapsed,
    )


class Fetcher(AbstractContextManager["Fetcher"]):
    """Thread-safe HTTP GET client; share one per process and close it when done.

    At most ``concurrency`` requests are in flight, at most ``per_host_concurrency`` per
    host, and requests to one host start ``per_host_delay`` (or its robots.txt
    Crawl-delay, up to 10 s) apart. Cookies are never kept.

    ``transport`` replaces the guarded network transport (e.g. ``httpx.MockTransport``
    in tests); the SSRF guard lives in the default transport only.
    """

    def __init__(
        self, settings: FetchSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        if transport is None:
            transport = GuardedTransport(
                allow_private=settings.allow_private_networks,
                max_connections=settings.concurrency,
            )
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # an environment proxy would bypass the SSRF guard
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )
        # A crawler carries no state from one article to the next.
        self._client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._politeness = Politeness(
            concurrency=settings.concurrency,
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
        )
        self._robots = Robots(
            user_agent=settings.user_agent,
            deadline=settings.deadline,
            get=self._get_robots_txt,
            on_crawl_delay=self._politeness.set_delay,
        )

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        respect_robots: bool | None = None,
    ) -> FetchResponse:
        """GET ``url``, following redirects; raise a :class:`FetchError` unless 2xx or 304.

        ``headers`` are added to every hop (e.g. ``If-None-Match``); credentials are
        dropped when a redirect leaves the origin. ``respect_robots`` overrides the setting.
        """
        if respect_robots is None:
            respect_robots = self._settings.respect_robots
        budget = _Budget(self._settings.deadline, self._settings.max_body_bytes)
        return self._fetch(url, headers, respect_robots=respect_robots, budget=budget)

    def get_many(
        self,
        urls: Sequence[str],
        *,
        respect_robots: bool | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> list[FetchResponse | FetchError]:
        """:meth:`get` every URL concurrently; results (or errors) in input order.

        ``on_done`` is called on the calling thread after each URL finishes.
        """
        if not urls:
            return []
        results: dict[int, FetchResponse | FetchError] = {}
        workers = min(self._settings.concurrency, len(urls))
        with ThreadPoolExecutor(workers, thread_name_prefix="newsflow-fetch") as pool:
            futures = {
                pool.submit(self._get_or_error, url, respect_robots): index
                for index, url in enumerate(urls)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done is not None:
                    on_done()
        return [results[index] for index in range(len(urls))]

    def _get_or_error(self, url: str, respect_robots: bool | None) -> FetchResponse | FetchError:
        try:
            return self.get(url, respect_robots=respect_robots)
        except FetchError as exc:
            return exc

    # -- one request ---------------------------------------------------------------------

    def _fetch(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        *,
        respect_robots: bool,
        budget: _Budget,
    ) -> FetchResponse:
        current = parse_url(url)
        first_origin = origin(current)
        hop_headers = httpx.Headers(headers)
        hop_headers["Accept-Encoding"] = ACCEPT_ENCODING  # we can only decode these
        started = 0.0
        deadline_at: float | None = None
        permanent: str | None = None
        leading_permanent = True
        for _ in range(self._settings.max_redirects + 1):
            if respect_robots:
                self._robots.check(current)
            if origin(current) != first_origin:
                for name in _CROSS_ORIGIN_DROPPED:
                    hop_headers.pop(name, None)
            with self._politeness.slot(current.host):
                # The deadline runs from the first request, not from queueing for a slot.
                if deadline_at is None:
                    started = time.monotonic()
                    deadline_at = started + budget.seconds
                with deadline_scope(deadline_at):
                    response = self._send(current, hop_headers, deadline_at)
                    try:
                        status = response.status_code
                        location = response.headers.get("location")
                        if status not in _REDIRECT_STATUSES or not location:
                            body = _final_body(str(current), response, deadline_at, budget)
                            elapsed = time.monotonic() - started
                            return _fetch_response(current, response, body, permanent, elapsed)
                    finally:
                        response.close()
            target = redirect_target(current, location)
            if leading_permanent and status in _PERMANENT_REDIRECTS:
                permanent = str(target)
            else:
                leading_permanent = False
            _log.debug("GET %s -> %d, redirect to %s", current, status, target)
            current = target
        raise PermanentFetchError(f"{url}: more than {self._settings.max_redirects} redirects")

    def _send(self, url: httpx.URL, headers: httpx.Headers, deadline_at: float) -> httpx.Response:
        remaining = max(deadline_at - time.monotonic(), 0.001)
        timeout = httpx.Timeout(
            connect=min(self._settings.connect_timeout, remaining),
            read=min(self._settings.read_timeout, remaining),
            write=min(self._settings.read_timeout, remaining),
            pool=remaining,
        )
        with translated(str(url), deadline_at):
            request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
            return self._client.send(request, stream=True)

    # -- robots.txt ----------------------------------------------------------------------

    def _get_robots_txt(
        self, url: str, *, headers: Mapping[str, str], seconds: float, max_bytes: int
    ) -> FetchResponse:
        budget = _Budget(seconds, max_bytes, truncate=True)
        return self._fetch(url, headers, respect_robots=False, budget=budget)
