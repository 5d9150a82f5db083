"""deploy/docker-compose.yml cannot run here (no Docker engine): check it structurally."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from newsflow.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def _env_names(model: type[BaseSettings]) -> set[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= _env_names(annotation)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _image_version(service: str) -> tuple[int, ...]:
    tag = SERVICES[service]["image"].rsplit(":", 1)[1]
    return tuple(int(part) for part in tag.split("."))


def test_elasticsearch_and_kibana_match_the_client_major_version() -> None:
    client_major = importlib.metadata.version("elasticsearch").split(".")[0]
    assert str(_image_version("elasticsearch")[0]) == client_major
    assert _image_version("kibana") == _image_version("elasticsearch")


def test_the_local_stack_runs_the_same_elasticsearch_version() -> None:
    pom = (DEPLOY / "local" / "pom.xml").read_text()
    version = ".".join(map(str, _image_version("elasticsearch")))
    assert f"<elasticsearch.version>{version}</elasticsearch.version>" in pom


@pytest.mark.parametrize("service", ["indexer", "worker"])
def test_newsflow_services_only_use_settings_the_code_reads(service: str) -> None:
    known = _env_names(Settings)
    environment = SERVICES[service]["environment"]
    newsflow_vars = {name for name in environment if name.startswith("NEWSFLOW_")}
    assert newsflow_vars, "the service must be configured"
    assert newsflow_vars <= known, f"unknown settings: {sorted(newsflow_vars - known)}"
    assert "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS" in newsflow_vars
    assert "NEWSFLOW_ELASTICSEARCH_URL" in newsflow_vars


def test_addresses_point_at_the_services_and_their_ports() -> None:
    env = SERVICES["indexer"]["environment"]
    host, port = env["NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert host in SERVICES
    assert (
        f"INTERNAL://{host}:{port}"
        in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    url = env["NEWSFLOW_ELASTICSEARCH_URL"]
    assert url == "http://elasticsearch:9200"
    assert "9200:9200" in SERVICES["elasticsearch"]["ports"]
    assert SERVICES["kibana"]["environment"]["ELASTICSEARCH_HOSTS"] == url
    prefect = env["PREFECT_API_URL"]
    assert prefect.startswith("http://prefect-server:4200/")


def test_images_built_from_the_project_dockerfile() -> None:
    for service in ("indexer", "worker"):
        build = SERVICES[service]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile


def test_prometheus_scrapes_the_indexer_and_the_pushgateway_the_compose_file_runs() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert "indexer:9108" in targets and "--metrics-port 9108" in SERVICES["indexer"]["command"]
    assert "pushgateway:9091" in targets and "9091:9091" in SERVICES["pushgateway"]["ports"]
    env = COMPOSE["x-newsflow-env"]
    assert env["NEWSFLOW_METRICS_PUSHGATEWAY"] == "http://pushgateway:9091"
    mounted = SERVICES["prometheus"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted.removeprefix("./") / "alerts.yml").is_file()
