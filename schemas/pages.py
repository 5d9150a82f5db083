"""What the extraction stage hands to the publishing stage."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["PageExtraction"]


class PageExtraction(BaseModel):
    """Text and metadata trafilatura found in one article page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description="trafilatura.extract() output: no comments, tables kept.")
    title: str | None = None
    authors: list[str] = Field(default_factory=list)
    published_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    site_name: str | None = None
    language: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list, description="Categories and tags.")
    image_url: str | None = None
    canonical_url: str | None = Field(default=None, description="The page's rel=canonical.")
    paywalled: bool = Field(default=False, description="Paywall markers found in the page.")
    fingerprint: str | None = Field(
        default=None, description="newsflow.stories.fingerprint() of the text."
    )
