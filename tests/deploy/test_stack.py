"""deploy/local/stack: up (twice), status, down -- against real JVMs.

Runs its own stack instance: its own NEWSFLOW_STACK_HOME (data, logs, pid
files) and its own ports, so a developer's stack on 9092/9200 is untouched.
The downloaded artifacts are shared with the default stack through
NEWSFLOW_STACK_CACHE, so only the very first run on a machine downloads.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.stack]

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack"

# NEWSFLOW_TEST_STACK_*_PORT move the instances (e.g. away from another one's ports)
KAFKA_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_KAFKA_PORT", "19092"))
ES_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_ES_PORT", "19200"))
PREFECT_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_PREFECT_PORT", "14200"))


def _default_cache() -> str:
    if os.environ.get("NEWSFLOW_STACK_CACHE"):
        return os.environ["NEWSFLOW_STACK_CACHE"]
    home = os.environ.get("NEWSFLOW_STACK_HOME") or os.path.expanduser("~/.cache/newsflow/stack")
    return os.path.join(home, "jars")


def _run(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _stack_procs_mentioning(text: str) -> list[int]:
    """JVMs and Pythons (the Prefect server) whose arguments mention ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        args = _cmdline(int(entry.name))
        if (
            args
            and Path(args[0]).name.startswith(("java", "python"))
            and any(text in a for a in args)
            and _alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def _pids(run_dir: Path) -> dict[str, int]:
    out = {}
    for f in run_dir.glob("*.pid"):
        text = f.read_text().strip()
        if text:
            out[f.stem] = int(text)
    return out


def _kafka_api_versions(host: str, port: int) -> int:
    """Send ApiVersions v0; return the number of API keys the broker lists."""
    client = b"stack-test"
    req = struct.pack(">hhih", 18, 0, 42, len(client)) + client
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.settimeout(5)
        sock.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4:
            chunk = sock.recv(4 - len(buf))
            assert chunk, "broker closed the connection"
            buf += chunk
        (size,) = struct.unpack(">i", buf)
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            assert chunk, "broker closed the connection"
            data += chunk
    correlation_id, error_code, count = struct.unpack_from(">ihi", data, 0)
    assert correlation_id == 42
    assert error_code == 0
    return int(count)


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        body: dict[str, Any] = json.load(resp)
    return body


def test_stack_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "stack-home"
    env = dict(os.environ)
    env.update(
        NEWSFLOW_STACK_HOME=str(home),
        NEWSFLOW_STACK_CACHE=_default_cache(),
        NEWSFLOW_STACK_KAFKA_PORT=str(KAFKA_PORT),
        NEWSFLOW_STACK_KAFKA_CONTROLLER_PORT=str(KAFKA_PORT + 1),
        NEWSFLOW_STACK_ES_PORT=str(ES_PORT),
        NEWSFLOW_STACK_ES_TRANSPORT_PORT=str(ES_PORT + 100),
        NEWSFLOW_STACK_PREFECT_PORT=str(PREFECT_PORT),
        NEWSFLOW_STACK_TIMEOUT="180",
    )
    seen_pids: dict[str, int] = {}
    try:
        first = _run(env, "up")
        assert first.returncode == 0, f"stack up failed:\n{first.stderr}"
        seen_pids.update(_pids(home / "run"))
        assert {"kafka", "es", "prefect"} <= set(seen_pids), seen_pids
        for name in ("kafka", "es"):
            args = _cmdline(seen_pids[name])
            assert args and Path(args[0]).name == "java", (
                f"{name} pid file does not name a java process: {args}"
            )
        prefect_args = _cmdline(seen_pids["prefect"])
        assert "server" in prefect_args and f"-Dnewsflow.stack.home={home}" in prefect_args

        second = _run(env, "up", timeout=60)
        assert second.returncode == 0, f"second stack up failed:\n{second.stderr}"
        assert "already running" in second.stderr
        assert _pids(home / "run")["kafka"] == seen_pids["kafka"]
        assert _pids(home / "run")["es"] == seen_pids["es"]
        assert _pids(home / "run")["prefect"] == seen_pids["prefect"]

        status = _run(env, "status", timeout=60)
        assert status.returncode == 0, f"stack status failed:\n{status.stderr}"
        values = dict(line.split("=", 1) for line in status.stdout.strip().splitlines())
        assert values == {
            "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}",
            "NEWSFLOW_ELASTICSEARCH_URL": f"http://127.0.0.1:{ES_PORT}",
            "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
        }
        with urllib.request.urlopen(f"{values['PREFECT_API_URL']}/health", timeout=10) as resp:
            assert resp.status == 200
        # The server keeps its database under the stack home, not in the user's Prefect home.
        assert list((home / "data" / "prefect").glob("*.db")), "no Prefect database in the home"

        host, port = values["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)
        assert _kafka_api_versions(host, int(port)) > 10

        es = values["NEWSFLOW_ELASTICSEARCH_URL"]
        health = _get_json(f"{es}/_cluster/health")
        assert health["status"] in ("green", "yellow"), health
        root = _get_json(f"{es}/")
        assert root["version"]["number"].startswith("8."), root
    finally:
        down = _run(env, "down", timeout=120)
        leftovers = [
            pid
            for pid in set(seen_pids.values()) | set(_pids(home / "run").values())
            if _alive(pid)
        ]
        leftovers += _stack_procs_mentioning(str(home))
        for pid in set(leftovers):  # never leave JVMs behind, even when failing
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    assert down.returncode == 0, f"stack down failed:\n{down.stderr}"
    assert not leftovers, f"processes left after down: {sorted(set(leftovers))}"
    assert not any(_alive(pid) for pid in seen_pids.values())
    assert not list((home / "run").glob("*.pid"))
    # ports are released
    for released in (ES_PORT, PREFECT_PORT):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", released), timeout=1).close()
            except OSError:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"port {released} still accepts connections after down")

    after = _run(env, "status", timeout=60)
    assert after.returncode != 0
    assert after.stdout == ""


# Fixed test ports stay below 32768: Linux hands out 32768-60999 as clients' ephemeral
# ports, and a server there can find its port taken (ES transport on 39300, once in CI).
CLUSTER_KAFKA_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_CLUSTER_KAFKA_PORT", "31092"))
CLUSTER_ES_PORT = int(os.environ.get("NEWSFLOW_TEST_STACK_CLUSTER_ES_PORT", "31200"))


def test_stack_up_nodes_3_forms_one_kafka_and_one_elasticsearch_cluster(tmp_path: Path) -> None:
    """Three brokers in a three-voter KRaft quorum and three ES nodes; down stops all six."""
    home = tmp_path / "cluster-home"
    env = dict(os.environ)
    env.update(
        NEWSFLOW_STACK_HOME=str(home),
        NEWSFLOW_STACK_CACHE=_default_cache(),
        NEWSFLOW_STACK_KAFKA_PORT=str(CLUSTER_KAFKA_PORT),
        NEWSFLOW_STACK_ES_PORT=str(CLUSTER_ES_PORT),
        NEWSFLOW_STACK_PREFECT="0",
        NEWSFLOW_STACK_TIMEOUT="300",
    )
    seen: dict[str, int] = {}
    try:
        up = _run(env, "up", "--nodes", "3")
        assert up.returncode == 0, f"stack up --nodes 3 failed:\n{up.stderr}"
        seen.update(_pids(home / "run"))
        assert {"kafka", "kafka-2", "kafka-3", "es", "es-2", "es-3"} <= set(seen), seen

        status = _run(env, "status", timeout=60)
        assert status.returncode == 0, status.stderr
        values = dict(line.split("=", 1) for line in status.stdout.strip().splitlines())
        brokers = [f"127.0.0.1:{CLUSTER_KAFKA_PORT + 2 * i}" for i in range(3)]
        nodes = [f"http://127.0.0.1:{CLUSTER_ES_PORT + i}" for i in range(3)]
        assert values == {
            "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": ",".join(brokers),
            "NEWSFLOW_ELASTICSEARCH_URL": ",".join(nodes),
        }
        for broker in brokers:
            host, port = broker.rsplit(":", 1)
            assert _kafka_api_versions(host, int(port)) > 10
        for node in nodes:
            health = _get_json(f"{node}/_cluster/health")
            assert health["number_of_nodes"] == 3 and health["status"] == "green", health

        again = _run(env, "up", "--nodes", "1", timeout=60)
        assert again.returncode != 0 and "runs with 3 node(s)" in again.stderr
    finally:
        down = _run(env, "down", timeout=180)
        leftovers = [pid for pid in seen.values() if _alive(pid)]
        leftovers += _stack_procs_mentioning(str(home))
        for pid in set(leftovers):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    assert down.returncode == 0, down.stderr
    assert not leftovers, f"processes left after down: {sorted(set(leftovers))}"
    assert not list((home / "run").glob("*.pid"))
