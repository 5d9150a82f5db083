"""Feed administration: editing the TOML feeds file and reporting per-feed health.

Edits (:func:`add_feed`, :func:`remove_feed`, :func:`import_feeds`) work on TOML feeds
files with tomlkit, so comments and layout of the rest of the file survive. The new file
is read back with :func:`newsflow.feedlist.load_feeds` before it replaces the old one
(atomically): an edit never leaves a file that the poller cannot read.

Health (:func:`feed_health`) joins the configured feeds with what the store knows: the
feed state the poller keeps (last success, failures, next poll) and counts over the
stored articles of each feed (:meth:`connectors.store.Store.feed_stats`) and the pages
waiting to be fetched again (:meth:`connectors.store.Store.revisit_counts`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array

from connectors.store import FeedHealthSource, FeedStats, RevisitCounts
from newsflow.durations import format_duration, parse_duration
from newsflow.errors import ConfigError
from newsflow.feedlist import load_feeds
from newsflow.identity import url_key
from schemas import FeedConfig, FeedQuality, FeedState

__all__ = [
    "FeedHealth",
    "ImportResult",
    "add_feed",
    "feed_health",
    "feed_rows",
    "health_rows",
    "import_feeds",
    "read_feeds",
    "remove_feed",
]

RECENT = timedelta(hours=24)
"""Window of the "articles in the last 24 h" count."""


# --- the feeds file ----------------------------------------------------------------------


def read_feeds(path: Path) -> list[FeedConfig]:
    """The feeds listed in ``path`` (any format :func:`load_feeds` reads)."""
    if not path.exists():
        raise ConfigError(
            f"{path}: no feeds file; create it with `newsflow feeds add URL` or "
            "`newsflow feeds import FILE.opml`, or pass --feeds / set NEWSFLOW_FEEDS_FILE"
        )
    return load_feeds(path)


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) feed URL: {url!r}")
    return url


def _open_toml(path: Path, *, create: bool) -> tomlkit.TOMLDocument:
    if path.suffix.lower() != ".toml":
        raise ConfigError(
            f"{path}: newsflow edits TOML feeds files only; list the feeds in a .toml file "
            "(`newsflow feeds import` reads OPML into one)"
        )
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: no feeds file")
        document = tomlkit.document()
        document.add(tomlkit.comment("newsflow feeds; see README.md, 'Feeds files'."))
        return document
    load_feeds(path)  # refuse to edit a file that is already broken, saying why
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def _feed_list(document: tomlkit.TOMLDocument) -> AoT | Array:
    feeds = document.get("feeds")
    if feeds is None:
        feeds = tomlkit.aot()
        document.append("feeds", feeds)
        return feeds
    if isinstance(feeds, AoT | Array):
        return feeds
    raise ConfigError("'feeds' must be a list of [[feeds]] tables")


def _urls(feeds: AoT | Array) -> list[str]:
    return [str(item.get("url", "")) for item in feeds]


def _table(feed: FeedConfig, interval: str | float | None) -> dict[str, Any]:
    """The TOML fields of ``feed``: only what differs from the defaults."""
    fields: dict[str, Any] = {"url": feed.url}
    if feed.name:
        fields["name"] = feed.name
    if not feed.enabled:
        fields["enabled"] = False
    if interval is not None:
        fields["poll_interval"] = interval
    elif feed.poll_interval is not None:
        fields["poll_interval"] = feed.poll_interval
    if feed.tags:
        fields["tags"] = list(feed.tags)
    if feed.language:
        fields["language"] = feed.language
    if feed.respect_robots is not None:
        fields["respect_robots"] = feed.respect_robots
    if feed.recheck is not None:
        fields["recheck"] = feed.recheck
    if feed.group is not None:
        fields["group"] = feed.group
    return fields


def _append(feeds: AoT | Array, fields: dict[str, Any]) -> None:
    if isinstance(feeds, AoT):
        table = tomlkit.table()
        table.update(fields)
        feeds.append(table)
    else:
        inline = tomlkit.inline_table()
        inline.update(fields)
        feeds.append(inline)


def _save(path: Path, document: tomlkit.TOMLDocument) -> list[FeedConfig]:
    """Write ``document`` to ``path`` atomically once it reads back as a valid feeds file."""
    feeds = document.get("feeds")
    if isinstance(feeds, AoT):
        for table in feeds.body[:-1]:  # a blank line between tables, also after removals
            if not table.as_string().endswith("\n\n"):
                table.add(tomlkit.nl())
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".toml")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(tomlkit.dumps(document))
        try:
            result = load_feeds(temporary)
        except ConfigError as exc:  # names the temporary file: say which file was meant
            raise ConfigError(str(exc).replace(str(temporary), str(path))) from None
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return result


def add_feed(
    path: Path,
    url: str,
    *,
    name: str | None = None,
    tags: Sequence[str] = (),
    interval: str | None = None,
    language: str | None = None,
    respect_robots: bool | None = None,
    enabled: bool = True,
) -> FeedConfig:
    """Append a feed to the TOML feeds file at ``path`` (created when missing).

    Raises :class:`ConfigError` for a URL that is not http(s), one already listed, or an
    invalid option.
    """
    url = _check_url(url)
    seconds: float | None = None
    if interval is not None:
        try:
            seconds = parse_duration(interval)
        except ValueError as exc:
            raise ConfigError(f"--interval: {exc}") from None
    try:
        feed = FeedConfig(
            url=url,
            name=name or None,
            enabled=enabled,
            poll_interval=seconds,
            tags=list(dict.fromkeys(t.strip() for t in tags if t.strip())),
            language=language or None,
            respect_robots=respect_robots,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid feed: {exc}") from None
    document = _open_toml(path, create=True)
    feeds = _feed_list(document)
    if url_key(url) in {url_key(u) for u in _urls(feeds)}:
        raise ConfigError(f"{path}: already listed: {url}")
    # Keep a duration as typed: "15m" reads better than 900.0 in the file.
    typed = None if interval is None or _is_number(interval) else interval.strip()
    _append(feeds, _table(feed, typed))
    _save(path, document)
    return feed


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def remove_feed(path: Path, url: str) -> FeedConfig:
    """Remove the feed listed as ``url`` from the TOML feeds file; returns what it was."""
    document = _open_toml(path, create=False)
    feeds = _feed_list(document)
    wanted = url_key(url)
    for position, listed in enumerate(_urls(feeds)):
        if url_key(listed) == wanted:
            removed = next(f for f in load_feeds(path) if url_key(f.url) == wanted)
            del feeds[position]
            _save(path, document)
            return removed
    raise ConfigError(f"{path}: not listed: {url}")


@dataclass(slots=True)
class ImportResult:
    """What :func:`import_feeds` did."""

    added: list[FeedConfig] = field(default_factory=list)
    skipped: list[FeedConfig] = field(default_factory=list)
    """Feeds of the imported file that the feeds file already listed."""

    def as_dict(self) -> dict[str, object]:
        return {
            "read": len(self.added) + len(self.skipped),
            "added": len(self.added),
            "already_listed": len(self.skipped),
        }


def import_feeds(
    path: Path, source: Path, *, on_feed: Callable[[int, int], None] | None = None
) -> ImportResult:
    """Merge the feeds of ``source`` (OPML, TOML or YAML) into the TOML file at ``path``.

    Feeds already listed are skipped; ``on_feed(done, total)`` reports progress. Nothing
    is written when nothing is new (or when the result would not be a valid feeds file).
    """
    incoming = load_feeds(source)
    document = _open_toml(path, create=True)
    feeds = _feed_list(document)
    known = {url_key(u) for u in _urls(feeds)}
    result = ImportResult()
    for done, feed in enumerate(incoming, start=1):
        key = url_key(feed.url)
        if key in known:
            result.skipped.append(feed)
        else:
            known.add(key)
            _append(feeds, _table(feed, None))
            result.added.append(feed)
        if on_feed is not None:
            on_feed(done, len(incoming))
    if result.added:
        _save(path, document)
    return result


# --- health ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One feed as configured and as seen by the poller and the store."""

    url: str
    name: str | None
    configured: bool
    """False for a feed the store remembers that is no longer in the feeds file."""
    enabled: bool
    state: FeedState | None
    stats: FeedStats
    revisits: RevisitCounts = RevisitCounts()

    @property
    def health(self) -> str:
        """``ok``, ``parsed with errors``, ``failing``, ``never polled``, ``disabled`` or
        ``not configured``."""
        if not self.configured:
            return "not configured"
        if not self.enabled:
            return "disabled"
        if self.state is None or self.state.last_attempt_at is None:
            return "never polled"
        if self.state.consecutive_failures:
            return "failing"
        # Malformed but usable, until the feed parses clean (304s say nothing new).
        return "parsed with errors" if self.state.bozo else "ok"

    def share(self, missing: int) -> float | None:
        """``missing`` as a share of the feed's stored articles (None without articles)."""
        return missing / self.stats.articles if self.stats.articles else None


def feed_health(
    feeds: Sequence[FeedConfig],
    store: FeedHealthSource,
    now: datetime,
    *,
    include_unlisted: bool = True,
) -> list[FeedHealth]:
    """Health of every configured feed (and, by default, of feeds only the store knows)."""
    states = {state.feed_url: state for state in store.all_feed_states()}
    listed = {feed.url for feed in feeds}
    unlisted = [url for url in states if url not in listed] if include_unlisted else []
    stats = store.feed_stats([*listed, *unlisted], now - RECENT)
    waiting = store.revisit_counts([*listed, *unlisted])
    report = [
        FeedHealth(
            url=feed.url,
            name=feed.name,
            configured=True,
            enabled=feed.enabled,
            state=states.get(feed.url),
            stats=stats.get(feed.url, FeedStats()),
            revisits=waiting.get(feed.url, RevisitCounts()),
        )
        for feed in feeds
    ]
    report.extend(
        FeedHealth(
            url=url,
            name=states[url].name,
            configured=False,
            enabled=False,
            state=states[url],
            stats=stats.get(url, FeedStats()),
            revisits=waiting.get(url, RevisitCounts()),
        )
        for url in sorted(unlisted)
    )
    return report


# --- rows for the command line -----------------------------------------------------------


def feed_rows(feeds: Sequence[FeedConfig]) -> list[dict[str, str]]:
    """One row per configured feed, as ``newsflow feeds list`` shows them."""
    return [
        {
            "url": feed.url,
            "name": feed.name or "",
            "enabled": "yes" if feed.enabled else "no",
            "interval": (
                "default" if feed.poll_interval is None else format_duration(feed.poll_interval)
            ),
            "tags": ",".join(feed.tags),
            "language": feed.language or "",
            "robots": {None: "default", True: "obey", False: "ignore"}[feed.respect_robots],
        }
        for feed in feeds
    ]


def _age(moment: datetime | None, now: datetime, human: bool) -> str:
    if moment is None:
        return "-" if human else ""
    if not human:
        return moment.isoformat(timespec="seconds")
    seconds = (moment - now).total_seconds()
    amount = format_duration(abs(seconds), approximate=True)
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _percent(share: float | None, human: bool) -> str:
    if share is None:
        return "-" if human else ""
    return f"{share:.0%}" if human else f"{share:.3f}"


_QUALITY_COLUMNS = ("no_date", "no_author", "short_text", "teaser", "timeout", "feed_text")


def _quality_shares(quality: FeedQuality | None, human: bool) -> dict[str, str]:
    pages = quality.pages if quality is not None else 0
    columns = {"pages": str(pages)}
    for name in _QUALITY_COLUMNS:
        share = getattr(quality, name) / pages if quality is not None and pages else None
        columns[f"q_{name}"] = _percent(share, human)
    return columns


def domain_quality_rows(report: Sequence[FeedHealth], *, human: bool) -> list[dict[str, str]]:
    """Extraction quality per domain of the pages, over every listed feed's polls.

    One row per domain, the most pages first; ``feeds`` counts the feeds whose pages were
    on that domain (a feed may link to several).
    """
    totals: dict[str, FeedQuality] = {}
    feeds: dict[str, int] = {}
    for feed in report:
        if feed.state is None:
            continue
        for domain, quality in feed.state.quality_by_domain.items():
            totals[domain] = totals.get(domain, FeedQuality()).add(quality.model_dump())
            feeds[domain] = feeds.get(domain, 0) + 1
    ordered = sorted(totals.items(), key=lambda item: (-item[1].pages, item[0]))
    return [
        {"domain": domain, "feeds": str(feeds[domain]), **_quality_shares(quality, human)}
        for domain, quality in ordered
    ]


def health_rows(
    report: Sequence[FeedHealth], now: datetime, *, human: bool
) -> list[dict[str, str]]:
    """One row per feed, as ``newsflow feeds status`` shows them.

    ``human``: relative times and percentages for a terminal; otherwise ISO 8601 times and
    shares between 0 and 1 for scripts.
    """
    rows: list[dict[str, str]] = []
    for feed in report:
        state = feed.state
        error = ""
        if state is not None and state.consecutive_failures and state.last_error_class:
            message = state.last_error_message or ""
            if human:  # the row already names the feed
                for url in (feed.url, state.fetch_url):
                    message = message.replace(f"{url}: ", "") if url else message
            error = f"{state.last_error_class}: {message}".strip()
            if human and len(error) > 60:
                error = error[:59] + "…"
        rows.append(
            {
                "feed": (feed.name or feed.url) if human else feed.url,
                "health": feed.health,
                "last_success": _age(state.last_success_at if state else None, now, human),
                "failures": str(state.consecutive_failures if state else 0),
                "last_error": error,
                "next_poll": _age(state.next_poll_at if state else None, now, human),
                "retries": str(feed.revisits.retries),
                "given_up": str(feed.revisits.given_up),
                "articles": str(feed.stats.articles),
                "last_24h": str(feed.stats.recent),
                "no_date": _percent(feed.share(feed.stats.missing_published_at), human),
                "no_author": _percent(feed.share(feed.stats.missing_authors), human),
                "no_text": _percent(feed.share(feed.stats.missing_text), human),
                # Over every page extracted or skipped, stored or not (newsflow.quality).
                **_quality_shares(state.quality if state is not None else None, human),
            }
        )
    return rows
