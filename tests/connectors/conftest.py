"""Backends for the contract suites: every implementation of an interface runs them.

The real services need the stack (``integration``); the embedded ones run on a file in
``tmp_path`` and belong to the unit tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.buffer import Buffer
from connectors.store import Store
from newsflow.settings import Settings

BUFFERS = [pytest.param("kafka", marks=pytest.mark.integration), "sqlite"]
STORES = [pytest.param("elasticsearch", marks=pytest.mark.integration), "sqlite"]


@pytest.fixture(params=BUFFERS)
def buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Buffer]:
    if request.param == "kafka":
        request.getfixturevalue("stack_env")
        from connectors.kafka import KafkaBuffer

        implementation: Buffer = KafkaBuffer(Settings().kafka)
    elif request.param == "sqlite":
        from connectors.sqlite_buffer import SqliteBuffer

        implementation = SqliteBuffer(tmp_path / "buffer.sqlite3", partitions=3)
    else:  # pragma: no cover - new implementations register above
        raise AssertionError(request.param)
    yield implementation
    implementation.close()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    implementation = _open_store(request, tmp_path)
    implementation.ensure()
    yield implementation
    implementation.close()


BOUND = 64 * 1024
"""The smallest NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES, for ``bounded_store``."""


@pytest.fixture(params=STORES)
def bounded_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A set-up store whose bulk requests may hold at most :data:`BOUND` bytes."""
    implementation = _open_store(request, tmp_path, bulk_max_bytes=BOUND)
    implementation.ensure()
    yield implementation
    implementation.close()


@pytest.fixture(params=STORES)
def unset_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on names or a file nobody has set up (no ``ensure()``)."""
    implementation = _open_store(request, tmp_path)
    yield implementation
    implementation.close()


def _open_store(
    request: pytest.FixtureRequest, tmp_path: Path, bulk_max_bytes: int | None = None
) -> Store:
    if request.param == "elasticsearch":
        request.getfixturevalue("stack_env")
        from connectors.elasticsearch import ElasticsearchStore

        es = Settings().elasticsearch
        if bulk_max_bytes is not None:
            es = es.model_copy(update={"bulk_max_bytes": bulk_max_bytes})
        implementation: Store = ElasticsearchStore(es)
    elif request.param == "sqlite":
        from connectors.sqlite_store import DEFAULT_BULK_MAX_BYTES, SqliteStore

        implementation = SqliteStore(
            tmp_path / "store.sqlite3", bulk_max_bytes=bulk_max_bytes or DEFAULT_BULK_MAX_BYTES
        )
    else:  # pragma: no cover
        raise AssertionError(request.param)
    return implementation
