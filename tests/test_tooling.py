"""The developer tooling agrees with itself: the git hooks run the locked ruff."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_pre_commit_runs_the_ruff_version_in_uv_lock() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "ruff"]
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (ruff,) = [r for r in config["repos"] if r["repo"].endswith("/astral-sh/ruff-pre-commit")]
    assert ruff["rev"] == f"v{locked}", "update rev in .pre-commit-config.yaml to match uv.lock"
    assert {hook["id"] for hook in ruff["hooks"]} == {"ruff-check", "ruff-format"}


def test_ruff_lints_the_local_stack_helpers() -> None:
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    excluded = [*ruff.get("exclude", []), *ruff.get("extend-exclude", [])]
    assert not [pattern for pattern in excluded if pattern.startswith("deploy")]
