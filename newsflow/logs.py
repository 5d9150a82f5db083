"""Log output of the command line: plain text for people, JSON lines for log shippers.

:func:`configure` installs one handler on the root logger that writes to whatever
``sys.stderr`` is at the moment of writing (so redirections such as rich's live display
or a test runner's capture are followed). In JSON mode every record becomes one line::

    {"ts": "2024-05-01T12:30:00.123Z", "level": "INFO", "logger": "newsflow.indexer",
     "message": "batch records=500 indexed=498 ...", "records": 500}

with ``ts`` in UTC, and every ``extra={...}`` field of the call (and of Prefect's run
loggers: ``flow_run_name``, ``task_run_id``, ...) as a key of its own; an exception's
traceback goes into ``exc_info``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["LOG_FORMATS", "JsonFormatter", "LogFormat", "configure", "reclaim"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_NOISY = ("kafka", "elastic_transport", "httpx", "httpcore", "trafilatura", "htmldate")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_OWN_KEYS = ("ts", "level", "logger", "message")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key if key not in _OWN_KEYS else f"extra.{key}"] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """The plain format, naming the Prefect flow or task run a record comes from.

    Tracebacks (Prefect logs one for every failed task and flow run) only with
    ``verbose``: otherwise the record's message is the line, and the command's own error
    line says what failed.
    """

    def __init__(self, *, verbose: bool = False) -> None:
        super().__init__(TEXT_FORMAT)
        self._verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        run = record.__dict__.get("task_run_name") or record.__dict__.get("flow_run_name")
        quiet = not self._verbose and (record.exc_info or record.exc_text)
        if not run and not quiet:
            return super().format(record)
        # Format a copy: other handlers (Prefect's API handler) see the record unchanged.
        copy = logging.makeLogRecord(record.__dict__)
        if run:
            copy.msg, copy.args = f"[{run}] {record.getMessage()}", None
        if quiet:
            copy.exc_info, copy.exc_text, copy.stack_info = None, None, None
        return super().format(copy)


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr``, never to a stream that was replaced."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def _is_console_handler(handler: logging.Handler) -> bool:
    # Prefect installs its own console handler on the root logger when it is imported;
    # it would print every record a second time, in its own format.
    return isinstance(handler, _StderrHandler) or type(handler).__name__ == (
        "PrefectConsoleHandler"
    )


_configured: list[tuple[LogFormat, bool]] = []  # the last configure() call


def reclaim() -> None:
    """Take the console back after a library replaced the handler (no-op before configure).

    Importing Prefect re-configures logging: its own console handler on the root logger,
    bound to the stderr of that moment (so it writes through a live progress display and
    garbles it) and the root at WARNING. The ``run`` command calls this after importing
    its flow: Prefect's run logs then come out as every other line, text or JSON.
    """
    if _configured:
        log_format, verbose = _configured[-1]
        configure(log_format, verbose=verbose)


def configure(log_format: LogFormat = "text", *, verbose: bool = False) -> None:
    """Send log records at INFO (DEBUG with ``verbose``) to stderr in ``log_format``.

    Idempotent: calling it again (e.g. after Prefect set up its logging) replaces the
    console handler instead of adding a second one. Other handlers (a test runner's
    capture, Prefect's API handler) are left alone.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}: {log_format!r}")
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else _TextFormatter(verbose=verbose)
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if _is_console_handler(existing):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured[:] = [(log_format, verbose)]
