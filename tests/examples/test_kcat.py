"""Non-newsflow clients read the topic: kcat (librdkafka, not Python) and examples/consumer.py.

kcat comes from the Debian package ``kafkacat`` (binary ``kcat``, older releases
``kafkacat``); when it is missing the test fails and says how to install it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connectors.kafka import KafkaBuffer
from newsflow.identity import doc_id
from newsflow.publish import SCHEMA_HEADER, encode, publish
from newsflow.settings import Settings
from schemas import SCHEMA_VERSION, Article
from schemas.__main__ import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "consumer.py"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newsflow_example_consumer", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kcat() -> str:
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found is None:
        pytest.fail(
            "kcat is not installed: `apt-get install -y kafkacat` (Debian/Ubuntu; binary "
            "kcat or kafkacat) or `brew install kcat`. This test needs a non-Python client.",
            pytrace=False,
        )
    return found


def _revisions(article: Article) -> list[Article]:
    """Publish order: newer revision, an older one arriving late, the newer one again, and
    another article."""
    newer = article.model_copy(
        update={"revision": article.revision + 60_000_000, "title": article.title + " (updated)"}
    )
    other_url = "https://news.example.com/world/summit.html"
    other = article.model_copy(
        update={"doc_id": doc_id(other_url), "url": other_url, "source_url": other_url}
    )
    return [newer, article, newer, other]


@pytest.fixture
def published(stack_env: str, sample_article: Article) -> tuple[str, str, list[Article]]:
    settings = Settings().kafka
    assert settings.bootstrap_servers
    articles = _revisions(sample_article)
    buffer = KafkaBuffer(settings)
    try:
        buffer.ensure_topics([settings.topic])
        publish(buffer, settings.topic, articles)
    finally:
        buffer.close()
    return settings.bootstrap_servers, settings.topic, articles


@pytest.mark.integration
def test_kcat_reads_keys_values_and_headers_as_the_contract_says(
    published: tuple[str, str, list[Article]],
) -> None:
    kcat = _kcat()
    bootstrap, topic, articles = published
    run = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert len(records) == len(articles), run.stdout

    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    seen: list[tuple[str, int]] = []
    for record in records:
        payload = json.loads(record["payload"])
        assert list(validator.iter_errors(payload)) == []
        assert record["key"] == payload["doc_id"]
        names, values = record["headers"][0::2], record["headers"][1::2]
        headers: dict[str, Any] = dict(zip(names, values, strict=True))
        assert headers == {
            SCHEMA_HEADER: SCHEMA_VERSION,
            "content-type": "application/json",
            "revision": str(payload["revision"]),
        }
        assert payload == json.loads(encode(Article.model_validate(payload)).value)
        seen.append((record["key"], payload["revision"]))
    assert sorted(seen) == sorted((a.doc_id, a.revision) for a in articles)

    # Per-key order: every revision of one doc_id sits in one partition, in publish order.
    first = articles[0].doc_id
    same_key = sorted((r for r in records if r["key"] == first), key=lambda r: r["offset"])
    assert len({r["partition"] for r in same_key}) == 1
    assert [json.loads(r["payload"])["revision"] for r in same_key] == [
        a.revision for a in articles if a.doc_id == first
    ]


@pytest.mark.integration
def test_the_example_consumer_prints_each_article_once_at_its_newest_revision(
    published: tuple[str, str, list[Article]],
) -> None:
    bootstrap, topic, articles = published
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", bootstrap, "--topic", topic]
        + ["--group", f"example-{uuid.uuid4().hex[:8]}", "--max-idle", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    newer, _, _, other = articles
    assert sorted(run.stdout.splitlines()) == sorted(
        f"{a.doc_id} r{a.revision} {a.published_at.isoformat().replace('+00:00', 'Z')} "
        f"[{a.source}] {a.title}"
        for a in (newer, other)
        if a.published_at
    )
    assert run.stderr.splitlines()[-1] == "printed=2 skipped=2 rejected=0"


# -- the example's logic, without Kafka ---------------------------------------------


def _record(article: dict[str, Any], headers: dict[str, str], key: str | None = None) -> Any:
    return SimpleNamespace(
        topic="t",
        partition=0,
        offset=0,
        key=(key if key is not None else article["doc_id"]).encode(),
        value=json.dumps(article).encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def test_the_example_rejects_what_the_contract_forbids(sample_article: Article) -> None:
    example = _example()
    good = json.loads(sample_article.model_dump_json())
    headers = dict(encode(sample_article).headers)
    bad_id = {**good, "doc_id": "NOT-HEX"}
    cases = [
        _record(good, {**headers, SCHEMA_HEADER: "2.0"}),  # another major
        _record({**good, "surprise": 1}, headers),  # unknown field, same version
        _record(bad_id, headers),  # pattern
        _record(good, headers, key="someone-else"),  # key is not the doc_id
    ]
    err = io.StringIO()
    counts = example.handle(
        cases, example.ArticleReader(SCHEMA), example.Latest(), io.StringIO(), err
    )
    assert counts == {"printed": 0, "skipped": 0, "rejected": 4}, err.getvalue()


def test_the_example_accepts_a_newer_minor_with_an_unknown_optional_field(
    sample_article: Article,
) -> None:
    example = _example()
    later = {**json.loads(sample_article.model_dump_json()), "schema_version": "1.7", "x": 1}
    headers = {**encode(sample_article).headers, SCHEMA_HEADER: "1.7"}
    out = io.StringIO()
    counts = example.handle(
        [_record(later, headers)], example.ArticleReader(SCHEMA), example.Latest(), out, out
    )
    assert counts == {"printed": 1, "skipped": 0, "rejected": 0}, out.getvalue()
