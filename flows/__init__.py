"""Prefect flows: they compose the stages in ``newsflow`` and hold no stage logic."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from newsflow.errors import TransientError

__all__ = ["transient_only"]


def transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry a task only when it failed with a transient error."""
    return isinstance(state.result(raise_on_failure=False), TransientError)
