"""The one HTTP client newsflow uses for feeds, robots.txt and article pages.

:class:`Fetcher` owns everything between a URL and a decoded body: the SSRF guard (checked
on the resolved address at connect time, so on every redirect hop), manual redirects, an
overall deadline per request, a body cap counted after decompression, charset detection,
robots.txt, and global / per-host concurrency with a politeness delay. httpx and httpcore
exceptions are translated here into :mod:`newsflow.errors` classes; ``isinstance(exc,
TransientError)`` tells whether a retry may help.

This package is the public face; its private modules each own one part:
``_errors`` (exception classes, translation of httpx/httpcore errors and statuses),
``_guard`` (SSRF guard: network backend and transport), ``_urls`` (which URLs are fetched),
``_decode`` (decompression, body cap, charset), ``_robots`` (robots.txt),
``_politeness`` (concurrency limits and per-host delay), ``_models`` (:class:`FetchResponse`)
and ``_client`` (:class:`Fetcher`: redirects, deadline, the final answer).
"""

from newsflow.fetch._client import Fetcher
from newsflow.fetch._errors import (
    BlockedAddress,
    BodyTooLarge,
    HttpStatusError,
    PermanentHttpError,
    RobotsDisallowed,
    RobotsUnavailable,
    TransientHttpError,
)
from newsflow.fetch._models import FetchResponse

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
