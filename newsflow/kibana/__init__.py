"""Kibana saved objects: upload newsflow's data views, saved search and dashboard.

The objects (Kibana's export format, one JSON object per line) ship inside this package
as ``newsflow.ndjson``, so an installed wheel can import them: :data:`SAVED_OBJECTS_FILE`.
``deploy/kibana/newsflow.ndjson`` is the same file in the repository, for importing
through Kibana's own UI; a test keeps the two byte-equal.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import httpx
from pydantic import SecretStr

from newsflow.errors import BackendUnavailable, ConfigError

__all__ = ["SAVED_OBJECTS_FILE", "ImportFailure", "ImportResult", "import_saved_objects"]

logger = logging.getLogger(__name__)

SAVED_OBJECTS_FILE: Traversable = resources.files(__name__) / "newsflow.ndjson"
"""The saved-objects file shipped with the package (the default of :func:`import_saved_objects`)."""

_TRANSIENT_STATUSES = {429, 502, 503, 504}
_SPACE_ID = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class ImportFailure:
    """One object Kibana did not import, and why (Kibana's ``error.type``)."""

    type: str
    id: str
    title: str | None
    reason: str
    """``conflict``, ``ambiguous_conflict``, ``missing_references``, ``unsupported_type``
    or ``unknown`` (then with Kibana's message)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What Kibana reported for one import request."""

    imported: int
    """Objects created or overwritten (Kibana's ``successCount``)."""
    failures: tuple[ImportFailure, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every object in the file was imported."""
        return not self.failures


def _secret(value: SecretStr | str | None) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _failure(item: dict[str, Any]) -> ImportFailure:
    error = item.get("error") or {}
    reason = str(error.get("type", "unknown"))
    if reason == "missing_references":
        missing = ", ".join(f"{r.get('type')}/{r.get('id')}" for r in error.get("references", []))
        reason = f"missing_references: {missing}"
    elif reason == "unknown" and error.get("message"):
        reason = f"unknown: {error['message']}"
    meta = item.get("meta") or {}
    title = meta.get("title", item.get("title"))
    return ImportFailure(
        type=str(item.get("type", "?")),
        id=str(item.get("id", "?")),
        title=str(title) if title is not None else None,
        reason=reason,
    )


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


def import_saved_objects(
    kibana_url: str,
    ndjson: Traversable = SAVED_OBJECTS_FILE,
    *,
    overwrite: bool = True,
    space: str | None = None,
    username: str | None = None,
    password: SecretStr | str | None = None,
    api_key: SecretStr | str | None = None,
    verify: bool | str = True,
    timeout: float = 60.0,
) -> ImportResult:
    """Upload ``ndjson`` to Kibana's saved-objects import API and report per object.

    ``kibana_url`` is Kibana's base URL (e.g. ``http://localhost:5601``; include the base
    path if Kibana runs under one). ``space`` imports into that Kibana space instead of
    the default one. With ``overwrite`` (the default) objects with the same id are
    replaced, so importing again after an upgrade updates the dashboard in place.
    Authenticate with ``username``/``password`` (basic) or ``api_key`` (the encoded key
    Kibana shows; it wins when both are given); ``verify`` is ``False`` or a CA bundle
    path for private TLS.

    Objects Kibana refuses individually (conflicts, missing references) come back in
    :attr:`ImportResult.failures`; check :attr:`ImportResult.ok`. Raises
    :class:`~newsflow.errors.ConfigError` for a missing file, bad credentials, a wrong
    URL or space, or a file Kibana rejects as a whole; and
    :class:`~newsflow.errors.BackendUnavailable` when Kibana cannot be reached or is not
    ready (it answers 503 while starting).
    """
    try:
        content = ndjson.read_bytes()
    except OSError as exc:
        raise ConfigError(f"saved objects file {ndjson} not readable ({exc.strerror})") from exc
    if not content.strip():
        raise ConfigError(f"saved objects file {ndjson} is empty")

    if space is not None and not _SPACE_ID.fullmatch(space):
        raise ConfigError(f"{space!r} is not a Kibana space id (a-z, 0-9, '_' and '-')")
    base = kibana_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"Kibana URL {kibana_url!r} must start with http:// or https://")
    prefix = f"/s/{space}" if space and space != "default" else ""
    url = f"{base}{prefix}/api/saved_objects/_import"
    headers = {"kbn-xsrf": "true"}
    auth: httpx.BasicAuth | None = None
    if api_key is not None:
        headers["Authorization"] = f"ApiKey {_secret(api_key)}"
    elif username is not None:
        auth = httpx.BasicAuth(username, _secret(password) or "")

    try:
        with httpx.Client(auth=auth, verify=verify, timeout=timeout) as client:
            response = client.post(
                url,
                params={"overwrite": "true" if overwrite else "false"},
                headers=headers,
                files={"file": (ndjson.name, content, "application/ndjson")},
            )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ConfigError(f"Kibana URL {kibana_url!r} is not usable: {exc}") from exc
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"Kibana unreachable at {base}: {exc}") from exc

    status = response.status_code
    if status in _TRANSIENT_STATUSES or status >= 500:
        raise BackendUnavailable(f"Kibana at {base} answered {status}: {_message(response)}")
    if status in (401, 403):
        raise ConfigError(f"Kibana at {base} refused the credentials ({status})")
    if status == 404:
        where = f"space {space!r}" if prefix else "the saved objects API"
        raise ConfigError(f"Kibana at {base} has no {where} (404): check the URL")
    if status != 200:
        raise ConfigError(f"Kibana rejected {ndjson.name} ({status}): {_message(response)}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "successCount" not in body:
        raise ConfigError(f"{url} did not answer like Kibana's import API: check the URL")

    result = ImportResult(
        imported=int(body["successCount"]),
        failures=tuple(_failure(item) for item in body.get("errors") or []),
        warnings=tuple(
            str(w.get("message", w)) if isinstance(w, dict) else str(w)
            for w in body.get("warnings") or []
        ),
    )
    logger.info(
        "kibana import url=%s space=%s imported=%d failed=%d",
        base,
        space or "default",
        result.imported,
        len(result.failures),
    )
    return result
