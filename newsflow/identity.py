"""The one identity rule: canonical URL -> ``doc_id``; normalised text -> ``content_hash``.

``doc_id`` is the Kafka key and the search store's document id, so every path that needs
an article's identity goes through :func:`canonical_url` and :func:`doc_id` here. Feeds
are told apart by :func:`url_key`, the same comparison rule without courlan's cleaning.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from courlan import is_external, normalize_url

__all__ = ["canonical_url", "content_hash", "doc_id", "domain_of", "url_key"]

_WHITESPACE = re.compile(r"\s+")


def url_key(url: str) -> str:
    """The key under which two spellings of one URL compare equal.

    The rule: surrounding whitespace is stripped, the scheme and the whole authority
    (host, port, userinfo) are lowercased, an empty path reads as ``/`` and the fragment
    is dropped. Path and query are kept exactly as written (their case, order and
    parameters matter to the server). So ``HTTPS://News.Example.com?a=1#top`` and
    ``https://news.example.com/?a=1`` share a key, while ``?a=1&b=2`` and ``?b=2&a=1``
    do not.

    Feeds files use it as is to find a feed listed twice; :func:`canonical_url` applies it
    after courlan's cleaning, which is what makes tracking variants of an article one.
    """
    parts = urlsplit(url.strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def _normalise(url: str) -> str:
    # courlan lowercases scheme and host, drops default ports, strips tracking
    # parameters (utm_*, fbclid, gclid, mc_cid, ref, ...) and sorts the query.
    return url_key(normalize_url(url.strip(), strict=False, trailing_slash=True))


def canonical_url(link: str, page_canonical: str | None = None) -> str:
    """The canonical form of an article URL.

    The page's own ``rel=canonical`` wins when it points to the same site as ``link``
    (a canonical on another site is ignored: syndication partners and spam alike).
    """
    base = _normalise(link)
    if page_canonical and page_canonical.startswith(("http://", "https://")):
        candidate = _normalise(page_canonical)
        if not is_external(candidate, base, ignore_suffix=False):
            return candidate
    return base


def doc_id(canonical: str) -> str:
    """Stable 128-bit hex id of a canonical URL (pass the output of :func:`canonical_url`)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def content_hash(text: str) -> str:
    """SHA-256 of the text with Unicode and whitespace differences normalised away."""
    normal = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def domain_of(url: str) -> str:
    """Host name of ``url`` without a leading ``www.``."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")
