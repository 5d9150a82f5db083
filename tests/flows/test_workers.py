"""Issue 12, fault 4: two Prefect process workers on the ``newsflow`` pool.

A Prefect server of the test's own (its SQLite database under the test's PREFECT_HOME:
the shared server on :4200 is untouched, and the test may shorten the server's and the
runs' timings without disturbing anyone) gets what docs/operations.md sets up: the
``newsflow`` process pool, the global ``newsflow-fetch`` limit (2 slots here), the
automation of ``deploy/prefect/crash-unresponsive-runs.yaml`` (45 s instead of 5 min,
heartbeats every 30 s instead of 180) and two poll deployments built like those of
prefect.yaml (one run at a time, ``CANCEL_NEW``, a flow retry), each polling three feeds
of a slow loopback site every 20 s. Two ``prefect worker start --limit 1`` processes
serve the pool; ``newsflow index`` runs beside them into the shared Elasticsearch node
(``stack_env``: unique topic and indices).

1. The first scheduled run of each deployment: both complete, on different workers.
2. New pages appear; while the next runs fetch them, the worker of one run and that
   run's process are killed with SIGKILL (while the run holds a fetch slot).
3. The automation marks the killed run Crashed; the server revokes the fetch slot it
   held once its lease ran out (``FETCH_LEASE``); runs of its deployment that came due
   meanwhile were cancelled (the run still held the deployment's only slot).
4. The next scheduled run of that deployment, on the surviving worker, fetches what the
   killed run did not: every article of the site in Elasticsearch, 0 lost, 0 duplicate.

Throughout, the site counts the feeds whose article pages are being fetched at the same
moment, and a sampler reads the limit's active slots from the API: neither may exceed 2,
and both must reach it (two runs, on two workers, each holding a slot at once).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    GlobalConcurrencyLimitCreate,
    WorkPoolCreate,
)
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
)
from prefect.client.schemas.objects import ConcurrencyOptions, FlowRun, StateType, WorkerStatus
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from prefect.events.schemas.automations import AutomationCore
from prefect.workers.process import ProcessWorker

from flows.poll_feeds import FETCH_LEASE, FETCH_LIMIT
from newsflow.identity import canonical_url, doc_id
from newsflow.settings import Settings
from tests.faults.support import FaultSite, Page, es_ids, measure, site_ids
from tests.support.prefect import TAG, PrefectStack

pytestmark = [pytest.mark.integration, pytest.mark.workers]

ROOT = Path(__file__).resolve().parents[2]
PROJECT: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
AUTOMATION = ROOT / "deploy" / "prefect" / "crash-unresponsive-runs.yaml"
NEWSFLOW = ROOT / ".venv" / "bin" / "newsflow"

LIMIT = 2
"""Slots of the test's ``newsflow-fetch`` limit."""
GROUPS = {"wa": 0, "wb": 3}
"""Feed groups (tags, one deployment each) and the index of their first of three hosts."""
HOSTS = 6
FIRST, SECOND = 6, 10
"""Article pages per feed in the first round and new in the second; at 2 requests at a
time and 1 s a page, a feed holds its slot for ~3 s, then ~5 s: long enough for the runs
on the two workers, which start a few seconds apart, to fetch at the same time."""
DELAY = 1.0
INTERVAL = 20
"""Seconds between two scheduled runs of a deployment."""
HEARTBEAT = 30
"""PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the runs: Prefect's shortest."""
UNRESPONSIVE = 45
"""The automation's window: a run without a heartbeat for this long is Crashed."""
WORKERS = ("newsflow-w1", "newsflow-w2")
PORT = os.environ.get("NEWSFLOW_TEST_PREFECT_PORT")
"""The test server's port (default: any free one)."""

T = TypeVar("T")


# --- the site ----------------------------------------------------------------------------

_WORDS = (
    "harbour council transit budget drought election orbit tariff festival reactor court "
    "stadium glacier housing river bridge minister farmers schools museum airport railway "
    "weighs rejects backs delays unveils expands cuts probes approves revives plan deal"
).split()


class SlowSite(FaultSite):
    """One Atom feed per host, article pages that take ``delay`` seconds each, and a
    count of the hosts (feeds) with a page request in flight.

    A page request is in flight only while its feed holds a fetch slot, so the largest
    number of hosts in flight at once is a lower bound of the concurrent slot holders:
    above the limit means the limit did not hold.
    """

    def __init__(self, hosts: int, delay: float) -> None:
        super().__init__(articles=0, hosts=hosts)
        self.delay = delay
        self.hidden: dict[str, Page] = {}
        self._rng = random.Random(12)
        self._flight: Counter[str] = Counter()
        self._flight_lock = threading.Lock()
        self.peak = 0
        self.shapes: set[frozenset[str]] = set()
        """Every set of hosts that was in flight at one moment."""

    def add(self, per_host: int, *, visible: bool) -> list[str]:
        """``per_host`` new articles on every host (listed in its feed when ``visible``,
        else from :meth:`reveal` on); their URLs."""
        urls = []
        epoch = datetime(2025, 3, 1, tzinfo=UTC)
        for host in self.hosts:
            for _ in range(per_host):
                number = len(self.pages) + len(self.hidden)
                when = epoch + timedelta(minutes=number)
                words = self._rng.sample(_WORDS, 4)
                page = Page(
                    number=number,
                    host=host,
                    path=f"/news/story-{number:05d}.html",
                    title=f"{' '.join(w.title() for w in words)} (story {number})",
                    paragraphs=[
                        " ".join(self._rng.choice(_WORDS) for _ in range(50)).capitalize()
                        + f". Story {number} paragraph {p}."
                        for p in range(4)
                    ],
                    published=when,
                    updated=when,
                )
                url = self.url(page)
                with self._lock:
                    (self.pages if visible else self.hidden)[url] = page
                urls.append(url)
        return urls

    def reveal(self) -> None:
        """List the hidden articles in their feeds."""
        with self._lock:
            self.pages.update(self.hidden)
            self.hidden.clear()

    def in_flight(self) -> frozenset[str]:
        with self._flight_lock:
            return frozenset(h for h, n in self._flight.items() if n)

    def answer(self, host: str, path: str) -> tuple[int, bytes, str] | str:
        if not path.endswith(".html"):
            return super().answer(host, path)
        with self._flight_lock:
            self._flight[host] += 1
            hosts = frozenset(h for h, n in self._flight.items() if n)
            self.peak = max(self.peak, len(hosts))
            self.shapes.add(hosts)
        try:
            time.sleep(self.delay)
            return super().answer(host, path)
        finally:
            with self._flight_lock:
                self._flight[host] -= 1


def _group_of(site: SlowSite, host: str) -> str:
    index = site.hosts.index(host)
    return next(g for g, first in GROUPS.items() if first <= index < first + 3)


def _both_groups(site: SlowSite) -> bool:
    """Whether both groups' feeds (runs on two workers) were fetched at one moment."""
    return any(len({_group_of(site, h) for h in hosts}) == len(GROUPS) for hosts in site.shapes)


# --- the limit's slots, as the API reports them ------------------------------------------


class SlotSampler:
    """Reads the limit's active slots from the API every 0.2 s, in a thread."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.samples: list[tuple[float, int]] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with SyncPrefectClient(self.api) as client:
            while not self._stop.is_set():
                try:
                    limit = client.read_global_concurrency_limit_by_name(FETCH_LIMIT)
                except Exception:  # noqa: BLE001 - a missed sample, not a failure
                    self.missed += 1
                else:
                    self.samples.append((time.monotonic(), limit.active_slots))
                self._stop.wait(0.2)

    def __enter__(self) -> SlotSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, since: float = 0.0) -> int:
        return max((n for t, n in self.samples if t >= since), default=0)

    def last(self) -> int:
        return self.samples[-1][1] if self.samples else -1


# --- helpers -----------------------------------------------------------------------------


@dataclass
class Figures:
    """What the test measured; printed as one ``WORKERS {json}`` line."""

    values: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        return "WORKERS " + json.dumps(self.values, default=str)


def _wait(what: str, timeout: float, probe: Callable[[], T | None], stack: PrefectStack) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {name}\n{stack.log(name, 3000)}" for name in ("server", *WORKERS)
            )
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.2)


def _first(
    stack: PrefectStack, timeout: float, **probes: Callable[[], object | None]
) -> dict[str, tuple[float, object]]:
    """Poll every probe until each has answered (not None): when each first did, and what."""
    seen: dict[str, tuple[float, object]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(probes):
        for name, probe in probes.items():
            if name not in seen and (answer := probe()) is not None:
                seen[name] = (time.monotonic(), answer)
        if time.monotonic() > deadline:
            waiting = sorted(set(probes) - set(seen))
            logs = "\n".join(
                f"--- {name}\n{stack.log(name, 3000)}" for name in ("server", *WORKERS)
            )
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {waiting}\n{logs}")
        time.sleep(0.3)
    return seen


def _runs(client: SyncPrefectClient, deployment: UUID) -> list[FlowRun]:
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment]))
    )


def _state(run: FlowRun) -> StateType | None:
    return run.state.type if run.state is not None else None


def _submitted_by(client: SyncPrefectClient, since: datetime) -> dict[UUID, str]:
    """Flow run id -> name of the worker that submitted it (its events)."""
    page = client.read_events(
        EventFilter(
            occurred=EventOccurredFilter(since=since),
            event=EventNameFilter(name=["prefect.worker.submitted-flow-run"]),
        ),
        limit=50,
    )
    found: dict[UUID, str] = {}
    while True:
        for event in page.events:
            worker = event.resource.id.rsplit(".", 1)[-1]
            for related in event.related:
                if related.role == "flow-run":
                    found[UUID(related.id.removeprefix("prefect.flow-run."))] = worker
        if page.next_page is None:
            return found
        page = client.read_events_page(str(page.next_page))


def _id(url: str) -> str:
    return doc_id(canonical_url(url, url))


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _tagged(pid: int, tag: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{TAG}={tag}".encode() in environ


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _feeds_file(site: SlowSite, path: Path) -> Path:
    rows = []
    for group, first in GROUPS.items():
        for host in site.hosts[first : first + 3]:
            rows.append(
                f'[[feeds]]\nurl = "{site.feed_url(host)}"\nname = "Site {host}"\n'
                # A little below the groups' schedule (docs/operations.md, "Intervals").
                f'tags = ["{group}"]\npoll_interval = {INTERVAL - 10}\n'
            )
    path.write_text("\n".join(rows), encoding="utf-8")
    return path


@pytest.fixture
def slow_site() -> Iterator[SlowSite]:
    site = SlowSite(HOSTS, DELAY)
    with site.serving():
        yield site


@pytest.fixture
def workers_stack(tmp_path: Path, stack_env: str) -> Iterator[PrefectStack]:
    home = tmp_path / "prefect-home"
    home.mkdir()
    stack = PrefectStack(
        home,
        port=int(PORT) if PORT else None,
        env={
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT),
            # The repossessor says at INFO when it revokes an expired lease.
            "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
            # ... and looks for them every 15 s by default.
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "5",
            # Two requests at a time per site, so that a feed holds its slot a while.
            "NEWSFLOW_FETCH_PER_HOST_CONCURRENCY": "2",
            "NEWSFLOW_INDEXER_BATCH_SIZE": "50",
        },
    )
    try:
        yield stack
    finally:
        leftovers = stack.stop()
    assert not leftovers, f"processes left running after stop: {leftovers}"


def _deployments(client: SyncPrefectClient, feeds: Path, first_run: datetime) -> dict[str, UUID]:
    """One deployment per group, as prefect.yaml's poll deployments are built."""
    (template,) = [d for d in PROJECT["deployments"] if d["name"] == "poll-politics"]
    limit = template["concurrency_limit"]
    flow_id = client.create_flow_from_name("poll_feeds")
    ids = {}
    for group in GROUPS:
        ids[group] = client.create_deployment(
            flow_id=flow_id,
            name=f"poll-{group}",
            entrypoint=template["entrypoint"],
            tags=["newsflow", "poll", group],
            parameters={"feeds_path": str(feeds), "tags": [group], "fetch_limit": FETCH_LIMIT},
            schedules=[
                DeploymentScheduleCreate(
                    schedule=IntervalSchedule(
                        interval=timedelta(seconds=INTERVAL), anchor_date=first_run
                    ),
                    active=True,
                )
            ],
            concurrency_limit=limit["limit"],
            concurrency_options=ConcurrencyOptions(collision_strategy=limit["collision_strategy"]),
            work_pool_name=template["work_pool"]["name"],
            work_queue_name=group,
            job_variables=template["work_pool"]["job_variables"],
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
        )
    return ids


# --- the test ----------------------------------------------------------------------------


def test_two_workers_share_the_runs_and_the_fetch_limit_and_a_killed_run_is_recovered(
    workers_stack: PrefectStack, slow_site: SlowSite, tmp_path: Path
) -> None:
    stack, site = workers_stack, slow_site
    figures = Figures()
    began = time.monotonic()
    started_at = datetime.now(UTC)
    first_urls = site.add(FIRST, visible=True)
    second_urls = site.add(SECOND, visible=False)
    feeds = _feeds_file(site, tmp_path / "feeds.toml")
    automation = yaml.safe_load(AUTOMATION.read_text(encoding="utf-8"))
    automation["trigger"]["within"] = UNRESPONSIVE

    figures.values["server_start_s"] = round(stack.start_server(), 1)
    with SyncPrefectClient(stack.api) as client:
        # What `prefect work-pool create newsflow --type process`, `prefect gcl create`
        # and `prefect automation create --from-file` create (tests/flows/
        # test_deployments.py runs those commands), without three CLI start-ups.
        client.create_work_pool(
            WorkPoolCreate(
                name="newsflow",
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=FETCH_LIMIT, limit=LIMIT)
        )
        client.create_automation(AutomationCore.model_validate(automation))
    # One poll run per worker at a time (docs/operations.md, "Workers and crashed runs").
    command = ["worker", "start", "--pool", "newsflow", "--type", "process", "--limit", "1"]
    workers = {name: stack.start(name, *command, "--name", name) for name in WORKERS}
    indexer_env = {k: v for k, v in stack.env.items() if k != "PREFECT_API_URL"}
    with (tmp_path / "indexer.log").open("wb") as log:
        indexer = subprocess.Popen(
            [str(NEWSFLOW), "index"], env=indexer_env, cwd=tmp_path, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    stack.processes["indexer"] = indexer
    settings = Settings()
    es, index = str(settings.elasticsearch.url), settings.elasticsearch.index

    with SyncPrefectClient(stack.api) as client, SlotSampler(stack.api) as sampler:
        # Both workers polling before the first run is due: else the first one up could
        # take both first runs, one after the other.
        _wait(
            "both workers online",
            120,
            lambda: (
                {
                    w.name
                    for w in client.read_workers_for_work_pool("newsflow")
                    if w.status == WorkerStatus.ONLINE
                }
                == set(WORKERS)
                or None
            ),
            stack,
        )
        first_run = datetime.now(UTC) + timedelta(seconds=8)
        deployments = _deployments(client, feeds, first_run)

        # 1. The first scheduled run of each group completes, each on its own worker.
        def first_round() -> list[FlowRun] | None:
            done = []
            for deployment in deployments.values():
                runs = [r for r in _runs(client, deployment) if _state(r) == StateType.COMPLETED]
                if not runs:
                    return None
                done.append(runs[0])
            return done

        round1 = _wait("the first run of each group", 120, first_round, stack)
        figures.values["round1_done_s"] = round(time.monotonic() - began, 1)
        by_worker = _wait(
            "the workers' submitted-flow-run events",
            30,
            lambda: (
                found
                if all(r.id in (found := _submitted_by(client, started_at)) for r in round1)
                else None
            ),
            stack,
        )
        assert {by_worker[r.id] for r in round1} == set(WORKERS), (
            f"the first two runs were not spread over both workers: {by_worker}"
        )
        round1_peak_site, round1_peak_api = site.peak, sampler.peak()
        round1_both = _both_groups(site)

        # 2. New pages; kill a run's worker and the run while it holds a slot, when the
        # other group fetches too (else after 12 s of the round's fetching).
        site.reveal()
        revealed = time.monotonic()
        fetching_since: list[float] = []

        def kill_moment() -> tuple[str, frozenset[str]] | None:
            hosts = site.in_flight()
            groups = {_group_of(site, h) for h in hosts}
            if hosts and not fetching_since:
                fetching_since.append(time.monotonic())
            if len(groups) == len(GROUPS):
                return "wa", hosts
            if groups and time.monotonic() - fetching_since[0] > 12:
                return next(iter(groups)), hosts
            return None

        victim_group, hosts_at_kill = _wait(
            "round 2 fetching in both groups", 90, kill_moment, stack
        )
        (victim_run,) = [
            r for r in _runs(client, deployments[victim_group]) if _state(r) == StateType.RUNNING
        ]
        assert victim_run.infrastructure_pid, "the worker did not record the run's pid"
        run_pid = int(victim_run.infrastructure_pid)
        (victim,) = [n for n, w in workers.items() if w.pid == _parent(run_pid)]
        survivor = next(n for n in WORKERS if n != victim)
        assert _tagged(run_pid, stack.tag), "the run's process is not one of this test's"
        os.killpg(workers[victim].pid, signal.SIGKILL)
        os.killpg(run_pid, signal.SIGKILL)
        killed = time.monotonic()
        workers[victim].wait(timeout=30)
        _wait("the killed run's process to go", 30, lambda: _gone(run_pid), stack)
        held = {h for h in hosts_at_kill if _group_of(site, h) == victim_group}
        assert site.peak <= LIMIT, f"{site.peak} feeds fetched at once, limit {LIMIT}"
        figures.values.update(
            kill_after_reveal_s=round(killed - revealed, 1),
            killed_worker=victim,
            killed_run_fetching_feeds=len(held),
            feeds_in_flight_at_kill=len(hosts_at_kill),
        )

        # 3. The automation marks the run Crashed; its fetch slot comes back.
        crashed = _wait(
            "the killed run to be marked Crashed",
            UNRESPONSIVE + HEARTBEAT + 60,
            lambda: (
                run
                if _state(run := client.read_flow_run(victim_run.id)) == StateType.CRASHED
                else None
            ),
            stack,
        )
        crashed_at = time.monotonic()
        assert crashed.state is not None and "heartbeat" in (crashed.state.message or "")
        victim_ids = {_id(u) for u in second_urls if _group_of(site, _host(u)) == victim_group}
        missing_at_crash = victim_ids - es_ids(es, index)
        assert missing_at_crash, "the killed run lost nothing: it was not killed mid-fetch"

        # 4. The next scheduled run of the victim's group recovers its feeds. Watched
        # together with the slot's revocation, each with the moment it was first seen.
        def revoked() -> int | None:
            return len(re.findall(r"Revoking lease", stack.log("server", 10**7))) or None

        def recovered() -> FlowRun | None:
            for run in _runs(client, deployments[victim_group]):
                started = run.start_time
                if (
                    _state(run) == StateType.COMPLETED
                    and started is not None
                    and started > crashed.state.timestamp  # type: ignore[union-attr]
                ):
                    return run
            return None

        everything = set(site_ids(site))
        seen = _first(
            stack,
            max(FETCH_LEASE, 3 * INTERVAL) + 90,
            revoked=revoked,
            recovery=recovered,
            indexed=lambda: everything <= es_ids(es, index) or None,
        )
        (revoked_at, leases), (_, recovery), (recovered_at, _) = (
            seen["revoked"], seen["recovery"], seen["indexed"]
        )  # fmt: skip
        assert isinstance(recovery, FlowRun) and isinstance(leases, int)
        cancelled = [
            r for r in _runs(client, deployments[victim_group]) if _state(r) == StateType.CANCELLED
        ]
        by_worker = _submitted_by(client, started_at)
        _wait(
            "every fetch slot back",
            FETCH_LEASE + 30,
            lambda: sampler.last() == 0 or None,
            stack,
        )
        completed_per_worker = Counter(
            by_worker.get(r.id, "?")
            for d in deployments.values()
            for r in _runs(client, d)
            if _state(r) == StateType.COMPLETED
        )

    indexer.send_signal(signal.SIGINT)
    try:
        indexer.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(indexer.pid, signal.SIGKILL)
    measures = measure(dict(os.environ))
    figures.values.update(
        limit=LIMIT,
        peak_feeds_fetching_site=site.peak,
        peak_active_slots_api=sampler.peak(),
        round1_peak_site=round1_peak_site,
        round1_peak_api=round1_peak_api,
        round1_both_workers_fetching=round1_both,
        slot_samples=len(sampler.samples),
        slot_samples_missed=sampler.missed,
        completed_runs_per_worker=dict(completed_per_worker),
        recovery_worker=by_worker.get(recovery.id),
        crashed_after_kill_s=round(crashed_at - killed, 1),
        slot_revoked_after_kill_s=round(revoked_at - killed, 1),
        leases_revoked=leases,
        cancelled_runs_of_killed_group=len(cancelled),
        recovered_after_kill_s=round(recovered_at - killed, 1),
        missing_at_crash=len(missing_at_crash),
        articles=len(first_urls) + len(second_urls),
        measures=measures.line(),
        total_s=round(time.monotonic() - began, 1),
    )
    print(figures.line())

    # The limit held across both workers, and was reached.
    assert site.peak <= LIMIT and sampler.peak() <= LIMIT, figures.line()
    assert site.peak == LIMIT and sampler.peak() == LIMIT, figures.line()
    # ... with runs on the two workers fetching at once, one slot each.
    assert _both_groups(site), figures.line()
    # Both workers ran runs to completion; the survivor ran the recovery.
    assert set(completed_per_worker) == set(WORKERS), figures.line()
    assert by_worker.get(recovery.id) == survivor, figures.line()
    # The killed run's slot came back by its lease, and nothing holds one now.
    assert leases >= 1 and sampler.last() == 0, figures.line()
    # Every article once.
    assert not measures.lost and measures.dup == 0 and measures.history_dup == 0, figures.line()
    assert not measures.ahead, figures.line()
    assert measures.documents == len(everything), figures.line()
