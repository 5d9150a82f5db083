"""deploy/kibana/newsflow.ndjson (and its copy in the package), checked without Kibana.

Kibana cannot run here: it is published neither on Maven Central nor on PyPI, and there
is no Docker engine. So the saved objects are checked structurally (references resolve,
Lens layers are consistent, every field they use exists in the Elasticsearch mappings
with a type that supports the use), their aggregations run on the real Elasticsearch node
(integration), and the import client's request is checked against a recording HTTP
server on 127.0.0.1 (a client-side unit test of request formatting, not a Kibana).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
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
from newsflow.kibana import SAVED_OBJECTS_FILE, ImportFailure, import_saved_objects
from newsflow.settings import DEFAULT_INDEX_PREFIX, Settings, index_name
from schemas import Article, FeedState

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


def _flatten(mapping: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``field`` and ``field.subfield`` -> their mapping."""
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in mapping["properties"].items():
        fields[name] = spec
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{name}.{sub}"] = sub_spec
    return fields


MAPPINGS = {ARTICLES_TITLE: _flatten(ARTICLE_MAPPING), FEEDS_TITLE: _flatten(FEED_MAPPING)}


@dataclass(frozen=True)
class Use:
    """One field used by one saved object, and for what."""

    where: str
    index: str
    field: str
    purpose: str  # time, terms, date_histogram, metric, last_value, sort, column, query


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
    if purpose in ("last_value", "sort") and not _aggregatable(spec):
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
                    operation, field = column["operationType"], column["sourceField"]
                    if field == _RECORDS:
                        continue
                    purpose = {"terms": "terms", "date_histogram": "date_histogram"}.get(
                        operation, "last_value" if operation == "last_value" else "metric"
                    )
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
    } <= used


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


def _aggregation(column: dict[str, Any]) -> dict[str, Any]:
    field = column["sourceField"]
    operation = column["operationType"]
    if operation == "terms":
        return {"terms": {"field": field, "size": column["params"]["size"]}}
    if operation == "date_histogram":
        return {"date_histogram": {"field": field, "calendar_interval": "day"}}
    if operation == "last_value":
        sort = column["params"]["sortField"]
        return {"top_hits": {"size": 1, "sort": [{sort: "desc"}], "docvalue_fields": [field]}}
    return {operation: {"field": field}}


@pytest.mark.integration
def test_the_saved_objects_fields_aggregate_on_the_real_node(
    stack_env: str, sample_article: Article
) -> None:
    settings = Settings().elasticsearch
    index_of = {ARTICLES_TITLE: settings.index, FEEDS_TITLE: settings.feeds_index}
    titles = {o["id"]: o["attributes"]["title"] for o in _of_type("index-pattern")}
    client = Elasticsearch(settings.url)  # the test's own queries; the store closes it
    store = ElasticsearchStore(settings, client)
    try:
        store.ensure()
        assert store.index_batch([sample_article]).indexed == 1
        store.put_feed_states(
            [
                FeedState(
                    feed_url="https://feeds.example.com/broken.rss",
                    name="Broken",
                    last_attempt_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
                    consecutive_failures=3,
                    last_error_class="TransientFetchError",
                    last_error_message="503 from feeds.example.com",
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
                    if column["sourceField"] == _RECORDS:
                        continue
                    filters = [_es_query(state["query"]["query"])]
                    if "filter" in column:
                        filters.append(_es_query(column["filter"]["query"]))
                    response = client.search(
                        index=index,
                        size=0,
                        query={"bool": {"filter": filters}},
                        aggs={"a": _aggregation(column)},
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
        failing = client.search(
            index=settings.feeds_index, query=_es_query("consecutive_failures > 0")
        )
        assert [h["_source"]["name"] for h in failing["hits"]["hits"]] == ["Broken"]

        (search,) = _of_type("search")
        response = client.search(
            index=settings.index,
            sort=[{field: order} for field, order in search["attributes"]["sort"]],
            source_includes=search["attributes"]["columns"],
        )
        (hit,) = response["hits"]["hits"]
        assert set(hit["_source"]) == set(search["attributes"]["columns"])
    finally:  # the stack is shared: leave no test indices behind
        names = [f"{settings.index}-000001", f"{settings.history_index}-000001"]
        client.indices.delete(index=[*names, settings.feeds_index], ignore_unavailable=True)
        client.indices.delete_index_template(name=f"{settings.index}-template")
        store.close()


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
