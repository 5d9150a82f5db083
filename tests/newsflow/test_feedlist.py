"""Reading feeds files: OPML, TOML, YAML, intervals, and the errors a broken list gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow.errors import ConfigError
from newsflow.feedlist import dump_opml, load_feeds
from schemas import FeedConfig

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Reader export</title></head>
  <body>
    <outline text="News" title="News">
      <outline text="World" title="World">
        <outline type="rss" text="Example World" title="Example World"
                 xmlUrl="https://news.example/world/rss.xml" htmlUrl="https://news.example/world"
                 language="en"/>
      </outline>
      <outline type="rss" text="Le Monde" xmlUrl="https://lemonde.example/rss" language="fr"
               category="/Europe/France,politics"/>
    </outline>
    <outline text="Tech">
      <outline type="atom" title="Gadgets" text="gadgets" xmlUrl="http://gadgets.example/atom"/>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="https://top.example/feed"/>
  </body>
</opml>
"""

TOML = """
[[feeds]]
url = "https://a.example/feed.xml"
name = "A"
tags = ["world", " news ", "World"]
poll_interval = "15m"
language = "en"

[[feeds]]
url = "https://b.example/atom"
enabled = false
poll_interval = 90
respect_robots = false
"""

YAML = """
feeds:
  - url: https://a.example/feed.xml
    name: A
    tags: [world]
    poll_interval: 2h
  - url: https://b.example/atom
    poll_interval: 1d
    enabled: false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_opml_nested_categories_become_tags(tmp_path: Path) -> None:
    feeds = load_feeds(write(tmp_path, "export.opml", OPML))

    assert [f.url for f in feeds] == [
        "https://news.example/world/rss.xml",
        "https://lemonde.example/rss",
        "http://gadgets.example/atom",
        "https://top.example/feed",
    ]
    world, lemonde, gadgets, top = feeds
    assert world.name == "Example World"
    assert world.tags == ["News", "World"]
    assert world.language == "en"
    assert lemonde.tags == ["News", "Europe", "France", "politics"]
    assert lemonde.language == "fr"
    assert gadgets.name == "Gadgets"  # title wins over text
    assert gadgets.tags == ["Tech"]
    assert top.tags == []
    assert top.name == "Top level"
    assert all(f.enabled and f.poll_interval is None for f in feeds)


def test_xml_extension_is_read_as_opml(tmp_path: Path) -> None:
    feeds = load_feeds(write(tmp_path, "feeds.xml", OPML))
    assert len(feeds) == 4


def test_toml(tmp_path: Path) -> None:
    a, b = load_feeds(write(tmp_path, "feeds.toml", TOML))

    assert a == FeedConfig(
        url="https://a.example/feed.xml",
        name="A",
        tags=["world", "news"],
        poll_interval=900.0,
        language="en",
    )
    assert b.enabled is False
    assert b.poll_interval == 90.0
    assert b.respect_robots is False


def test_yaml(tmp_path: Path) -> None:
    for name in ("feeds.yaml", "feeds.YML"):
        a, b = load_feeds(write(tmp_path, name, YAML))
        assert a.name == "A"
        assert a.tags == ["world"]
        assert a.poll_interval == 7200.0
        assert b.poll_interval == 86400.0
        assert b.enabled is False


def test_bad_interval_in_file_names_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path, "feeds.yaml", "feeds:\n  - url: https://a.example/\n    poll_interval: soon\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_feeds(path)
    assert str(raised.value) == (
        f"{path}: feed #1: poll_interval: expected seconds or a duration like "
        "'90s', '15m', '2h', '1d', got 'soon'"
    )


def test_duplicate_url_names_both_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.toml",
        '[[feeds]]\nurl = "https://a.example/feed"\n'
        '[[feeds]]\nurl = "https://b.example/feed"\n'
        '[[feeds]]\nurl = "https://A.EXAMPLE/feed"\n',
    )
    with pytest.raises(ConfigError) as raised:
        load_feeds(path)
    assert str(raised.value) == (
        f"{path}: feed #3: duplicate url 'https://A.EXAMPLE/feed' (already listed as feed #1)"
    )


def test_duplicate_in_opml_names_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.opml",
        '<opml version="2.0"><body>\n'
        '<outline text="a" xmlUrl="https://a.example/feed"/>\n'
        '<outline text="b"><outline text="a again" xmlUrl="https://a.example/feed"/></outline>\n'
        "</body></opml>\n",
    )
    with pytest.raises(
        ConfigError, match=r"feed #2 \(line 3\): duplicate url .*feed #1 \(line 2\)"
    ):
        load_feeds(path)


@pytest.mark.parametrize(
    "url", ["ftp://a.example/feed", "file:///etc/passwd", "a.example/feed", "https:///nohost"]
)
def test_non_http_url_is_refused(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, "feeds.toml", f'[[feeds]]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as raised:
        load_feeds(path)
    assert str(raised.value) == f"{path}: feed #1: url: not an http(s) URL: {url!r}"


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.toml",
        '[[feeds]]\nurl = "https://ok.example/feed"\n'
        '[[feeds]]\nname = "no url"\n'
        '[[feeds]]\nurl = "https://c.example/"\nenabled = "perhaps"\ncolour = "blue"\n'
        '[[feeds]]\nurl = "https://d.example/"\npoll_interval = -3\n',
    )
    with pytest.raises(ConfigError) as raised:
        load_feeds(path)
    lines = str(raised.value).splitlines()
    assert lines == [
        f"{path}: feed #2: url: Field required",
        f"{path}: feed #3: enabled: Input should be a valid boolean, unable to interpret input",
        f"{path}: feed #3: colour: Extra inputs are not permitted",
        f"{path}: feed #4: poll_interval: must not be negative, got -3",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("feeds.json", "{}", "unknown feeds file type '.json'"),
        ("feeds.toml", '[[feed]]\nurl = "https://a.example/"\n', "no feeds found"),
        ("feeds.toml", "feeds = 3\n", "'feeds' must be a list"),
        ("feeds.toml", "[[feeds]\n", "not valid TOML"),
        ("feeds.yaml", "feeds: [\n", "not valid YAML"),
        ("feeds.yaml", "feeds: []\nextra: 1\n", "unknown top-level keys ['extra']"),
        ("feeds.yaml", "feeds:\n  - https://a.example/\n", "expected a table of feed settings"),
        ("feeds.opml", "<opml><body><outline", "not well-formed XML"),
        ("feeds.opml", "<rss><channel/></rss>", "not an OPML document"),
    ],
)
def test_broken_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_feeds(write(tmp_path, name, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read feeds file"):
        load_feeds(tmp_path / "absent.toml")


def test_empty_feeds_list_is_allowed(tmp_path: Path) -> None:
    assert load_feeds(write(tmp_path, "feeds.yaml", "feeds: []\n")) == []


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<opml version="2.0"><body><outline text="&lol3;" xmlUrl="https://a.example/"/></body></opml>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE opml SYSTEM "http://evil.example/opml.dtd">
<opml version="2.0"><body><outline text="x" xmlUrl="https://a.example/"/></body></opml>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_doctype_and_entities_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="DOCTYPE declarations are not allowed"):
        load_feeds(write(tmp_path, "evil.opml", text))


def test_doctype_is_refused_in_utf16_too(tmp_path: Path) -> None:
    path = tmp_path / "evil.opml"
    path.write_bytes(
        BILLION_LAUGHS.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>', 1).encode("utf-16")
    )
    with pytest.raises(ConfigError, match="DOCTYPE declarations are not allowed"):
        load_feeds(path)


def test_dump_opml_round_trips(tmp_path: Path) -> None:
    feeds = [
        FeedConfig(
            url="https://a.example/feed", name="A & B", tags=["world", "news"], language="en"
        ),
        FeedConfig(url="https://b.example/feed", tags=["world"]),
        FeedConfig(url="https://c.example/feed?x=1&y=2", name="C"),
    ]
    text = dump_opml(feeds)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    again = load_feeds(write(tmp_path, "export.opml", text))
    assert [(f.url, f.name, f.tags, f.language) for f in again] == [
        ("https://a.example/feed", "A & B", ["world", "news"], "en"),
        ("https://b.example/feed", None, ["world"], None),
        ("https://c.example/feed?x=1&y=2", "C", [], None),
    ]


def test_opml_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.opml"
    nested = '<outline text="f">' * 3000 + "</outline>" * 3000
    path.write_text(f'<opml version="2.0"><body>{nested}</body></opml>', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.opml: elements nested more than 50 levels"):
        load_feeds(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [("deep.toml", "feeds = " + "[" * 5000 + "]" * 5000), ("deep.yaml", "feeds: " + "[" * 5000)],
)
def test_toml_and_yaml_nested_too_deeply_are_config_errors(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{name}: not valid"):
        load_feeds(path)
