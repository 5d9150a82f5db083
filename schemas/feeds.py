"""Feed configuration (from a feeds file) and feed state (kept in the store)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["FeedConfig", "FeedEntry", "FeedQuality", "FeedState"]


class FeedConfig(BaseModel):
    """One feed as listed in an OPML or TOML/YAML feeds file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Feed URL (RSS or Atom).")
    name: str | None = Field(default=None, description="Display name.")
    enabled: bool = Field(default=True, description="Disabled feeds are never polled.")
    poll_interval: float | None = Field(
        default=None,
        ge=0,
        le=10 * 366 * 86400,
        description="Minimum seconds between polls; default from settings.",
    )
    tags: list[str] = Field(default_factory=list, description="Tags given to its articles.")
    group: str | None = Field(
        default=None,
        description="Its label in metrics (newsflow_feed_polls{group}); default: first tag.",
    )
    language: str | None = Field(default=None, description="Language hint for its articles.")
    respect_robots: bool | None = Field(
        default=None, description="Override the global robots.txt setting for this feed."
    )
    recheck: bool | None = Field(
        default=None,
        description="Re-check new articles for corrections the feed does not announce "
        "(NEWSFLOW_FEED_RECHECK_AFTER); false: never for this feed. Default: on.",
    )


class FeedQuality(BaseModel):
    """Extraction quality counts over the pages a feed's polls extracted (or tried to).

    Counted over stored and skipped pages alike: every page that reached extraction is
    one of ``pages``; the other counts are the pages among them with that flaw.
    """

    model_config = ConfigDict(extra="ignore")

    pages: int = Field(default=0, description="Pages handed to extraction.")
    no_date: int = Field(default=0, description="No published date from page or feed.")
    no_author: int = Field(default=0, description="No author from page or feed.")
    short_text: int = Field(default=0, description="Page text missing or under the minimum.")
    teaser: int = Field(
        default=0,
        description="A teaser or paywalled page: its text much shorter than the feed's "
        "own content or summary, or paywall markers in the page.",
    )
    paywall: int = Field(default=0, description="Paywall markers found in the page.")
    timeout: int = Field(default=0, description="Extraction ran out of time.")
    feed_text: int = Field(default=0, description="Indexed with the feed's content instead.")

    def add(self, counts: Mapping[str, int]) -> FeedQuality:
        """These counts plus ``counts`` (by field name; unknown names are ignored)."""
        return self.model_copy(
            update={
                name: getattr(self, name) + counts.get(name, 0) for name in type(self).model_fields
            }
        )


class FeedState(BaseModel):
    """What newsflow remembers about a feed between polls."""

    model_config = ConfigDict(extra="ignore")

    feed_url: str = Field(description="The feed's URL as configured (the state's key).")
    fetch_url: str | None = Field(
        default=None, description="Where a permanent redirect moved the feed, if anywhere."
    )
    name: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = Field(default=None, description="SHA-256 of the last body.")
    ttl_seconds: float | None = Field(default=None, description="The feed's own <ttl>.")
    last_attempt_at: AwareDatetime | None = None
    last_success_at: AwareDatetime | None = None
    next_poll_at: AwareDatetime | None = None
    consecutive_failures: int = 0
    last_error_class: str | None = None
    last_error_message: str | None = None
    last_status: str | None = Field(
        default=None, description="ok, not_modified, unchanged, failed or bozo."
    )
    bozo_message: str | None = Field(
        default=None, description="Parser complaint about a malformed but usable feed."
    )
    bozo: bool = Field(
        default=False,
        description="The last parsed body was malformed but usable; kept across 304 and "
        "unchanged polls and failures until the feed parses clean.",
    )
    entries_seen: int = Field(default=0, description="Entries in the last parsed body.")
    quality: FeedQuality = Field(
        default_factory=lambda: FeedQuality(),
        description="Extraction quality of the feed's pages, counted over every poll.",
    )
    quality_by_domain: dict[str, FeedQuality] = Field(
        default_factory=dict, description="The same counts per domain of the pages."
    )


class FeedEntry(BaseModel):
    """One entry of a parsed feed: what the feed says about an article."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link: str = Field(description="Absolute article URL as the feed gives it.")
    guid: str | None = Field(default=None, description="The entry's id/guid.")
    title: str | None = None
    summary: str | None = Field(default=None, description="Plain-text summary.")
    authors: list[str] = Field(default_factory=list)
    published_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    tags: list[str] = Field(default_factory=list)
    language: str | None = Field(default=None, description="Feed language (or config hint).")
    image_url: str | None = None
    content: str | None = Field(
        default=None,
        description="Plain text of the entry's full content (content:encoded, Atom "
        "content), when the feed carries one.",
    )
