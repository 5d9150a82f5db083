"""Polling feeds: :func:`poll_feed` fetches and parses one feed and returns its new state.

This package is the public face; its private modules each own one part: ``_poll`` (the
polling state machine: conditional GET, outcomes, backoff) and ``_entries`` (feedparser
entries to :class:`~schemas.FeedEntry`, HTML fragments to plain text).
"""

from newsflow.feeds._poll import FeedPoll, FeedStatus, is_due, poll_feed

__all__ = ["FeedPoll", "FeedStatus", "is_due", "poll_feed"]
