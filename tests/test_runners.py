"""Workflows, executions, runner sessions, the runner read and template resolution (in-process)."""

from __future__ import annotations

import json
import uuid
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from secrets_app.client import redaction_forms
from secrets_app.models import AuditEvent, Execution, Role, Workflow
from secrets_app.selectors.grants import grants_in
from secrets_app.services import audit
from secrets_app.services.grants import grant_tag_permissions, revoke_tag_grant
from secrets_app.services.runs import delete_workflow, finish_execution, launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import add_member as add_workspace_member
from secrets_app.services.workspaces import change_member_role, create_team_workspace, delete_workspace, remove_member
from tests.conftest import JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

API_KEY_VALUE = "tok-\u00e9\n  line two\r\n"
DEFINITION = {
    "tasks": [
        {"name": "fetch", "inputs": {"token": "${workflow.secrets.API_KEY}", "url": "https://example.com"}},
        {"name": "store", "inputs": {"dsn": "postgres://app:${workflow.secrets.DB_PASSWORD}@db/app"}},
    ]
}


@pytest.fixture
def other(alice):
    """A second team workspace alice owns."""
    return create_team_workspace(actor=alice, name="Other", slug="other")


@pytest.fixture
def secrets_in_team(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value=API_KEY_VALUE)
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="pg-pass", tags=["team:data"])
    return team


@pytest.fixture
def workflow(alice, secrets_in_team):
    return register_workflow(actor=alice, workspace=secrets_in_team, name="nightly", definition=DEFINITION)


def launch(actor, workspace, workflow, **kwargs):
    return launch_execution(actor=actor, workspace=workspace, workflow=workflow, **kwargs)


def runner_client(session_key: str) -> JsonClient:
    """A runner: the session cookie it was given, and the CSRF token it fetches with it."""
    runner = JsonClient()
    runner.client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    runner.refresh_csrf()
    return runner


def read(runner: JsonClient, key: str):
    return runner.get(f"/api/v1/runner/secrets/{key}/")


def events(action: str, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def session_exists(session_key: str) -> bool:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return store().exists(session_key)


# Workflows


def test_registering_a_workflow_records_the_secrets_it_references(alice_api, team):
    response = alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "nightly", "definition": DEFINITION})
    assert response.status_code == 201
    body = response.json()
    assert body["reference"] == "team/nightly"
    assert body["secrets"] == ["API_KEY", "DB_PASSWORD"]
    assert body["definition"] == DEFINITION
    assert body["registered_by"] == "alice"
    listed = alice_api.get("/api/v1/workspaces/team/workflows/").json()["workflows"]
    assert [w["reference"] for w in listed] == ["team/nightly"]
    (event,) = events(AuditEvent.Action.WORKFLOW_REGISTERED)
    assert event.detail == {"workflow": "team/nightly", "secrets": ["API_KEY", "DB_PASSWORD"]}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "bad name!", "definition": {}}, "name"),
        ({"name": "", "definition": {}}, "name"),
        ({"name": "ok", "definition": ["not", "an", "object"]}, "definition"),
        ({"name": "ok", "definition": "text"}, "definition"),
        ({"name": "ok"}, "definition"),
        ({"name": 7, "definition": {}}, "name"),
        ({"name": "ok", "definition": {}, "extra": 1}, "extra"),
    ],
)
def test_bad_workflow_registrations_are_400_naming_the_field(alice_api, team, payload, field):
    response = alice_api.post("/api/v1/workspaces/team/workflows/", payload)
    assert error_of(response) == (400, "invalid_input")
    assert field in response.json()["error"]["fields"]
    assert not Workflow.objects.exists()
    assert not events(AuditEvent.Action.WORKFLOW_REGISTERED)


def test_a_workflow_definition_over_256_kib_is_refused(alice_api, team):
    response = alice_api.post(
        "/api/v1/workspaces/team/workflows/", {"name": "big", "definition": {"blob": "x" * (256 * 1024)}}
    )
    assert error_of(response) == (400, "invalid_input")
    assert "256 KiB" in response.json()["error"]["message"]
    assert not Workflow.objects.exists()


def test_a_workflow_name_is_unique_per_workspace(alice_api, team, other):
    assert alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "n", "definition": {}}).status_code == 201
    assert error_of(alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "n", "definition": {}})) == (
        409,
        "workflow_exists",
    )
    assert alice_api.post("/api/v1/workspaces/other/workflows/", {"name": "n", "definition": {}}).status_code == 201
    assert Workflow.objects.count() == 2


def test_viewers_cannot_register_and_strangers_get_404(alice, bob, team, add_member, bob_api, make_user):
    add_member(bob, Role.VIEWER)
    assert error_of(bob_api.post("/api/v1/workspaces/team/workflows/", {"name": "n", "definition": {}})) == (
        403,
        "permission_denied",
    )
    carol = JsonClient()
    make_user("carol")
    carol.login("carol")
    assert error_of(carol.post("/api/v1/workspaces/team/workflows/", {"name": "n", "definition": {}})) == (
        404,
        "workspace_not_found",
    )
    assert error_of(carol.get("/api/v1/workspaces/team/workflows/")) == (404, "workspace_not_found")
    assert not Workflow.objects.exists()


def test_workflows_page_registers_and_lists_a_workflow(alice, team):
    browser = signed_in_client(alice)
    response = browser.post(
        "/settings/developer/team/workflows/", {"name": "nightly", "definition": json.dumps(DEFINITION)}
    )
    assert response.status_code == 302
    page = browser.get("/settings/developer/team/workflows/").content.decode()
    assert "nightly" in page and "API_KEY" in page and "DB_PASSWORD" in page
    assert Workflow.objects.get().registered_by == alice


def test_workflows_page_shows_a_json_error(alice, team):
    response = signed_in_client(alice).post(
        "/settings/developer/team/workflows/", {"name": "nightly", "definition": "{not json"}
    )
    assert response.status_code == 400
    assert "Enter a valid JSON" in response.content.decode()
    assert not Workflow.objects.exists()


# Executions and runner sessions


def test_launching_answers_the_execution_and_a_real_runner_session(alice_api, workflow, other):
    response = alice_api.post("/api/v1/workspaces/team/executions/", {"workflow": "team/nightly"})
    assert response.status_code == 201
    body = response.json()
    execution = Execution.objects.get(pk=body["id"])
    assert body["status"] == "running" and body["workflow"] == "team/nightly" and body["workspace"] == "team"
    assert body["expires_at"] == execution.expires_at.isoformat()
    lifetime = (execution.expires_at - execution.started_at).total_seconds()
    assert abs(lifetime - settings.RUNNER_SESSION_MAX_AGE) < 5
    session = Session.objects.get(session_key=body["runner_session"])
    assert abs((session.expire_date - execution.expires_at).total_seconds()) < 5
    decoded = session.get_decoded()
    assert decoded["_auth_user_id"] == str(workflow.registered_by.pk)
    assert decoded["runner_execution"] == body["id"]
    (event,) = events(AuditEvent.Action.EXECUTION_LAUNCHED)
    assert str(event.execution_id) == body["id"] and event.actor_username == "alice"
    assert body["runner_session"] not in json.dumps(event.detail)


def test_a_launch_may_ask_for_a_shorter_lifetime_within_bounds(alice_api, workflow):
    ok = alice_api.post("/api/v1/workspaces/team/executions/", {"workflow": "team/nightly", "lifetime": 600})
    assert ok.status_code == 201
    execution = Execution.objects.get(pk=ok.json()["id"])
    assert abs((execution.expires_at - execution.started_at).total_seconds() - 600) < 5
    for lifetime in (10, settings.RUNNER_SESSION_MAX_AGE + 1, "600", True, 60.5):
        response = alice_api.post(
            "/api/v1/workspaces/team/executions/", {"workflow": "team/nightly", "lifetime": lifetime}
        )
        assert error_of(response) == (400, "invalid_input"), lifetime
    assert Execution.objects.count() == 1
    assert Session.objects.count() == 2  # alice's own and the one runner session


def test_launch_errors(alice, bob, alice_api, bob_api, workflow, add_member):
    assert error_of(alice_api.post("/api/v1/workspaces/team/executions/", {"workflow": "team/missing"})) == (
        404,
        "workflow_not_found",
    )
    assert error_of(alice_api.post("/api/v1/workspaces/team/executions/", {"workflow": "nightly"})) == (
        404,
        "workflow_not_found",
    )
    assert error_of(alice_api.post("/api/v1/workspaces/team/executions/", {})) == (400, "invalid_input")
    # bob cannot see team at all: neither its workflows nor the workspace
    assert error_of(bob_api.post("/api/v1/workspaces/bob/executions/", {"workflow": "team/nightly"})) == (
        404,
        "workflow_not_found",
    )
    add_member(bob, Role.VIEWER)
    assert error_of(bob_api.post("/api/v1/workspaces/team/executions/", {"workflow": "team/nightly"})) == (
        403,
        "permission_denied",
    )
    assert not Execution.objects.exists()
    assert Session.objects.count() == 2  # only the two people's sessions


def test_finishing_deletes_the_runner_session_from_the_store_at_once(alice_api, alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    assert read(runner, "API_KEY").status_code == 200
    response = alice_api.post(f"/api/v1/executions/{execution.id}/finish/")
    assert response.status_code == 200
    assert response.json()["status"] == "finished" and response.json()["finished_at"]
    assert not session_exists(session_key)
    assert not Session.objects.filter(session_key=session_key).exists()
    assert cache.get(f"django.contrib.sessions.cached_db{session_key}") is None
    assert error_of(alice_api.post(f"/api/v1/executions/{execution.id}/finish/")) == (409, "execution_not_running")


def test_an_admin_who_did_not_launch_it_revokes_and_a_member_cannot(alice, bob, make_user, team, workflow, add_member):
    add_member(bob, Role.MEMBER)
    carol = make_user("carol")
    add_workspace_member(actor=alice, workspace=team, username="carol", role=Role.ADMIN)
    execution, session_key = launch(bob, team, workflow)
    dave_api = JsonClient()
    make_user("dave")
    add_workspace_member(actor=alice, workspace=team, username="dave", role=Role.MEMBER)
    dave_api.login("dave")
    assert error_of(dave_api.post(f"/api/v1/executions/{execution.id}/finish/")) == (403, "permission_denied")
    assert session_exists(session_key)
    carol_api = JsonClient()
    carol_api.login(carol.username)
    response = carol_api.post(f"/api/v1/executions/{execution.id}/finish/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert not session_exists(session_key)


def test_an_execution_in_a_workspace_you_cannot_see_is_404(alice, bob_api, team, workflow):
    execution, _ = launch(alice, team, workflow)
    assert error_of(bob_api.get(f"/api/v1/executions/{execution.id}/")) == (404, "execution_not_found")
    assert error_of(bob_api.post(f"/api/v1/executions/{execution.id}/finish/")) == (404, "execution_not_found")
    assert error_of(bob_api.get("/api/v1/executions/not-a-uuid/")) == (404, "execution_not_found")


def test_a_runner_may_finish_its_own_execution(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    response = runner.post(f"/api/v1/executions/{execution.id}/finish/")
    assert response.status_code == 200 and response.json()["status"] == "finished"
    assert error_of(read(runner, "API_KEY")) == (401, "execution_finished")


def test_deleting_a_workflow_ends_its_runs(alice, team, other, workflow):
    execution, session_key = launch(alice, team, workflow)
    delete_workflow(actor=alice, workflow=workflow)
    assert not session_exists(session_key)
    execution.refresh_from_db()
    assert execution.status == "revoked" and execution.workflow is None


def test_deleting_a_home_workspace_ends_runs_of_its_workflows_everywhere(alice, team, other, workflow):
    _, home_key = launch(alice, team, workflow)
    _, elsewhere_key = launch(alice, other, workflow)
    delete_workspace(actor=alice, workspace=team)
    assert not session_exists(home_key) and not session_exists(elsewhere_key)


def test_executions_page_lists_runs_with_status_and_finishes_them(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    browser = signed_in_client(alice)
    page = browser.get("/settings/developer/team/executions/").content.decode()
    assert "team/nightly" in page and "status-running" in page and "Finish" in page
    assert session_key not in page
    response = browser.post(f"/settings/executions/{execution.id}/finish/", follow=True)
    page = response.content.decode()
    assert "status-finished" in page and "finished; its runner session has ended" in page
    assert not session_exists(session_key)


def test_launching_from_the_workflows_page_shows_the_runner_session_once(alice, team, other, workflow):
    browser = signed_in_client(alice)
    page = browser.get("/settings/developer/team/workflows/").content.decode()
    assert 'name="workspace"' in page and "Launch" in page
    response = browser.post("/settings/developer/team/workflows/nightly/launch/", {"workspace": "other"})
    execution = Execution.objects.get()
    # Post/redirect/get: the launch answers a redirect to the page that shows the credential once.
    assert response.status_code == 302 and response["Location"] == f"/settings/executions/{execution.id}/launched/"
    page = browser.get(response["Location"]).content.decode()
    assert f"CONSOLE_SESSION={execution.runner_session_key}" in page
    assert "workspace_mismatch" in page  # registered in team, launched in other
    reloaded = browser.get(response["Location"])
    assert reloaded.status_code == 200 and execution.runner_session_key not in reloaded.content.decode()
    assert "was shown once" in reloaded.content.decode()
    assert Execution.objects.count() == 1  # a reload launched nothing
    assert execution.runner_session_key not in browser.get("/settings/developer/other/executions/").content.decode()
    # Nobody else's session holds it, and another user cannot open the page.
    assert browser.get(f"/settings/executions/{uuid.uuid4()}/launched/").status_code == 404


# The runner read


def test_a_runner_reads_from_its_workflows_home_workspace(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    response = read(runner_client(session_key), "API_KEY")
    assert response.status_code == 200
    assert response.json() == {"key": "API_KEY", "value": API_KEY_VALUE, "redact": redaction_forms(API_KEY_VALUE)}
    assert "no-store" in response["Cache-Control"]
    (event,) = events(AuditEvent.Action.SECRET_READ)
    assert event.execution_id == execution.id
    assert event.secret_key == "API_KEY" and event.workspace_slug == "team" and event.actor_username == "alice"
    assert event.detail == {"workflow": "team/nightly", "local": False}
    assert "tok-" not in json.dumps(event.detail)


def test_the_runner_read_answers_the_forms_of_the_value_a_runner_masks_in_its_logs(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    redact = read(runner, "API_KEY").json()["redact"]
    # API_KEY_VALUE is "tok-\u00e9\n  line two\r\n": the value, its lines, base64, JSON- and URL-encoded.
    expected = {
        API_KEY_VALUE,
        "tok-\u00e9",
        "  line two",
        "line two",
        "dG9rLcOpCiAgbGluZSB0d28NCg==",
        "tok-\\u00e9\\n  line two\\r\\n",
        "tok-%C3%A9%0A%20%20line%20two%0D%0A",
    }
    assert expected <= set(redact)
    assert redact == redaction_forms(API_KEY_VALUE)  # the forms the client computes for a local value
    finish_execution(actor=alice, execution=execution)
    refused = read(runner, "API_KEY")
    assert error_of(refused) == (401, "execution_finished") and "redact" not in refused.json()


def test_a_json_secret_answers_each_of_its_leaf_strings_to_mask(alice, alice_api):
    value = json.dumps(
        {"client_id": "app-1234", "client_secret": "s3cr3t-leaf", "scopes": ["read:all", "rw"]}, indent=2
    )
    create_secret(actor=alice, workspace=alice.personal_workspace, key="OAUTH", value=value)
    redact = read(alice_api, "OAUTH").json()["redact"]
    assert {value, "s3cr3t-leaf", "app-1234", "read:all", '"client_secret": "s3cr3t-leaf",'} <= set(redact)
    assert "client_secret" not in redact and "rw" not in redact  # a key; too short to mask


def test_a_run_in_another_workspace_is_refused_with_workspace_mismatch(alice, team, other, workflow):
    create_secret(actor=alice, workspace=other, key="API_KEY", value="other-value")
    execution, session_key = launch(alice, other, workflow)
    response = read(runner_client(session_key), "API_KEY")
    assert error_of(response) == (403, "workspace_mismatch")
    assert "value" not in response.json() and "other-value" not in response.content.decode()
    (event,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert event.execution_id == execution.id and event.detail["reason"] == "workspace_mismatch"
    assert not events(AuditEvent.Action.SECRET_READ)


def test_a_finished_execution_is_refused_and_the_refusal_audited(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    finish_execution(actor=alice, execution=execution)
    assert error_of(read(runner, "API_KEY")) == (401, "execution_finished")
    (event,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert event.execution_id == execution.id and event.detail["reason"] == "execution_finished"
    assert event.secret_key == "API_KEY"


def test_an_expired_execution_is_refused(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow, lifetime_seconds=60)
    runner = runner_client(session_key)
    past = timezone.now() - timezone.timedelta(seconds=1)
    Execution.objects.filter(pk=execution.pk).update(expires_at=past)
    Session.objects.filter(session_key=session_key).update(expire_date=past)
    cache.clear()
    assert error_of(read(runner, "API_KEY")) == (401, "execution_expired")
    assert events(AuditEvent.Action.SECRET_READ_DENIED)[0].detail["reason"] == "execution_expired"


def test_a_launcher_who_can_no_longer_sign_in_ends_their_runs(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    alice.set_password("a-new-Password-77")
    alice.save()
    assert error_of(read(runner, "API_KEY")) == (401, "session_expired")
    assert not session_exists(session_key)  # Django ended it on sight
    assert events(AuditEvent.Action.SECRET_READ_DENIED)[0].detail["reason"] == "session_expired"


def test_permission_is_checked_at_read_time_not_at_launch(alice, bob, team, workflow, add_member):
    add_member(bob, Role.MEMBER)
    _, session_key = launch(bob, team, workflow)
    runner = runner_client(session_key)
    assert read(runner, "API_KEY").status_code == 200
    change_member_role(actor=alice, workspace=team, username="bob", role=Role.VIEWER)
    response = read(runner, "API_KEY")
    assert error_of(response) == (404, "secret_not_found")  # a viewer may not even see it now
    remove_member(actor=alice, workspace=team, username="bob")
    assert error_of(read(runner, "API_KEY")) == (404, "secret_not_found")
    reasons = [e.detail["reason"] for e in events(AuditEvent.Action.SECRET_READ_DENIED)]
    assert reasons == ["secret_not_found", "secret_not_found"]


def test_a_use_grant_lets_its_holder_run_and_revoking_it_stops_the_run(alice, bob, team, workflow):
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:data", permission_names=["use"], username="bob")
    _, session_key = launch(bob, team, workflow)
    runner = runner_client(session_key)
    assert read(runner, "DB_PASSWORD").json()["value"] == "pg-pass"
    assert error_of(read(runner, "API_KEY")) == (404, "secret_not_found")  # untagged: out of bob's reach
    (grant_id,) = [g for g in bob_grants(team)]
    revoke_tag_grant(actor=alice, workspace=team, grant_id=grant_id)
    assert error_of(read(runner, "DB_PASSWORD")) == (404, "secret_not_found")
    assert [e.detail["reason"] for e in events(AuditEvent.Action.SECRET_READ_DENIED)] == [
        "secret_not_found",
        "secret_not_found",
    ]


def bob_grants(team):
    return [g.id for g in grants_in(team) if g.grantee == "bob"]


def test_a_view_grant_alone_lets_the_run_see_but_not_use_a_secret(alice, bob, team, workflow):
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:data", permission_names=["use"], username="bob")
    create_secret(actor=alice, workspace=team, key="SEEN_ONLY", value="v", tags=["team:seen"])
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:seen", permission_names=["view"], username="bob")
    _, session_key = launch(bob, team, workflow)
    response = read(runner_client(session_key), "SEEN_ONLY")
    assert error_of(response) == (403, "permission_denied")
    assert "SEEN_ONLY" in response.json()["error"]["message"]


def test_a_local_run_reads_the_personal_workspace_only(alice, alice_api, team, workflow):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="personal")
    response = read(alice_api, "MINE")
    assert response.status_code == 200
    assert response.json() == {
        "key": "MINE",
        "value": "personal",
        "redact": ["cGVyc29uYWw=", "cGVyc29uYWw", "personal"],
    }
    assert error_of(read(alice_api, "API_KEY")) == (404, "secret_not_found")  # only in the team workspace
    read_event, denied = events(AuditEvent.Action.SECRET_READ) + events(AuditEvent.Action.SECRET_READ_DENIED)
    assert read_event.detail == {"local": True} and read_event.execution_id is None
    assert read_event.workspace_slug == "alice"
    assert denied.secret_key == "API_KEY" and denied.detail == {"local": True, "reason": "secret_not_found"}


def test_reading_without_a_session_is_401(api, secrets_in_team):
    assert error_of(read(api, "API_KEY")) == (401, "not_authenticated")
    api.client.cookies[settings.SESSION_COOKIE_NAME] = "made-up-session"
    assert error_of(read(api, "API_KEY")) == (401, "session_expired")


def test_a_malformed_key_is_a_404_and_audited_safely(alice, alice_api):
    response = read(alice_api, "bad%00key%0A" + "x" * 300)
    assert error_of(response) == (404, "secret_not_found")
    (event,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert event.secret_key.startswith("bad\\x00key\\n") and len(event.secret_key) == 128


def test_a_failing_audit_write_fails_the_read_with_no_value(alice, team, workflow, monkeypatch):
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    runner.client.raise_request_exception = False

    def audit_store_down(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record_events", audit_store_down)
    response = read(runner, "API_KEY")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert "tok-" not in response.content.decode()


def test_the_runner_read_runs_a_small_constant_number_of_queries(alice, team, workflow, django_assert_max_num_queries):
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    read(runner, "API_KEY")  # the session is now in the cache, as on any later read
    with django_assert_max_num_queries(4):
        assert read(runner, "API_KEY").status_code == 200
    for number in range(200):
        create_secret(actor=alice, workspace=team, key=f"MORE_{number}", value="v", tags=[f"t{number % 20}"])
    with django_assert_max_num_queries(4):
        assert read(runner, "API_KEY").status_code == 200


def test_the_secrets_list_shows_when_and_by_which_workflow_a_secret_was_last_read(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "API_KEY")
    page = signed_in_client(alice).get("/settings/developer/team/secrets/").content.decode()
    row = page.split('href="/settings/developer/team/secrets/API_KEY/"')[1].split("</tr>")[0]
    assert "by team/nightly" in row
    other_row = page.split('href="/settings/developer/team/secrets/DB_PASSWORD/"')[1].split("</tr>")[0]
    assert "never" in other_row
    listed = {s["key"]: s for s in signed_in_client(alice).get("/api/v1/workspaces/team/secrets/").json()["secrets"]}
    assert listed["API_KEY"]["last_read_by_workflow"] == "team/nightly" and listed["API_KEY"]["last_read_at"]
    assert listed["DB_PASSWORD"]["last_read_at"] is None


# A runner session is only for the runner endpoints


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/workspaces/"),
        ("GET", "/api/v1/workspaces/team/secrets/"),
        ("POST", "/api/v1/workspaces/team/secrets/"),
        ("DELETE", "/api/v1/workspaces/team/secrets/API_KEY/"),
        ("POST", "/api/v1/workspaces/team/executions/"),
        ("DELETE", "/api/v1/session/"),
        ("GET", "/settings/developer/team/secrets/"),
        ("GET", "/admin/"),
    ],
)
def test_a_runner_session_cannot_act_as_its_user_elsewhere(alice, team, workflow, method, path):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    response = runner.send(method, path, {"key": "NEW", "value": "v"})
    assert response.status_code == 403
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "runner_session_scope"
    assert team.secrets.count() == 2 and session_exists(session_key)


def test_a_runner_session_cannot_touch_another_execution(alice, team, workflow):
    first, first_key = launch(alice, team, workflow)
    second, second_key = launch(alice, team, workflow)
    runner = runner_client(first_key)
    assert error_of(runner.post(f"/api/v1/executions/{second.id}/finish/")) == (403, "runner_session_scope")
    assert error_of(runner.get(f"/api/v1/executions/{second.id}/")) == (403, "runner_session_scope")
    assert runner.get(f"/api/v1/executions/{first.id}/").json()["status"] == "running"
    assert session_exists(second_key)


# Templates


def test_resolve_replaces_every_placeholder_in_a_nested_document(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    document = {
        "tasks": [
            {"token": "${workflow.secrets.API_KEY}", "n": 3, "ok": True, "none": None},
            ["Bearer ${workflow.secrets.API_KEY}", {"deep": {"dsn": "x:${workflow.secrets.DB_PASSWORD}@h"}}],
        ],
        "lookalikes": [
            "$workflow.secrets.API_KEY",
            "${workflow.secret.API_KEY}",
            "${ workflow.secrets.API_KEY }",
            "${workflow.secrets.}",
        ],
        "${workflow.secrets.API_KEY}": "keys are not templates",
    }
    response = runner_client(session_key).post("/api/v1/runner/resolve/", document)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["secrets"] == ["API_KEY", "DB_PASSWORD"]
    resolved = body["document"]
    assert resolved["tasks"][0] == {"token": API_KEY_VALUE, "n": 3, "ok": True, "none": None}
    assert resolved["tasks"][1][0] == f"Bearer {API_KEY_VALUE}"
    assert resolved["tasks"][1][1]["deep"]["dsn"] == "x:pg-pass@h"
    assert resolved["lookalikes"] == document["lookalikes"]
    assert resolved["${workflow.secrets.API_KEY}"] == "keys are not templates"
    assert sorted(e.secret_key for e in events(AuditEvent.Action.SECRET_READ)) == ["API_KEY", "DB_PASSWORD"]


def test_resolve_answers_the_forms_of_every_value_it_filled_in(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    document = {
        "a": "${workflow.secrets.API_KEY}",
        "b": ["x:${workflow.secrets.DB_PASSWORD}@h", "${workflow.secrets.API_KEY}"],
    }
    body = runner_client(session_key).post("/api/v1/runner/resolve/", document).json()
    assert {API_KEY_VALUE, "line two", "pg-pass", "cGctcGFzcw=="} <= set(body["redact"])
    assert body["redact"] == redaction_forms(API_KEY_VALUE, "pg-pass")


def test_one_unknown_name_fails_the_whole_resolve_naming_it(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    response = runner_client(session_key).post(
        "/api/v1/runner/resolve/", {"a": "${workflow.secrets.API_KEY}", "b": "${workflow.secrets.NOPE}"}
    )
    assert error_of(response) == (404, "unknown_secrets")
    error = response.json()["error"]
    assert "NOPE" in error["message"] and error["secrets"] == {"NOPE": "secret_not_found"}
    assert "tok-" not in response.content.decode() and "document" not in response.json()
    assert not events(AuditEvent.Action.SECRET_READ)
    assert [e.secret_key for e in events(AuditEvent.Action.SECRET_READ_DENIED)] == ["NOPE"]


def test_unknown_and_refused_names_are_reported_together(alice, bob, team, workflow):
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:data", permission_names=["view"], username="bob")
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:run", permission_names=["use"], username="bob")
    _, session_key = launch(bob, team, workflow)
    response = runner_client(session_key).post(
        "/api/v1/runner/resolve/", ["${workflow.secrets.DB_PASSWORD}", "${workflow.secrets.GHOST}"]
    )
    assert error_of(response) == (403, "secrets_refused")
    error = response.json()["error"]
    assert error["secrets"] == {"DB_PASSWORD": "permission_denied", "GHOST": "secret_not_found"}
    assert "GHOST" in error["message"] and "DB_PASSWORD" in error["message"]
    assert "pg-pass" not in response.content.decode()


def test_resolve_in_another_workspace_is_a_workspace_mismatch(alice, team, other, workflow):
    _, session_key = launch(alice, other, workflow)
    response = runner_client(session_key).post("/api/v1/runner/resolve/", {"t": "${workflow.secrets.API_KEY}"})
    assert error_of(response) == (403, "workspace_mismatch")


def test_a_document_without_placeholders_comes_back_unchanged(alice, alice_api):
    document = {"a": [1, 2.5, "plain", None], "b": {"c": False}}
    response = alice_api.post("/api/v1/runner/resolve/", document)
    assert response.json() == {"document": document, "secrets": [], "redact": []}


def test_bad_resolve_requests(alice, alice_api, api):
    assert error_of(alice_api.post("/api/v1/runner/resolve/", raw="{nope")) == (400, "malformed_json")
    assert error_of(alice_api.post("/api/v1/runner/resolve/", raw="a=b", content_type="text/plain")) == (
        415,
        "unsupported_media_type",
    )
    deep = "[" * 100 + "]" * 100
    response = alice_api.post("/api/v1/runner/resolve/", raw=deep)
    assert error_of(response) == (400, "malformed_json") and "nested" in response.json()["error"]["message"]
    assert error_of(alice_api.post("/api/v1/runner/resolve/", {"a": 1}, csrf=False)) == (403, "csrf_failed")
    assert error_of(alice_api.get("/api/v1/runner/resolve/")) == (405, "method_not_allowed")
    api.refresh_csrf()
    assert error_of(api.post("/api/v1/runner/resolve/", {"a": "${workflow.secrets.X}"})) == (401, "not_authenticated")


# Delete warnings


def test_the_delete_confirmation_lists_the_workflows_that_reference_the_key(alice, team, workflow):
    register_workflow(actor=alice, workspace=team, name="unrelated", definition={"x": 1})
    browser = signed_in_client(alice)
    page = browser.get("/settings/developer/team/secrets/API_KEY/delete/").content.decode()
    assert "1 registered workflow uses this key" in page
    assert "nightly" in page and "unrelated" not in page
    quiet = browser.get("/settings/developer/team/secrets/DB_PASSWORD/delete/").content.decode()
    assert "nightly" in quiet
    create_secret(actor=alice, workspace=team, key="UNUSED", value="v")
    unused = browser.get("/settings/developer/team/secrets/UNUSED/delete/").content.decode()
    assert "No registered workflow in this workspace references this key" in unused


def test_runner_session_cookie_alone_is_not_a_browser_login(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = session_key
    assert browser.get("/settings/developer/team/secrets/").status_code == 403


def test_the_runner_reads_grant_rule_agrees_with_the_one_the_pages_use(alice, bob, make_user, team, other):
    """`secret_row_permission` (joins, for the hot path) and `can_on_secret` (guardian's shortcuts)
    must give the same answer for every user, secret and action."""
    from django.contrib.auth.models import Group, Permission

    from secrets_app import permissions
    from secrets_app.models import Secret
    from secrets_app.permissions import Action

    carol, dave = make_user("carol"), make_user("dave")
    ops = Group.objects.create(name="ops")
    ops.user_set.add(carol)
    dave.user_permissions.add(*Permission.objects.filter(codename__in=["use_tagged_secrets", "view_tagged_secrets"]))
    add_workspace_member(actor=alice, workspace=team, username="dave", role=Role.VIEWER)
    for workspace in (team, other):
        create_secret(actor=alice, workspace=workspace, key="OPS", value="v", tags=["team:ops"])
        create_secret(actor=alice, workspace=workspace, key="DATA", value="v", tags=["team:data"])
        create_secret(actor=alice, workspace=workspace, key="BOTH", value="v", tags=["team:ops", "team:data"])
        create_secret(actor=alice, workspace=workspace, key="PLAIN", value="v")
    grant = grant_tag_permissions
    grant(actor=alice, workspace=team, tag_name="team:ops", permission_names=["use"], username="bob")
    grant(actor=alice, workspace=team, tag_name="team:data", permission_names=["view"], username="bob")
    grant(actor=alice, workspace=team, tag_name="team:data", permission_names=["use", "delete"], group_name="ops")
    grant(actor=alice, workspace=other, tag_name="team:ops", permission_names=["view"], group_name="ops")
    secrets = list(Secret.objects.select_related("workspace"))
    answers = {}
    for user in (alice, bob, carol, dave):
        for action in (Action.VIEW_SECRETS, Action.USE_SECRET, Action.DELETE_SECRET):
            by_joins = set(
                Secret.objects.filter(permissions.secret_row_permission(user, action)).values_list("pk", flat=True)
            )
            by_shortcuts = {s.pk for s in secrets if permissions.can_on_secret(user, action, s)}
            assert by_joins == by_shortcuts, (user, action)
            answers[(user.username, action)] = sorted(
                f"{s.workspace.slug}/{s.key}" for s in secrets if s.pk in by_joins
            )
    assert answers[("bob", Action.USE_SECRET)] == ["team/BOTH", "team/OPS"]
    assert answers[("bob", Action.VIEW_SECRETS)] == ["team/BOTH", "team/DATA", "team/OPS"]
    assert answers[("carol", Action.DELETE_SECRET)] == ["team/BOTH", "team/DATA"]
    assert answers[("carol", Action.VIEW_SECRETS)] == ["other/BOTH", "other/OPS", "team/BOTH", "team/DATA"]
    assert answers[("dave", Action.USE_SECRET)] == []  # a viewer holding only global permissions
    assert len(answers[("alice", Action.USE_SECRET)]) == 8
