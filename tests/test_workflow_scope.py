"""A runner session reads only what its workflow declares: the keys its definition's placeholders
name, and the keys it lists for code that reads by name (`secrets`)."""

from __future__ import annotations

import pytest

from secrets_app.models import AuditEvent
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import error_of
from tests.test_runners import API_KEY_VALUE, events, launch, read, runner_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_secrets(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value=API_KEY_VALUE)
    create_secret(actor=alice, workspace=team, key="DB_URL", value="postgres://app:pw@db/app")
    create_secret(actor=alice, workspace=team, key="CODE_TOKEN", value="code-token")
    return team


@pytest.fixture
def api_key_only(alice, team_secrets):
    return register_workflow(
        actor=alice, workspace=team_secrets, name="deploy", definition={"token": "${workflow.secrets.API_KEY}"}
    )


def test_a_workflow_naming_only_api_key_cannot_read_db_url(alice, team_secrets, api_key_only):
    _, session_key = launch(alice, team_secrets, api_key_only)
    runner = runner_client(session_key)
    assert read(runner, "API_KEY").json()["value"] == API_KEY_VALUE
    refused = read(runner, "DB_URL")
    assert error_of(refused) == (403, "outside_workflow_scope")
    assert "DB_URL" in refused.json()["error"]["message"] and "postgres" not in refused.content.decode()
    (event,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert (event.secret_key, event.detail["reason"]) == ("DB_URL", "outside_workflow_scope")


def test_a_template_naming_an_undeclared_key_is_refused_whole(alice, team_secrets, api_key_only):
    _, session_key = launch(alice, team_secrets, api_key_only)
    answer = runner_client(session_key).post(
        "/api/v1/runner/resolve/", {"a": "${workflow.secrets.API_KEY}", "b": "${workflow.secrets.DB_URL}"}
    )
    assert error_of(answer) == (403, "secrets_refused")
    assert answer.json()["error"]["secrets"] == {"DB_URL": "outside_workflow_scope"}
    assert API_KEY_VALUE not in answer.content.decode()


def test_keys_read_by_name_are_declared_in_the_secrets_list(alice, alice_api, team_secrets):
    created = alice_api.post(
        f"/api/v1/workspaces/{team_secrets.slug}/workflows/",
        {"name": "coded", "definition": {"t": "${workflow.secrets.API_KEY}"}, "secrets": ["CODE_TOKEN", "NOT_YET"]},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secrets"] == ["API_KEY", "CODE_TOKEN", "NOT_YET"]
    assert body["missing_secrets"] == ["NOT_YET"]
    launched = alice_api.post(f"/api/v1/workspaces/{team_secrets.slug}/executions/", {"workflow": "team/coded"})
    runner = runner_client(launched.json()["runner_session"])
    assert read(runner, "CODE_TOKEN").json()["value"] == "code-token"
    assert error_of(read(runner, "DB_URL")) == (403, "outside_workflow_scope")


def test_a_malformed_key_in_the_secrets_list_is_a_field_error(alice_api, team_secrets):
    answer = alice_api.post(
        f"/api/v1/workspaces/{team_secrets.slug}/workflows/",
        {"name": "bad", "definition": {}, "secrets": ["fine", "not a key"]},
    )
    assert error_of(answer)[0] == 400
    assert not team_secrets.workflows.filter(name="bad").exists()


def test_the_workflow_flags_declared_keys_that_are_missing_or_hidden(alice, bob, team_secrets, add_member, bob_api):
    add_member(bob, "viewer")
    register_workflow(actor=alice, workspace=team_secrets, name="nightly", definition={}, secrets=["API_KEY", "GHOST"])
    # A viewer sees no secret: every declared key is hidden from them (a missing one too, which they
    # cannot tell apart); the owner sees every name, and that GHOST is missing.
    body = bob_api.get(f"/api/v1/workspaces/{team_secrets.slug}/workflows/nightly/").json()
    assert (body["secrets"], body["hidden_secrets"], body["missing_secrets"]) == ([], 2, [])
    owner = alice_api_of(alice).get(f"/api/v1/workspaces/{team_secrets.slug}/workflows/nightly/").json()
    assert owner["missing_secrets"] == ["GHOST"]


def alice_api_of(user):
    from tests.conftest import JsonClient

    client = JsonClient()
    assert client.login(user.username).status_code == 200
    return client


def test_a_local_run_has_no_workflow_and_reads_its_personal_workspace(alice, alice_api):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="mine")
    assert alice_api.get("/api/v1/runner/secrets/MINE/").json()["value"] == "mine"


def test_the_workflows_page_registers_keys_read_by_name_and_flags_missing_ones(alice, team_secrets):
    from tests.conftest import signed_in_client

    client = signed_in_client(alice)
    page = f"/settings/developer/{team_secrets.slug}/workflows/"
    response = client.post(
        page, {"name": "coded", "definition": '{"t": "${workflow.secrets.API_KEY}"}', "secrets": "CODE_TOKEN, GHOST"}
    )
    assert response.status_code == 302
    workflow = team_secrets.workflows.get(name="coded")
    assert sorted(workflow.secret_references.values_list("key", flat=True)) == ["API_KEY", "CODE_TOKEN", "GHOST"]
    listed = client.get(page).content.decode()
    assert 'GHOST</span> <span class="badge warning"' in listed
    assert 'CODE_TOKEN</span> <span class="badge warning"' not in listed
    bad = client.post(page, {"name": "bad", "definition": '{"a": 1}', "secrets": "fine not-a-key!"})
    assert bad.status_code == 400
    assert "Not a secret key" in bad.content.decode() and "not-a-key!" in bad.content.decode()


# A runner session learns nothing of its launcher


def test_a_runner_session_sees_its_execution_and_nothing_of_its_launcher(alice, team_secrets, api_key_only):
    alice.email = "alice@example.com"
    alice.save()
    execution, session_key = launch(alice, team_secrets, api_key_only)
    runner = runner_client(session_key)
    who = runner.get("/api/v1/session/").json()
    assert who["user"] is None
    assert who["runner"]["execution"] == str(execution.id) and who["runner"]["workflow"] == "team/deploy"
    seen = runner.get(f"/api/v1/executions/{execution.id}/").json()
    assert seen["launched_by"] is None
    refused_page = runner.get("/settings/developer/team/secrets/")
    assert refused_page.status_code == 403
    page = refused_page.content.decode()
    assert "alice" not in page and "Sign out" not in page and "Account Settings" not in page
    for answer in (who, seen):
        assert "alice" not in str(answer)


def test_a_tag_grantee_does_not_see_the_members(alice, bob, team):
    from secrets_app.services.grants import grant_tag_permissions
    from tests.conftest import signed_in_client

    create_secret(actor=alice, workspace=team, key="SHARED", value="v", tags=["shared"])
    grant_tag_permissions(actor=alice, workspace=team, tag_name="shared", permission_names=["view"], username="bob")
    grantee = signed_in_client(bob)
    assert grantee.get(f"/settings/developer/{team.slug}/secrets/").status_code == 200
    members = grantee.get(f"/settings/developer/{team.slug}/members/")
    assert members.status_code == 403 and "alice" not in members.content.decode().split("<main")[1]


def test_a_viewer_sees_no_hidden_key_names_through_a_workflow(alice, bob, team_secrets, add_member, bob_api):
    from tests.conftest import signed_in_client

    add_member(bob, "viewer")
    register_workflow(
        actor=alice,
        workspace=team_secrets,
        name="nightly",
        definition={"dsn": "postgres://${workflow.secrets.DB_URL}", "t": "${workflow.secrets.API_KEY}"},
    )
    body = bob_api.get(f"/api/v1/workspaces/{team_secrets.slug}/workflows/nightly/").json()
    assert body["secrets"] == [] and body["hidden_secrets"] == 2 and body["missing_secrets"] == []
    assert body["definition"] == {"dsn": "postgres://${workflow.secrets.(hidden)}", "t": "${workflow.secrets.(hidden)}"}
    page = signed_in_client(bob).get(f"/settings/developer/{team_secrets.slug}/workflows/").content.decode()
    assert "DB_URL" not in page and "API_KEY" not in page and ">hidden</span>" in page
