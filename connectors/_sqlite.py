"""SQLite plumbing of the embedded buffer and store (private to ``connectors``).

One way to open a file (WAL, ``synchronous=FULL``, explicit transactions), to run a
transaction, to turn :mod:`sqlite3` errors into newsflow's transient and permanent
markers, and to look at a file read-only for the connectors' ``check()``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from connectors.health import SETUP_HINT, Check
from newsflow.errors import BackendUnavailable, ConfigError, NewsflowError, PermanentError

__all__ = [
    "Database",
    "connect",
    "file_error",
    "inspect_file",
    "read_only",
    "statements",
    "transaction",
    "translated",
]

_BUSY_TIMEOUT_MS = 30_000
_WAL_LIMIT_BYTES = 64 * 1024 * 1024  # the WAL is truncated back to this after checkpoints
_READ_ONLY_TIMEOUT = 5.0


# Primary result codes (the low byte of sqlite3.Error.sqlite_errorcode).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 3, 8, 13, 14, 26
_BROKEN_PATH = {_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_NOTADB}


def file_error(what: str, path: Path, action: str, exc: sqlite3.Error) -> NewsflowError | None:
    """The error for a file that cannot be used, if that is what ``exc`` says.

    A full disk is transient (space can be freed, and the failed transaction left
    nothing behind); a path that cannot be opened or written, or is no database, is
    permanent until the set-up is fixed. ``None`` for every other SQLite error.
    """
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _SQLITE_FULL:
        return BackendUnavailable(
            f"{what} {action} failed: the disk holding {path} is full; free space and run "
            "again (nothing of the failed write was kept)"
        )
    if code in _BROKEN_PATH:
        return ConfigError(
            f"{what} {action} failed: {path} cannot be opened for writing ({exc}); "
            "check NEWSFLOW_DATA_DIR"
        )
    return None


def connect(path: Path, what: str) -> sqlite3.Connection:
    """A connection to ``path`` (created if missing); ``what`` names it in errors."""
    try:
        # Autocommit mode: transactions are explicit (BEGIN ... COMMIT). The connection is
        # shared by threads only behind its owner's lock.
        connection = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        _wal(connection)
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        error = file_error(what, path, "opening", exc)
        raise error or BackendUnavailable(f"{what} at {path} cannot be opened: {exc}") from exc
    return connection


def _wal(connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode (a property of the file: once is enough).

    Switching modes needs the file to itself, and SQLite answers "database is locked" at
    once, without its busy handler, while another process is creating or switching the
    same new file (an indexer and a poller starting together): wait for it, as the busy
    timeout would.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def transaction(
    connection: sqlite3.Connection, *, write: bool = True
) -> Iterator[sqlite3.Connection]:
    """One transaction; a write one takes the database's write lock up front."""
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@contextmanager
def translated(
    what: str, path: Path, action: str, *, setup_hint: str | None = None
) -> Iterator[None]:
    """SQLite errors as newsflow's markers: locks and I/O are transient, the rest is not.

    With ``setup_hint``, a missing table is permanent and says how to set the file up.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise _error(what, path, action, exc, setup_hint) from exc


def _error(
    what: str, path: Path, action: str, exc: sqlite3.Error, setup_hint: str | None
) -> NewsflowError:
    error = file_error(what, path, action, exc)
    if error is not None:
        return error
    if isinstance(exc, sqlite3.OperationalError):
        if setup_hint is not None and "no such table" in str(exc):
            return PermanentError(f"{what} {action} failed: {path} is not set up ({setup_hint})")
        return BackendUnavailable(f"{what} {action} failed ({path}): {exc}")
    return PermanentError(f"{what} {action} failed ({path}): {exc}")


def statements(script: str) -> Iterator[str]:
    """The statements of a DDL script (triggers contain ``;`` inside BEGIN ... END)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                yield statement.strip()
            statement = ""


class Database:
    """One file's connection, shared by threads behind ``lock``.

    ``lazy`` defers opening (and so creating) the file to the first use, for a connector
    that may only be asked for its read-only ``check()``.
    """

    def __init__(
        self, path: Path, what: str, schema: str | None = None, *, lazy: bool = False
    ) -> None:
        self.path = path
        self.what = what
        self.lock = threading.Lock()
        self._schema = schema
        self._connection: sqlite3.Connection | None = None
        if not lazy:
            self.connection()

    def connection(self) -> sqlite3.Connection:
        """The open connection (call with ``lock`` held); the schema is created once."""
        if self._connection is None:
            connection = connect(self.path, self.what)
            if self._schema is not None:
                try:
                    with translated(self.what, self.path, "set-up"), transaction(connection):
                        for statement in statements(self._schema):
                            connection.execute(statement)
                except BaseException:
                    connection.close()
                    raise
            self._connection = connection
        return self._connection

    def close(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that cannot create or change ``path``."""
    uri = path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=_READ_ONLY_TIMEOUT)) as connection:
        yield connection


def inspect_file(
    name: str, path: Path, tables: set[str], describe: Callable[[sqlite3.Connection], str]
) -> Check:
    """Whether ``path`` exists, is a WAL database and has ``tables``; read-only."""
    if not path.exists():
        return Check.fail(name, f"{path} does not exist; {SETUP_HINT}")
    try:
        with read_only(path) as db:
            mode = str(db.execute("PRAGMA journal_mode").fetchone()[0])
            found = {
                str(row[0])
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            missing = tables - found
            if missing:
                return Check.fail(
                    name, f"{path} lacks tables {', '.join(sorted(missing))}; {SETUP_HINT}"
                )
            if mode.lower() != "wal":
                return Check.fail(name, f"{path} is in {mode} journal mode, expected WAL")
            size = path.stat().st_size / 1e6
            return Check.ok(name, f"{path} (WAL, {size:.1f} MB), {describe(db)}")
    except sqlite3.Error as exc:
        return Check.fail(name, f"{path} cannot be read: {exc}")
