"""Run the real indexer once, until idle, on whatever backends the environment selects."""

from __future__ import annotations

from connectors import open_buffer, open_store
from newsflow.indexer import Indexer
from newsflow.settings import Settings
from newsflow.summary import IndexSummary


def index_until_idle() -> IndexSummary:
    settings = Settings()
    buffer, store = open_buffer(settings), open_store(settings)
    try:
        return Indexer(buffer, store, settings.kafka, settings.indexer).run(until_idle=True)
    finally:
        buffer.close()
        store.close()
