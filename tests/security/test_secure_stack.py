"""newsflow against `deploy/local/stack up --secure`: Kafka SASL_SSL and mutual TLS,
Elasticsearch over https with a user or an API key (CA file or pinned certificate).

One secured stack instance of its own (its own home and ports) for the whole module,
started once and purged at the end. Every run goes through the CLI in a subprocess with
``--verbose --log-format json``, and every byte it writes is searched for the secrets.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.site import Site

pytestmark = [pytest.mark.integration, pytest.mark.stack, pytest.mark.secure]

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack"
# NEWSFLOW_TEST_SECURE_*_PORT move the instance (e.g. away from another one's ports)
KAFKA_PORT = int(os.environ.get("NEWSFLOW_TEST_SECURE_KAFKA_PORT", "23592"))  # controller: +1
KAFKA_SSL_PORT = int(os.environ.get("NEWSFLOW_TEST_SECURE_KAFKA_SSL_PORT", "23612"))  # mTLS
ES_PORT = int(os.environ.get("NEWSFLOW_TEST_SECURE_ES_PORT", "23600"))  # transport on +100


def _default_cache() -> str:
    if os.environ.get("NEWSFLOW_STACK_CACHE"):
        return os.environ["NEWSFLOW_STACK_CACHE"]
    home = os.environ.get("NEWSFLOW_STACK_HOME") or os.path.expanduser("~/.cache/newsflow/stack")
    return os.path.join(home, "jars")


@dataclass
class Secured:
    env: dict[str, str]
    """The stack's own environment (for `deploy/local/stack` itself)."""
    status: str
    """The env lines `status` printed."""
    secure: Path
    """Its CA, certificates and password files."""

    def read(self, name: str) -> str:
        return (self.secure / name).read_text().strip()

    @property
    def password(self) -> str:
        return self.read("newsflow.password")

    @property
    def api_key(self) -> str:
        """The API key `up --secure` made (the `encoded` value)."""
        return self.read("es-api-key")

    @property
    def secrets(self) -> list[str]:
        return [
            self.password,
            self.read("client-key.password"),
            self.read("elastic.password"),
            self.api_key,
        ]

    def es(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Elasticsearch's REST API as the stack's user (basic auth, the stack's CA)."""
        auth = base64.b64encode(f"newsflow:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"https://127.0.0.1:{ES_PORT}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
            method=method,
        )
        context = ssl.create_default_context(cafile=str(self.secure / "ca.pem"))
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("secure-stack")
    env = {
        **os.environ,
        "NEWSFLOW_STACK_HOME": str(home),
        "NEWSFLOW_STACK_CACHE": _default_cache(),
        "NEWSFLOW_STACK_KAFKA_PORT": str(KAFKA_PORT),
        "NEWSFLOW_STACK_KAFKA_SSL_PORT": str(KAFKA_SSL_PORT),
        "NEWSFLOW_STACK_ES_PORT": str(ES_PORT),
        "NEWSFLOW_STACK_PREFECT": "0",
        "NEWSFLOW_STACK_STOP_GRACE": "15",
    }
    for name in ("NEWSFLOW_STACK_NODES", "NEWSFLOW_STACK_SECURE"):
        env.pop(name, None)
    up = subprocess.run(
        [str(STACK), "up", "--secure"], env=env, capture_output=True, text=True, timeout=600
    )
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        status = subprocess.run(
            [str(STACK), "status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stderr
        yield Secured(env=env, status=status.stdout, secure=home / "secure")
    finally:
        subprocess.run(
            [str(STACK), "down", "--purge"], env=env, capture_output=True, timeout=300, check=False
        )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSFLOW_", "PREFECT_API"))}
    run = uuid.uuid4().hex[:8]
    env.update(
        {
            "NEWSFLOW_KAFKA_TOPIC": f"s{run}.articles",
            "NEWSFLOW_KAFKA_DLQ_TOPIC": f"s{run}.articles.dlq",
            "NEWSFLOW_KAFKA_CONSUMER_GROUP": f"s{run}-indexer",
            "NEWSFLOW_KAFKA_PARTITIONS": "1",
            "NEWSFLOW_KAFKA_REQUEST_TIMEOUT_MS": "10000",
            "NEWSFLOW_ELASTICSEARCH_PREFIX": f"s{run}",
            "NEWSFLOW_ELASTICSEARCH_REQUEST_TIMEOUT": "20",
            "NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
            "NEWSFLOW_FETCH_PER_HOST_DELAY": "0",
            "NEWSFLOW_INDEXER_IDLE_TIMEOUT": "3",
            "NEWSFLOW_EXTRACT_WORKERS": "1",
            "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
            "NEWSFLOW_FEEDS_FILE": str(tmp_path / "feeds.toml"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
        }
    )
    return env


def _kafka(mode: str, s: Secured) -> dict[str, str]:
    if mode == "mtls":
        return {
            "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_SSL_PORT}",
            "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
            "NEWSFLOW_KAFKA_SSL_CAFILE": str(s.secure / "ca.pem"),
            "NEWSFLOW_KAFKA_SSL_CERTFILE": str(s.secure / "client.pem"),
            "NEWSFLOW_KAFKA_SSL_KEYFILE": str(s.secure / "client.key"),
            "NEWSFLOW_KAFKA_SSL_PASSWORD": s.read("client-key.password"),
        }
    return {
        "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}",
        "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "NEWSFLOW_KAFKA_SASL_MECHANISM": {"scram": "SCRAM-SHA-512", "plain": "PLAIN"}[mode],
        "NEWSFLOW_KAFKA_SASL_USERNAME": "newsflow",
        "NEWSFLOW_KAFKA_SASL_PASSWORD": s.password,
        "NEWSFLOW_KAFKA_SSL_CAFILE": str(s.secure / "ca.pem"),
    }


def _elasticsearch(mode: str, s: Secured) -> dict[str, str]:
    """``ca`` or ``fingerprint``: the user and password; ``apikey``: the API key alone (CA)."""
    trust = (
        {"NEWSFLOW_ELASTICSEARCH_SSL_ASSERT_FINGERPRINT": s.read("server.sha256")}
        if mode == "fingerprint"
        else {"NEWSFLOW_ELASTICSEARCH_CA_CERTS": str(s.secure / "ca.pem")}
    )
    auth = (
        {"NEWSFLOW_ELASTICSEARCH_API_KEY": s.api_key}
        if mode == "apikey"
        else {
            "NEWSFLOW_ELASTICSEARCH_USERNAME": "newsflow",
            "NEWSFLOW_ELASTICSEARCH_PASSWORD": s.password,
        }
    )
    return {"NEWSFLOW_ELASTICSEARCH_URL": f"https://127.0.0.1:{ES_PORT}", **auth, **trust}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "--verbose", "--log-format", "json", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _pairs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _no_secret(
    s: Secured, *runs: subprocess.CompletedProcess[str], also: tuple[str, ...] = ()
) -> None:
    """No secret of the stack (nor any of ``also``) in any byte the runs wrote."""
    for completed in runs:
        for secret in (*s.secrets, *also):
            assert secret not in completed.stdout, completed.args
            assert secret not in completed.stderr, completed.args


def _error_lines(completed: subprocess.CompletedProcess[str]) -> list[str]:
    """Lines of stderr that are not JSON log entries: the CLI's own error line(s)."""
    lines = []
    for line in completed.stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            if line.strip():
                lines.append(line)
    return lines


def _feeds(tmp_path: Path, site: Site) -> None:
    (tmp_path / "feeds.toml").write_text(f'[[feeds]]\nurl = "{site.url("feeds/politics.rss")}"\n')


def test_status_prints_the_secured_env_lines_and_keeps_secrets_in_0600_files(
    secured: Secured,
) -> None:
    lines = _pairs(secured.status)
    assert lines["NEWSFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert lines["NEWSFLOW_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert lines["NEWSFLOW_ELASTICSEARCH_URL"] == f"https://127.0.0.1:{ES_PORT}"
    assert lines["NEWSFLOW_KAFKA_SSL_CAFILE"] == str(secured.secure / "ca.pem")
    assert secured.password not in secured.status
    for name in ("newsflow.password", "elastic.password", "client.key", "ca.key"):
        assert (secured.secure / name).stat().st_mode & 0o777 == 0o600, name
    # the shell that evals the lines reads the password from its file
    evaluated = subprocess.run(
        ["bash", "-c", 'set -a; eval "$1"; printf %s "$NEWSFLOW_KAFKA_SASL_PASSWORD"', "-"]
        + [secured.status],
        capture_output=True,
        text=True,
        check=True,
    )
    assert evaluated.stdout == secured.password
    # the API key `up` made: its own 0600 file, a line of `status` that reads it
    assert (secured.secure / "es-api-key").stat().st_mode & 0o777 == 0o600
    assert secured.api_key not in secured.status
    key_line = f"NEWSFLOW_ELASTICSEARCH_API_KEY=\"$(cat '{secured.secure / 'es-api-key'}')\""
    assert any(line.endswith(key_line) for line in secured.status.splitlines()), secured.status
    evaluated = subprocess.run(
        ["bash", "-c", f'{key_line}; printf %s "$NEWSFLOW_ELASTICSEARCH_API_KEY"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert evaluated.stdout == secured.api_key
    # the password is on no command line of the stack's processes
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert secured.password.encode() not in (entry / "cmdline").read_bytes()
            except OSError:
                continue


@pytest.mark.parametrize(
    ("kafka", "elasticsearch"),
    [("scram", "ca"), ("plain", "fingerprint"), ("mtls", "ca"), ("scram", "apikey")],
)
def test_poll_and_index_end_to_end(
    secured: Secured, site: Site, tmp_path: Path, kafka: str, elasticsearch: str
) -> None:
    env = {
        **_clean_env(tmp_path),
        **_kafka(kafka, secured),
        **_elasticsearch(elasticsearch, secured),
    }
    _feeds(tmp_path, site)
    polled = _cli(env, "run", "--once", "--feeds", env["NEWSFLOW_FEEDS_FILE"])
    assert polled.returncode == 0, polled.stderr[-3000:]
    published = int(_pairs(polled.stdout)["published"])
    assert published > 0
    indexed = _cli(env, "index", "--until-idle")
    assert indexed.returncode == 0, indexed.stderr[-3000:]
    assert int(_pairs(indexed.stdout)["indexed"]) == published
    doctor = _cli(env, "doctor")
    assert "kafka" in doctor.stdout + doctor.stderr
    # every Elasticsearch check passes: the cluster, the template, the aliases, the feeds index
    es_checks = [line for line in doctor.stdout.splitlines() if " elasticsearch" in line]
    assert len(es_checks) == 5, doctor.stdout
    assert all(line.startswith("ok ") for line in es_checks), doctor.stdout
    _no_secret(secured, polled, indexed, doctor)


def test_a_wrong_kafka_password_is_one_error_line_and_loses_nothing(
    secured: Secured, site: Site, tmp_path: Path
) -> None:
    good = {**_clean_env(tmp_path), **_kafka("scram", secured), **_elasticsearch("ca", secured)}
    wrong = {**good, "NEWSFLOW_KAFKA_SASL_PASSWORD": "not-" + secured.password}
    _feeds(tmp_path, site)
    failed = _cli(wrong, "run", "--once", "--feeds", wrong["NEWSFLOW_FEEDS_FILE"])
    assert failed.returncode != 0
    errors = _error_lines(failed)
    assert len(errors) == 1, failed.stderr[-3000:]
    assert "Kafka" in errors[0]
    assert "Traceback" not in failed.stderr
    assert wrong["NEWSFLOW_KAFKA_SASL_PASSWORD"] not in failed.stdout + failed.stderr
    # nothing was recorded as done: the next run with the right password publishes it all
    polled = _cli(good, "run", "--once", "--feeds", good["NEWSFLOW_FEEDS_FILE"])
    assert polled.returncode == 0, polled.stderr[-3000:]
    published = int(_pairs(polled.stdout)["published"])
    assert published > 0
    _no_secret(secured, failed, polled)


def test_an_untrusted_certificate_and_a_wrong_es_password_fail_cleanly(
    secured: Secured, site: Site, tmp_path: Path
) -> None:
    good = {**_clean_env(tmp_path), **_kafka("scram", secured), **_elasticsearch("ca", secured)}
    _feeds(tmp_path, site)
    # Kafka's certificate checked against another CA: refused before anything is sent
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)]
        + ["-subj", "/CN=someone else"],
        capture_output=True,
        check=True,
    )
    untrusted = _cli(
        {**good, "NEWSFLOW_KAFKA_SSL_CAFILE": str(other_ca)},
        "run",
        "--once",
        "--feeds",
        good["NEWSFLOW_FEEDS_FILE"],
    )
    assert untrusted.returncode != 0
    assert len(_error_lines(untrusted)) == 1, untrusted.stderr[-3000:]

    polled = _cli(good, "run", "--once", "--feeds", good["NEWSFLOW_FEEDS_FILE"])
    assert polled.returncode == 0, polled.stderr[-3000:]
    published = int(_pairs(polled.stdout)["published"])
    assert published > 0

    # Elasticsearch: a wrong password, then its certificate against another CA
    wrong = _cli({**good, "NEWSFLOW_ELASTICSEARCH_PASSWORD": "wrong"}, "index", "--until-idle")
    assert wrong.returncode != 0
    assert len(_error_lines(wrong)) == 1, wrong.stderr[-3000:]
    bad_ca = _cli(
        {**good, "NEWSFLOW_ELASTICSEARCH_CA_CERTS": str(other_ca)}, "index", "--until-idle"
    )
    assert bad_ca.returncode != 0
    assert len(_error_lines(bad_ca)) == 1, bad_ca.stderr[-3000:]

    # no offset was committed by the failed indexers: every article is indexed now
    indexed = _cli(good, "index", "--until-idle")
    assert indexed.returncode == 0, indexed.stderr[-3000:]
    assert int(_pairs(indexed.stdout)["indexed"]) == published
    _no_secret(secured, untrusted, polled, wrong, bad_ca, indexed)


def test_a_wrong_or_revoked_api_key_is_one_error_line_and_loses_nothing(
    secured: Secured, site: Site, tmp_path: Path
) -> None:
    good = {**_clean_env(tmp_path), **_kafka("scram", secured), **_elasticsearch("apikey", secured)}
    _feeds(tmp_path, site)
    polled = _cli(good, "run", "--once", "--feeds", good["NEWSFLOW_FEEDS_FILE"])
    assert polled.returncode == 0, polled.stderr[-3000:]
    published = int(_pairs(polled.stdout)["published"])
    assert published > 0

    # the key's id with another secret; then a key of the same user, invalidated
    key_id = base64.b64decode(secured.api_key).decode().split(":", 1)[0]
    wrong_key = base64.b64encode(f"{key_id}:not-the-secret-{uuid.uuid4().hex}".encode()).decode()
    made = secured.es("POST", "/_security/api_key", {"name": f"revoked-{uuid.uuid4().hex[:8]}"})
    revoked_key = made["encoded"]
    gone = secured.es("DELETE", "/_security/api_key", {"ids": [made["id"]]})
    assert gone["invalidated_api_keys"] == [made["id"]]
    runs = []
    for bad in (wrong_key, revoked_key):
        env = {**good, "NEWSFLOW_ELASTICSEARCH_API_KEY": bad}
        failed = _cli(env, "index", "--until-idle")
        assert failed.returncode != 0
        errors = _error_lines(failed)
        assert len(errors) == 1, failed.stderr[-3000:]
        assert "Elasticsearch" in errors[0] or "elasticsearch" in errors[0], errors
        assert "Traceback" not in failed.stderr
        doctor = _cli(env, "doctor")
        assert doctor.returncode != 0
        # one failed check, the cluster's, with Elasticsearch's answer; the others skipped
        es_checks = [line for line in doctor.stdout.splitlines() if " elasticsearch" in line]
        failed_checks = [line for line in es_checks if line.startswith("FAIL")]
        assert len(failed_checks) == 1 and "401" in failed_checks[0], doctor.stdout
        assert all(line.startswith(("FAIL", "skip")) for line in es_checks), doctor.stdout
        runs += [failed, doctor]

    # no offset was committed by the failed indexers: the right key indexes every article
    indexed = _cli(good, "index", "--until-idle")
    assert indexed.returncode == 0, indexed.stderr[-3000:]
    assert int(_pairs(indexed.stdout)["indexed"]) == published
    _no_secret(secured, polled, *runs, indexed, also=(wrong_key, revoked_key))
