"""The article record: Kafka value, store document, downstream contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = ["SCHEMA_VERSION", "Article"]

SCHEMA_VERSION = "1.2"
"""``major.minor``: minors only add optional fields; a new major is a new topic."""


class Article(BaseModel):
    """One revision of one article, identified by ``doc_id``.

    Consumers must be idempotent on ``(doc_id, revision)``: delivery is at least once, and
    a higher ``revision`` of the same ``doc_id`` supersedes a lower one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="Article")

    schema_version: Literal["1.2"] = Field(
        default="1.2", description="Version of this schema (major.minor)."
    )
    doc_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="Hash of the canonical URL; the Kafka key and the search store's id.",
    )
    revision: int = Field(
        ge=0,
        description="Microseconds since the epoch at which this content was observed; "
        "the newest revision wins.",
    )
    url: str = Field(description="Canonical URL of the article.")
    source_url: str = Field(description="The link as the feed gave it.")
    alias_ids: list[str] = Field(
        default_factory=list,
        description="doc_ids of other URLs known for this article (e.g. the feed link "
        "when the page's canonical URL differs).",
    )
    title: str = Field(description="Headline.")
    text: str = Field(description="Main text, as trafilatura extracts it (no comments).")
    summary: str | None = Field(default=None, description="Description or feed summary.")
    authors: list[str] = Field(default_factory=list, description="Bylines, one per person.")
    published_at: AwareDatetime | None = Field(default=None, description="First published.")
    updated_at: AwareDatetime | None = Field(
        default=None, description="Last updated, when the page or feed says so."
    )
    fetched_at: AwareDatetime = Field(description="When newsflow fetched the page.")
    language: str | None = Field(default=None, description="ISO 639-1 code, e.g. 'en'.")
    source: str | None = Field(default=None, description="Site name of the publisher.")
    domain: str = Field(description="Host name of the canonical URL, without 'www.'.")
    feed_url: str = Field(description="Feed the article was found in.")
    feed_name: str | None = Field(default=None, description="Name of that feed.")
    tags: list[str] = Field(default_factory=list, description="Categories and tags.")
    image_url: str | None = Field(default=None, description="Main image.")
    text_source: Literal["page", "feed"] | None = Field(
        default=None,
        description="Where ``text`` came from: the article page, or the feed's own full "
        "content when the page was a teaser or paywalled (absent in older records: page).",
    )
    content_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the normalised text."
    )
    # 1.2: near-duplicates (docs/stories.md). The producer sets fingerprint and
    # syndicated_from; the indexer sets the story fields in the store (absent on the topic).
    fingerprint: str | None = Field(
        default=None,
        description="Content fingerprint of the text for near-duplicate detection: "
        "'bk1:<shingles>:<base64>', a bottom-k MinHash of its distinct word 4-shingles "
        "(the 128 smallest XXH3-64 hashes, uint64 little-endian, ascending). Null when "
        "the text is too short to fingerprint.",
    )
    syndicated_from: str | None = Field(
        default=None,
        description="The page's rel=canonical when it names a URL on another site (the "
        "original of a syndicated copy); the article joins that URL's story.",
    )
    story_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="Set by the indexer: doc_id of the article that defines this story "
        "(the earliest of its near-duplicates). Null on the Kafka topic.",
    )
    near_duplicate_of: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="Set by the indexer: doc_id of the stored article this one was found "
        "to copy; null for the article that defines its story.",
    )
    story_similarity: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Set by the indexer: estimated similarity to near_duplicate_of "
        "(share of the shorter text's shingles found in the other; 1.0 for a declared "
        "rel=canonical).",
    )
    story_started_at: AwareDatetime | None = Field(
        default=None,
        description="Set by the indexer: published_at (else fetched_at) of the article "
        "that defines the story.",
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _read_older_minors(cls, value: object) -> object:
        # A record of an older minor (1.0, 1.1) is a valid current one without the newer
        # fields: read it as the current minor.
        if isinstance(value, str) and value.split(".")[0] == SCHEMA_VERSION.split(".")[0]:
            return SCHEMA_VERSION
        return value

    @staticmethod
    def revision_of(moment: datetime) -> int:
        """The revision number of content observed at ``moment``."""
        return int(moment.timestamp() * 1_000_000)
