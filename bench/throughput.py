"""Throughput benchmark: newsflow's pipeline against plain trafilatura on the same pages.

    .venv/bin/python bench/throughput.py [--pages 300] [--backend stack|embedded|both]

It generates a local news site of N article pages (variants of the fixture pages: same
markup, shuffled and renumbered paragraphs, unique titles) in three feeds, serves it on
127.0.0.1, and in one run measures:

1. ``trafilatura.extract`` over every page in one process (the baseline);
2. ``newsflow run --once`` over the feeds (poll, fetch, extract, publish), as a user
   runs it: a fresh process, Prefect start-up included;
3. ``newsflow index --until-idle`` (buffer -> store), also a fresh process.

Figures are printed as articles/s and as ratios to the baseline. With ``--backend stack``
the stack must be up (``deploy/local/stack up``); ``embedded`` uses SQLite in a temp dir.
This is a benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trafilatura

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "tests" / "fixtures" / "site"
NEWSFLOW = [sys.executable, "-m", "newsflow.cli"]
_PARAGRAPH = re.compile(r"<p>(?:(?!</p>).){120,}</p>", re.DOTALL)
_H1 = re.compile(r"(<h1[^>]*>)(.*?)(</h1>)", re.DOTALL)


def _templates() -> list[str]:
    pages = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        if "private" in path.parts or "video" in path.name or path.name == "index.html":
            continue
        pages.append(path.read_text(encoding="utf-8"))
    return pages


def _shuffle_paragraphs(html: str, paragraphs: list[str], rng: random.Random) -> str:
    shuffled = paragraphs[:]
    rng.shuffle(shuffled)
    replacements = iter(shuffled)
    return _PARAGRAPH.sub(lambda _m: next(replacements), html)


def generate_site(root: Path, pages: int, seed: int = 7) -> list[str]:
    """Write ``pages`` article pages and 3 RSS feeds under ``root``; return page paths."""
    rng = random.Random(seed)
    templates = _templates()
    paths: list[str] = []
    for number in range(pages):
        html = templates[number % len(templates)]
        paragraphs = _PARAGRAPH.findall(html)
        html = _shuffle_paragraphs(html, paragraphs, rng)
        title = f"Story {number}: " + rng.choice(["Council", "Markets", "Harbour", "Senate"])

        def heading(m: re.Match[str], title: str = title) -> str:
            return f"{m.group(1)}{title}{m.group(3)}"

        html = _H1.sub(heading, html, count=1)
        html = html.replace("<title>", f"<title>{title} | ", 1)
        unique = f"<p>Reference code {uuid.UUID(int=rng.getrandbits(128))} for story {number}.</p>"
        html = html.replace(paragraphs[0], paragraphs[0] + unique, 1) if paragraphs else html
        # The page's own canonical URL must be its generated URL, not the template's.
        path = f"a/{number:04d}.html"
        html = re.sub(
            r'(<link rel="canonical" href=")[^"]+(")', rf"\g<1>{{{{BASE}}}}/{path}\2", html
        )
        html = re.sub(
            r'(<meta property="og:url" content=")[^"]+(")', rf"\g<1>{{{{BASE}}}}/{path}\2", html
        )
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(html, encoding="utf-8")
        paths.append(path)
    for feed in range(3):
        items = "".join(
            f"<item><title>Story {n}</title><link>{{{{BASE}}}}/{p}</link>"
            f"<guid>{{{{BASE}}}}/{p}</guid><pubDate>Mon, 0{1 + n % 9} Jan 2024 10:00:00 GMT"
            "</pubDate></item>"
            for n, p in enumerate(paths)
            if n % 3 == feed
        )
        rss = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Bench feed {feed}</title><link>{{{{BASE}}}}/</link>"
            f"<description>bench</description>{items}</channel></rss>"
        )
        (root / "feeds").mkdir(exist_ok=True)
        (root / "feeds" / f"bench-{feed}.rss").write_text(rss, encoding="utf-8")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
    return paths


def _substitute(root: Path, base: str) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".rss"):
            path.write_text(path.read_text(encoding="utf-8").replace("{{BASE}}", base), "utf-8")


def serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def baseline(root: Path, paths: list[str]) -> tuple[float, int]:
    """Seconds for plain trafilatura.extract over every page, and pages with text."""
    pages = [(root / p).read_text(encoding="utf-8") for p in paths]
    trafilatura.extract(pages[0], include_comments=False, include_tables=True)  # warm-up
    started = time.perf_counter()
    extracted = sum(
        1
        for html in pages
        if trafilatura.extract(html, include_comments=False, include_tables=True)
    )
    return time.perf_counter() - started, extracted


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def _count(output: str, key: str) -> int:
    match = re.search(rf"^{re.escape(key)}=(\d+)$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _environment(backend: str, work: Path) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    (ROOT / "bench" / "out" / "prefect-home").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSFLOW_FETCH_PER_HOST_DELAY": "0",
        "NEWSFLOW_FETCH_PER_HOST_CONCURRENCY": "16",
        "NEWSFLOW_FEED_MAX_ENTRIES": "1000",
        "NEWSFLOW_INDEXER_IDLE_TIMEOUT": "10",
        "NEWSFLOW_DATA_DIR": str(work / f"data-{backend}-{run}"),
        "PREFECT_HOME": str(ROOT / "bench" / "out" / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if backend == "stack":
        env |= {
            "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": os.environ.get("BENCH_KAFKA", "127.0.0.1:9092"),
            "NEWSFLOW_KAFKA_TOPIC": f"bench{run}.articles",
            "NEWSFLOW_KAFKA_DLQ_TOPIC": f"bench{run}.articles.dlq",
            "NEWSFLOW_ELASTICSEARCH_URL": os.environ.get("BENCH_ES", "http://127.0.0.1:9200"),
            "NEWSFLOW_ELASTICSEARCH_INDEX": f"bench{run}-articles",
            "NEWSFLOW_ELASTICSEARCH_HISTORY_INDEX": f"bench{run}-history",
            "NEWSFLOW_ELASTICSEARCH_FEEDS_INDEX": f"bench{run}-feeds",
            "NEWSFLOW_ELASTICSEARCH_REVISITS_INDEX": f"bench{run}-revisits",
        }
    else:
        for name in ("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS", "NEWSFLOW_ELASTICSEARCH_URL"):
            env.pop(name, None)
    return env


def pipeline(feeds_file: Path, env: dict[str, str]) -> dict[str, float]:
    """``newsflow run --once`` and ``newsflow index --until-idle`` as fresh processes."""
    run_seconds, run_out = _timed([*NEWSFLOW, "run", "--once", "--feeds", str(feeds_file)], env)
    index_seconds, index_out = _timed([*NEWSFLOW, "index", "--until-idle"], env)
    return {
        "run_seconds": run_seconds,
        "published": _count(run_out, "published"),
        "index_seconds": index_seconds,
        "indexed": _count(index_out, "indexed"),
    }


def warm_pipeline(feeds_file: Path, empty_feeds: Path) -> tuple[float, int, float, int]:
    """The same stages in this process with Prefect already started: the steady state."""
    from connectors import open_buffer, open_store
    from flows.poll_feeds import poll_feeds
    from newsflow.indexer import Indexer
    from newsflow.settings import Settings

    poll_feeds(feeds_path=str(empty_feeds))  # starts Prefect's API server once
    started = time.perf_counter()
    summary = poll_feeds(feeds_path=str(feeds_file), force=True)
    run_seconds = time.perf_counter() - started
    settings = Settings()
    buffer, store = open_buffer(settings), open_store(settings)
    started = time.perf_counter()
    indexed = Indexer(buffer, store, settings.kafka, settings.indexer).run(until_idle=True)
    index_seconds = time.perf_counter() - started
    buffer.close()
    store.close()
    return run_seconds, int(str(summary["published"])), index_seconds, indexed.indexed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--backend", choices=["stack", "embedded", "both"], default="stack")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        work = Path(tmp)
        site = work / "site"
        paths = generate_site(site, args.pages)
        server, base = serve(site)
        _substitute(site, base)
        feeds_file = work / "feeds.toml"
        feeds_file.write_text(
            "".join(f'[[feeds]]\nurl = "{base}/feeds/bench-{n}.rss"\n\n' for n in range(3)),
            encoding="utf-8",
        )
        seconds, extracted = baseline(site, paths)
        print(f"pages={len(paths)} cores={os.cpu_count()}")
        print(
            f"baseline trafilatura.extract, 1 process: {seconds:.2f} s "
            f"{len(paths) / seconds:.1f} pages/s ({extracted} with text)"
        )
        backends = ["stack", "embedded"] if args.backend == "both" else [args.backend]
        empty_feeds = work / "empty.toml"
        empty_feeds.write_text("feeds = []\n", encoding="utf-8")
        for backend in backends:
            env = _environment(backend, work)
            figures = pipeline(feeds_file, env)
            run_rate = figures["published"] / figures["run_seconds"]
            index_rate = figures["indexed"] / figures["index_seconds"]
            base_rate = len(paths) / seconds
            print(
                f"[{backend}] newsflow run --once: {figures['run_seconds']:.2f} s, "
                f"{figures['published']:.0f} published, {run_rate:.1f} articles/s "
                f"= {run_rate / base_rate:.2f}x baseline"
            )
            print(
                f"[{backend}] newsflow index --until-idle: {figures['index_seconds']:.2f} s, "
                f"{figures['indexed']:.0f} indexed, {index_rate:.1f} articles/s "
                f"= {index_rate / base_rate:.2f}x baseline"
            )
            # A second run under new topic/index names, in this process, Prefect warm.
            fresh = _environment(backend, work)
            os.environ.update(fresh)
            for name in ("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS", "NEWSFLOW_ELASTICSEARCH_URL"):
                if name not in fresh:
                    os.environ.pop(name, None)
            run_s, published, index_s, indexed = warm_pipeline(feeds_file, empty_feeds)
            print(
                f"[{backend}] in-process, Prefect warm: poll_feeds {published / run_s:.1f} "
                f"articles/s = {published / run_s / base_rate:.2f}x baseline; indexer "
                f"{indexed / index_s:.1f} articles/s = {indexed / index_s / base_rate:.2f}x"
            )
        server.shutdown()


if __name__ == "__main__":
    main()
