"""The one HTTP client newsflow uses for feeds, robots.txt and article pages.

:class:`Fetcher` owns everything between a URL and a decoded body: the SSRF guard (checked
on the resolved address at connect time, so on every redirect hop), manual redirects, an
overall deadline per request, a body cap counted after decompression, charset detection,
robots.txt, and global / per-host concurrency with a politeness delay. httpx and httpcore
exceptions are translated here into :mod:`newsflow.errors` classes; ``isinstance(exc,
TransientError)`` tells whether a retry may help.
"""

from __future__ import annotations

import codecs
import email.utils
import functools
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from types import MappingProxyType, TracebackType
from typing import Any, Self
from urllib.robotparser import RobotFileParser

import charset_normalizer
import httpcore
import httpx

from newsflow.errors import FetchError, PermanentFetchError, TransientFetchError
from newsflow.settings import FetchSettings

__all__ = [
    "BlockedAddress",
    "BodyTooLarge",
    "FetchResponse",
    "Fetcher",
    "HttpStatusError",
    "PermanentHttpError",
    "RobotsDisallowed",
    "RobotsUnavailable",
    "TransientHttpError",
]

_log = logging.getLogger(__name__)

# Only codings whose output we can bound per input chunk (zlib's max_length); httpx's own
# decoders expand a whole network read at once, which lets a gzip bomb allocate ~1000x it.
_ACCEPT_ENCODING = "gzip, deflate"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_TRANSIENT_STATUSES = frozenset({408, 429})
_CROSS_ORIGIN_DROPPED = ("authorization", "cookie", "proxy-authorization")
_ROBOTS_TTL = 3600.0
_ROBOTS_RETRY = 300.0
_ROBOTS_DEADLINE = 10.0
_ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
_MAX_CRAWL_DELAY = 10.0
_SNIFF_BYTES = 4096
_DETECT_BYTES = 64 * 1024


# --- errors -----------------------------------------------------------------------------


class BlockedAddress(PermanentFetchError):
    """The SSRF guard refused the address a host name resolved to."""


class RobotsDisallowed(PermanentFetchError):
    """robots.txt disallows the URL for our user agent."""


class RobotsUnavailable(TransientFetchError):
    """robots.txt answered 5xx/429 or could not be reached: crawling is paused for the host."""


class BodyTooLarge(PermanentFetchError):
    """The (decompressed) body exceeds ``max_body_bytes``."""


class HttpStatusError(FetchError):
    """A non-2xx, non-304 final answer; the concrete class is transient or permanent."""

    def __init__(self, url: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"{url}: HTTP {status}")
        self.url = url
        self.status = status
        self.retry_after = retry_after  # seconds, from Retry-After (delta or HTTP date)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.status, self.retry_after))


class TransientHttpError(HttpStatusError, TransientFetchError):
    """408, 429 and 5xx answers."""


class PermanentHttpError(HttpStatusError, PermanentFetchError):
    """Every other 4xx (and stray 3xx without a usable Location)."""


# --- response ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A successful (2xx) or not-modified (304) answer, body already decompressed."""

    url: str
    """Final URL, after redirects."""
    status: int
    headers: Mapping[str, str]
    """Response headers, names lower-cased, repeated headers joined with ``", "``."""
    body: bytes
    content_type: str
    """Media type only, lower-case (``"text/html"``); empty when the server sent none."""
    encoding: str | None
    """Python codec name of the detected charset; ``None`` for non-text media types."""
    permanent_redirect: str | None
    """Where the leading run of 301/308 hops led, if the chain started with one."""
    elapsed: float
    """Seconds on the network, redirects and body included (not the wait for a slot)."""

    def text(self) -> str:
        """The body decoded with :attr:`encoding` (UTF-8 if none); bad bytes replaced."""
        return self.body.decode(self.encoding or "utf-8", errors="replace").removeprefix("\ufeff")

    @property
    def is_html(self) -> bool:
        return self.content_type in ("text/html", "application/xhtml+xml")


# --- SSRF guard -------------------------------------------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused even with allow_private_networks: no news lives there, credentials do.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _blocked_reason(ip: _IPAddress) -> str | None:
    """Why the guard refuses ``ip``, or ``None`` for a publicly routable unicast address."""
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    if isinstance(ip, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by it.
        if ip.ipv4_mapped is not None:
            return _blocked_reason(ip.ipv4_mapped)
        if ip in _NAT64:
            return _blocked_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return "private"
        if ip.sixtofour is not None and _blocked_reason(ip.sixtofour) is not None:
            return f"6to4 of {ip.sixtofour}"
        if ip.is_site_local:
            return "site-local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


# The deadline of the request the current thread is running; httpcore does each request's
# I/O on the calling thread, so the guarded streams can clamp every socket timeout to it.
_local = threading.local()


def _clamp(timeout: float | None) -> float | None:
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    remaining = max(deadline - time.monotonic(), 0.001)
    return remaining if timeout is None else min(timeout, remaining)


@contextmanager
def _deadline_scope(deadline: float) -> Iterator[None]:
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to addresses the guard accepts.

    Connecting to the checked IP literal leaves no window for DNS rebinding; TLS still
    verifies the URL's host name, which httpcore passes to ``start_tls`` separately.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label too long for IDNA
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        allowed: list[str] = []
        refused: list[str] = []
        for *_, sockaddr in infos:
            literal = str(sockaddr[0])
            ip = ipaddress.ip_address(literal.partition("%")[0])
            reason = _blocked_reason(ip)
            if ip in _METADATA_ADDRESSES or (reason is not None and not self._allow_private):
                refused.append(f"{ip} ({reason})")
            elif literal not in allowed:
                allowed.append(literal)
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to refused addresses: {refused}")
        *others, last = allowed
        for literal in others:
            try:
                return self._connect(literal, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                _log.debug(
                    "connect to %s (%s) failed: %s; trying the next address", host, literal, exc
                )
        return self._connect(last, port, timeout, local_address, socket_options)

    def _connect(
        self,
        literal: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(literal, port, _clamp(timeout), local_address, socket_options)
        return _DeadlineStream(stream)


class _PoolStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds; one client context serves all.
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.BaseTransport):
    """httpx transport over an httpcore pool that uses :class:`_GuardedBackend`."""

    def __init__(self, *, allow_private: bool, max_connections: int) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PoolStream(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


# --- body and charset -------------------------------------------------------------------


class _Decoder:
    """Content-Encoding decoder whose output per call is bounded (gzip bombs)."""

    def __init__(self, url: str, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        self._wbits: int | None
        if not codings:
            self._wbits = None
        elif codings in (["gzip"], ["x-gzip"]):
            self._wbits = 16 + zlib.MAX_WBITS
        elif codings == ["deflate"]:
            self._wbits = zlib.MAX_WBITS
        else:
            raise PermanentFetchError(f"{url}: unsupported Content-Encoding {content_encoding!r}")
        self._url = url
        self._started = False
        self._zlib = None if self._wbits is None else zlib.decompressobj(self._wbits)

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Up to ``max_length`` decoded bytes of ``data`` (the rest is not needed)."""
        if self._zlib is None:
            return data[:max_length]
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise PermanentFetchError(f"{self._url}: corrupt compressed body") from exc
            # Many servers send raw deflate (no zlib header) as "deflate".
            self._wbits = -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
            return self.decode(data, max_length)
        self._started = True
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()


_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.\-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# WHATWG Encoding Standard: browsers decode these labels as windows-1252, and pages
# labelled latin-1 routinely contain cp1252 quotes and dashes.
_BROWSER_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252"}


def _codec(label: str | bytes | None, *, in_document: bool = False) -> str | None:
    if isinstance(label, bytes):
        label = label.decode("ascii", errors="replace")
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    if in_document and name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a label we could read as ASCII bytes is not UTF-16 (WHATWG)
    return _BROWSER_ALIASES.get(name, name)


def _parse_content_type(value: str) -> tuple[str, str | None]:
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val
    return media_type.strip().lower(), charset


def _is_text(media_type: str) -> bool:
    return (
        not media_type
        or media_type.startswith("text/")
        or media_type.endswith(("/xml", "+xml", "/json", "+json"))
        or media_type in ("application/javascript", "application/ecmascript")
    )


def _detect_encoding(body: bytes, header_charset: str | None) -> str:
    """BOM, then HTTP charset, then in-document declaration, then UTF-8 or a guess.

    A BOM beats the header, as in browsers: it cannot be there by accident.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    found = _codec(header_charset)
    if found:
        return found
    head = body[:_SNIFF_BYTES]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        match = pattern.match(head) if pattern is _XML_ENCODING else pattern.search(head)
        found = _codec(match.group(1), in_document=True) if match else None
        if found:
            return found
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A body cut by a cap may end inside a character; that is still UTF-8.
        if exc.start < len(body) - 3:
            best = charset_normalizer.from_bytes(body[:_DETECT_BYTES]).best()
            guess = _codec(best.encoding) if best is not None else None
            if guess:
                return guess
    return "utf-8"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_error(url: str, response: httpx.Response) -> HttpStatusError:
    status = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    if status in _TRANSIENT_STATUSES or 500 <= status <= 599:
        return TransientHttpError(url, status, retry_after)
    return PermanentHttpError(url, status, retry_after)


@contextmanager
def _translated(url: str, deadline: float | None) -> Iterator[None]:
    """Turn httpx/httpcore exceptions into newsflow ones, the original chained."""
    try:
        yield
    except FetchError:
        raise
    except (
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.LocalProtocolError,
    ) as exc:
        raise PermanentFetchError(f"{url}: {exc}") from exc
    except (
        httpx.TransportError,
        httpcore.TimeoutException,
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.ProxyError,
    ) as exc:
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            raise TransientFetchError(f"{url}: deadline exceeded") from exc
        raise TransientFetchError(f"{url}: {type(exc).__name__}: {exc}") from exc


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes IDNA, which can fail too
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise PermanentFetchError(f"{url}: invalid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise PermanentFetchError(f"{url}: only http and https URLs are fetched")
    if not host or (parsed.port is not None and not 0 < parsed.port < 65536):
        raise PermanentFetchError(f"{url}: invalid host or port")
    return parsed


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        target = current.join(location)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise PermanentFetchError(f"{current}: bad redirect {location!r}: {exc}") from exc
    return _parse_url(target)


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
        raise _status_error(url, response)
    max_bytes = budget.max_bytes
    length = response.headers.get("content-length", "")
    if not budget.truncate and length.isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(f"{url}: Content-Length {length} exceeds {max_bytes} bytes")
    decoder = _Decoder(url, response.headers.get("content-encoding", ""))
    body = bytearray()
    with _translated(url, deadline_at):
        for chunk in response.iter_raw():
            # One byte more than fits tells "too large" from "exactly full".
            body += decoder.decode(chunk, max_bytes - len(body) + 1)
            if len(body) > max_bytes:
                break
            if time.monotonic() > deadline_at:
                raise TransientFetchError(f"{url}: deadline exceeded")
        else:
            body += decoder.flush()
    if len(body) > max_bytes:
        if not budget.truncate:
            raise BodyTooLarge(f"{url}: body exceeds {max_bytes} bytes")
        del body[max_bytes:]
    return bytes(body)


def _fetch_response(
    url: httpx.URL,
    response: httpx.Response,
    body: bytes,
    permanent: str | None,
    elapsed: float,
) -> FetchResponse:
    media_type, charset = _parse_content_type(response.headers.get("content-type", ""))
    _log.debug("GET %s -> %d, %d bytes in %.3fs", url, response.status_code, len(body), elapsed)
    return FetchResponse(
        url=str(url),
        status=response.status_code,
        headers=MappingProxyType(dict(response.headers.items())),
        body=body,
        content_type=media_type,
        encoding=_detect_encoding(body, charset) if _is_text(media_type) else None,
        permanent_redirect=permanent,
        elapsed=elapsed,
    )


# --- the client -------------------------------------------------------------------------


@dataclass(slots=True)
class _Host:
    semaphore: threading.Semaphore
    delay: float
    next_start: float = 0.0


@dataclass(slots=True)
class _Robots:
    parser: RobotFileParser | None  # None: everything allowed
    expires: float
    unavailable: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fetcher:
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
            transport = _GuardedTransport(
                allow_private=settings.allow_private_networks,
                max_connections=settings.concurrency,
            )
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # an environment proxy would bypass the SSRF guard
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": _ACCEPT_ENCODING},
        )
        # A crawler carries no state from one article to the next.
        self._client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._global = threading.BoundedSemaphore(settings.concurrency)
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        self._robots: dict[str, _Robots] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        current = _parse_url(url)
        first_origin = _origin(current)
        hop_headers = httpx.Headers(headers)
        hop_headers["Accept-Encoding"] = _ACCEPT_ENCODING  # we can only decode these
        started = 0.0
        deadline_at: float | None = None
        permanent: str | None = None
        leading_permanent = True
        for _ in range(self._settings.max_redirects + 1):
            if respect_robots:
                self._check_robots(current)
            if _origin(current) != first_origin:
                for name in _CROSS_ORIGIN_DROPPED:
                    hop_headers.pop(name, None)
            with self._slot(current.host):
                # The deadline runs from the first request, not from queueing for a slot.
                if deadline_at is None:
                    started = time.monotonic()
                    deadline_at = started + budget.seconds
                with _deadline_scope(deadline_at):
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
            target = _redirect_target(current, location)
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
        with _translated(str(url), deadline_at):
            request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
            return self._client.send(request, stream=True)

    # -- concurrency and politeness ------------------------------------------------------

    def _host(self, host: str) -> _Host:
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = _Host(
                    threading.BoundedSemaphore(self._settings.per_host_concurrency),
                    self._settings.per_host_delay,
                )
                self._hosts[host] = state
            return state

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        """Hold a per-host and a global slot, starting no sooner than the host's delay."""
        state = self._host(host)
        with state.semaphore:
            with self._lock:
                now = time.monotonic()
                start = max(now, state.next_start)
                state.next_start = start + state.delay
            if start > now:
                time.sleep(start - now)
            with self._global:
                with self._lock:
                    # Waiting for the global slot may have pushed our start later.
                    state.next_start = max(state.next_start, time.monotonic() + state.delay)
                yield

    # -- robots.txt ----------------------------------------------------------------------

    def _check_robots(self, url: httpx.URL) -> None:
        key = _origin(url)
        with self._lock:
            entry = self._robots.get(key)
            if entry is None:
                entry = self._robots[key] = _Robots(None, expires=0.0)
        with entry.lock:  # one fetch per origin, however many threads ask
            if entry.expires <= time.monotonic():
                self._load_robots(key, url.host, entry)
            unavailable, parser = entry.unavailable, entry.parser
        if unavailable:
            raise RobotsUnavailable(f"{url}: robots.txt of {key} unavailable, retry later")
        if parser is not None and not parser.can_fetch(self._settings.user_agent, str(url)):
            raise RobotsDisallowed(f"{url}: disallowed by {key}/robots.txt")

    def _load_robots(self, key: str, host: str, entry: _Robots) -> None:
        """Refresh ``entry`` with RFC 9309 semantics.

        4xx (and other permanent failures, e.g. a redirect loop): everything allowed.
        5xx, 429 or unreachable: everything disallowed for a few minutes (the last good
        rules are kept instead, if we have them), surfacing as a transient error.
        """
        now = time.monotonic()
        try:
            response = self._fetch(
                f"{key}/robots.txt",
                {"Accept": "text/plain, */*;q=0.5"},
                respect_robots=False,
                budget=_Budget(
                    min(self._settings.deadline, _ROBOTS_DEADLINE), _ROBOTS_MAX_BYTES, True
                ),
            )
        except BlockedAddress:
            raise
        except PermanentFetchError as exc:
            _log.debug("robots.txt of %s: %s; allowing everything", key, exc)
            entry.parser, entry.unavailable, entry.expires = None, False, now + _ROBOTS_TTL
            return
        except TransientFetchError as exc:
            _log.debug("robots.txt of %s: %s; pausing the host", key, exc)
            if entry.parser is None:  # no earlier rules to fall back on
                entry.unavailable = True
            entry.expires = now + _ROBOTS_RETRY
            return
        parser = RobotFileParser()
        parser.parse(response.body.decode("utf-8", errors="replace").splitlines())
        entry.parser, entry.unavailable, entry.expires = parser, False, now + _ROBOTS_TTL
        crawl_delay = parser.crawl_delay(self._settings.user_agent)
        if crawl_delay is not None:
            state = self._host(host)
            delay = min(float(crawl_delay), _MAX_CRAWL_DELAY)
            with self._lock:
                state.delay = max(self._settings.per_host_delay, delay)
