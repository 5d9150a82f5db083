"""The ``newsflow`` command line."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from newsflow import __version__, progress
from newsflow.errors import ConfigError, NewsflowError, TransientError
from newsflow.settings import Settings

__all__ = ["app"]

# Prefect defaults for a command-line tool: without PREFECT_API_URL, Prefect starts a
# temporary API server, whose first start (database migrations) can take half a minute
# on a small machine; and a news ingester has no business phoning home.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    name="newsflow",
    help="Streaming news ingestion: feeds -> extraction -> Kafka -> search index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_MATCH = re.compile(r"\[\[(.*?)\]\]")
_out = Console()
_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"newsflow {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("kafka", "elastic_transport", "httpx", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _RichReporter:
    """Progress bars on a terminal, one per phase."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, TaskID] = {}

    def add(self, phase: str, total: int) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._bars.add_task(phase, total=total)
        else:
            task = self._tasks[phase]
            current = self._bars.tasks[self._tasks[phase]].total or 0
            self._bars.update(task, total=current + total)

    def advance(self, phase: str, amount: int = 1) -> None:
        if phase in self._tasks:
            self._bars.advance(self._tasks[phase], amount)


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
        progress.install(_RichReporter(bars))
        try:
            yield
        finally:
            progress.install(None)


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
    try:
        yield
    except ConfigError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except TransientError as exc:
        _err.print(f"[red]unavailable:[/red] {exc}")
        raise typer.Exit(3) from None
    except NewsflowError as exc:
        _err.print(f"[red]failed:[/red] {exc}")
        raise typer.Exit(1) from None


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
        float, typer.Option("--every", help="Without --once: seconds between cycles.")
    ] = 60.0,
) -> None:
    """Poll the feeds, extract new articles and publish them (the poll_feeds flow)."""
    from flows.poll_feeds import poll_feeds

    with _clear_errors():
        while True:
            started = time.monotonic()
            with _progress():
                summary = poll_feeds(feeds_path=str(feeds), tags=tag, force=force)
            _report("poll_feeds", summary)
            if once:
                return
            time.sleep(max(0.0, every - (time.monotonic() - started)))


@app.command()
def index(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once everything waiting is indexed.")
    ] = False,
) -> None:
    """Consume articles from the buffer and write them into the store."""
    from connectors import open_buffer, open_store
    from newsflow.indexer import Indexer

    settings = Settings()
    with _clear_errors():
        buffer = open_buffer(settings)
        store = open_store(settings)
        try:
            summary = Indexer(buffer, store, settings.kafka, settings.indexer).run(
                until_idle=until_idle
            )
        except KeyboardInterrupt:
            _err.print("interrupted: uncommitted records will be delivered again")
            raise typer.Exit(130) from None
        finally:
            buffer.close()
            store.close()
    _report("index", summary.as_dict())


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    units = {"h": 3600, "d": 86400, "w": 604800}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.fromtimestamp(time.time() - int(value[:-1]) * units[value[-1]], UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a date (2024-05-01) or an age (12h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _snippet(snippet: str) -> Text:
    text = Text("   ")
    for number, part in enumerate(_MATCH.split(snippet)):
        text.append(part, style="bold yellow" if number % 2 else "")
    return text


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words or a phrase in quotes.")],
    source: Annotated[str | None, typer.Option(help="Only this source (site name).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Published since a date (2024-05-01) or age (7d).")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Only this language code.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Hits to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for scripts.")] = False,
) -> None:
    """Search the indexed articles."""
    from connectors import SearchQuery, open_store

    settings = Settings()
    with _clear_errors():
        store = open_store(settings)
        try:
            result = store.search(
                SearchQuery(
                    text=query,
                    source=source,
                    since=_parse_since(since),
                    language=lang,
                    limit=limit,
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
                    },
                    ensure_ascii=False,
                )
            )
        return
    _out.print(f"{result.total} hits for {query!r}")
    for number, hit in enumerate(result.hits, 1):
        date = hit.published_at.date().isoformat() if hit.published_at else "undated"
        _out.print(f"[bold]{number}. {hit.title}[/bold]", highlight=False)
        _out.print(f"   {hit.source or '?'} · {date} · {hit.url}", highlight=False, markup=False)
        _out.print(_snippet(hit.snippet), highlight=False)


kibana_app = typer.Typer(help="Kibana saved objects for analysts.", no_args_is_help=True)
app.add_typer(kibana_app, name="kibana")


@kibana_app.command("import")
def kibana_import(
    url: Annotated[
        str | None, typer.Option(help="Kibana URL (default NEWSFLOW_KIBANA_URL).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Saved objects (default deploy/kibana/newsflow.ndjson).")
    ] = None,
    space: Annotated[str | None, typer.Option(help="Kibana space.")] = None,
) -> None:
    """Load the data views, saved search and dashboard into Kibana."""
    from newsflow.kibana import SAVED_OBJECTS_FILE, import_saved_objects

    settings = Settings().kibana
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
