"""The security settings: validated when they load, handed to the clients, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.kafka import connection_options
from newsflow.errors import ConfigError
from newsflow.settings import KafkaSettings, load_settings

SASL = "s3cret"
KEY = "k3y"


def test_sasl_and_tls_options_reach_kafka_python(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-")
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1",
        security_protocol="sasl_ssl",
        sasl_mechanism="scram-sha-512",
        sasl_username="u",
        sasl_password=SecretStr(SASL),
        ssl_cafile=tmp_path / "ca.pem",
        ssl_certfile=tmp_path / "client.pem",
        ssl_keyfile=tmp_path / "client.key",
        ssl_password=SecretStr(KEY),
        ssl_check_hostname=False,
    )
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == SASL
    assert options["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert options["ssl_keyfile"] == str(tmp_path / "client.key")
    assert options["ssl_password"] == KEY
    assert options["ssl_check_hostname"] is False
    assert SASL not in repr(settings) and KEY not in repr(settings)


def test_a_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1", security_protocol="SSL", ssl_cafile=tmp_path / "no.pem"
    )
    with pytest.raises(ConfigError, match="NEWSFLOW_KAFKA_SSL_CAFILE"):
        connection_options(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "expected one of PLAINTEXT"),
        ({"NEWSFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"}, "expected one of PLAIN"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "NEWSFLOW_KAFKA_SASL_MECHANISM"),
        ({"NEWSFLOW_KAFKA_SSL_KEYFILE": "k.pem"}, "needs NEWSFLOW_KAFKA_SSL_CERTFILE"),
    ],
)
def test_incomplete_security_settings_are_one_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEWSFLOW_KAFKA_SASL_PASSWORD", "hunter2")
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)
