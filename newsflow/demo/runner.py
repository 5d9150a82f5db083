"""The ``newsflow demo`` run: the whole pipeline, offline, on the bundled news site.

:func:`run_demo` serves ``newsflow/demo/site/`` on 127.0.0.1, polls its feeds twice with
the ``poll_feeds`` flow (the article that changes between the polls is served in its
second version the second time), indexes each cycle with the :class:`~newsflow.indexer.
Indexer`, and prints what happened: a per-cycle table, the checks the demo exists to show
(nothing duplicated, the changed article updated, the broken feed reported), and a
sample search. It runs the same code as ``newsflow run`` and ``newsflow index``, on the
embedded buffer and store under the data directory, where the articles stay for
``newsflow search`` afterwards.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from connectors import SearchQuery, SearchResult, Store, open_store
from connectors.buffer import Consumer
from newsflow import logs, progress
from newsflow.demo.server import DemoSite, serve_demo_site
from newsflow.errors import ConfigError
from newsflow.feedlist import load_feeds
from newsflow.hits import print_hits
from newsflow.identity import canonical_url, doc_id
from newsflow.orchestrator import prefect_defaults
from newsflow.pipeline import PollRun, drain, select_feeds
from newsflow.progress import BarsReporter
from newsflow.settings import Settings
from newsflow.summary import IndexSummary

__all__ = ["Check", "Cycle", "DemoResult", "print_hits", "run_demo"]

_DEMO_DIR = Path(__file__).resolve().parent
_MARKER = "demo.json"
_FEEDS_FILE = "demo-feeds.toml"
# The embedded backends' files (and their SQLite journals) in the data directory.
_EMBEDDED_PREFIXES = ("buffer.sqlite3", "store.sqlite3")
_SEARCH_LIMIT = 5
_LIBRARY_LOGGERS = (
    "newsflow",
    "connectors",
    "flows",
    "prefect",
    "trafilatura",
    "htmldate",
    "httpx",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One property the demo demonstrates, and whether this run showed it."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Cycle:
    """One poll + index cycle."""

    poll: Mapping[str, object]
    """The ``poll_feeds`` flow's summary (``PollSummary.as_dict()``)."""
    index: IndexSummary
    documents: int
    """Documents in the store after this cycle."""
    seconds: float


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run did and showed."""

    data_dir: Path
    feeds_file: Path
    site_url: str
    cycles: tuple[Cycle, ...]
    unique_articles: int
    """Distinct canonical articles on the demo site that should be indexed."""
    documents: int
    changed_revisions: int
    search: SearchResult
    checks: tuple[Check, ...]
    prefect_seconds: float = 0.0
    """Time to reach Prefect's API (the temporary server's start-up, on first use)."""
    seconds: float = 0.0
    """The whole run."""

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(check.passed for check in self.checks)


def demo_settings(settings: Settings, data_dir: Path) -> Settings:
    """``settings`` as the demo runs them: embedded backends under ``data_dir``.

    The demo site is on 127.0.0.1 and is ours: no SSRF guard, no politeness delay; and
    everything is published before the indexer starts, so it need not wait for more.
    """
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": None}),
            "elasticsearch": settings.elasticsearch.model_copy(update={"url": None}),
            "fetch": settings.fetch.model_copy(
                update={
                    "allow_private_networks": True,
                    "per_host_delay": 0.0,
                    "per_host_concurrency": 8,
                }
            ),
            "indexer": settings.indexer.model_copy(update={"poll_timeout": 0.2}),
        }
    )


def run_demo(
    settings: Settings,
    console: Console,
    *,
    data_dir: Path | None = None,
    verbose: bool = False,
    prefect: bool = False,
) -> DemoResult:
    """Run the offline demo and print its report on ``console``.

    ``data_dir`` (default ``settings.data_dir``) receives the embedded buffer and store
    and the demo's feeds file. A data directory left by an earlier demo is reset; one
    holding other newsflow data is refused with :class:`~newsflow.errors.ConfigError`.
    With ``prefect`` the polls are runs of the ``poll_feeds`` flow (and, unless
    ``PREFECT_HOME`` is set, Prefect's database is kept in the data directory); without,
    the same pipeline runs directly. Without ``verbose``, library logging is held at
    WARNING so that the report stays readable.
    """
    started = time.monotonic()
    manifest = _manifest()
    target = (data_dir or settings.data_dir).expanduser().resolve()
    local = demo_settings(settings, target)
    with _quiet(not verbose), ExitStack() as stack:
        _prepare(target, local, manifest)
        console.print(
            f"[bold]newsflow demo[/bold]: {manifest['site_name']}, a bundled offline news "
            "site, through the whole pipeline on the embedded backends"
        )
        if prefect:
            with console.status("Starting Prefect..."):
                poll, where, prefect_seconds = _prefect_polls(local, target, verbose=verbose)
        else:
            poll = _direct_polls(local, stack)
            where, prefect_seconds = "not used (set PREFECT_API_URL or pass --prefect)", 0.0
        site = stack.enter_context(serve_demo_site())
        feeds_file = _write_feeds_file(target, site)
        _write_marker(target, site)
        console.print(f"  site     {site.base}/ ({len(manifest['feeds'])} feeds)", highlight=False)
        console.print(f"  data     {target}", highlight=False)
        console.print(f"  prefect  {where}", highlight=False)
        cycles = []
        for phase in (1, 2):
            site.phase = phase
            cycles.append(_cycle(phase, feeds_file, poll, local, console, manifest))
        store = open_store(local)
        try:
            result = _result(target, feeds_file, site, tuple(cycles), store, manifest)
        finally:
            store.close()
    result = replace(result, prefect_seconds=prefect_seconds, seconds=time.monotonic() - started)
    _report(console, result, manifest, settings, target)
    return result


_Poll = Callable[[Path], Mapping[str, object]]


def _direct_polls(settings: Settings, stack: ExitStack) -> _Poll:
    """Polls that run :class:`~newsflow.pipeline.PollRun` in this process."""
    run = stack.enter_context(PollRun(settings))

    def poll(feeds_file: Path) -> Mapping[str, object]:
        run.new_cycle()
        return run.poll(select_feeds(load_feeds(feeds_file), None), force=True).as_dict()

    return poll


def _prefect_polls(
    settings: Settings, data_dir: Path, *, verbose: bool
) -> tuple[_Poll, str, float]:
    """Polls that are runs of the ``poll_feeds`` flow, once Prefect's API answers.

    Without ``PREFECT_API_URL`` this starts Prefect's temporary API server, which the
    flows of this process then share; its first start creates its database (kept next
    to the demo data: a new one costs ~30 s).
    """
    prefect_defaults(home=data_dir / "prefect", quiet=not verbose)
    from prefect.client.base import ServerType
    from prefect.client.orchestration import get_client

    from flows.poll_feeds import poll_feeds

    logs.reclaim()  # importing Prefect replaced the console handler with its own
    started = time.monotonic()
    with get_client(sync_client=True) as client:
        client.hello()
        api = str(client.api_url)
        if client.server_type == ServerType.EPHEMERAL:
            api += ", a temporary server"
    seconds = time.monotonic() - started

    def poll(feeds_file: Path) -> Mapping[str, object]:
        return poll_feeds(feeds_path=str(feeds_file), force=True, settings=settings)

    return poll, f"{api}, ready in {seconds:.1f} s", seconds


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Hold library loggers at WARNING (per-batch INFO lines would break the bars)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# --- the data directory ----------------------------------------------------------------


def _manifest() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((_DEMO_DIR / "manifest.json").read_text(encoding="utf-8"))
    return document


def _prepare(data_dir: Path, settings: Settings, manifest: Mapping[str, Any]) -> None:
    """Make ``data_dir`` ready: new, or reset when an earlier demo left it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"the demo's data directory {data_dir} cannot be used: {exc}") from None
    existing = sorted(p for p in data_dir.iterdir() if p.name.startswith(_EMBEDDED_PREFIXES))
    if not existing:
        return
    advice = "choose another data directory for the demo (NEWSFLOW_DATA_DIR)"
    if not (data_dir / _MARKER).is_file():
        raise ConfigError(f"{data_dir} already holds newsflow data; {advice}")
    store = open_store(settings)
    try:
        foreign = [
            state.feed_url
            for state in store.all_feed_states()
            if not _is_demo_feed(state.feed_url, manifest)
        ]
    finally:
        store.close()
    if foreign:
        raise ConfigError(
            f"{data_dir} holds the articles of an earlier demo and of other feeds "
            f"({foreign[0]}, ...); {advice}"
        )
    for path in existing:
        path.unlink()


def _is_demo_feed(url: str, manifest: Mapping[str, Any]) -> bool:
    match = re.fullmatch(r"http://127\.0\.0\.1:\d+/(.+)", url)
    return match is not None and match.group(1) in {f["path"] for f in manifest["feeds"]}


def _write_feeds_file(data_dir: Path, site: DemoSite) -> Path:
    template = (_DEMO_DIR / "feeds.toml").read_text(encoding="utf-8")
    path = data_dir / _FEEDS_FILE
    path.write_text(template.replace("{{BASE}}", site.base), encoding="utf-8")
    return path


def _write_marker(data_dir: Path, site: DemoSite) -> None:
    marker = {
        "written_by": "newsflow demo",
        "site_url": site.base,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (data_dir / _MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


# --- one cycle -------------------------------------------------------------------------


def _cycle(
    phase: int,
    feeds_file: Path,
    poll: _Poll,
    settings: Settings,
    console: Console,
    manifest: Mapping[str, Any],
) -> Cycle:
    started = time.monotonic()
    label = f"poll {phase}"
    bars = Progress(
        TextColumn("  {task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    if phase == 1:
        console.print("  poll 1: every feed, then the indexer")
    else:
        console.print(
            f"  poll 2: {manifest['changed']['path']} has been updated; the other feeds "
            "are unchanged",
            highlight=False,
        )
    hook = BarsReporter(bars, label)
    with bars:
        feeds = bars.add_task(f"{label} feeds", total=None)
        progress.install(hook)
        try:
            polled = poll(feeds_file)
        finally:
            progress.install(None)
        done = _int(polled.get("feeds_polled"))
        bars.update(feeds, total=done, completed=done)
        hook.task("fetch+extract", 0)  # a bar even when nothing was new
        indexed = _index(settings, hook, _int(polled.get("published")), bars)
    store = open_store(settings)
    try:
        store.refresh()
        documents = store.count()
    finally:
        store.close()
    return Cycle(polled, indexed, documents, time.monotonic() - started)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _index(settings: Settings, hook: BarsReporter, expected: int, bars: Progress) -> IndexSummary:
    task = hook.task("index", expected)

    def on_batch(summary: IndexSummary, consumer: Consumer, _seconds: float) -> None:
        waiting = sum(consumer.lag().values())
        bars.update(task, total=summary.consumed + waiting, completed=summary.consumed)

    summary = drain(settings, until_idle=True, on_batch=on_batch)
    bars.update(task, total=summary.consumed, completed=summary.consumed)
    return summary


# --- what the run showed ---------------------------------------------------------------


def _result(
    data_dir: Path,
    feeds_file: Path,
    site: DemoSite,
    cycles: tuple[Cycle, ...],
    store: Store,
    manifest: Mapping[str, Any],
) -> DemoResult:
    def page_id(path: str) -> str:
        return doc_id(canonical_url(site.url(path)))

    pages: list[dict[str, Any]] = manifest["pages"]
    expected = {page_id(p["canonical"]) for p in pages if p["outcome"] == "indexed"}
    found = store.lookup(sorted(expected))
    documents = store.count()
    copies = [p for p in pages if p["outcome"] == "syndicated"]
    copy_docs = [p["path"] for p in copies if store.get(page_id(p["path"])) is not None]
    changed_id = page_id(manifest["changed"]["path"])
    history = store.history(changed_id)
    current = store.get(changed_id)
    update_line = manifest["changed"]["update"].split(":", 1)[0]
    search = store.search(SearchQuery(text=manifest["search"], limit=_SEARCH_LIMIT))
    reference_id = page_id(manifest["reference"])
    rank = next((n for n, h in enumerate(search.hits, 1) if h.doc_id == reference_id), None)
    second = cycles[-1].poll
    broken = [f["path"] for f in manifest["feeds"] if f["format"] == "broken"]
    changed_feed = manifest["changed"]["feed"]
    unchanged_feeds = len(manifest["feeds"]) - len(broken) - 1
    checks = (
        Check(
            "every article indexed exactly once",
            documents == len(expected) and len(found) == len(expected),
            f"{documents} documents for {len(expected)} unique articles "
            f"({len(expected) - len(found)} missing)",
        ),
        Check(
            "syndicated copy folded into its original",
            bool(copies) and not copy_docs,
            f"{', '.join(p['path'] for p in copies)} carries rel=canonical to "
            f"{', '.join(p['canonical'] for p in copies)}"
            + (f"; but stored as {copy_docs}" if copy_docs else ""),
        ),
        Check(
            "second poll fetched only what changed",
            second.get("published") == 1 and second.get("not_modified") == unchanged_feeds,
            f"{second.get('not_modified')} feeds answered 304 Not Modified, {changed_feed} "
            f"changed, {second.get('published')} article published",
        ),
        Check(
            "changed article updated in place",
            len(history) == 2 and current is not None and update_line in current.text,
            f"{manifest['changed']['path']}: {len(history)} revisions in its history, "
            + (
                "current text has the update"
                if current and update_line in current.text
                else "current text lacks the update"
            ),  # fmt: skip
        ),
        Check(
            "broken feed reported, not fatal",
            bool(broken) and all(_int(c.poll.get("failed")) >= 1 for c in cycles),
            f"{', '.join(broken)} (an HTML error page) counted as failed in every poll",
        ),
        Check(
            f"search for {manifest['search']!r} ranks the reference article",
            rank is not None and rank <= 3,
            f"{manifest['reference']} is hit #{rank}" if rank else "reference article not found",
        ),
    )
    return DemoResult(
        data_dir=data_dir,
        feeds_file=feeds_file,
        site_url=site.base,
        cycles=cycles,
        unique_articles=len(expected),
        documents=documents,
        changed_revisions=len(history),
        search=search,
        checks=checks,
    )


# --- printing --------------------------------------------------------------------------

_ROWS = [
    ("feeds polled", "feeds_polled"),
    ("  not modified (304)", "not_modified"),
    ("  failed", "failed"),
    ("entries seen", "entries_seen"),
    ("new or updated", "new"),
    ("pages fetched", "fetched"),
    ("articles extracted", "extracted"),
]
_ROWS_AFTER_SKIPS = [
    ("duplicates dropped", "duplicates"),
    ("published to the buffer", "published"),
]


def _report(
    console: Console,
    result: DemoResult,
    manifest: Mapping[str, Any],
    settings: Settings,
    data_dir: Path,
) -> None:
    table = Table(title="newsflow demo: two polling cycles", title_justify="left")
    table.add_column("")
    for number in range(1, len(result.cycles) + 1):
        table.add_column(f"poll {number}", justify="right")
    polls = [c.poll for c in result.cycles]
    for label, key in _ROWS:
        table.add_row(label, *(str(p.get(key, 0)) for p in polls))
    reasons = sorted({k for p in polls for k in p if k.startswith("skipped.")})
    for key in reasons:
        table.add_row(
            f"skipped: {key.removeprefix('skipped.')}", *(str(p.get(key, 0)) for p in polls)
        )
    for label, key in _ROWS_AFTER_SKIPS:
        table.add_row(label, *(str(p.get(key, 0)) for p in polls))
    table.add_section()
    table.add_row("indexed", *(str(c.index.indexed) for c in result.cycles))
    table.add_row("replays (index duplicates)", *(str(c.index.duplicates) for c in result.cycles))
    table.add_row("dead-lettered", *(str(c.index.dead_lettered) for c in result.cycles))
    table.add_row("documents in the store", *(str(c.documents) for c in result.cycles))
    table.add_row("seconds", *(f"{c.seconds:.1f}" for c in result.cycles))
    console.print()
    console.print(table)
    console.print()
    for check in result.checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        console.print(f"{mark} [bold]{check.name}[/bold]: {check.detail}", highlight=False)
    console.print()
    console.print(Text(f"Sample search: newsflow search {manifest['search']!r}", style="bold"))
    print_hits(console, result.search, manifest["search"])
    console.print()
    console.print(
        f"Finished in {result.seconds:.1f} s"
        + (
            f" ({result.prefect_seconds:.1f} s of it starting Prefect)"
            if result.prefect_seconds
            else ""
        )
        + f". The articles stay in {data_dir}.",
        highlight=False,
    )
    prefix = ""
    if data_dir != settings.data_dir.expanduser().resolve():
        prefix = f"NEWSFLOW_DATA_DIR={data_dir} "
    if settings.kafka.bootstrap_servers or settings.elasticsearch.url:
        prefix = "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS= NEWSFLOW_ELASTICSEARCH_URL= " + prefix
    console.print("Next:")
    for command in (
        'newsflow search "harbor city council" --limit 5',
        'newsflow search "Taliban" --json',
        "newsflow search Radwege --lang de",
    ):
        console.print(f"  {prefix}{command}", highlight=False, markup=False)
    console.print(
        "  newsflow run --once --feeds my-feeds.opml   (your own feeds; see README)",
        highlight=False,
        markup=False,
    )
