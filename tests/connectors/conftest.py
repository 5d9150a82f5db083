"""Backends for the contract suites: every implementation of an interface runs them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.buffer import Buffer
from connectors.store import Store
from newsflow.settings import Settings

BUFFERS = ["kafka"]
STORES = ["elasticsearch"]


@pytest.fixture(params=BUFFERS)
def buffer(request: pytest.FixtureRequest) -> Iterator[Buffer]:
    if request.param == "kafka":
        request.getfixturevalue("stack_env")
        from connectors.kafka import KafkaBuffer

        implementation: Buffer = KafkaBuffer(Settings().kafka)
    else:  # pragma: no cover - new implementations register above
        raise AssertionError(request.param)
    yield implementation
    implementation.close()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "elasticsearch":
        request.getfixturevalue("stack_env")
        from connectors.elasticsearch import ElasticsearchStore

        implementation: Store = ElasticsearchStore(Settings().elasticsearch)
    else:  # pragma: no cover
        raise AssertionError(request.param)
    implementation.ensure()
    yield implementation
    implementation.close()
