"""The ``newsflow`` command line."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from newsflow import __version__, logs, progress
from newsflow.errors import ConfigError, NewsflowError, TransientError
from newsflow.hits import print_hits
from newsflow.orchestrator import prefect_defaults
from newsflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from connectors.buffer import Consumer
    from newsflow.metrics import PrometheusMetrics
    from newsflow.summary import IndexSummary

__all__ = ["app"]

app = typer.Typer(
    name="newsflow",
    help="Streaming news ingestion: feeds -> extraction -> Kafka -> search index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger(__name__)
_out = Console()
_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"newsflow {__version__}")
        raise typer.Exit()


class _LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        _LogFormat,
        typer.Option(
            "--log-format",
            envvar="NEWSFLOW_LOG_FORMAT",
            case_sensitive=False,
            help="Log lines on stderr as text, or as JSON objects (ts, level, logger, message).",
        ),
    ] = _LogFormat.text,
) -> None:
    logs.configure(log_format.value, verbose=verbose)


@contextmanager
def _progress() -> Iterator[None]:
    if not _err.is_terminal:
        yield
        return
    bars = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_err,
        transient=False,
    )
    with bars:
        progress.install(progress.BarsReporter(bars))
        try:
            yield
        finally:
            progress.install(None)


_METRICS_PORT_OPTION = typer.Option(
    "--metrics-port",
    min=0,
    max=65535,
    help="Serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port).",
)
_METRICS_HOST_OPTION = typer.Option(
    "--metrics-host", help="Address the metrics endpoint listens on."
)
_PREFECT_OPTION = typer.Option(
    "--prefect/--no-prefect",
    help="Run as a Prefect flow, recorded in Prefect's API (default: when PREFECT_API_URL is set).",
    show_default=False,
)


def _use_prefect(requested: bool | None) -> bool:
    """Whether to run through the Prefect flows; says once when runs go unrecorded."""
    use = requested if requested is not None else bool(os.environ.get("PREFECT_API_URL"))
    if use:
        prefect_defaults()
    else:
        logger.info(
            "not recorded in Prefect: PREFECT_API_URL is not set "
            "(set it, or pass --prefect for a temporary Prefect server)"
        )
    return use


def _settings() -> Settings:
    """The settings from the environment; a bad value is one error line and exit code 2."""
    with _clear_errors():
        return load_settings()


def _report(title: str, values: Mapping[str, object]) -> None:
    """A table on a terminal; ``key=value`` lines otherwise (for logs and scripts)."""
    if _out.is_terminal:
        table = Table(title=title)
        table.add_column("count")
        table.add_column("value", justify="right")
        for key, value in values.items():
            table.add_row(key, str(value))
        _out.print(table)
    else:
        for key, value in values.items():
            print(f"{key}={value}")


@contextmanager
def _clear_errors() -> Iterator[None]:
    """newsflow's own errors as one line on stderr and an exit code (2, 3 or 1)."""
    try:
        yield
    except ConfigError as exc:
        _fail("error", exc, 2)
    except TransientError as exc:
        _fail("unavailable", exc, 3)
    except NewsflowError as exc:
        _fail("failed", exc, 1)


def _fail(label: str, exc: BaseException, code: int) -> NoReturn:
    line = Text(f"{label}:", style="red")
    line.append(f" {' '.join(str(exc).split())}")  # one line, whatever the message holds
    _err.print(line, soft_wrap=True)
    raise typer.Exit(code) from None


@app.command()
def run(
    feeds: Annotated[
        Path, typer.Option("--feeds", "-f", help="Feeds file: OPML, TOML or YAML.", exists=True)
    ],
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only feeds with this tag.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Poll feeds even if not due.")] = False,
    every: Annotated[
        float, typer.Option("--every", min=1.0, help="Without --once: seconds between cycles.")
    ] = 60.0,
    metrics_port: Annotated[int | None, _METRICS_PORT_OPTION] = None,
    metrics_host: Annotated[str, _METRICS_HOST_OPTION] = "127.0.0.1",
    prefect: Annotated[bool | None, _PREFECT_OPTION] = None,
) -> None:
    """Poll the feeds, extract new articles and publish them.

    Ctrl-C stops the feeds in flight before they save their state, so the next run polls
    them again. With --every, a feeds file broken between cycles is reported and the
    last good list is polled.
    """
    from newsflow.feedlist import load_feeds
    from newsflow.pipeline import PollRun, select_feeds

    with _clear_errors():
        settings = _settings()
        # A bad feeds file fails here, before a backend is opened or created.
        good = select_feeds(load_feeds(feeds), tag)
        cycle = _prefect_cycle(settings) if _use_prefect(prefect) else None
        with ExitStack() as stack:
            if metrics_port is not None:
                stack.enter_context(_served_metrics(metrics_host, metrics_port))
            if cycle is None:
                # One run for every cycle: the extraction pool starts once.
                poller = stack.enter_context(PollRun(settings))

                def direct(path: Path, tags: list[str] | None, force: bool) -> dict[str, object]:
                    poller.new_cycle()
                    return poller.poll(good, force=force).as_dict()

                cycle = direct
            try:
                while True:
                    started = time.monotonic()
                    with _progress(), _textfile(settings.metrics_textfile, "poll_feeds") as counts:
                        summary = cycle(feeds, tag, force)
                        counts.update(summary)
                    _report("poll_feeds", summary)
                    if once:
                        return
                    time.sleep(max(0.0, every - (time.monotonic() - started)))
                    try:
                        good = select_feeds(load_feeds(feeds), tag)
                    except ConfigError as exc:
                        logger.error("feeds file not reloaded, polling the last good list: %s", exc)
            except KeyboardInterrupt:
                _err.print(
                    "interrupted: feeds in flight stopped without saving their state; "
                    "the next run polls them again",
                    highlight=False,
                )
                raise typer.Exit(130) from None


_Cycle = Callable[[Path, "list[str] | None", bool], dict[str, object]]


@contextmanager
def _served_metrics(host: str, port: int) -> Iterator[PrometheusMetrics]:
    """Serve the pipeline's metrics on ``host:port``; every run within reports to them."""
    from newsflow import pipeline
    from newsflow.metrics import PrometheusMetrics, serve

    metrics = PrometheusMetrics()
    try:
        server = serve(metrics.registry, host, port)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {port}: {exc}") from None
    logger.info("serving metrics on %s", server.url, extra={"metrics_url": server.url})
    try:
        with pipeline.observe_pipeline(metrics):
            yield metrics
    finally:
        server.close()


def _prefect_cycle(settings: Settings) -> _Cycle:
    """One polling cycle as a run of the ``poll_feeds`` flow."""
    from flows.poll_feeds import poll_feeds

    logs.reclaim()  # importing Prefect replaced the console handler with its own

    def cycle(path: Path, tags: list[str] | None, force: bool) -> dict[str, object]:
        return poll_feeds(feeds_path=str(path), tags=tags, force=force, settings=settings)

    return cycle


@contextmanager
def _textfile(path: Path | None, job: str) -> Iterator[dict[str, object]]:
    """Collects a run's counts; writes them to the metrics textfile (if set) either way."""
    from newsflow.metrics import write_textfile

    counts: dict[str, object] = {}
    started = time.monotonic()
    success = False
    try:
        yield counts
        success = True
    finally:
        if path is not None:
            try:
                write_textfile(
                    path, job, counts, success=success, duration=time.monotonic() - started
                )
            except OSError as exc:
                _err.print(f"[yellow]warning:[/yellow] metrics textfile {path} not written: {exc}")


@contextmanager
def _index_progress(enabled: bool) -> Iterator[Callable[[IndexSummary, Consumer, float], None]]:
    """A spinner with the running counts on a terminal; a no-op callback otherwise."""
    if not enabled or not _err.is_terminal:
        yield lambda summary, consumer, seconds: None
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("indexing"),
        TextColumn("{task.completed:>8.0f} records"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )
    task = bars.add_task("index", total=None, counts="")

    def update(summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
        counts = (
            f"indexed={summary.indexed} duplicates={summary.duplicates} "
            f"dead_lettered={summary.dead_lettered} batches={summary.batches}"
        )
        bars.update(task, completed=summary.consumed, counts=counts)

    # The spinner carries the counts: the per-batch lines would only scroll it away.
    batch_log = logging.getLogger("newsflow.indexer")
    quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
    level = batch_log.level
    if quiet:
        batch_log.setLevel(logging.WARNING)
    try:
        with bars:
            yield update
    finally:
        batch_log.setLevel(level)


@app.command()
def index(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once everything waiting is indexed.")
    ] = False,
    metrics_port: Annotated[int | None, _METRICS_PORT_OPTION] = None,
    metrics_host: Annotated[str, _METRICS_HOST_OPTION] = "127.0.0.1",
    prefect: Annotated[bool | None, _PREFECT_OPTION] = None,
) -> None:
    """Consume articles from the buffer and write them into the store.

    With --until-idle and Prefect (PREFECT_API_URL or --prefect) the drain is a run of
    the index_articles flow; a continuous indexer is a service, never a flow run.
    """
    from newsflow import pipeline

    with _clear_errors():
        settings = _settings()
        as_flow = until_idle and _use_prefect(prefect)
        callbacks: list[Callable[[IndexSummary, Consumer, float], None]] = []
        served = ExitStack()
        if metrics_port is not None:
            metrics = served.enter_context(_served_metrics(metrics_host, metrics_port))
            callbacks.append(metrics.on_batch)
        try:
            with _index_progress(until_idle) as show:

                def on_batch(summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
                    for callback in (*callbacks, show):
                        callback(summary, consumer, seconds)

                if as_flow:
                    from flows.index_articles import index_articles

                    logs.reclaim()
                    with pipeline.observe_batches(on_batch):
                        counts = index_articles(settings=settings)
                else:
                    counts = pipeline.drain(
                        settings, until_idle=until_idle, on_batch=on_batch
                    ).as_dict()
        except KeyboardInterrupt:
            _err.print("interrupted: uncommitted records will be delivered again")
            raise typer.Exit(130) from None
        finally:
            served.close()
    _report("index", counts)


def _parse_since(value: str | None) -> datetime | None:
    from newsflow.durations import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='Words (all must match) and "quoted phrases".')],
    source: Annotated[str | None, typer.Option(help="Only this source (site name).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Published since a date (2024-05-01) or age (7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Published before a date (2024-06-01) or age (1d).")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Only this language code.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only articles with this tag.")] = None,
    domain: Annotated[str | None, typer.Option(help="Only this domain (no 'www.').")] = None,
    feed: Annotated[str | None, typer.Option(help="Only this feed (its URL or name).")] = None,
    author: Annotated[str | None, typer.Option(help="Only this author (exact byline).")] = None,
    sort: Annotated[str, typer.Option(help="'relevance' or 'date' (newest first).")] = "relevance",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Hits to show.")] = 10,
    page: Annotated[int, typer.Option(min=1, help="Page of hits to show.")] = 1,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every copy of a story, not one hit per story.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for scripts.")] = False,
) -> None:
    """Search the indexed articles: one hit per story (near-duplicates folded) by default."""
    from connectors import SearchQuery, open_store

    if sort not in ("relevance", "date"):
        raise typer.BadParameter("--sort must be 'relevance' or 'date'")
    settings = _settings()
    with _clear_errors():
        store = open_store(settings)
        try:
            result = store.search(
                SearchQuery(
                    text=query,
                    source=source,
                    since=_parse_since(since),
                    until=_parse_since(until),
                    language=lang,
                    tag=tag,
                    domain=domain,
                    feed=feed,
                    author=author,
                    sort="date" if sort == "date" else "relevance",
                    limit=limit,
                    offset=(page - 1) * limit,
                    collapse=not show_all,
                )
            )
        finally:
            store.close()
    if as_json:
        for hit in result.hits:
            print(
                json.dumps(
                    {
                        "doc_id": hit.doc_id,
                        "score": hit.score,
                        "title": hit.title,
                        "url": hit.url,
                        "source": hit.source,
                        "published_at": hit.published_at.isoformat() if hit.published_at else None,
                        "snippet": hit.snippet,
                        "story_id": hit.story_id,
                        "copies": hit.copies,
                    },
                    ensure_ascii=False,
                )
            )
        return
    print_hits(_out, result, query)


@app.command()
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the demo's data stays (default NEWSFLOW_DATA_DIR)."),
    ] = None,
    prefect: Annotated[bool | None, _PREFECT_OPTION] = None,
) -> None:
    """Run the whole pipeline offline on a bundled news site (embedded backends)."""
    from newsflow.demo import run_demo

    with _clear_errors():
        settings = _settings()
        result = run_demo(settings, _out, data_dir=data_dir, prefect=_use_prefect(prefect))
    if not result.ok:
        raise typer.Exit(1)


kibana_app = typer.Typer(help="Kibana saved objects for analysts.", no_args_is_help=True)
app.add_typer(kibana_app, name="kibana")


@kibana_app.command("import")
def kibana_import(
    url: Annotated[
        str | None, typer.Option(help="Kibana URL (default NEWSFLOW_KIBANA_URL).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Saved objects (default: the ones newsflow ships).")
    ] = None,
    space: Annotated[str | None, typer.Option(help="Kibana space.")] = None,
) -> None:
    """Load the data views, saved search and dashboard into Kibana."""
    from newsflow.kibana import SAVED_OBJECTS_FILE, import_saved_objects

    settings = _settings().kibana
    target = url or settings.url
    if not target:
        _err.print("[red]error:[/red] pass --url or set NEWSFLOW_KIBANA_URL")
        raise typer.Exit(2)
    with _clear_errors():
        result = import_saved_objects(
            target,
            file or SAVED_OBJECTS_FILE,
            space=space or settings.space,
            username=settings.username,
            password=settings.password,
            api_key=settings.api_key,
            verify=settings.verify_certs,
        )
    _report("kibana import", {"imported": result.imported, "failed": len(result.failures)})
    for failure in result.failures:
        _err.print(f"[red]failed:[/red] {failure.type} {failure.id}: {failure.reason}")
    for warning in result.warnings:
        _err.print(f"[yellow]warning:[/yellow] {warning}")
    if not result.ok:
        raise typer.Exit(1)


def _rows(title: str, rows: Sequence[Mapping[str, str]]) -> None:
    """A table on a terminal; tab-separated lines under a header line otherwise."""
    if not rows:
        return
    if _out.is_terminal:
        table = Table(title=title)
        for column in rows[0]:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row.values())
        _out.print(table)
    else:
        print("\t".join(rows[0]))
        for row in rows:
            print("\t".join(" ".join(value.split()) for value in row.values()))


feeds_app = typer.Typer(
    help="The feeds file (list, add, remove, import) and per-feed health.", no_args_is_help=True
)
app.add_typer(feeds_app, name="feeds")

_FeedsFile = Annotated[
    Path | None,
    typer.Option(
        "--feeds", "-f", help="Feeds file (default: NEWSFLOW_FEEDS_FILE, else ./feeds.toml)."
    ),
]


def _feeds_file(path: Path | None) -> Path:
    return path if path is not None else _settings().feeds_file


@feeds_app.command("list")
def feeds_list(feeds: _FeedsFile = None) -> None:
    """Show the configured feeds."""
    from newsflow.feedadmin import feed_rows, read_feeds

    path = _feeds_file(feeds)
    with _clear_errors():
        listed = read_feeds(path)
    if not listed:
        _err.print(f"no feeds in {path}", highlight=False)
    _rows(f"feeds in {path}", feed_rows(listed))


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="Feed URL (RSS or Atom, http or https).")],
    feeds: _FeedsFile = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag (repeat for several).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="Minimum time between polls: seconds, 90s, 15m, 2h, 1d.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Language hint, e.g. en.")] = None,
    no_robots: Annotated[
        bool, typer.Option("--no-robots", help="Ignore robots.txt for this feed's pages.")
    ] = False,
) -> None:
    """Add a feed to the feeds file (created when missing)."""
    from newsflow.feedadmin import add_feed

    path = _feeds_file(feeds)
    with _clear_errors():
        feed = add_feed(
            path,
            url,
            name=name,
            tags=tag or [],
            interval=interval,
            language=language,
            respect_robots=False if no_robots else None,
        )
    _err.print(f"added {feed.url} to {path}", highlight=False, soft_wrap=True)


@feeds_app.command("remove")
def feeds_remove(
    url: Annotated[str, typer.Argument(help="URL of the feed, as listed.")],
    feeds: _FeedsFile = None,
) -> None:
    """Remove a feed from the feeds file (its stored state and articles stay)."""
    from newsflow.feedadmin import remove_feed

    path = _feeds_file(feeds)
    with _clear_errors():
        feed = remove_feed(path, url)
    _err.print(f"removed {feed.url} from {path}", highlight=False, soft_wrap=True)


@feeds_app.command("import")
def feeds_import(
    source: Annotated[
        Path, typer.Argument(help="OPML (or TOML / YAML) file to merge in.", exists=True)
    ],
    feeds: _FeedsFile = None,
) -> None:
    """Merge the feeds of an OPML file into the feeds file, skipping those already listed."""
    from newsflow.feedadmin import import_feeds

    path = _feeds_file(feeds)
    with _clear_errors():
        if _err.is_terminal:
            bars = Progress(
                TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=_err
            )
            task = bars.add_task("import", total=None)
            with bars:
                result = import_feeds(
                    path,
                    source,
                    on_feed=lambda done, total: bars.update(task, completed=done, total=total),
                )
        else:
            result = import_feeds(path, source)
    _report("feeds import", result.as_dict())


@feeds_app.command("status")
def feeds_status(
    feeds: _FeedsFile = None,
    by_domain: Annotated[
        bool,
        typer.Option(
            "--by-domain", help="Extraction quality per domain of the pages instead of per feed."
        ),
    ] = False,
) -> None:
    """Per-feed health: polls, failures, articles in the last 24 h, missing metadata."""
    from connectors import open_store
    from newsflow.feedadmin import domain_quality_rows, feed_health, health_rows, read_feeds

    path = _feeds_file(feeds)
    settings = _settings()
    now = datetime.now(UTC)
    with _clear_errors():
        listed = read_feeds(path)
        store = open_store(settings)
        try:
            store.ensure()  # a store no poller has used yet: every feed "never polled"
            report = feed_health(listed, store, now)
        finally:
            store.close()
    if not report:
        _err.print(f"no feeds in {path}", highlight=False)
    if by_domain:
        _rows("extraction quality by domain", domain_quality_rows(report, human=_out.is_terminal))
        return
    _rows("feed health", health_rows(report, now, human=_out.is_terminal))


@app.command()
def reindex(
    history: Annotated[
        bool, typer.Option("--history", help="Move the history alias instead of the articles.")
    ] = False,
    delete_old: Annotated[
        bool, typer.Option("--delete-old", help="Delete the old index once the alias moved.")
    ] = False,
) -> None:
    """Copy the articles into a new index with the current mapping and move the alias.

    Versions are kept (the newest revision still wins), the alias moves in one atomic
    request, and writes made during the copy are copied after the move.
    """
    from connectors.elasticsearch import ElasticsearchStore

    with _clear_errors():
        settings = _settings()
        if not settings.elasticsearch.url:
            raise ConfigError("reindex needs Elasticsearch: NEWSFLOW_ELASTICSEARCH_URL is not set")
        store = ElasticsearchStore(settings.elasticsearch)
        try:
            done = store.reindex(history=history, delete_old=delete_old)
        finally:
            store.close()
    _report("reindex", done.as_dict())


@app.command()
def doctor(
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds each network request may take.")
    ] = 10.0,
) -> None:
    """Check the configured backends (and Prefect's API when PREFECT_API_URL is set)."""
    from newsflow.doctor import run_checks

    checks = run_checks(
        _settings(), prefect_api_url=os.environ.get("PREFECT_API_URL") or None, timeout=timeout
    )
    styles = {"ok": "green", "FAIL": "bold red", "skip": "dim"}
    width = max(len(check.name) for check in checks)
    for check in checks:
        if _out.is_terminal:
            line = Text(f"{check.status:<4}", style=styles[check.status])
            line.append(f" {check.name:<{width}}  {check.detail}")
            _out.print(line, soft_wrap=True)
        else:
            print(f"{check.status:<4} {check.name:<{width}}  {check.detail}")
    failed = [check for check in checks if check.failed]
    if failed:
        _err.print(f"[red]{len(failed)} check(s) failed[/red]")
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
