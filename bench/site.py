"""A generated local news site for the benchmark, and the servers that publish it.

:func:`generate` writes N article pages spread over H loopback hosts (127.0.0.2,
127.0.0.3, ...), one directory per host, plus each host's ``robots.txt`` and RSS feeds.
Pages are built around the page chrome of the fixture site (``tests/fixtures/site``):
the template's head, cookie banner, header, navigation, sidebar and footer stay; the
article in between is generated (byline, date, dek, paragraphs, sub-heads, figures,
quotes) and the page is padded towards a size drawn between 20 and 300 KB with what
real news pages carry: a hydration JSON blob, inline styles, a related-links list, a
share widget and a comments section. Everything is deterministic for a seed.

``python -m bench.site serve ROOT PORT`` serves ROOT/<address>/ on every address it
finds there, one threaded HTTP/1.1 server per address, all on PORT; feed files may be
rewritten while it runs (atomically), which is how new articles "appear".
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from html import escape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["Item", "Site", "free_port", "generate", "host_addresses", "write_feed"]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "tests" / "fixtures" / "site"
FEED = "feed.xml"
MIN_BYTES = 20_000
MAX_BYTES = 300_000

_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“])")
_HEAD_META = re.compile(
    r"<meta\b[^>]*(?:property|name)=\"(?:og:|article:|twitter:|author|description|keywords|"
    r"news_keywords)[^\"]*\"[^>]*>\s*"
)
_HEAD_LINK = re.compile(r"<link rel=\"(?:canonical|amphtml)\"[^>]*>\s*")
_JSON_LD = re.compile(r"<script type=\"application/ld\+json\">.*?</script>\s*", re.DOTALL)
_TITLE = re.compile(r"<title>.*?</title>", re.DOTALL)

_FIRST = ["Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines",
          "Jonas", "Keisha", "Liam", "Maya", "Nadia", "Oscar", "Priya", "Quentin", "Rosa",
          "Samir", "Tamsin", "Uma", "Victor", "Wen", "Yusuf", "Zoe"]  # fmt: skip
_LAST = ["Abara", "Bergström", "Castillo", "Delacroix", "Eriksen", "Fontaine", "Gallagher",
         "Haddad", "Ivanova", "Jiménez", "Kowalski", "Lindqvist", "Moreau", "Nakamura",
         "Okafor", "Petrov", "Quinn", "Rossi", "Santos", "Tanaka", "Uddin", "Varga",
         "Whitfield", "Yilmaz", "Zhou"]  # fmt: skip
_SECTIONS = ["politics", "world", "business", "tech", "science", "sports", "culture", "health"]
_TOPICS = ["Council", "Harbour", "Senate", "Markets", "Transit", "Budget", "Drought",
           "Election", "Vaccine", "Orbit", "Tariff", "Strike", "Festival", "Reactor",
           "Pipeline", "Court", "Stadium", "Glacier", "Housing", "Startup"]  # fmt: skip
_VERBS = ["Weighs", "Rejects", "Backs", "Delays", "Unveils", "Questions", "Expands",
          "Cuts", "Probes", "Approves", "Revives", "Halts"]  # fmt: skip
_OBJECTS = ["Plan", "Deal", "Inquiry", "Reform", "Overhaul", "Ban", "Rescue Package",
            "Merger", "Ruling", "Forecast", "Expansion", "Budget Line"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Item:
    """One article as its feed lists it."""

    number: int
    host: str
    path: str
    title: str
    summary: str
    author: str
    published: datetime

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}/{self.path}"


@dataclass(frozen=True, slots=True)
class Site:
    """What :func:`generate` wrote: the items of each host and their page sizes."""

    root: Path
    port: int
    hosts: list[str]
    items: list[Item]
    page_bytes: list[int]

    def page(self, item: Item) -> Path:
        return self.root / item.host / item.path

    def by_host(self, items: Sequence[Item] | None = None) -> dict[str, list[Item]]:
        grouped: dict[str, list[Item]] = {host: [] for host in self.hosts}
        for item in self.items if items is None else items:
            grouped[item.host].append(item)
        return grouped


def host_addresses(count: int) -> list[str]:
    """127.0.0.2, 127.0.0.3, ... (the whole of 127/8 is loopback; nothing to set up)."""
    if not 1 <= count <= 250:
        raise ValueError("between 1 and 250 hosts")
    return [f"127.0.0.{2 + n}" for n in range(count)]


def free_port(hosts: Sequence[str]) -> int:
    """A TCP port free on every one of ``hosts``."""
    for _attempt in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every benchmark host")


# --- text --------------------------------------------------------------------------------


def _corpus() -> list[str]:
    """Sentences of the fixture pages' paragraphs (real-looking news prose)."""
    sentences: list[str] = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        if "private" in path.parts:
            continue
        for raw in _PARAGRAPH.findall(path.read_text(encoding="utf-8")):
            text = " ".join(_TAG.sub("", raw).split())
            if len(text) < 80:
                continue
            sentences.extend(s for s in _SENTENCE.split(text) if 40 <= len(s) <= 400)
    return sorted(set(sentences))


def _templates() -> list[tuple[str, str]]:
    """(before the article, after it) of every fixture page with one <article>."""
    parts: list[tuple[str, str]] = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        if "private" in path.parts or "video" in path.name:
            continue
        html = path.read_text(encoding="utf-8")
        if html.count("<article") != 1 or html.count("</article>") != 1:
            continue
        before, rest = html.split("<article", 1)
        before = _JSON_LD.sub("", _HEAD_LINK.sub("", _HEAD_META.sub("", before)))
        parts.append((before, rest.split("</article>", 1)[1]))
    return parts


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _paragraph(rng: random.Random, corpus: list[str]) -> str:
    sentences = rng.sample(corpus, rng.randint(2, 6))
    if rng.random() < 0.35:
        sentences.insert(
            rng.randrange(len(sentences) + 1),
            f"“We expect {rng.randint(2, 97)} percent of it by {rng.choice(_FIRST)}day,” "
            f"said {_name(rng)}, who has followed the {rng.choice(_TOPICS).lower()} "
            f"for {rng.randint(2, 30)} years.",
        )
    return " ".join(escape(s, quote=False) for s in sentences)


def _filler_links(rng: random.Random, base: str, count: int, css: str) -> str:
    rows = []
    for _ in range(count):
        section = rng.choice(_SECTIONS)
        slug = f"{rng.choice(_TOPICS).lower()}-{rng.choice(_VERBS).lower()}-{rng.randint(1, 99999)}"
        rows.append(
            f'<li class="{css}__item"><a href="{base}/{section}/{slug}.html">'
            f'<img src="{base}/static/img/thumb-{rng.randint(1, 9999)}.jpg" alt="" loading="lazy"'
            f' width="120" height="68"><span class="{css}__title">{rng.choice(_TOPICS)} '
            f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}</span></a></li>"
        )
    return "".join(rows)


def _comments(rng: random.Random, corpus: list[str], count: int) -> str:
    rows = []
    for n in range(count):
        text = escape(" ".join(rng.sample(corpus, rng.randint(1, 2))), quote=False)
        rows.append(
            f'<li class="comment" id="comment-{n}"><div class="comment-meta"><span '
            f'class="comment-author">{_name(rng)}</span> <span class="comment-date">'
            f'{rng.randint(1, 23)} hours ago</span></div><p class="comment-body">{text}</p>'
            f'<div class="comment-actions"><a href="#reply-{n}">Reply</a> <a href="#flag">Report'
            f'</a> <span class="likes">{rng.randint(0, 400)} likes</span></div></li>'
        )
    return (
        '<section id="reader-comments" class="comments-area"><h2 class="comments-title">'
        f'{count} Comments</h2><ol class="comment-list">{"".join(rows)}</ol></section>'
    )


def _teaser(rng: random.Random, corpus: list[str], base: str) -> str:
    section, story = rng.choice(_SECTIONS), rng.randint(1, 99999)
    image = rng.randint(1, 9999)
    title = f"{rng.choice(_TOPICS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    dek = escape(rng.choice(corpus)[:140], quote=False)
    return (
        f'<div class="teaser"><div class="teaser__media"><a href="{base}/{section}/{story}.html">'
        f'<picture><source srcset="{base}/img/{image}.webp" type="image/webp">'
        f'<img src="{base}/img/t{image}.jpg" alt=""></picture></a></div>'
        f'<div class="teaser__body"><span class="teaser__kicker">{rng.choice(_TOPICS)}</span>'
        f'<h3 class="teaser__title"><a href="{base}/{section}/{story}.html">{title}</a></h3>'
        f'<p class="teaser__dek">{dek}</p></div></div>'
    )


def _menu(rng: random.Random, base: str) -> str:
    items = []
    for section in rng.sample(_SECTIONS, min(3, len(_SECTIONS))):
        subs = "".join(
            f'<li class="menu-item"><a href="{base}/{section}/{topic.lower()}/">{topic}</a></li>'
            for topic in rng.sample(_TOPICS, min(4, len(_TOPICS)))
        )
        items.append(
            f'<li class="menu-item"><a href="{base}/{section}/">{section.title()}</a>'
            f'<ul class="sub-menu">{subs}</ul></li>'
        )
    return "".join(items)


def _widgets(rng: random.Random, corpus: list[str], base: str, size: int) -> str:
    """Sidebar and footer chrome as real templates nest it: wrappers in wrappers, teasers,
    menus, ad slots and newsletter boxes. Markup like this, not script or style, is what
    costs an extractor its time (a page's DOM, walked and scored node by node)."""
    blocks = []
    total = 0
    while total < size:
        teasers = "".join(_teaser(rng, corpus, base) for _ in range(rng.randint(3, 8)))
        block = (
            f'<div class="widget-area"><div class="widget widget-{rng.randint(1, 99)}">'
            f'<div class="widget__inner"><div class="widget__header"><h2 class="widget__title">'
            f'{rng.choice(_TOPICS)}</h2></div><div class="widget__content">{teasers}</div>'
            f'</div></div><nav class="widget-menu"><ul class="menu">{_menu(rng, base)}</ul></nav>'
            f'<div class="ad-slot" data-slot="{rng.getrandbits(32)}"><div class="ad-label">'
            f'Advertisement</div><div class="ad-frame"></div></div><div class="newsletter">'
            f'<form><label>Get the {rng.choice(_TOPICS)} briefing</label><input type="email" '
            f'placeholder="Email"><button>Sign up</button></form></div></div>'
        )
        blocks.append(block)
        total += len(block)
    return "".join(blocks)


def _styles(rng: random.Random, size: int) -> str:
    rules = []
    total = 0
    while total < size:
        rule = (
            f".c{rng.getrandbits(32):08x}{{margin:{rng.randint(0, 40)}px {rng.randint(0, 40)}px;"
            f"color:#{rng.getrandbits(24):06x};font-size:{rng.randint(10, 32)}px}}"
        )
        rules.append(rule)
        total += len(rule)
    return f"<style>{''.join(rules)}</style>"


def _hydration(rng: random.Random, size: int) -> str:
    blob: list[dict[str, object]] = []
    total = 0
    while total < size:
        entry = {
            "id": rng.getrandbits(40),
            "slot": f"/2104/site/{rng.choice(_SECTIONS)}/{rng.randint(1, 12)}",
            "sizes": [[rng.choice([300, 728, 970]), rng.choice([90, 250, 600])]],
            "targeting": {"kw": rng.sample(_TOPICS, 3), "pos": rng.randint(1, 9)},
        }
        blob.append(entry)
        total += 140
    return (
        '<script id="__APP_STATE__" type="application/json">'
        f"{json.dumps({'ads': blob, 'experiment': rng.getrandbits(16)})}</script>"
    )


def _article_page(
    rng: random.Random,
    corpus: list[str],
    template: tuple[str, str],
    item: Item,
    base: str,
    authors: list[str],
    section: str,
) -> str:
    target = int(math.exp(rng.uniform(math.log(MIN_BYTES), math.log(MAX_BYTES))))
    url = f"{base}/{item.path}"
    iso = item.published.isoformat()
    head_extra = (
        f'<link rel="canonical" href="{url}">'
        f'<meta name="description" content="{escape(item.summary)}">'
        f'<meta name="author" content="{escape("; ".join(authors))}">'
        f'<meta property="og:title" content="{escape(item.title)}">'
        f'<meta property="og:url" content="{url}">'
        f'<meta property="og:type" content="article">'
        '<meta property="og:site_name" content="The Meridian Ledger">'
        f'<meta property="og:image" content="{base}/static/img/{item.number}-1200x630.jpg">'
        f'<meta property="article:section" content="{section.title()}">'
        f'<meta property="article:published_time" content="{iso}">'
    )
    before, after = template
    before = _TITLE.sub(f"<title>{escape(item.title)} | The Meridian Ledger</title>", before, 1)
    before = before.replace("</head>", head_extra + "</head>", 1).replace("{{BASE}}", base)
    after = after.replace("{{BASE}}", base)

    body: list[str] = []
    for n in range(rng.randint(4, 14 + target // 12_000)):
        if n and n % rng.randint(3, 6) == 0:
            body.append(f"<h2>{rng.choice(_TOPICS)} and the {rng.choice(_OBJECTS).lower()}</h2>")
        if rng.random() < 0.12:
            figure = rng.randint(1, 9999)
            body.append(
                f'<figure class="wp-caption"><img src="{base}/static/img/{figure}.jpg" '
                f'width="1024" height="576" alt="Scene {figure}"><figcaption>Photo by '
                f"{_name(rng)}</figcaption></figure>"
            )
        if rng.random() < 0.06:
            body.append(f"<blockquote><p>{_paragraph(rng, corpus)}</p></blockquote>")
        body.append(f"<p>{_paragraph(rng, corpus)}</p>")
    byline = ", ".join(
        f'<a rel="author" href="{base}/author/{a.lower().replace(" ", "-")}/">{escape(a)}</a>'
        for a in authors
    )
    share = (
        '<div class="share-buttons"><span>Share this article</span>'
        f'<a class="share-btn" href="https://www.facebook.com/sharer/sharer.php?u={url}">Facebook'
        f'</a><a class="share-btn" href="https://twitter.com/intent/tweet?url={url}">Twitter</a>'
        f'<a class="share-btn" href="mailto:?body={url}">Email</a></div>'
    )
    article = (
        f'<article id="post-{item.number}" class="post type-post status-publish">'
        f'<div class="entry-header-wrap"><span class="entry-kicker"><a href="{base}/{section}/">'
        f'{section.title()}</a></span><h1 class="entry-title">{escape(item.title)}</h1></div>'
        f'<p class="entry-dek">{escape(item.summary)}</p>'
        f'<div class="byline">By {byline} <time datetime="{iso}">'
        f"{item.published:%B %d, %Y %H:%M} UTC</time></div>{share}"
        f'<div class="entry-content article-content">{"".join(body)}</div>{share}</article>'
    )
    page = before + article + after
    room = max(0, target - len(page.encode("utf-8")))
    # Padding as real pages carry it: nested widget chrome, related lists and comments
    # (the bulk of a news page's DOM), plus script state and styles.
    styles = _styles(rng, int(room * 0.04))
    hydration = _hydration(rng, int(room * 0.06))
    related = _filler_links(rng, base, int(room * 0.10) // 260, "related")
    comments = _comments(rng, corpus, int(room * 0.20) // 520)
    widgets = _widgets(rng, corpus, base, int(room * 0.60))
    extra = (
        f'<aside class="related-links"><h2>More from the Ledger</h2><ul>{related}</ul></aside>'
        + comments
        + f'<aside id="secondary" class="sidebar">{widgets}</aside>'
    )
    page = before.replace("</head>", styles + "</head>", 1) + article + extra + after
    return page.replace("</body>", hydration + "</body>", 1)


def write_feed(path: Path, host: str, port: int, items: Sequence[Item]) -> None:
    """Write an RSS 2.0 feed of ``items`` (newest first) to ``path``, atomically."""
    base = f"http://{host}:{port}"
    rows = "".join(
        f"<item><title>{escape(i.title)}</title><link>{i.url(port)}</link>"
        f'<guid isPermaLink="true">{i.url(port)}</guid>'
        f"<pubDate>{format_datetime(i.published)}</pubDate>"
        f"<dc:creator>{escape(i.author)}</dc:creator>"
        f"<description>{escape(i.summary)}</description></item>"
        for i in sorted(items, key=lambda i: i.published, reverse=True)
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Ledger {host}</title><link>{base}/</link>"
        f"<description>Bench news from {host}</description><language>en</language>"
        f"{rows}</channel></rss>\n"
    )
    temporary = path.with_suffix(".tmp")
    temporary.write_text(xml, encoding="utf-8")
    os.replace(temporary, path)


def generate(root: Path, articles: int, hosts: int, *, seed: int = 11, port: int) -> Site:
    """Write ``articles`` pages over ``hosts`` addresses; each host gets ``feed.xml``."""
    rng = random.Random(seed)
    corpus = _corpus()
    templates = _templates()
    addresses = host_addresses(hosts)
    epoch = datetime(2025, 1, 1, tzinfo=UTC)
    items: list[Item] = []
    sizes: list[int] = []
    for host in addresses:
        (root / host).mkdir(parents=True, exist_ok=True)
        (root / host / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
    for number in range(articles):
        host = addresses[number % hosts]
        section = rng.choice(_SECTIONS)
        published = epoch + timedelta(minutes=7 * number + rng.randint(0, 6))
        title = (
            f"{rng.choice(_TOPICS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"as {rng.choice(_LAST)} Report Lands (No. {number})"
        )
        authors = [_name(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        item = Item(
            number=number,
            host=host,
            path=f"{section}/{published:%Y/%m}/story-{number:06d}.html",
            title=title,
            summary=escape(rng.choice(corpus), quote=False),
            author=authors[0],
            published=published,
        )
        html = _article_page(
            rng, corpus, rng.choice(templates), item, f"http://{host}:{port}", authors, section
        )
        path = root / host / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = html.encode("utf-8")
        path.write_bytes(data)
        items.append(item)
        sizes.append(len(data))
    site = Site(root=root, port=port, hosts=addresses, items=items, page_bytes=sizes)
    for host, listed in site.by_host().items():
        write_feed(root / host / FEED, host, port, listed)
    return site


# --- serving -----------------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as news sites serve

    def log_message(self, format: str, *args: object) -> None:
        return None

    def send_head(self) -> Any:
        # Last-Modified has one-second resolution: a feed rewritten within the second of
        # the previous fetch would be answered 304 and its new entries missed.
        if self.path.split("?", 1)[0].endswith(".xml"):
            del self.headers["If-Modified-Since"]
        return super().send_head()


def _serve(root: Path, port: int) -> None:
    servers = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        handler = partial(_Quiet, directory=str(directory))
        server = ThreadingHTTPServer((directory.name, port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"serving {len(servers)} hosts on port {port}", flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "serve":
        sys.exit("usage: python -m bench.site serve ROOT PORT")
    _serve(Path(sys.argv[2]), int(sys.argv[3]))
