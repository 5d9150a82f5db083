"""The SSRF guard: an httpx transport over an httpcore pool whose network backend checks
every address it connects to.

The backend resolves host names itself and connects only to the checked IP literal, so the
guard holds on every redirect hop and leaves no window for DNS rebinding. Its streams also
clamp each socket timeout to the deadline of the request running on the calling thread
(:func:`deadline_scope`), so one slow read cannot outlive the request's overall deadline.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from newsflow.fetch._errors import BlockedAddress

__all__ = ["GuardedTransport", "Resolver", "deadline_scope", "system_resolver"]

# Log lines name the public package, not this private module (httpx logs as "httpx").
_log = logging.getLogger("newsflow.fetch")

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Sequence[str]]
"""Host name and port -> the IP literals to try, in order; raises OSError when unresolved."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives ``host`` (TCP only)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in infos]


# Refused even with allow_private_networks: no news lives there, credentials do. AWS
# (instance, ECS task and EKS pod identity), GCP, Azure, Alibaba, Oracle, OpenStack.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd20:ce::254",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: _IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL or (ip in _IPV4_COMPATIBLE and int(ip) > 0xFFFF):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_metadata(ip: _IPAddress) -> bool:
    """Whether ``ip`` is a cloud metadata endpoint, in whatever spelling."""
    embedded = _embedded_ipv4(ip)
    return ip in _METADATA_ADDRESSES or (embedded is not None and embedded in _METADATA_ADDRESSES)


def _blocked_reason(ip: _IPAddress) -> str | None:
    """Why the guard refuses ``ip``, or ``None`` for a publicly routable unicast address."""
    if _is_metadata(ip):
        return "cloud metadata endpoint"
    if isinstance(ip, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by it.
        if ip.ipv4_mapped is not None:
            return _blocked_reason(ip.ipv4_mapped)
        if ip in _NAT64:
            return _blocked_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return "private"
        if ip.sixtofour is not None and _blocked_reason(ip.sixtofour) is not None:
            return f"6to4 of {ip.sixtofour}"
        if ip.is_site_local:
            return "site-local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


# The deadline of the request the current thread is running; httpcore does each request's
# I/O on the calling thread, so the guarded streams can clamp every socket timeout to it.
_local = threading.local()


def _clamp(timeout: float | None) -> float | None:
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    remaining = max(deadline - time.monotonic(), 0.001)
    return remaining if timeout is None else min(timeout, remaining)


@contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Clamp the socket timeouts of this thread's guarded streams to ``deadline``."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to addresses the guard accepts.

    Connecting to the checked IP literal leaves no window for DNS rebinding; TLS still
    verifies the URL's host name, which httpcore passes to ``start_tls`` separately.
    """

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._allow_private = allow_private
        self._resolve = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            literals = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label too long for IDNA
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        allowed: list[str] = []
        refused: list[str] = []
        for literal in literals:
            try:
                ip = ipaddress.ip_address(literal.partition("%")[0])
            except ValueError:  # a resolver's answer that is no address at all
                refused.append(f"{literal!r} (not an IP address)")
                continue
            reason = _blocked_reason(ip)
            if _is_metadata(ip) or (reason is not None and not self._allow_private):
                refused.append(f"{ip} ({reason})")
            elif literal not in allowed:
                allowed.append(literal)
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to refused addresses: {refused}")
        *others, last = allowed
        for literal in others:
            try:
                return self._connect(literal, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                _log.debug(
                    "connect to %s (%s) failed: %s; trying the next address", host, literal, exc
                )
        return self._connect(last, port, timeout, local_address, socket_options)

    def _connect(
        self,
        literal: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(literal, port, _clamp(timeout), local_address, socket_options)
        return _DeadlineStream(stream)


class _PoolStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds; one client context serves all.
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.BaseTransport):
    """httpx transport over an httpcore pool that uses :class:`_GuardedBackend`.

    ``resolver`` replaces the system's name resolution (tests inject rebinding answers).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(allow_private=allow_private, resolver=resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PoolStream(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
