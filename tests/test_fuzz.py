"""Schemathesis fuzzes the live API (pytest-django's live_server) against its own OpenAPI document.

Every operation, as a signed-in user; the runner operations again with a runner session. Each
answer must not be a server error, must have a status and a body the document gives for that
operation, and must not hold any seeded value, but for a successful runner read.

Deterministic (fixed seed). `FUZZ_EXAMPLES=500` fuzzes deeper locally.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from django.core.servers import basehttp
from django.db import connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from secrets_app.api.v1 import document
from secrets_app.models import Execution, SecretTag, TagUserObjectPermission, UserSession, Workflow, Workspace
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import launch_execution, register_workflow
from secrets_app.services.secrets import create_secret, tag_secret
from secrets_app.services.workspaces import create_team_workspace
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

TEAM, TAG, WORKFLOW = "fuzz-team", "team:ops", "nightly"
# Distinctive values: none may appear in any answer but a successful runner read.
TEAM_VALUES = {"API_KEY": "seeded-team-api-key-Qz81", "PEM": "seeded-team-pem-Wv27"}
PERSONAL_VALUES = {"API_KEY": "seeded-personal-api-key-Jx44"}
SEEDED_VALUES = [*TEAM_VALUES.values(), *PERSONAL_VALUES.values()]
# The security schemes of the operations a runner session may call.
RUNNER_SESSION_SCHEMES = {"RunnerSessionAuth", "RunnerReaderAuth"}
RUNNER_READS = {("GET", "/api/v1/runner/secrets/{key}/"), ("POST", "/api/v1/runner/resolve/")}
SIGN_OUT = ("DELETE", "/api/v1/session/")


@dataclass
class Seeded:
    """The data the fuzzer aims at, put back whenever a request changed it (the fuzzer deletes,
    finishes and signs out), and the two signed-in HTTP sessions."""

    base_url: str
    alice: Any
    user_http: requests.Session = field(default_factory=requests.Session)
    runner_http: requests.Session = field(default_factory=requests.Session)
    user_csrf: str = ""
    runner_csrf: str = ""
    execution_id: str = ""
    runner_session_id: str = ""
    grant_id: str = ""

    def restore(self) -> None:
        team = Workspace.objects.get(slug=TEAM)
        personal = Workspace.objects.get(personal_owner=self.alice)
        for workspace, values in ((team, TEAM_VALUES), (personal, PERSONAL_VALUES)):
            present = set(workspace.secrets.values_list("key", flat=True))
            for key, value in values.items():
                if key not in present:
                    create_secret(actor=self.alice, workspace=workspace, key=key, value=value)
        api_key = team.secrets.get(key="API_KEY")
        if not SecretTag.objects.filter(secret=api_key, tag__name=TAG).exists():
            tag_secret(actor=self.alice, secret=api_key, tag_names=[TAG])
        grant = TagUserObjectPermission.objects.filter(content_object__workspace=team).first()
        if grant is None:
            grant_tag_permissions(
                actor=self.alice, workspace=team, tag_name=TAG, permission_names=["use"], username="bob"
            )
            grant = TagUserObjectPermission.objects.get(content_object__workspace=team)
        self.grant_id = f"user-{grant.pk}"
        workflow = Workflow.objects.filter(workspace=team, name=WORKFLOW).first() or register_workflow(
            actor=self.alice, workspace=team, name=WORKFLOW, definition={"token": "${workflow.secrets.API_KEY}"}
        )
        if not Execution.objects.filter(pk=self.execution_id or None, status=Execution.Status.RUNNING).exists():
            workflow.workspace = team
            execution, runner_session = launch_execution(actor=self.alice, workspace=team, workflow=workflow)
            self.execution_id = str(execution.id)
            self.runner_session_id = str(UserSession.objects.get(execution_id=execution.id).pk)
            self.runner_http = requests.Session()
            self.runner_http.cookies.set("sessionid", runner_session)
            self.runner_csrf = self.runner_http.get(f"{self.base_url}/api/v1/session/").json()["csrf_token"]
        if not self.user_csrf:
            self.sign_in()

    def sign_in(self) -> None:
        self.user_http = requests.Session()
        token = self.user_http.get(f"{self.base_url}/api/v1/session/").json()["csrf_token"]
        answer = self.user_http.post(
            f"{self.base_url}/api/v1/session/",
            json={"username": "alice", "password": PASSWORD},
            headers={"X-CSRFToken": token},
        )
        assert answer.status_code == 200, answer.text
        self.user_csrf = answer.json()["csrf_token"]

    def aimed_path_parameters(self, path: str) -> dict[str, str]:
        """A value naming seeded data for each parameter of this path."""
        seeded = {
            "slug": TEAM,
            "key": "API_KEY",
            "tag": TAG,
            "grant_id": self.grant_id,
            "name": WORKFLOW,
            "execution_id": self.execution_id,
            # The run's session: ending it (DELETE) finishes the run, which `restore` relaunches.
            "session_id": self.runner_session_id,
            "approval_id": "1",
        }
        return {name: value for name, value in seeded.items() if f"{{{name}}}" in path}

    def call(self, case: Any, *, as_runner: bool) -> Any:
        http, csrf = (self.runner_http, self.runner_csrf) if as_runner else (self.user_http, self.user_csrf)
        response = case.call_and_validate(
            base_url=self.base_url,
            session=http,
            headers={"X-CSRFToken": csrf},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            additional_checks=[no_seeded_value],
        )
        if (case.method.upper(), case.path) == SIGN_OUT and not as_runner:
            self.user_csrf = ""
        # Only a successful write can change what was seeded.
        if case.method.upper() != "GET" and response.status_code < 300:
            self.restore()
        return response


# Mixed into the generated strings and integers: what databases and parsers trip on. (No "/" or
# "..": the client or Django's router would send those to another route.)
HOSTILE_TEXT = [
    "\x00",
    "API_KEY\x00",
    "team:ops\x00x",
    "\u00b2",  # a digit to str.isdigit(), not to int()
    "\u0661\u0662",  # Arabic-Indic digits
    "user-\u00b2",
    "%00",
    "'; --",
    "\u202e\U0001f600",
    "x" * 300,
]
HOSTILE_INTEGERS = [0, -1, 2**31, 2**63, -(2**63) - 1, 10**30]
AIMED_BODY_FIELDS = {"workflow": f"{TEAM}/{WORKFLOW}", "user": "bob"}
# The Seeded of the running test, for the hooks (which schemathesis calls without fixtures).
CURRENT: list[Seeded] = []

schema = schemathesis.openapi.from_dict(
    document(),
    config=SchemathesisConfig.from_dict(
        {
            "seed": 20261123,
            "dictionaries": {
                "hostile-text": {"values": HOSTILE_TEXT},
                "hostile-integers": {"values": HOSTILE_INTEGERS},
            },
            "generation": {
                "dictionaries": {
                    "string": {"dictionary": "hostile-text", "probability": 0.2},
                    "integer": {"dictionary": "hostile-integers", "probability": 0.2},
                },
                "mode": "all",
                "deterministic": True,
                "database": "none",
                # The real session cookie and CSRF token are sent; the fuzzer makes up the rest.
                "with-security-parameters": False,
            },
            "phases": {"fuzzing": {"generation": {"max-examples": EXAMPLES}}},
        }
    ),
)


@schema.hook("flatmap_path_parameters")
def aim_at_seeded_data(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Most cases name the seeded workspace, secret, tag, grant, workflow or execution, so the
    fuzzer gets past "not found" to what the operation does: all of them, or all but one, which
    keeps its fuzzed value or takes a hostile one."""
    if not path_parameters or not CURRENT:
        return st.just(path_parameters)
    aimed = CURRENT[-1].aimed_path_parameters(context.operation.path)

    def all_but(name: str) -> st.SearchStrategy:
        return st.sampled_from([path_parameters[name], *HOSTILE_TEXT]).map(lambda value: {**aimed, name: value})

    return st.one_of(st.just(path_parameters), st.just(aimed), st.sampled_from(list(aimed)).flatmap(all_but))


@schema.hook("flatmap_body")
def body_half_aimed_at_seeded_data(context: Any, body: Any) -> Any:
    if not isinstance(body, dict) or not AIMED_BODY_FIELDS.keys() & body.keys():
        return st.just(body)
    return st.sampled_from([body, {**body, **{k: v for k, v in AIMED_BODY_FIELDS.items() if k in body}}])


def no_seeded_value(ctx: Any, response: Any, case: Any) -> None:
    """No seeded value in any answer, but a successful runner read."""
    if response.status_code == 200 and (case.method.upper(), case.path) in RUNNER_READS:
        return
    answer = response.content.decode("utf-8", "replace") + repr(response.headers)
    leaked = [value for value in SEEDED_VALUES if value in answer]
    if leaked:
        raise Failure(operation=case.operation.label, title="A seeded value in the answer", message=repr(leaked))


@pytest.fixture
def answers_without_delay(monkeypatch) -> None:
    """Some 2000 requests in well under a minute. Django's test server writes an answer's headers
    and body as separate packets: without TCP_NODELAY each answer waits some 40 ms for the client's
    delayed ACK. And its thread would open a new database connection for every request."""
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 60)
    accept = basehttp.ThreadedWSGIServer.get_request

    def get_request(server: Any) -> Any:
        connection, address = accept(server)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    monkeypatch.setattr(basehttp.ThreadedWSGIServer, "get_request", get_request)


@pytest.fixture
def seeded(answers_without_delay, live_server, settings, make_user) -> Seeded:
    # The live server speaks plain HTTP: cookies must not be HTTPS-only.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # Fuzzed sign-ins fail by the hundred from one address; the lockout has tests of its own
    # (tests/test_login_protection.py) and must not lock the fuzzer's own sign-in out.
    settings.AXES_FAILURE_LIMIT = 1_000_000
    # Likewise for the value lookup's limit (tests/test_fingerprints.py).
    settings.VALUE_LOOKUP_RATE = "1000000/h"
    alice = make_user("alice")
    make_user("bob")
    create_team_workspace(actor=alice, name="Fuzz team", slug=TEAM)
    seeded = Seeded(base_url=live_server.url, alice=alice)
    seeded.restore()
    CURRENT.append(seeded)
    yield seeded
    CURRENT.remove(seeded)


def _runner_operation_ids() -> list[str]:
    return [
        operation["operationId"]
        for operations in document()["paths"].values()
        for operation in operations.values()
        if any(RUNNER_SESSION_SCHEMES & requirement.keys() for requirement in operation.get("security", []))
    ]


# The fixture is made once per operation; examples of one operation share it on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@schema.parametrize()
def test_every_operation_as_a_signed_in_user(case: Any, seeded: Seeded) -> None:
    seeded.call(case, as_runner=False)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@schema.include(operation_id=_runner_operation_ids()).parametrize()
def test_runner_operations_with_a_runner_session(case: Any, seeded: Seeded) -> None:
    seeded.call(case, as_runner=True)


# A valid body for each operation that takes one: the hostile sweep puts a hostile value in each
# of its strings in turn. (An operation with a body and no entry here fails the sweep.)
VALID_BODIES: dict[str, Any] = {
    "sign_in": {"username": "alice", "password": PASSWORD},
    "reauthenticate": {"password": PASSWORD},
    "create_workspace": {"slug": "swept", "name": "Swept"},
    "add_secret": {"key": "SWEPT", "value": "swept-value", "tags": ["env:swept"], "expires_at": "2099-01-01"},
    "add_tags": {"tags": ["env:swept"]},
    "change_tag": {"protected": False},
    "grant": {"user": "bob", "permissions": ["view"]},
    "add_workflow": {"name": "swept", "definition": {"step": {"token": "${workflow.secrets.API_KEY}"}}},
    "launch": {"workflow": f"{TEAM}/{WORKFLOW}"},
    "resolve": {"token": "${workflow.secrets.API_KEY}", "list": ["text"]},
    "import_secrets": {"dotenv": "SWEPT_IMPORT=swept-value\n", "tags": ["env:swept"], "dry_run": True},
    "look_up_value": {"value": "swept-value"},
    "change_workspace": {"expired_secret_grace_days": 1},
}


def _with_one_string_replaced(document: Any, value: str, *, top: bool = True) -> list[Any]:
    """Copies of a JSON document, each with one of its strings (or, below the top, a key) replaced."""
    if isinstance(document, str):
        return [value]
    if isinstance(document, list):
        return [
            [*document[:index], variant, *document[index + 1 :]]
            for index, item in enumerate(document)
            for variant in _with_one_string_replaced(item, value, top=False)
        ]
    if isinstance(document, dict):
        values = [
            {**document, key: variant}
            for key, item in document.items()
            for variant in _with_one_string_replaced(item, value, top=False)
        ]
        keys = (
            []
            if top
            else [{**{k: v for k, v in document.items() if k != key}, value: item} for key, item in document.items()]
        )
        return values + keys
    return []


def _hostile_cases(seeded: Seeded, *, runner_only: bool) -> Iterator[tuple[str, Any]]:
    """For each operation: each hostile value in each path and query parameter (the other path
    parameters naming the seeded data of the moment), and in each string of a valid body."""
    runner_operations = _runner_operation_ids()
    for path, operations in document()["paths"].items():
        for method, described in operations.items():
            if runner_only and described["operationId"] not in runner_operations:
                continue
            operation, label = schema[path][method.upper()], f"{method.upper()} {path}"
            body = None
            if "requestBody" in described:
                assert described["operationId"] in VALID_BODIES, f"Add a valid body for {label} to VALID_BODIES."
                body = VALID_BODIES[described["operationId"]]
            for value in HOSTILE_TEXT:
                for parameter in described.get("parameters", []):
                    name, where = parameter["name"], parameter["in"]
                    path_parameters = seeded.aimed_path_parameters(path)
                    if where == "path":
                        path_parameters[name] = value
                    yield (
                        f"{label} {name}={value!r}",
                        operation.Case(
                            path_parameters={k: quote(v, safe="") for k, v in path_parameters.items()},
                            query={name: value} if where == "query" else {},
                            **({"body": body, "media_type": "application/json"} if body is not None else {}),
                        ),
                    )
                for variant in _with_one_string_replaced(body, value) if body is not None else []:
                    path_parameters = seeded.aimed_path_parameters(path)
                    yield (
                        f"{label} body={variant!r}",
                        operation.Case(
                            path_parameters={k: quote(v, safe="") for k, v in path_parameters.items()},
                            body=variant,
                            media_type="application/json",
                        ),
                    )


@pytest.mark.parametrize("as_runner", [False, True], ids=["as a signed-in user", "with a runner session"])
def test_hostile_values_in_every_parameter_and_body_string(seeded: Seeded, as_runner: bool) -> None:
    """Not left to chance: each hostile value in each place of each operation, checked like the
    fuzzed cases."""
    failures = []
    for label, case in _hostile_cases(seeded, runner_only=as_runner):
        try:
            seeded.call(case, as_runner=as_runner)
        except FailureGroup as failure:
            failures.append(f"{label}: {failure}")
    assert not failures, "\n".join(failures)


def test_the_fuzzed_document_is_the_one_served(live_server) -> None:
    assert requests.get(f"{live_server.url}/api/v1/openapi.json").json() == document()
