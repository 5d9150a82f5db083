"""Article revisions for cluster tests and the scaling bench, and the loss/dup count."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch, helpers

from newsflow.identity import content_hash, doc_id
from schemas import Article

_BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_TEXT = "The council met on Tuesday to discuss the harbour plans and the new tram line. " * 12


def article(run: str, number: int, revision: int = 0) -> Article:
    """Article ``number`` of ``run``; a higher ``revision`` is a newer edit of it."""
    url = f"https://news{number % 7}.example.com/{run}/story-{number}.html"
    moment = _BASE + timedelta(minutes=number)
    updated = moment + timedelta(hours=revision)
    text = f"{_TEXT} Revision {revision}."
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(updated),
        url=url,
        source_url=url,
        title=f"Story {number} ({run}) rev {revision}",
        text=text,
        authors=["Jane Doe"],
        published_at=moment,
        updated_at=updated if revision else None,
        fetched_at=updated,
        language="en",
        source="Example News",
        domain=f"news{number % 7}.example.com",
        feed_url=f"https://news{number % 7}.example.com/feed.xml",
        tags=["cluster"],
        content_hash=content_hash(text),
    )


@dataclass(frozen=True)
class Tally:
    """What the articles index holds: ``_id`` -> (url, revision) of every document."""

    docs: dict[str, tuple[str, int]]

    def lost(self, acknowledged: set[str]) -> set[str]:
        return acknowledged - set(self.docs)

    @property
    def duplicates(self) -> int:
        """Documents minus distinct canonical URLs."""
        return len(self.docs) - len({url for url, _ in self.docs.values()})


def tally(urls: str, alias: str) -> Tally:
    client = Elasticsearch(urls.split(","), request_timeout=30)
    try:
        client.indices.refresh(index=alias)
        hits: Iterable[dict[str, Any]] = helpers.scan(
            client, index=alias, source_includes=["url", "revision"]
        )
        return Tally({h["_id"]: (h["_source"]["url"], int(h["_source"]["revision"])) for h in hits})
    finally:
        client.close()
