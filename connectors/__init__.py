"""Connectors: the buffer (Kafka or embedded) and the store (Elasticsearch or embedded).

:func:`open_buffer` and :func:`open_store` pick the implementation from the settings:
the real services when their address is configured, the embedded ones otherwise.
"""

from __future__ import annotations

from pathlib import Path

from connectors.buffer import Buffer, Consumer, InRecord, OutRecord
from connectors.store import IndexOutcome, SearchHit, SearchQuery, SearchResult, SeenDoc, Store
from newsflow.errors import ConfigError
from newsflow.settings import Settings

__all__ = [
    "Buffer",
    "Consumer",
    "InRecord",
    "IndexOutcome",
    "OutRecord",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "SeenDoc",
    "Store",
    "backend_names",
    "open_buffer",
    "open_store",
]


def backend_names(settings: Settings) -> tuple[str, str]:
    """Human names of the buffer and store these settings select."""
    buffer = (
        f"kafka {settings.kafka.bootstrap_servers}"
        if settings.kafka.bootstrap_servers
        else (f"embedded {settings.data_dir / 'buffer.sqlite3'}")
    )
    store = (
        f"elasticsearch {settings.elasticsearch.url}"
        if settings.elasticsearch.url
        else (f"embedded {settings.data_dir / 'store.sqlite3'}")
    )
    return buffer, store


def _data_dir(settings: Settings, create: bool) -> Path:
    """Where the embedded backends live; created unless only looking (``create=False``)."""
    if create:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"NEWSFLOW_DATA_DIR cannot be created: {exc}") from exc
    return settings.data_dir


def open_buffer(settings: Settings, *, create: bool = True) -> Buffer:
    """Kafka when ``NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS`` is set, else the embedded log.

    ``create=False`` touches no file until the buffer is used, so that a buffer opened
    only for :meth:`~connectors.buffer.Buffer.check` creates nothing.
    """
    if settings.kafka.bootstrap_servers:
        from connectors.kafka import KafkaBuffer

        return KafkaBuffer(settings.kafka)
    from connectors.sqlite_buffer import SqliteBuffer

    path = _data_dir(settings, create) / "buffer.sqlite3"
    return SqliteBuffer(path, settings.kafka.partitions, lazy=not create)


def open_store(settings: Settings, *, create: bool = True) -> Store:
    """Elasticsearch when ``NEWSFLOW_ELASTICSEARCH_URL`` is set, else the embedded store.

    ``create=False`` as for :func:`open_buffer`.
    """
    if settings.elasticsearch.url:
        from connectors.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(settings.elasticsearch)
    from connectors.sqlite_store import SqliteStore

    return SqliteStore(
        _data_dir(settings, create) / "store.sqlite3",
        lazy=not create,
        bulk_max_bytes=settings.elasticsearch.bulk_max_bytes,
    )
