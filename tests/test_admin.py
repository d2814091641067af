"""The admin site: workspace management, read-only secrets and audit log, never a value."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from secrets_app.models import AuditEvent, Membership, Role, Secret, Workspace
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import add_member, create_team_workspace
from tests.conftest import signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user):
    return get_user_model().objects.create_superuser("root", "root@example.com", "x")


@pytest.fixture
def root_client(root) -> Client:
    return signed_in_client(root)


@pytest.fixture
def team_secret(alice, team):
    return create_secret(
        actor=alice, workspace=team, key="ADMIN_CANARY_KEY", value="admin-value-canary", tags=["env:prod"]
    )


def inline_data(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
    return data


def test_secret_list_and_page_show_metadata_never_the_value(root_client, team_secret):
    listing = root_client.get("/admin/secrets_app/secret/").content.decode()
    page = root_client.get(f"/admin/secrets_app/secret/{team_secret.pk}/change/")
    assert "ADMIN_CANARY_KEY" in listing and "env:prod" in listing
    assert page.status_code == 200
    body = page.content.decode()
    assert "ADMIN_CANARY_KEY" in body
    for text in (listing, body):
        assert "admin-value-canary" not in text
        assert "sealed:" not in text and "SealedValue" not in text
    assert 'name="_save"' not in body and 'name="value"' not in body


def test_secrets_cannot_be_added_or_changed_in_the_admin(root_client, team_secret):
    assert root_client.get("/admin/secrets_app/secret/add/").status_code == 403
    response = root_client.post(f"/admin/secrets_app/secret/{team_secret.pk}/change/", {"key": "HIJACK"})
    assert response.status_code == 403
    assert Secret.objects.get(pk=team_secret.pk).key == "ADMIN_CANARY_KEY"


def test_deleting_a_secret_in_the_admin_goes_through_the_service_and_is_audited(root_client, root, team_secret):
    response = root_client.post(f"/admin/secrets_app/secret/{team_secret.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Secret.objects.filter(pk=team_secret.pk).exists()
    assert AuditEvent.objects.filter(action="secret.deleted", actor=root, secret_key="ADMIN_CANARY_KEY").exists()


def test_bulk_delete_action_is_audited_per_secret(root_client, alice, team):
    keys = ["A", "B"]
    ids = [str(create_secret(actor=alice, workspace=team, key=key, value="v").pk) for key in keys]
    root_client.post(
        "/admin/secrets_app/secret/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert not Secret.objects.filter(key__in=keys).exists()
    assert AuditEvent.objects.filter(action="secret.deleted", secret_key__in=keys).count() == 2


def test_audit_log_is_read_only(root_client, team_secret):
    event = AuditEvent.objects.get(action="secret.created", secret_key="ADMIN_CANARY_KEY")
    assert root_client.get("/admin/secrets_app/auditevent/").status_code == 200
    page = root_client.get(f"/admin/secrets_app/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert root_client.post(f"/admin/secrets_app/auditevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    assert root_client.post(f"/admin/secrets_app/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert root_client.get("/admin/secrets_app/auditevent/add/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk, action="secret.created").exists()


def test_tags_use_guardians_object_permission_admin(root_client, team_secret):
    tag = team_secret.tags.get()
    page = root_client.get(f"/admin/secrets_app/tag/{tag.pk}/change/").content.decode()
    assert f"/admin/secrets_app/tag/{tag.pk}/permissions/" in page
    assert root_client.get(f"/admin/secrets_app/tag/{tag.pk}/permissions/").status_code == 200


def test_superuser_manages_team_workspaces_but_not_personal_ones(root_client, team, alice):
    listing = root_client.get("/admin/secrets_app/workspace/").content.decode()
    assert f"/admin/secrets_app/workspace/{team.pk}/change/" in listing
    personal = Workspace.objects.get(personal_owner=alice)
    assert root_client.get(f"/admin/secrets_app/workspace/{personal.pk}/change/").status_code == 302


def test_adding_a_workspace_with_an_owner_in_the_admin(root_client, root, alice):
    data = {"name": "Platform", "slug": "platform"}
    data.update(inline_data("memberships", [{"user": alice.pk, "role": "owner"}]))
    response = root_client.post("/admin/secrets_app/workspace/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    workspace = Workspace.objects.get(slug="platform")
    assert list(workspace.memberships.values_list("user__username", "role")) == [("alice", "owner")]
    assert AuditEvent.objects.filter(action="workspace.created", workspace=workspace, actor=root).exists()
    assert AuditEvent.objects.filter(action="member.added", workspace=workspace, detail__member="alice").exists()


def test_a_workspace_without_an_owner_is_refused_in_the_admin(root_client, alice):
    data = {"name": "Orphan", "slug": "orphan"}
    data.update(inline_data("memberships", [{"user": alice.pk, "role": "member"}]))
    response = root_client.post("/admin/secrets_app/workspace/add/", data)
    assert response.status_code == 200 and "at least one owner" in response.content.decode()
    assert not Workspace.objects.filter(slug="orphan").exists()


def test_demoting_the_last_owner_in_the_admin_is_refused(root_client, team, alice):
    membership = Membership.objects.get(workspace=team, user=alice)
    data = {"name": "Team", "expired_secret_grace_days": 0}
    data.update(
        inline_data(
            "memberships", [{"id": membership.pk, "workspace": team.pk, "user": alice.pk, "role": "admin"}], initial=1
        )
    )
    response = root_client.post(f"/admin/secrets_app/workspace/{team.pk}/change/", data)
    assert response.status_code == 200 and "at least one owner" in response.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_adding_a_member_and_renaming_in_the_admin_is_audited(root_client, team, alice, bob):
    membership = Membership.objects.get(workspace=team, user=alice)
    data = {"name": "Team renamed", "expired_secret_grace_days": 0}
    rows = [
        {"id": membership.pk, "workspace": team.pk, "user": alice.pk, "role": "owner"},
        {"workspace": team.pk, "user": bob.pk, "role": "viewer"},
    ]
    data.update(inline_data("memberships", rows, initial=1))
    response = root_client.post(f"/admin/secrets_app/workspace/{team.pk}/change/", data)
    assert response.status_code == 302
    assert Membership.objects.get(workspace=team, user=bob).role == Role.VIEWER
    assert AuditEvent.objects.filter(action="workspace.renamed", workspace=team).exists()
    assert AuditEvent.objects.filter(action="member.added", detail__member="bob").exists()


def test_adding_a_user_in_the_admin_gives_a_personal_workspace(root_client):
    response = root_client.post(
        "/admin/auth/user/add/",
        {
            "username": "dave",
            "password1": "Dave-long-pass-12",
            "password2": "Dave-long-pass-12",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    assert Workspace.objects.filter(personal_owner__username="dave", kind="personal").exists()


def test_staff_workspace_admin_sees_only_workspaces_they_manage(make_user, alice, team):
    carol = make_user("carol", is_staff=True)
    add_member(actor=alice, workspace=team, username="carol", role=Role.ADMIN)
    other = create_team_workspace(actor=alice, name="Other", slug="other")
    create_secret(actor=alice, workspace=other, key="OTHER_KEY", value="v")
    create_secret(actor=alice, workspace=team, key="TEAM_KEY", value="v")
    client = signed_in_client(carol)
    workspaces = client.get("/admin/secrets_app/workspace/").content.decode()
    secrets = client.get("/admin/secrets_app/secret/").content.decode()
    assert f"/workspace/{team.pk}/change/" in workspaces and f"/workspace/{other.pk}/change/" not in workspaces
    assert "TEAM_KEY" in secrets and "OTHER_KEY" not in secrets


def test_non_staff_users_cannot_enter_the_admin(alice):
    assert signed_in_client(alice).get("/admin/").status_code == 302


@pytest.fixture
def staff_owner(alice, team):
    """alice, staff but not a superuser, owner of the team workspace."""
    alice.is_staff = True
    alice.save()
    return signed_in_client(alice)


def test_staff_who_are_not_superusers_are_not_offered_to_add_a_workspace(staff_owner):
    listing = staff_owner.get("/admin/secrets_app/workspace/")
    assert listing.status_code == 200 and "/admin/secrets_app/workspace/add/" not in listing.content.decode()
    assert staff_owner.get("/admin/secrets_app/workspace/add/").status_code == 403
    response = staff_owner.post("/admin/secrets_app/workspace/add/", {"name": "Sneaky", "slug": "sneaky"})
    assert response.status_code == 403
    assert not Workspace.objects.filter(slug="sneaky").exists()


def test_staff_administer_team_workspaces_only_never_their_personal_one(staff_owner, alice):
    listing = staff_owner.get("/admin/secrets_app/workspace/").content.decode()
    personal = alice.personal_workspace
    team = Workspace.objects.get(slug="team")
    assert f"/admin/secrets_app/workspace/{team.pk}/change/" in listing
    assert f"/admin/secrets_app/workspace/{personal.pk}/change/" not in listing
    assert staff_owner.get(f"/admin/secrets_app/workspace/{personal.pk}/change/").status_code in (302, 404)
    assert staff_owner.post(f"/admin/secrets_app/workspace/{personal.pk}/delete/", {"post": "yes"}).status_code in (
        302,
        404,
    )
    assert Workspace.objects.filter(pk=personal.pk).exists()


def test_a_refusal_by_a_service_in_the_admin_is_a_message_and_changes_nothing(root_client, team_secret, monkeypatch):
    from secrets_app import errors
    from secrets_app.admin import records

    def gone(**kwargs):
        raise errors.SecretNotFound()

    monkeypatch.setattr(records, "delete_secret", gone)
    response = root_client.post(f"/admin/secrets_app/secret/{team_secret.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "Nothing was changed: No such secret in this workspace" in response.content.decode()
    assert Secret.objects.filter(pk=team_secret.pk).exists()


# Superusers administer; they do not read


def test_a_superuser_cannot_add_themselves_nor_change_their_own_role(root, root_client, team):
    from secrets_app.errors import AccessDenied

    with pytest.raises(AccessDenied, match="do not add themselves"):
        add_member(actor=root, workspace=team, username="root", role="owner")
    assert not Membership.objects.filter(workspace=team, user=root).exists()
    api = root_client
    page = api.post(f"/settings/developer/{team.slug}/members/", {"username": "root", "role": "admin"})
    assert page.status_code in (400, 403) and not Membership.objects.filter(workspace=team, user=root).exists()


def test_a_superuser_may_not_look_values_up(root, root_client, team_secret, team):
    from secrets_app.permissions import Action, can

    assert not can(root, Action.FIND_SECRETS_BY_VALUE, team)
    assert root_client.get(f"/settings/developer/{team.slug}/value-lookup/").status_code == 403


def test_access_changes_in_the_user_admin_are_audited(root_client, bob):
    from django.contrib.auth.models import Group

    Group.objects.create(name="ops")
    change = {
        "username": "bob",
        "email": bob.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [Group.objects.get(name="ops").pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    response = root_client.post(f"/admin/auth/user/{bob.pk}/change/", change)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_ACCESS_CHANGED)
    assert event.actor_username == "root"
    assert event.detail["user"] == "bob"
    assert event.detail["is_staff"] == {"from": False, "to": True}
    assert event.detail["groups"] == {"added": ["ops"], "removed": []}


def test_a_password_set_in_the_admin_ends_every_session_of_that_user(root_client, bob):
    bobs_browser = signed_in_client(bob)
    response = root_client.post(
        f"/admin/auth/user/{bob.pk}/password/",
        {"password1": "Set-by-admin-77", "password2": "Set-by-admin-77", "usable_password": "true"},
    )
    assert response.status_code == 302
    assert bobs_browser.get("/settings/account/").status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PASSWORD_SET_BY_ADMIN, detail__user="bob").exists()
    ended = AuditEvent.objects.get(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED)
    assert ended.detail["reason"] == "password_set_by_admin"
