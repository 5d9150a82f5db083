"""Which URLs the fetcher requests: http(s) only, a valid host and port; and their origin."""

from __future__ import annotations

import httpx

from newsflow.errors import PermanentFetchError

__all__ = ["origin", "parse_url", "redirect_target"]


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """``url`` parsed, or a :class:`PermanentFetchError` if it is not one we fetch."""
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


def origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url``."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect from ``current`` to ``location`` leads, checked like any URL."""
    try:
        target = current.join(location)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise PermanentFetchError(f"{current}: bad redirect {location!r}: {exc}") from exc
    return parse_url(target)
