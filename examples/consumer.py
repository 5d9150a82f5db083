"""Example downstream consumer of newsflow's article topic.

README
======

newsflow publishes one Kafka record per article *revision* to ``news.articles``:

- key: the article's ``doc_id`` (32 hex characters, UTF-8);
- value: the article as JSON, described by ``schemas/article.schema.json``;
- headers: ``schema-version`` (``major.minor``), ``content-type``
  (``application/json``) and ``revision``.

Delivery is at least once and a newer revision of an article replaces an older one, so
a consumer keeps, per ``doc_id``, only the highest ``revision`` it has seen: replays,
duplicates and late older revisions change nothing. This script shows that contract end
to end (see docs/consumers.md for the full rules). It:

1. joins a consumer group (offsets are committed after each processed batch, so a crash
   re-delivers at most one batch: harmless, because processing is idempotent);
2. checks the major version in the ``schema-version`` header and validates the value
   with ``jsonschema`` against the checked-in schema (strictly for the same version,
   ignoring unknown properties for other minors of the same major);
3. keeps the highest revision per ``doc_id`` (here in memory; a real service keeps it
   where it stores the article, e.g. an upsert guarded by ``revision < new revision``);
4. prints one line per new or updated article to stdout, and one line per rejected
   record to stderr.

Run it with newsflow's environment (``.venv/bin/python``) or any Python 3.11+ with
``kafka-python``, ``zstandard`` (the producer compresses with zstd) and ``jsonschema``::

    python examples/consumer.py --bootstrap 127.0.0.1:9092 --group my-service
    python examples/consumer.py --topic news.articles --max-idle 10   # stop when idle

Output: ``<doc_id> r<revision> <published_at> [<source>] <title>``, prefixed with
``updated`` when a newer revision replaced one printed before.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from jsonschema import Draft202012Validator
from kafka import KafkaConsumer

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "article.schema.json"


class Rejected(Exception):
    """A record this consumer cannot use (it would go to the service's own DLQ)."""


class ArticleReader:
    """Checks the schema version header and validates record values."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.version = str(schema["properties"]["schema_version"]["const"])
        self.major = self.version.split(".")[0]
        self._strict = Draft202012Validator(schema)
        # Another minor of the same major may carry optional fields this schema file does
        # not know, and says so in schema_version: check everything else.
        tolerant = copy.deepcopy(dict(schema))
        tolerant["additionalProperties"] = True
        tolerant["properties"]["schema_version"] = {
            "type": "string",
            "pattern": rf"^{self.major}\.[0-9]+$",
        }
        self._tolerant = Draft202012Validator(tolerant)

    def read(self, key: bytes | None, value: bytes | None, headers: Mapping[str, str]) -> Any:
        """The article as a dict, or :class:`Rejected` saying why not."""
        version = headers.get("schema-version")
        if version is None or version.split(".")[0] != self.major:
            raise Rejected(f"schema-version {version!r}: this consumer reads {self.major}.x")
        try:
            article = json.loads(value or b"")
        except ValueError as exc:
            raise Rejected(f"value is not JSON: {exc}") from exc
        validator = self._strict if version == self.version else self._tolerant
        error = next(iter(validator.iter_errors(article)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "value"
            raise Rejected(f"{where}: {error.message}")
        if key is None or key.decode("utf-8", "replace") != article["doc_id"]:
            raise Rejected(f"key {key!r} is not the doc_id {article['doc_id']}")
        return article


class Latest:
    """The highest revision seen per doc_id: what makes processing idempotent."""

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}

    def offer(self, doc_id: str, revision: int) -> str | None:
        """``"new"`` or ``"updated"`` when this revision is news, None when it is not."""
        seen = self._revisions.get(doc_id)
        if seen is not None and revision <= seen:
            return None  # a duplicate or an older revision arriving late
        self._revisions[doc_id] = revision
        return "new" if seen is None else "updated"


def line(article: Mapping[str, Any], change: str) -> str:
    """The line printed for an article."""
    prefix = "updated " if change == "updated" else ""
    published = article.get("published_at") or "undated"
    source = article.get("source") or article["domain"]
    return f"{prefix}{article['doc_id']} r{article['revision']} {published} [{source}] " + str(
        article["title"]
    )


def handle(
    records: Sequence[Any], reader: ArticleReader, latest: Latest, out: TextIO, err: TextIO
) -> dict[str, int]:
    """Process kafka-python ``ConsumerRecord``s; returns counts by outcome."""
    counts = {"printed": 0, "skipped": 0, "rejected": 0}
    for record in records:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or []}
        try:
            article = reader.read(record.key, record.value, headers)
        except Rejected as exc:
            counts["rejected"] += 1
            print(f"rejected {record.topic}/{record.partition}@{record.offset}: {exc}", file=err)
            continue
        change = latest.offer(article["doc_id"], int(article["revision"]))
        if change is None:
            counts["skipped"] += 1
            continue
        counts["printed"] += 1
        print(line(article, change), file=out, flush=True)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port[,...]")
    parser.add_argument("--topic", default="news.articles")
    parser.add_argument("--group", default="newsflow-example-consumer", help="consumer group")
    parser.add_argument("--schema", type=Path, default=SCHEMA_FILE, help="article JSON Schema")
    parser.add_argument(
        "--max-idle", type=float, default=0, help="stop after this many seconds without records"
    )
    args = parser.parse_args(argv)

    reader = ArticleReader(json.loads(args.schema.read_text(encoding="utf-8")))
    latest = Latest()
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    totals = {"printed": 0, "skipped": 0, "rejected": 0}
    idle_since = time.monotonic()
    try:
        while True:
            batches = consumer.poll(timeout_ms=500)
            if not batches:
                if args.max_idle and time.monotonic() - idle_since > args.max_idle:
                    break
                continue
            idle_since = time.monotonic()
            for records in batches.values():
                for outcome, count in handle(
                    records, reader, latest, sys.stdout, sys.stderr
                ).items():
                    totals[outcome] += count
            consumer.commit()  # after processing: a crash re-delivers, never loses
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close(autocommit=False)
    print(" ".join(f"{name}={count}" for name, count in totals.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
