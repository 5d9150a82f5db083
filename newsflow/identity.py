"""The one identity rule: canonical URL -> ``doc_id``; normalised text -> ``content_hash``.

``doc_id`` is the Kafka key and the search store's document id, so every path that needs
an article's identity goes through :func:`canonical_url` and :func:`doc_id` here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from courlan import is_external, normalize_url

__all__ = ["canonical_url", "content_hash", "doc_id", "domain_of"]

_WHITESPACE = re.compile(r"\s+")


def _normalise(url: str) -> str:
    # courlan lowercases scheme and host, drops default ports, strips tracking
    # parameters (utm_*, fbclid, gclid, mc_cid, ref, ...) and sorts the query.
    normal: str = normalize_url(url.strip(), strict=False, trailing_slash=True)
    parts = urlsplit(normal)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


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
