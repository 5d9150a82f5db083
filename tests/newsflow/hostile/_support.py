"""What the hostile-input tests share: a canary listener, a scriptable web server on
127.0.0.1, a connect spy that maps "public" addresses onto it, and embedded settings.

Nothing here touches the network beyond 127.0.0.0/8: a "public" address such as
93.184.215.14 is reached only through :class:`ConnectSpy`, which records every connect
newsflow attempts and sends the mapped ones to a local server.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import pytest

from newsflow.fetch._guard import system_resolver
from newsflow.settings import Settings

Route = Callable[[BaseHTTPRequestHandler], None]


class Canary:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts (and drops them)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-canary", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on purpose here (caps, deadlines)


class Web:
    """A threaded HTTP server on 127.0.0.1 whose paths are answered by plain functions."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.partition("?")[0]
                with web._lock:
                    web.hits[path] += 1
                try:
                    (web.routes.get(path) or reply(404, b"not found"))(self)
                except OSError:
                    pass  # the client hung up on purpose (caps, deadlines)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hostile-web",
            daemon=True,
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(
    status: int = 200,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    content_type: str = "text/html; charset=utf-8",
) -> Route:
    """A route answering with ``body`` (a Content-Length unless ``headers`` set one)."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        all_headers = {"Content-Type": content_type} | (headers or {})
        for name, value in all_headers.items():
            handler.send_header(name, value)
        if "Content-Length" not in all_headers:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route


def redirect(location: str, status: int = 302, *, close: bool = False) -> Route:
    headers = {"Location": location} | ({"Connection": "close"} if close else {})
    return reply(status, headers=headers)


def streamed(chunks: Iterable[bytes], headers: dict[str, str], *, delay: float = 0.0) -> Route:
    """A route writing ``chunks`` with no Content-Length, closing the connection at the end."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        for name, value in (headers | {"Connection": "close"}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True
        for chunk in chunks:
            if delay:
                time.sleep(delay)
            handler.wfile.write(chunk)
            handler.wfile.flush()

    return route


class ConnectSpy:
    """Records every TCP connect newsflow makes; ``nat`` maps "public" IPs to local ports."""

    def __init__(self, nat: dict[str, int] | None = None) -> None:
        self.nat = dict(nat or {})
        self.attempts: list[tuple[str, int]] = []


@pytest.fixture
def connect_spy(monkeypatch: pytest.MonkeyPatch) -> ConnectSpy:
    spy = ConnectSpy()
    real = httpcore.SyncBackend.connect_tcp

    def connect(
        self: httpcore.SyncBackend,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        spy.attempts.append((host, port))
        if host in spy.nat:
            host, port = "127.0.0.1", spy.nat[host]
        return real(self, host, port, timeout, local_address, socket_options)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect)
    return spy


class ResolverSpy:
    """A resolver: scripted answers per host name (one list per lookup, the last repeats),
    the system's for everything else; every lookup recorded."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]] | None = None) -> None:
        self.answers = {name: [list(a) for a in lists] for name, lists in (answers or {}).items()}
        self.lookups: Counter[str] = Counter()

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups[host] += 1
        scripted = self.answers.get(host)
        if scripted is None:
            return system_resolver(host, port)
        return scripted[min(self.lookups[host], len(scripted)) - 1]


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def web() -> Iterator[Web]:
    server = Web()
    yield server
    server.close()


def embedded_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a run on the embedded SQLite buffer and store under ``tmp_path``.

    The local servers live on loopback, so the guard is lifted (each SSRF test builds its
    own guarded fetcher); ``sections`` override fields per section (``fetch={...}``).
    """
    base = Settings(data_dir=tmp_path / "data")
    defaults: dict[str, dict[str, Any]] = {
        "fetch": {
            "allow_private_networks": True,
            "per_host_delay": 0.0,
            "per_host_concurrency": 8,
            "respect_robots": False,
            "deadline": 5.0,
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
        },
        "extract": {"workers": 2, "page_timeout": 15.0},
        "indexer": {"poll_timeout": 0.2, "idle_timeout": 1.0},
        "feed": {"parse_timeout": 10.0},
    }
    update: dict[str, Any] = {
        "kafka": base.kafka.model_copy(update={"bootstrap_servers": None}),
        "elasticsearch": base.elasticsearch.model_copy(update={"url": None}),
    }
    for name in set(defaults) | set(sections):
        fields = defaults.get(name, {}) | sections.get(name, {})
        update[name] = getattr(base, name).model_copy(update=fields)
    return base.model_copy(update=update)


_WORDS = (
    "The city council voted on Tuesday to expand the harbour ferry service after months of "
    "debate over its cost, its schedule and the noise it brings to the waterfront. "
)


def article_html(title: str, paragraphs: int = 6) -> str:
    """A plain news article page that trafilatura extracts (well over 250 characters)."""
    body = "".join(f"<p>{_WORDS} Paragraph {n} of {title}.</p>\n" for n in range(paragraphs))
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}"
        "</article><footer>© Example News</footer></body></html>"
    )


def rss(links: Sequence[str], title: str = "Hostile test feed") -> str:
    """An RSS 2.0 feed with one item per link, newest first."""
    items = "".join(
        f"<item><title>Story {n}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Tue, 0{1 + n % 9} Apr 2024 10:00:00 GMT</pubDate></item>"
        for n, link in enumerate(links)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>http://example.invalid/</link>"
        f"<description>test</description>{items}</channel></rss>"
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def elapsed() -> Iterator[list[float]]:
    """``with elapsed() as took:`` then ``took[0]`` is the block's seconds."""
    took: list[float] = []
    started = time.monotonic()
    try:
        yield took
    finally:
        took.append(time.monotonic() - started)
