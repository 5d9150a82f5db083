"""Published-date coverage and correctness per date configuration, on labelled page sets.

    .venv/bin/python -m bench.dates                  # the synthetic set, print the tables
    .venv/bin/python -m bench.dates --write-docs     # ... and rewrite its part of docs/dates.md
    .venv/bin/python -m bench.dates --regenerate     # rebuild tests/fixtures/dates/
    .venv/bin/python -m bench.dates --cpu 3          # ... and time extraction per page
    .venv/bin/python -m bench.dates \
        --labels H/tests/eval_default.json --labels H/tests/eval_mediacloud_2020.json \
        --pages H/tests/cache --pages H/tests/eval --pages H/tests/test_set   # a real set

The synthetic set (``tests/fixtures/dates/``: ``pages/*.html`` and ``labels.json``) is made
by :func:`_generate` from a fixed seed: news pages in varied markup (meta tags, JSON-LD,
microdata, ``<time>``, dates in the URL, bylines in several languages, a modified date
beside the published one) with the usual chrome around them, and traps (copyright years,
dated related links and comments, event dates in the text, pages with no date at all).
Each page's label is its published day, or ``null`` for a page that states none.

The real set is htmldate's own evaluation data (``H`` above is a clone of
https://github.com/adbar/htmldate): 1,000 web pages with a labelled publication day, in
htmldate's label format, which :func:`load_labelled` reads as it is. Its pages are copies
of other publishers' pages, so none of them is committed here (docs/dates.md).

Each candidate is one way of choosing the date; newsflow's own candidates apply the bounds
:func:`newsflow.collect.build_article` enforces (fetched at :data:`FETCHED_AT`). Coverage is
the share of pages given a date; correctness is the share of those dates that are the
labelled day (a date on a page labelled with none is wrong). A benchmark, not a test: it
asserts nothing (tests/newsflow/test_dates.py holds the synthetic set to the targets).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from htmldate import find_date
from trafilatura import bare_extraction
from trafilatura.metadata import extract_metadata
from trafilatura.utils import decode_file, load_html

from newsflow.collect import bounded_date
from newsflow.extract import (
    _NOT_THE_ARTICLE,
    DATE_PARAMS,
    ExtractSkip,
    _parse_time,
    _stated_by_head_or_url,
    extract_page,
    published_date,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "dates"
DOCS = ROOT / "docs" / "dates.md"
FETCHED_AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
"""When the labelled pages count as fetched (all their dates are before it)."""

# --- the labelled set --------------------------------------------------------------------

_WORDS = (
    "council budget river bridge vote school teachers hospital winter storm harbour "
    "museum festival railway energy prices market farmers election mayor court ruling "
    "police report health workers strike talks agreement climate flood defence village "
    "library funding research university scientists data survey residents housing plan"
).split()
_NAMES = ["Jane Doe", "Ahmed Khan", "Maria Rossi", "Li Wei", "Sam Okafor", "Eva Novak"]
_MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]  # fmt: skip
_MONTHS_DE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]  # fmt: skip
_MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre"]  # fmt: skip
_MONTHS_IT = ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio",
              "agosto", "settembre", "ottobre", "novembre", "dicembre"]  # fmt: skip
_MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre"]  # fmt: skip


def _sentence(rng: random.Random) -> str:
    words = rng.sample(_WORDS, rng.randint(9, 16))
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, count: int) -> str:
    return "\n".join(
        f"<p>{' '.join(_sentence(rng) for _ in range(rng.randint(3, 5)))}</p>" for _ in range(count)
    )


def _day(rng: random.Random) -> date:
    return date(2015, 1, 1) + timedelta(days=rng.randint(0, 3700))


def _page(title: str, head: str, byline: str, body: str, rng: random.Random, *, traps: bool) -> str:
    year = rng.randint(2023, 2025)
    related = ""
    comments = ""
    if traps:
        other = [_day(rng) for _ in range(3)]
        related = (
            "<aside class='related'><h3>Related</h3><ul>"
            + "".join(
                f"<li><a href='/story/{n}'>{_sentence(rng)[:40]}</a> <span>{d:%d.%m.%Y}</span></li>"
                for n, d in enumerate(other)
            )
            + "</ul></aside>"
        )
        when = _day(rng)
        comments = (
            "<section class='comments'><h3>Comments</h3><div class='comment'>"
            f"<span class='comment-date'>{_MONTHS_EN[when.month - 1]} {when.day}, {when.year}"
            f"</span><p>{_sentence(rng)}</p></div></section>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | The Daily Example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{head}
</head><body>
<header><nav><a href="/">Home</a> <a href="/politics">Politics</a> <a href="/business">Business</a>
<a href="/sport">Sport</a> <a href="/subscribe">Subscribe</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. <button>Accept</button></div>
</header>
<main><article><h1>{title}</h1>
{byline}
<div class="share"><a href="#">Share on X</a> <a href="#">Facebook</a> <a href="#">Email</a></div>
<div class="article-body">
{body}
</div></article>
{related}
{comments}
</main>
<footer><p>© {year} The Daily Example Ltd. All rights reserved.</p>
<p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></p></footer>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class LabelledPage:
    """One labelled page: its file name, URL, published day (or None), kind and HTML."""

    name: str
    url: str
    published: date | None
    kind: str
    html: str


def _iso(day: date, rng: random.Random, tz: bool = True) -> str:
    moment = datetime(day.year, day.month, day.day, rng.randint(6, 20), rng.randint(0, 59))
    return moment.strftime("%Y-%m-%dT%H:%M:00") + ("+00:00" if tz else "")


def _kinds() -> dict[str, Callable[[random.Random, date], tuple[str, str, str, str]]]:
    """Markup variants: (url path, head, byline, extra body) for a published day."""

    def meta_og(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        head = f'<meta property="article:published_time" content="{_iso(day, rng)}">'
        return "news/{slug}", head, f"<p class='byline'>By {rng.choice(_NAMES)}</p>", ""

    def meta_name(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        name = rng.choice(["date", "pubdate", "DC.date.issued", "parsely-pub-date",
                           "sailthru.date", "publish-date"])  # fmt: skip
        head = f'<meta name="{name}" content="{day.isoformat()}">'
        return "articles/{slug}", head, "", ""

    def jsonld(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        data = {
            "@context": "https://schema.org",
            "@type": rng.choice(["NewsArticle", "Article", "ReportageNewsArticle"]),
            "headline": "headline",
            "datePublished": _iso(day, rng),
            "author": {"@type": "Person", "name": rng.choice(_NAMES)},
        }
        head = f'<script type="application/ld+json">{json.dumps(data)}</script>'
        return "story/{slug}", head, "", ""

    def time_element(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        shown = f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"
        attrs = rng.choice(["class='published'", "pubdate", "itemprop='datePublished'",
                            "class='entry-date'"])  # fmt: skip
        byline = f"<p class='byline'>By {rng.choice(_NAMES)}, <time {attrs} datetime='{_iso(day, rng)}'>{shown}</time></p>"  # noqa: E501
        return "news/{slug}", "", byline, ""

    def url_date(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        return f"{day:%Y/%m/%d}/{{slug}}", "", f"<p class='byline'>By {rng.choice(_NAMES)}</p>", ""

    def byline_en(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        shown = rng.choice([
            f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}",
            f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}",
            f"{_MONTHS_EN[day.month - 1][:3]} {day.day}, {day.year}",
        ])  # fmt: skip
        who = rng.choice(_NAMES)
        byline = rng.choice([
            f"<div class='meta'>By {who} | Published {shown}</div>",
            f"<p class='article-meta'><span class='author'>{who}</span> <span class='date'>{shown}</span></p>",  # noqa: E501
            f"<div class='dateline'>Posted on {shown} by {who}</div>",
        ])  # fmt: skip
        return "news/{slug}", "", byline, ""

    def byline_other(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        if rng.random() < 0.5:
            shown = f"{day.day}. {_MONTHS_DE[day.month - 1]} {day.year}"
            byline = f"<div class='meta'>Von {rng.choice(_NAMES)}, veröffentlicht am {shown}</div>"
        else:
            shown = f"{day.day} {_MONTHS_FR[day.month - 1]} {day.year}"
            byline = f"<div class='meta'>Par {rng.choice(_NAMES)}, publié le {shown}</div>"
        return "artikel/{slug}", "", byline, ""

    def numeric_byline(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        shown = rng.choice([f"{day:%d.%m.%Y}", f"{day:%Y-%m-%d}", f"{day:%d/%m/%Y}"])
        byline = f"<div class='article-date'>{shown}</div>"
        return "beitrag/{slug}", "", byline, ""

    def byline_latin(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        language = rng.choice(["es", "it", "fr"])
        if language == "es":
            shown = f"{day.day} de {_MONTHS_ES[day.month - 1]} de {day.year}"
            byline = f"<div class='autor'>Por {rng.choice(_NAMES)} · {shown}</div>"
        elif language == "it":
            shown = f"{day.day} {_MONTHS_IT[day.month - 1]} {day.year}"
            byline = f"<div class='firma'>di {rng.choice(_NAMES)}, {shown}</div>"
        else:
            shown = (
                f"le {day.day} {_MONTHS_FR[day.month - 1]} {day.year} à 10h{rng.randint(10, 59)}"
            )
            byline = f"<div class='signature'>Publié {shown}</div>"
        return "noticia/{slug}", "", byline, ""

    def weekday_byline(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}
        shown = (
            f"{day:%A} {day.day}{suffix.get(day.day, 'th')} {_MONTHS_EN[day.month - 1]} "
            f"{day.year}, {rng.randint(1, 12)}.{rng.randint(10, 59)}pm"
        )
        byline = f"<div class='story-info'><b>{rng.choice(_NAMES)}</b><br>{shown}</div>"
        return "uk/{slug}", "", byline, ""

    def modified_too(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        later = day + timedelta(days=rng.randint(1, 40))
        head = (
            f'<meta property="article:published_time" content="{_iso(day, rng)}">\n'
            f'<meta property="article:modified_time" content="{_iso(later, rng)}">'
        )
        if rng.random() < 0.5:
            head = (
                '<script type="application/ld+json">'
                + json.dumps(
                    {
                        "@type": "NewsArticle",
                        "dateModified": _iso(later, rng),
                        "datePublished": _iso(day, rng),
                    }
                )  # fmt: skip
                + "</script>"
            )
        shown = f"{_MONTHS_EN[later.month - 1]} {later.day}, {later.year}"
        return "news/{slug}", head, f"<p class='updated'>Updated {shown}</p>", ""

    def microdata(rng: random.Random, day: date) -> tuple[str, str, str, str]:
        byline = (
            f"<p>By <span itemprop='author'>{rng.choice(_NAMES)}</span> "
            f"<meta itemprop='datePublished' content='{day.isoformat()}'></p>"
        )
        return "p/{slug}", "", byline, ""

    return {
        "meta_og": meta_og,
        "meta_name": meta_name,
        "jsonld": jsonld,
        "time_element": time_element,
        "url_date": url_date,
        "byline_en": byline_en,
        "byline_other": byline_other,
        "numeric_byline": numeric_byline,
        "byline_latin": byline_latin,
        "weekday_byline": weekday_byline,
        "modified_too": modified_too,
        "microdata": microdata,
    }


_PER_KIND = 15
_UNDATED = 30


def _generate() -> list[LabelledPage]:
    rng = random.Random(20250601)
    pages: list[LabelledPage] = []
    for kind, make in _kinds().items():
        for number in range(_PER_KIND):
            day = _day(rng)
            path, head, byline, extra = make(rng, day)
            slug = "-".join(rng.sample(_WORDS, 4))
            html = _page(
                " ".join(rng.sample(_WORDS, 6)).capitalize(),
                head,
                byline,
                extra + _paragraphs(rng, rng.randint(4, 8)),
                rng,
                traps=rng.random() < 0.6,
            )
            name = f"{kind}-{number:02d}"
            url = f"https://daily.example/{path.format(slug=slug)}"
            pages.append(LabelledPage(name, url, day, kind, html))
    for number in range(_UNDATED):
        # No published date anywhere: only copyright years, dated sidebars and comments,
        # and (in some) an event date inside the story's text.
        body = _paragraphs(rng, rng.randint(4, 8))
        if number % 2:
            event = _day(rng)
            body += (
                f"<p>The hearing is scheduled for {_MONTHS_EN[event.month - 1]} {event.day}, "
                f"{event.year}, the council said.</p>"
            )
        slug = "-".join(rng.sample(_WORDS, 4))
        html = _page(" ".join(rng.sample(_WORDS, 6)).capitalize(), "", "", body, rng,
                     traps=True)  # fmt: skip
        pages.append(LabelledPage(f"undated-{number:02d}", f"https://daily.example/news/{slug}",
                               None, "undated", html))  # fmt: skip
    return pages


def _write_fixtures(pages: list[LabelledPage]) -> None:
    folder = FIXTURES / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.html"):
        old.unlink()
    labels = []
    for page in pages:
        (folder / f"{page.name}.html").write_text(page.html, encoding="utf-8")
        labels.append(
            {
                "page": f"pages/{page.name}.html",
                "url": page.url,
                "kind": page.kind,
                "published": page.published.isoformat() if page.published else None,
            }
        )
    (FIXTURES / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")


def load_labelled(
    labels: Path = FIXTURES / "labels.json", pages: Sequence[Path] = (FIXTURES,)
) -> list[LabelledPage]:
    """Every page of a labelled set.

    ``labels`` is either this project's format (a list of ``{"page", "url", "kind",
    "published"}``) or htmldate's evaluation format (an object ``url -> {"file", "date"}``,
    as in htmldate's ``tests/eval_default.json``); a page file is looked for in each of
    ``pages`` in turn. A label that is not a ``YYYY-MM-DD`` string (``null``, htmldate's
    ``NaN``) marks a page with no published date.
    """
    data = json.loads(labels.read_text(encoding="utf-8"))
    if isinstance(data, list):
        entries = [(i["page"], i["url"], i.get("kind") or "", i["published"]) for i in data]
    else:
        entries = [(v["file"], url, labels.stem, v["date"]) for url, v in data.items()]
    result = []
    for file, url, kind, label in entries:
        path = next((folder / file for folder in pages if (folder / file).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{file} (from {labels}) is in none of {list(pages)}")
        published = date.fromisoformat(label[:10]) if isinstance(label, str) else None
        html = decode_file(path.read_bytes())
        result.append(LabelledPage(file, url, published, kind, html))
    return result


# --- candidates --------------------------------------------------------------------------

Finder = Callable[[str, str], date | None]
_EXTENSIVE: dict[str, Any] = {**DATE_PARAMS, "extensive_search": True}


def _as_day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def _metadata_date(params: dict[str, Any] | None) -> Finder:
    """The date of trafilatura's metadata pass, the one ``bare_extraction`` runs first."""

    def find(html: str, url: str) -> date | None:
        return _as_day(extract_metadata(html, default_url=url, date_config=params).date)

    return find


def _bounded(value: str | None) -> date | None:
    chosen = bounded_date(_parse_time(value), FETCHED_AT)
    return chosen.date() if chosen else None


def _whole_page(html: str, url: str) -> date | None:
    tree = load_html(html)
    if tree is None:
        return None
    found = find_date(tree, url=url, **DATE_PARAMS)
    return _bounded(found or find_date(tree, url=url, **_EXTENSIVE))


def _article_extensive(html: str, url: str) -> date | None:
    tree = load_html(html)
    if tree is None:
        return None
    for element in tree.xpath(_NOT_THE_ARTICLE):
        if element.getparent() is not None:
            element.drop_tree()
    found = find_date(tree, url=url, **DATE_PARAMS)
    if found is None:
        body = tree.xpath("//article|//main|//*[@itemprop='articleBody']")
        found = find_date(body[0] if body else tree, url=url, **_EXTENSIVE)
    return _bounded(found)


# The rule shipped before this benchmark's real set: trafilatura's own date discarded, the
# page parsed again with every <aside> and <footer> dropped, inside the <article> or not.
_BEFORE_NOT_THE_ARTICLE = (
    "//aside|//nav|//footer|//*[@id='comments']|//section[contains(@class,'comment')]"
    "|//div[contains(@class,'comments')]|//*[contains(@class,'related')]"
    "|//*[contains(@class,'copyright')]"
)


def _previous_rule(html: str, url: str, _found: str | None = None) -> str | None:
    tree = load_html(html)
    if tree is None:
        return None
    for element in tree.xpath(_BEFORE_NOT_THE_ARTICLE):
        if element.getparent() is not None:
            element.drop_tree()
    found: str | None = find_date(tree, url=url, **DATE_PARAMS)
    return found or find_date(tree, url=url, **_EXTENSIVE)


def _newsflow_before(html: str, url: str) -> date | None:
    return _bounded(_previous_rule(html, url))


def _newsflow(html: str, url: str) -> date | None:
    page = extract_page(html, url, 0)
    if isinstance(page, ExtractSkip):
        # No article text: the page would not be stored, but its date is still measured.
        found = extract_metadata(html, default_url=url, date_config=DATE_PARAMS).date
        return _bounded(published_date(html, url, found))
    chosen = bounded_date(page.published_at, FETCHED_AT)
    return chosen.date() if chosen else None


_FMT = "%Y-%m-%dT%H:%M:%S%z"
CANDIDATES: dict[str, tuple[str, Finder]] = {
    "trafilatura-defaults": (
        "trafilatura's metadata pass with its defaults (extensive search, original date)",
        _metadata_date(None),
    ),
    "fast-original": (
        "trafilatura's pass, extensive_search off (newsflow when issue 13 was filed)",
        _metadata_date({"original_date": True, "extensive_search": False, "outputformat": _FMT}),
    ),
    "extensive-latest": (
        "trafilatura's pass, extensive_search on, original_date off",
        _metadata_date({"original_date": False, "extensive_search": True, "outputformat": _FMT}),
    ),
    "whole-page": (
        "precise then extensive search on the whole page, bounds",
        _whole_page,
    ),
    "article-extensive": (
        "article part: precise search, then extensive on `<article>`/`<main>` only, bounds",
        _article_extensive,
    ),
    "newsflow-before": (
        "article part: precise then extensive search, bounds (trafilatura's date discarded; "
        "newsflow before this change)",
        _newsflow_before,
    ),
    "newsflow": (
        "shipped: trafilatura's date if the head or URL states it, else the article part "
        "(its own aside and footer kept): precise then extensive search, bounds",
        _newsflow,
    ),
}


@dataclass(frozen=True, slots=True)
class Score:
    """One candidate's figures on a labelled set."""

    pages: int
    dated: int
    correct: int
    invented: int
    """Dates given to pages labelled with no date."""
    by_kind: dict[str, tuple[int, int, int]]
    """``kind -> (pages, dated, correct)``."""
    dated_pages: frozenset[str]
    """Names of the pages given a date."""

    @property
    def coverage(self) -> float:
        return self.dated / self.pages if self.pages else 0.0

    @property
    def correctness(self) -> float:
        return self.correct / self.dated if self.dated else 0.0


def score(find: Finder, pages: Sequence[LabelledPage]) -> Score:
    """Run ``find`` over a labelled set."""
    dated = correct = invented = 0
    named: set[str] = set()
    kinds: dict[str, list[int]] = {}
    for page in pages:
        found = find(page.html, page.url)
        tally = kinds.setdefault(page.kind, [0, 0, 0])
        tally[0] += 1
        if found is None:
            continue
        dated += 1
        tally[1] += 1
        named.add(page.name)
        if found == page.published:
            correct += 1
            tally[2] += 1
        elif page.published is None:
            invented += 1
    by_kind = {k: (v[0], v[1], v[2]) for k, v in kinds.items()}
    return Score(len(pages), dated, correct, invented, by_kind, frozenset(named))


@dataclass(frozen=True, slots=True)
class Target:
    """newsflow against trafilatura's defaults, as issue 13's target counts them."""

    defaults_dated: int
    both_dated: int
    """Pages dated by trafilatura's defaults that newsflow dates too."""
    defaults_dated_labelled: int
    """Pages with a labelled date that trafilatura's defaults date."""
    both_dated_labelled: int
    newsflow_correctness: float
    defaults_correctness: float

    @property
    def share(self) -> float:
        return self.both_dated / self.defaults_dated if self.defaults_dated else 1.0

    @property
    def share_labelled(self) -> float:
        """The same share over the pages that have a labelled date."""
        if not self.defaults_dated_labelled:
            return 1.0
        return self.both_dated_labelled / self.defaults_dated_labelled

    @property
    def coverage_met(self) -> bool:
        return self.share >= 0.97

    @property
    def correctness_met(self) -> bool:
        return self.newsflow_correctness >= self.defaults_correctness


def target(scores: dict[str, Score], pages: Sequence[LabelledPage]) -> Target:
    """Dated share of the defaults' dated pages, and both correctness figures."""
    ours, theirs = scores["newsflow"], scores["trafilatura-defaults"]
    labelled = {page.name for page in pages if page.published is not None}
    both = ours.dated_pages & theirs.dated_pages
    return Target(
        theirs.dated,
        len(both),
        len(theirs.dated_pages & labelled),
        len(both & labelled),
        ours.correctness,
        theirs.correctness,
    )


def _table(scores: dict[str, Score]) -> str:
    lines = [
        "| candidate | configuration | dated | coverage | correct | correctness | "
        "dates on undated pages |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in scores.items():
        lines.append(
            f"| `{name}` | {CANDIDATES[name][0]} | {result.dated}/{result.pages} | "
            f"{result.coverage:.1%} | {result.correct}/{result.dated} | "
            f"{result.correctness:.1%} | {result.invented} |"
        )
    return "\n".join(lines)


def _kind_table(scores: dict[str, Score]) -> str:
    names = list(scores)
    kinds = list(next(iter(scores.values())).by_kind)
    lines = [
        "| pages of | pages | " + " | ".join(f"`{n}` dated/correct" for n in names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for kind in kinds:
        total = scores[names[0]].by_kind[kind][0]
        cells = [f"{scores[n].by_kind[kind][1]}/{scores[n].by_kind[kind][2]}" for n in names]
        lines.append(f"| {kind} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _target_line(result: Target) -> str:
    return (
        f"Target: newsflow dates {result.both_dated} of the {result.defaults_dated} pages "
        f"trafilatura's defaults date ({result.share:.1%}; target ≥ 97%), "
        f"{result.both_dated_labelled} of the {result.defaults_dated_labelled} of them that "
        f"have a labelled date ({result.share_labelled:.1%}); correctness "
        f"{result.newsflow_correctness:.1%} vs the defaults' {result.defaults_correctness:.1%} "
        f"(target: no worse). Coverage target {'met' if result.coverage_met else 'NOT met'}, "
        f"correctness target {'met' if result.correctness_met else 'NOT met'}."
    )


def _trafilatura_pass(html: str, url: str, _found: str | None) -> object:
    # The bare_extraction call of extract_page, nothing else.
    return bare_extraction(
        html,
        url=url,
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        date_extraction_params=DATE_PARAMS,
    )


_STEPS: dict[str, Callable[[str, str, str | None], object]] = {
    "bare_extraction": _trafilatura_pass,
    "extract_page": lambda html, url, _found: extract_page(html, url, 0),
    "date stage (shipped)": published_date,
    "date stage (before)": _previous_rule,
}


def cpu(pages: Sequence[LabelledPage], rounds: int) -> str:
    """CPU per page of extraction and of its date stage, interleaved in this process."""
    spent = dict.fromkeys(_STEPS, 0.0)
    kept = 0
    for round_ in range(rounds):
        for page in pages:
            # What trafilatura's pass hands the shipped date stage (not timed).
            found = extract_metadata(page.html, default_url=page.url, date_config=DATE_PARAMS).date
            if round_ == 0 and found and _stated_by_head_or_url(page.html, page.url, found[:10]):
                kept += 1
            for name, step in _STEPS.items():
                start = time.process_time()
                step(page.html, page.url, found)
                spent[name] += time.process_time() - start
    count = rounds * len(pages)
    per_page = {name: 1000 * total / count for name, total in spent.items()}
    before = per_page["extract_page"] - per_page["date stage (shipped)"]
    before += per_page["date stage (before)"]
    lines = [
        f"| step | CPU ms per page ({len(pages)} pages x {rounds} rounds, one process) |",
        "| --- | --- |",
        *(f"| {name} | {value:.2f} |" for name, value in per_page.items()),
        f"| extract_page with the date stage before (derived) | {before:.2f} |",
        "",
        f"trafilatura's date kept without a second htmldate pass (its day is in the page's "
        f"head or URL): {kept} of {len(pages)} pages.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--regenerate", action="store_true", help="rebuild the labelled set")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/dates.md")
    parser.add_argument(
        "--labels", type=Path, action="append", help="a labels file (repeatable; default: ours)"
    )
    parser.add_argument(
        "--pages", type=Path, action="append", help="a folder holding the labelled pages"
    )
    parser.add_argument(
        "--name", help="the set's name in docs/dates.md (default: synthetic, or real with --labels)"
    )
    parser.add_argument("--cpu", type=int, metavar="ROUNDS", help="also time extraction")
    args = parser.parse_args(argv)
    if args.regenerate:
        _write_fixtures(_generate())
    pages: list[LabelledPage] = []
    for labels in args.labels or [FIXTURES / "labels.json"]:
        pages.extend(load_labelled(labels, args.pages or [labels.parent]))
    name = args.name or ("real" if args.labels else "synthetic")
    scores = {key: score(find, pages) for key, (_label, find) in CANDIDATES.items()}
    sections = [_table(scores), _kind_table(scores), _target_line(target(scores, pages))]
    if args.cpu:
        sections.append(cpu(pages, args.cpu))
    report = "\n\n".join(sections)
    print(report)
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        start, end = f"<!-- bench.dates:{name}:start -->", f"<!-- bench.dates:{name}:end -->"
        if start not in text:
            text += f"\n{start}\n{end}\n"
        head, _sep, rest = text.partition(start)
        _old, _sep2, tail = rest.partition(end)
        DOCS.write_text(f"{head}{start}\n{report}\n{end}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
