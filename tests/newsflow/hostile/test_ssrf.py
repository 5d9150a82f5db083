"""Item 9: server-side request forgery with the guard on (and metadata with it lifted).

Every refused URL names the canary's port, so a guard that let one through would show as
an accepted connection; the connect spy also sees attempts to addresses nothing listens on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from newsflow.errors import PermanentFetchError, TransientFetchError
from newsflow.fetch import BlockedAddress, Fetcher
from newsflow.fetch._guard import GuardedTransport, Resolver
from newsflow.settings import FetchSettings
from tests.newsflow.hostile._support import (
    Canary,
    ConnectSpy,
    ResolverSpy,
    Web,
    article_html,
    redirect,
    reply,
)

PUBLIC = "93.184.215.14"  # a public address, reached only through the connect spy's NAT
PUBLIC_2 = "93.184.215.15"


@pytest.fixture
def make_fetcher() -> Iterator[Any]:
    fetchers: list[Fetcher] = []

    def make(
        *, allow_private: bool = False, resolver: Resolver | None = None, robots: bool = False
    ) -> Fetcher:
        settings = FetchSettings(
            allow_private_networks=allow_private,
            respect_robots=robots,
            per_host_delay=0.0,
            deadline=3.0,
            connect_timeout=1.0,
            read_timeout=1.0,
        )
        transport = GuardedTransport(
            allow_private=allow_private,
            max_connections=4,
            resolver=resolver or ResolverSpy(),
        )
        fetcher = Fetcher(settings, transport=transport)
        fetchers.append(fetcher)
        return fetcher

    yield make
    for fetcher in fetchers:
        fetcher.close()


# Hosts (with the canary's port appended) the guard must refuse; None: refused as a URL.
_REFUSED_HOSTS = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "[::1]",
    "127.1",  # short dotted form
    "2130706433",  # one integer
    "0x7f000001",  # hex integer
    "0x7f.0.0.1",  # hex dotted
    "0177.0.0.1",  # octal dotted (httpx refuses it as a URL)
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
    "[::127.0.0.1]",  # IPv4-compatible
    "0.0.0.0",  # unspecified: Linux connects it to loopback
    "0",
    "[::]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "[fc00::1]",
    "[fd12:3456::1]",
    "169.254.1.1",  # link-local
    "[fe80::1]",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "[ff02::1]",
    "255.255.255.255",
    "240.0.0.1",  # reserved
    "169.254.169.254",  # cloud metadata
    "0xa9fea9fe",
    "2852039166",
    "169.254.43518",
    "[fd00:ec2::254]",
    "100.100.100.200",
]


@pytest.mark.parametrize("host", _REFUSED_HOSTS)
def test_private_and_special_addresses_refused_before_any_connect(
    canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any, host: str
) -> None:
    with pytest.raises(PermanentFetchError) as caught:
        make_fetcher().get(f"http://{host}:{canary.port}/latest/meta-data/")
    if host != "0177.0.0.1":
        assert isinstance(caught.value, BlockedAddress), caught.value
    assert connect_spy.attempts == []
    assert canary.accepted == 0


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["::1", "127.0.0.1"],
        ["10.1.2.3", "192.168.0.7"],
        ["::ffff:127.0.0.1"],
        ["not-an-address"],
    ],
)
def test_a_name_resolving_to_loopback_or_private_is_refused(
    canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any, answers: list[str]
) -> None:
    resolver = ResolverSpy({"news.example": [answers]})
    with pytest.raises(BlockedAddress):
        make_fetcher(resolver=resolver).get(f"http://news.example:{canary.port}/")
    assert resolver.lookups["news.example"] == 1
    assert connect_spy.attempts == [] and canary.accepted == 0


def test_a_name_with_one_public_and_one_loopback_address_connects_only_to_the_public_one(
    web: Web, canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any
) -> None:
    connect_spy.nat[PUBLIC] = web.port
    web.routes["/"] = reply(body=article_html("Mixed"))
    resolver = ResolverSpy({"mixed.example": [["127.0.0.1", PUBLIC]]})
    response = make_fetcher(resolver=resolver).get(f"http://mixed.example:{canary.port}/")
    assert response.status == 200
    assert connect_spy.attempts == [(PUBLIC, canary.port)]
    assert canary.accepted == 0


@pytest.mark.parametrize(
    ("chain", "hops"),
    [
        ({"/go": "http://127.0.0.1:{canary}/admin"}, 1),
        ({"/go": "http://localhost:{canary}/"}, 1),
        ({"/go": "http://2130706433:{canary}/"}, 1),
        ({"/go": "http://[::ffff:127.0.0.1]:{canary}/"}, 1),
        (
            {
                "/go": "/hop2",
                "/hop2": "http://public2.example/hop3",
                "/hop3": "http://0x7f.1:{canary}/",
            },
            3,
        ),  # fmt: skip
        ({"/go": "http://169.254.169.254/latest/meta-data/iam/"}, 1),
        ({"/go": "http://internal.example:{canary}/"}, 1),  # a name that resolves to loopback
    ],
)
def test_redirects_and_chains_ending_private_are_refused(
    web: Web,
    canary: Canary,
    connect_spy: ConnectSpy,
    make_fetcher: Any,
    chain: dict[str, str],
    hops: int,
) -> None:
    connect_spy.nat.update({PUBLIC: web.port, PUBLIC_2: web.port})
    for path, location in chain.items():
        web.routes[path] = redirect(location.format(canary=canary.port), close=True)
    resolver = ResolverSpy(
        {
            "public.example": [[PUBLIC]],
            "public2.example": [[PUBLIC_2]],
            "internal.example": [["127.0.0.1"]],
        }
    )
    with pytest.raises(BlockedAddress):
        make_fetcher(resolver=resolver).get("http://public.example/go")
    assert sum(web.hits.values()) == hops
    assert {host for host, _ in connect_spy.attempts} <= {PUBLIC, PUBLIC_2}
    assert canary.accepted == 0


@pytest.mark.parametrize("robots", [False, True])
def test_dns_rebinding_public_first_then_loopback_is_refused(
    web: Web, canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any, robots: bool
) -> None:
    # Connection: close makes every request a new connection, so every one looks the name up
    # again: the first answer is public, every later one loopback (the canary's address).
    connect_spy.nat[PUBLIC] = web.port
    web.routes["/robots.txt"] = reply(
        body="User-agent: *\nAllow: /\n", headers={"Connection": "close"}
    )
    web.routes["/page"] = redirect("/next", close=True)
    web.routes["/next"] = reply(body=article_html("Rebound"))
    resolver = ResolverSpy({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    fetcher = make_fetcher(resolver=resolver, robots=robots)
    with pytest.raises(BlockedAddress):
        fetcher.get(f"http://rebind.example:{canary.port}/page")
    assert resolver.lookups["rebind.example"] == 2
    assert connect_spy.attempts == [(PUBLIC, canary.port)]  # one connect, to the checked IP
    assert web.hits["/next"] == 0
    assert canary.accepted == 0


_METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://2852039166/",
    "http://169.254.43518/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[::169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd20:ce::254]/",
    "http://168.63.129.16/",
    "http://100.100.100.200/",
    "http://192.0.0.192/",
    "http://metadata.google.internal/computeMetadata/v1/",  # resolves to 169.254.169.254
    "http://public.example/to-metadata",  # redirects there
]


@pytest.mark.parametrize("url", _METADATA_URLS)
def test_metadata_refused_in_every_spelling_with_the_guard_lifted(
    web: Web, canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any, url: str
) -> None:
    connect_spy.nat[PUBLIC] = web.port
    web.routes["/to-metadata"] = redirect("http://0xa9fea9fe/latest/", close=True)
    resolver = ResolverSpy(
        {"metadata.google.internal": [["169.254.169.254"]], "public.example": [[PUBLIC]]}
    )
    with pytest.raises(BlockedAddress, match="cloud metadata endpoint"):
        make_fetcher(allow_private=True, resolver=resolver).get(url)
    assert {host for host, _ in connect_spy.attempts} <= {PUBLIC}


def test_the_canary_counts_what_the_lifted_guard_lets_through(
    canary: Canary, connect_spy: ConnectSpy, make_fetcher: Any
) -> None:
    # The control: with private networks allowed the same URL reaches the canary, so the
    # zero counts above are the guard's doing.
    with pytest.raises(TransientFetchError):
        make_fetcher(allow_private=True).get(f"http://2130706433:{canary.port}/")
    assert connect_spy.attempts == [("127.0.0.1", canary.port)]
    deadline = time.monotonic() + 5
    while canary.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert canary.accepted == 1
