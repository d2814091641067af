"""A property: whatever JSON (or not-quite JSON) any endpoint that takes a body is sent, the answer
is a success or an error the OpenAPI document lists for that operation, with one of the codes it
lists for that status; never a 500, and never a seeded value outside the runner reads.

Hypothesis writes the bodies: every JSON type, integers of any length (beyond Python's 4,300-digit
limit too), NaN and Infinity, lone surrogates and NUL in keys and strings, repeated member names,
documents deeper than the 64 levels allowed and wide ones; and each endpoint's valid body with one
field replaced by any of those. `HOSTILE_JSON_EXAMPLES` sets how many per endpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secrets_app.api.v1 import document
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import PASSWORD, JsonClient

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("HOSTILE_JSON_EXAMPLES", "40"))
SEEDED_VALUE = "hostile-json-seeded-Qv3"
PATH_VALUES = {"slug": "team", "key": "API_KEY", "tag": "env", "name": "nightly", "approval_id": "1"}
VALID = {
    "sign_in": {"username": "alice", "password": PASSWORD},
    "reauthenticate": {"password": PASSWORD},
    "create_workspace": {"slug": "new-space", "name": "New"},
    "change_workspace": {"expired_secret_grace_days": 1},
    "add_secret": {"key": "NEW_KEY", "value": "v", "tags": ["env"], "expires_at": "2099-01-01"},
    "import_secrets": {"dotenv": "IMPORTED=1\n", "tags": [], "dry_run": True},
    "add_tags": {"tags": ["env"]},
    "change_tag": {"protected": False},
    "look_up_value": {"value": "v"},
    "grant": {"user": "bob", "permissions": ["view"]},
    "add_workflow": {"name": "another", "definition": {"t": "${workflow.secrets.API_KEY}"}},
    "launch": {"workflow": "team/nightly"},
    "resolve": {"t": "${workflow.secrets.API_KEY}"},
}


class Raw:
    """A piece of JSON text written as is: what Python's json module cannot (or will not) write."""

    def __init__(self, text: str) -> None:
        self.text = text


def to_text(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_text(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value)


text = st.text(st.characters(categories=["L", "N", "P", "S", "Z", "Cc", "Cs"], include_characters="\x00"), max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.sampled_from(
        [
            Raw("1" * 4301),
            Raw("-" + "9" * 5000),
            Raw("1e400"),
            Raw("-1e99999"),
            Raw('{"a": 1, "a": 2}'),
            Raw("[" * 70 + "]" * 70),
            Raw('"\\ud800"'),
            Raw('"\\u0000"'),
        ]
    ),
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(text, inner, max_size=6), max_leaves=25
)
wide = st.builds(lambda n: {f"k{i}": i for i in range(n)}, st.integers(min_value=100, max_value=3000))


def bodies(operation_id: str) -> st.SearchStrategy[str]:
    valid = VALID[operation_id]
    replaced = st.sampled_from(sorted(valid)).flatmap(
        lambda field: (documents | wide).map(lambda value: {**valid, field: value})
    )
    return st.one_of(documents, wide, replaced, st.just(valid)).map(to_text)


OPERATIONS = [
    (path, method, operation)
    for path, methods in document()["paths"].items()
    for method, operation in methods.items()
    if "requestBody" in operation
]


def documented(operation: dict[str, Any]) -> dict[int, set[str] | None]:
    """Each status the operation lists, with the error codes it lists for it (None: a success)."""
    schemas = document()["components"]["schemas"]
    answers: dict[int, set[str] | None] = {}
    for status, response in operation["responses"].items():
        ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if name.startswith("Error"):
            code = schemas[f"{name}Detail"]["properties"]["code"]
            answers[int(status)] = set(code.get("enum", [code.get("const")]))
        else:
            answers[int(status)] = None
    return answers


@pytest.fixture
def seeded(alice, bob, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value=SEEDED_VALUE, tags=["env"])
    grant_tag_permissions(actor=alice, workspace=team, tag_name="env", permission_names=["view"], username="bob")
    register_workflow(actor=alice, workspace=team, name="nightly", definition={"t": "${workflow.secrets.API_KEY}"})
    return team


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=[o["operationId"] for _, _, o in OPERATIONS])
def test_any_json_body_gets_a_documented_answer(seeded, settings, path, method, operation):
    settings.AXES_FAILURE_LIMIT = 1_000_000
    settings.VALUE_LOOKUP_RATE = "1000000/h"
    client = JsonClient()
    client.login("alice")
    concrete = re.sub(r"{(\w+)}", lambda match: PATH_VALUES[match.group(1)], path)
    answers = documented(operation)

    @settings_for_examples
    @given(body=bodies(operation["operationId"]))
    def sends(body: str) -> None:
        response = client.send(method.upper(), concrete, raw=body.encode("utf-8", "surrogatepass"))
        assert response.status_code in answers, (response.status_code, response.content[:300], body[:300])
        if answers[response.status_code] is not None:
            assert response.json()["error"]["code"] in answers[response.status_code], response.content[:300]
        if operation["operationId"] != "resolve" or response.status_code != 200:
            assert SEEDED_VALUE not in response.content.decode()
        if operation["operationId"] == "sign_in" and response.status_code == 200:
            client.login("alice")  # signing in again rotated the CSRF token

    sends()


settings_for_examples = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    derandomize=True,
)
