"""Every list an answer or a page shows is bounded: a page of at most PAGE_SIZE rows, or the first
few rows and how many more there are. The data grows; no one request's answer does."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from secrets_app.admin.workspaces import ADMIN_INLINE_MEMBERS
from secrets_app.models import AuditEvent, Membership, Role, Secret
from secrets_app.selectors.grants import ACCESS_LISTED, TAG_MENU_SIZE
from secrets_app.selectors.pagination import PAGE_SIZE
from secrets_app.selectors.runs import WORKFLOW_KEYS_LISTED, WORKFLOWS_USING_KEY_LISTED
from secrets_app.selectors.secrets import SAME_VALUE_LISTED, VALUE_LOOKUP_LISTED
from secrets_app.selectors.workspaces import WORKSPACE_MENU_SIZE
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret, import_secrets
from secrets_app.services.workspaces import add_member, create_team_workspace
from secrets_app.validators import SECRET_MAX_TAGS, TEMPLATE_MAX_NAMES
from tests.conftest import JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

TAGS = [f"t{n:02}" for n in range(SECRET_MAX_TAGS + 1)]


def many_users(count: int, prefix: str = "user") -> list:
    return [get_user_model().objects.create_user(f"{prefix}{n:03}") for n in range(count)]


# Tags on a secret


def test_a_secret_carries_at_most_50_tags_given_at_once(alice_api, team):
    answer = alice_api.post("/api/v1/workspaces/team/secrets/", {"key": "K", "value": "v", "tags": TAGS})
    assert error_of(answer) == (400, "invalid_input")
    assert "at most 50 tags" in answer.json()["error"]["fields"]["tags"][0]
    assert not Secret.objects.exists()
    ok = alice_api.post("/api/v1/workspaces/team/secrets/", {"key": "K", "value": "v", "tags": TAGS[:SECRET_MAX_TAGS]})
    assert ok.status_code == 201 and len(ok.json()["tags"]) == SECRET_MAX_TAGS


def test_adding_tags_past_50_is_refused_and_adds_none(alice, alice_api, team):
    create_secret(actor=alice, workspace=team, key="K", value="v", tags=TAGS[:49])
    answer = alice_api.post("/api/v1/workspaces/team/secrets/K/tags/", {"tags": TAGS[49:]})
    assert error_of(answer) == (400, "invalid_input")
    assert "not 51" in answer.json()["error"]["fields"]["tags"][0]
    assert Secret.objects.get(key="K").tags.count() == 49
    # A tag it already carries does not count twice.
    assert alice_api.post("/api/v1/workspaces/team/secrets/K/tags/", {"tags": [TAGS[0], TAGS[49]]}).status_code == 200
    assert Secret.objects.get(key="K").tags.count() == SECRET_MAX_TAGS


def test_the_tag_limit_holds_on_the_form_and_the_import(alice, team):
    # The Secrets page's own form.
    browser = signed_in_client(alice)
    page = browser.post("/settings/developer/team/secrets/", {"key": "K", "value": "v", "tags": " ".join(TAGS)})
    assert page.status_code == 400 and "at most 50 tags" in page.content.decode()
    with pytest.raises(Exception, match="at most 50 tags"):
        import_secrets(actor=alice, workspace=team, entries=[("A", "1", TAGS)])
    answer = JsonClient()
    answer.login("alice")
    imported = answer.post("/api/v1/workspaces/team/secrets/import/", {"dotenv": "A=1\n", "tags": TAGS})
    assert error_of(imported) == (400, "invalid_input")
    assert not Secret.objects.exists()


# Keys holding the same value, and the value lookup


def test_same_value_lists_ten_keys_and_counts_the_rest(alice, alice_api, team):
    import_secrets(
        actor=alice, workspace=team, entries=[(f"K{n:02}", "shared", []) for n in range(SAME_VALUE_LISTED + 3)]
    )
    listed = alice_api.get("/api/v1/workspaces/team/secrets/").json()["secrets"]
    first = listed[0]
    assert first["key"] == "K00"
    assert first["same_value_as"] == [f"K{n:02}" for n in range(1, SAME_VALUE_LISTED + 1)]
    assert first["same_value_count"] == SAME_VALUE_LISTED + 2
    page = signed_in_client(alice).get("/settings/developer/team/secrets/K00/").content.decode()
    assert "and 2 more" in page


def test_the_value_lookup_names_100_keys_and_counts_them_all(alice, alice_api, team):
    total = VALUE_LOOKUP_LISTED + 5
    import_secrets(actor=alice, workspace=team, entries=[(f"K{n:03}", "leaked", []) for n in range(total)])
    answer = alice_api.post("/api/v1/workspaces/team/value-lookup/", {"value": "leaked"}).json()
    assert len(answer["keys"]) == VALUE_LOOKUP_LISTED and answer["keys"][0] == "K000" and answer["count"] == total
    event = AuditEvent.objects.get(action=AuditEvent.Action.VALUE_LOOKED_UP)
    assert len(event.detail["matches"]) == VALUE_LOOKUP_LISTED and event.detail["match_count"] == total
    page = signed_in_client(alice).post("/settings/developer/team/value-lookup/", {"value": "leaked"}).content.decode()
    assert f"Stored as {total} secrets" in page and f"The first {VALUE_LOOKUP_LISTED} by key are listed" in page


def test_the_secrets_page_costs_the_same_queries_however_many_share_a_value(alice, team):
    browser = signed_in_client(alice)
    import_secrets(actor=alice, workspace=team, entries=[(f"A{n:02}", "same", []) for n in range(3)])
    browser.get("/settings/developer/team/secrets/")  # the session is loaded and cached once
    with CaptureQueriesContext(connection) as few:
        assert browser.get("/settings/developer/team/secrets/").status_code == 200
    import_secrets(actor=alice, workspace=team, entries=[(f"B{n:03}", "same", []) for n in range(200)])
    with CaptureQueriesContext(connection) as many:
        assert browser.get("/settings/developer/team/secrets/").status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


# Lists of the API, a page at a time


def test_every_list_of_the_api_is_a_page(alice, alice_api, team, make_user):
    # Workspaces: the personal one and 51 team ones.
    for n in range(PAGE_SIZE):
        create_team_workspace(actor=alice, name=f"W{n:02}", slug=f"w{n:02}")
    first = alice_api.get("/api/v1/workspaces/").json()
    assert (first["count"], first["page"], first["pages"], len(first["workspaces"])) == (PAGE_SIZE + 2, 1, 2, PAGE_SIZE)
    second = alice_api.get("/api/v1/workspaces/?page=2").json()
    assert [w["slug"] for w in second["workspaces"]] == ["w48", "w49"]
    assert error_of(alice_api.get("/api/v1/workspaces/?page=3")) == (404, "page_not_found")
    # Tags: 51 of them, on two secrets.
    create_secret(actor=alice, workspace=team, key="A", value="a", tags=TAGS[:40])
    create_secret(actor=alice, workspace=team, key="B", value="b", tags=TAGS[40:])
    tags = alice_api.get("/api/v1/workspaces/team/tags/?page=2").json()
    assert (tags["count"], tags["pages"], tags["tags"]) == (51, 2, [{"name": "t50", "secrets": 1, "protected": False}])
    # Grants: 51 users granted "use" on one tag.
    for user in many_users(PAGE_SIZE + 1):
        grant_tag_permissions(
            actor=alice, workspace=team, tag_name="t00", permission_names=["use"], username=user.username
        )
    grants = alice_api.get("/api/v1/workspaces/team/tags/t00/grants/").json()
    assert (grants["count"], grants["pages"], len(grants["grants"])) == (PAGE_SIZE + 1, 2, PAGE_SIZE)
    assert alice_api.get("/api/v1/workspaces/team/tags/t00/grants/?page=2").json()["grants"][0]["user"] == "user050"
    # Workflows: listed without their definitions.
    for n in range(PAGE_SIZE + 1):
        register_workflow(actor=alice, workspace=team, name=f"f{n:02}", definition={"x": "${workflow.secrets.A}"})
    workflows = alice_api.get("/api/v1/workspaces/team/workflows/?page=2").json()
    assert (workflows["count"], workflows["pages"]) == (PAGE_SIZE + 1, 2)
    assert workflows["workflows"] == [
        {
            "reference": "team/f50",
            "name": "f50",
            "workspace": "team",
            "secret_count": 1,
            "running": 0,
            "registered_by": "alice",
            "registered_at": workflows["workflows"][0]["registered_at"],
        }
    ]
    one = alice_api.get("/api/v1/workspaces/team/workflows/f50/").json()
    assert one["definition"] == {"x": "${workflow.secrets.A}"} and one["secrets"] == ["A"]
    # Executions carry their count too.
    assert alice_api.get("/api/v1/workspaces/team/executions/").json()["count"] == 0


def test_sessions_are_listed_a_page_at_a_time(alice, alice_api):
    for _ in range(PAGE_SIZE):
        signed_in_client(alice)
    first = alice_api.get("/api/v1/sessions/").json()
    assert (first["count"], first["pages"], len(first["sessions"])) == (PAGE_SIZE + 1, 2, PAGE_SIZE)
    assert len(alice_api.get("/api/v1/sessions/?page=2").json()["sessions"]) == 1
    page = signed_in_client(alice).get("/settings/account/?page=2")
    assert page.status_code == 200 and "Page 2 of 2" in page.content.decode()


def test_a_workflow_names_at_most_1000_secrets(alice_api, team):
    definition = {f"k{n}": f"${{workflow.secrets.K{n:04}}}" for n in range(TEMPLATE_MAX_NAMES + 1)}
    answer = alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "huge", "definition": definition})
    assert error_of(answer) == (400, "invalid_input")
    assert "at most 1,000" in answer.json()["error"]["fields"]["definition"][0]
    del definition["k1000"]
    assert (
        alice_api.post("/api/v1/workspaces/team/workflows/", {"name": "huge", "definition": definition}).status_code
        == 201
    )


# Pages and menus


def test_the_switcher_offers_100_workspaces_and_the_workspaces_page_lists_all(alice, team):
    for n in range(WORKSPACE_MENU_SIZE):
        create_team_workspace(actor=alice, name=f"W{n:03}", slug=f"w{n:03}")
    browser = signed_in_client(alice)
    page = browser.get("/settings/developer/w099/secrets/").content.decode()
    switcher = page[page.index('id="workspace-switcher"') : page.index("</select>")]
    # 100 in the menu, the current one (past the menu) first and selected, and how many are left out.
    assert switcher.count("<option") == WORKSPACE_MENU_SIZE + 2
    assert re.search(r'<option value="w099" selected>', switcher)
    assert "2 more: see All workspaces" in switcher
    listing = browser.get("/settings/workspaces/?page=3").content.decode()
    assert "Page 3 of 3" in listing and "W099" in listing
    assert browser.get("/settings/workspaces/?page=4").status_code == 404


def test_the_workflows_page_lists_ten_keys_of_each_and_pages(alice, team):
    definition = {f"k{n}": f"${{workflow.secrets.K{n:02}}}" for n in range(WORKFLOW_KEYS_LISTED + 4)}
    for n in range(PAGE_SIZE + 1):
        register_workflow(actor=alice, workspace=team, name=f"f{n:02}", definition=definition)
    browser = signed_in_client(alice)
    first = browser.get("/settings/developer/team/workflows/").content.decode()
    assert "and 4 more" in first and "K09" in first and "K10" not in first and "Page 1 of 2" in first
    assert "f50" in browser.get("/settings/developer/team/workflows/?page=2").content.decode()


def test_deleting_a_key_names_ten_workflows_using_it_and_counts_them(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    for n in range(WORKFLOWS_USING_KEY_LISTED + 2):
        register_workflow(actor=alice, workspace=team, name=f"f{n:02}", definition={"k": "${workflow.secrets.API_KEY}"})
    page = signed_in_client(alice).get("/settings/developer/team/secrets/API_KEY/delete/").content.decode()
    assert "12 registered workflows use this key" in page and "and 2 more" in page and "f11" not in page


def test_the_access_page_pages_grants_and_tags_separately(alice, team):
    create_secret(actor=alice, workspace=team, key="A", value="a", tags=TAGS[:40])
    create_secret(actor=alice, workspace=team, key="B", value="b", tags=TAGS[40:])
    for user in many_users(PAGE_SIZE + 1):
        grant_tag_permissions(
            actor=alice, workspace=team, tag_name="t00", permission_names=["view"], username=user.username
        )
    browser = signed_in_client(alice)
    page = browser.get("/settings/developer/team/access/?grants_page=2").content.decode()
    assert "user050" in page and "user049" not in page
    # Paging through the tags keeps the grants on their page.
    assert 'href="?grants_page=2&amp;tags_page=2#tags-title"' in page
    tags_page = browser.get("/settings/developer/team/access/?tags_page=2").content.decode()
    assert ">t50<" in tags_page and ">t49<" not in tags_page


def test_members_and_who_can_reach_a_secret_are_bounded(alice, team):
    for user in many_users(ACCESS_LISTED + 5):
        add_member(actor=alice, workspace=team, username=user.username, role=Role.MEMBER)
    create_secret(actor=alice, workspace=team, key="K", value="v")
    browser = signed_in_client(alice)
    detail = browser.get("/settings/developer/team/secrets/K/").content.decode()
    assert "And 6 more members" in detail
    members = browser.get("/settings/developer/team/members/?page=2").content.decode()
    assert "Page 2 of 2" in members and "user054" in members


def test_the_admin_edits_members_inline_only_for_small_teams(alice, team, settings):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    browser = signed_in_client(alice)
    create_secret(actor=alice, workspace=team, key="A", value="a")
    create_secret(actor=alice, workspace=team, key="B", value="b")
    add_member(actor=alice, workspace=team, username=many_users(1, "bob")[0].username, role=Role.MEMBER)
    listing = browser.get("/admin/secrets_app/workspace/").content.decode()
    # Two members and two secrets: counted, not multiplied by each other.
    assert re.search(r'field-member_count">2<', listing) and re.search(r'field-secret_count">2<', listing)
    assert "memberships-TOTAL_FORMS" in browser.get(f"/admin/secrets_app/workspace/{team.pk}/change/").content.decode()
    Membership.objects.bulk_create(
        [Membership(workspace=team, user=user, role=Role.VIEWER) for user in many_users(ADMIN_INLINE_MEMBERS)]
    )
    change = browser.get(f"/admin/secrets_app/workspace/{team.pk}/change/").content.decode()
    assert "memberships-TOTAL_FORMS" not in change and "manage them on its Members page" in change


def test_the_tag_filter_offers_100_tags_and_keeps_one_beyond_them(alice, team):
    names = [f"t{n:03}" for n in range(TAG_MENU_SIZE + 2)]
    for n in range(0, len(names), SECRET_MAX_TAGS):
        create_secret(actor=alice, workspace=team, key=f"K{n:03}", value="v", tags=names[n : n + SECRET_MAX_TAGS])
    page = signed_in_client(alice).get("/settings/developer/team/secrets/?tag=t101").content.decode()
    menu = page[page.index('id="id_filter_tag"') : page.index("</select>", page.index('id="id_filter_tag"'))]
    assert menu.count("<option") == 1 + 1 + TAG_MENU_SIZE + 1  # all, the chosen one, 100, "2 more"
    assert '<option value="t101" selected>' in menu and "2 more" in menu
    # Each tag in the list filters by itself.
    assert 'href="?tag=t101"' in page


# A page number that names no page is a 404 on every list, never a 500 (the account page's
# sessions once answered 500: its view did not turn the refusal into a page).
@pytest.mark.parametrize("number", ["0", "-1", "+1", "1e3", "abc", "%00", "%ff", "99999999999999999999", "%D9%A3"])
@pytest.mark.parametrize(
    "address",
    [
        "/settings/account/?page=",
        "/settings/workspaces/?page=",
        "/settings/developer/team/secrets/?page=",
        "/settings/developer/team/workflows/?page=",
        "/settings/developer/team/executions/?page=",
        "/settings/developer/team/activity/?page=",
        "/settings/developer/team/members/?page=",
        "/settings/developer/team/access/?grants_page=",
        "/settings/developer/team/access/?tags_page=",
    ],
)
def test_a_page_that_is_not_there_is_a_404_page(alice, team, address, number):
    response = signed_in_client(alice).get(address + number)
    assert response.status_code == 404
    assert "There is no page" in response.content.decode()


def test_a_refusal_no_view_handles_is_its_own_page(alice, team, monkeypatch):
    """Any domain refusal a page lets through is shown with its status and message."""
    from secrets_app import errors
    from secrets_app.views import secrets as secret_views

    def refuse(*args, **kwargs):
        raise errors.TooManyLookups("Too many lookups for now.", retry_after_seconds=60)

    monkeypatch.setattr(secret_views, "secrets_visible_to", refuse)
    response = signed_in_client(alice).get("/settings/developer/team/secrets/")
    assert response.status_code == 429 and response["Retry-After"] == "60"
    assert "Too many lookups for now." in response.content.decode()
