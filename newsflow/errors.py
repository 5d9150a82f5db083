"""The exception hierarchy: one root, with transient and permanent markers.

Library exceptions (httpx, feedparser, kafka-python, elasticsearch) are translated into
these where they enter newsflow, so retry decisions look at one marker class only.
"""

from __future__ import annotations

__all__ = [
    "PermanentFetchError",
    "TransientFetchError",
    "BackendUnavailable",
    "CommitLost",
    "ConfigError",
    "DecodeError",
    "FeedError",
    "FeedParseTimeout",
    "FetchError",
    "Interrupted",
    "NewsflowError",
    "PermanentError",
    "PublishError",
    "RequestRefused",
    "TransientError",
]


class NewsflowError(Exception):
    """Root of every error newsflow raises on purpose."""


class TransientError(NewsflowError):
    """Marker: the same call may succeed later (timeouts, 5xx, 429, broker away)."""


class PermanentError(NewsflowError):
    """Marker: retrying the same call will fail the same way (bad input, 4xx, policy)."""


class RequestRefused(PermanentError):
    """A request refused as a whole for what it carries (too large, malformed, out of range).

    Sent again unchanged it fails again; sent in parts, only the part with the records at
    fault does. The indexer splits a refused batch until those records are alone.
    """


class ConfigError(PermanentError):
    """A settings value or a feeds file is invalid."""


class DecodeError(PermanentError, ValueError):
    """A buffer record that is not a valid article of a supported schema version.

    Permanent: the same bytes never decode; the indexer dead-letters the record.
    """


class FetchError(NewsflowError):
    """An HTTP fetch failed; subclasses of the markers below say whether to retry."""


class TransientFetchError(FetchError, TransientError):
    """Timeouts, connection resets, 5xx and 429 answers."""


class PermanentFetchError(FetchError, PermanentError):
    """Refused by policy (SSRF guard, robots.txt, size cap, scheme) or a 4xx answer."""


class FeedError(PermanentError):
    """A feed body could not be parsed into entries at all."""


class FeedParseTimeout(FeedError):
    """The feed parser ran out of its time limit on a feed body."""


class PublishError(TransientError):
    """The buffer did not acknowledge every published record."""


class BackendUnavailable(TransientError):
    """Kafka or Elasticsearch (or the embedded store) could not be reached."""


class Interrupted(NewsflowError):
    """The run was asked to stop (Ctrl-C); work in flight ended without saving its state."""


class CommitLost(TransientError):
    """An offset commit the buffer refused because the consumer group moved on (rebalance).

    Nothing is lost: the member rejoins at its next poll, and the records it did not
    commit are delivered again (to it or another member) and count as duplicates.
    """
