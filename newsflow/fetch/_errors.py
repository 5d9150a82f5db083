"""The fetcher's exception classes, and the translation of httpx/httpcore errors into them.

Every class derives from :mod:`newsflow.errors` (transient or permanent), so callers never
see an httpx or httpcore exception: :func:`translated` turns those into newsflow ones where
they enter, the original chained, and :func:`status_error` turns a final non-2xx answer
into an :class:`HttpStatusError`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from newsflow.errors import FetchError, PermanentFetchError, TransientFetchError

__all__ = [
    "BlockedAddress",
    "BodyTooLarge",
    "HttpStatusError",
    "PermanentHttpError",
    "RobotsDisallowed",
    "RobotsUnavailable",
    "TransientHttpError",
    "status_error",
    "translated",
]

_TRANSIENT_STATUSES = frozenset({408, 429})


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


def status_error(url: str, response: httpx.Response) -> HttpStatusError:
    """The error a final non-2xx, non-304 ``response`` means, with its Retry-After."""
    status = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    if status in _TRANSIENT_STATUSES or 500 <= status <= 599:
        return TransientHttpError(url, status, retry_after)
    return PermanentHttpError(url, status, retry_after)


@contextmanager
def translated(url: str, deadline: float | None) -> Iterator[None]:
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
