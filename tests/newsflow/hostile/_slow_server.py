"""Slow and silent HTTP servers for the slow-server tests, run in a child process.

``python -m tests.newsflow.hostile._slow_server`` prints one JSON line, ``{"http": PORT,
"backlog": PORT}``, then serves until its stdin closes. Running apart from the test keeps
its connections and threads out of the counts the test takes of its own process.

``http`` answers by path: ``/drip.html?every=S`` sends headers, then one body byte every S
seconds; ``/drip-head.html?every=S`` sends even the status line one byte at a time;
``/silent*`` reads the request and never answers; ``/feed/N.rss`` is a feed of one article,
``/article/N.html``. ``backlog`` listens but never accepts: connects succeed, nothing more.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from urllib.parse import parse_qs, urlsplit

_WORDS = (
    "The city council voted on Tuesday to expand the harbour ferry service after months of "
    "debate over its cost, its schedule and the noise it brings to the waterfront. "
)


def _article(n: str) -> bytes:
    body = "".join(f"<p>{_WORDS} Paragraph {p} of story {n}.</p>" for p in range(6))
    return (
        f"<!doctype html><html lang='en'><head><title>Story {n}</title></head><body>"
        f"<article><h1>Ferry story {n}</h1>{body}</article></body></html>"
    ).encode()


def _feed(base: str, n: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Feed {n}</title><link>{base}/</link><description>d</description>"
        f"<item><title>Story {n}</title><link>{base}/article/{n}.html</link></item>"
        "</channel></rss>"
    ).encode()


def _response(body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        parts = urlsplit(target)
        every = float(parse_qs(parts.query).get("every", ["5"])[0])
        host = writer.get_extra_info("sockname")
        base = f"http://{host[0]}:{host[1]}"
        path = parts.path
        if path.startswith("/silent"):
            await reader.read()  # until the client gives up
        elif path == "/drip.html":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4096\r\n\r\n"
            )
            for _ in range(4096):
                await writer.drain()
                await asyncio.sleep(every)
                writer.write(b"x")
        elif path == "/drip-head.html":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)
        elif path.startswith("/feed/"):
            writer.write(_response(_feed(base, path[6:-4]), "application/rss+xml"))
        elif path.startswith("/article/"):
            writer.write(_response(_article(path[9:-5]), "text/html; charset=utf-8"))
        else:
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main() -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=256)
    backlog = socket.socket()
    backlog.bind(("127.0.0.1", 0))
    backlog.listen(256)  # never accepted
    ports = {"http": server.sockets[0].getsockname()[1], "backlog": backlog.getsockname()[1]}
    print(json.dumps(ports), flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the parent closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    backlog.close()


if __name__ == "__main__":
    asyncio.run(_main())
