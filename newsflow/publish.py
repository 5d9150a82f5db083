"""Publish stage: article revisions -> the buffer (Kafka or embedded), keyed by doc_id."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.buffer import Buffer, OutRecord
from schemas import SCHEMA_VERSION, Article

__all__ = ["SCHEMA_HEADER", "encode", "publish"]

SCHEMA_HEADER = "schema-version"
"""Header carrying the ``major.minor`` version of the value's schema."""


def encode(article: Article) -> OutRecord:
    """The record for one revision: key ``doc_id``, JSON value, schema version header."""
    return OutRecord(
        key=article.doc_id,
        value=article.model_dump_json().encode("utf-8"),
        headers={
            SCHEMA_HEADER: SCHEMA_VERSION,
            "content-type": "application/json",
            "revision": str(article.revision),
        },
    )


def publish(buffer: Buffer, topic: str, articles: Sequence[Article]) -> int:
    """Publish and wait for every acknowledgement; raises PublishError otherwise."""
    buffer.publish(topic, [encode(article) for article in articles])
    return len(articles)
