"""Pages a feed's poll fetches again outside its feed's news: retries and rechecks.

Two kinds of :class:`~connectors.store.Revisit`, kept per feed by the store:

- **retry**: an article page that failed for a reason that may pass (5xx, 429, a timeout,
  an extraction timeout or a crashed worker). Its feed may never list it as new again
  (the next poll is a 304), so the entry itself is kept and planned again by every poll
  of the feed, a bounded number per poll, with exponential backoff and jitter, never
  sooner than the page's Retry-After. Past the give-up horizon (counted from its first
  failure) it is kept and marked given up. A page that fails for good (4xx, robots, not
  HTML, too large, blocked address, no text) leaves the set; one that makes it
  (published, or already stored) leaves it as recovered.
- **recheck**: a newly published article, fetched again at fixed delays after it was
  first seen (``recheck_after``), with a conditional GET, for corrections its feed does
  not announce. Changed content becomes a new revision through the normal path; an
  unchanged page or a 304 is a duplicate. A page gone for good leaves the schedule.

:func:`gather` picks a poll's due revisits; :func:`settle` records what became of them
(and of the feed's new entries) once the poll's articles are safe in the buffer. Both are
called by :meth:`newsflow.pipeline.PollRun.poll_feed`; time comes in as ``now``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from connectors.store import Revisit, RevisitStore
from newsflow.collect import EntryOutcome, entry_key
from newsflow.settings import FeedSettings
from newsflow.summary import PollSummary
from schemas import FeedConfig, FeedEntry

__all__ = ["Revisits", "gather", "retry_wait", "settle"]

_SUCCESS = frozenset({"published", "duplicate", "not_modified"})
# As for feeds: "equal jitter" spreads pages that failed together over 50-100 % of the wait.
_JITTER_LOW = 0.5
_MAX_BACKOFF_EXPONENT = 60


@dataclass(slots=True)
class Revisits:
    """The revisits one poll of one feed fetches, besides the feed's new entries."""

    retries: list[Revisit] = field(default_factory=list)
    rechecks: list[Revisit] = field(default_factory=list)

    @property
    def entries(self) -> list[FeedEntry]:
        return [revisit.entry for revisit in (*self.retries, *self.rechecks)]

    def conditional(self) -> dict[str, dict[str, str]]:
        """Conditional-GET headers of the rechecks, by entry key."""
        headers: dict[str, dict[str, str]] = {}
        for revisit in self.rechecks:
            if revisit.etag:
                headers.setdefault(revisit.key, {})["If-None-Match"] = revisit.etag
            if revisit.last_modified:
                headers.setdefault(revisit.key, {})["If-Modified-Since"] = revisit.last_modified
        return headers


def rechecks_enabled(feed: FeedConfig, settings: FeedSettings) -> bool:
    """Whether new articles of ``feed`` are put on the recheck schedule."""
    return feed.recheck is not False and bool(settings.recheck_after)


def gather(
    feed: FeedConfig,
    planned: Sequence[FeedEntry],
    store: RevisitStore,
    settings: FeedSettings,
    now: datetime,
) -> Revisits:
    """The feed's due retries and rechecks, bounded per poll, minus entries already planned."""
    taken = {entry_key(entry) for entry in planned}
    retries = [
        revisit
        for revisit in store.due_revisits(feed.url, "retry", now, settings.page_retries_per_poll)
        if revisit.key not in taken
    ]
    taken.update(revisit.key for revisit in retries)
    rechecks: list[Revisit] = []
    if rechecks_enabled(feed, settings):
        due = store.due_revisits(feed.url, "recheck", now, settings.rechecks_per_poll)
        rechecks = [revisit for revisit in due if revisit.key not in taken]
    return Revisits(retries=retries, rechecks=rechecks)


def retry_wait(
    attempts: int, retry_after: float | None, settings: FeedSettings, rng: random.Random
) -> float:
    """Seconds before attempt ``attempts + 1`` of a failed page."""
    backoff = min(
        settings.page_retry_max,
        settings.page_retry_base * 2.0 ** min(attempts - 1, _MAX_BACKOFF_EXPONENT),
    )
    wait = backoff * rng.uniform(_JITTER_LOW, 1.0)
    if retry_after is not None and retry_after > 0:
        # The server said when to come back; capped so that a page is tried again within
        # page_retry_max, as a failing feed is within backoff_max.
        wait = max(wait, min(retry_after, settings.page_retry_max))
    return wait


def _next_check(first_seen: datetime, schedule: Sequence[float], now: datetime) -> datetime | None:
    """The first point of the schedule after ``now`` (points missed are skipped)."""
    for delay in schedule:
        moment = first_seen + timedelta(seconds=delay)
        if moment > now:
            return moment
    return None


def settle(
    feed: FeedConfig,
    entries: Sequence[FeedEntry],
    outcomes: Mapping[str, EntryOutcome],
    revisits: Revisits,
    store: RevisitStore,
    settings: FeedSettings,
    now: datetime,
    rng: random.Random,
) -> PollSummary:
    """Record in the store what became of a poll's pages; the retry and recheck counts.

    ``entries`` are every entry the poll collected (new ones and revisits); ``outcomes``
    what :func:`newsflow.collect.collect` reported for them.
    """
    counts = PollSummary()
    by_key = {entry_key(entry): entry for entry in entries}
    # A page that failed before may come back as a new entry (the feed changed) as well as
    # from the due retries: its record is looked up either way.
    known = store.revisits(feed.url, "retry", [k for k in by_key if k in outcomes])
    rechecking = {revisit.key: revisit for revisit in revisits.rechecks}
    schedule = settings.recheck_after if rechecks_enabled(feed, settings) else ()
    put: list[Revisit] = []
    drop_retries: list[str] = []
    drop_rechecks: list[str] = []
    for key, entry in by_key.items():
        outcome = outcomes.get(key)
        if outcome is None:
            continue
        previous = known.get(key)
        recheck = rechecking.get(key)
        if outcome.kind in _SUCCESS:
            if previous is not None:
                drop_retries.append(key)
                counts.recovered += 1
        elif outcome.kind == "retryable" and recheck is None:
            # (A recheck that fails is no lost article: its next check comes anyway.)
            put.append(_failed(feed, key, entry, outcome, previous, settings, now, rng, counts))
        elif previous is not None:  # failed for good: not retried
            drop_retries.append(key)

        if recheck is not None:
            counts.recheck_changed += outcome.kind == "published"
            moment = _next_check(recheck.first_at, schedule, now)
            if outcome.kind == "skipped" or moment is None:
                drop_rechecks.append(key)  # gone for good, or the schedule is done
            else:
                put.append(
                    replace(
                        recheck,
                        attempts=recheck.attempts + 1,
                        next_at=moment,
                        etag=outcome.etag or recheck.etag,
                        last_modified=outcome.last_modified or recheck.last_modified,
                    )
                )
        elif outcome.kind == "published" and outcome.first_seen and schedule:
            first = _next_check(now, schedule, now)
            if first is not None:
                put.append(
                    Revisit(
                        feed_url=feed.url,
                        kind="recheck",
                        key=key,
                        entry=entry,
                        attempts=0,
                        first_at=now,
                        next_at=first,
                        etag=outcome.etag,
                        last_modified=outcome.last_modified,
                    )
                )
    store.drop_revisits(feed.url, "retry", drop_retries)
    store.drop_revisits(feed.url, "recheck", drop_rechecks)
    store.put_revisits(put)
    return counts


def _failed(
    feed: FeedConfig,
    key: str,
    entry: FeedEntry,
    outcome: EntryOutcome,
    previous: Revisit | None,
    settings: FeedSettings,
    now: datetime,
    rng: random.Random,
    counts: PollSummary,
) -> Revisit:
    """The retry record after one more failed attempt (given up past the horizon)."""
    attempts = previous.attempts + 1 if previous is not None else 1
    first = previous.first_at if previous is not None else now
    given_up = (now - first).total_seconds() >= settings.page_retry_give_up
    if given_up and not (previous is not None and previous.given_up):
        counts.given_up += 1
    wait = retry_wait(attempts, outcome.retry_after, settings, rng)
    return Revisit(
        feed_url=feed.url,
        kind="retry",
        key=key,
        entry=previous.entry if previous is not None else entry,
        attempts=attempts,
        first_at=first,
        next_at=now + timedelta(seconds=wait),
        last_error_class=outcome.error_class,
        last_error_message=outcome.error_message,
        given_up=given_up,
    )
