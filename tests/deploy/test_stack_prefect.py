"""The stack's Prefect server records the CLI's runs at about a second of cost each.

`deploy/local/stack up` starts a Prefect server next to Kafka and Elasticsearch and
prints its ``PREFECT_API_URL``. With it set, ``newsflow run`` and ``newsflow index`` are
flow runs on that server (no temporary server per command); without it they run the
pipeline directly and say they were not recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.site import Site

pytestmark = pytest.mark.integration

NEWSFLOW = str(Path(sys.executable).parent / "newsflow")
PREFECT_API = os.environ.get("NEWSFLOW_TEST_PREFECT_API", "http://127.0.0.1:4200/api")


def _post(path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{PREFECT_API}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def prefect_api() -> str:
    try:
        with urllib.request.urlopen(f"{PREFECT_API}/health", timeout=5) as response:
            if response.status == 200:
                return PREFECT_API
    except OSError:
        pass
    pytest.fail(f"no Prefect server at {PREFECT_API}: start it with `deploy/local/stack up`")


def _newsflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [NEWSFLOW, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def _runs(flow: str, marker: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _post(
        "/flow_runs/filter",
        {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_DESC", "limit": 50},
    )
    return [r for r in runs if marker in json.dumps(r.get("parameters", {}))]


def test_cli_runs_are_recorded_on_the_stack_prefect_server(
    prefect_api: str, site: Site, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    feeds = tmp_path / f"feeds-{marker}.toml"
    feeds.write_text(
        f'[[feeds]]\nurl = "{site.url("feeds/politics.rss")}"\nname = "politics"\n',
        encoding="utf-8",
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NEWSFLOW_", "PREFECT_"))
    }
    env.update(
        NEWSFLOW_DATA_DIR=str(tmp_path / "data"),
        NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS="true",
        NEWSFLOW_FETCH_PER_HOST_DELAY="0",
        NEWSFLOW_EXTRACT_WORKERS="1",
        PREFECT_API_URL=prefect_api,
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    polled = _newsflow(env, "run", "--once", "--feeds", str(feeds))
    assert "not recorded in Prefect" not in polled.stderr
    published = dict(line.split("=", 1) for line in polled.stdout.splitlines())["published"]
    assert int(published) > 0

    runs = _runs("poll_feeds", marker)
    assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED", runs

    indexed = _newsflow(env, "index", "--until-idle")
    assert dict(line.split("=", 1) for line in indexed.stdout.splitlines())["indexed"] == published
    drains = _runs("index_articles", str(tmp_path / "data"))
    assert len(drains) == 1 and drains[0]["state_type"] == "COMPLETED", drains

    without = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    direct = _newsflow(without, "run", "--once", "--force", "--feeds", str(feeds))
    assert "not recorded in Prefect" in direct.stderr
    assert len(_runs("poll_feeds", marker)) == 1, "a direct run must not reach Prefect"
