"""Prefect flows: they wrap :mod:`newsflow.pipeline` and hold no pipeline logic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from newsflow.errors import TransientError

__all__ = ["summary_artifact", "transient_only"]


def transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry a task only when it failed with a transient error."""
    return isinstance(state.result(raise_on_failure=False), TransientError)


def summary_artifact(title: str, counts: Mapping[str, object], *, key: str) -> None:
    """A run's counts as a markdown table artifact, for the Prefect UI."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in counts.items())
    create_markdown_artifact(
        f"### {title}\n\n| count | value |\n|---|---|\n{rows}\n",
        key=key,
        description=f"{title} at {datetime.now(UTC).isoformat(timespec='seconds')}",
    )
