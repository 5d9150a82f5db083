import pytest

from newsflow.identity import (
    canonical_url,
    content_hash,
    doc_id,
    domain_of,
    elsewhere_canonical,
    site_of,
    url_key,
)


def test_canonical_url_normalises_case_port_fragment_and_tracking() -> None:
    url = "HTTP://WWW.Example.COM:80/a/b?utm_source=rss&b=2&a=1&fbclid=x&gclid=y&mc_cid=z#top"
    assert canonical_url(url) == "http://www.example.com/a/b?a=1&b=2"


def test_https_default_port_dropped_and_query_kept() -> None:
    assert canonical_url("https://example.com:443/x?id=5&utm_medium=feed") == (
        "https://example.com/x?id=5"
    )


def test_same_site_canonical_wins() -> None:
    link = "https://news.example.com/world/story-123.html?utm_source=rss"
    page = "https://news.example.com/world/story-123-full.html"
    assert canonical_url(link, page) == page


def test_other_site_canonical_is_ignored() -> None:
    link = "https://news.example.com/story?id=1"
    assert canonical_url(link, "https://aggregator.example.org/copy") == link


def test_relative_canonical_is_ignored() -> None:
    assert canonical_url("https://a.example/x", "/y") == "https://a.example/x"


def test_tracking_variants_share_one_doc_id() -> None:
    plain = doc_id(canonical_url("https://a.example/story.html"))
    tracked = doc_id(canonical_url("https://A.example/story.html?utm_source=x&utm_campaign=y"))
    assert plain == tracked
    assert len(plain) == 32 and int(plain, 16) >= 0
    assert doc_id(canonical_url("https://a.example/other.html")) != plain


def test_content_hash_ignores_whitespace_and_unicode_form() -> None:
    assert content_hash("Caf\u00e9  opens\n today") == content_hash("Cafe\u0301 opens today")
    assert content_hash("one text") != content_hash("another text")


def test_domain_of_strips_www() -> None:
    assert domain_of("https://www.example.com/a") == "example.com"


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("https://news.example.com/feed.xml", "https://news.example.com/feed.xml"),
        (" HTTPS://News.Example.COM/feed.xml#latest ", "https://news.example.com/feed.xml"),
        ("https://news.example.com", "https://news.example.com/"),
        ("https://news.example.com?a=1", "https://news.example.com/?a=1"),
        ("https://Me@Example.com:8443/x", "https://me@example.com:8443/x"),
    ],
)
def test_url_key_folds_scheme_host_empty_path_and_fragment(spelling: str, key: str) -> None:
    assert url_key(spelling) == key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://a.example/Feed", "https://a.example/feed"),  # the path is case-sensitive
        ("https://a.example/f?a=1&b=2", "https://a.example/f?b=2&a=1"),  # so is query order
        ("https://a.example/f", "https://a.example/f?utm_source=x"),  # no tracking rules
        ("https://a.example/f", "http://a.example/f"),
        ("https://a.example/f", "https://a.example:443/f"),  # ports are kept as written
    ],
)
def test_url_key_keeps_what_the_server_may_read(one: str, other: str) -> None:
    assert url_key(one) != url_key(other)


def test_canonical_url_is_the_url_key_of_the_cleaned_url() -> None:
    url = "HTTPS://A.example:443?utm_source=x#top"
    assert canonical_url(url) == url_key(canonical_url(url)) == "https://a.example/"


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        ("https://foo.blogspot.com/post", "https://bar.blogspot.com/post"),
        ("https://alice.github.io/a", "https://bob.github.io/a"),
        ("https://news.example.co.uk/a", "https://other.co.uk/a"),
    ],
)
def test_a_canonical_on_another_tenant_or_site_never_takes_the_doc_id(
    link: str, canonical: str
) -> None:
    assert canonical_url(link, canonical) == link
    assert elsewhere_canonical(link, canonical) == canonical


def test_same_site_is_the_registrable_domain() -> None:
    assert site_of("https://news.bbc.co.uk/x") == site_of("https://www.bbc.co.uk/y")
    assert site_of("https://foo.blogspot.com/") == "foo.blogspot.com"
    assert site_of("http://127.0.0.1:8080/x") == "127.0.0.1"
    assert canonical_url("https://m.example.com/a", "https://www.example.com/a") == (
        "https://www.example.com/a"
    )
    assert elsewhere_canonical("https://m.example.com/a", "https://www.example.com/a") is None
