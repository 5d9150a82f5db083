"""How a page's published date is chosen (newsflow.extract.published_date)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import htmldate
import pytest
import trafilatura.metadata
from trafilatura.metadata import extract_metadata

from bench.dates import CANDIDATES, load_labelled, score, target
from newsflow.extract import DATE_PARAMS, extract_page, published_date
from schemas import PageExtraction

UNDATED = (
    Path(__file__).resolve().parent.parent / "fixtures" / "dates" / "pages" / "undated-00.html"
)
PARAGRAPH = "<p>" + "The council voted on the harbour budget after a debate on the bridge. " * 6
PARAGRAPH += "</p>"


def _page(head: str = "", before: str = "", byline: str = "") -> str:
    return (
        f"<html><head><title>Harbour budget passes</title>{head}</head><body>{before}"
        f"<article><h1>Harbour budget passes</h1>{byline}{PARAGRAPH * 3}</article>"
        "<footer>© 2024 Example News</footer></body></html>"
    )


def _trafilaturas_date(html: str, url: str) -> str | None:
    """What trafilatura's metadata pass in extract_page finds with newsflow's parameters."""
    found: str | None = extract_metadata(html, default_url=url, date_config=DATE_PARAMS).date
    return found


@pytest.fixture
def htmldate_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts htmldate searches, trafilatura's and newsflow's own, by extensive_search."""
    calls: Counter[str] = Counter()
    real = htmldate.find_date

    def counting(*args: Any, **kwargs: Any) -> str | None:
        calls["extensive" if kwargs.get("extensive_search", True) else "precise"] += 1
        return real(*args, **kwargs)

    find: Callable[..., str | None] = counting
    monkeypatch.setattr(htmldate, "find_date", find)
    monkeypatch.setattr(trafilatura.metadata, "find_date", find)
    return calls


def test_a_date_the_head_states_costs_one_htmldate_search(htmldate_calls: Counter[str]) -> None:
    html = _page('<meta property="article:published_time" content="2024-03-05T10:30:00+00:00">')
    page = extract_page(html, "https://news.example/harbour", 0)
    assert isinstance(page, PageExtraction)
    assert page.published_at == datetime(2024, 3, 5, 10, 30, tzinfo=UTC)
    assert htmldate_calls == Counter(precise=1)  # trafilatura's pass only


def test_a_date_the_url_states_is_kept_without_a_second_search(
    htmldate_calls: Counter[str],
) -> None:
    url = "https://news.example/2023/11/14/harbour-budget"
    page = extract_page(_page(byline="<p class='byline'>By Jane Doe</p>"), url, 0)
    assert isinstance(page, PageExtraction)
    assert page.published_at is not None and page.published_at.date().isoformat() == "2023-11-14"
    assert htmldate_calls == Counter(precise=1)


@pytest.mark.parametrize(
    "sidebar",
    [
        '<aside class="related"><a href="/a">Older story</a> <span class="date">12.05.2019</span>'
        "</aside>",
        '<div class="related-posts"><a href="/a">Older story</a> '
        '<span class="entry-date">May 12, 2019</span></div>',
    ],
    ids=["aside", "related-posts"],
)
def test_a_sidebar_date_found_on_the_whole_page_yields_to_the_byline(sidebar: str) -> None:
    url = "https://news.example/harbour"
    html = _page(before=sidebar, byline="<p class='byline'>By Jane Doe, March 3, 2021</p>")
    found = _trafilaturas_date(html, url)
    assert found is not None and found.startswith("2019-05-12")  # the trap works
    assert published_date(html, url, found) == "2021-03-03T00:00:00"
    page = extract_page(html, url, 0)
    assert isinstance(page, PageExtraction)
    assert page.published_at == datetime(2021, 3, 3, tzinfo=UTC)


@pytest.mark.parametrize("block", ["footer", "aside"])
def test_the_articles_own_footer_or_aside_keeps_its_date(block: str) -> None:
    # As on real pages (Drupal's <footer class="node__meta">, an <aside class="meta">).
    url = "https://news.example/harbour"
    html = (
        "<html><head><title>Harbour budget passes</title></head><body>"
        "<aside class='sidebar'><a href='/a'>Older story</a> <span class='date'>12.05.2019</span>"
        f"</aside><article><h1>Harbour budget passes</h1>{PARAGRAPH * 3}<{block} class='meta'>"
        f"<span class='post-created'>By Jane Doe, 28.01.2022</span></{block}></article>"
        "<footer><span class='date'>01.01.2024</span> Example News</footer></body></html>"
    )
    found = _trafilaturas_date(html, url)
    assert found is not None and not found.startswith("2022-01-28")  # the trap works
    assert published_date(html, url, found) == "2022-01-28T00:00:00"


def test_a_page_that_states_no_date_gets_none_from_comment_and_sidebar_dates() -> None:
    html = UNDATED.read_text(encoding="utf-8")
    url = "https://daily.example/news/undated"
    found = _trafilaturas_date(html, url)
    assert found is not None  # trafilatura's whole-page pass takes a comment's or sidebar's
    assert published_date(html, url, found) is None
    page = extract_page(html, url, 0)
    assert isinstance(page, PageExtraction)
    assert page.published_at is None


def test_a_day_written_only_in_the_body_does_not_count_as_stated(
    htmldate_calls: Counter[str],
) -> None:
    # The day is on the page, in a comment's stamp, but not in the head: search again.
    html = _page(before="<div class='comments'><span class='comment-date'>2019-05-12</span></div>")
    assert published_date(html, "https://news.example/harbour", "2019-05-12T00:00:00") is None
    assert htmldate_calls["precise"] == 1 and htmldate_calls["extensive"] == 1


def test_without_a_date_from_trafilatura_the_extensive_search_runs_on_the_article() -> None:
    html = _page(byline="<div class='meta'>Von Jane Doe, veröffentlicht am 3. März 2021</div>")
    assert published_date(html, "https://news.example/harbour") == "2021-03-03T00:00:00"


def test_the_labelled_set_stays_at_or_above_the_targets() -> None:
    # tests/fixtures/dates: 180 pages with a published date, 30 without (bench/dates.py).
    pages = load_labelled()
    scores = {
        name: score(CANDIDATES[name][1], pages) for name in ("trafilatura-defaults", "newsflow")
    }
    ours, defaults = scores["newsflow"], scores["trafilatura-defaults"]
    result = target(scores, pages)
    assert (len(pages), defaults.dated, defaults.correct) == (210, 210, 167)
    # Every page with a published date that the defaults date, newsflow dates too ...
    assert result.both_dated_labelled == result.defaults_dated_labelled == 180
    # ... right as often as it was when the rule was chosen, and more often than the defaults.
    assert ours.correct >= 171
    assert ours.correctness >= defaults.correctness
    # The undated pages it dates take event dates from the story's text (docs/dates.md).
    assert ours.invented <= 15


def test_htmldates_label_format_is_read_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "cache" / "a.html").write_bytes("<html><p>Grüße</p></html>".encode("cp1252"))
    (tmp_path / "eval" / "b.html").write_text("<html><p>b</p></html>", encoding="utf-8")
    labels = tmp_path / "eval_default.json"
    labels.write_text(
        '{"https://a.example/x": {"file": "a.html", "date": "2020-06-07"},'
        ' "https://b.example/y": {"file": "b.html", "date": NaN}}',
        encoding="utf-8",
    )
    pages = load_labelled(labels, [tmp_path / "cache", tmp_path / "eval"])
    assert [(p.url, p.published, p.kind) for p in pages] == [
        ("https://a.example/x", date(2020, 6, 7), "eval_default"),
        ("https://b.example/y", None, "eval_default"),
    ]
    assert "Grüße" in pages[0].html
    with pytest.raises(FileNotFoundError):
        load_labelled(labels, [tmp_path / "eval"])
