"""The OpenAPI document matches the routes, and the API keeps to it under fuzzing (T24).

schemathesis calls the WSGI app in-process for every documented operation: positive and negative examples, at
least 100 per operation, checking for 5xx, status codes, content types, headers and response schemas.
"""

from __future__ import annotations

import os
import re
from typing import Any

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode, checks

from search_app.openapi import build_openapi

# At least 100 per operation in CI; the nightly run sets LIBRARY_FUZZ_EXAMPLES=1000 (RELIABILITY T24).
EXAMPLES_PER_OPERATION = int(os.environ.get("LIBRARY_FUZZ_EXAMPLES") or 100)


def openapi_document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json; charset=utf-8"
    return response.get_json()


def rule_as_openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_every_documented_path_exists(
    app: Flask, client: FlaskClient
) -> None:
    document = openapi_document(client)
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            methods = {method.lower() for method in rule.methods or ()} - {"head", "options"}
            routes.setdefault(rule_as_openapi_path(rule.rule), set()).update(methods)
    documented = {path: set(operations) for path, operations in document["paths"].items()}
    assert documented == routes


def test_documented_path_parameters_are_the_rule_arguments(app: Flask, client: FlaskClient) -> None:
    document = openapi_document(client)
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in {method.lower() for method in rule.methods or ()} - {"head", "options"}:
                operation = document["paths"][rule_as_openapi_path(rule.rule)][method]
                in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert in_path == set(rule.arguments), (method, rule.rule)


def test_the_document_is_openapi_3_1_with_japanese_text(client: FlaskClient) -> None:
    document = openapi_document(client)
    assert document["openapi"] == "3.1.0"
    assert "社会ライブラリ" in document["info"]["title"]
    search = document["paths"]["/api/v1/search"]["get"]
    parameters = {p["name"]: p["schema"] for p in search["parameters"]}
    assert set(parameters) == {
        "q", "kind", "category", "organization", "region", "provenance", "year", "from", "to", "sort", "page", "size",
    }  # fmt: skip
    assert parameters["q"]["maxLength"] == 1000
    # Form fields may come empty (meaning "not given"): the typed schema is the first alternative.
    given = {name: schema["anyOf"][0] for name, schema in parameters.items() if "anyOf" in schema}
    assert set(given) == {"from", "to", "sort", "page", "size"}
    assert given["sort"]["enum"] == ["relevance", "newest", "event"]
    assert (given["page"]["minimum"], given["page"]["maximum"]) == (1, 1000)
    assert (given["size"]["minimum"], given["size"]["maximum"]) == (1, 100)
    for path in document["paths"].values():
        for operation in path.values():
            problem = operation["responses"]["default"]["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


def validator_for(document: dict[str, Any], component: str) -> Draft202012Validator:
    """A validator for one component, with the whole document around it so its $refs resolve."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{component}", "components": document["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def test_known_responses_match_their_schemas(client: FlaskClient) -> None:
    """Responses that random inputs rarely reach: pinned notices, every kind of record, OpenSearch suggestions."""
    document = openapi_document(client)
    results = client.get("/api/v1/search?kind=notice").get_json()
    assert results["pinned"]
    validator_for(document, "SearchResults").validate(results)
    for hit in client.get("/api/v1/search?size=100").get_json()["hits"]:
        validator_for(document, "PublicRecord").validate(
            client.get(f"/api/v1/records/{hit['id']}").get_json()
        )
    suggestions = client.get("/api/v1/suggest?q=図&fmt=opensearch").get_json(force=True)
    validator_for(document, "OpenSearchSuggestions").validate(suggestions)
    validator_for(document, "Problem").validate(client.get("/api/v1/records/nothing").get_json(force=True))


# Loaded from the builder rather than with from_wsgi in a fixture: schemathesis 4.32's fixture-based loader
# (schemathesis.pytest.from_fixture) sets Node._nodeid, which pytest 9 no longer has. The served document is the
# builder's output (test_the_served_document_is_the_built_one); cases are sent to each test's own app.
fuzzed = schemathesis.openapi.from_dict(build_openapi())
fuzzed.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES_PER_OPERATION
)


def test_the_served_document_is_the_built_one(client: FlaskClient) -> None:
    assert openapi_document(client) == build_openapi()


@fuzzed.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # One app (and data directory) serves all the examples of an operation; nothing they do changes the data.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_keeps_to_its_document(case: Any, app: Flask) -> None:
    # Rules across parameters (from <= to) cannot be written in the document, so schema-valid requests may still
    # be a 400; every other check, negative-data rejection included, runs.
    case.call_and_validate(app=app, excluded_checks=[checks.positive_data_acceptance])
