"""The one identity rule: canonical URL -> ``doc_id``; normalised text -> ``content_hash``.

``doc_id`` is the Kafka key and the search store's document id, so every path that needs
an article's identity goes through :func:`canonical_url` and :func:`doc_id` here. Feeds
are told apart by :func:`url_key`, the same comparison rule without courlan's cleaning.
"Same site" (:func:`site_of`) is the registrable domain by the Public Suffix List,
private suffixes included, so tenants of ``blogspot.com`` or ``github.io`` are sites of
their own; the list is tldextract's bundled snapshot, never downloaded at run time.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

import tldextract
from courlan import normalize_url

__all__ = [
    "canonical_url",
    "content_hash",
    "doc_id",
    "domain_of",
    "elsewhere_canonical",
    "site_of",
    "url_key",
]

_WHITESPACE = re.compile(r"\s+")
# suffix_list_urls=(): the snapshot shipped with tldextract, no fetch, no cache directory.
_PSL = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


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


def site_of(url: str) -> str:
    """The site a URL belongs to: its registrable domain by the Public Suffix List.

    ``news.bbc.co.uk`` -> ``bbc.co.uk``; ``foo.blogspot.com`` -> ``foo.blogspot.com`` (a
    private suffix: each tenant is a site). A host with no public suffix (an IP address,
    ``localhost``) is its own site.
    """
    host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    registrable = _PSL.extract_str(host).top_domain_under_public_suffix
    return registrable or host


def canonical_url(link: str, page_canonical: str | None = None) -> str:
    """The canonical form of an article URL.

    The page's own ``rel=canonical`` wins when it points to the same site
    (:func:`site_of`) as ``link``. A canonical on another site never takes over the
    ``doc_id`` (syndication partners, other tenants of a shared host and spam alike); see
    :func:`elsewhere_canonical` for what it is still good for.
    """
    base = _normalise(link)
    if page_canonical and page_canonical.startswith(("http://", "https://")):
        candidate = _normalise(page_canonical)
        if site_of(candidate) == site_of(base):
            return candidate
    return base


def elsewhere_canonical(link: str, page_canonical: str | None) -> str | None:
    """The page's ``rel=canonical`` when it names another site: the original of a copy.

    Normalised like :func:`canonical_url`; ``None`` when there is no absolute canonical
    or it is on the same site (then it is the article's own URL).
    """
    if not page_canonical or not page_canonical.startswith(("http://", "https://")):
        return None
    candidate = _normalise(page_canonical)
    return candidate if site_of(candidate) != site_of(_normalise(link)) else None


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
