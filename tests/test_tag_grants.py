"""Tag-based object permissions (django-guardian): who reaches which secret, and why."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from secrets_app import permissions
from secrets_app.errors import AccessDenied
from secrets_app.management.commands.seed_workspace import seed_workspace
from secrets_app.models import AuditEvent, Role, Secret, Tag, TagGroupObjectPermission, TagUserObjectPermission
from secrets_app.permissions import Action
from secrets_app.selectors.grants import effective_access, grants_in, tags_visible_to
from secrets_app.selectors.secrets import secrets_visible_to
from secrets_app.selectors.workspaces import workspace_for, workspaces_for
from secrets_app.services.grants import delete_tag, grant_tag_permissions, revoke_tag_grant
from secrets_app.services.secrets import create_secret, tag_secret, untag_secret
from secrets_app.services.workspaces import create_team_workspace
from tests.conftest import JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged(alice, team):
    """In team: OPS_TOKEN (team:ops), DB_PASSWORD (team:data), PLAIN (no tag)."""
    create_secret(actor=alice, workspace=team, key="OPS_TOKEN", value="ops", tags=["team:ops"])
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="db", tags=["team:data"])
    create_secret(actor=alice, workspace=team, key="PLAIN", value="plain")
    return team


def grant(alice, team, tag, *names, user="", group=""):
    return grant_tag_permissions(
        actor=alice, workspace=team, tag_name=tag, permission_names=list(names), username=user, group_name=group
    )


def visible_keys(user, workspace) -> list[str]:
    return [s.key for s in secrets_visible_to(user, workspace)]


def secret(workspace, key) -> Secret:
    return workspace.secrets.get(key=key)


# Reaching secrets through grants


def test_a_user_grant_reveals_only_the_tagged_secrets(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]
    assert permissions.can_on_secret(bob, Action.VIEW_SECRETS, secret(tagged, "OPS_TOKEN"))
    assert not permissions.can_on_secret(bob, Action.VIEW_SECRETS, secret(tagged, "DB_PASSWORD"))


def test_a_group_grant_reaches_the_groups_members_only(alice, bob, make_user, tagged):
    carol = make_user("carol")
    ops = Group.objects.create(name="ops")
    ops.user_set.add(bob)
    grant(alice, tagged, "team:ops", "use", group="ops")
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]
    assert permissions.can_on_secret(bob, Action.USE_SECRET, secret(tagged, "OPS_TOKEN"))
    assert visible_keys(carol, tagged) == []


def test_each_grant_gives_exactly_its_permission(alice, bob, tagged):
    ops = secret(tagged, "OPS_TOKEN")
    grant(alice, tagged, "team:ops", "view", user="bob")
    assert permissions.can_on_secret(bob, Action.VIEW_SECRETS, ops)
    assert not permissions.can_on_secret(bob, Action.USE_SECRET, ops)
    assert not permissions.can_on_secret(bob, Action.DELETE_SECRET, ops)
    grant(alice, tagged, "team:ops", "delete", user="bob")
    assert permissions.can_on_secret(bob, Action.DELETE_SECRET, ops)
    assert not permissions.can_on_secret(bob, Action.USE_SECRET, ops)
    assert not permissions.can_on_secret(bob, Action.TAG_SECRET, ops)


def test_use_or_delete_grants_also_let_you_see_the_secret(alice, bob, make_user, tagged):
    carol = make_user("carol")
    grant(alice, tagged, "team:ops", "use", user="bob")
    grant(alice, tagged, "team:data", "delete", user="carol")
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]
    assert visible_keys(carol, tagged) == ["DB_PASSWORD"]


def test_revoking_a_grant_ends_access_at_once(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", "use", user="bob")
    grant_ids = [g.id for g in grants_in(tagged) if g.grantee == "bob"]
    for grant_id in grant_ids:
        revoke_tag_grant(actor=alice, workspace=tagged, grant_id=grant_id)
    assert visible_keys(bob, tagged) == []
    assert not TagUserObjectPermission.objects.filter(user=bob).exists()


def test_removing_the_tag_from_a_secret_ends_the_access_it_gave(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    untag_secret(actor=alice, secret=secret(tagged, "OPS_TOKEN"), tag_name="team:ops")
    assert visible_keys(bob, tagged) == []


def test_deleting_a_tag_removes_its_grants_and_the_access(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    ops = Group.objects.create(name="ops")
    grant(alice, tagged, "team:ops", "view", group="ops")
    delete_tag(actor=alice, tag=tagged.tags.get(name="team:ops"))
    assert visible_keys(bob, tagged) == []
    assert (
        not TagUserObjectPermission.objects.exists() and not TagGroupObjectPermission.objects.filter(group=ops).exists()
    )
    assert secret(tagged, "OPS_TOKEN").tags.count() == 0
    assert AuditEvent.objects.filter(action="tag.deleted", detail__tag="team:ops").exists()


def test_a_grant_in_one_workspace_gives_nothing_in_another(alice, bob, tagged):
    other = create_team_workspace(actor=alice, name="Other", slug="other")
    create_secret(actor=alice, workspace=other, key="OTHER_OPS", value="v", tags=["team:ops"])
    grant(alice, tagged, "team:ops", "view", "use", "delete", user="bob")
    assert visible_keys(bob, other) == []
    assert not permissions.can_on_secret(bob, Action.USE_SECRET, secret(other, "OTHER_OPS"))
    assert [w.slug for w in workspaces_for(bob)] == ["bob", "team"]


def test_a_viewer_without_grants_sees_nothing(alice, bob, tagged, add_member):
    add_member(bob, Role.VIEWER)
    assert visible_keys(bob, tagged) == []
    assert not tags_visible_to(bob, tagged).exists()


def test_grants_add_to_a_viewer_role_and_never_remove_from_a_member(alice, bob, make_user, tagged, add_member):
    carol = make_user("carol")
    add_member(bob, Role.VIEWER)
    add_member(carol, Role.MEMBER)
    grant(alice, tagged, "team:ops", "view", user="bob")
    grant(alice, tagged, "team:ops", "view", user="carol")
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]
    assert visible_keys(carol, tagged) == ["DB_PASSWORD", "OPS_TOKEN", "PLAIN"]
    assert permissions.can_on_secret(carol, Action.USE_SECRET, secret(tagged, "PLAIN"))


def test_global_permissions_never_widen_object_access(alice, bob, tagged):
    for codename in ("view_tag", "view_tagged_secrets", "use_tagged_secrets", "delete_tagged_secrets"):
        bob.user_permissions.add(Permission.objects.get(codename=codename))
    assert bob.has_perm("secrets_app.view_tag")
    assert visible_keys(bob, tagged) == []
    assert not permissions.can_on_secret(bob, Action.USE_SECRET, secret(tagged, "OPS_TOKEN"))
    assert "team" not in [w.slug for w in workspaces_for(bob)]


def test_grant_only_users_see_the_workspace_in_the_switcher_and_only_granted_secrets(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    client = signed_in_client(bob)
    page = client.get("/settings/developer/team/secrets/").content.decode()
    assert 'value="team"' in page
    assert "OPS_TOKEN" in page and "DB_PASSWORD" not in page and "PLAIN" not in page
    assert "Add a secret" not in page
    assert "Who can reach this secret" not in client.get("/settings/developer/team/secrets/OPS_TOKEN/").content.decode()
    assert client.get("/settings/developer/team/secrets/PLAIN/").status_code == 404


def test_a_workspace_you_cannot_reach_at_all_is_404_not_403(bob_api, tagged):
    assert error_of(bob_api.get("/api/v1/workspaces/team/secrets/")) == (404, "workspace_not_found")
    assert error_of(bob_api.get("/api/v1/workspaces/team/tags/team:ops/grants/")) == (404, "workspace_not_found")
    assert signed_in_client(tagged.memberships.get().user).get("/settings/developer/nope/access/").status_code == 404


def test_a_view_grant_lets_you_see_but_not_delete(alice, bob, bob_api, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    assert error_of(bob_api.delete("/api/v1/workspaces/team/secrets/OPS_TOKEN/")) == (403, "permission_denied")
    assert tagged.secrets.filter(key="OPS_TOKEN").exists()


def test_a_delete_grant_lets_you_delete(alice, bob, bob_api, tagged):
    grant(alice, tagged, "team:ops", "delete", user="bob")
    page = signed_in_client(bob).get("/settings/developer/team/secrets/").content.decode()
    assert "/settings/developer/team/secrets/OPS_TOKEN/delete/" in page
    assert bob_api.delete("/api/v1/workspaces/team/secrets/OPS_TOKEN/").status_code == 204
    assert not tagged.secrets.filter(key="OPS_TOKEN").exists()


def test_only_grant_managers_may_put_a_granted_tag_on_a_secret(alice, bob, make_user, tagged, add_member):
    add_member(bob, Role.MEMBER)
    make_user("carol")
    grant(alice, tagged, "team:ops", "use", user="carol")
    with pytest.raises(AccessDenied) as refused:
        tag_secret(actor=bob, secret=secret(tagged, "PLAIN"), tag_names=["team:ops"])
    assert "gives other people access" in str(refused.value)
    with pytest.raises(AccessDenied):
        create_secret(actor=bob, workspace=tagged, key="NEW", value="v", tags=["team:ops"])
    assert not tagged.secrets.filter(key="NEW").exists()
    tag_secret(actor=bob, secret=secret(tagged, "PLAIN"), tag_names=["harmless"])
    tag_secret(actor=alice, secret=secret(tagged, "PLAIN"), tag_names=["team:ops"])
    assert sorted(secret(tagged, "PLAIN").tags.values_list("name", flat=True)) == ["harmless", "team:ops"]


# Managing grants: services and JSON


def test_grant_and_revoke_are_audited(alice, bob, tagged):
    grant(alice, tagged, "team:ops", "view", "use", user="bob")
    granted = AuditEvent.objects.filter(action="tag.granted").order_by("id")
    assert [e.detail for e in granted] == [
        {"tag": "team:ops", "user": "bob", "permission": "view"},
        {"tag": "team:ops", "user": "bob", "permission": "use"},
    ]
    assert all(e.actor == alice and e.workspace == tagged for e in granted)
    grant_id = next(g.id for g in grants_in(tagged) if g.permission == "use")
    revoke_tag_grant(actor=alice, workspace=tagged, grant_id=grant_id)
    revoked = AuditEvent.objects.get(action="tag.revoked")
    assert revoked.detail == {"tag": "team:ops", "user": "bob", "permission": "use"}


def test_grants_api_lists_creates_and_revokes(alice_api, bob, tagged):
    Group.objects.create(name="ops").user_set.add(bob)
    url = "/api/v1/workspaces/team/tags/team:ops/grants/"
    created = alice_api.post(url, {"user": "bob", "permissions": ["view", "use"]})
    assert created.status_code == 201
    assert [(g["user"], g["permission"]) for g in created.json()["grants"]] == [("bob", "view"), ("bob", "use")]
    alice_api.post(url, {"group": "ops", "permissions": ["view"]})
    listed = alice_api.get(url).json()
    assert listed["tag"] == "team:ops"
    group_grant = next(g for g in listed["grants"] if "group" in g)
    assert group_grant == {
        "id": group_grant["id"],
        "tag": "team:ops",
        "group": "ops",
        "permission": "view",
        "group_size": 1,
    }
    assert alice_api.delete(f"{url}{group_grant['id']}/").status_code == 204
    assert len(alice_api.get(url).json()["grants"]) == 2


def test_granting_on_a_new_tag_creates_it(alice_api, tagged):
    response = alice_api.post(
        "/api/v1/workspaces/team/tags/env:prod/grants/", {"user": "alice", "permissions": ["view"]}
    )
    assert response.status_code == 201 and Tag.objects.filter(workspace=tagged, name="env:prod").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"user": "bob", "group": "ops", "permissions": ["view"]}, (400, "invalid_input")),
        ({"permissions": ["view"]}, (400, "invalid_input")),
        ({"user": "bob", "permissions": []}, (400, "invalid_input")),
        ({"user": "bob", "permissions": ["admin"]}, (400, "invalid_input")),
        ({"user": "bob", "permissions": "view"}, (400, "invalid_input")),
        ({"user": "nobody", "permissions": ["view"]}, (404, "user_not_found")),
        ({"group": "nogroup", "permissions": ["view"]}, (404, "group_not_found")),
        ({"user": "bob", "permissions": ["view"], "extra": 1}, (400, "invalid_input")),
    ],
)
def test_bad_grant_requests_are_refused_and_change_nothing(alice_api, bob, tagged, body, expected):
    Group.objects.create(name="ops")
    before = TagUserObjectPermission.objects.count(), AuditEvent.objects.count()
    assert error_of(alice_api.post("/api/v1/workspaces/team/tags/team:ops/grants/", body)) == expected
    assert (TagUserObjectPermission.objects.count(), AuditEvent.objects.count()) == before


def test_an_invalid_tag_name_in_a_grant_is_400(alice_api, bob, tagged):
    response = alice_api.post("/api/v1/workspaces/team/tags/bad!tag/grants/", {"user": "bob", "permissions": ["view"]})
    assert error_of(response) == (400, "invalid_input")
    assert not Tag.objects.filter(name="bad!tag").exists()


def test_a_repeated_grant_is_409(alice_api, bob, tagged):
    url = "/api/v1/workspaces/team/tags/team:ops/grants/"
    alice_api.post(url, {"user": "bob", "permissions": ["view"]})
    assert error_of(alice_api.post(url, {"user": "bob", "permissions": ["view"]})) == (409, "grant_exists")


def test_grants_cannot_be_made_in_a_personal_workspace(alice_api, bob):
    response = alice_api.post("/api/v1/workspaces/alice/tags/mine/grants/", {"user": "bob", "permissions": ["view"]})
    assert error_of(response) == (400, "invalid_operation")


def test_members_cannot_manage_grants(bob, bob_api, tagged, add_member):
    add_member(bob, Role.MEMBER)
    url = "/api/v1/workspaces/team/tags/team:ops/grants/"
    assert error_of(bob_api.get(url)) == (403, "permission_denied")
    assert error_of(bob_api.post(url, {"user": "bob", "permissions": ["view"]})) == (403, "permission_denied")
    assert not TagUserObjectPermission.objects.exists()


def test_revoking_an_unknown_grant_is_404(alice_api, tagged):
    for grant_id in ("user-999", "group-1", "nonsense", "user-abc"):
        response = alice_api.delete(f"/api/v1/workspaces/team/tags/team:ops/grants/{grant_id}/")
        assert error_of(response) == (404, "grant_not_found")


def test_a_grant_is_revoked_only_through_its_own_tag(alice, alice_api, bob, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    grant_id = grants_in(tagged)[0].id
    assert error_of(alice_api.delete(f"/api/v1/workspaces/team/tags/team:data/grants/{grant_id}/"))[0] == 404
    assert alice_api.delete(f"/api/v1/workspaces/team/tags/team:ops/grants/{grant_id}/").status_code == 204


def test_tags_api_lists_visible_tags_and_deletes(alice_api, alice, bob, bob_api, tagged):
    grant(alice, tagged, "team:ops", "view", user="bob")
    assert alice_api.get("/api/v1/workspaces/team/tags/").json()["tags"] == [
        {"name": "team:data", "secrets": 1, "protected": False},
        {"name": "team:ops", "secrets": 1, "protected": False},
    ]
    assert bob_api.get("/api/v1/workspaces/team/tags/").json()["tags"] == [
        {"name": "team:ops", "secrets": 1, "protected": False}
    ]
    assert error_of(bob_api.delete("/api/v1/workspaces/team/tags/team:ops/")) == (403, "permission_denied")
    assert alice_api.delete("/api/v1/workspaces/team/tags/team:ops/").status_code == 204
    assert error_of(alice_api.delete("/api/v1/workspaces/team/tags/team:ops/")) == (404, "tag_not_found")


def test_list_api_filters_by_tag_and_searches_by_key(alice_api, tagged):
    by_tag = alice_api.get("/api/v1/workspaces/team/secrets/?tag=team:ops").json()
    assert [s["key"] for s in by_tag["secrets"]] == ["OPS_TOKEN"]
    by_key = alice_api.get("/api/v1/workspaces/team/secrets/?q=pass").json()
    assert [s["key"] for s in by_key["secrets"]] == ["DB_PASSWORD"]


# The Access page and effective access


def test_access_page_grants_and_revokes(alice, bob, tagged):
    client = signed_in_client(alice)
    response = client.post(
        "/settings/developer/team/access/",
        {"tag": "team:ops", "grantee_kind": "user", "grantee": "bob", "permissions": ["view", "use"]},
        follow=True,
    )
    assert "Granted view, use on tag team:ops to bob." in response.content.decode()
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]
    for grant_id in [g.id for g in grants_in(tagged)]:
        client.post(f"/settings/developer/team/access/grants/{grant_id}/revoke/")
    assert visible_keys(bob, tagged) == []


def test_access_page_shows_errors(alice, tagged):
    response = signed_in_client(alice).post(
        "/settings/developer/team/access/",
        {"tag": "team:ops", "grantee_kind": "user", "grantee": "ghost", "permissions": ["view"]},
    )
    assert response.status_code == 400 and "No active user named" in response.content.decode()


def test_access_page_is_for_grant_managers_only(bob, tagged, add_member):
    add_member(bob, Role.MEMBER)
    assert signed_in_client(bob).get("/settings/developer/team/access/").status_code == 403


def test_secret_page_shows_who_can_reach_it_and_why(alice, bob, make_user, tagged, add_member):
    carol = make_user("carol")
    add_member(carol, Role.VIEWER)
    Group.objects.create(name="ops").user_set.add(carol)
    grant(alice, tagged, "team:ops", "use", user="bob")
    grant(alice, tagged, "team:ops", "view", group="ops")
    entries = effective_access(secret(tagged, "OPS_TOKEN")).entries
    assert [(e.grantee_kind, e.grantee, e.reason, e.permissions) for e in entries] == [
        ("user", "alice", "role: owner", ("view", "use", "delete")),
        ("user", "bob", "tag team:ops", ("use",)),
        ("group", "ops (1 users)", "tag team:ops", ("view",)),
    ]
    page = signed_in_client(alice).get("/settings/developer/team/secrets/OPS_TOKEN/").content.decode()
    assert "Who can reach this secret" in page and "tag team:ops" in page and "role: owner" in page


def test_guardian_admin_for_tags_grants_through_the_services(alice, bob, tagged, make_user):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    tag = tagged.tags.get(name="team:ops")
    client = signed_in_client(root)
    form_page = client.get(f"/admin/secrets_app/tag/{tag.pk}/permissions/user-manage/{bob.pk}/").content.decode()
    assert "use_tagged_secrets" in form_page and "change_tag" not in form_page
    response = client.post(
        f"/admin/secrets_app/tag/{tag.pk}/permissions/user-manage/{bob.pk}/", {"permissions": ["use_tagged_secrets"]}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="tag.granted", actor=root, detail__user="bob").exists()
    assert permissions.can_on_secret(bob, Action.USE_SECRET, secret(tagged, "OPS_TOKEN"))
    client.post(
        f"/admin/secrets_app/tag/{tag.pk}/permissions/user-manage/{bob.pk}/", {"permissions": ["view_tagged_secrets"]}
    )
    assert AuditEvent.objects.filter(
        action="tag.revoked", actor=root, detail__user="bob", detail__permission="use"
    ).exists()
    assert not permissions.can_on_secret(bob, Action.USE_SECRET, secret(tagged, "OPS_TOKEN"))
    assert visible_keys(bob, tagged) == ["OPS_TOKEN"]


# Scale: a fixed number of queries, whatever the size


def test_visible_secrets_are_one_query(alice, bob, tagged, django_assert_num_queries):
    grant(alice, tagged, "team:ops", "view", user="bob")
    Group.objects.create(name="g").user_set.add(bob)
    workspace = workspace_for(bob, "team")
    with django_assert_num_queries(1):
        keys = list(secrets_visible_to(bob, workspace).prefetch_related(None).values_list("key", flat=True))
    assert keys == ["OPS_TOKEN"]


def _queries_for(path: str, client) -> int:
    client.get(path)  # warm the per-process caches (content types, session)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_secrets_page_and_list_api_run_a_constant_number_of_queries():
    small = seed_workspace(slug="small", secrets=100, tags=20, grants=50)
    large = seed_workspace(slug="large", secrets=10_000, tags=200, grants=1_000)
    assert large.workspace.secrets.count() == 10_000
    assert (
        TagUserObjectPermission.objects.filter(content_object__workspace=large.workspace).count()
        + (TagGroupObjectPermission.objects.filter(content_object__workspace=large.workspace).count())
        == 1_000
    )
    counts = {}
    for name, seeded in (("small", small), ("large", large)):
        grantee = seeded.grantee_users[7]  # reaches secrets through user and group grants only
        member = seeded.owner
        grantee_api, member_api = JsonClient(), JsonClient()
        grantee_api.client.force_login(grantee)
        member_api.client.force_login(member)
        counts[name] = {
            "member page": _queries_for(f"/settings/developer/{name}/secrets/", signed_in_client(member)),
            "grantee page": _queries_for(f"/settings/developer/{name}/secrets/", signed_in_client(grantee)),
            "filtered page": _queries_for(
                f"/settings/developer/{name}/secrets/?tag=team:t007&q=SECRET", signed_in_client(member)
            ),
            "grantee api": _queries_for(f"/api/v1/workspaces/{name}/secrets/", grantee_api.client),
            "member api page 2": _queries_for(f"/api/v1/workspaces/{name}/secrets/?page=2", member_api.client),
        }
        assert secrets_visible_to(grantee, workspace_for(grantee, name)).exists()
    assert counts["small"] == counts["large"], counts
    assert max(counts["large"].values()) <= 9, counts  # the page's "same value as" keys; the two-factor policy
