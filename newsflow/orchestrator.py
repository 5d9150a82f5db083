"""Prefect's own settings for runs started from the command line or the demo.

Prefect reads its settings once, when it is first imported, so these are put in the
environment just before that, and only where the user has not set them. Nothing here
imports Prefect: a run that does not use it never pays its import.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["prefect_defaults"]


def prefect_defaults(*, home: Path | None = None, quiet: bool = False) -> None:
    """Prefect defaults for a command-line tool, applied where they are unset.

    Without ``PREFECT_API_URL`` Prefect starts a temporary API server, whose first start
    (database migrations) can take half a minute on a small machine; and a news ingester
    has no business phoning home. ``home`` keeps Prefect's database there (the demo's
    data directory); ``quiet`` holds Prefect's own logging at WARNING.
    """
    values = {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if home is not None:
        values["PREFECT_HOME"] = str(home)
    if quiet:
        values["PREFECT_LOGGING_LEVEL"] = "WARNING"
        values["PREFECT_SERVER_LOGGING_LEVEL"] = "WARNING"
    for name, value in values.items():
        os.environ.setdefault(name, value)
