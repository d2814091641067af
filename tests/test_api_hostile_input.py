"""Inputs the fuzzer (tests/test_fuzz.py) found answered with 500: NUL characters, which
PostgreSQL can neither store nor compare, and digits that str.isdigit() takes but int() does not.
Each now gets a clear 4xx, and nothing is written. (The NUL cases failed on PostgreSQL only.)"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from secrets_app.models import AuditEvent, Workflow, Workspace
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import error_of

pytestmark = pytest.mark.django_db

NUL_REFUSED = "Must not contain NUL characters; encode binary data (e.g. base64)."


@pytest.fixture
def seeded(alice, bob, team):
    """A tagged secret, a grant on its tag, and a workflow, in alice's team workspace."""
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v", tags=["env"])
    grant_tag_permissions(actor=alice, workspace=team, tag_name="env", permission_names=["view"], username="bob")
    register_workflow(actor=alice, workspace=team, name="nightly", definition={})
    return team


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/api/v1/workspaces/team/secrets/API_KEY%00/", "secret_not_found"),
        ("DELETE", "/api/v1/workspaces/team/secrets/API_KEY%00/", "secret_not_found"),
        ("POST", "/api/v1/workspaces/team/secrets/API_KEY%00/tags/", "secret_not_found"),
        ("DELETE", "/api/v1/workspaces/team/tags/env%00/", "tag_not_found"),
        ("GET", "/api/v1/workspaces/team/tags/env%00/grants/", "tag_not_found"),
        ("DELETE", "/api/v1/workspaces/team/tags/env%00/grants/user-1/", "grant_not_found"),
        ("GET", "/api/v1/workspaces/team/workflows/nightly%00/", "workflow_not_found"),
        ("DELETE", "/api/v1/workspaces/team/workflows/nightly%00/", "workflow_not_found"),
    ],
)
def test_a_nul_in_a_name_in_the_path_names_nothing(alice_api, seeded, method, path, code):
    response = alice_api.get(path) if method == "GET" else alice_api.send(method, path, {"tags": ["x"]})
    assert error_of(response) == (404, code)


def test_removing_a_tag_whose_name_holds_a_nul_says_the_secret_has_no_such_tag(alice_api, seeded):
    response = alice_api.delete("/api/v1/workspaces/team/secrets/API_KEY/tags/env%00/")
    assert error_of(response) == (404, "tag_not_found")
    assert response.json()["error"]["message"] == "API_KEY has no tag 'env\\x00'."


@pytest.mark.parametrize("query", ["q=API%00", "tag=env%00"])
def test_a_nul_in_the_search_or_the_tag_filter_finds_no_secret(alice_api, seeded, query):
    response = alice_api.get(f"/api/v1/workspaces/team/secrets/?{query}")
    assert response.status_code == 200
    assert (response.json()["count"], response.json()["secrets"]) == (0, [])


@pytest.mark.parametrize("listing", ["secrets", "executions"])
@pytest.mark.parametrize("page", ["%C2%B2", "%D9%A1"])  # "²" and Arabic-Indic "1"
def test_a_page_number_in_other_digits_is_no_page(alice_api, seeded, listing, page):
    response = alice_api.get(f"/api/v1/workspaces/team/{listing}/?page={page}")
    assert error_of(response) == (404, "page_not_found")


def test_a_grant_id_in_other_digits_is_no_grant(alice_api, seeded):
    response = alice_api.delete("/api/v1/workspaces/team/tags/env/grants/user-%C2%B2/")
    assert error_of(response) == (404, "grant_not_found")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/session/", {"username": "alice\x00", "password": "x"}, "username"),
        ("/api/v1/workspaces/", {"slug": "new", "name": "New\x00"}, "name"),
        ("/api/v1/workspaces/team/tags/env/grants/", {"user": "bob\x00", "permissions": ["use"]}, "user"),
        ("/api/v1/workspaces/team/tags/env/grants/", {"group": "ops\x00", "permissions": ["use"]}, "group"),
        ("/api/v1/workspaces/team/executions/", {"workflow": "team/nightly\x00"}, "workflow"),
        ("/api/v1/workspaces/team/secrets/", {"key": "K", "value": "v", "tags": ["env\x00"]}, "tags"),
    ],
)
def test_a_nul_in_a_text_field_of_a_body_is_refused_and_nothing_is_written(alice_api, seeded, path, body, field):
    Group.objects.create(name="ops")
    events = AuditEvent.objects.count()
    response = alice_api.post(path, body)
    assert error_of(response) == (400, "invalid_input")
    assert response.json()["error"]["fields"] == {field: [NUL_REFUSED]}
    assert AuditEvent.objects.count() == events
    assert not Workspace.objects.filter(slug="new").exists()


@pytest.mark.parametrize(
    "definition", [{"token": "a\x00b"}, {"steps": [{"a\x00": 1}]}], ids=["in a value", "in a nested key"]
)
def test_a_nul_anywhere_in_a_workflow_definition_is_refused(alice_api, seeded, definition):
    response = alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "with-nul", "definition": definition})
    assert error_of(response) == (400, "invalid_input")
    assert response.json()["error"]["fields"] == {
        "definition": ["The definition must not contain NUL characters (\\u0000)."]
    }
    assert not Workflow.objects.filter(name="with-nul").exists()


def test_a_definition_may_hold_the_six_characters_backslash_u0000(alice_api, seeded):
    response = alice_api.post(
        "/api/v1/workspaces/team/workflows/", {"name": "escaped", "definition": {"text": "\\u0000"}}
    )
    assert response.status_code == 201
    assert response.json()["definition"] == {"text": "\\u0000"}


# Numbers, NaN and Infinity, repeated names, lone surrogates and moments without a UTC time: JSON
# in is strict (RFC 8259), text must be storable, and each gets a clear 4xx, never a 500.

HUGE_INTEGER = "1" * 5000
NON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


@pytest.mark.parametrize(
    ("path", "body_with"),
    [
        ("/api/v1/session/", '{{"username": "alice", "password": "x", "n": {}}}'),
        ("/api/v1/workspaces/team/secrets/", '{{"key": "K", "value": "v", "n": {}}}'),
        ("/api/v1/workspaces/team/workflows/", '{{"name": "numbers", "definition": {{"n": {}}}}}'),
        ("/api/v1/runner/resolve/", '{{"n": {}, "t": "${{workflow.secrets.API_KEY}}"}}'),
        ("/api/v1/workspaces/team/secrets/import/", '{{"dotenv": "A=1", "dry_run": {}}}'),
    ],
)
@pytest.mark.parametrize("number", [HUGE_INTEGER, *NON_NUMBERS])
def test_a_number_json_does_not_allow_is_400_malformed_json_anywhere(alice_api, seeded, path, body_with, number):
    events = AuditEvent.objects.count()
    response = alice_api.post(path, raw=body_with.format(number))
    assert error_of(response) == (400, "malformed_json")
    assert AuditEvent.objects.count() == events
    assert not Workflow.objects.filter(name="numbers").exists()


def test_a_huge_integer_to_the_anonymous_sign_in_is_a_400(api, alice):
    api.refresh_csrf()
    response = api.post("/api/v1/session/", raw='{"username": "alice", "password": ' + HUGE_INTEGER + "}")
    assert error_of(response) == (400, "malformed_json")
    assert "4300 digits" in response.json()["error"]["message"]


def test_a_member_named_twice_is_malformed(alice_api, seeded):
    response = alice_api.post("/api/v1/workspaces/team/secrets/", raw='{"key": "K", "value": "a", "value": "b"}')
    assert error_of(response) == (400, "malformed_json")
    assert "twice" in response.json()["error"]["message"]


def test_resolve_answers_strict_json(alice_api, seeded):
    response = alice_api.post("/api/v1/runner/resolve/", raw='{"big": 1e308, "small": -0.0, "list": [1.5, 2]}')
    assert response.status_code == 200
    assert "NaN" not in response.content.decode() and "Infinity" not in response.content.decode()
    assert response.json()["document"] == {"big": 1e308, "small": -0.0, "list": [1.5, 2]}


@pytest.mark.parametrize("page", [HUGE_INTEGER, "9" * 19, "99999999999999999999"])
def test_a_page_number_of_any_length_is_no_page(alice_api, seeded, page):
    response = alice_api.get(f"/api/v1/workspaces/team/secrets/?page={page}")
    assert error_of(response) == (404, "page_not_found")
    assert len(response.json()["error"]["message"]) < 200


@pytest.mark.parametrize("number", ["9" * 30, "1" * 5000])
def test_a_grant_id_of_any_length_is_no_grant(alice_api, seeded, number):
    response = alice_api.delete(f"/api/v1/workspaces/team/tags/env/grants/user-{number}/")
    assert error_of(response) == (404, "grant_not_found")


@pytest.mark.parametrize(
    "expires_at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+00:01"]
)
def test_an_expiry_that_has_no_utc_time_is_a_400_naming_it(alice_api, seeded, expires_at):
    response = alice_api.post(
        "/api/v1/workspaces/team/secrets/", {"key": "OLD", "value": "v", "expires_at": expires_at}
    )
    assert error_of(response) == (400, "invalid_input")
    assert "Enter the expiry as an ISO 8601 date" in response.json()["error"]["fields"]["expires_at"][0]
    assert not seeded.secrets.filter(key="OLD").exists()


def test_the_secrets_page_shows_a_form_error_for_an_expiry_without_a_utc_time(alice, seeded):
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    response = browser.post(
        "/settings/developer/team/secrets/", {"key": "OLD", "value": "v", "expires_at": "0001-01-01T00:30:00+01:00"}
    )
    assert response.status_code == 400
    assert "Enter the expiry as an ISO 8601 date" in response.content.decode()
    assert not seeded.secrets.filter(key="OLD").exists()


SURROGATE_REFUSED = "Must be Unicode text: it holds a lone surrogate (\\ud800-\\udfff)."


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/workspaces/", '{"slug": "new", "name": "New \\ud800"}', "name"),
        ("/api/v1/session/", '{"username": "alice\\udfff", "password": "x"}', "username"),
        ("/api/v1/workspaces/team/tags/env/grants/", '{"user": "bob\\ud800", "permissions": ["use"]}', "user"),
        ("/api/v1/workspaces/team/executions/", '{"workflow": "team/nightly\\ud800"}', "workflow"),
        ("/api/v1/workspaces/team/secrets/import/", '{"dotenv": "A=\\ud800"}', "dotenv"),
        ("/api/v1/workspaces/team/value-lookup/", '{"value": "\\ud800"}', "value"),
    ],
)
def test_a_lone_surrogate_in_a_text_field_is_refused_and_nothing_is_written(alice_api, seeded, path, body, field):
    events = AuditEvent.objects.count()
    response = alice_api.post(path, raw=body)
    assert error_of(response) == (400, "invalid_input")
    assert response.json()["error"]["fields"] == {field: [SURROGATE_REFUSED]}
    assert AuditEvent.objects.count() == events
    assert not Workspace.objects.filter(slug="new").exists()


@pytest.mark.parametrize("definition", ['{"t": "\\ud800"}', '{"\\udc00": 1}'], ids=["in a value", "in a key"])
def test_a_lone_surrogate_in_a_workflow_definition_is_refused(alice_api, seeded, definition):
    response = alice_api.post(
        "/api/v1/workspaces/team/workflows/", raw=f'{{"name": "odd", "definition": {definition}}}'
    )
    assert error_of(response) == (400, "invalid_input")
    assert "lone surrogate" in response.json()["error"]["fields"]["definition"][0]
    assert not Workflow.objects.filter(name="odd").exists()


@pytest.mark.parametrize("definition", ['{"n": NaN}', '{"n": 1e400}', '{"a": 1, "a": 2}', "1" * 5000])
def test_the_workflows_page_refuses_json_the_api_refuses_as_a_form_error(alice, seeded, definition):
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    response = browser.post("/settings/developer/team/workflows/", {"name": "from-page", "definition": definition})
    assert response.status_code == 400
    assert "Enter a valid JSON" in response.content.decode()
    assert not Workflow.objects.filter(name="from-page").exists()


# NUL (which PostgreSQL cannot hold in text) in every kind of path and query parameter: each names
# nothing, or is a filter's error; none reaches the database (CI runs this on PostgreSQL).
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/workspaces/team/secrets/?q=%00", 200),
        ("/api/v1/workspaces/team/secrets/?tag=%00", 200),
        ("/api/v1/workspaces/team/secrets/?unread_days=%00", 400),
        ("/api/v1/workspaces/team/secrets/A%00/", 404),
        ("/api/v1/workspaces/team/tags/a%00/grants/", 404),
        ("/api/v1/workspaces/team/workflows/a%00/", 404),
        ("/api/v1/workspaces/te%00am/", 404),
        ("/api/v1/sessions/%00/", 404),
        ("/api/v1/executions/%00/", 404),
        ("/api/v1/runner/secrets/A%00/", 404),
        ("/api/v1/workspaces/?page=%00", 404),
    ],
)
def test_nul_in_an_api_parameter_is_a_clear_answer(alice_api, seeded, path, status):
    assert alice_api.get(path).status_code == status


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("get", "/settings/developer/team/secrets/?q=%00", None, 400),
        ("get", "/settings/developer/team/secrets/?tag=%00", None, 400),
        ("get", "/settings/developer/team/activity/?q=%00&action=%00&key=%00", None, 400),
        ("get", "/settings/developer/team/secrets/A%00/", None, 404),
        ("get", "/settings/developer/team/workflows/?page=%00", None, 404),
        ("get", "/settings/developer/?workspace=%00", None, 404),
        ("get", "/settings/developer/?workspace=te%ED%A0%80am", None, 404),
        # Back to the Members page, which says there is no such member.
        ("post", "/settings/developer/team/members/a%00/", {"role": "viewer"}, 302),
        ("post", "/settings/developer/team/members/a%00/", {"remove": "1"}, 302),
    ],
)
def test_nul_in_a_page_parameter_is_a_clear_answer(alice, seeded, method, path, data, status):
    from tests.conftest import signed_in_client

    browser = signed_in_client(alice)
    response = browser.get(path) if method == "get" else browser.post(path, data)
    assert response.status_code == status


def test_launching_into_a_workspace_named_with_nul_is_refused(alice, seeded):
    from secrets_app.services.runs import register_workflow
    from tests.conftest import signed_in_client

    register_workflow(actor=alice, workspace=seeded, name="w", definition={})
    browser = signed_in_client(alice)
    response = browser.post("/settings/developer/team/workflows/w/launch/", {"workspace": "te\x00am"}, follow=True)
    assert "Choose a workspace you may launch executions in." in response.content.decode()
