"""Tests of newsflow.fetch against real HTTP servers on 127.0.0.1 (no external network)."""

from __future__ import annotations

import functools
import gzip
import ipaddress
import pickle
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from newsflow import fetch
from newsflow.errors import (
    FetchError,
    PermanentError,
    PermanentFetchError,
    TransientError,
    TransientFetchError,
)
from newsflow.fetch import (
    BlockedAddress,
    BodyTooLarge,
    Fetcher,
    FetchResponse,
    HttpStatusError,
    RobotsDisallowed,
    RobotsUnavailable,
    _client,
    _guard,
    _politeness,
)
from newsflow.settings import FetchSettings

Route = Callable[[BaseHTTPRequestHandler], None]


class _Server:
    """A threaded HTTP server whose paths are answered by plain functions."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with server._lock:
                    server.hits[self.path] += 1
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                try:
                    route = server.routes.get(self.path.partition("?")[0])
                    (route or _reply(404, b"not found"))(self)
                except OSError:
                    pass  # the client hung up on purpose (caps, deadlines)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        if delay:
            time.sleep(delay)
        handler.send_response(status)
        all_headers = {"Content-Type": "text/html; charset=utf-8"} | (headers or {})
        for name, value in all_headers.items():
            handler.send_header(name, value)
        if "Content-Length" not in all_headers:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def _redirect(status: int, location: str) -> Route:
    return _reply(status, headers={"Location": location})


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def make_fetcher() -> Iterator[Callable[..., Fetcher]]:
    fetchers: list[Fetcher] = []

    def make(**overrides: Any) -> Fetcher:
        values: dict[str, Any] = {
            "allow_private_networks": True,
            "respect_robots": False,
            "per_host_delay": 0.0,
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "deadline": 5.0,
            "user_agent": "newsflow-test/1.0 (+https://example.invalid/bot)",
        } | overrides
        fetcher = Fetcher(FetchSettings(**values))
        fetchers.append(fetcher)
        return fetcher

    yield make
    for fetcher in fetchers:
        fetcher.close()


class _FakeClock:
    """A monotonic clock that moves only when told to; sleeping on it is recorded, not done.

    With ``advance`` each sleep moves the clock on; without it the clock stands still, so
    every wait is measured from the same instant whichever thread asks first.
    """

    def __init__(self, *, advance: bool) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._advance = advance
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if self._advance:
                self.now += seconds


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    """Fetchers made after this fixture space requests on a clock that stands still."""
    clock = _FakeClock(advance=False)
    with_clock = functools.partial(_politeness.Politeness, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(_client, "Politeness", with_clock)
    return clock


# --- SSRF guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("169.254.1.1", True),
        ("100.64.1.1", True),
        ("100.100.100.200", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("255.255.255.255", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("fd00:ec2::254", True),
        ("ff02::1", True),
        ("fec0::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("2002:7f00:1::1", True),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("8.8.8.8", False),
        ("93.184.215.14", False),
        ("2606:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("64:ff9b::808:808", False),
        ("2002:808:808::1", False),
    ],
)
def test_address_classification(address: str, blocked: bool) -> None:
    reason = _guard._blocked_reason(ipaddress.ip_address(address))
    assert (reason is not None) is blocked, reason


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::ffff:127.0.0.1]",
        "2130706433",  # 127.0.0.1 as one integer
        "0x7f.1",
        "0.0.0.0",
        "10.255.255.1",
        "169.254.169.254",
        "100.64.1.1",
        "[::1]",
    ],
)
@pytest.mark.parametrize("respect_robots", [False, True])
def test_guard_refuses_before_connecting(
    server: _Server, make_fetcher: Callable[..., Fetcher], host: str, respect_robots: bool
) -> None:
    server.routes["/"] = _reply(body=b"secret")
    server.routes["/robots.txt"] = _reply(body=b"User-agent: *\nAllow: /\n")
    fetcher = make_fetcher(allow_private_networks=False, respect_robots=respect_robots)
    with pytest.raises(BlockedAddress) as caught:
        fetcher.get(f"http://{host}:{server.port}/")
    assert isinstance(caught.value, PermanentError)
    assert server.hits == {}


def test_backend_connect_tcp_checks_resolved_address(server: _Server) -> None:
    with pytest.raises(BlockedAddress):
        _guard._GuardedBackend(allow_private=False).connect_tcp("localhost", server.port)
    stream = _guard._GuardedBackend(allow_private=True).connect_tcp("localhost", server.port)
    stream.close()
    # Metadata endpoints stay refused even when private networks are allowed.
    with pytest.raises(BlockedAddress):
        _guard._GuardedBackend(allow_private=True).connect_tcp("169.254.169.254", 80)


_METADATA_SPELLINGS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a9fe:a9fe",
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
    "::169.254.169.254",  # IPv4-compatible
    "fd00:ec2::254",
    "169.254.170.2",  # ECS task metadata
    "::ffff:169.254.170.2",
    "fd20:ce::254",
    "100.100.100.200",
    "64:ff9b::6464:64c8",  # NAT64 of 100.100.100.200
]


@pytest.mark.parametrize("address", _METADATA_SPELLINGS)
def test_metadata_endpoints_refused_in_every_spelling_even_with_private_networks(
    monkeypatch: pytest.MonkeyPatch, make_fetcher: Callable[..., Fetcher], address: str
) -> None:
    # A canary: the guard must refuse before any connection is attempted (these addresses
    # are not routable here, so a missing refusal would show only as a connect error).
    attempts: list[str] = []

    def spy(self: object, host: str, *args: object, **kwargs: object) -> httpcore.NetworkStream:
        attempts.append(host)
        raise httpcore.ConnectError(f"canary: connect to {host} attempted")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", spy)
    host = f"[{address}]" if ":" in address else address
    fetcher = make_fetcher(allow_private_networks=True)
    with pytest.raises(BlockedAddress, match="cloud metadata endpoint"):
        fetcher.get(f"http://{host}/latest/meta-data/")
    assert attempts == []


def test_every_redirect_hop_is_checked_at_connect(
    server: _Server, make_fetcher: Callable[..., Fetcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend 127.0.0.1 is public so the first hop passes; 127.0.0.2 stays loopback.
    real = _guard._blocked_reason

    def only_127_0_0_1_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Any:
        return None if str(ip) == "127.0.0.1" else real(ip)

    monkeypatch.setattr(_guard, "_blocked_reason", only_127_0_0_1_is_public)
    inner = _Server(host="127.0.0.2")
    try:
        inner.routes["/admin"] = _reply(body=b"internal")
        server.routes["/go"] = _redirect(302, inner.url("/admin", host="127.0.0.2"))
        server.routes["/ok"] = _reply(body=b"public")
        fetcher = make_fetcher(allow_private_networks=False)
        assert fetcher.get(server.url("/ok")).body == b"public"
        with pytest.raises(BlockedAddress):
            fetcher.get(server.url("/go"))
        assert server.hits["/go"] == 1
        assert inner.hits == {}
    finally:
        inner.close()


def test_tls_verifies_the_url_host_after_connecting_to_the_ip(
    tmp_path: Path, make_fetcher: Callable[..., Fetcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    monkeypatch.setattr(_guard, "_ssl_context", lambda: client_context)
    tls_server = _Server(tls=server_context)
    try:
        tls_server.routes["/"] = _reply(body=b"over tls")
        fetcher = make_fetcher()
        # Connected to the checked 127.0.0.1, verified as "localhost" (the cert has no IP).
        assert fetcher.get(f"https://localhost:{tls_server.port}/").body == b"over tls"
        with pytest.raises(TransientFetchError) as caught:
            fetcher.get(f"https://127.0.0.1:{tls_server.port}/")
        assert "certificate" in str(caught.value).lower()
    finally:
        tls_server.close()


# --- redirects --------------------------------------------------------------------------


def _chain(server: _Server, name: str, statuses: list[int]) -> str:
    """Redirect /name/0 -> /name/1 -> ... -> /name/N (200); return the first URL."""
    for i, status in enumerate(statuses):
        server.routes[f"/{name}/{i}"] = _redirect(status, f"/{name}/{i + 1}")
    server.routes[f"/{name}/{len(statuses)}"] = _reply(body=b"end of " + name.encode())
    return server.url(f"/{name}/0")


def test_redirect_limit(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    fetcher = make_fetcher(max_redirects=5)
    ok = fetcher.get(_chain(server, "five", [302] * 5))
    assert ok.body == b"end of five"
    assert ok.url == server.url("/five/5")
    with pytest.raises(PermanentFetchError, match="redirects"):
        fetcher.get(_chain(server, "six", [302] * 6))
    assert server.hits["/six/5"] == 1
    assert server.hits["/six/6"] == 0


def test_permanent_redirect_reported(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    fetcher = make_fetcher()
    mixed = fetcher.get(_chain(server, "mixed", [301, 308, 302]))
    assert mixed.permanent_redirect == server.url("/mixed/2")
    assert mixed.url == server.url("/mixed/3")
    assert fetcher.get(_chain(server, "temp", [302, 301])).permanent_redirect is None
    assert fetcher.get(_chain(server, "none", [])).permanent_redirect is None
    moved = fetcher.get(_chain(server, "moved", [301]))
    assert moved.permanent_redirect == moved.url == server.url("/moved/1")


def test_redirect_to_other_scheme_refused(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    server.routes["/ftp"] = _redirect(302, "ftp://127.0.0.1/file")
    server.routes["/file"] = _redirect(302, "file:///etc/passwd")
    fetcher = make_fetcher()
    for path in ("/ftp", "/file"):
        with pytest.raises(PermanentFetchError, match="only http and https"):
            fetcher.get(server.url(path))
    with pytest.raises(PermanentFetchError):
        fetcher.get("ftp://127.0.0.1/")


def test_credentials_dropped_on_cross_origin_redirect(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    other = _Server()
    try:
        other.routes["/x"] = _reply(body=b"x")
        server.routes["/away"] = _redirect(302, other.url("/x"))
        fetcher = make_fetcher()
        fetcher.get(server.url("/away"), headers={"Authorization": "Bearer t", "X-Keep": "1"})
        assert server.headers[0]["authorization"] == "Bearer t"
        assert "authorization" not in other.headers[0]
        assert other.headers[0]["x-keep"] == "1"
    finally:
        other.close()


# --- body size, compression, deadlines ----------------------------------------------------


def _gzip_of_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + compressor.flush()


def test_gzip_bomb_refused_without_inflating_it(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    bomb = _gzip_of_zeros(50 * 1024 * 1024)
    assert len(bomb) < 100_000
    server.routes["/bomb"] = _reply(
        body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}
    )
    fetcher = make_fetcher(max_body_bytes=1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            fetcher.get(server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # a few MiB at most, never the 50 MiB inflated


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
    ],
)
def test_compressed_bodies_decoded(
    server: _Server,
    make_fetcher: Callable[..., Fetcher],
    coding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    page = b"<html><body>" + b"<p>news</p>" * 500 + b"</body></html>"
    server.routes["/z"] = _reply(body=compress(page), headers={"Content-Encoding": coding})
    response = make_fetcher().get(server.url("/z"))
    assert response.body == page
    assert server.headers[0]["accept-encoding"] == "gzip, deflate"


def test_body_cap_by_content_length_and_by_streaming(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    def announce_then_stall(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(2 * 1024 * 1024))
        handler.end_headers()
        time.sleep(10)  # reading the body would end in a (transient) timeout, not BodyTooLarge

    def unannounced(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
        for _ in range(40):
            handler.wfile.write(bytes(64 * 1024))

    server.routes["/announced"] = announce_then_stall
    server.routes["/unannounced"] = unannounced
    server.routes["/fits"] = _reply(body=b"a" * 1024 * 1024)
    fetcher = make_fetcher(max_body_bytes=1024 * 1024)
    with pytest.raises(BodyTooLarge, match="Content-Length"):
        fetcher.get(server.url("/announced"))
    with pytest.raises(BodyTooLarge):
        fetcher.get(server.url("/unannounced"))
    assert len(fetcher.get(server.url("/fits")).body) == 1024 * 1024


def test_deadline_stops_a_slow_drip(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.3)

    server.routes["/drip"] = drip
    # No single read waits longer than 0.3 s, so only the overall deadline can stop the
    # 30 s drip; the upper bound is generous because this machine may be loaded.
    fetcher = make_fetcher(deadline=0.5, read_timeout=5.0)
    started = time.monotonic()
    with pytest.raises(TransientFetchError, match="deadline exceeded"):
        fetcher.get(server.url("/drip"))
    assert 0.45 <= time.monotonic() - started < 10.0


def test_deadline_covers_redirect_hops(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    # Each hop alone fits in the deadline; the chain (at least 1.2 s) does not.
    for i in range(4):
        server.routes[f"/slow/{i}"] = _reply(302, headers={"Location": f"/slow/{i + 1}"}, delay=0.3)
    server.routes["/slow/4"] = _reply(body=b"late")
    started = time.monotonic()
    with pytest.raises(TransientFetchError, match="deadline exceeded"):
        make_fetcher(deadline=0.5).get(server.url("/slow/0"))
    assert time.monotonic() - started < 10.0
    assert server.hits["/slow/0"] == 1
    assert server.hits["/slow/4"] == 0


def test_read_timeout_is_transient(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    server.routes["/silent"] = _reply(body=b"too late", delay=30.0)
    started = time.monotonic()
    with pytest.raises(TransientFetchError) as caught:
        make_fetcher(read_timeout=0.3, deadline=60.0).get(server.url("/silent"))
    # Far below the 30 s silence and the 60 s deadline: the read timeout ended it.
    assert time.monotonic() - started < 10.0
    assert "deadline exceeded" not in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout | httpcore.ReadTimeout)


def test_connection_refused_is_transient(make_fetcher: Callable[..., Fetcher]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(TransientFetchError):
        make_fetcher().get(f"http://127.0.0.1:{port}/")


def test_invalid_url_is_permanent(make_fetcher: Callable[..., Fetcher]) -> None:
    fetcher = make_fetcher()
    for url in ("http://", "not a url", "http://[::1/", "http://xn--/", "http://h:99999/"):
        with pytest.raises(PermanentFetchError):
            fetcher.get(url)


# --- statuses -----------------------------------------------------------------------------


def test_not_modified_passthrough(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    def conditional(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            _reply(304, headers={"ETag": '"v1"', "Content-Length": "0"})(handler)
        else:
            _reply(body=b"<rss/>", headers={"ETag": '"v1"', "Last-Modified": "x"})(handler)

    server.routes["/feed"] = conditional
    fetcher = make_fetcher()
    fresh = fetcher.get(server.url("/feed"))
    assert (fresh.status, fresh.body, fresh.headers["etag"]) == (200, b"<rss/>", '"v1"')
    assert fresh.headers["last-modified"] == "x"
    same = fetcher.get(server.url("/feed"), headers={"If-None-Match": fresh.headers["etag"]})
    assert (same.status, same.body) == (304, b"")


@pytest.mark.parametrize("status", [404, 410, 403])
def test_client_errors_are_permanent(
    server: _Server, make_fetcher: Callable[..., Fetcher], status: int
) -> None:
    server.routes["/gone"] = _reply(status, b"nope")
    with pytest.raises(HttpStatusError) as caught:
        make_fetcher().get(server.url("/gone"))
    assert caught.value.status == status
    assert isinstance(caught.value, PermanentFetchError)
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize("status", [503, 429, 500, 408])
def test_server_errors_are_transient_with_retry_after(
    server: _Server, make_fetcher: Callable[..., Fetcher], status: int
) -> None:
    server.routes["/busy"] = _reply(status, headers={"Retry-After": "7"})
    with pytest.raises(HttpStatusError) as caught:
        make_fetcher().get(server.url("/busy"))
    assert caught.value.status == status
    assert caught.value.retry_after == 7.0
    assert isinstance(caught.value, TransientFetchError)
    assert not isinstance(caught.value, PermanentError)


def test_retry_after_http_date(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.routes["/later"] = _reply(503, headers={"Retry-After": when})
    server.routes["/none"] = _reply(503)
    fetcher = make_fetcher()
    with pytest.raises(HttpStatusError) as caught:
        fetcher.get(server.url("/later"))
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120
    with pytest.raises(HttpStatusError) as caught:
        fetcher.get(server.url("/none"))
    assert caught.value.retry_after is None


# --- charset ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "encoding", "expected"),
    [
        ("text/html; charset=ISO-8859-15", b"<p>\xa4 5</p>", "iso8859-15", "€ 5"),
        ('text/html; charset="utf-8"', "<p>naïve</p>".encode(), "utf-8", "naïve"),
        (
            "text/html",
            b'<html><head><meta charset="windows-1252"></head><p>\x93quoted\x94</p>',
            "cp1252",
            "\u201cquoted\u201d",
        ),
        (
            "text/html",
            b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
            b"<p>caf\xe9 \x96 bar</p>",
            "cp1252",  # browsers read latin-1 labels as windows-1252
            "café – bar",
        ),
        (
            "application/rss+xml",
            b'<?xml version="1.0" encoding="ISO-8859-2"?><rss><title>\xb1</title></rss>',
            "iso8859-2",
            "ą",
        ),
        ("text/html; charset=bogus-9", "<p>ok ✓</p>".encode(), "utf-8", "ok ✓"),
        ("text/html", "<p>plain ✓</p>".encode(), "utf-8", "plain ✓"),
        # A BOM wins over a contradicting header.
        ("text/html; charset=iso-8859-1", b"\xef\xbb\xbf<p>\xc3\xa9</p>", "utf-8", "<p>é</p>"),
        ("text/plain", "\ufeffdé".encode("utf-16-le"), "utf-16-le", "dé"),
    ],
)
def test_charset_detection(
    server: _Server,
    make_fetcher: Callable[..., Fetcher],
    content_type: str,
    body: bytes,
    encoding: str,
    expected: str,
) -> None:
    server.routes["/page"] = _reply(body=body, headers={"Content-Type": content_type})
    response = make_fetcher().get(server.url("/page"))
    assert response.encoding == encoding
    assert expected in response.text()
    assert not response.text().startswith("\ufeff")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=base64", "<p>café ✓</p>".encode()),
        ("text/html; charset=zlib", "<p>café ✓</p>".encode()),
        ("text/html; charset=utf-7", "<p>café ✓</p>".encode()),
        ("text/html; charset=x-user-defined", "<p>café ✓</p>".encode()),
        ("text/html", '<meta charset="rot13"><p>café ✓</p>'.encode()),
        ("text/html", '<meta charset="uu"><p>café ✓</p>'.encode()),
        ("text/html", '<meta charset="hex"><p>café ✓</p>'.encode()),
        ("text/html", '<meta charset="utf-7"><p>café ✓</p>'.encode()),
        ("application/rss+xml", '<?xml version="1.0" encoding="bz2"?><p>café ✓</p>'.encode()),
        ("application/rss+xml", '<?xml version="1.0" encoding="punycode"?><p>café ✓</p>'.encode()),
    ],
)
def test_charset_labels_that_are_not_web_encodings_fall_back_to_detection(
    server: _Server, make_fetcher: Callable[..., Fetcher], content_type: str, body: bytes
) -> None:
    # Python codecs that are no WHATWG encoding label (base64, rot13, zlib, utf-7, ...)
    # are as if no label were given: UTF-8 here, by detection.
    server.routes["/page"] = _reply(body=body, headers={"Content-Type": content_type})
    response = make_fetcher().get(server.url("/page"))
    assert response.encoding == "utf-8"
    assert "café ✓" in response.text()


def test_text_survives_an_encoding_python_does_not_know() -> None:
    response = FetchResponse(
        url="http://example.com/", status=200, headers={}, body="ok ✓".encode(),
        content_type="text/html", encoding="base64", permanent_redirect=None, elapsed=0.1,
    )  # fmt: skip
    assert response.text() == "ok ✓"


def test_charset_guessed_without_any_declaration(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    text = "Президент заявил, что правительство рассмотрит новый бюджет на неделе. " * 10
    server.routes["/ru"] = _reply(body=text.encode("cp1251"), headers={"Content-Type": "text/html"})
    response = make_fetcher().get(server.url("/ru"))
    assert response.encoding == "cp1251"
    assert response.text() == text


def test_content_type_and_binary_bodies(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    server.routes["/img"] = _reply(body=b"\x89PNG\r\n", headers={"Content-Type": "image/png"})
    server.routes["/xhtml"] = _reply(
        body=b"<html/>", headers={"Content-Type": "Application/XHTML+XML; charset=UTF-8"}
    )
    fetcher = make_fetcher()
    image = fetcher.get(server.url("/img"))
    assert (image.content_type, image.encoding, image.is_html) == ("image/png", None, False)
    page = fetcher.get(server.url("/xhtml"))
    assert (page.content_type, page.encoding, page.is_html) == (
        "application/xhtml+xml",
        "utf-8",
        True,
    )
    assert isinstance(page, FetchResponse)
    assert page.elapsed > 0


# --- robots.txt ---------------------------------------------------------------------------


def test_robots_disallow_and_bypass(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    server.routes["/robots.txt"] = _reply(
        body=b"User-agent: *\nDisallow: /private/\n", headers={"Content-Type": "text/plain"}
    )
    server.routes["/private/a"] = _reply(body=b"hidden")
    server.routes["/public/a"] = _reply(body=b"open")
    fetcher = make_fetcher(respect_robots=True)
    with pytest.raises(RobotsDisallowed):
        fetcher.get(server.url("/private/a"))
    assert server.hits["/private/a"] == 0
    assert fetcher.get(server.url("/public/a")).body == b"open"
    assert fetcher.get(server.url("/private/a"), respect_robots=False).body == b"hidden"
    results = fetcher.get_many([server.url(f"/public/a?{i}") for i in range(6)])
    assert all(isinstance(r, FetchResponse) for r in results)
    assert server.hits["/robots.txt"] == 1
    assert make_fetcher(respect_robots=False).get(server.url("/private/a")).body == b"hidden"
    assert server.hits["/robots.txt"] == 1


def test_robots_fetched_once_under_concurrency(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    server.routes["/robots.txt"] = _reply(body=b"User-agent: *\nAllow: /\n", delay=0.2)
    for i in range(8):
        server.routes[f"/p{i}"] = _reply(body=b"ok")
    fetcher = make_fetcher(respect_robots=True, per_host_concurrency=8, concurrency=8)
    results = fetcher.get_many([server.url(f"/p{i}") for i in range(8)])
    assert [r.body for r in results if isinstance(r, FetchResponse)] == [b"ok"] * 8
    assert server.hits["/robots.txt"] == 1


def test_robots_agent_specific_rules(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    server.routes["/robots.txt"] = _reply(
        body=b"User-agent: newsflow-test\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    )
    with pytest.raises(RobotsDisallowed):
        make_fetcher(respect_robots=True).get(server.url("/news"))
    other = make_fetcher(respect_robots=True, user_agent="otherbot/2.0")
    with pytest.raises(HttpStatusError):  # allowed, so the server answers: 404
        other.get(server.url("/news"))
    assert server.hits["/news"] == 1


def _robots_verdicts(
    server: _Server, make_fetcher: Callable[..., Fetcher], robots: bytes, paths: list[str]
) -> dict[str, bool]:
    """Which of ``paths`` the fetcher requested (True) or refused by robots.txt (False)."""
    server.routes["/robots.txt"] = _reply(body=robots, headers={"Content-Type": "text/plain"})
    fetcher = make_fetcher(respect_robots=True)
    verdicts = {}
    for path in paths:
        server.routes[path.partition("?")[0]] = _reply(body=b"page")
        try:
            fetcher.get(server.url(path))
        except RobotsDisallowed:
            verdicts[path] = False
        else:
            verdicts[path] = True
        assert server.hits[path] == int(verdicts[path])  # refused means never requested
    return verdicts


def test_robots_wildcard_and_end_anchor(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    robots = b"User-agent: *\nDisallow: /*.pdf$\nDisallow: /tmp*/draft\n"
    paths = ["/a/b.pdf", "/a/b.pdf?x=1", "/a/b.pdfx", "/a/b.html", "/tmp-1/x/draft", "/tmp"]
    assert _robots_verdicts(server, make_fetcher, robots, paths) == {
        "/a/b.pdf": False,
        # "$" anchors the end of path and query together, so a query escapes it.
        "/a/b.pdf?x=1": True,
        "/a/b.pdfx": True,
        "/a/b.html": True,
        "/tmp-1/x/draft": False,
        "/tmp": True,
    }


@pytest.mark.parametrize(
    "robots",
    [
        b"User-agent: *\nDisallow: /news/\nAllow: /news/public/\n",
        b"User-agent: *\nAllow: /news/public/\nDisallow: /news/\n",
    ],
    ids=["disallow-first", "allow-first"],
)
def test_robots_longest_match_wins_whatever_the_order(
    server: _Server, make_fetcher: Callable[..., Fetcher], robots: bytes
) -> None:
    paths = ["/news/public/x", "/news/x", "/news/", "/other"]
    assert _robots_verdicts(server, make_fetcher, robots, paths) == {
        "/news/public/x": True,
        "/news/x": False,
        "/news/": False,
        "/other": True,
    }


def test_robots_equal_length_allow_wins(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    # RFC 9309 2.2.2: of equally specific rules, the least restrictive one applies.
    robots = b"User-agent: *\nDisallow: /page\nAllow: /page\nDisallow: /pages\n"
    assert _robots_verdicts(server, make_fetcher, robots, ["/page", "/pages"]) == {
        "/page": True,
        "/pages": False,
    }


def test_robots_missing_allows_and_server_error_pauses(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    server.routes["/page"] = _reply(body=b"ok")
    assert make_fetcher(respect_robots=True).get(server.url("/page")).body == b"ok"

    server.routes["/robots.txt"] = _reply(503)
    fetcher = make_fetcher(respect_robots=True)
    for _ in range(2):
        with pytest.raises(RobotsUnavailable) as caught:
            fetcher.get(server.url("/page"))
        assert isinstance(caught.value, TransientError)
    assert server.hits["/page"] == 1  # only the first fetcher's request
    assert server.hits["/robots.txt"] == 2  # once per fetcher: the 503 is cached too


@pytest.mark.parametrize(("crawl_delay", "wait"), [(b"1", 1.0), (b"2.5", 2.5), (b"600", 10.0)])
def test_crawl_delay_spaces_requests(
    server: _Server,
    make_fetcher: Callable[..., Fetcher],
    frozen_clock: _FakeClock,
    crawl_delay: bytes,
    wait: float,
) -> None:
    server.routes["/robots.txt"] = _reply(body=b"User-agent: *\nCrawl-delay: " + crawl_delay)
    server.routes["/a"] = _reply(body=b"a")
    fetcher = make_fetcher(respect_robots=True)
    results = fetcher.get_many([server.url("/a"), server.url("/a")])
    assert all(isinstance(r, FetchResponse) for r in results)
    assert server.hits == {"/robots.txt": 1, "/a": 2}
    # robots.txt and the first page go at once; the second page waits the (capped) delay.
    assert frozen_clock.sleeps == [wait]


# --- concurrency --------------------------------------------------------------------------


class _Held:
    """A route that counts the requests it holds, from arrival until it starts to answer.

    Counting stops before the answer goes out, so a client that reuses its slot at once is
    never counted twice. Each request waits (5 s at most) until ``together`` were held at
    once, so a limit is seen reached, not merely not exceeded, however loaded the machine.
    """

    def __init__(self, together: int, hold: float) -> None:
        self.max_held = 0
        self._together = together
        self._hold = hold
        self._held = 0
        self._changed = threading.Condition()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        with self._changed:
            self._held += 1
            self.max_held = max(self.max_held, self._held)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.max_held >= self._together, timeout=5.0)
        time.sleep(self._hold)  # gives a broken limit the chance to show
        with self._changed:
            self._held -= 1
        _reply(body=b"held")(handler)


def test_per_host_concurrency_limit(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    route = _Held(together=2, hold=0.1)
    for i in range(8):
        server.routes[f"/c{i}"] = route
    fetcher = make_fetcher(per_host_concurrency=2, concurrency=8)
    results = fetcher.get_many([server.url(f"/c{i}") for i in range(8)])
    assert all(isinstance(r, FetchResponse) for r in results)
    assert route.max_held == 2


def test_global_concurrency_limit(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    route = _Held(together=1, hold=0.05)
    for i in range(4):
        server.routes[f"/g{i}"] = route
    fetcher = make_fetcher(per_host_concurrency=4, concurrency=1)
    threads = [threading.Thread(target=fetcher.get, args=(server.url(f"/g{i}"),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.hits.total() == 4
    assert route.max_held == 1


def test_politeness_delay_spaces_starts_per_host() -> None:
    clock = _FakeClock(advance=True)
    politeness = _politeness.Politeness(
        concurrency=4, per_host_concurrency=4, per_host_delay=0.25, clock=clock, sleep=clock.sleep
    )
    starts: list[tuple[str, float]] = []
    for host in ("a", "a", "b", "a", "b"):
        with politeness.slot(host):
            starts.append((host, clock()))
    assert starts == [
        ("a", 1000.0),
        ("a", 1000.25),
        ("b", 1000.25),  # another host does not wait for "a"
        ("a", 1000.5),
        ("b", 1000.5),  # its delay ran out while "a" waited
    ]
    assert clock.sleeps == [0.25, 0.25]


def test_crawl_delay_raises_but_never_lowers_the_politeness_delay() -> None:
    clock = _FakeClock(advance=True)
    politeness = _politeness.Politeness(
        concurrency=1, per_host_concurrency=1, per_host_delay=0.5, clock=clock, sleep=clock.sleep
    )
    politeness.set_delay("slow", 2.0)
    politeness.set_delay("eager", 0.1)
    for host in ("slow", "slow", "eager", "eager"):
        with politeness.slot(host):
            pass
    assert clock.sleeps == [2.0, 0.5]


def test_no_delay_means_no_sleep() -> None:
    clock = _FakeClock(advance=True)
    politeness = _politeness.Politeness(
        concurrency=2, per_host_concurrency=2, per_host_delay=0.0, clock=clock, sleep=clock.sleep
    )
    for _ in range(5):
        with politeness.slot("a"):
            pass
    assert clock.sleeps == []


def test_politeness_delay_through_the_fetcher(
    server: _Server, make_fetcher: Callable[..., Fetcher], frozen_clock: _FakeClock
) -> None:
    server.routes["/d"] = _reply(body=b"d")
    fetcher = make_fetcher(per_host_delay=0.15, per_host_concurrency=4)
    results = fetcher.get_many([server.url("/d")] * 3)
    assert all(isinstance(r, FetchResponse) for r in results)
    assert server.hits["/d"] == 3
    # Three concurrent requests: one goes at once, the others one and two delays later.
    assert sorted(frozen_clock.sleeps) == pytest.approx([0.15, 0.30])


def test_get_many_keeps_order_and_returns_errors(
    server: _Server, make_fetcher: Callable[..., Fetcher]
) -> None:
    server.routes["/slow"] = _reply(body=b"slow", delay=0.2)
    server.routes["/fast"] = _reply(body=b"fast")
    server.routes["/busy"] = _reply(503)
    urls = [
        server.url("/slow"),
        server.url("/missing"),
        server.url("/fast"),
        "ftp://x/",
        server.url("/busy"),
    ]
    done: list[int] = []
    results = make_fetcher(per_host_concurrency=4).get_many(urls, on_done=lambda: done.append(1))
    assert len(done) == 5
    assert isinstance(results[0], FetchResponse) and results[0].body == b"slow"
    assert isinstance(results[1], HttpStatusError) and results[1].status == 404
    assert isinstance(results[2], FetchResponse) and results[2].body == b"fast"
    assert isinstance(results[3], PermanentFetchError)
    assert isinstance(results[4], TransientFetchError)
    assert all(isinstance(r, FetchResponse | FetchError) for r in results)
    assert make_fetcher().get_many([]) == []


def test_user_agent_and_headers_sent(server: _Server, make_fetcher: Callable[..., Fetcher]) -> None:
    server.routes["/h"] = _reply(body=b"h", headers={"X-Thing": "1"})
    with make_fetcher() as fetcher:
        response = fetcher.get(server.url("/h"), headers={"Accept": "application/rss+xml"})
    sent = server.headers[0]
    assert sent["user-agent"] == "newsflow-test/1.0 (+https://example.invalid/bot)"
    assert sent["accept"] == "application/rss+xml"
    assert response.headers["x-thing"] == "1"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_errors_survive_pickling() -> None:
    error = fetch.TransientHttpError("http://x/", 503, 7.0)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (type(copy), copy.status, copy.retry_after, str(copy)) == (
        fetch.TransientHttpError,
        503,
        7.0,
        "http://x/: HTTP 503",
    )


def test_public_face_is_the_package() -> None:
    # The names callers import from newsflow.fetch, whichever private module holds them.
    assert sorted(fetch.__all__) == [
        "BlockedAddress",
        "BodyTooLarge",
        "FetchResponse",
        "Fetcher",
        "HttpStatusError",
        "PermanentHttpError",
        "RobotsDisallowed",
        "RobotsUnavailable",
        "TransientHttpError",
    ]
    assert all(hasattr(fetch, name) for name in fetch.__all__)
