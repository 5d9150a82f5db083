"""load_settings: invalid settings are one-line ConfigErrors naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsflow.errors import ConfigError
from newsflow.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("NEWSFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env file


def test_valid_settings_load_with_overrides(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    assert isinstance(settings, Settings)
    assert settings.data_dir == tmp_path / "data"


def test_an_invalid_float_names_the_variable_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_FETCH_DEADLINE", "abc")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("NEWSFLOW_FETCH_DEADLINE='abc': input should be a valid number")
    assert "\n" not in message
    assert raised.value.__cause__ is None  # not chained to pydantic's many-line report


def test_a_negative_batch_size_is_out_of_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_INDEXER_BATCH_SIZE", "-5")
    with pytest.raises(ConfigError, match=r"^NEWSFLOW_INDEXER_BATCH_SIZE='-5': input should be"):
        load_settings()


def test_a_bad_root_field_and_an_override_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^NEWSFLOW_DATA_DIR=3: input is not a valid path"):
        load_settings(data_dir=3)
