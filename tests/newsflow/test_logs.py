"""Log output: the JSON formatter and the console handler's configuration."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from newsflow import logs


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards (handlers, level and the logs module's state)."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    configured = list(logs._configured)
    logs._configured.clear()  # as in a new process: nothing configured yet
    for handler in handlers:
        if isinstance(handler, logs._StderrHandler):
            logger.removeHandler(handler)
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logs._configured[:] = configured


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("newsflow.test").makeRecord(
        "newsflow.test", logging.WARNING, __file__, 10, "batch records=%d", (3,), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    line = logs.JsonFormatter().format(_record(feed_url="https://x/feed", records=3))
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "newsflow.test"
    assert entry["message"] == "batch records=3"
    assert entry["ts"].endswith("Z") and entry["ts"][:4].isdigit()
    assert entry["feed_url"] == "https://x/feed" and entry["records"] == 3
    assert "\n" not in line
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_an_extra_named_like_a_fixed_key_does_not_overwrite_it() -> None:
    entry = json.loads(logs.JsonFormatter().format(_record(level=7, ts="then")))
    assert entry["level"] == "WARNING" and entry["extra.level"] == 7
    assert entry["extra.ts"] == "then"


def test_exceptions_and_unserialisable_extras_stay_one_json_line() -> None:
    try:
        raise RuntimeError("broker gone")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    record.__dict__["when"] = object()
    line = logs.JsonFormatter().format(record)
    entry = json.loads(line)
    assert "RuntimeError: broker gone" in entry["exc_info"]
    assert entry["when"].startswith("<object object")
    assert line.count("\n") == 0


def test_configure_json_writes_json_lines_to_the_current_stderr(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")
    logging.getLogger("newsflow.indexer").info("batch", extra={"indexed": 5})
    logging.getLogger("newsflow.indexer").debug("not shown at INFO")
    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["message"], e["indexed"]) for e in entries] == [("batch", 5)]


def test_configure_text_uses_the_plain_format(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("text", verbose=True)
    logging.getLogger("newsflow.fetch").debug("robots cached host=%s", "example.com")
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("DEBUG newsflow.fetch robots cached host=example.com")
    )
    assert root.level == logging.DEBUG
    assert logging.getLogger("kafka").level == logging.WARNING  # noisy libraries stay quiet


def test_text_lines_name_the_prefect_run(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("text")
    logging.getLogger("prefect.task_runs").info(
        "Finished in %s", "Completed()", extra={"task_run_name": "poll https://x/feed"}
    )
    assert (
        capsys.readouterr()
        .err.rstrip()
        .endswith("INFO prefect.task_runs [poll https://x/feed] Finished in Completed()")
    )


def test_configure_twice_keeps_one_console_handler_and_other_handlers(
    root: logging.Logger,
) -> None:
    other = logging.NullHandler()
    root.addHandler(other)
    logs.configure("text")
    logs.configure("json")
    consoles = [h for h in root.handlers if isinstance(h, logs._StderrHandler)]
    assert len(consoles) == 1
    assert isinstance(consoles[0].formatter, logs.JsonFormatter)
    assert other in root.handlers


class PrefectConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Stands in for Prefect's console handler (matched by class name)."""


def test_reclaim_takes_the_console_back_from_prefect(root: logging.Logger) -> None:
    logs.reclaim()
    assert not any(isinstance(h, logs._StderrHandler) for h in root.handlers)  # not configured
    for log_format in logs.LOG_FORMATS:
        logs.configure(log_format)
        root.addHandler(PrefectConsoleHandler())
        root.setLevel(logging.WARNING)  # what importing Prefect does
        logs.reclaim()
        assert not any(isinstance(h, PrefectConsoleHandler) for h in root.handlers)
        [console] = [h for h in root.handlers if isinstance(h, logs._StderrHandler)]
        assert isinstance(console.formatter, logs.JsonFormatter) == (log_format == "json")
        assert root.level == logging.INFO


def test_an_unknown_format_is_refused(root: logging.Logger) -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.configure("xml")  # type: ignore[arg-type]


@pytest.mark.parametrize("verbose", [False, True])
def test_text_lines_carry_tracebacks_only_when_verbose(
    root: logging.Logger, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    logs.configure("text", verbose=verbose)
    try:
        raise RuntimeError("disk is full")
    except RuntimeError:
        logging.getLogger("prefect.task_runs").exception("Task run failed")
    err = capsys.readouterr().err
    assert "Task run failed" in err
    assert ("Traceback" in err) is verbose
