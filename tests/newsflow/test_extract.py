from pathlib import Path

import pytest
import trafilatura

from newsflow.extract import Extractor, ExtractSkip, Page, extract_page
from newsflow.settings import ExtractSettings
from schemas import PageExtraction

SITE = Path(__file__).resolve().parent.parent / "fixtures" / "site"
BASE = "http://127.0.0.1:8000"
ARTICLE_PAGES = sorted(
    p for p in SITE.rglob("*.html") if "video" not in p.name and "private" not in p.parts
)


def _page(path: Path) -> Page:
    html = path.read_text(encoding="utf-8").replace("{{BASE}}", BASE)
    return Page(url=f"{BASE}/{path.relative_to(SITE).as_posix()}", html=html)


def _filler(paragraphs: int) -> str:
    body = "".join(
        f"<p>Paragraph {i} reports on the harbour, the markets and the weather {i * 7}.</p>"
        for i in range(paragraphs)
    )
    return f"<html><body><article>{body}</article></body></html>"


@pytest.mark.parametrize("path", ARTICLE_PAGES, ids=lambda p: p.stem)
def test_text_is_exactly_what_trafilatura_extract_returns(path: Path) -> None:
    page = _page(path)
    expected = trafilatura.extract(page.html, include_comments=False, include_tables=True)
    result = extract_page(page.html, page.url, min_text_chars=0)
    assert isinstance(result, PageExtraction)
    assert result.text == expected


def test_reference_article_metadata_and_boilerplate() -> None:
    result = extract_page(_page(SITE / "politics" / "reference-article.html").html, BASE, 250)
    assert isinstance(result, PageExtraction)
    assert result.authors and "Dylan Housman" in result.authors[0]
    assert result.published_at is not None and result.published_at.tzinfo is not None
    assert result.language == "en"
    assert result.site_name
    for boilerplate in ("Font Size", "Share on Facebook"):
        assert boilerplate not in result.text


def test_too_little_text_is_a_counted_skip() -> None:
    html = "<html><body><article><p>Watch: flood rescue in pictures.</p></article></body></html>"
    result = extract_page(html, f"{BASE}/video", min_text_chars=250)
    assert isinstance(result, ExtractSkip)
    assert result.reason in ("too_short", "no_text")


def test_pool_keeps_order_and_survives_a_page_over_its_time_limit() -> None:
    # Well over a second of extraction, however fast the machine.
    slow = Page(url=f"{BASE}/slow", html=_filler(60_000))
    fine = _page(SITE / "politics" / "reference-article.html")
    with Extractor(ExtractSettings(workers=2, page_timeout=1.0)) as extractor:
        results = extractor.extract_many([fine, slow, fine])
        after = extractor.extract_many([fine])
    assert isinstance(results[0], PageExtraction)
    assert isinstance(results[1], ExtractSkip) and results[1].reason == "timeout"
    assert isinstance(results[2], PageExtraction)
    assert isinstance(after[0], PageExtraction), "the pool must recover after a timeout"


def test_pool_survives_a_page_over_its_memory_limit() -> None:
    huge = Page(url=f"{BASE}/huge", html=_filler(60_000))
    fine = _page(SITE / "politics" / "reference-article.html")
    with Extractor(ExtractSettings(workers=1, page_memory_mb=160, page_timeout=60)) as extractor:
        results = extractor.extract_many([huge, fine])
    # Under an address-space cap lxml fails in varied ways (MemoryError, a parser or
    # XPath error, or the worker dies); each must end as a skip of this page only.
    assert isinstance(results[0], ExtractSkip)
    assert results[0].reason in ("memory", "worker_crashed", "error")
    assert isinstance(results[1], PageExtraction)
