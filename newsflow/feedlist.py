"""The feed list: reading feeds files (OPML, TOML, YAML) into :class:`FeedConfig` objects.

Every problem in a feeds file is reported at once, one line per problem, naming the file
and the entry, so a broken list can be fixed in one pass. OPML is parsed with a guarded
expat parser that refuses any DOCTYPE (and so every entity declaration): no billion laughs,
no external entities.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat

from pydantic import ValidationError

from newsflow.durations import parse_duration
from newsflow.errors import ConfigError
from newsflow.identity import url_key
from schemas import FeedConfig

__all__ = ["dump_opml", "load_feeds"]

# Real OPML files nest folders a few levels deep; the walk over outlines is recursive.
_MAX_OPML_DEPTH = 50


def load_feeds(path: Path) -> list[FeedConfig]:
    """Read a feeds file; the format follows the extension (.opml/.xml, .toml, .yaml/.yml).

    Raises :class:`ConfigError` listing every invalid or duplicated entry.
    """
    suffix = path.suffix.lower()
    if suffix not in (".opml", ".xml", ".toml", ".yaml", ".yml"):
        raise ConfigError(
            f"{path}: unknown feeds file type {suffix or '(none)'!r}; "
            "use .opml/.xml, .toml or .yaml/.yml"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read feeds file: {e}") from e

    if suffix in (".opml", ".xml"):
        raw = _read_opml(path, data)
    elif suffix == ".toml":
        raw = _read_toml(path, data)
    else:
        raw = _read_yaml(path, data)
    return _validate(path, raw)


def dump_opml(feeds: Iterable[FeedConfig], *, title: str = "newsflow feeds") -> str:
    """An OPML 2.0 document listing ``feeds``, grouped into folders by their first tag.

    Every tag also goes into the outline's ``category`` attribute, so :func:`load_feeds`
    reads back url, name, tags and language. OPML has no place for poll intervals,
    ``enabled`` or ``respect_robots``; those are lost.
    """
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            folder = feed.tags[0]
            if folder not in folders:
                folders[folder] = ET.SubElement(body, "outline", text=folder, title=folder)
            parent = folders[folder]
        name = feed.name or feed.url
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": feed.url}
        if feed.language:
            attrs["language"] = feed.language
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- reading ---------------------------------------------------------------------------


class _RawEntry:
    """One entry as read from the file, before validation."""

    __slots__ = ("fields", "where")

    def __init__(self, fields: dict[str, Any], where: str) -> None:
        self.fields = fields
        self.where = where


def _read_toml(path: Path, data: bytes) -> list[_RawEntry]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    return _entries_from_document(path, document, "[[feeds]] tables")


def _read_yaml(path: Path, data: bytes) -> list[_RawEntry]:
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - pyyaml is a declared dependency
        raise ConfigError(f"{path}: reading YAML feeds files needs PyYAML installed") from e
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    return _entries_from_document(path, document, "a 'feeds:' list")


def _entries_from_document(path: Path, document: object, expected: str) -> list[_RawEntry]:
    if not isinstance(document, Mapping) or "feeds" not in document:
        raise ConfigError(f"{path}: no feeds found; expected {expected}")
    unknown = sorted(str(key) for key in document if key != "feeds")
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; expected {expected}")
    feeds = document["feeds"]
    if feeds is None:
        return []
    if not isinstance(feeds, list):
        raise ConfigError(f"{path}: 'feeds' must be a list; expected {expected}")
    entries = []
    for number, item in enumerate(feeds, start=1):
        where = f"feed #{number}"
        if not isinstance(item, Mapping):
            entries.append(_RawEntry({"__not_a_table__": item}, where))
        else:
            entries.append(_RawEntry({str(key): value for key, value in item.items()}, where))
    return entries


class _Refused(Exception):
    """Raised inside expat handlers to stop on a DOCTYPE or entity declaration."""


def _refuse_doctype(*_args: object) -> None:
    raise _Refused("DOCTYPE declarations are not allowed in OPML feeds files")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("entity declarations are not allowed in OPML feeds files")


def _refuse_depth(line: int) -> None:
    raise _Refused(f"elements nested more than {_MAX_OPML_DEPTH} levels deep (line {line})")


def _parse_xml(path: Path, data: bytes) -> tuple[ET.Element, dict[ET.Element, int]]:
    """Build an ElementTree from ``data`` with expat, refusing DOCTYPE and entities.

    Also returns the line each element starts on, for error messages. Elements nested
    deeper than ``_MAX_OPML_DEPTH`` are refused.
    """
    builder = ET.TreeBuilder()
    lines: dict[ET.Element, int] = {}
    depth = 0
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.buffer_text = True

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > _MAX_OPML_DEPTH:
            _refuse_depth(parser.CurrentLineNumber)
        lines[builder.start(tag, attrs)] = parser.CurrentLineNumber

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused as e:
        raise ConfigError(f"{path}: {e}") from None
    except expat.ExpatError as e:
        raise ConfigError(f"{path}: not well-formed XML: {e}") from None
    return builder.close(), lines


def _read_opml(path: Path, data: bytes) -> list[_RawEntry]:
    root, lines = _parse_xml(path, data)
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{path}: not an OPML document (expected <opml> with a <body>)")
    entries: list[_RawEntry] = []

    def walk(element: ET.Element, folders: list[str]) -> None:
        for outline in element.iterfind("outline"):
            label = (outline.get("text") or outline.get("title") or "").strip()
            url = outline.get("xmlUrl")
            if url is None:
                walk(outline, [*folders, label] if label else folders)
                continue
            fields: dict[str, Any] = {"url": url, "tags": [*folders, *_categories(outline)]}
            name = (outline.get("title") or outline.get("text") or "").strip()
            if name and name != url.strip():
                fields["name"] = name
            language = (outline.get("language") or "").strip()
            if language:
                fields["language"] = language
            number = len(entries) + 1
            entries.append(_RawEntry(fields, f"feed #{number} (line {lines[outline]})"))
            walk(outline, folders)

    walk(body, [])
    return entries


def _categories(outline: ET.Element) -> list[str]:
    # OPML 2.0: comma-separated, slash-delimited category paths ("/Boston/Weather,tech").
    tags: list[str] = []
    for category in (outline.get("category") or "").split(","):
        tags.extend(part.strip() for part in category.split("/") if part.strip())
    return tags


# --- validation ------------------------------------------------------------------------


def _validate(path: Path, raw: list[_RawEntry]) -> list[FeedConfig]:
    problems: list[str] = []
    feeds: list[FeedConfig] = []
    first_seen: dict[str, str] = {}
    for entry in raw:
        prefix = f"{path}: {entry.where}"
        fields = dict(entry.fields)
        if "__not_a_table__" in fields:
            problems.append(f"{prefix}: expected a table of feed settings, got {fields!r}")
            continue
        entry_problems: list[str] = []
        url = fields.get("url")
        if isinstance(url, str):
            url = fields["url"] = url.strip()
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                entry_problems.append(f"{prefix}: url: not an http(s) URL: {url!r}")
        if fields.get("poll_interval") is not None:
            try:
                fields["poll_interval"] = parse_duration(fields["poll_interval"])
            except ValueError as e:
                entry_problems.append(f"{prefix}: poll_interval: {e}")
                del fields["poll_interval"]
        if isinstance(fields.get("tags"), list):
            fields["tags"] = _clean_tags(fields["tags"])
        try:
            feed = FeedConfig.model_validate(fields)
        except ValidationError as e:
            for error in e.errors(include_url=False):
                loc = ".".join(str(part) for part in error["loc"]) or "entry"
                entry_problems.append(f"{prefix}: {loc}: {error['msg']}")
        if entry_problems:
            problems.extend(entry_problems)
            continue
        key = url_key(feed.url)
        if key in first_seen:
            problems.append(
                f"{prefix}: duplicate url {feed.url!r} (already listed as {first_seen[key]})"
            )
            continue
        first_seen[key] = entry.where
        feeds.append(feed)
    if problems:
        raise ConfigError("\n".join(problems))
    return feeds


def _clean_tags(tags: list[Any]) -> list[Any]:
    # Strip and de-duplicate string tags, keeping the first spelling and the order;
    # anything that is not a string is left for pydantic to report.
    seen: set[str] = set()
    cleaned: list[Any] = []
    for tag in tags:
        if isinstance(tag, str):
            tag = tag.strip()
            if not tag or tag.casefold() in seen:
                continue
            seen.add(tag.casefold())
        cleaned.append(tag)
    return cleaned
