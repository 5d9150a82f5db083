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
  secret FILE                       create FILE (mode 0600) with a random password,
                                    unless it exists
  scram-arg USER PASSWORD_FILE      print kafka-storage's --add-scram value for USER
                                    (SCRAM-SHA-512, salted here: no password in it)
  es-secure-setup URL [options]     create an API key of the stack's Elasticsearch user
                                    (kept in a 0600 file; `up --secure` fails without it)

With --secure stacks, the probes speak TLS: kafka-probe and wait take --tls-ca,
--tls-cert, --tls-key (the SSL listener requires a client certificate); es-probe
and wait take --es-ca and --es-password-file (user elastic). Secrets are only
ever read from files.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request
import zipfile

CLIENT_ID = b"newsflow-stack"
MARKER_PREFIX = "-Dnewsflow.stack.home="

# Set from the command line of a --secure stack (see main): TLS for the Kafka probe,
# TLS and basic auth for the Elasticsearch probe.
KAFKA_TLS = None  # ssl.SSLContext
ES_TLS = None  # ssl.SSLContext
ES_AUTH = None  # "Basic ..." header value


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
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = KAFKA_TLS.wrap_socket(raw, server_hostname=host) if KAFKA_TLS else raw
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
    return _es_get(url, "/_cluster/health", timeout).get("status")


def _es_request(url, path, timeout, *, method="GET", body=None, auth=None):
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if auth or ES_AUTH:
        headers["Authorization"] = auth or ES_AUTH
    req = urllib.request.Request(  # noqa: S310 - callers check the scheme
        url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(req, timeout=timeout, context=ES_TLS) as resp:  # noqa: S310
        return json.load(resp)


def _es_get(url, path, timeout):
    return _es_request(url, path, timeout)


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
        health = _es_get(url, "/_cluster/health", timeout)
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


def read_secret(path):
    with open(path) as f:
        return f.read().strip()


def cmd_secret(path):
    """A random password in a new file only its owner can read; an existing one is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(24) + "\n")


def scram_arg(user, password, iterations=8192):
    """kafka-storage's --add-scram value with the salted password (RFC 5802 Hi())."""
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-512=[name={user},salt={b64(salt).decode()},"
        f"saltedpassword={b64(salted).decode()},iterations={iterations}]"
    )


def kafka_cluster_id():
    """16 random bytes in URL-safe base64, as Kafka's own ids: never starting with '-'
    (kafka-storage would read such an id as an option; about 1 in 64 did)."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cmd_es_secure_setup(args):
    """An API key of the stack's user in a new 0600 file; an existing key that works is kept.

    Elasticsearch stores API keys in its .security system index, created on the first
    request here; its mapping needs the pattern_capture and unique token filters, which the
    newsflow shim plugin provides (the integ-test distribution has no analysis-common).
    Returns 1 with one line on stderr (never the key or the password) when no key can be made.
    """
    url = args.url
    password = read_secret(args.password_file)
    try:
        if os.path.exists(args.api_key_file):
            try:
                key = read_secret(args.api_key_file)
                _es_request(url, "/_security/_authenticate", 10, auth="ApiKey " + key)
                return 0
            except urllib.error.HTTPError as exc:
                if exc.code != 401:
                    raise
                # e.g. invalidated, or the data was purged since: make a new one
                os.unlink(args.api_key_file)
        key = _es_request(
            url,
            "/_security/api_key",
            60,
            method="POST",
            body={"name": "newsflow-stack", "metadata": {"made_by": "deploy/local/stack"}},
            auth=_basic(args.user, password),
        )
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace")[:300]
        print(f"no elasticsearch API key: HTTP {exc.code}: {reason}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # URLError is an OSError; a body that is not JSON
        print(f"no elasticsearch API key: {exc}", file=sys.stderr)
        return 1
    fd = os.open(args.api_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key["encoded"] + "\n")
    print(
        f"  elasticsearch API key {key['id']} of {args.user} in {args.api_key_file}",
        file=sys.stderr,
    )
    return 0


def _tls_context(ca, cert=None, key=None):
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


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
    tls = argparse.ArgumentParser(add_help=False)
    tls.add_argument("--tls-ca", help="CA file: the Kafka probe speaks TLS")
    tls.add_argument("--tls-cert", help="client certificate (PEM) for the Kafka probe")
    tls.add_argument("--tls-key", help="its key (PEM, not encrypted)")
    tls.add_argument("--es-ca", help="CA file of the Elasticsearch nodes (https)")
    tls.add_argument("--es-password-file", help="password of the user elastic")
    p = sub.add_parser("kafka-probe", parents=[tls])
    p.add_argument("host")
    p.add_argument("port")
    p = sub.add_parser("es-probe", parents=[tls])
    p.add_argument("url")
    p.add_argument("--nodes", type=int, default=1, help="nodes the cluster must have")
    p = sub.add_parser("secret")
    p.add_argument("file")
    p = sub.add_parser("scram-arg")
    p.add_argument("user")
    p.add_argument("password_file")
    p = sub.add_parser("es-secure-setup", parents=[tls])
    p.add_argument("url")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--api-key-file", required=True)
    p = sub.add_parser("wait", parents=[tls])
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
    global KAFKA_TLS, ES_TLS, ES_AUTH  # noqa: PLW0603 - set once, before any probe
    if getattr(args, "tls_ca", None):
        KAFKA_TLS = _tls_context(args.tls_ca, args.tls_cert, args.tls_key)
    if getattr(args, "es_ca", None):
        ES_TLS = _tls_context(args.es_ca)
    if getattr(args, "es_password_file", None):
        ES_AUTH = _basic("elastic", read_secret(args.es_password_file))

    if args.cmd == "secret":
        cmd_secret(args.file)
        return 0
    if args.cmd == "scram-arg":
        print(scram_arg(args.user, read_secret(args.password_file)))
        return 0
    if args.cmd == "es-secure-setup":
        return cmd_es_secure_setup(args)

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
        print(kafka_cluster_id())
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
