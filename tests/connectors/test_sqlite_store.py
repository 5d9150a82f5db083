"""The embedded store beyond the shared contract: durability, query safety, FTS5, sharing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import open_buffer, open_store
from connectors.sqlite_buffer import SqliteBuffer
from connectors.sqlite_store import SqliteStore, fts_query
from connectors.store import SearchQuery
from newsflow.errors import PermanentError
from newsflow.identity import content_hash, doc_id
from newsflow.settings import Settings
from newsflow.stories import in_own_story
from schemas import Article

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(path)
    opened.ensure()
    yield opened
    opened.close()


def _article(sample: Article, n: int, **update: object) -> Article:
    url = f"https://news.example.com/item/{n}"
    text = str(update.pop("text", f"Item {n} reports on the harbour. " * 5))
    return sample.model_copy(
        update={
            "doc_id": doc_id(url),
            "url": url,
            "text": text,
            "content_hash": content_hash(text),
            **update,
        }
    )


def test_the_store_is_in_wal_mode(store: SqliteStore, path: Path) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_documents_survive_reopening(path: Path, sample_article: Article) -> None:
    first = SqliteStore(path)
    first.ensure()
    first.index_batch([sample_article])
    first.close()
    second = SqliteStore(path)
    second.ensure()
    try:
        assert second.get(sample_article.doc_id) == in_own_story(sample_article)
        assert second.history(sample_article.doc_id) == [sample_article]
        assert second.search(SearchQuery(text="senate")).total == 1
    finally:
        second.close()


def test_a_store_that_was_never_set_up_says_so(path: Path) -> None:
    store = SqliteStore(path)
    try:
        with pytest.raises(PermanentError, match="not set up"):
            store.count()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("senate budget", '"senate" AND "budget"'),
        ('"passed the budget" senate', '"passed the budget" AND "senate"'),
        ('AND OR "', '"AND" AND "OR"'),
        ("foo* NEAR(a b)", '"foo*" AND "NEAR(a" AND "b)"'),
        ("title:senate", '"title:senate"'),
        ("", ""),
        ('" ( ) * - "', ""),
        ("senate senate", '"senate"'),
    ],
)
def test_free_text_becomes_quoted_phrases(text: str, expected: str) -> None:
    assert fts_query(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'AND OR "',
        "foo*",
        "NEAR(",
        "NOT",
        "senate AND",
        "(budget",
        "^senate",
        'senate "unterminated',
        "title:senate",
        "-budget",
        '""',
        "",
        "   ",
        "Müller Straße",
        "日本語のニュース",
        "🙂 budget",
        "a\x00b",
        "x" * 5000,
        " ".join(f"w{n}" for n in range(2000)),
    ],
)
def test_no_user_query_is_a_syntax_error(
    store: SqliteStore, sample_article: Article, text: str
) -> None:
    store.index_batch([sample_article])
    result = store.search(SearchQuery(text=text))
    assert result.total >= 0 and len(result.hits) <= result.total


def test_operators_in_a_query_are_words(store: SqliteStore, sample_article: Article) -> None:
    text = "The Senate did not pass the budget on Tuesday. " * 5
    store.index_batch([sample_article.model_copy(update={"text": text})])
    assert store.search(SearchQuery(text="NOT senate")).total == 1, "NOT is not an operator"
    assert store.search(SearchQuery(text="sen*")).total == 0, "no prefix queries"
    assert store.search(SearchQuery(text="🙂 budget")).total == 1


def test_quoted_phrases_keep_their_word_order(store: SqliteStore, sample_article: Article) -> None:
    store.index_batch([sample_article])
    assert store.search(SearchQuery(text='"passed the budget"')).total == 1
    assert store.search(SearchQuery(text='"budget the passed"')).total == 0


def test_matching_is_case_insensitive_and_unicode_aware(
    store: SqliteStore, sample_article: Article
) -> None:
    german = _article(sample_article, 1, title="Straßenbahn in München", text="Die Über" * 40)
    store.index_batch([german])
    assert store.search(SearchQuery(text="münchen")).total == 1
    assert store.search(SearchQuery(text="STRASSENBAHN")).total == 0, "no folding beyond case"
    assert store.search(SearchQuery(text="straßenbahn")).total == 1


def test_title_matches_rank_above_text_matches(store: SqliteStore, sample_article: Article) -> None:
    body = "Harbour news. " * 20
    in_text = _article(sample_article, 1, title="Harbour news", text="A lighthouse. " + body)
    in_title = _article(sample_article, 2, title="The lighthouse", text="Harbour items. " + body)
    store.index_batch([in_text, in_title])
    result = store.search(SearchQuery(text="lighthouse"))
    assert [hit.doc_id for hit in result.hits] == [in_title.doc_id, in_text.doc_id]
    assert result.hits[0].score > result.hits[1].score > 0


def test_total_counts_every_match_beyond_the_limit(
    store: SqliteStore, sample_article: Article
) -> None:
    store.index_batch([_article(sample_article, n) for n in range(15)])
    result = store.search(SearchQuery(text="harbour", limit=4))
    assert (result.total, len(result.hits)) == (15, 4)
    assert "[[harbour]]" in result.hits[0].snippet


def test_the_snippet_falls_back_to_the_summary(store: SqliteStore, sample_article: Article) -> None:
    article = _article(sample_article, 1, title="Lighthouse", summary="A short summary.")
    store.index_batch([article])
    [hit] = store.search(SearchQuery(text="lighthouse")).hits
    assert hit.snippet == "A short summary."


def test_immense_keywords_are_rejected_like_elasticsearch(
    store: SqliteStore, sample_article: Article
) -> None:
    long_tag = _article(sample_article, 1, tags=["t" * 40_000])
    long_image = _article(sample_article, 2, image_url="https://x/" + "i" * 40_000)
    multibyte = _article(sample_article, 3, source="ü" * 16_384)  # 32768 bytes of UTF-8
    outcome = store.index_batch([long_tag, long_image, multibyte])
    assert outcome.indexed == 1, "image_url is not indexed by Elasticsearch either"
    assert sorted(outcome.rejected) == [0, 2]
    assert 'field="tags"' in outcome.rejected[0]
    assert 'field="source"' in outcome.rejected[2]
    assert outcome.retry == []
    assert store.get(long_tag.doc_id) is None and store.history(long_tag.doc_id) == []


def test_a_new_revision_replaces_aliases_and_search_text(
    store: SqliteStore, sample_article: Article
) -> None:
    old_alias, new_alias = doc_id("https://a/old"), doc_id("https://a/new")
    first = sample_article.model_copy(update={"alias_ids": [old_alias]})
    text = "The lighthouse keeper retired. " * 5
    second = first.model_copy(
        update={
            "revision": first.revision + 1,
            "alias_ids": [new_alias],
            "text": text,
            "content_hash": content_hash(text),
        }
    )
    store.index_batch([first, second])
    assert set(store.lookup([old_alias, new_alias])) == {new_alias}
    assert store.search(SearchQuery(text="lighthouse")).total == 1
    assert store.search(SearchQuery(text="debate")).total == 0, "old text left the index"
    assert store.count() == 1


def test_the_same_revision_twice_in_one_batch_is_one_document(
    store: SqliteStore, sample_article: Article
) -> None:
    outcome = store.index_batch([sample_article, sample_article])
    assert (outcome.indexed, outcome.duplicates) == (1, 1)
    assert len(store.history(sample_article.doc_id)) == 1


def test_connections_see_each_others_writes(path: Path, sample_article: Article) -> None:
    writer, reader = SqliteStore(path), SqliteStore(path)
    try:
        writer.ensure()
        reader.ensure()
        writer.index_batch([sample_article])
        assert reader.get(sample_article.doc_id) == in_own_story(sample_article)
        assert reader.search(SearchQuery(text="budget")).total == 1
    finally:
        writer.close()
        reader.close()


def test_threads_share_one_store(store: SqliteStore, sample_article: Article) -> None:
    def index(thread: int) -> None:
        for batch in range(5):
            base = thread * 100 + batch * 10
            store.index_batch([_article(sample_article, base + n) for n in range(10)])
            store.search(SearchQuery(text="harbour"))

    threads = [threading.Thread(target=index, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 200


_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from connectors.sqlite_store import SqliteStore
from newsflow.identity import content_hash, doc_id
from schemas import Article

store = SqliteStore(Path(sys.argv[1]))
store.ensure()
moment = datetime(2024, 5, 1, tzinfo=UTC)
for n in range(int(sys.argv[2]), int(sys.argv[2]) + 100, 10):
    batch = []
    for i in range(n, n + 10):
        url = f"https://news.example.com/p/{i}"
        text = f"Process story {i}. " * 20
        batch.append(Article(
            doc_id=doc_id(url), revision=Article.revision_of(moment), url=url, source_url=url,
            title=f"Story {i}", text=text, fetched_at=moment, domain="news.example.com",
            feed_url="https://news.example.com/feed", content_hash=content_hash(text),
        ))
    assert store.index_batch(batch).indexed == 10
store.close()
"""


def test_processes_index_into_the_same_file(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(start)], env=env)
        for start in (0, 100, 200)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0]
    store = SqliteStore(path)
    try:
        assert store.count() == 300
        assert store.search(SearchQuery(text="process", limit=1)).total == 300
    finally:
        store.close()


def test_without_service_addresses_the_embedded_backends_open_in_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("NEWSFLOW_ELASTICSEARCH_URL", raising=False)
    data_dir = tmp_path / "not" / "yet"
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(data_dir))
    settings = Settings()
    buffer, store = open_buffer(settings), open_store(settings)
    try:
        assert isinstance(buffer, SqliteBuffer) and buffer.path == data_dir / "buffer.sqlite3"
        assert isinstance(store, SqliteStore) and store.path == data_dir / "store.sqlite3"
        assert buffer.path.exists() and store.path.exists()
    finally:
        buffer.close()
        store.close()
