"""One stack instance of the fault suite per module, and a test's own settings on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.support import Stack, names

KAFKA_PORT = int(os.environ.get("NEWSFLOW_FAULTS_KAFKA_PORT", "29092"))
ES_PORT = int(os.environ.get("NEWSFLOW_FAULTS_ES_PORT", "29200"))


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kafka and Elasticsearch of this module alone: tests kill and stop them.

    NEWSFLOW_FAULTS_STACK_HOME reuses a running instance (and leaves it running), which
    saves the minute a start takes while developing the suite.
    """
    kept = os.environ.get("NEWSFLOW_FAULTS_STACK_HOME")
    home = Path(kept) if kept else tmp_path_factory.mktemp("fault-stack")
    stack = Stack(home, KAFKA_PORT, ES_PORT)
    stack.up()
    try:
        yield stack
    finally:
        if not kept:
            stack.down()


@pytest.fixture
def fault_env(
    fault_stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """NEWSFLOW_* of one test (unique topics, group, prefix), set in this process too."""
    env = names(fault_stack)
    env["NEWSFLOW_DATA_DIR"] = str(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Whatever a test kills is back for the next one.
    fault_stack.up()
    return env
