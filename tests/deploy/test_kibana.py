"""deploy/kibana/newsflow.ndjson (and its copy in the package), checked without Kibana.

Kibana cannot run here: it is published neither on Maven Central nor on PyPI (the npm
package ``kibana`` is Kibana 5.1.1, older than Lens), and there is no Docker engine. So
the saved objects are checked structurally (references resolve, Lens layers and formulas
are consistent, every field they use exists in the Elasticsearch mappings with a type
that supports the use), their aggregations run on the real Elasticsearch node
(integration: every field column alone, and the story and quality panels whole, nested
as Lens nests them, by :func:`lens_rows`), and the import client's request is checked
against a recording HTTP server on 127.0.0.1 (a client-side unit test of request
formatting, not a Kibana).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from elasticsearch import Elasticsearch
from pydantic import SecretStr

from connectors.elasticsearch import ARTICLE_MAPPING, FEED_MAPPING, ElasticsearchStore
from newsflow.errors import BackendUnavailable, ConfigError
from newsflow.identity import content_hash, doc_id
from newsflow.kibana import SAVED_OBJECTS_FILE, ImportFailure, import_saved_objects
from newsflow.quality import add_quality
from newsflow.settings import DEFAULT_INDEX_PREFIX, ElasticsearchSettings, Settings, index_name
from newsflow.stories import StoryAssigner, fingerprint
from schemas import Article, FeedQuality, FeedState

NDJSON = Path(__file__).resolve().parents[2] / "deploy" / "kibana" / "newsflow.ndjson"

ARTICLES_TITLE = index_name(DEFAULT_INDEX_PREFIX, "index")
FEEDS_TITLE = index_name(DEFAULT_INDEX_PREFIX, "feeds_index")

_NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float"}
_DATE = {"date", "date_nanos"}
_TERMS = {"keyword", "boolean"} | _NUMERIC | _DATE
_RECORDS = "___records___"  # Lens's pseudo-field for "count of documents"
_QUOTED = re.compile(r'"(?:\\.|[^"\\])*"')
_KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)")


def _load(path: Path) -> list[dict[str, Any]]:
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name}:{number} is blank"
        value = json.loads(line)
        assert isinstance(value, dict), f"{path.name}:{number} is not a JSON object"
        objects.append(value)
    return objects


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``field``, ``field.subfield`` and ``object.field`` -> their mapping.

    An object's own entry has no ``type`` (Kibana lists only its leaves); a disabled
    object (``enabled: false``) has no leaves at all, as in Kibana.
    """
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in mapping["properties"].items():
        if "properties" in spec:
            fields.update(_flatten(spec, f"{prefix}{name}."))
            continue
        if "type" not in spec or spec["type"] == "object":
            continue
        fields[f"{prefix}{name}"] = spec
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{prefix}{name}.{sub}"] = sub_spec
    return fields


MAPPINGS = {ARTICLES_TITLE: _flatten(ARTICLE_MAPPING), FEEDS_TITLE: _flatten(FEED_MAPPING)}


@dataclass(frozen=True)
class Use:
    """One field used by one saved object, and for what."""

    where: str
    index: str
    field: str
    purpose: str  # time, terms, date_histogram, metric, cardinality, last_value, sort,
    # sort_date, column, query


def _aggregatable(spec: dict[str, Any]) -> bool:
    return spec.get("doc_values", True) is not False and spec["type"] != "text"


def _purpose_problem(spec: dict[str, Any], purpose: str) -> str | None:
    kind = spec["type"]
    if purpose in ("time", "date_histogram", "sort_date") and kind not in _DATE:
        return f"is {kind}, {purpose} needs a date"
    if purpose == "terms" and not (kind in _TERMS and _aggregatable(spec)):
        return f"is {kind} (doc_values={spec.get('doc_values', True)}), terms cannot bucket it"
    if purpose == "metric" and not (kind in _NUMERIC | _DATE and _aggregatable(spec)):
        return f"is {kind}, a numeric metric needs a number"
    if purpose == "cardinality" and not (kind in _TERMS and _aggregatable(spec)):
        return f"is {kind} (doc_values={spec.get('doc_values', True)}), cannot count its values"
    if purpose == "last_value_date" and kind not in _DATE:
        return f"is {kind}, the column shows it as a date"
    if purpose in ("last_value", "last_value_date", "sort") and not _aggregatable(spec):
        return f"is {kind} without doc values, {purpose} cannot read it"
    if purpose == "query" and spec.get("index", True) is False:
        return "is not indexed, a query on it matches nothing"
    return None  # "column": any mapped field can be shown


def _kql_fields(query: str) -> list[str]:
    return [m.group(1) for m in _KQL_FIELD.finditer(_QUOTED.sub('""', query))]


def _filter_fields(filters: list[dict[str, Any]]) -> list[str]:
    return [f["meta"]["key"] for f in filters if f.get("meta", {}).get("key")]


def _references(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ref["name"]: ref for ref in obj["references"]}


def _lens_layers(obj: dict[str, Any]) -> dict[str, Any]:
    layers: dict[str, Any] = obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    return layers


_PURPOSES = {
    "terms": "terms",
    "date_histogram": "date_histogram",
    "unique_count": "cardinality",
    "last_value": "last_value",
}


def field_uses(objects: list[dict[str, Any]]) -> list[Use]:
    """Every field the saved objects use, resolved to the data view's index title."""
    titles = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    uses: list[Use] = []
    for obj in objects:
        where = f"{obj['type']}/{obj['id']}"
        attributes = obj["attributes"]
        refs = _references(obj)
        if obj["type"] == "index-pattern":
            uses.append(Use(where, attributes["title"], attributes["timeFieldName"], "time"))
        elif obj["type"] == "search":
            source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
            index = titles[refs[source["indexRefName"]]["id"]]
            uses += [Use(where, index, column, "column") for column in attributes["columns"]]
            uses += [Use(where, index, field, "sort") for field, _ in attributes["sort"]]
            uses += [Use(where, index, f, "query") for f in _kql_fields(source["query"]["query"])]
            uses += [Use(where, index, f, "query") for f in _filter_fields(source["filter"])]
        elif obj["type"] == "lens":
            state = attributes["state"]
            for layer_id, layer in _lens_layers(obj).items():
                index = titles[refs[f"indexpattern-datasource-layer-{layer_id}"]["id"]]
                uses += [
                    Use(where, index, f, "query") for f in _kql_fields(state["query"]["query"])
                ]
                uses += [Use(where, index, f, "query") for f in _filter_fields(state["filters"])]
                for column in layer["columns"].values():
                    operation, field = column["operationType"], column.get("sourceField")
                    if field is None or field == _RECORDS:
                        continue  # formula and math columns: their parts name the fields
                    purpose = _PURPOSES.get(operation, "metric")
                    if purpose == "last_value" and column["dataType"] == "date":
                        purpose = "last_value_date"
                    uses.append(Use(where, index, field, purpose))
                    if operation == "last_value":
                        uses.append(Use(where, index, column["params"]["sortField"], "sort_date"))
                    if "filter" in column:
                        uses += [
                            Use(where, index, f, "query")
                            for f in _kql_fields(column["filter"]["query"])
                        ]
    return uses


def field_problems(
    objects: list[dict[str, Any]], mappings: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    problems = []
    for use in field_uses(objects):
        fields = mappings.get(use.index)
        if fields is None:
            problems.append(f"{use.where}: data view {use.index!r} is not a newsflow index")
            continue
        spec = fields.get(use.field)
        if spec is None:
            problems.append(f"{use.where}: {use.field!r} ({use.purpose}) not in {use.index}")
            continue
        problem = _purpose_problem(spec, use.purpose)
        if problem:
            problems.append(f"{use.where}: {use.field!r} {problem}")
    return problems


OBJECTS = _load(NDJSON)
BY_ID = {(o["type"], o["id"]): o for o in OBJECTS}


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [o for o in OBJECTS if o["type"] == kind]


# -- structure ------------------------------------------------------------------------


def test_the_packaged_saved_objects_are_the_deploy_file() -> None:
    # The package copy is what `newsflow kibana import` sends from an installed wheel;
    # deploy/kibana/newsflow.ndjson is what operators import by hand. They must not drift.
    packaged = resources.files("newsflow.kibana") / "newsflow.ndjson"
    assert SAVED_OBJECTS_FILE == packaged
    assert packaged.read_bytes() == NDJSON.read_bytes(), (
        "newsflow/kibana/newsflow.ndjson differs from deploy/kibana/newsflow.ndjson: "
        "copy the one you edited over the other"
    )


def test_every_line_is_a_saved_object_with_a_unique_id() -> None:
    for obj in OBJECTS:
        assert {"type", "id", "attributes", "references"} <= obj.keys(), obj.get("id")
        assert obj["coreMigrationVersion"] and obj["typeMigrationVersion"], obj["id"]
        assert isinstance(obj["attributes"].get("title"), str), obj["id"]
    ids = [o["id"] for o in OBJECTS]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert {o["type"] for o in OBJECTS} == {"index-pattern", "search", "lens", "dashboard"}


def test_every_reference_points_to_an_object_in_the_file() -> None:
    for obj in OBJECTS:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_ID, f"{obj['id']} -> {ref['type']}/{ref['id']}"


def test_the_data_views_are_the_settings_default_indices() -> None:
    views = {o["attributes"]["title"]: o for o in _of_type("index-pattern")}
    assert views.keys() == {ARTICLES_TITLE, FEEDS_TITLE}
    assert views[ARTICLES_TITLE]["id"] == "newsflow-articles"
    assert views[ARTICLES_TITLE]["attributes"]["timeFieldName"] == "published_at"
    assert views[FEEDS_TITLE]["attributes"]["timeFieldName"] == "last_attempt_at"


def test_the_saved_search_refers_to_its_data_view_by_reference() -> None:
    (search,) = _of_type("search")
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert "index" not in source, "a data view id inline in searchSourceJSON is not portable"
    ref = _references(search)[source["indexRefName"]]
    assert (ref["type"], ref["id"]) == ("index-pattern", "newsflow-articles")
    assert search["attributes"]["columns"] == ["title", "source", "authors", "language"]
    assert search["attributes"]["sort"] == [["published_at", "desc"]]


def test_lens_layers_reference_a_data_view_and_their_own_columns() -> None:
    for lens in _of_type("lens"):
        refs = _references(lens)
        layers = _lens_layers(lens)
        layer_refs = {n for n in refs if n.startswith("indexpattern-datasource-layer-")}
        assert layer_refs == {f"indexpattern-datasource-layer-{i}" for i in layers}, lens["id"]
        visualization = lens["attributes"]["state"]["visualization"]
        for layer_id, layer in layers.items():
            columns = layer["columns"]
            assert sorted(layer["columnOrder"]) == sorted(columns), lens["id"]
            for column in columns.values():
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in columns, f"{lens['id']}: orderBy"
            vis_layers = visualization.get("layers") or [visualization]
            (vis,) = [v for v in vis_layers if v["layerId"] == layer_id]
            accessors = [
                *vis.get("accessors", []),
                *[a for a in (vis.get("xAccessor"), vis.get("splitAccessor")) if a],
                *vis.get("primaryGroups", []),
                *vis.get("metrics", []),
                *[c["columnId"] for c in vis.get("columns", [])],
            ]
            assert accessors, f"{lens['id']}: the visualization shows no column"
            assert set(accessors) <= columns.keys(), f"{lens['id']}: unknown accessor"


def test_the_dashboard_panels_resolve_and_do_not_overlap() -> None:
    (dashboard,) = _of_type("dashboard")
    refs = _references(dashboard)
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    cells: dict[tuple[int, int], str] = {}
    shown = set()
    for panel in panels:
        index = panel["panelIndex"]
        assert panel["gridData"]["i"] == index
        ref = refs[f"{index}:{panel['panelRefName']}"]
        assert ref["type"] == panel["type"]
        shown.add(ref["id"])
        grid = panel["gridData"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 48, f"{index} is off the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{index} overlaps {cells[(x, y)]}"
                cells[(x, y)] = index
    assert shown == {o["id"] for o in OBJECTS if o["type"] in ("lens", "search")}


def test_the_feeds_table_only_lists_failing_feeds() -> None:
    feeds = BY_ID[("lens", "newsflow-feeds-with-errors")]
    assert feeds["attributes"]["state"]["query"]["query"] == "consecutive_failures > 0"
    (layer,) = _lens_layers(feeds).values()
    fields = {c["sourceField"] for c in layer["columns"].values()}
    assert fields == {
        "feed_url",
        "name",
        "consecutive_failures",
        "last_error_class",
        "last_error_message.keyword",
    }


_SHARE = re.compile(r"(\w+)\(([\w.]+)\) / (\w+)\(([\w.]+)\)")


def test_formula_columns_carry_the_parts_lens_computes_them_from() -> None:
    # Lens stores a formula with the columns it parsed it into (<id>X0, X1: the metrics,
    # <id>X2: the math over them) and computes from those parts, not from the text; so
    # the parts must be the formula's, or the panel shows something else than it says.
    formulas = 0
    for lens in _of_type("lens"):
        for layer in _lens_layers(lens).values():
            columns = layer["columns"]
            shown = {
                c["columnId"]
                for c in lens["attributes"]["state"]["visualization"].get("columns", [])
            }
            for column_id, column in columns.items():
                if column["operationType"] != "formula":
                    continue
                formulas += 1
                formula = column["params"]["formula"]
                assert not column["params"]["isFormulaBroken"], column_id
                match = _SHARE.fullmatch(formula)
                assert match, f"teach the test the formula {formula!r}"
                (math_id,) = column["references"]
                math = columns[math_id]
                ast = math["params"]["tinymathAst"]
                assert math["operationType"] == "math" and math_id == f"{column_id}X2"
                assert (ast["name"], ast["text"]) == ("divide", formula)
                assert ast["location"] == {"min": 0, "max": len(formula)}
                assert math["references"] == ast["args"] == [f"{column_id}X0", f"{column_id}X1"]
                parts = [columns[arg] for arg in ast["args"]]
                assert [(c["operationType"], c["sourceField"]) for c in parts] == [
                    (match.group(1), match.group(2)),
                    (match.group(3), match.group(4)),
                ], column_id
                assert not {math_id, *ast["args"]} & shown, f"{column_id}: a part is shown"
    assert formulas == 5


def _layer(lens_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    lens = BY_ID[("lens", lens_id)]
    (layer,) = _lens_layers(lens).values()
    return lens["attributes"]["state"], layer["columns"]


def test_unique_stories_counts_distinct_story_ids_per_interval() -> None:
    state, columns = _layer("newsflow-unique-stories")
    ops = {c["sourceField"]: c["operationType"] for c in columns.values()}
    assert ops == {"published_at": "date_histogram", "story_id": "unique_count", _RECORDS: "count"}
    assert state["query"]["query"] == "", "copies must count: they carry their story's id"
    (vis,) = state["visualization"]["layers"]
    assert columns[vis["xAccessor"]]["sourceField"] == "published_at"
    assert [columns[a]["label"] for a in vis["accessors"]] == ["Unique stories", "Articles"]


def test_largest_stories_ranks_story_ids_by_articles() -> None:
    state, columns = _layer("newsflow-largest-stories")
    story = columns["story"]
    assert (story["operationType"], story["sourceField"]) == ("terms", "story_id")
    assert story["params"]["orderBy"] == {"columnId": "copies", "type": "column"}
    assert story["params"]["orderDirection"] == "desc"
    assert columns["copies"]["sourceField"] == _RECORDS
    assert (columns["sites"]["operationType"], columns["sites"]["sourceField"]) == (
        "unique_count",
        "domain",
    )
    assert columns["headline"]["sourceField"] == "title.keyword"
    assert columns["started"]["sourceField"] == "story_started_at"


def test_the_quality_table_shows_a_share_per_flaw_for_feeds_with_pages() -> None:
    state, columns = _layer("newsflow-extraction-quality")
    assert state["query"]["query"] == "quality.pages > 0"  # no 0 / 0 rows
    shares = {
        c["label"]: c["params"]["formula"]
        for c in columns.values()
        if c["operationType"] == "formula"
    }
    assert shares == {
        label: f"sum(quality.{flag}) / sum(quality.pages)"
        for label, flag in [
            ("No date", "no_date"),
            ("No author", "no_author"),
            ("Short text", "short_text"),
            ("Teaser or paywall", "teaser"),
            ("Timeout", "timeout"),
        ]
    }
    assert all(
        c["params"]["format"]["id"] == "percent"
        for c in columns.values()
        if c["operationType"] == "formula"
    )
    assert columns["feed-url"]["params"]["orderBy"]["columnId"] == "pages"


# -- fields against the mappings ------------------------------------------------------


def test_every_field_used_exists_in_the_mapping_with_a_suitable_type() -> None:
    assert field_problems(OBJECTS, MAPPINGS) == []


def test_the_field_check_sees_the_fields_of_every_panel() -> None:
    used = {(u.index, u.field, u.purpose) for u in field_uses(OBJECTS)}
    assert {
        (ARTICLES_TITLE, "published_at", "time"),
        (ARTICLES_TITLE, "published_at", "date_histogram"),
        (ARTICLES_TITLE, "published_at", "sort"),
        (ARTICLES_TITLE, "source", "terms"),
        (ARTICLES_TITLE, "language", "terms"),
        (ARTICLES_TITLE, "authors", "column"),
        (FEEDS_TITLE, "last_attempt_at", "time"),
        (FEEDS_TITLE, "feed_url", "terms"),
        (FEEDS_TITLE, "consecutive_failures", "metric"),
        (FEEDS_TITLE, "consecutive_failures", "query"),
        (FEEDS_TITLE, "last_error_message.keyword", "last_value"),
        (ARTICLES_TITLE, "story_id", "cardinality"),
        (ARTICLES_TITLE, "story_id", "terms"),
        (ARTICLES_TITLE, "domain", "cardinality"),
        (ARTICLES_TITLE, "title.keyword", "last_value"),
        (ARTICLES_TITLE, "story_started_at", "last_value_date"),
        (FEEDS_TITLE, "quality.pages", "metric"),
        (FEEDS_TITLE, "quality.pages", "query"),
        *((FEEDS_TITLE, f"quality.{flag}", "metric") for flag in _FLAWS),
    } <= used


_FLAWS = ("no_date", "no_author", "short_text", "teaser", "timeout")


def test_the_quality_fields_are_the_feed_quality_counts() -> None:
    # The panel reads the counts the poll adds up (schemas.FeedQuality), as mapped.
    assert {f"quality.{name}" for name in ("pages", *_FLAWS)} <= {
        f"quality.{name}" for name in FeedQuality.model_fields
    }
    assert "quality_by_domain.pages" not in MAPPINGS[FEEDS_TITLE]  # not aggregatable


def _mapping_with(mapping: dict[str, Any], **changes: Any) -> dict[str, dict[str, Any]]:
    properties = dict(mapping["properties"])
    for name, spec in changes.items():
        if spec is None:
            properties.pop(name)
        else:
            properties[name] = spec
    return _flatten({"properties": properties})


@pytest.mark.parametrize(
    ("index", "changes", "expected"),
    [
        (ARTICLES_TITLE, {"source": None}, "'source' (terms) not in news-articles"),
        (ARTICLES_TITLE, {"language": {"type": "text"}}, "'language' is text"),
        (ARTICLES_TITLE, {"published_at": {"type": "keyword"}}, "time needs a date"),
        (FEEDS_TITLE, {"last_error_message": {"type": "text"}}, "last_error_message.keyword"),
        (FEEDS_TITLE, {"consecutive_failures": {"type": "keyword"}}, "needs a number"),
        (ARTICLES_TITLE, {"story_id": {"type": "text"}}, "'story_id' is text"),
        (ARTICLES_TITLE, {"story_id": None}, "'story_id' (cardinality) not in news-articles"),
        (ARTICLES_TITLE, {"domain": {"type": "text"}}, "cannot count its values"),
        (ARTICLES_TITLE, {"story_started_at": {"type": "keyword"}}, "shows it as a date"),
        (
            FEEDS_TITLE,
            {"quality": {"properties": {"pages": {"type": "keyword"}}}},
            "'quality.pages' is keyword, a numeric metric needs a number",
        ),
        (
            FEEDS_TITLE,
            {"quality": {"type": "object", "enabled": False}},
            "'quality.no_date' (metric) not in newsflow-feeds",
        ),
    ],
)
def test_the_field_check_fails_when_the_mapping_changes(
    index: str, changes: dict[str, Any], expected: str
) -> None:
    mapping = ARTICLE_MAPPING if index == ARTICLES_TITLE else FEED_MAPPING
    mappings = {**MAPPINGS, index: _mapping_with(mapping, **changes)}
    problems = field_problems(OBJECTS, mappings)
    assert any(expected in problem for problem in problems), problems


def test_kql_field_extraction_ignores_quoted_values() -> None:
    query = 'authors : "Dylan Housman" and text : "talks: stalled" or published_at >= now-7d'
    assert _kql_fields(query) == ["authors", "text", "published_at"]


# -- the aggregations on the real node ------------------------------------------------


def _es_query(kql: str) -> dict[str, Any]:
    """The two KQL shapes the saved objects use: ``field: *`` and ``field > n``."""
    if not kql:
        return {"match_all": {}}
    if match := re.fullmatch(r"([\w.]+)\s*:\s*\*", kql):
        return {"exists": {"field": match.group(1)}}
    if match := re.fullmatch(r"([\w.]+)\s*(>=|<=|>|<)\s*(\S+)", kql):
        op = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[match.group(2)]
        return {"range": {match.group(1): {op: match.group(3)}}}
    raise AssertionError(f"teach _es_query the KQL {kql!r}")


def _aggregation(column: dict[str, Any], counts: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The Elasticsearch aggregation behind one Lens column (of a field, not a count).

    ``counts``: the layer's document-count columns. A terms column ordered by one of them
    orders by ``_count``; by another column, by that column's sibling aggregation.
    """
    field = column["sourceField"]
    operation = column["operationType"]
    if operation == "terms":
        order_by = column["params"]["orderBy"]
        order = {"_count": "desc"}
        if order_by.get("type") == "column" and order_by["columnId"] not in counts:
            order = {order_by["columnId"]: column["params"]["orderDirection"]}
        return {"terms": {"field": field, "size": column["params"]["size"], "order": order}}
    if operation == "date_histogram":
        return {"date_histogram": {"field": field, "calendar_interval": "day"}}
    if operation == "last_value":
        sort = column["params"]["sortField"]
        return {"top_hits": {"size": 1, "sort": [{sort: "desc"}], "docvalue_fields": [field]}}
    if operation == "unique_count":
        return {"cardinality": {"field": field}}
    return {operation: {"field": field}}


def _is_part(column: dict[str, Any]) -> bool:
    """A column computed from others (formula, math) rather than aggregated."""
    return "sourceField" not in column


def _with_filter(column: dict[str, Any], aggregation: dict[str, Any]) -> dict[str, Any]:
    if "filter" not in column:
        return aggregation
    return {"filter": _es_query(column["filter"]["query"]), "aggs": {"v": aggregation}}


def _value(column: dict[str, Any], bucket: dict[str, Any], column_id: str) -> Any:
    if column["sourceField"] == _RECORDS:
        return bucket["doc_count"]
    result = bucket[column_id]
    if "filter" in column:
        result = result["v"]
    if "hits" in result:
        hits = result["hits"]["hits"]
        return hits[0]["fields"][column["sourceField"]][0] if hits else None
    return result["value"]


def _math(node: Any, row: dict[str, Any]) -> float | None:
    if isinstance(node, int | float):
        return float(node)
    if isinstance(node, str):
        value = row[node]
        return None if value is None else float(value)
    left, right = (_math(arg, row) for arg in node["args"])
    if left is None or right is None:
        return None
    if node["name"] == "divide":
        return left / right if right else None  # Lens shows no value for x / 0
    assert node["name"] == "multiply", f"teach _math {node['name']}"
    return left * right


def lens_rows(client: Elasticsearch, index: str, lens: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a one-layer Lens object's aggregation as Lens builds it; one dict per row.

    Bucket columns nest in column order, metric columns sit under the innermost bucket,
    a column's KQL filter wraps it in a filter aggregation, and formulas are computed from
    their math parts, as Lens does in the browser. Keys are the column ids.
    """
    state = lens["attributes"]["state"]
    (layer,) = _lens_layers(lens).values()
    columns: dict[str, Any] = layer["columns"]
    order = layer["columnOrder"]
    buckets = [c for c in order if columns[c]["isBucketed"]]
    metrics = [
        c
        for c in order
        if not columns[c]["isBucketed"]
        and not _is_part(columns[c])
        and columns[c]["sourceField"] != _RECORDS
    ]
    counts = frozenset(c for c in order if columns[c].get("sourceField") == _RECORDS)
    inner: dict[str, Any] = {c: _with_filter(columns[c], _aggregation(columns[c])) for c in metrics}
    for c in reversed(buckets):
        inner = {c: {**_aggregation(columns[c], counts), "aggs": inner}}
    filters = [_es_query(state["query"]["query"])]
    response = client.search(index=index, size=0, query={"bool": {"filter": filters}}, aggs=inner)

    rows: list[dict[str, Any]] = []

    def walk(level: int, bucket: dict[str, Any], row: dict[str, Any]) -> None:
        if level < len(buckets):
            column_id = buckets[level]
            for child in bucket[column_id]["buckets"]:
                if child["doc_count"]:
                    walk(
                        level + 1,
                        child,
                        {**row, column_id: child.get("key_as_string", child["key"])},
                    )
            return
        row = {**row, **{c: _value(columns[c], bucket, c) for c in [*metrics, *counts]}}
        for c in order:  # the parts come after their formula in column order
            if columns[c]["operationType"] == "math":
                row[c] = _math(columns[c]["params"]["tinymathAst"], row)
        for c in order:
            if columns[c]["operationType"] == "formula":
                (part,) = columns[c]["references"]
                row[c] = row[part]
        rows.append(row)

    walk(0, {**response["aggregations"], "doc_count": response["hits"]["total"]["value"]}, {})
    return rows


@dataclass
class _Node:
    """The test's store on the real node (the test's own indices)."""

    settings: ElasticsearchSettings
    client: Elasticsearch
    store: ElasticsearchStore


@pytest.fixture
def node(stack_env: str) -> Iterator[_Node]:
    settings = Settings().elasticsearch
    client = Elasticsearch(settings.url)  # the test's own queries; the store closes it
    store = ElasticsearchStore(settings, client)
    store.ensure()
    try:
        yield _Node(settings, client, store)
    finally:  # the stack is shared: leave no test indices behind
        names = [f"{settings.index}-000001", f"{settings.history_index}-000001"]
        client.indices.delete(index=[*names, settings.feeds_index], ignore_unavailable=True)
        client.indices.delete_index_template(name=f"{settings.index}-template")
        store.close()


@pytest.mark.integration
def test_the_saved_objects_fields_aggregate_on_the_real_node(
    node: _Node, sample_article: Article
) -> None:
    settings, client, store = node.settings, node.client, node.store
    index_of = {ARTICLES_TITLE: settings.index, FEEDS_TITLE: settings.feeds_index}
    titles = {o["id"]: o["attributes"]["title"] for o in _of_type("index-pattern")}
    # As the indexer writes it: story fields assigned first.
    assert store.index_batch(StoryAssigner(store).assign([sample_article])).indexed == 1
    store.put_feed_states(
        [
            FeedState(
                feed_url="https://feeds.example.com/broken.rss",
                name="Broken",
                last_attempt_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
                consecutive_failures=3,
                last_error_class="TransientFetchError",
                last_error_message="503 from feeds.example.com",
                quality=FeedQuality(pages=2, no_author=1),
            ),
            FeedState(feed_url="https://feeds.example.com/fine.rss", name="Fine"),
        ]
    )
    store.refresh()
    for lens in _of_type("lens"):
        state = lens["attributes"]["state"]
        for layer_id, layer in _lens_layers(lens).items():
            ref = _references(lens)[f"indexpattern-datasource-layer-{layer_id}"]
            index = index_of[titles[ref["id"]]]
            for column_id, column in layer["columns"].items():
                if _is_part(column) or column["sourceField"] == _RECORDS:
                    continue
                filters = [_es_query(state["query"]["query"])]
                if "filter" in column:
                    filters.append(_es_query(column["filter"]["query"]))
                aggregation = _aggregation(column)
                if "terms" in aggregation:  # alone, it has no sibling column to order by
                    aggregation["terms"]["order"] = {"_count": "desc"}
                response = client.search(
                    index=index,
                    size=0,
                    query={"bool": {"filter": filters}},
                    aggs={"a": aggregation},
                )
                result = response["aggregations"]["a"]
                where = f"{lens['id']}/{column_id}"
                if "buckets" in result:
                    assert [b for b in result["buckets"] if b["doc_count"]], where
                elif "hits" in result:
                    (hit,) = result["hits"]["hits"]
                    assert hit["fields"][column["sourceField"]], where
                else:
                    assert result["value"] is not None, where
    by_source = client.search(
        index=settings.index, size=0, aggs={"s": {"terms": {"field": "source"}}}
    )
    assert [b["key"] for b in by_source["aggregations"]["s"]["buckets"]] == ["Example News"]
    failing = client.search(index=settings.feeds_index, query=_es_query("consecutive_failures > 0"))
    assert [h["_source"]["name"] for h in failing["hits"]["hits"]] == ["Broken"]

    (search,) = _of_type("search")
    response = client.search(
        index=settings.index,
        sort=[{field: order} for field, order in search["attributes"]["sort"]],
        source_includes=search["attributes"]["columns"],
    )
    (hit,) = response["hits"]["hits"]
    assert set(hit["_source"]) == set(search["attributes"]["columns"])


_WIRE_WORDS = (
    "council harbor budget storm minister river police court school vote bridge market "
    "hospital strike ferry election museum airport rail energy water farm port festival"
).split()


def _paragraphs(seed: int, count: int = 6) -> list[str]:
    words = _WIRE_WORDS
    return [
        " ".join(
            f"{words[(seed * 7 + p * 13 + w * w) % len(words)]}{(seed + p * w) % 37}"
            for w in range(40)
        )
        for p in range(count)
    ]


def _story_article(url: str, title: str, paragraphs: list[str], published: datetime) -> Article:
    text = "\n".join(paragraphs)
    domain = urlsplit(url).hostname or ""
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(published),
        url=url,
        source_url=url,
        title=title,
        text=text,
        published_at=published,
        fetched_at=published,
        domain=domain,
        feed_url=f"https://{domain}/feed.xml",
        content_hash=content_hash(text),
        fingerprint=fingerprint(text),
    )


@pytest.mark.integration
def test_the_story_panels_compute_on_the_real_node(node: _Node) -> None:
    # Three copies of one story on two sites (two of them on day one) and one other story
    # on day two, clustered by the indexer's own assignment.
    day_one, day_two = datetime(2024, 5, 1, 9, tzinfo=UTC), datetime(2024, 5, 2, 9, tzinfo=UTC)
    story, other = _paragraphs(1), _paragraphs(2)
    wire = _story_article("https://wire.example/harbor", "Harbor deal signed", story, day_one)
    articles = [
        wire,
        _story_article(
            "https://partner.example/a/harbor",
            "Harbor deal is signed",
            story[:5],
            day_one.replace(hour=15),
        ),
        _story_article(
            "https://partner.example/b/harbor",
            "Harbor deal: what it means",
            [story[1], story[0], *story[2:], "Read more from our partner."],
            day_two,
        ),
        _story_article("https://other.example/rail", "Rail strike ends", other, day_two),
    ]
    store = node.store
    assert store.index_batch(StoryAssigner(store).assign(articles)).indexed == 4
    store.refresh()
    index = node.settings.index

    unique = lens_rows(node.client, index, BY_ID[("lens", "newsflow-unique-stories")])
    assert [(r["published-at"][:10], r["stories"], r["count"]) for r in unique] == [
        ("2024-05-01", 1, 2),
        ("2024-05-02", 2, 2),
    ]

    largest = lens_rows(node.client, index, BY_ID[("lens", "newsflow-largest-stories")])
    assert [(r["story"], r["copies"], r["sites"]) for r in largest] == [
        (wire.doc_id, 3, 2),
        (doc_id("https://other.example/rail"), 1, 1),
    ]
    top = largest[0]
    assert top["headline"] == "Harbor deal: what it means"  # the newest copy's
    assert datetime.fromisoformat(top["started"]) == day_one  # the wire's publication
    assert largest[1]["headline"] == "Rail strike ends"


@pytest.mark.integration
def test_the_quality_panel_computes_shares_on_the_real_node(node: _Node) -> None:
    polled = datetime(2024, 5, 1, 12, tzinfo=UTC)

    def feed(url: str, name: str, **counts: int) -> FeedState:
        # As the poll records it: its counts added to the stored state.
        state = FeedState(feed_url=url, name=name, last_attempt_at=polled)
        return add_quality(state, Counter(counts), {"news.example": Counter(counts)})

    node.store.put_feed_states(
        [
            feed(
                "https://a.example/feed",
                "A",
                pages=10,
                no_date=2,
                no_author=5,
                short_text=1,
                teaser=3,
                timeout=1,
            ),
            feed("https://b.example/feed", "B", pages=4, no_date=4),
            feed("https://c.example/feed", "C"),  # never extracted: no 0 / 0 row
        ]
    )
    node.store.refresh()
    rows = lens_rows(
        node.client, node.settings.feeds_index, BY_ID[("lens", "newsflow-extraction-quality")]
    )
    flaws = ["no-date", "no-author", "short-text", "teaser", "timeout"]
    assert [(r["feed-url"], r["name"], r["pages"], [r[f] for f in flaws]) for r in rows] == [
        ("https://a.example/feed", "A", 10, [0.2, 0.5, 0.1, 0.3, 0.1]),
        ("https://b.example/feed", "B", 4, [1.0, 0.0, 0.0, 0.0, 0.0]),
    ]


# -- the import client (client-side request formatting, not a Kibana) ---------------


@dataclass(frozen=True)
class Recorded:
    """One POST as the recording server received it."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class _Recorder(ThreadingHTTPServer):
    status = 200
    answer: Any = None
    requests: list[Recorded]


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        self.server.requests.append(
            Recorded(
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
        )
        payload = json.dumps(self.server.answer).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.answer = {"success": True, "successCount": len(OBJECTS), "warnings": []}
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Recorder) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def test_import_client_request_formatting(recorder: _Recorder) -> None:
    secret = SecretStr("pw")
    result = import_saved_objects(_url(recorder) + "/", NDJSON, username="elastic", password=secret)
    assert result.ok and result.imported == len(OBJECTS)
    (request,) = recorder.requests
    assert request.path == "/api/saved_objects/_import"
    assert request.query == {"overwrite": ["true"]}
    assert request.headers["kbn-xsrf"] == "true"
    assert request.headers["authorization"] == "Basic ZWxhc3RpYzpwdw=="
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body
    )
    (part,) = message.iter_parts()
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "newsflow.ndjson"
    assert part.get_content_type() == "application/ndjson"
    assert part.get_payload(decode=True) == NDJSON.read_bytes()


def test_import_client_sends_the_packaged_file_by_default(recorder: _Recorder) -> None:
    assert import_saved_objects(_url(recorder)).imported == len(OBJECTS)
    (request,) = recorder.requests
    assert b'filename="newsflow.ndjson"' in request.body
    assert NDJSON.read_bytes() in request.body


def test_import_client_request_formatting_with_space_and_api_key(recorder: _Recorder) -> None:
    import_saved_objects(_url(recorder), NDJSON, overwrite=False, space="analysts", api_key="k")
    (request,) = recorder.requests
    assert request.path == "/s/analysts/api/saved_objects/_import"
    assert request.query == {"overwrite": ["false"]}
    assert request.headers["authorization"] == "ApiKey k"


def test_import_client_reports_objects_kibana_refused(recorder: _Recorder) -> None:
    recorder.answer = {
        "success": False,
        "successCount": 7,
        "errors": [
            {
                "id": "newsflow-overview",
                "type": "dashboard",
                "meta": {"title": "newsflow overview"},
                "error": {
                    "type": "missing_references",
                    "references": [{"type": "lens", "id": "gone"}],
                },
            }
        ],
    }
    result = import_saved_objects(_url(recorder), NDJSON)
    assert not result.ok
    assert result.failures == (
        ImportFailure(
            type="dashboard",
            id="newsflow-overview",
            title="newsflow overview",
            reason="missing_references: lens/gone",
        ),
    )


@pytest.mark.parametrize(
    ("status", "answer", "error"),
    [
        (503, {"message": "Kibana server is not ready yet"}, BackendUnavailable),
        (401, {"message": "Unauthorized"}, ConfigError),
        (404, {"message": "Not Found"}, ConfigError),
        (415, {"message": "Unsupported file extension"}, ConfigError),
        (200, {"hello": "not kibana"}, ConfigError),
    ],
)
def test_import_client_translates_http_errors(
    recorder: _Recorder, status: int, answer: dict[str, str], error: type[Exception]
) -> None:
    recorder.status, recorder.answer = status, answer
    with pytest.raises(error):
        import_saved_objects(_url(recorder), NDJSON)


def test_import_client_translates_an_unreachable_kibana(recorder: _Recorder) -> None:
    url = _url(recorder)
    recorder.shutdown()
    recorder.server_close()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        import_saved_objects(url, NDJSON, timeout=5)


def test_import_client_refuses_a_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not readable"):
        import_saved_objects("http://127.0.0.1:9", tmp_path / "nope.ndjson")
    with pytest.raises(ConfigError, match="http"):
        import_saved_objects("localhost:5601", NDJSON)
    with pytest.raises(ConfigError, match="space"):
        import_saved_objects("http://127.0.0.1:9", NDJSON, space="../x")
