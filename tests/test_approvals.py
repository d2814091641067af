"""Protected secrets need approval: a protected tag puts its secrets behind a second person."""

from __future__ import annotations

import pytest

from secrets_app.models import AuditEvent, ExecutionApproval, Tag
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import JsonClient, error_of
from tests.test_runners import launch, read, runner_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def protected(alice, team):
    create_secret(actor=alice, workspace=team, key="PROD_DB", value="prod-db-pass", tags=["env:prod"])
    create_secret(actor=alice, workspace=team, key="API_KEY", value="api-v")
    Tag.objects.filter(workspace=team, name="env:prod").update(protected=True)
    return register_workflow(
        actor=alice,
        workspace=team,
        name="deploy",
        definition={"db": "${workflow.secrets.PROD_DB}", "k": "${workflow.secrets.API_KEY}"},
    )


def signed_in(username: str) -> JsonClient:
    client = JsonClient()
    assert client.login(username).status_code == 200
    return client


def test_a_protected_read_waits_for_another_admin(alice, bob, team, add_member, protected):
    add_member(bob, "admin")
    execution, session_key = launch(alice, team, protected)
    runner = runner_client(session_key)
    assert read(runner, "API_KEY").json()["value"] == "api-v"  # unprotected: no approval needed
    assert error_of(read(runner, "PROD_DB")) == (403, "approval_required")
    alice_api = signed_in("alice")
    seen = alice_api.get(f"/api/v1/executions/{execution.id}/").json()
    assert seen["status"] == "waiting_for_approval" and seen["protected_keys_awaiting_approval"] == ["PROD_DB"]

    (pending,) = signed_in("bob").get(f"/api/v1/workspaces/{team.slug}/approvals/").json()["approvals"]
    assert (pending["launched_by"], pending["protected_keys"], pending["status"]) == ("alice", ["PROD_DB"], "pending")
    assert "prod-db-pass" not in str(pending)
    # The launcher may not approve their own run.
    refused = alice_api.post(f"/api/v1/approvals/{pending['id']}/approve/")
    assert error_of(refused) == (403, "permission_denied")
    approved = signed_in("bob").post(f"/api/v1/approvals/{pending['id']}/approve/")
    assert approved.status_code == 200 and approved.json()["decided_by"] == "bob"
    assert read(runner, "PROD_DB").json()["value"] == "prod-db-pass"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"execution.approval_requested", "execution.approved"} <= actions


def test_a_rejected_run_stays_refused_and_an_unfinished_request_expires(alice, bob, team, add_member, protected):
    from secrets_app.services.runs import finish_execution

    add_member(bob, "admin")
    _, session_key = launch(alice, team, protected)
    approval = ExecutionApproval.objects.get()
    rejected = signed_in("bob").post(f"/api/v1/approvals/{approval.pk}/reject/")
    assert rejected.json()["status"] == "rejected"
    assert error_of(read(runner_client(session_key), "PROD_DB")) == (403, "approval_required")
    again = signed_in("bob").post(f"/api/v1/approvals/{approval.pk}/approve/")
    assert error_of(again)[0] == 409
    second, _ = launch(alice, team, protected)
    finish_execution(actor=alice, execution=second)
    assert ExecutionApproval.objects.get(execution=second).status == "expired"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.APPROVAL_EXPIRED, execution_id=second.id).exists()


def test_owners_and_admins_protect_a_tag_audited(alice, bob, team, add_member):
    add_member(bob, "member")
    create_secret(actor=alice, workspace=team, key="K", value="v", tags=["pci"])
    member = signed_in("bob").send("PATCH", f"/api/v1/workspaces/{team.slug}/tags/pci/", {"protected": True})
    assert error_of(member) == (403, "permission_denied")
    owner = signed_in("alice").send("PATCH", f"/api/v1/workspaces/{team.slug}/tags/pci/", {"protected": True})
    assert owner.json() == {"name": "pci", "secrets": 1, "protected": True}
    event = AuditEvent.objects.get(action=AuditEvent.Action.TAG_PROTECTED)
    assert event.detail == {"tag": "pci", "protected": True}
    listed = signed_in("alice").get(f"/api/v1/workspaces/{team.slug}/tags/").json()["tags"]
    assert listed == [{"name": "pci", "secrets": 1, "protected": True}]


def test_a_member_cannot_list_or_decide_approvals(alice, bob, carol_member, team, protected):
    launch(alice, team, protected)
    approval = ExecutionApproval.objects.get()
    assert error_of(carol_member.get(f"/api/v1/workspaces/{team.slug}/approvals/"))[0] == 403
    assert error_of(carol_member.post(f"/api/v1/approvals/{approval.pk}/approve/"))[0] == 403
    assert error_of(carol_member.post("/api/v1/approvals/٣/approve/"))[0] == 404


@pytest.fixture
def carol_member(make_user, add_member):
    add_member(make_user("carol"), "member")
    return signed_in("carol")


def test_the_runner_read_still_costs_a_fixed_number_of_queries(alice, team, protected, django_assert_max_num_queries):
    _, session_key = launch(alice, team, protected)
    runner = runner_client(session_key)
    read(runner, "API_KEY")
    with django_assert_max_num_queries(4):
        assert read(runner, "API_KEY").status_code == 200


def test_the_pages_protect_a_tag_and_decide_a_request(alice, bob, team, add_member, protected):
    from tests.conftest import signed_in_client

    add_member(bob, "admin")
    owner = signed_in_client(alice)
    access = f"/settings/developer/{team.slug}/access/"
    assert "protected</span>" in owner.get(access).content.decode()
    response = owner.post(f"{access}tags/env:prod/protect/", {"protected": "false"})
    assert response.status_code == 302 and not Tag.objects.get(name="env:prod").protected
    owner.post(f"{access}tags/env:prod/protect/", {"protected": "true"})
    assert Tag.objects.get(name="env:prod").protected
    _, session_key = launch(alice, team, protected)
    approval = ExecutionApproval.objects.get()
    page = f"/settings/developer/{team.slug}/approvals/"
    mine = owner.get(page).content.decode()
    assert "PROD_DB" in mine and "You launched it" in mine and "prod-db-pass" not in mine
    assert owner.post(f"/settings/approvals/{approval.pk}/approve/").status_code == 403
    assert ExecutionApproval.objects.get().status == "pending"  # the launcher may not
    admin = signed_in_client(bob)
    assert admin.post(f"/settings/approvals/{approval.pk}/approve/").status_code == 302
    assert ExecutionApproval.objects.get().status == "approved"
    assert read(runner_client(session_key), "PROD_DB").json()["value"] == "prod-db-pass"
    assert signed_in_client(bob).get(page).status_code == 200


def test_a_members_stolen_session_cannot_read_a_protected_value_alone(alice, bob, team, add_member, protected):
    """The end-to-end check: bob's session (fresh, so past re-authentication) launches and reads; the
    protected value needs a second person, and bob cannot be that person."""
    add_member(bob, "admin")
    thief = signed_in("bob")
    launched = thief.post(f"/api/v1/workspaces/{team.slug}/executions/", {"workflow": f"{team.slug}/deploy"})
    assert launched.status_code == 201 and launched.json()["status"] == "waiting_for_approval"
    runner = runner_client(launched.json()["runner_session"])
    assert error_of(read(runner, "PROD_DB")) == (403, "approval_required")
    (request,) = thief.get(f"/api/v1/workspaces/{team.slug}/approvals/").json()["approvals"]
    assert error_of(thief.post(f"/api/v1/approvals/{request['id']}/approve/")) == (403, "permission_denied")
    assert error_of(read(runner, "PROD_DB")) == (403, "approval_required")


def test_the_launch_menu_says_which_workspaces_would_refuse_every_read(alice, team, protected):
    from secrets_app.services.workspaces import create_team_workspace
    from tests.conftest import signed_in_client

    create_team_workspace(actor=alice, name="Other", slug="other")
    page = signed_in_client(alice).get(f"/settings/developer/{team.slug}/workflows/").content.decode()
    assert "Other (not its home: every read refused)" in page
    assert "Team (not its home" not in page


# What an attacker tried (each once a hole)


def test_a_member_cannot_lift_the_protection_by_untagging(alice, bob, team, add_member, protected):
    add_member(bob, "member")
    member = signed_in("bob")
    untag = member.delete(f"/api/v1/workspaces/{team.slug}/secrets/PROD_DB/tags/env:prod/")
    assert error_of(untag) == (403, "permission_denied")
    assert Tag.objects.get(name="env:prod").secret_tags.filter(secret__key="PROD_DB").exists()


def test_a_superuser_cannot_grant_themselves_access(make_user, team, alice):
    root = make_user("root", is_staff=True, is_superuser=True)
    create_secret(actor=alice, workspace=team, key="CI", value="plain-value", tags=["ci"])
    client = signed_in("root")
    answer = client.post(f"/api/v1/workspaces/{team.slug}/tags/ci/grants/", {"user": "root", "permissions": ["use"]})
    assert error_of(answer) == (403, "permission_denied")
    assert "grant themselves" in answer.json()["error"]["message"]
    assert root.pk not in {grant.user_id for grant in Tag.objects.get(name="ci").user_grants.all()}


def test_an_approval_covers_only_the_keys_its_approver_saw(alice, bob, team, add_member):
    add_member(bob, "admin")
    create_secret(actor=alice, workspace=team, key="LOW", value="low-v", tags=["low"])
    create_secret(actor=alice, workspace=team, key="CROWN", value="crown-v", tags=["crown"])
    Tag.objects.filter(name="low").update(protected=True)
    workflow = register_workflow(actor=alice, workspace=team, name="w", definition={}, secrets=["LOW", "CROWN"])
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    approval = ExecutionApproval.objects.get()
    assert signed_in("bob").post(f"/api/v1/approvals/{approval.pk}/approve/").status_code == 200
    assert read(runner, "LOW").json()["value"] == "low-v"
    Tag.objects.filter(name="crown").update(protected=True)  # protected after the approval
    assert error_of(read(runner, "CROWN")) == (403, "approval_required")
    # The refusal asks again, for both keys, so that someone can approve what they now see.
    approval.refresh_from_db()
    assert (approval.status, approval.protected_keys) == ("pending", ["CROWN", "LOW"])
    assert error_of(read(runner, "LOW")) == (403, "approval_required")
    signed_in("bob").post(f"/api/v1/approvals/{approval.pk}/approve/")
    assert read(runner, "CROWN").json()["value"] == "crown-v"


def test_a_viewer_sees_no_protected_key_names_of_a_waiting_execution(alice, bob, team, add_member, protected):
    add_member(bob, "viewer")
    launch(alice, team, protected)
    (listed,) = signed_in("bob").get(f"/api/v1/workspaces/{team.slug}/executions/").json()["executions"]
    assert listed["status"] == "waiting_for_approval"
    assert listed["protected_keys_awaiting_approval"] == ["(hidden)"]


def test_a_definition_hides_names_in_its_keys_too(alice, bob, team, add_member):
    from secrets_app.placeholders import hide_names

    document = {"env": {"PROD_DB_PASSWORD": "${workflow.secrets.PROD_DB_PASSWORD}"}, "${workflow.secrets.X}": 1}
    assert hide_names(document, {"PROD_DB_PASSWORD", "X"}) == {
        "env": {"(hidden)": "${workflow.secrets.(hidden)}"},
        "${workflow.secrets.(hidden)}": 1,
    }


def test_a_runner_of_a_personal_workflow_does_not_learn_its_owners_name(alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="m")
    workflow = register_workflow(
        actor=alice, workspace=alice.personal_workspace, name="mine", definition={"m": "${workflow.secrets.MINE}"}
    )
    execution, session_key = launch(alice, alice.personal_workspace, workflow)
    runner = runner_client(session_key)
    who = runner.get("/api/v1/session/").json()["runner"]
    seen = runner.get(f"/api/v1/executions/{execution.id}/").json()
    assert (who["workflow"], who["workspace"]) == ("(personal)/mine", "(personal)")
    assert "alice" not in str(who) and "alice" not in str(seen)


def test_a_superuser_is_offered_no_decision(make_user, alice, team, protected):
    from tests.conftest import signed_in_client

    launch(alice, team, protected)
    root = signed_in_client(make_user("root", is_staff=True, is_superuser=True))
    page = root.get(f"/settings/developer/{team.slug}/approvals/").content.decode()
    assert "PROD_DB" in page and ">Approve</button>" not in page
    assert "An owner or admin of this workspace decides." in page
