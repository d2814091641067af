"""The OpenAPI document at /api/v1/openapi.json: every API route with exactly its methods, valid
OpenAPI 3, its schemas the validators' own rules, and served publicly. (tests/test_fuzz.py checks
the live API against it.)"""

from __future__ import annotations

import copy
import re

import jsonschema_rs
import pytest
import schemathesis
from django.test import Client
from django.urls import resolve
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from secrets_app import openapi
from secrets_app.urls import api_patterns
from secrets_app.validators import validate_secret_key, validate_tag_name, validate_workflow_name

pytestmark = pytest.mark.django_db

# A value each path parameter's route converter accepts, to resolve the documented paths.
SAMPLE_PATH_VALUES = {
    "slug": "team",
    "key": "API_KEY",
    "tag": "env:prod",
    "grant_id": "user-1",
    "name": "nightly",
    "execution_id": "7b7c54a4-2c1e-4a41-9d5e-0e6b8c3f1a22",
    "session_id": "0d9a3c57-8e55-4a8f-b3a8-3f7c2f0b9d11",
}


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.document()


def test_every_api_route_is_documented_with_exactly_the_methods_its_view_allows(document):
    for pattern in api_patterns:
        documented = set(document["paths"].get(openapi.openapi_path(pattern), {}))
        allowed = {method.lower() for method in pattern.callback.allowed_methods}
        assert documented == allowed, pattern.name


def test_every_documented_path_is_the_api_route_it_names(document):
    routes = {pattern.name for pattern in api_patterns}
    for path, operations in document["paths"].items():
        concrete = re.sub(r"{(\w+)}", lambda match: SAMPLE_PATH_VALUES[match.group(1)], path)
        match = resolve(concrete)
        assert match.url_name in routes, path
        assert openapi.openapi_path(next(p for p in api_patterns if p.name == match.url_name)) == path
        for operation in operations.values():
            assert operation["operationId"].endswith(match.url_name.removeprefix("api-"))


def test_the_document_is_valid_openapi_3(document):
    OPENAPI_30_VALIDATOR.validate(document)


def test_the_validator_catches_a_broken_document(document):
    broken = copy.deepcopy(document)
    broken["components"]["schemas"]["Secret"]["properties"]["key"]["type"] = "text"
    with pytest.raises(jsonschema_rs.ValidationError):
        OPENAPI_30_VALIDATOR.validate(broken)


def test_every_reference_resolves_and_every_operation_loads(document):
    loaded = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert all(isinstance(result, Ok) for result in loaded)
    assert len(loaded) == sum(len(operations) for operations in document["paths"].values())


@pytest.mark.parametrize(
    ("schema_name", "validate", "samples"),
    [
        ("SECRET_KEY", validate_secret_key, ["API_KEY", "_x.y-z", "a" * 128, "a" * 129, "1KEY", "a b", "KEY\n", ""]),
        ("TAG", validate_tag_name, ["env", "team:ops", "a:b@c.d", "x" * 65, ":v", "a:", "a:b:c", "env\n", ""]),
        ("WORKFLOW_NAME", validate_workflow_name, ["nightly", "9-to-5", "a" * 100, "a" * 101, "_x", "a/b", ""]),
    ],
)
def test_name_schemas_accept_exactly_what_the_validators_accept(schema_name, validate, samples):
    schema = jsonschema_rs.Draft4Validator(getattr(openapi, schema_name))
    for sample in samples:
        try:
            validate(sample)
            valid = True
        except Exception:
            valid = False
        assert schema.is_valid(sample) == valid, sample


def test_error_codes_include_every_domain_error_under_its_status():
    codes = openapi.error_codes_by_status()
    assert "secret_not_found" in codes[404] and "workspace_mismatch" in codes[403]
    assert "execution_expired" in codes[401] and "secret_exists" in codes[409]
    assert "secret_immutable" in codes[405] and "undecryptable" in codes[500]


def test_the_document_is_served_to_anyone_and_may_be_cached(document):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json() == document
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert directives == {"public", "max-age=3600"}


def test_every_other_api_answer_is_still_never_stored():
    response = Client().get("/api/v1/session/")
    assert "no-store" in response["Cache-Control"] and "public" not in response["Cache-Control"]


def test_the_document_refuses_other_methods_with_a_json_error():
    response = Client().post("/api/v1/openapi.json")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
