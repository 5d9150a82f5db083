"""The Kafka payload only evolves compatibly within a major version.

``schemas/history/article-<major>.<minor>.schema.json`` holds the schema of every released
version, exactly as ``python -m schemas`` rendered it. The current schema must be a
compatible evolution of every released schema of the same major. The rule, for consumers
and producers alike (docs/consumers.md, "Schema evolution"):

- every released property still exists, with the same type and constraints (type, anyOf,
  format, pattern, const, enum, items, minimum, ...); only annotations (title,
  description, default, examples) may change. ``schema_version`` alone may change its
  ``const``, and only to a version of the same major;
- ``required`` keeps exactly the same members: a property neither joins it (a new
  consumer replaying old records would reject them) nor leaves it (old consumers rely on
  it being there);
- a new property must be optional when the model *reads* a record, i.e. absent from the
  validation-mode ``required`` list (it has a default). The checked-in schema is
  rendered in serialization mode; the two lists are kept identical (tested below), so a
  ``required`` entry always means "every record carries it, old ones included";
- ``additionalProperties`` never closes (true or absent -> false).

The released schema says ``additionalProperties: false``, so a consumer validating a newer
minor's record against an older schema file would reject the new optional fields: the
documented consumer rule is to validate against the schema of the record's
``schema-version`` header, or tolerantly (unknown properties ignored).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from pydantic import Field

import schemas
from schemas import SCHEMA_VERSION, Article
from schemas.__main__ import render

HISTORY = Path(schemas.__file__).resolve().parent / "history"
_NAME = re.compile(r"article-(\d+)\.(\d+)\.schema\.json")
_ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "deprecated"}
_DOCUMENT = {"$schema", "$id"}

Schema = dict[str, Any]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with local ``$ref``s to ``$defs`` replaced by their targets."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].removeprefix("#/$defs/")]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **siblings}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def _shape(node: Any) -> Any:
    """What a validator checks: ``node`` without annotations (property names are kept)."""
    if isinstance(node, dict):
        return {
            key: (
                {name: _shape(sub) for name, sub in value.items()}
                if key in ("properties", "patternProperties")
                else _shape(value)
            )
            for key, value in node.items()
            if key not in _ANNOTATIONS and key not in _DOCUMENT
        }
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return node


def _major(schema: Schema) -> str:
    return str(schema["properties"]["schema_version"]["const"]).split(".")[0]


def incompatibilities(
    old: Schema, new: Schema, *, required_on_read: set[str] | None = None
) -> list[str]:
    """Why ``new`` is not a compatible evolution of ``old`` (empty: it is).

    ``required_on_read`` is the validation-mode ``required`` list of the model behind
    ``new`` (default: ``new``'s own ``required``).
    """
    old = _inline(old, old.get("$defs", {}))
    new_read = required_on_read
    new = _inline(new, new.get("$defs", {}))
    if new_read is None:
        new_read = set(new.get("required", []))
    problems: list[str] = []
    if new.get("type") != old.get("type"):
        problems.append(f"type changed from {old.get('type')!r} to {new.get('type')!r}")
    if _major(new) != _major(old):
        problems.append(
            f"schema_version major changed ({_major(old)} -> {_major(new)}): "
            "a new major is a new topic, not an evolution"
        )
    old_props: Schema = old.get("properties", {})
    new_props: Schema = new.get("properties", {})
    for name, old_spec in sorted(old_props.items()):
        if name not in new_props:
            problems.append(f"{name}: removed (or renamed)")
            continue
        before, after = _shape(old_spec), _shape(new_props[name])
        if name == "schema_version":  # checked by major above
            before.pop("const", None)
            after.pop("const", None)
        if before != after:
            problems.append(f"{name}: changed from {json.dumps(before)} to {json.dumps(after)}")
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(new_required - old_required):
        problems.append(f"{name}: now required")
    for name in sorted(old_required - new_required):
        problems.append(f"{name}: no longer required")
    for name in sorted(new_props.keys() - old_props.keys()):
        if name in new_read:
            problems.append(f"{name}: new property without a default (required on read)")
    if (
        old.get("additionalProperties", True) is not False
        and new.get("additionalProperties", True) is False
    ):
        problems.append("additionalProperties: closed")
    return problems


def _released() -> list[tuple[tuple[int, int], Path]]:
    versions = []
    for path in sorted(HISTORY.iterdir()):
        match = _NAME.fullmatch(path.name)
        assert match, f"schemas/history/{path.name}: name it article-<major>.<minor>.schema.json"
        versions.append(((int(match.group(1)), int(match.group(2))), path))
    return sorted(versions)


RELEASED = _released()
CURRENT = json.loads(render())
READ_REQUIRED = set(Article.model_json_schema(mode="validation").get("required", []))
SAME_MAJOR = [path for (major, _), path in RELEASED if str(major) == _major(CURRENT)]


def _load(path: Path) -> Schema:
    schema: Schema = json.loads(path.read_text(encoding="utf-8"))
    return schema


# -- the current schema against the released ones ---------------------------------------


@pytest.mark.parametrize("released", SAME_MAJOR, ids=lambda p: p.name)
def test_the_current_schema_evolves_every_released_one_compatibly(released: Path) -> None:
    assert incompatibilities(_load(released), CURRENT, required_on_read=READ_REQUIRED) == []


def test_every_release_of_the_current_major_is_in_the_history() -> None:
    assert SAME_MAJOR, f"no released schema for major {_major(CURRENT)} in schemas/history/"
    for (major, minor), path in RELEASED:
        assert _load(path)["properties"]["schema_version"]["const"] == f"{major}.{minor}", path


def test_the_current_version_is_frozen_once_released() -> None:
    """Changing the payload means a new minor: bump SCHEMA_VERSION and snapshot it."""
    snapshot = HISTORY / f"article-{SCHEMA_VERSION}.schema.json"
    assert snapshot.exists(), (
        f"schema {SCHEMA_VERSION} is not released: after `python -m schemas`, copy "
        f"schemas/article.schema.json to schemas/history/{snapshot.name}"
    )
    assert _shape(_load(snapshot)) == _shape(CURRENT), (
        f"the payload changed but SCHEMA_VERSION is still {SCHEMA_VERSION}: bump the minor "
        "(only optional fields may be added), regenerate and snapshot the new version"
    )
    assert RELEASED[-1][1] == snapshot, "the current version must be the newest release"


def test_required_means_the_same_when_reading_and_writing() -> None:
    # json_schema_serialization_defaults_required would list defaulted fields as required
    # in the rendered schema; then "required" would no longer say what old records carry.
    assert set(CURRENT["required"]) == READ_REQUIRED


# -- the checker itself ---------------------------------------------------------------


_REMOVE = object()


def _changed(**edits: Any) -> Schema:
    """A copy of the current schema; ``a__b=value`` sets ``schema["a"]["b"]``."""
    schema = copy.deepcopy(CURRENT)
    for path, value in edits.items():
        *parents, leaf = path.split("__")
        node = schema
        for part in parents:
            node = node[part]
        if value is _REMOVE:
            del node[leaf]
        else:
            node[leaf] = value
    return cast(dict[str, Any], schema)


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (_changed(properties__summary=_REMOVE), "summary: removed"),
        (_changed(properties__revision__type="string"), "revision: changed"),
        (
            _changed(properties__published_at__anyOf=[{"type": "string", "format": "date-time"}]),
            "published_at: changed",
        ),
        (_changed(properties__doc_id__pattern="^[0-9a-f]{40}$"), "doc_id: changed"),
        (_changed(properties__fetched_at__format="date"), "fetched_at: changed"),
        (_changed(properties__authors__items={"type": "integer"}), "authors: changed"),
        (
            _changed(
                properties__section={"type": "string"},
                required=[*CURRENT["required"], "section"],
            ),
            "section: now required",
        ),
        (_changed(required=[*CURRENT["required"], "language"]), "language: now required"),
        (
            _changed(required=[r for r in CURRENT["required"] if r != "title"]),
            "title: no longer required",
        ),
        (_changed(properties__schema_version__const="2.0"), "major changed"),
        (_changed(properties__schema_version__type="number"), "schema_version: changed"),
    ],
    ids=lambda value: value if isinstance(value, str) else "schema",
)
def test_the_checker_rejects_an_incompatible_schema(new: Schema, expected: str) -> None:
    problems = incompatibilities(CURRENT, new)
    assert any(expected in problem for problem in problems), problems


def test_the_checker_rejects_a_new_field_the_model_requires_on_read() -> None:
    new = _changed(properties__section={"type": "string"})
    problems = incompatibilities(CURRENT, new, required_on_read={*READ_REQUIRED, "section"})
    assert problems == ["section: new property without a default (required on read)"]


def test_the_checker_rejects_closing_additional_properties() -> None:
    old = _changed(additionalProperties=_REMOVE)
    assert incompatibilities(old, CURRENT) == ["additionalProperties: closed"]
    assert incompatibilities(CURRENT, old) == []


def test_the_checker_resolves_refs_into_defs() -> None:
    old = _changed(
        **{"$defs": {"Tag": {"type": "string", "title": "Tag"}}},
        properties__tags={"type": "array", "items": {"$ref": "#/$defs/Tag"}},
    )
    assert incompatibilities(old, CURRENT) == []
    retyped = copy.deepcopy(old)
    retyped["$defs"]["Tag"]["type"] = "integer"
    (problem,) = incompatibilities(retyped, CURRENT)
    assert problem.startswith("tags: changed from")


class _NextMinor(Article):
    """What a compatible next minor would look like: more optional fields."""

    schema_version: Literal["1.3"] = Field(default="1.3")  # type: ignore[assignment]
    section: str | None = Field(default=None, description="Section of the site.")
    paywalled: bool = Field(default=False, description="Behind a paywall.")
    sections: list[str] = Field(default_factory=list, description="Breadcrumbs.")


def test_the_checker_accepts_new_optional_fields_and_a_minor_bump() -> None:
    new = _NextMinor.model_json_schema(mode="serialization")
    read = set(_NextMinor.model_json_schema(mode="validation")["required"])
    for _, released in RELEASED:
        assert incompatibilities(_load(released), new, required_on_read=read) == []


def test_the_checker_ignores_annotations() -> None:
    new = _changed(properties__title__description="The headline.", title="Story")
    assert incompatibilities(CURRENT, new) == []
