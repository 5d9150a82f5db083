"""A local news site for tests: serves tests/fixtures/site on 127.0.0.1 like a real server.

Absolute URLs in the fixture files are written ``{{BASE}}/...`` and are replaced with the
server's own base URL. Feeds answer conditional GETs (ETag / Last-Modified) unless told
not to, every request is recorded, and any path can be overridden at run time.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

FIXTURE_SITE = Path(__file__).resolve().parent.parent / "fixtures" / "site"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".jpg": "image/jpeg",
    ".pdf": "application/pdf",
}


@dataclass
class Response:
    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] | None = None


class Site:
    """The running server; ``base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, root: Path, base: str) -> None:
        self.root = root
        self.base = base
        self.hits: Counter[str] = Counter()
        self.request_headers: list[tuple[str, dict[str, str]]] = []
        self.overrides: dict[str, Response] = {}
        self.conditional = True
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def read(self, path: str) -> str:
        """A fixture file with ``{{BASE}}`` replaced by this server's base URL."""
        text = (self.root / path.lstrip("/")).read_text(encoding="utf-8")
        return text.replace("{{BASE}}", self.base)

    def set(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8",
            status: int = 200, headers: dict[str, str] | None = None) -> None:  # fmt: skip
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.overrides["/" + path.lstrip("/")] = Response(data, content_type, status, headers)

    def reset_hits(self) -> None:
        with self._lock:
            self.hits.clear()
            self.request_headers.clear()

    def article_hits(self) -> int:
        """Requests for article pages (not feeds, robots.txt or other files)."""
        return sum(n for path, n in self.hits.items() if path.endswith(".html"))

    def resolve(self, path: str) -> Response | None:
        if path in self.overrides:
            return self.overrides[path]
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_file() or self.root.resolve() not in file.parents:
            return None
        data = file.read_bytes().replace(b"{{BASE}}", self.base.encode())
        return Response(data, _TYPES.get(file.suffix, "application/octet-stream"))

    def record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.hits[path] += 1
            self.request_headers.append((path, headers))


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            site.record(path, {k.lower(): v for k, v in self.headers.items()})
            response = site.resolve(path)
            if response is None:
                self._send(404, b"<html><body><h1>Not found</h1></body></html>", "text/html")
                return
            etag = '"' + hashlib.sha256(response.body).hexdigest()[:16] + '"'
            is_feed = path.startswith("/feeds/")
            if (
                is_feed
                and site.conditional
                and response.status == 200
                and self.headers.get("If-None-Match") == etag
            ):
                self._send(304, b"", response.content_type, {"ETag": etag})
                return
            extra = dict(response.headers or {})
            if is_feed and site.conditional:
                extra.setdefault("ETag", etag)
                extra.setdefault("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            self._send(response.status, response.body, response.content_type, extra)

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

    return Handler


@contextmanager
def serve_site(root: Path = FIXTURE_SITE) -> Iterator[Site]:
    """Serve ``root`` on an ephemeral loopback port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Site(root, "")))
    host, port = server.server_address[:2]
    site = Site(root, f"http://{host!s}:{port}")
    server.RequestHandlerClass = _handler(site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
