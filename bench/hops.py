"""The cheap hops between stages, per article: JSON encode/decode and zstd levels.

    .venv/bin/python -m bench.hops

Builds real article revisions from the bundled pages (the test fixtures and the demo
site: distinct articles, as a topic holds them), then measures the CPU time per article
of encoding (pydantic's ``model_dump_json`` against orjson), decoding (pydantic's
``model_validate_json`` against orjson + ``model_validate``) and zstd compression of the
whole set at levels 1, 3, 6 and 9 (kafka-python compresses zstd batches at level 3), with
the compression ratio. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson
import zstandard

from newsflow.collect import build_article
from newsflow.extract import ExtractSkip, extract_page
from schemas import Article, FeedConfig, FeedEntry

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "tests" / "fixtures" / "site", ROOT / "newsflow" / "demo" / "site"]


def _articles() -> list[Article]:
    feed = FeedConfig(url="http://bench.example/feed.rss")
    articles = []
    for number, path in enumerate(p for root in PAGES for p in sorted(root.rglob("*.html"))):
        url = f"http://bench.example/{number}/{path.name}"
        page = extract_page(path.read_text(encoding="utf-8"), url, 0)
        if not isinstance(page, ExtractSkip):
            articles.append(build_article(feed, FeedEntry(link=url), url, page, datetime.now(UTC)))
    return articles


def _cpu_per_item(work: Callable[[], object], items: int, repeat: int = 20) -> float:
    started = time.process_time()
    for _ in range(repeat):
        work()
    return (time.process_time() - started) / repeat / items


def main() -> None:
    articles = _articles()
    blobs = [a.model_dump_json().encode() for a in articles]
    n = len(articles)
    print(f"{n} distinct articles, {sum(map(len, blobs)) // n} bytes of JSON each on average")
    rows = {
        "encode: pydantic model_dump_json": lambda: [a.model_dump_json() for a in articles],
        "encode: orjson.dumps(model_dump)": lambda: [
            orjson.dumps(a.model_dump(mode="json")) for a in articles
        ],
        "decode: pydantic model_validate_json": lambda: [
            Article.model_validate_json(b) for b in blobs
        ],
        "decode: orjson.loads + model_validate": lambda: [
            Article.model_validate(orjson.loads(b)) for b in blobs
        ],
    }
    for label, work in rows.items():
        print(f"{label:<40} {_cpu_per_item(work, n) * 1e6:7.1f} µs/article")
    batch = b"".join(blobs)
    for level in (1, 3, 6, 9):
        compressor = zstandard.ZstdCompressor(level=level)
        cost = _cpu_per_item(partial(compressor.compress, batch), n)
        ratio = len(batch) / len(compressor.compress(batch))
        print(f"zstd level {level}: ratio {ratio:4.2f}, {cost * 1e6:6.1f} µs/article")


if __name__ == "__main__":
    main()
