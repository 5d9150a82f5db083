#!/usr/bin/env python3
"""Helpers for deploy/local/stack. Python 3 standard library only.

Sub-commands (all used by the `stack` bash script):

  kafka-probe HOST PORT             exit 0 if the broker answers ApiVersions and
                                    a Metadata request listing >= 1 broker
  es-probe URL                      exit 0 if /_cluster/health is green/yellow
  wait [options]                    wait for both services (see --help)
  port-free HOST PORT               exit 0 if nothing accepts connections there
  extract ZIP DEST                  unzip keeping the unix permission bits
  kafka-cluster-id                  print a random Kafka cluster id
  procs STACK_HOME [COMPONENT]      print pids of live processes started for
                                    STACK_HOME (their command line has the
                                    exact argument -Dnewsflow.stack.home=STACK_HOME
                                    and, if given, -Dnewsflow.stack.component=COMPONENT)
  pid-matches PID STACK_HOME        exit 0 if PID is alive and is such a process
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import zipfile

CLIENT_ID = b"newsflow-stack"
MARKER_PREFIX = "-Dnewsflow.stack.home="


# --------------------------------------------------------------------------- kafka


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _kafka_call(sock, api_key, version, correlation_id, body):
    # request header v1: api_key, api_version, correlation_id, client_id
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (got,) = struct.unpack_from(">i", data, 0)  # response header v0
    if got != correlation_id:
        raise RuntimeError("correlation id mismatch")
    return data[4:]


def kafka_broker_count(host, port, timeout=2.0):
    """ApiVersions v0, then Metadata (a non-flexible version, 4..8).

    Returns the number of brokers in the Metadata response, or -1 if the
    broker answered ApiVersions but supports no Metadata version we can speak.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        resp = _kafka_call(sock, 18, 0, 1, b"")
        (error,) = struct.unpack_from(">h", resp, 0)
        if error:
            raise RuntimeError(f"ApiVersions error code {error}")
        (count,) = struct.unpack_from(">i", resp, 2)
        ranges = {}
        off = 6
        for _ in range(count):
            key, lo, hi = struct.unpack_from(">hhh", resp, off)
            off += 6
            ranges[key] = (lo, hi)
        lo, hi = ranges.get(3, (99, -1))
        version = max(lo, 4)
        if version > min(hi, 8):
            return -1
        body = struct.pack(">i", -1) + b"\x00"  # all topics, allow_auto_topic_creation=false
        if version >= 8:
            body += b"\x00\x00"  # include_*_authorized_operations=false
        resp = _kafka_call(sock, 3, version, 2, body)
        _throttle, brokers = struct.unpack_from(">ii", resp, 0)
        return brokers


def kafka_ready(host, port):
    try:
        return kafka_broker_count(host, int(port)) != 0
    except (OSError, RuntimeError, struct.error):
        return False


# --------------------------------------------------------------------------- elasticsearch


def es_health(url, timeout=2.0):
    # urllib also opens file: and ftp: URLs; the probe is for an HTTP node only.
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url.rstrip("/") + "/_cluster/health", headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - as above
        return json.load(resp).get("status")


def es_ready(url):
    try:
        return es_health(url) in ("green", "yellow")
    except (OSError, ValueError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------- prefect


def prefect_ready(api_url, timeout=2.0):
    """The Prefect server behind ``api_url`` (``http://host:port/api``) answers its health."""
    if not api_url.startswith(("http://", "https://")):
        return False
    try:
        url = api_url.rstrip("/") + "/health"
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - scheme checked
            return resp.status == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------- processes


def pid_alive(pid):
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, ValueError, IndexError):
        return False


def pid_args(pid):
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (OSError, ValueError):
        return []


def pid_matches(pid, marker):
    return pid_alive(pid) and marker in pid_args(pid)


def procs_with_marker(marker, component=None):
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and pid_matches(name, marker):
            if component is None or f"-Dnewsflow.stack.component={component}" in pid_args(name):
                out.append(int(name))
    return sorted(out)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- wait


def es_node_count(url, timeout=2.0):
    """Nodes in the cluster of the node at ``url`` (0 when it does not answer)."""
    if not url.startswith(("http://", "https://")):
        return 0
    try:
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            url.rstrip("/") + "/_cluster/health", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - as above
            health = json.load(resp)
    except (OSError, ValueError, urllib.error.URLError):
        return 0
    if health.get("status") not in ("green", "yellow"):
        return 0
    return int(health.get("number_of_nodes", 0))


def cmd_wait(args):
    """Poll every service until ready; fail fast if one's processes die.

    With several brokers or nodes, Kafka is ready once every broker answers and the
    first lists them all, Elasticsearch once every node answers in one cluster.
    """
    start = time.monotonic()
    deadline = start + args.timeout
    brokers = [address.rsplit(":", 1) for address in args.kafka]
    checks = {
        "kafka": (
            lambda: (
                all(kafka_ready(h, p) for h, p in brokers)
                and _broker_count(*brokers[0]) >= len(brokers)
            ),
            lambda: all(pid_alive(pid) for pid in args.kafka_pid),
        ),
        "elasticsearch": (
            lambda: all(es_node_count(url) >= len(args.es) for url in args.es),
            lambda: all(
                pid_alive(launcher) or pid_alive(read_pid(pidfile) or 0)
                for pidfile, launcher in zip(args.es_pidfile, args.es_launcher_pid, strict=True)
            ),
        ),
    }
    if args.prefect:
        checks["prefect"] = (
            lambda: prefect_ready(args.prefect),
            lambda: pid_alive(args.prefect_pid),
        )
    pending = set(checks)
    while pending:
        for name in sorted(pending):
            ready, _alive = checks[name]
            if ready():
                pending.discard(name)
                print(f"  {name} ready ({time.monotonic() - start:.0f} s)", file=sys.stderr)
        if not pending:
            return 0
        for name in sorted(pending):
            _ready, alive = checks[name]
            if not alive():
                print(f"FAILED: a {name} process exited", file=sys.stderr)
                print(f"failed:{name}")
                return 1
        if time.monotonic() > deadline:
            names = " and ".join(sorted(pending))
            print(
                f"FAILED: timed out after {args.timeout:.0f} s waiting for {names}", file=sys.stderr
            )
            for name in sorted(pending):
                print(f"failed:{name}")
            return 1
        time.sleep(0.5)
    return 0


def _broker_count(host, port):
    try:
        return kafka_broker_count(host, int(port))
    except (OSError, RuntimeError, struct.error):
        return 0


# --------------------------------------------------------------------------- misc


def cmd_extract(zip_path, dest):
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            path = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)


def port_free(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return False
    except OSError:
        return True


def main(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("kafka-probe")
    p.add_argument("host")
    p.add_argument("port")
    p = sub.add_parser("es-probe")
    p.add_argument("url")
    p.add_argument("--nodes", type=int, default=1, help="nodes the cluster must have")
    p = sub.add_parser("wait")
    p.add_argument("--timeout", type=float, required=True)
    # Repeated once per broker / node, in the same order for the pids.
    p.add_argument("--kafka", action="append", required=True, help="host:port")
    p.add_argument("--kafka-pid", action="append", type=int, required=True)
    p.add_argument("--es", action="append", required=True, help="http url")
    p.add_argument("--es-pidfile", action="append", required=True)
    p.add_argument("--es-launcher-pid", action="append", type=int, required=True)
    p.add_argument("--prefect", help="Prefect API url (http://host:port/api)")
    p.add_argument("--prefect-pid", type=int, default=0)
    p = sub.add_parser("prefect-probe")
    p.add_argument("url")
    p = sub.add_parser("port-free")
    p.add_argument("host")
    p.add_argument("port")
    p = sub.add_parser("extract")
    p.add_argument("zip")
    p.add_argument("dest")
    sub.add_parser("kafka-cluster-id")
    p = sub.add_parser("procs")
    p.add_argument("stack_home")
    p.add_argument("component", nargs="?")
    p = sub.add_parser("pid-matches")
    p.add_argument("pid")
    p.add_argument("stack_home")
    args = parser.parse_args(argv)

    if args.cmd == "kafka-probe":
        return 0 if kafka_ready(args.host, args.port) else 1
    if args.cmd == "es-probe":
        if args.nodes > 1:
            return 0 if es_node_count(args.url) >= args.nodes else 1
        return 0 if es_ready(args.url) else 1
    if args.cmd == "prefect-probe":
        return 0 if prefect_ready(args.url) else 1
    if args.cmd == "wait":
        return cmd_wait(args)
    if args.cmd == "port-free":
        return 0 if port_free(args.host, args.port) else 1
    if args.cmd == "extract":
        cmd_extract(args.zip, args.dest)
        return 0
    if args.cmd == "kafka-cluster-id":
        print(base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())
        return 0
    if args.cmd == "procs":
        for pid in procs_with_marker(MARKER_PREFIX + args.stack_home, args.component):
            print(pid)
        return 0
    if args.cmd == "pid-matches":
        return 0 if pid_matches(args.pid, MARKER_PREFIX + args.stack_home) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
