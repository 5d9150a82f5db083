"""Extraction quality: what each extracted (or skipped) page lacked, and the feed fallback.

Every page that reached extraction is assessed once, stored or skipped: no date, no
author, short text, a teaser or paywalled page, an extraction timeout. The poll adds the
flags of a feed's pages to that feed's :class:`~schemas.FeedQuality` (kept with its feed
state, overall and per domain) and to the run's summary (``quality.<flag>`` counts).

A page is a *teaser* when it carries paywall markers or its text is much shorter than the
full content its own feed gives; then the feed's content is what gets indexed
(``Article.text_source == "feed"``), when the feed has any.
"""

from __future__ import annotations

from collections import Counter

from newsflow.extract import ExtractSkip
from schemas import FeedEntry, FeedState, PageExtraction

__all__ = ["TEASER_RATIO", "add_quality", "assess", "feed_text", "is_teaser"]

TEASER_RATIO = 0.5
"""A page whose text is under this share of the feed's own text is a teaser."""
_SHORT_SKIPS = frozenset({"too_short", "no_text"})


def feed_text(entry: FeedEntry, min_text_chars: int) -> str | None:
    """The feed's full content for ``entry``, if long enough to stand for the article."""
    content = entry.content
    return content if content and len(content) >= max(1, min_text_chars) else None


def is_teaser(page: PageExtraction | ExtractSkip, entry: FeedEntry) -> bool:
    """Paywall markers, or text much shorter than what the feed itself says."""
    if page.paywalled:
        return True
    own = max(len(entry.content or ""), len(entry.summary or ""))
    text = 0 if isinstance(page, ExtractSkip) else len(page.text)
    return own > 0 and text < TEASER_RATIO * own


def assess(
    page: PageExtraction | ExtractSkip,
    entry: FeedEntry,
    *,
    dated: bool,
    authored: bool,
    from_feed: bool,
) -> Counter[str]:
    """The quality flags of one page (``pages`` is always 1).

    ``dated`` / ``authored``: whether the article (or the skipped page) has a date /
    author from page or feed; ``from_feed``: whether its text is the feed's content.
    """
    flags: Counter[str] = Counter(pages=1)
    if isinstance(page, ExtractSkip):
        if page.reason == "timeout":
            flags["timeout"] += 1
        if page.reason in _SHORT_SKIPS:
            flags["short_text"] += 1
            flags["teaser"] += is_teaser(page, entry)
    else:
        flags["teaser"] += is_teaser(page, entry)
    flags["paywall"] += page.paywalled
    flags["no_date"] += not dated
    flags["no_author"] += not authored
    flags["feed_text"] += from_feed
    return +flags


def add_quality(
    state: FeedState, totals: Counter[str], by_domain: dict[str, Counter[str]]
) -> FeedState:
    """``state`` with a poll's quality counts added (overall and per domain)."""
    if not totals:
        return state
    domains = dict(state.quality_by_domain)
    for domain, counts in by_domain.items():
        domains[domain] = domains.get(domain, type(state.quality)()).add(counts)
    return state.model_copy(
        update={"quality": state.quality.add(totals), "quality_by_domain": domains}
    )
