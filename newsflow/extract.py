"""Extraction stage: article HTML -> text and metadata, in a pool of worker processes.

The text is exactly what ``trafilatura.extract(html, include_comments=False,
include_tables=True)`` returns for the page; metadata comes from the same trafilatura
pass. Extraction is CPU-bound, so it runs in a process pool that lives as long as the
:class:`Extractor` (one per flow run, never one per article). Each page runs under a
time limit and each worker under an address-space limit: a pathological page costs its
worker, never the run.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import re
import resource
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pebble

from newsflow.settings import ExtractSettings
from newsflow.stories import fingerprint
from schemas import PageExtraction

__all__ = [
    "DATE_PARAMS",
    "ExtractSkip",
    "Extractor",
    "Page",
    "PendingExtraction",
    "extract_page",
    "published_date",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Metadata trafilatura does not report: the page's "updated" stamp and its language.
_MODIFIED_META = re.compile(
    r"<meta\b[^>]*?(?:property|name|itemprop)\s*=\s*[\"']"
    r"(?:article:modified_time|og:updated_time|dateModified|last-modified)[\"'][^>]*>",
    re.IGNORECASE,
)
_CONTENT_ATTR = re.compile(r"content\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_MODIFIED_JSONLD = re.compile(r"\"dateModified\"\s*:\s*\"([^\"]+)\"")
_HTML_LANG = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)
# htmldate's parameters, chosen by measurement on a real date-labelled set (htmldate's own
# evaluation pages) and the synthetic one of tests/fixtures/dates (bench/dates.py,
# docs/dates.md). trafilatura's metadata pass runs the precise search with them on the
# whole page; its date is kept when the page's <head> or URL states that day. Otherwise
# htmldate runs again on the page without its sidebars, navigation, footer and comments,
# whose dates (related stories, copyright years, comment stamps) are not the article's:
# the precise search, then the extensive one (dates in free text) when that finds nothing.
# The bounds on the chosen date (not before 1990, not after the fetch) are enforced in
# collect.build_article.
DATE_PARAMS: dict[str, Any] = {
    "original_date": True,
    "extensive_search": False,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    "min_date": "1990-01-01",
}
_EXTENSIVE_DATE_PARAMS: dict[str, Any] = {**DATE_PARAMS, "extensive_search": True}
# An <aside> or <footer> inside the <article> is the article's own: its byline, its date.
_NOT_THE_ARTICLE = (
    "//aside[not(ancestor::article)]|//nav|//footer[not(ancestor::article)]"
    "|//*[@id='comments']|//section[contains(@class,'comment')]"
    "|//div[contains(@class,'comments')]|//*[contains(@class,'related')]"
    "|//*[contains(@class,'copyright')]"
)


@dataclass(frozen=True, slots=True)
class Page:
    """An article page to extract: its HTML and the URL it was fetched from."""

    url: str
    html: str


@dataclass(frozen=True, slots=True)
class ExtractSkip:
    """A page that yielded no article, and why (a counted outcome, not an error)."""

    reason: str
    """``too_short``, ``no_text``, ``timeout``, ``memory``, ``worker_crashed`` or ``error``."""
    detail: str = ""
    paywalled: bool = False
    """Paywall markers found in the page (for ``too_short`` and ``no_text``)."""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _modified_time(html: str) -> datetime | None:
    head = html[:200_000]
    for tag in _MODIFIED_META.finditer(head):
        content = _CONTENT_ATTR.search(tag.group(0))
        if content and (moment := _parse_time(content.group(1))):
            return moment
    match = _MODIFIED_JSONLD.search(head)
    return _parse_time(match.group(1)) if match else None


_HEAD_END = re.compile(r"</head\s*>|<body\b", re.IGNORECASE)


def _stated_by_head_or_url(html: str, url: str | None, day: str) -> bool:
    """Whether ``day`` (``YYYY-MM-DD``) is written in the page's <head> or its URL.

    Meta tags and JSON-LD in the head describe the page itself; a sidebar, a comment or
    a footer cannot put a date there.
    """
    end = _HEAD_END.search(html, 0, 500_000)
    if end is not None and html.find(day, 0, end.start()) >= 0:
        return True
    return url is not None and (day in url or day.replace("-", "/") in url)


def published_date(html: str, url: str | None, found: str | None = None) -> str | None:
    """The page's published date.

    ``found`` is the date trafilatura's metadata pass found with :data:`DATE_PARAMS`; it
    stands when the page's head or URL states that day. Otherwise htmldate looks again,
    on the article part of the page only.
    """
    if found and _stated_by_head_or_url(html, url, found[:10]):
        return found
    from htmldate import find_date
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        return None
    for element in tree.xpath(_NOT_THE_ARTICLE):
        if element.getparent() is not None:
            element.drop_tree()
    date: str | None = find_date(tree, url=url, **DATE_PARAMS)
    if date is None:
        date = find_date(tree, url=url, **_EXTENSIVE_DATE_PARAMS)
    return date


# Markers of a page that shows subscribers more than it shows us: schema.org's
# isAccessibleForFree, and the class names and phrases of common metering scripts. Each
# is looked for in a way that stays linear in the page's size (a regex looking for a
# word inside every class attribute cost ~6 ms on a 100 KB page).
_NOT_FREE = re.compile(r"[\"']isaccessibleforfree[\"']\s*:\s*[\"']?false")
_CLASS_ATTR = re.compile(r"\bclass\s*=\s*[\"']([^\"']*)[\"']")
_PAYWALL_CLASSES = ("paywall", "subscriber-only", "premium-content", "meteredcontent")
_PAYWALL_CLASS = re.compile(r"\b(?:paywall|subscriber-only|premium-content|meteredcontent)\b")
_PAYWALL_PHRASE = re.compile(
    r"subscribe (?:now )?to (?:continue|keep) reading"
    r"|this (?:article|content) is (?:only )?(?:available )?(?:for|to) subscribers"
)


def _paywalled(html: str) -> bool:
    head = html[:500_000].lower()
    if "isaccessibleforfree" in head and _NOT_FREE.search(head):
        return True
    if any(name in head for name in _PAYWALL_CLASSES) and any(
        _PAYWALL_CLASS.search(value) for value in _CLASS_ATTR.findall(head)
    ):
        return True
    return "subscribe" in head and _PAYWALL_PHRASE.search(head) is not None


def _split_authors(author: str | None) -> list[str]:
    if not author:
        return []
    return [name.strip() for name in author.split(";") if name.strip()]


def _tags(values: list[str]) -> list[str]:
    # trafilatura reports a keywords meta tag as one comma-joined string.
    split = (part.strip() for value in values for part in value.split(","))
    return list(dict.fromkeys(tag for tag in split if tag))


def extract_page(html: str, url: str, min_text_chars: int) -> PageExtraction | ExtractSkip:
    """Extract one page in this process (the pool's workers run this)."""
    from trafilatura import bare_extraction
    from trafilatura.utils import normalize_unicode
    from trafilatura.xml import xmltotxt

    try:
        document: Any = bare_extraction(
            html,
            url=url,
            include_comments=False,
            include_tables=True,
            with_metadata=True,
            date_extraction_params=DATE_PARAMS,
        )
    except MemoryError:
        return ExtractSkip("memory", "page exceeded the worker's memory limit")
    except Exception as exc:  # lxml/trafilatura errors may not pickle: report them here
        message = f"{type(exc).__name__}: {exc}"
        reason = "memory" if "memory" in message.lower() else "error"
        return ExtractSkip(reason, message[:500])
    if document is None or document.body is None:
        return ExtractSkip("no_text", "trafilatura found no main text", _paywalled(html))
    # The same conversion trafilatura.extract() applies to the body for plain text.
    text: str = normalize_unicode(xmltotxt(document.body, False))
    if len(text) < min_text_chars:
        return ExtractSkip(
            "too_short", f"{len(text)} characters < {min_text_chars}", _paywalled(html)
        )
    lang = _HTML_LANG.search(html[:5000])
    return PageExtraction(
        text=text,
        title=document.title or None,
        authors=_split_authors(document.author),
        published_at=_parse_time(published_date(html, url, document.date)),
        updated_at=_modified_time(html),
        site_name=document.sitename or None,
        language=(document.language or (lang.group(1) if lang else None) or "").lower() or None,
        description=document.description or None,
        tags=_tags([*(document.categories or []), *(document.tags or [])]),
        image_url=document.image or None,
        canonical_url=document.url if document.url and document.url != url else None,
        paywalled=_paywalled(html),
        fingerprint=fingerprint(text),  # here, in the worker: CPU spread like extraction
    )


def _init_worker(memory_mb: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * 1024 * 1024
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    import trafilatura  # noqa: F401  (import once per worker, not per page)


@dataclass(frozen=True, slots=True)
class PendingExtraction:
    """A page handed to the pool by :meth:`Extractor.submit`; redeem with ``result``.

    Only the page's URL is kept here: its HTML went to the worker, and holding it until
    the result is read would keep every page of a feed in memory at once.
    """

    url: str
    future: concurrent.futures.Future[PageExtraction | ExtractSkip]


class Extractor:
    """A pool of extraction workers; use as a context manager around a whole run.

    Pages can be handed over one at a time as they are fetched (:meth:`submit`), from
    any thread: the pool then extracts while the next pages download. At most
    ``backlog`` pages wait for a worker; :meth:`submit` blocks beyond that, which holds
    fetching back to the pace of extraction and bounds the HTML held in memory.
    """

    def __init__(self, settings: ExtractSettings, *, backlog: int | None = None) -> None:
        self._settings = settings
        # Running plus waiting pages: enough that a worker never waits for a download.
        self._slots = threading.BoundedSemaphore(
            backlog if backlog is not None else 4 * settings.workers
        )
        # forkserver: the parent runs threads (Prefect, HTTP), which fork does not survive.
        self._pool = pebble.ProcessPool(
            max_workers=settings.workers,
            initializer=_init_worker,
            initargs=(settings.page_memory_mb,),
            context=multiprocessing.get_context("forkserver"),
        )

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def min_text_chars(self) -> int:
        """Shortest text an extracted page may have."""
        return self._settings.min_text_chars

    def submit(self, page: Page) -> PendingExtraction:
        """Hand ``page`` to the pool (waiting while the backlog is full)."""
        self._slots.acquire()
        try:
            future = self._pool.schedule(
                extract_page,
                args=(page.html, page.url, self._settings.min_text_chars),
                timeout=self._settings.page_timeout,
            )
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _done: self._slots.release())
        return PendingExtraction(page.url, future)

    def result(self, pending: PendingExtraction) -> PageExtraction | ExtractSkip:
        """The extraction of a submitted page, or why it yielded no article."""
        return self._outcome(pending.url, pending.future)

    def extract_many(
        self, pages: Sequence[Page], on_done: Callable[[], None] | None = None
    ) -> list[PageExtraction | ExtractSkip]:
        """Extract pages in parallel; results in input order."""
        results: list[PageExtraction | ExtractSkip] = []
        pending: list[PendingExtraction] = []
        for page in pages:
            pending.append(self.submit(page))
        for item in pending:
            results.append(self.result(item))
            if on_done is not None:
                on_done()
        return results

    def _outcome(
        self, url: str, future: concurrent.futures.Future[PageExtraction | ExtractSkip]
    ) -> PageExtraction | ExtractSkip:
        try:
            return future.result()
        except concurrent.futures.TimeoutError:
            logger.warning("extraction timed out url=%s", url)
            return ExtractSkip("timeout", f"over {self._settings.page_timeout:g} s")
        except pebble.ProcessExpired as exc:
            logger.warning("extraction worker died url=%s exitcode=%s", url, exc.exitcode)
            return ExtractSkip("worker_crashed", f"worker exit code {exc.exitcode}")
        except MemoryError:
            return ExtractSkip("memory", "page exceeded the worker's memory limit")
        except Exception as exc:  # a trafilatura bug on one page must not end the run
            logger.warning("extraction failed url=%s error=%r", url, exc)
            return ExtractSkip("error", f"{type(exc).__name__}: {exc}")

    def run(self, fn: Callable[..., _T], args: tuple[Any, ...], timeout: float) -> _T:
        """``fn(*args)`` in a worker, under the pool's memory limit and ``timeout`` seconds.

        For other parsers of outside bytes (feeds). ``fn`` must be importable by name and
        its arguments and result picklable. Raises TimeoutError past ``timeout`` (the
        worker is replaced), ChildProcessError if the worker died, or what ``fn`` raised.
        """
        future: concurrent.futures.Future[_T] = self._pool.schedule(fn, args=args, timeout=timeout)
        try:
            return future.result()
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"over {timeout:g} s") from None
        except pebble.ProcessExpired as exc:
            raise ChildProcessError(f"worker exit code {exc.exitcode}") from None

    def close(self) -> None:
        """Stop the workers."""
        self._pool.close()  # type: ignore[no-untyped-call]
        self._pool.join()
