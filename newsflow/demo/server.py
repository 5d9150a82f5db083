"""The demo news server: the bundled site on 127.0.0.1, in one of two phases.

Files under ``site/`` are served as they are, with ``{{BASE}}`` replaced by the server's
own address. In phase 2 a file under ``site/_phase2/`` takes the place of the file with
the same path: that is how one article (and the feed listing it) changes between two
polls. Every answer carries an ``ETag`` and a ``Last-Modified``; a conditional GET that
matches is answered ``304 Not Modified``, so an unchanged feed costs one empty answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

__all__ = ["SITE_DIR", "DemoSite", "serve_demo_site"]

SITE_DIR = Path(__file__).resolve().parent / "site"
_OVERLAY = "_phase2"
# The site's clock: phase-1 files were last changed at the first moment, the phase-2
# overlay at the second (when the changed article was updated).
_LAST_MODIFIED = {
    1: datetime(2024, 6, 12, 12, 0, tzinfo=UTC),
    2: datetime(2024, 6, 12, 22, 40, tzinfo=UTC),
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """One answer body with its validators."""

    body: bytes
    content_type: str
    etag: str
    last_modified: datetime


class DemoSite:
    """The running site: its address, its phase and the requests it has answered."""

    def __init__(self, root: Path, base: str, phase: int = 1) -> None:
        self.root = root
        self.base = base
        self.hits: Counter[str] = Counter()
        """Requests per path, 304 answers included."""
        self.not_modified: Counter[str] = Counter()
        """``304 Not Modified`` answers per path."""
        self._lock = threading.Lock()
        self._phase = 1
        self.phase = phase

    @property
    def phase(self) -> int:
        """1 before the article changes, 2 after."""
        return self._phase

    @phase.setter
    def phase(self, value: int) -> None:
        if value not in _LAST_MODIFIED:
            raise ValueError(f"phase must be 1 or 2, got {value!r}")
        self._phase = value

    def url(self, path: str) -> str:
        """Absolute URL of a site path (``feeds/politics.rss`` or ``/feeds/politics.rss``)."""
        return f"{self.base}/{path.lstrip('/')}"

    def resolve(self, path: str) -> Resource | None:
        """What ``GET path`` answers in the current phase, or ``None`` for 404."""
        file, phase = self._file(path)
        if file is None:
            return None
        body = file.read_bytes().replace(b"{{BASE}}", self.base.encode("ascii"))
        content_type = _TYPES.get(file.suffix, "application/octet-stream")
        if file.suffix in (".rss", ".atom") and body.lstrip()[:15].lower() in (
            b"<!doctype html>",
            b"<html>",
        ):
            # A feed URL answered with an error page: the CMS labels it as HTML.
            content_type = _TYPES[".html"]
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return Resource(body, content_type, etag, _LAST_MODIFIED[phase])

    def _file(self, path: str) -> tuple[Path | None, int]:
        parts = PurePosixPath(unquote(path)).parts[1:]  # drop the leading "/"
        if any(part in ("..", ".") or part.startswith("_") for part in parts):
            return None, 1
        relative = Path(*parts) if parts else Path()
        candidates = [(self.root / relative, 1)]
        if self._phase == 2:
            candidates.insert(0, (self.root / _OVERLAY / relative, 2))
        for candidate, phase in candidates:
            if candidate.is_dir():
                candidate = candidate / "index.html"
            if candidate.is_file():
                return candidate, phase
        return None, 1

    def record(self, path: str, not_modified: bool) -> None:
        """Count one answered request (the handler calls this)."""
        with self._lock:
            self.hits[path] += 1
            if not_modified:
                self.not_modified[path] += 1


def _fresh(resource: Resource, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether the client's copy is current (RFC 9110: If-None-Match wins when present)."""
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or resource.etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and resource.last_modified <= since
    return False


def _handler(site: DemoSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "MeridianDemo/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _answer(self, *, with_body: bool) -> None:
            path = urlsplit(self.path).path or "/"
            resource = site.resolve(path)
            if resource is None:
                site.record(path, not_modified=False)
                body = b"<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>"
                self._send(404, {"Content-Type": _TYPES[".html"]}, body, with_body)
                return
            headers = {
                "ETag": resource.etag,
                "Last-Modified": format_datetime(resource.last_modified, usegmt=True),
                "Cache-Control": "max-age=60",
            }
            fresh = _fresh(
                resource, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            )
            site.record(path, not_modified=fresh)
            if fresh:
                self._send(304, headers, b"", with_body=False)
                return
            headers["Content-Type"] = resource.content_type
            self._send(200, headers, resource.body, with_body)

        def _send(self, status: int, headers: dict[str, str], body: bytes, with_body: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body and status != 304:
                self.wfile.write(body)

    return Handler


@contextmanager
def serve_demo_site(root: Path = SITE_DIR, *, phase: int = 1) -> Iterator[DemoSite]:
    """Serve ``root`` on an ephemeral port of 127.0.0.1 for the duration of the block."""
    site = DemoSite(root, "", phase)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    site.base = f"http://{host!s}:{port}"
    # A short poll interval: shutdown() waits for the loop to notice.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="demo-site", daemon=True
    )
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
