"""Published-date coverage and correctness per date configuration, on a labelled page set.

    .venv/bin/python -m bench.dates            # measure, print a table
    .venv/bin/python -m bench.dates --write-docs   # ... and rewrite docs/dates.md
    .venv/bin/python -m bench.dates --regenerate   # rebuild tests/fixtures/dates/

The labelled set (``tests/fixtures/dates/``: ``pages/*.html`` and ``labels.json``) is made
by :func:`_generate` from a fixed seed: news pages in varied markup (meta tags, JSON-LD,
microdata, ``<time>``, dates in the URL, bylines in several languages, a modified date
beside the published one) with the usual chrome around them, and traps (copyright years,
dated related links and comments, event dates in the text, pages with no date at all).
Each page's label is its published day, or ``null`` for a page that states none.

For each candidate the page goes through trafilatura's metadata pass the way
:func:`newsflow.extract.extract_page` runs it, then (for newsflow's own candidates)
through the bounds :func:`newsflow.collect.build_article` enforces. Coverage is the share
of pages given a date; correctness is the share of those dates that are the labelled day
(a date on a page labelled ``null`` is wrong). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from newsflow.collect import bounded_date
from newsflow.extract import ExtractSkip, extract_page

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
class _Labelled:
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


def _generate() -> list[_Labelled]:
    rng = random.Random(20250601)
    pages: list[_Labelled] = []
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
            pages.append(_Labelled(name, url, day, kind, html))
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
        pages.append(_Labelled(f"undated-{number:02d}", f"https://daily.example/news/{slug}",
                               None, "undated", html))  # fmt: skip
    return pages


def _write_fixtures(pages: list[_Labelled]) -> None:
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


def load_labelled() -> list[tuple[str, str, str, date | None, str]]:
    """``(name, url, kind, published, html)`` for every page of the labelled set."""
    labels = json.loads((FIXTURES / "labels.json").read_text(encoding="utf-8"))
    return [
        (
            item["page"],
            item["url"],
            item["kind"],
            date.fromisoformat(item["published"]) if item["published"] else None,
            (FIXTURES / item["page"]).read_text(encoding="utf-8"),
        )
        for item in labels
    ]


# --- candidates --------------------------------------------------------------------------


def _trafilatura(params: dict[str, Any] | None) -> Callable[[str, str], date | None]:
    def find(html: str, url: str) -> date | None:
        from trafilatura import bare_extraction

        document: Any = bare_extraction(
            html, url=url, with_metadata=True, date_extraction_params=params
        )
        value = getattr(document, "date", None) if document is not None else None
        return date.fromisoformat(value[:10]) if value else None

    return find


def _newsflow(html: str, url: str) -> date | None:
    page = extract_page(html, url, 0)
    if isinstance(page, ExtractSkip):
        return None
    chosen = bounded_date(page.published_at, FETCHED_AT)
    return chosen.date() if chosen else None


_MAX = FETCHED_AT.strftime("%Y-%m-%d")
_FMT = "%Y-%m-%dT%H:%M:%S%z"
CANDIDATES: dict[str, tuple[str, Callable[[str, str], date | None]]] = {
    "trafilatura-defaults": ("bare_extraction's own date parameters", _trafilatura(None)),
    "fast-original": (
        "extensive_search off, original_date on (newsflow before)",
        _trafilatura({"original_date": True, "extensive_search": False, "outputformat": _FMT}),
    ),
    "fast-latest": (
        "extensive_search off, original_date off",
        _trafilatura({"original_date": False, "extensive_search": False, "outputformat": _FMT}),
    ),
    "extensive-original": (
        "extensive_search on, original_date on",
        _trafilatura(
            {
                "original_date": True,
                "extensive_search": True,
                "outputformat": _FMT,
                "max_date": _MAX,
            }
        ),  # fmt: skip
    ),
    "extensive-latest": (
        "extensive_search on, original_date off",
        _trafilatura(
            {
                "original_date": False,
                "extensive_search": True,
                "outputformat": _FMT,
                "max_date": _MAX,
            }
        ),  # fmt: skip
    ),
    "extensive-original-1990": (
        "extensive_search on, original_date on, min_date 1990-01-01",
        _trafilatura(
            {
                "original_date": True,
                "extensive_search": True,
                "outputformat": _FMT,
                "min_date": "1990-01-01",
                "max_date": _MAX,
            }
        ),  # fmt: skip
    ),
    "newsflow": ("shipped: article part only, precise then extensive search, bounds", _newsflow),
}


@dataclass(frozen=True, slots=True)
class Score:
    """One candidate's figures on the labelled set."""

    pages: int
    dated: int
    correct: int
    invented: int
    """Dates given to pages labelled with no date."""
    by_kind: dict[str, tuple[int, int, int]]
    """``kind -> (pages, dated, correct)``."""

    @property
    def coverage(self) -> float:
        return self.dated / self.pages if self.pages else 0.0

    @property
    def correctness(self) -> float:
        return self.correct / self.dated if self.dated else 0.0


def score(find: Callable[[str, str], date | None]) -> Score:
    """Run ``find`` over the labelled set."""
    pages = dated = correct = invented = 0
    kinds: dict[str, list[int]] = {}
    for _name, url, kind, published, html in load_labelled():
        found = find(html, url)
        tally = kinds.setdefault(kind, [0, 0, 0])
        pages += 1
        tally[0] += 1
        if found is None:
            continue
        dated += 1
        tally[1] += 1
        if found == published:
            correct += 1
            tally[2] += 1
        elif published is None:
            invented += 1
    return Score(pages, dated, correct, invented, {k: (v[0], v[1], v[2]) for k, v in kinds.items()})


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
        "| markup | pages | " + " | ".join(f"`{n}` dated/correct" for n in names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for kind in kinds:
        total = scores[names[0]].by_kind[kind][0]
        cells = [f"{scores[n].by_kind[kind][1]}/{scores[n].by_kind[kind][2]}" for n in names]
        lines.append(f"| {kind} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dates", description=__doc__)
    parser.add_argument("--regenerate", action="store_true", help="rebuild the labelled set")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/dates.md")
    args = parser.parse_args(argv)
    if args.regenerate:
        _write_fixtures(_generate())
    scores = {name: score(find) for name, (_label, find) in CANDIDATES.items()}
    table = _table(scores)
    print(table)
    print()
    print(_kind_table(scores))
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        start, end = "<!-- bench.dates:start -->", "<!-- bench.dates:end -->"
        head, _sep, rest = text.partition(start)
        _old, _sep2, tail = rest.partition(end)
        DOCS.write_text(
            f"{head}{start}\n{table}\n\n{_kind_table(scores)}\n{end}{tail}", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
