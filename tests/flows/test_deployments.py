"""prefect.yaml for real: a Prefect server, the set-up of docs/operations.md, a process worker.

The integration test starts a fresh Prefect server (its own SQLite database under a
temporary PREFECT_HOME), creates the work pool and the global concurrency limit and applies
every deployment with the CLI commands the operations guide gives. A process worker then
runs poll-politics and poll-world side by side against the local fixture site (one with
the fetch limit, one naming a limit that does not exist) and index-articles into the real
Elasticsearch node, all with the NEWSFLOW_* settings of ``stack_env``.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, Log
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from prefect.exceptions import ObjectNotFound

from connectors import open_store
from flows.poll_feeds import FETCH_LIMIT
from newsflow.feedlist import load_feeds
from newsflow.identity import canonical_url, doc_id
from newsflow.pipeline import select_feeds
from newsflow.settings import Settings
from tests.support.prefect import PrefectStack
from tests.support.site import FIXTURE_SITE, Site

ROOT = Path(__file__).resolve().parents[2]
PROJECT: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
MANIFEST = tomllib.loads((FIXTURE_SITE / "MANIFEST.toml").read_text(encoding="utf-8"))
# What each feed group of the fixture site ingests.
PAGES = {
    group: [p for p in MANIFEST["pages"] if p["feed"] == f"feeds/{feed}" and not p["skip"]]
    for group, feed in (("politics", "politics.rss"), ("world", "world.atom"))
}


def test_every_poll_deployment_polls_feeds_of_its_group_from_the_example_file() -> None:
    polls = [d for d in PROJECT["deployments"] if d["entrypoint"].endswith(":poll_feeds")]
    assert len(polls) >= 2
    for deployment in polls:
        params = deployment["parameters"]
        feeds = select_feeds(load_feeds(ROOT / params["feeds_path"]), params["tags"])
        assert feeds, f"{deployment['name']} selects no feed"
        assert all(feed.url.startswith("https://") for feed in feeds)
        (schedule,) = deployment["schedules"]
        # A feed due a little before its group's next run is not skipped for a cycle.
        assert all(0 < (feed.poll_interval or 0) < schedule["interval"] for feed in feeds)


# --- a real server and worker ------------------------------------------------------------


@pytest.fixture
def prefect_stack(tmp_path: Path, stack_env: str) -> Iterator[PrefectStack]:
    home = tmp_path / "prefect-home"
    home.mkdir()
    stack = PrefectStack(home)
    try:
        yield stack
    finally:
        leftovers = stack.stop()
    assert not leftovers, f"processes left running after stop: {leftovers}"


def _logs(client: SyncPrefectClient, run_id: UUID) -> list[Log]:
    return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))


def _wait_final(stack: PrefectStack, client: SyncPrefectClient, run_id: UUID) -> FlowRun:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            if not run.state.is_completed():
                lines = "\n".join(f"{log.level} {log.message}" for log in _logs(client, run_id))
                pytest.fail(f"{run.name}: {run.state}\n{lines}\n--- worker\n{stack.log('worker')}")
            return run
        time.sleep(1)
    pytest.fail(f"flow run {run_id} not finished after 240 s:\n{stack.log('worker')}")


def _summary(client: SyncPrefectClient, run: FlowRun, key: str) -> dict[str, str]:
    (artifact,) = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])
        )
    )
    rows = [line.split("|") for line in str(artifact.data).splitlines() if line.count("|") == 3]
    return {cells[1].strip(): cells[2].strip() for cells in rows[2:]}


@pytest.mark.integration
def test_deployments_run_on_a_process_worker_into_the_real_stack(
    prefect_stack: PrefectStack, site: Site, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text(site.read("feeds.toml"), encoding="utf-8")

    # No scheduler: it would start runs of the deployments' own schedules, and those
    # poll the example file's public feeds. The schedules are checked as data instead.
    prefect_stack.start_server("--no-scheduler")
    prefect_stack.cli(
        ["work-pool", "create", "newsflow", "--type", "process"],
        ["gcl", "create", FETCH_LIMIT, "--limit", "2"],
    )
    prefect_stack.start("worker", "worker", "start", "--pool", "newsflow")
    prefect_stack.cli(["deploy", "--all", "--no-prompt"])

    with SyncPrefectClient(prefect_stack.api) as client:
        expected = {
            "poll_feeds/poll-politics": ("politics", 300),
            "poll_feeds/poll-world": ("world", 900),
            "index_articles/index-articles": ("index", 60),
        }
        deployments = {}
        for name, (queue, seconds) in expected.items():
            deployment = deployments[name] = client.read_deployment_by_name(name)
            assert (deployment.work_pool_name, deployment.work_queue_name) == ("newsflow", queue)
            schedules = [s.schedule for s in deployment.schedules if s.active]
            assert len(schedules) == 1 and isinstance(schedules[0], IntervalSchedule), name
            assert schedules[0].interval.total_seconds() == seconds
            limit = deployment.global_concurrency_limit
            assert limit is not None and limit.limit == 1
            assert deployment.concurrency_options is not None
            assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ]
        assert deployments["poll_feeds/poll-politics"].parameters["tags"] == ["politics"]

        # Both groups at once, on their own queues; the world run names a limit that
        # does not exist, so it runs uncapped (and does not create it).
        missing = f"{FETCH_LIMIT}-{prefect_stack.tag}"
        runs = {
            group: client.create_flow_run_from_deployment(
                deployments[f"poll_feeds/poll-{group}"].id, parameters=parameters
            ).id
            for group, parameters in (
                ("politics", {"feeds_path": str(feeds_file)}),
                ("world", {"feeds_path": str(feeds_file), "fetch_limit": missing}),
            )
        }
        for group, run_id in runs.items():
            run = _wait_final(prefect_stack, client, run_id)
            assert run.parameters["tags"] == [group]  # the deployment's, merged in
            policy = run.empirical_policy  # flow retries from the deployment's job variables
            assert (policy.retries, policy.retry_delay) == (1, 30)
            polled = _summary(client, run, "poll-feeds-summary")
            assert polled["feeds_polled"] == "1"  # that group's feed only
            assert polled["published"] == str(len(PAGES[group]))
        with pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name(missing)
        world_logs = [log.message for log in _logs(client, runs["world"])]
        (notice,) = [message for message in world_logs if missing in message]
        assert "not capped" in notice  # one line from the flow, no warning per feed

        index = client.create_flow_run_from_deployment(
            deployments["index_articles/index-articles"].id
        )
        index = _wait_final(prefect_stack, client, index.id)
        indexed = _summary(client, index, "index-articles-summary")["indexed"]
        assert indexed == str(len(PAGES["politics"]) + len(PAGES["world"]))

        # The poll held a slot of the global limit while it fetched the politics pages.
        deadline = time.monotonic() + 30
        while True:
            events = client.read_events(
                EventFilter(
                    occurred=EventOccurredFilter(since=started),
                    event=EventNameFilter(name=["prefect.concurrency-limit.acquired"]),
                ),
                limit=50,  # the client's default (100) is above the server's maximum
            ).events
            names = [event.resource.get("prefect.resource.name") for event in events]
            if FETCH_LIMIT in names or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert FETCH_LIMIT in names
        gcl = client.read_global_concurrency_limit_by_name(FETCH_LIMIT)
        assert gcl.active_slots == 0  # and gave it back

    store = open_store(Settings())
    try:
        store.refresh()
        assert store.count() == len(PAGES["politics"]) + len(PAGES["world"])
        (page,) = [p for p in PAGES["politics"] if p["path"] == "politics/reference-article.html"]
        article = store.get(doc_id(canonical_url(site.url(page["path"]))))
        assert article is not None and article.title == page["title"]
    finally:
        store.close()
