"""Run the real indexer once, until idle, on whatever backends the environment selects."""

from __future__ import annotations

from newsflow.pipeline import drain
from newsflow.settings import Settings
from newsflow.summary import IndexSummary


def index_until_idle(settings: Settings | None = None) -> IndexSummary:
    return drain(settings if settings is not None else Settings(), until_idle=True)
