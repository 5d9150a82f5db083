"""A Prefect server of a test's own, its CLI commands and its workers, as subprocesses.

The server keeps its SQLite database under the test's PREFECT_HOME, so that the shared
server on :4200 and every other test are untouched. Every process started here carries
:data:`TAG` in its environment, and so do their children (flow runs start in sessions of
their own): that is how leftovers are found and stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

__all__ = ["PREFECT", "TAG", "PrefectStack"]

PREFECT = str(Path(sys.executable).parent / "prefect")
ROOT = Path(__file__).resolve().parents[2]
TAG = "NEWSFLOW_TEST_PREFECT_STACK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tagged_processes(tag: str) -> list[int]:
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


class PrefectStack:
    """A Prefect server, CLI commands and workers run as subprocesses of this test.

    ``port`` is the server's (default: a free one); ``env`` is added to the environment
    of every process (server settings, worker and flow run settings alike).
    """

    def __init__(
        self, home: Path, *, port: int | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.home = home
        self.tag = uuid.uuid4().hex
        self.api = f"http://127.0.0.1:{port or _free_port()}/api"
        self.env = {
            **os.environ,
            TAG: self.tag,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            # Two poll runs share the machine; one extraction process each is plenty.
            "NEWSFLOW_EXTRACT_WORKERS": "1",
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str, tail: int = 6000) -> str:
        text = (self.home / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        return text[-tail:]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``prefect ARGS`` in a session of its own, its output in ``<home>/<name>.log``."""
        with (self.home / f"{name}.log").open("wb") as log:
            process = self.processes[name] = subprocess.Popen(
                [PREFECT, *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return process

    def start_server(self, *options: str, timeout: float = 180) -> float:
        """Start the server (``options`` added to ``prefect server start``) and wait until
        it is healthy; the seconds that took."""
        started = time.monotonic()
        port = self.api.split(":")[-1].removesuffix("/api")
        self.start(
            "server", "server", "start", "--host", "127.0.0.1", "--port", port, "--no-ui",
            *options,
        )  # fmt: skip
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.processes["server"].poll() is not None:
                pytest.fail(f"prefect server exited:\n{self.log('server')}")
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"prefect server not healthy after {timeout:.0f} s:\n{self.log('server')}")

    def cli(self, *commands: Sequence[str], timeout: float = 120) -> None:
        """Run ``prefect`` commands side by side; each must succeed."""
        running = [
            (command, subprocess.Popen(
                [PREFECT, *command], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
            for command in commands
        ]  # fmt: skip
        for command, process in running:
            output, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, f"prefect {' '.join(command)}:\n{output}"

    def stop(self) -> list[int]:
        """Stop every process; return the pids that were still around afterwards."""
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while (left := _tagged_processes(self.tag)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left
