"""Dev tool: render the demo news site (``newsflow/demo/site/``) from ``stories.toml``.

    .venv/bin/python -m newsflow.demo._sitegen

The rendered pages, feeds, ``feeds.toml`` and ``manifest.json`` are committed; a test
renders them again and fails when they drift from ``stories.toml`` or this module. Two
files are kept by hand: ``site/robots.txt`` and ``site/politics/reference-article.html``
(a verbatim copy of the fixture site's reference page). Absolute URLs are written
``{{BASE}}/...``; the demo server replaces the placeholder with its own address.

Two page designs stand in for two publishing systems ("ledger", a classic blog theme,
and "capsule", a newer story template), so the extractor meets varied markup: cookie
banners and consent dialogs, navigation, share tools, pull quotes, lists, tables,
related links, comments, newsletter boxes and footers, with or without JSON-LD.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["DEMO_DIR", "render", "write"]

DEMO_DIR = Path(__file__).resolve().parent
_SITE = "site"
_PHASE2 = "_phase2"
_TAG_AUTHORITY = "tag:meridianledger.example,2024:"
_FIRST_POST_ID = 1_204_000
_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
}
_LINK = re.compile(r"\[([^\]]+)\]\((/[^)\s]*)\)")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class _Feed:
    key: str
    path: str
    format: str
    name: str
    title: str
    description: str
    tags: list[str]
    language: str
    poll_interval: str


@dataclass(frozen=True)
class _Story:
    path: str
    feed: str
    kind: str
    layout: str
    lang: str
    section: str
    title: str
    dek: str
    authors: list[str]
    published: datetime
    modified: datetime | None
    tags: list[str]
    jsonld: bool
    caption: str
    body: str
    comments: list[list[str]]
    update: str
    updated: datetime | None
    original: str
    rss_item: str
    first_paragraph: str
    post_id: int

    @property
    def file(self) -> str:
        return f"{self.path}.html"

    @property
    def url(self) -> str:
        return "{{BASE}}/" + self.file

    @property
    def slug(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def last_change(self) -> datetime:
        return self.modified or self.published


def _load(source: Path) -> tuple[dict[str, Any], list[_Feed], list[_Story]]:
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    feeds = [_Feed(**raw) for raw in data["feeds"]]
    by_path: dict[str, Mapping[str, Any]] = {raw["path"]: raw for raw in data["stories"]}
    stories = []
    for number, raw in enumerate(data["stories"]):
        merged = dict(raw)
        if raw.get("kind") == "syndicated":
            # A syndicated copy carries the original's content under another address.
            original = by_path[raw["original"]]
            merged = {**original, **raw, "layout": "wire", "comments": []}
        stories.append(_story(merged, _FIRST_POST_ID + 37 * number))
    return data, feeds, stories


def _story(raw: Mapping[str, Any], post_id: int) -> _Story:
    body = str(raw.get("body", "")).strip()
    return _Story(
        path=raw["path"],
        feed=raw["feed"],
        kind=raw.get("kind", "article"),
        layout=raw.get("layout", "ledger"),
        lang=raw.get("lang", "en"),
        section=raw["section"],
        title=raw["title"],
        dek=raw.get("dek", ""),
        authors=list(raw["authors"]),
        published=datetime.fromisoformat(raw["published"]),
        modified=datetime.fromisoformat(raw["modified"]) if raw.get("modified") else None,
        tags=list(raw.get("tags", [])),
        jsonld=bool(raw.get("jsonld", False)),
        caption=raw.get("caption", ""),
        body=body,
        comments=[list(c) for c in raw.get("comments", [])],
        update=str(raw.get("update", "")).strip(),
        updated=datetime.fromisoformat(raw["updated"]) if raw.get("updated") else None,
        original=raw.get("original", ""),
        rss_item=str(raw.get("rss_item", "")),
        first_paragraph=raw.get("first_paragraph") or body.split("\n\n")[0].strip(),
        post_id=post_id,
    )


# --- article bodies --------------------------------------------------------------------


def _inline(text: str) -> str:
    escaped = _e(text).replace("&#x27;", "'")
    return _LINK.sub(lambda m: f'<a href="{{{{BASE}}}}{m.group(2)}">{m.group(1)}</a>', escaped)


def _body_html(body: str, indent: str) -> list[str]:
    out: list[str] = []
    for block in (b.strip() for b in body.split("\n\n")):
        lines = block.splitlines()
        if block.startswith("## "):
            out.append(f"<h2>{_inline(block[3:])}</h2>")
        elif block.startswith("> "):
            out.append(f'<blockquote class="pull-quote"><p>{_inline(block[2:])}</p></blockquote>')
        elif all(line.startswith("- ") for line in lines):
            out.append("<ul>")
            out.extend(f"  <li>{_inline(line[2:])}</li>" for line in lines)
            out.append("</ul>")
        elif all(line.startswith("| ") for line in lines):
            rows = [[cell.strip() for cell in line.strip("| ").split(" | ")] for line in lines]
            out.append('<table class="data-table">')
            out.append("  <thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in rows[0]))
            out.append("  </tr></thead>")
            out.append("  <tbody>")
            for row in rows[1:]:
                out.append("    <tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
            out.append("  </tbody>")
            out.append("</table>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return [indent + line for line in out]


def _paragraph_count(body: str) -> int:
    return sum(1 for b in body.split("\n\n") if b.strip() and not b.startswith("## "))


# --- shared page parts -----------------------------------------------------------------

_NAV = [
    ("Politics", "politics"),
    ("World", "world"),
    ("Business", "business"),
    ("Tech", "tech"),
    ("Science", "science"),
    ("Health", "health"),
    ("Sports", "sports"),
    ("Culture", "culture"),
    ("Opinion", "opinion"),
]


def _human_date(moment: datetime, lang: str) -> str:
    month = _MONTHS.get(lang, _MONTHS["en"]).split()[moment.month - 1]
    if lang == "de":
        return f"{moment.day}. {month} {moment.year}, {moment:%H:%M} Uhr"
    if lang == "fr":
        return f"{moment.day} {month} {moment.year} à {moment.hour} h {moment:%M}"
    hour = moment.hour % 12 or 12
    return f"{month} {moment.day}, {moment.year} {hour}:{moment:%M} {'a.m.' if moment.hour < 12 else 'p.m.'}"  # noqa: E501


def _author_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _byline_links(authors: Iterable[str]) -> str:
    links = [
        f'<a href="{{{{BASE}}}}/author/{_author_slug(a)}/" rel="author">{_e(a)}</a>'
        for a in authors
    ]
    return " and ".join(links)


def _image(story: _Story, size: str) -> str:
    return "{{BASE}}" + f"/static/img/{story.published:%Y/%m}/{story.slug}-{size}.jpg"


def _head(story: _Story, *, canonical: str, site_name: str, modified: datetime | None) -> str:
    feed_file = {
        "politics": "politics.rss",
        "business": "business.atom",
        "science": "science.rss",
        "sports": "sports-culture.atom",
        "partners": "partners.rss",
    }[story.feed]
    lines = [
        "<head>",
        '  <meta charset="utf-8">',
        '  <meta name="viewport" content="width=device-width, initial-scale=1">',
        f"  <title>{_e(story.title)} | {_e(site_name)}</title>",
        f'  <meta name="description" content="{_e(story.dek)}">',
        f'  <meta name="author" content="{_e(", ".join(story.authors))}">',
        f'  <meta name="keywords" content="{_e(", ".join(story.tags))}">',
        '  <meta name="robots" content="index, follow, max-image-preview:large">',
        f'  <link rel="canonical" href="{canonical}">',
        f'  <link rel="alternate" type="application/rss+xml" href="{{{{BASE}}}}/feeds/{feed_file}">',  # noqa: E501
        '  <link rel="icon" href="{{BASE}}/static/favicon.ico">',
        '  <link rel="stylesheet" href="{{BASE}}/static/css/site.min.css?v=7.3.0">',
        f'  <meta property="og:locale" content="{story.lang}">',
        '  <meta property="og:type" content="article">',
        f'  <meta property="og:site_name" content="{_e(site_name)}">',
        f'  <meta property="og:title" content="{_e(story.title)}">',
        f'  <meta property="og:description" content="{_e(story.dek)}">',
        f'  <meta property="og:url" content="{canonical}">',
        f'  <meta property="og:image" content="{_image(story, "1200x630")}">',
        f'  <meta property="article:published_time" content="{story.published.isoformat()}">',
    ]
    if modified is not None:
        lines.append(f'  <meta property="article:modified_time" content="{modified.isoformat()}">')
    lines.append(f'  <meta property="article:section" content="{_e(story.section)}">')
    lines.extend(f'  <meta property="article:tag" content="{_e(tag)}">' for tag in story.tags)
    lines += [
        '  <meta name="twitter:card" content="summary_large_image">',
        '  <meta name="twitter:site" content="@meridianledger">',
        f'  <meta name="twitter:title" content="{_e(story.title)}">',
    ]
    if story.jsonld:
        lines += _jsonld(story, canonical=canonical, site_name=site_name, modified=modified)
    lines += [
        "  <script>window.dataLayer = window.dataLayer || [];"
        f' window.dataLayer.push({{"pageType": "article", "section": "{story.section.lower()}",'
        f' "articleId": {story.post_id}}});</script>',
        '  <script async src="{{BASE}}/static/js/ads.bundle.js?v=20240601"></script>',
        "</head>",
    ]
    return "\n".join(lines)


def _jsonld(
    story: _Story, *, canonical: str, site_name: str, modified: datetime | None
) -> list[str]:
    document = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "mainEntityOfPage": {"@type": "WebPage", "@id": canonical},
        "headline": story.title,
        "description": story.dek,
        "datePublished": story.published.isoformat(),
        "dateModified": (modified or story.published).isoformat(),
        "author": [
            {"@type": "Person", "name": a, "url": "{{BASE}}/author/" + _author_slug(a) + "/"}
            for a in story.authors
        ],
        "publisher": {
            "@type": "NewsMediaOrganization",
            "name": site_name,
            "logo": {"@type": "ImageObject", "url": "{{BASE}}/static/img/logo-600x60.png"},
        },
        "image": {
            "@type": "ImageObject",
            "url": _image(story, "1200x630"),
            "width": 1200,
            "height": 630,
        },
        "articleSection": story.section,
        "keywords": story.tags,
        "inLanguage": story.lang,
        "isAccessibleForFree": True,
    }
    text = json.dumps(document, ensure_ascii=False, indent=2)
    return [
        '  <script type="application/ld+json">',
        *("  " + line for line in text.splitlines()),
        "  </script>",
    ]


def _related(story: _Story, stories: list[_Story], count: int) -> list[_Story]:
    pool = [s for s in stories if s.feed == story.feed and s.kind == "article" and s != story]
    if not pool:
        return []
    start = next((i for i, s in enumerate(stories) if s.path == story.path), 0) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]


def _most_read(story: _Story, stories: list[_Story]) -> list[_Story]:
    firsts: dict[str, _Story] = {}
    for s in stories:
        if s.kind == "article" and s.feed != story.feed:
            firsts.setdefault(s.feed, s)
    return list(firsts.values())[:4]


def _link_list(items: Iterable[_Story], indent: str) -> list[str]:
    return [f'{indent}<li><a href="{s.url}">{_e(s.title)}</a></li>' for s in items]


# --- the "ledger" design ---------------------------------------------------------------


def _ledger(story: _Story, stories: list[_Story], site_name: str, *, phase2: bool) -> str:
    modified = story.updated if phase2 else story.modified
    body = f"{story.update}\n\n{story.body}" if phase2 else story.body
    paywalled = story.kind == "members"
    nav = [
        f'      <li class="menu-item{" current-menu-item" if label == story.section else ""}">'
        f'<a href="{{{{BASE}}}}/{slug}/">{label}</a></li>'
        for label, slug in _NAV
    ]
    meta = [
        '        <div class="byline">',
        f'          <span class="byline__name">By {_byline_links(story.authors)}</span>',
        "        </div>",
        '        <div class="dateline">',
        f'          <time class="entry-date published" datetime="{story.published.isoformat()}">'
        f"{_human_date(story.published, story.lang)}</time>",
    ]
    if modified is not None and modified != story.published:
        meta.append(
            f'          <span class="updated-label">Updated</span> <time class="updated" '
            f'datetime="{modified.isoformat()}">{_human_date(modified, story.lang)}</time>'
        )
    meta.append("        </div>")
    share = [
        '        <div class="share-buttons">',
        f'          <a class="share-btn share-btn--facebook" href="https://www.facebook.com/sharer/sharer.php?u={story.url}">Share on Facebook</a>',  # noqa: E501
        f'          <a class="share-btn share-btn--x" href="https://x.com/intent/post?url={story.url}">Share on X</a>',  # noqa: E501
        f'          <a class="share-btn share-btn--email" href="mailto:?subject={quote(story.title)}&amp;body={story.url}">Email</a>',  # noqa: E501
        '          <button type="button" class="share-btn share-btn--copy">Copy link</button>',
        "        </div>",
    ]
    if paywalled:
        content = [
            f"        <p>{_inline(story.body)}</p>",
            '        <div class="paywall"><h3>Continue reading with Ledger Insider</h3>',
            '          <a class="btn" href="{{BASE}}/subscribe/">Subscribe for $1 a week</a>'
            ' <a href="{{BASE}}/account/login/">Sign in</a></div>',
        ]
    else:
        blocks = _body_html(body, "        ")
        # An advertisement between the third and fourth block, as the CMS inserts it.
        if len(blocks) > 4:
            blocks.insert(
                3,
                '        <div class="ad-slot ad-inarticle" data-ad-unit="/2104/meridian/'
                f'{story.section.lower()}/inarticle"><span class="ad-label">Advertisement</span>'
                "</div>",
            )
        content = blocks
    related = _related(story, stories, 3)
    comments: list[str] = []
    if story.comments:
        comments += [
            '      <section id="comments" class="comments-area">',
            f'        <h2 class="comments-title">{len(story.comments) + 9} Comments</h2>',
            '        <ol class="comment-list">',
        ]
        for number, (who, said) in enumerate(story.comments):
            comments += [
                f'          <li class="comment" id="comment-{story.post_id + number + 1}">',
                f'            <div class="comment-author vcard"><b class="fn">{_e(who)}</b> '
                '<span class="says">says:</span></div>',
                f'            <div class="comment-content"><p>{_e(said)}</p></div>',
                "          </li>",
            ]
        comments += [
            "        </ol>",
            '        <div id="respond" class="comment-respond"><h3>Leave a Reply</h3>',
            '          <form action="{{BASE}}/comments/post" method="post">'
            '<textarea name="comment" rows="5"></textarea>'
            '<button type="submit">Post Comment</button></form>',
            "        </div>",
            "      </section>",
        ]
    else:
        comments.append('      <p class="comments-closed">Comments are closed on this article.</p>')
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{story.lang}" class="no-js">',
        _head(story, canonical=story.url, site_name=site_name, modified=modified),
        f'<body class="single single-post postid-{story.post_id} section-{story.section.lower()}">',
        '<a class="skip-link screen-reader-text" href="#main-content">Skip to content</a>',
        '<div id="cookie-consent" class="cookie-banner" role="dialog" aria-label="Cookies">',
        '  <p class="cookie-banner__text">We use cookies and similar technologies to keep this '
        "site working, to understand how it is used and to show advertising that may interest "
        "you. Choose &ldquo;Accept&rdquo; to allow all of them or manage your choices in "
        "Privacy Settings.</p>",
        '  <button type="button" class="cookie-banner__accept">Accept</button>',
        '  <button type="button" class="cookie-banner__manage">Privacy Settings</button>',
        "</div>",
        '<div class="ad-slot ad-leaderboard" data-ad-unit="/2104/meridian/top">'
        '<span class="ad-label">Advertisement</span></div>',
        '<header class="site-header" role="banner">',
        '  <div class="site-header__top">',
        f'    <a class="site-logo" href="{{{{BASE}}}}/"><img src="{{{{BASE}}}}/static/img/logo.svg"'
        f' alt="{_e(site_name)}" width="240" height="32"></a>',
        '    <a class="btn btn-subscribe" href="{{BASE}}/subscribe/">Subscribe</a>',
        '    <a class="btn btn-login" href="{{BASE}}/account/login/">Sign In</a>',
        '    <form class="site-search" action="{{BASE}}/search/" method="get" role="search">'
        '<input type="search" name="q" placeholder="Search the Ledger"></form>',
        "  </div>",
        '  <nav class="main-nav" aria-label="Main menu">',
        '    <ul class="menu">',
        *nav,
        "    </ul>",
        "  </nav>",
        "</header>",
        '<div class="site-wrap">',
        '  <main id="main-content" class="site-main">',
        '    <nav class="breadcrumbs" aria-label="Breadcrumb"><a href="{{BASE}}/">Home</a> '
        f'&rsaquo; <a href="{{{{BASE}}}}/{story.section.lower()}/">{_e(story.section)}</a></nav>',
        f'    <article id="post-{story.post_id}" class="post type-post status-publish">',
        '      <div class="entry-header-wrap">',
        '        <span class="entry-kicker">'
        f'<a href="{{{{BASE}}}}/{story.section.lower()}/">{_e(story.section)}</a></span>',
        f'        <h1 class="entry-title">{_e(story.title)}</h1>',
        "      </div>",
        '      <figure class="featured-image wp-caption">',
        f'        <img src="{_image(story, "1024x576")}" width="1024" height="576" '
        f'alt="{_e(story.caption)}">',
        f'        <figcaption class="wp-caption-text">{_e(story.caption)} '
        '<span class="photo-credit">(Meridian Ledger photo)</span></figcaption>',
        "      </figure>",
        '      <div class="article-meta-bar">',
        *meta,
        *share,
        "      </div>",
        '      <div class="entry-content article-content" itemprop="articleBody">',
        *content,
        "      </div>",
        '      <div class="entry-tags tag-list"><span class="tag-list__label">Tags:</span>',
        *(
            f'        <a href="{{{{BASE}}}}/tag/{_author_slug(t)}/" rel="tag">{_e(t)}</a>'
            for t in story.tags
        ),
        "      </div>",
        '      <section class="newsletter-signup">',
        "        <h3>Get the Morning Dispatch</h3>",
        "        <p>The day&rsquo;s most important stories in your inbox before 7 a.m.</p>",
        '        <form action="{{BASE}}/newsletter/subscribe" method="post">'
        '<input type="email" name="email" placeholder="Your email address">'
        '<button type="submit">Sign Me Up</button></form>',
        "      </section>",
        '      <section class="related-stories" aria-labelledby="related-heading">',
        '        <h2 id="related-heading">More From The Meridian Ledger</h2>',
        "        <ul>",
        *_link_list(related, "          "),
        "        </ul>",
        "      </section>",
        *comments,
        "    </article>",
        "  </main>",
        '  <aside class="sidebar" role="complementary">',
        '    <section class="widget most-popular">',
        '      <h2 class="widget-title">Most Read</h2>',
        "      <ol>",
        *_link_list(_most_read(story, stories), "        "),
        "      </ol>",
        "    </section>",
        "  </aside>",
        "</div>",
        '<footer class="site-footer" role="contentinfo">',
        '  <ul class="site-footer__links">',
        *(
            f'    <li><a href="{{{{BASE}}}}/{slug}/">{label}</a></li>'
            for label, slug in [
                ("About Us", "about"),
                ("Contact", "contact"),
                ("Careers", "careers"),
                ("Privacy Policy", "privacy"),
                ("Terms of Use", "terms"),
                ("Corrections", "corrections"),
            ]
        ),
        "  </ul>",
        f'  <p class="site-footer__copyright">Copyright &copy; {story.published.year} Meridian '
        "Ledger Media Group LLC. All rights reserved.</p>",
        "</footer>",
        '<script src="{{BASE}}/static/js/main.bundle.js?v=7.3.0"></script>',
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"


# --- the "capsule" design (and its video and wire variants) ----------------------------


def _capsule(story: _Story, stories: list[_Story], site_name: str, *, phase2: bool) -> str:
    modified = story.updated if phase2 else story.modified
    body = f"{story.update}\n\n{story.body}" if phase2 else story.body
    wire = story.layout == "wire"
    canonical = "{{BASE}}/" + (story.original if wire else story.path) + ".html"
    brand = "Coastal Partner Wire" if wire else site_name
    more = _related(story, stories, 4)
    if story.kind == "video":
        main = [
            '      <div class="video-player" data-video-id="vx-88213">',
            f'        <video controls preload="none" poster="{_image(story, "1280x720")}">'
            '<source src="{{BASE}}/media/video/harbor-derby.mp4" type="video/mp4"></video>',
            "      </div>",
            f'      <p class="video-caption">{_e(story.body)}</p>',
        ]
    else:
        blocks = _body_html(body, "        ")
        if len(blocks) > 3 and more and not wire:
            blocks.insert(
                2,
                '        <aside class="inline-promo" data-component="promo"><span>Read more:</span>'
                f' <a href="{more[0].url}">{_e(more[0].title)}</a></aside>',
            )
        main = [
            f'      <figure class="story-lead"><img src="{_image(story, "1280x720")}" alt="">'
            f"<figcaption>{_e(story.caption)}</figcaption></figure>",
            '      <div class="story-body" itemprop="articleBody" data-component="text">',
            *blocks,
            "      </div>",
        ]
    dates = [
        f'<time itemprop="datePublished" datetime="{story.published.isoformat()}">'
        f"{_human_date(story.published, story.lang)}</time>"
    ]
    if modified is not None and modified != story.published:
        dates.append(
            f'Updated <time itemprop="dateModified" datetime="{modified.isoformat()}">'
            f"{_human_date(modified, story.lang)}</time>"
        )
    wire_note = (
        [
            '      <p class="wire-credit">This story was originally published by '
            f'<a href="{canonical}">{_e(site_name)}</a> and is shared through the Coastal '
            "Partner Wire.</p>"
        ]
        if wire
        else []
    )
    tools = [
        '    <div class="story-tools">',
        '      <button type="button" class="tool tool--listen">Listen to this article</button>',
        '      <button type="button" class="tool tool--gift">Gift this article</button>',
        f'      <a class="tool tool--share" href="https://www.facebook.com/sharer/sharer.php?u={canonical}">Share</a>',  # noqa: E501
        f'      <a class="tool tool--share" href="https://www.linkedin.com/shareArticle?url={canonical}">LinkedIn</a>',  # noqa: E501
        "    </div>",
    ]
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{story.lang}">',
        _head(story, canonical=canonical, site_name=brand, modified=modified),
        f'<body class="story-page layout-{story.layout}">',
        '<div class="top-bar"><a href="{{BASE}}/subscribe/">Subscribe</a> '
        '<a href="{{BASE}}/account/login/">Sign in</a> '
        '<a href="{{BASE}}/e-edition/">Today&rsquo;s Paper</a></div>',
        '<header class="masthead">',
        f'  <a class="masthead__brand" href="{{{{BASE}}}}/">{_e(brand)}</a>',
        '  <nav class="masthead__nav"><ul>',
        *(f'    <li><a href="{{{{BASE}}}}/{slug}/">{label}</a></li>' for label, slug in _NAV),
        "  </ul></nav>",
        "</header>",
        '<div class="page">',
        '  <article class="story" itemscope itemtype="https://schema.org/NewsArticle">',
        '    <div class="story-head">',
        f'      <a class="story-section" href="{{{{BASE}}}}/{story.section.lower()}/">'
        f"{_e(story.section)}</a>",
        f'      <h1 class="story-headline" itemprop="headline">{_e(story.title)}</h1>',
        f'      <p class="story-standfirst" itemprop="description">{_e(story.dek)}</p>',
        '      <div class="story-byline">By <span itemprop="author">'
        f"{_e(' and '.join(story.authors))}</span> &middot; {' &middot; '.join(dates)}</div>",
        *wire_note,
        "    </div>",
        *([] if story.kind == "video" else tools),
        *main,
        *(["  </article>"] if story.kind == "video" else []),
        '    <div class="story-newsletter">',
        f"      <h3>Sign up for the {_e(story.section)} Brief</h3>",
        "      <p>Our reporters&rsquo; best work, every weekday afternoon.</p>",
        '      <form action="{{BASE}}/newsletter/subscribe" method="post">'
        '<input type="email" name="email" placeholder="Email address">'
        '<button type="submit">Sign up</button></form>',
        "    </div>",
        '    <section class="story-more">',
        f"      <h2>More in {_e(story.section)}</h2>",
        "      <ul>",
        *_link_list(more, "        "),
        "      </ul>",
        "    </section>",
        *([] if story.kind == "video" else ["  </article>"]),
        "</div>",
        '<footer class="site-footer">',
        '  <div class="site-footer__cols">',
        '    <ul><li><a href="{{BASE}}/about/">About</a></li>'
        '<li><a href="{{BASE}}/contact/">Contact</a></li>'
        '<li><a href="{{BASE}}/tips/">Send a tip</a></li></ul>',
        '    <ul><li><a href="{{BASE}}/privacy/">Privacy</a></li>'
        '<li><a href="{{BASE}}/terms/">Terms</a></li>'
        '<li><a href="{{BASE}}/accessibility/">Accessibility</a></li></ul>',
        "  </div>",
        f"  <p>&copy; {story.published.year} Meridian Ledger Media Group LLC. "
        "All rights reserved.</p>",
        "</footer>",
        '<div id="consent-root"><div class="consent-modal" role="dialog" aria-modal="true">',
        "  <h2>Your privacy choices</h2>",
        "  <p>We and 143 partners store and access information on your device to measure "
        "audiences, personalise content and serve ads. You can accept, reject or customise "
        "these purposes at any time.</p>",
        '  <button type="button">Accept all</button> <button type="button">Reject all</button>'
        ' <button type="button">Customise</button>',
        "</div></div>",
        '<script src="{{BASE}}/static/js/story.bundle.js?v=3.9.2" defer></script>',
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"


def _page(story: _Story, stories: list[_Story], site_name: str, *, phase2: bool = False) -> str:
    if story.layout == "ledger":
        return _ledger(story, stories, site_name, phase2=phase2)
    return _capsule(story, stories, site_name, phase2=phase2)


# --- feeds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    story: _Story
    link: str
    updated: datetime


def _entries(
    feed: _Feed, stories: list[_Story], links: list[Mapping[str, str]], *, phase2: bool
) -> list[_Entry]:
    by_path = {s.path: s for s in stories}
    entries = []
    for story in stories:
        if story.feed == feed.key:
            updated = story.updated if phase2 and story.updated else story.last_change
            entries.append(_Entry(story, story.url, updated))
    for link in links:
        if link["feed"] == feed.key:
            story = by_path[link["story"]]
            entries.append(_Entry(story, f"{story.url}?{link['query']}", story.last_change))
    entries.sort(key=lambda e: e.updated, reverse=True)
    return entries


def _rss(feed: _Feed, entries: list[_Entry]) -> str:
    newest = max(e.updated for e in entries)
    media = feed.key == "science"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"',
        '\txmlns:content="http://purl.org/rss/1.0/modules/content/"',
        '\txmlns:dc="http://purl.org/dc/elements/1.1/"',
        '\txmlns:atom="http://www.w3.org/2005/Atom"',
        '\txmlns:sy="http://purl.org/rss/1.0/modules/syndication/"',
        *(['\txmlns:media="http://search.yahoo.com/mrss/"'] if media else []),
        "\t>",
        "",
        "<channel>",
        f"\t<title>{_e(feed.title)}</title>",
        f'\t<atom:link href="{{{{BASE}}}}/{feed.path}" rel="self" type="application/rss+xml" />',
        "\t<link>{{BASE}}/</link>",
        f"\t<description>{_e(feed.description)}</description>",
        f"\t<lastBuildDate>{format_datetime(newest)}</lastBuildDate>",
        f"\t<language>{feed.language}-US</language>",
        "\t<sy:updatePeriod>hourly</sy:updatePeriod>",
        "\t<sy:updateFrequency>2</sy:updateFrequency>",
        "\t<generator>https://wordpress.org/?v=6.5.4</generator>",
    ]
    for entry in entries:
        story = entry.story
        if story.rss_item:
            lines.append(story.rss_item.strip("\n"))
            continue
        lines += [
            "\t<item>",
            f"\t\t<title>{_e(story.title)}</title>",
            f"\t\t<link>{_e(entry.link)}</link>",
        ]
        if story.comments:
            lines.append(f"\t\t<comments>{story.url}#comments</comments>")
        lines += [f"\t\t<dc:creator><![CDATA[{a}]]></dc:creator>" for a in story.authors]
        lines.append(f"\t\t<pubDate>{format_datetime(story.published)}</pubDate>")
        lines += [f"\t\t<category><![CDATA[{t}]]></category>" for t in story.tags]
        lines.append(f'\t\t<guid isPermaLink="false">{{{{BASE}}}}/?p={story.post_id}</guid>')
        lines.append(
            f"\t\t<description><![CDATA[{story.dek} "
            f'<a href="{story.url}">Read more &raquo;</a>]]></description>'
        )
        if media:
            lines.append(
                f'\t\t<media:content url="{_image(story, "1024x576")}" medium="image" '
                'width="1024" height="576" />'
            )
        lines.append("\t</item>")
    lines += ["</channel>", "</rss>"]
    return "\n".join(lines) + "\n"


def _atom(feed: _Feed, entries: list[_Entry]) -> str:
    newest = max(e.updated for e in entries)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{feed.language}">',
        f"  <title>{_e(feed.title)}</title>",
        f"  <subtitle>{_e(feed.description)}</subtitle>",
        f'  <link rel="self" type="application/atom+xml" href="{{{{BASE}}}}/{feed.path}"/>',
        '  <link rel="alternate" type="text/html" href="{{BASE}}/"/>',
        f"  <id>{_TAG_AUTHORITY}{feed.path}</id>",
        f"  <updated>{newest.isoformat()}</updated>",
        '  <generator uri="https://example.invalid/capsule" version="3.9">Capsule CMS</generator>',
        "  <rights>© 2024 Meridian Ledger Media Group LLC</rights>",
    ]
    for entry in entries:
        story = entry.story
        lang = f' xml:lang="{story.lang}"' if story.lang != feed.language else ""
        lines += [
            f"  <entry{lang}>",
            f'    <title type="html">{_e(story.title)}</title>',
            f'    <link rel="alternate" type="text/html" href="{_e(entry.link)}"/>',
            f"    <id>{_TAG_AUTHORITY}/{story.path}</id>",
            f"    <published>{story.published.isoformat()}</published>",
            f"    <updated>{entry.updated.isoformat()}</updated>",
            *(f"    <author><name>{_e(a)}</name></author>" for a in story.authors),
            *(f'    <category term="{_e(t)}"/>' for t in story.tags),
            f'    <summary type="text">{_e(story.dek)}</summary>',
            "  </entry>",
        ]
    lines.append("</feed>")
    return "\n".join(lines) + "\n"


def _broken_feed(feed: _Feed, site_name: str) -> str:
    # What a CMS behind a failing cache answers for the feed URL: an HTML error page.
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Service Unavailable | {_e(site_name)}</title>\n"
        "<style>body{font-family:Georgia,serif;max-width:36em;margin:4em auto}</style>\n"
        "</head>\n<body>\n<h1>We&rsquo;ll be right back</h1>\n"
        "<p>This part of the site is undergoing scheduled maintenance. Please try again in "
        "a few minutes.</p>\n"
        f"<p>Requested: <code>/{feed.path}</code> &middot; Reference: "
        "<code>cms-upstream-503 a41f9c</code></p>\n</body>\n</html>\n"
    )


# --- the home page, the feeds file and the manifest ------------------------------------


def _home(feeds: list[_Feed], stories: list[_Story], site_name: str) -> str:
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '  <meta charset="utf-8">',
        f"  <title>{_e(site_name)} &mdash; News from Harbor City and the world</title>",
        *(
            f'  <link rel="alternate" type="application/{f.format}+xml" title="{_e(f.name)}" '
            f'href="{{{{BASE}}}}/{f.path}">'
            for f in feeds
            if f.format in ("rss", "atom")
        ),
        "</head>",
        "<body>",
        f"<header><h1>{_e(site_name)}</h1><p>The bundled demo site of newsflow. Every story "
        "is invented, except the reference article.</p></header>",
        "<main>",
    ]
    for feed in feeds:
        listed = [s for s in stories if s.feed == feed.key]
        if not listed:
            continue
        lines.append(f'  <section><h2><a href="{{{{BASE}}}}/{feed.path}">{_e(feed.name)}</a></h2>')
        lines.append("    <ul>")
        lines += _link_list(sorted(listed, key=lambda s: s.published, reverse=True), "      ")
        lines += ["    </ul>", "  </section>"]
    lines += ["</main>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def _feeds_toml(feeds: list[_Feed]) -> str:
    lines = [
        "# Feeds of the bundled demo site (generated by newsflow/demo/_sitegen.py).",
        "# {{BASE}} is replaced with the address of the demo server.",
    ]
    for feed in feeds:
        lines += [
            "",
            "[[feeds]]",
            f'url = "{{{{BASE}}}}/{feed.path}"',
            f"name = {json.dumps(feed.name, ensure_ascii=False)}",
            f'poll_interval = "{feed.poll_interval}"',
            f"tags = {json.dumps(feed.tags)}",
            f'language = "{feed.language}"',
        ]
    return "\n".join(lines) + "\n"


def _outcome(story: _Story) -> str:
    return {
        "syndicated": "syndicated",
        "video": "too_short",
        "members": "robots",
    }.get(story.kind, "indexed")


def _manifest(data: Mapping[str, Any], feeds: list[_Feed], stories: list[_Story]) -> str:
    changed = next(s for s in stories if s.path == data["changed"])
    document = {
        "site_name": data["site_name"],
        "search": data["search"],
        "reference": data["reference"] + ".html",
        "changed": {
            "path": changed.file,
            "feed": next(f.path for f in feeds if f.key == changed.feed),
            "update": changed.update,
            "updated": changed.updated.isoformat() if changed.updated else None,
        },
        "feeds": [
            {"key": f.key, "path": f.path, "name": f.name, "format": f.format} for f in feeds
        ],
        "pages": [
            {
                "path": s.file,
                "canonical": (s.original or s.path) + ".html",
                "title": s.title,
                "feed": s.feed,
                "outcome": _outcome(s),
                "paragraphs": _paragraph_count(s.body),
                "first_paragraph": re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", s.first_paragraph),
            }
            for s in stories
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def render(source: Path | None = None) -> dict[str, str]:
    """Every generated file, as a path relative to ``newsflow/demo/`` -> its text."""
    data, feeds, stories = _load(source or DEMO_DIR / "stories.toml")
    site_name: str = data["site_name"]
    links: list[Mapping[str, str]] = data.get("links", [])
    out: dict[str, str] = {}
    for story in stories:
        if story.kind != "static":
            out[f"{_SITE}/{story.file}"] = _page(story, stories, site_name)
        if story.update:
            out[f"{_SITE}/{_PHASE2}/{story.file}"] = _page(story, stories, site_name, phase2=True)
    for feed in feeds:
        target = f"{_SITE}/{feed.path}"
        if feed.format == "broken":
            out[target] = _broken_feed(feed, site_name)
            continue
        writer = _rss if feed.format == "rss" else _atom
        out[target] = writer(feed, _entries(feed, stories, links, phase2=False))
        if any(s.feed == feed.key and s.update for s in stories):
            out[f"{_SITE}/{_PHASE2}/{feed.path}"] = writer(
                feed, _entries(feed, stories, links, phase2=True)
            )
    out[f"{_SITE}/index.html"] = _home(feeds, stories, site_name)
    out["feeds.toml"] = _feeds_toml(feeds)
    out["manifest.json"] = _manifest(data, feeds, stories)
    return out


def write(target: Path = DEMO_DIR) -> list[Path]:
    """Render into ``target`` (the package directory by default); the paths written."""
    written = []
    for relative, text in sorted(render().items()):
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - dev tool
    for path in write():
        print(path.relative_to(DEMO_DIR))
