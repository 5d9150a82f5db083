"""The contract: every model that crosses a module boundary, and the Kafka payload.

``Article`` is what producers publish and what downstream services consume; its JSON
Schema is generated into ``schemas/article.schema.json`` (``python -m schemas``) and a
test fails when the two drift.
"""

from schemas.article import SCHEMA_VERSION, Article
from schemas.feeds import FeedConfig, FeedEntry, FeedQuality, FeedState
from schemas.pages import PageExtraction

__all__ = [
    "SCHEMA_VERSION",
    "Article",
    "FeedConfig",
    "FeedEntry",
    "FeedQuality",
    "FeedState",
    "PageExtraction",
]
