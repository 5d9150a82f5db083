"""A 3-broker / 3-node deploy/local/stack instance the cluster tests (and bench) may break.

:class:`Cluster` starts its own stack (own home, ports 24092-24097 and 24200-24202 unless
``NEWSFLOW_TEST_CLUSTER_*`` say otherwise), kills members with SIGKILL, brings them back
with ``stack up --nodes 3`` (which restarts missing members) and stops everything at the
end. ``NEWSFLOW_TEST_CLUSTER_HOME`` naming the home of a cluster already running reuses
it and leaves it running (for iterating on a test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack"
NODES = 3


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Cluster:
    """Addresses, pids and fault injection of one running 3+3 stack instance."""

    def __init__(self, home: Path) -> None:
        kafka_port = int(os.environ.get("NEWSFLOW_TEST_CLUSTER_KAFKA_PORT", "24092"))
        es_port = int(os.environ.get("NEWSFLOW_TEST_CLUSTER_ES_PORT", "24200"))
        self.home = home
        self.owned = True
        self.env = dict(os.environ)
        self.env.update(
            NEWSFLOW_STACK_HOME=str(home),
            NEWSFLOW_STACK_CACHE=os.environ.get(
                "NEWSFLOW_STACK_CACHE", os.path.expanduser("~/.cache/newsflow/stack/jars")
            ),
            NEWSFLOW_STACK_KAFKA_PORT=str(kafka_port),
            NEWSFLOW_STACK_ES_PORT=str(es_port),
            NEWSFLOW_STACK_ES_TRANSPORT_PORT=str(es_port + 100),
            NEWSFLOW_STACK_PREFECT="0",
            NEWSFLOW_STACK_TIMEOUT="400",
        )
        self.kafka_ports = [kafka_port + 2 * i for i in range(NODES)]
        self.es_ports = [es_port + i for i in range(NODES)]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports)
        self.es_urls = ",".join(f"http://127.0.0.1:{p}" for p in self.es_ports)

    # -- life cycle ------------------------------------------------------------------

    def stack(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STACK), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        """``stack up --nodes 3``: starts the cluster, or restarts its missing members."""
        done = self.stack("up", "--nodes", str(NODES))
        assert done.returncode == 0, f"stack up --nodes {NODES} failed:\n{done.stderr}"

    def down(self) -> None:
        pids = list(self.pids().values())
        self.stack("down", timeout=240)
        for pid in pids:  # never leave JVMs behind, even when failing
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    # -- members ---------------------------------------------------------------------

    @staticmethod
    def member(kind: str, index: int) -> str:
        """Pid file stem of member ``index`` (0-based) of ``kind`` (``kafka`` or ``es``)."""
        return kind if index == 0 else f"{kind}-{index + 1}"

    def pids(self) -> dict[str, int]:
        found = {}
        for kind in ("kafka", "es"):
            for index in range(NODES):
                path = self.home / "run" / f"{self.member(kind, index)}.pid"
                text = path.read_text().strip() if path.exists() else ""
                if text and _alive(int(text)):
                    found[self.member(kind, index)] = int(text)
        return found

    def kill(self, name: str) -> int:
        """SIGKILL member ``name`` (e.g. ``kafka-2``); its pid."""
        pid = self.pids()[name]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return pid

    # -- Kafka -----------------------------------------------------------------------

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap.split(","), request_timeout_ms=15_000
        )

    def broker_member(self, broker_id: int) -> str:
        """The pid file stem of the broker with node id ``broker_id``."""
        admin = self.admin()
        try:
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        port = next(int(b["port"]) for b in brokers if int(b["broker_id"]) == broker_id)
        return self.member("kafka", self.kafka_ports.index(port))

    def partitions(self, topic: str) -> list[dict[str, Any]]:
        admin = self.admin()
        try:
            return list(admin.describe_topics([topic])[0]["partitions"])
        finally:
            admin.close()

    def wait_in_sync(self, topic: str, timeout: float = 180) -> None:
        """Until every partition of ``topic`` has all its replicas in sync again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                parts = self.partitions(topic)
                if parts and all(len(p["isr_nodes"]) == len(p["replica_nodes"]) for p in parts):
                    return
            except Exception:  # noqa: BLE001, S110 - brokers still starting
                pass
            assert time.monotonic() < deadline, f"{topic} not back in sync: {parts}"
            time.sleep(1)

    # -- Elasticsearch ---------------------------------------------------------------

    def es_get(self, path: str) -> Any:
        for port in self.es_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as r:
                    return json.load(r)
            except OSError:
                continue
        raise AssertionError(f"no Elasticsearch node answered {path}")

    def es_member_of_node(self, node_name: str) -> str:
        nodes = self.es_get("/_nodes/http")["nodes"]
        for node in nodes.values():
            if node["name"] == node_name:
                port = int(node["http"]["publish_address"].rsplit(":", 1)[1])
                return self.member("es", self.es_ports.index(port))
        raise AssertionError(f"no node named {node_name}")

    def wait_es_green(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.es_get("/_cluster/health")
                if health["number_of_nodes"] == NODES and health["status"] == "green":
                    return
            except AssertionError:
                pass
            assert time.monotonic() < deadline, "Elasticsearch not green with 3 nodes"
            time.sleep(1)
