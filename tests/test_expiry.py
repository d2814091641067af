"""Secrets that expire: set once at creation, shown in the list, refused to runners past the
workspace's grace, and listed by `manage.py secrets_expiring`."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import models
from django.utils import timezone

from secrets_app.client import AccessDenied, ClientError, ConsoleClient, SecretExpired
from secrets_app.errors import SecretImmutable
from secrets_app.models import AuditEvent, Role, Secret, Workspace
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import change_member_role, set_expired_secret_grace
from tests import test_runners
from tests.conftest import PASSWORD, error_of, signed_in_client
from tests.test_runners import API_KEY_VALUE, events, launch, read, runner_client

# The runner tests' fixtures: the team's secrets (API_KEY, DB_PASSWORD), and a workflow there.
secrets_in_team = test_runners.secrets_in_team


@pytest.fixture
def workflow(alice, secrets_in_team):
    """test_runners' workflow, declaring the keys these tests read by name too."""
    return register_workflow(
        actor=alice,
        workspace=secrets_in_team,
        name="nightly",
        definition=test_runners.DEFINITION,
        secrets=["OLD", "FRESH", "GRACED", "SOON", "TODAY", "LATER", "FOREVER", "GONE", "OLD_TOKEN"],
    )


pytestmark = pytest.mark.django_db

UTC = datetime.UTC
SECRETS_PAGE = "/settings/developer/{}/secrets/"
SECRETS_API = "/api/v1/workspaces/{}/secrets/"


def in_days(days: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=days)


def expiry_passes(workspace: Workspace, key: str, *, days_ago: float) -> None:
    """Time passes: the secret's expiry is now `days_ago` days behind us. (Written past the model's
    refusal, which guards the application's writes, not the test's clock.)"""
    moment = timezone.now() - datetime.timedelta(days=days_ago)
    models.QuerySet.update(Secret.objects.filter(workspace=workspace, key=key), expires_at=moment)


def give_grace(workspace: Workspace, days: int, actor) -> None:
    set_expired_secret_grace(actor=actor, workspace=workspace, days=days)


def row_of(page: str, key: str) -> str:
    return page.split(f'href="/settings/developer/team/secrets/{key}/"')[1].split("</tr>")[0]


# Setting an expiry, at creation only


def test_the_add_form_takes_an_expiry_in_the_sites_time_zone(alice, team, settings):
    settings.TIME_ZONE = "Europe/Paris"
    response = signed_in_client(alice).post(
        SECRETS_PAGE.format("team"), {"key": "API_KEY", "value": "v", "expires_at": "2031-03-01T09:30"}
    )
    assert response.status_code == 302
    secret = Secret.objects.get(key="API_KEY")
    assert secret.expires_at == datetime.datetime(2031, 3, 1, 8, 30, tzinfo=UTC)  # 09:30 in Paris, winter time
    (event,) = events(AuditEvent.Action.SECRET_CREATED)
    assert event.detail == {"expires_at": secret.expires_at.isoformat()}


def test_the_add_form_refuses_a_past_expiry_and_adds_nothing(alice, team):
    response = signed_in_client(alice).post(
        SECRETS_PAGE.format("team"), {"key": "API_KEY", "value": "canary-value", "expires_at": "2020-01-01T00:00"}
    )
    page = response.content.decode()
    assert "The expiry must be in the future; 2020-01-01 00:00 UTC has passed." in page
    assert "canary-value" not in page
    assert not Secret.objects.exists() and not events(AuditEvent.Action.SECRET_CREATED)


def test_the_add_form_refuses_an_expiry_it_cannot_read(alice, team):
    response = signed_in_client(alice).post(
        SECRETS_PAGE.format("team"), {"key": "API_KEY", "value": "v", "expires_at": "next tuesday"}
    )
    assert "Enter the expiry as an ISO 8601 date" in response.content.decode()
    assert not Secret.objects.exists()


def test_the_api_takes_a_date_as_the_midnight_starting_it_in_the_sites_time_zone(alice_api, team, settings):
    settings.TIME_ZONE = "America/New_York"
    response = alice_api.post(SECRETS_API.format("team"), {"key": "API_KEY", "value": "v", "expires_at": "2031-07-04"})
    assert response.status_code == 201
    assert response.json()["expires_at"] == "2031-07-04T04:00:00+00:00"
    assert response.json()["expiry"] == "active"
    assert Secret.objects.get().expires_at == datetime.datetime(2031, 7, 4, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2031-07-04T18:00:00+02:00", datetime.datetime(2031, 7, 4, 16, 0, tzinfo=UTC)),
        ("2031-07-04T18:00Z", datetime.datetime(2031, 7, 4, 18, 0, tzinfo=UTC)),
        ("2031-07-04T18:00", datetime.datetime(2031, 7, 4, 18, 0, tzinfo=UTC)),  # the site's zone: UTC
        (None, None),
    ],
)
def test_the_api_takes_an_iso_datetime_or_null(alice_api, team, sent, stored):
    response = alice_api.post(SECRETS_API.format("team"), {"key": "API_KEY", "value": "v", "expires_at": sent})
    assert response.status_code == 201
    assert Secret.objects.get().expires_at == stored
    assert response.json()["expires_at"] == (stored.isoformat() if stored else None)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ("2020-01-01", "The expiry must be in the future"),
        ("2031-02-30", "Enter the expiry as an ISO 8601 date"),
        ("soon", "Enter the expiry as an ISO 8601 date"),
        (20310101, "Enter the expiry as an ISO 8601 date"),
        ("9999-01-01", "before the year 9000"),
    ],
)
def test_a_bad_or_past_expiry_is_400_naming_the_field_and_adds_nothing(alice_api, team, sent, message):
    response = alice_api.post(SECRETS_API.format("team"), {"key": "API_KEY", "value": "v", "expires_at": sent})
    assert error_of(response) == (400, "invalid_input")
    assert message in " ".join(response.json()["error"]["fields"]["expires_at"])
    assert not Secret.objects.exists() and not events(AuditEvent.Action.SECRET_CREATED)


def test_a_past_expiry_is_reported_with_the_other_bad_fields(alice_api, team):
    response = alice_api.post(SECRETS_API.format("team"), {"key": "bad key", "value": "", "expires_at": "2020-01-01"})
    assert set(response.json()["error"]["fields"]) == {"key", "value", "expires_at"}


@pytest.mark.parametrize(
    "change",
    [
        lambda secret: setattr(secret, "expires_at", in_days(30)),
        lambda secret: setattr(secret, "expires_at", None),
    ],
    ids=["moved", "removed"],
)
def test_saving_a_changed_expiry_is_refused(alice, team, change):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v", expires_at=in_days(10))
    secret = Secret.objects.get()
    change(secret)
    with pytest.raises(SecretImmutable):
        secret.save()


def test_an_expiry_cannot_be_added_later_by_any_write(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    secret = Secret.objects.get()
    secret.expires_at = in_days(10)
    with pytest.raises(SecretImmutable):
        secret.save()
    with pytest.raises(SecretImmutable):
        Secret.objects.filter(pk=secret.pk).update(expires_at=in_days(10))
    with pytest.raises(SecretImmutable):
        Secret.objects.bulk_update([secret], ["expires_at"])
    assert Secret.objects.get().expires_at is None


def test_put_and_patch_still_say_delete_and_recreate(alice_api, alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v", expires_at=in_days(10))
    response = alice_api.send("PATCH", SECRETS_API.format("team") + "API_KEY/", {"expires_at": "2040-01-01"})
    assert error_of(response) == (405, "secret_immutable")


@pytest.mark.django_db(transaction=True)
def test_the_client_adds_a_secret_with_an_expiry(live_server, alice, team):
    console = ConsoleClient(live_server.url)
    console.login("alice", PASSWORD)
    added = console.add_secret("team", "API_KEY", "v", expires_at=datetime.date(2031, 1, 2))
    assert added["expires_at"] == "2031-01-02T00:00:00+00:00"
    with_time = console.add_secret("team", "TOKEN", "v", expires_at=datetime.datetime(2031, 1, 2, 3, 4, tzinfo=UTC))
    assert with_time["expires_at"] == "2031-01-02T03:04:00+00:00"
    with pytest.raises(ClientError) as refused:
        console.add_secret("team", "OLD", "v", expires_at=datetime.date(2020, 1, 1))
    assert refused.value.code == "invalid_input" and refused.value.status == 400
    assert "expires_at" in str(refused.value)
    assert sorted(Secret.objects.values_list("key", flat=True)) == ["API_KEY", "TOKEN"]


# The runner read


def test_a_secret_is_read_until_it_expires(alice, team, workflow):
    expiring = create_secret(actor=alice, workspace=team, key="SOON", value="soon-value", expires_at=in_days(1))
    _, session_key = launch(alice, team, workflow)
    response = read(runner_client(session_key), "SOON")
    assert response.status_code == 200 and response.json()["value"] == "soon-value"
    (event,) = events(AuditEvent.Action.SECRET_READ)
    assert event.secret_id == expiring.pk and "expired_grace" not in event.detail


def test_an_expired_secret_is_refused_and_the_refusal_audited(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-canary", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=0.01)
    execution, session_key = launch(alice, team, workflow)
    response = read(runner_client(session_key), "OLD")
    assert error_of(response) == (403, "secret_expired")
    assert "OLD" in response.json()["error"]["message"] and "old-canary" not in response.content.decode()
    (denied,) = events(AuditEvent.Action.SECRET_READ_DENIED)
    assert denied.detail == {"reason": "secret_expired", "workflow": "team/nightly", "local": False}
    assert denied.execution_id == execution.id and denied.secret_key == "OLD"
    assert not events(AuditEvent.Action.SECRET_READ)


def test_within_the_workspaces_grace_an_expired_secret_is_read_and_the_read_marked(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-value", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=2.5)
    give_grace(team, 3, alice)
    _, session_key = launch(alice, team, workflow)
    response = read(runner_client(session_key), "OLD")
    assert response.status_code == 200 and response.json()["value"] == "old-value"
    (event,) = events(AuditEvent.Action.SECRET_READ)
    assert event.detail == {"expired_grace": True, "workflow": "team/nightly", "local": False}


def test_once_the_grace_has_run_out_the_secret_is_refused(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-value", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=3.1)
    give_grace(team, 3, alice)
    _, session_key = launch(alice, team, workflow)
    assert error_of(read(runner_client(session_key), "OLD")) == (403, "secret_expired")


def test_a_grace_change_applies_to_the_next_read_of_a_running_execution(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-value", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    assert error_of(read(runner, "OLD")) == (403, "secret_expired")
    give_grace(team, 7, alice)
    assert read(runner, "OLD").status_code == 200
    give_grace(team, 0, alice)
    assert error_of(read(runner, "OLD")) == (403, "secret_expired")


def test_a_local_run_is_refused_an_expired_personal_secret(alice, alice_api):
    personal = alice.personal_workspace
    create_secret(actor=alice, workspace=personal, key="MINE", value="v", expires_at=in_days(1))
    expiry_passes(personal, "MINE", days_ago=1)
    assert error_of(read(alice_api, "MINE")) == (403, "secret_expired")
    give_grace(personal, 2, alice)
    assert read(alice_api, "MINE").status_code == 200


def test_permission_is_decided_before_expiry(alice, bob, team, workflow, add_member):
    """Someone who may not use a secret learns nothing of its expiry."""
    create_secret(actor=alice, workspace=team, key="OLD", value="v", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    add_member(bob, Role.MEMBER)
    _, session_key = launch(bob, team, workflow)
    change_member_role(actor=alice, workspace=team, username="bob", role=Role.VIEWER)
    assert error_of(read(runner_client(session_key), "OLD")) == (404, "secret_not_found")


def test_an_expired_read_still_costs_three_queries(alice, team, workflow, django_assert_num_queries):
    create_secret(actor=alice, workspace=team, key="OLD", value="v", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    give_grace(team, 2, alice)
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    read(runner, "API_KEY")  # the session is now in the cache
    with django_assert_num_queries(3):
        assert read(runner, "OLD").status_code == 200
    give_grace(team, 0, alice)
    with django_assert_num_queries(3):
        assert error_of(read(runner, "OLD")) == (403, "secret_expired")


def test_resolve_is_refused_whole_naming_the_expired_key(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-canary", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    _, session_key = launch(alice, team, workflow)
    document = {
        "token": "${workflow.secrets.API_KEY}",
        "old": "${workflow.secrets.OLD}",
        "gone": "${workflow.secrets.GONE}",
    }
    response = runner_client(session_key).post("/api/v1/runner/resolve/", document)
    assert error_of(response) == (403, "secrets_refused")
    error = response.json()["error"]
    assert error["secrets"] == {"OLD": "secret_expired", "GONE": "secret_not_found"}
    assert "expired: OLD" in error["message"] and "unknown secret: GONE" in error["message"]
    assert "old-canary" not in response.content.decode() and API_KEY_VALUE not in response.content.decode()
    assert not events(AuditEvent.Action.SECRET_READ)
    (denied,) = events(AuditEvent.Action.SECRET_READ_DENIED)  # one refused request, one event
    assert denied.detail["refused"] == {"GONE": "secret_not_found", "OLD": "secret_expired"}
    assert (denied.detail["reason"], denied.detail["refused_count"], denied.secret_key) == ("several", 2, "")


def test_resolve_within_grace_fills_the_value_and_marks_only_that_read(alice, team, workflow):
    create_secret(actor=alice, workspace=team, key="OLD", value="old-value", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    give_grace(team, 2, alice)
    _, session_key = launch(alice, team, workflow)
    response = runner_client(session_key).post(
        "/api/v1/runner/resolve/", {"a": "${workflow.secrets.API_KEY}", "b": "${workflow.secrets.OLD}"}
    )
    assert response.json()["document"] == {"a": API_KEY_VALUE, "b": "old-value"}
    marked = {e.secret_key: e.detail.get("expired_grace", False) for e in events(AuditEvent.Action.SECRET_READ)}
    assert marked == {"API_KEY": False, "OLD": True}


@pytest.mark.django_db(transaction=True)
def test_the_client_raises_secret_expired(live_server, alice, team):
    create_secret(actor=alice, workspace=team, key="OLD", value="v", expires_at=in_days(1))
    create_secret(actor=alice, workspace=team, key="FRESH", value="fresh", expires_at=in_days(1))
    expiry_passes(team, "OLD", days_ago=1)
    nightly = register_workflow(actor=alice, workspace=team, name="nightly", definition={}, secrets=["OLD", "FRESH"])
    _, session_key = launch(alice, team, nightly)
    runner = ConsoleClient(live_server.url, session_key)
    with pytest.raises(SecretExpired) as refused:
        runner.get_secret("OLD")
    assert isinstance(refused.value, AccessDenied) and refused.value.code == "secret_expired"
    assert refused.value.status == 403
    with pytest.raises(AccessDenied) as whole:
        runner.resolve({"a": "${workflow.secrets.FRESH}", "b": "${workflow.secrets.OLD}"})
    assert whole.value.code == "secrets_refused" and "expired: OLD" in str(whole.value)


# The grace setting


def test_owners_set_the_grace_on_the_workspace_settings_page_and_it_is_audited(alice, team):
    browser = signed_in_client(alice)
    assert 'href="/settings/developer/team/settings/"' in browser.get(SECRETS_PAGE.format("team")).content.decode()
    response = browser.post("/settings/developer/team/settings/", {"expired_secret_grace_days": "5"})
    assert response.status_code == 302
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 5
    (event,) = events(AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED)
    assert event.detail == {"expired_secret_grace_days": {"from": 0, "to": 5}} and event.actor_username == "alice"
    assert 'value="5"' in browser.get("/settings/developer/team/settings/").content.decode()


@pytest.mark.parametrize("days", ["-1", "366", "two", ""])
def test_a_bad_grace_is_a_form_error_and_changes_nothing(alice, team, days):
    response = signed_in_client(alice).post("/settings/developer/team/settings/", {"expired_secret_grace_days": days})
    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 0
    assert not events(AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED)


def test_members_neither_see_nor_change_the_settings(alice, bob, team, add_member):
    add_member(bob, Role.MEMBER)
    browser = signed_in_client(bob)
    assert "/settings/developer/team/settings/" not in browser.get(SECRETS_PAGE.format("team")).content.decode()
    assert browser.get("/settings/developer/team/settings/").status_code == 403
    assert browser.post("/settings/developer/team/settings/", {"expired_secret_grace_days": "5"}).status_code == 403
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 0


def test_admins_set_the_grace_through_the_api(alice, bob, team, add_member, bob_api):
    add_member(bob, Role.ADMIN)
    response = bob_api.send("PATCH", "/api/v1/workspaces/team/", {"expired_secret_grace_days": 2})
    assert response.status_code == 200 and response.json()["expired_secret_grace_days"] == 2
    assert bob_api.get("/api/v1/workspaces/team/").json()["expired_secret_grace_days"] == 2
    assert events(AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED)[0].actor_username == "bob"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"expired_secret_grace_days": -1}, "invalid_input", 400),
        ({"expired_secret_grace_days": 366}, "invalid_input", 400),
        ({"expired_secret_grace_days": "3"}, "invalid_input", 400),
        ({"expired_secret_grace_days": True}, "invalid_input", 400),
        ({}, "invalid_input", 400),
        ({"expired_secret_grace_days": 1, "name": "x"}, "invalid_input", 400),
    ],
)
def test_bad_grace_through_the_api_is_refused_and_changes_nothing(alice_api, team, body, code, status):
    assert error_of(alice_api.send("PATCH", "/api/v1/workspaces/team/", body)) == (status, code)
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 0


def test_grace_through_the_api_needs_the_role_and_csrf(alice, bob, team, add_member, bob_api, alice_api):
    add_member(bob, Role.MEMBER)
    assert error_of(bob_api.send("PATCH", "/api/v1/workspaces/team/", {"expired_secret_grace_days": 2})) == (
        403,
        "permission_denied",
    )
    no_token = alice_api.send("PATCH", "/api/v1/workspaces/team/", {"expired_secret_grace_days": 2}, csrf=False)
    assert error_of(no_token) == (403, "csrf_failed")
    assert error_of(bob_api.get("/api/v1/workspaces/alice/")) == (404, "workspace_not_found")
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 0


def test_the_admin_site_sets_the_grace_through_the_service(make_user, team):
    root = make_user("root", is_staff=True, is_superuser=True)
    response = signed_in_client(root).post(
        f"/admin/secrets_app/workspace/{team.pk}/change/",
        {
            "name": "Team",
            "expired_secret_grace_days": "4",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(team.memberships.get().pk),
            "memberships-0-workspace": str(team.pk),
            "memberships-0-user": str(team.memberships.get().user_id),
            "memberships-0-role": "owner",
        },
    )
    assert response.status_code == 302
    assert Workspace.objects.get(pk=team.pk).expired_secret_grace_days == 4
    (event,) = events(AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED)
    assert event.actor_username == "root" and event.detail["expired_secret_grace_days"] == {"from": 0, "to": 4}


# Badges


def test_the_list_and_the_secrets_page_badge_what_expires_soon_or_has_expired(alice, team):
    create_secret(actor=alice, workspace=team, key="SOON", value="soon-value", expires_at=in_days(3.1))
    create_secret(actor=alice, workspace=team, key="TODAY", value="today-value", expires_at=in_days(0.2))
    create_secret(actor=alice, workspace=team, key="LATER", value="later-value", expires_at=in_days(10.1))
    create_secret(actor=alice, workspace=team, key="GRACED", value="graced-value", expires_at=in_days(1))
    create_secret(actor=alice, workspace=team, key="GONE", value="gone-value", expires_at=in_days(1))
    create_secret(actor=alice, workspace=team, key="FOREVER", value="forever-value")
    expiry_passes(team, "GRACED", days_ago=1)
    expiry_passes(team, "GONE", days_ago=5)
    give_grace(team, 2, alice)
    browser = signed_in_client(alice)
    page = browser.get(SECRETS_PAGE.format("team")).content.decode()
    assert "expires in 3 days" in row_of(page, "SOON")
    assert "expires in less than a day" in row_of(page, "TODAY")
    later = row_of(page, "LATER")
    assert "badge" not in later and "expires <time" in later
    assert timezone.localtime(in_days(10.1)).strftime("%Y-%m-%d") in later
    assert "expired · in grace" in row_of(page, "GRACED")
    assert ">expired</span>" in row_of(page, "GONE")
    assert "badge" not in row_of(page, "FOREVER")
    detail = browser.get(SECRETS_PAGE.format("team") + "GRACED/").content.decode()
    assert "expired · in grace" in detail and "runners may read it for 2 days after it expires" in detail
    assert "expires in 3 days" in browser.get(SECRETS_PAGE.format("team") + "SOON/").content.decode()
    listed = {s["key"]: s["expiry"] for s in browser.get(SECRETS_API.format("team")).json()["secrets"]}
    assert listed == {
        "FOREVER": "none",
        "GONE": "expired",
        "GRACED": "grace",
        "LATER": "active",
        "SOON": "expiring",
        "TODAY": "expiring",
    }


def test_the_warning_window_is_a_setting(alice, team, settings):
    create_secret(actor=alice, workspace=team, key="LATER", value="v", expires_at=in_days(10.1))
    settings.SECRET_EXPIRY_WARNING_DAYS = 14
    page = signed_in_client(alice).get(SECRETS_PAGE.format("team")).content.decode()
    assert "expires in 10 days" in row_of(page, "LATER")


def test_the_list_costs_no_more_queries_with_expiries(alice, team, django_assert_max_num_queries):
    for number in range(20):
        create_secret(actor=alice, workspace=team, key=f"K{number}", value="v", expires_at=in_days(number + 1))
    browser = signed_in_client(alice)
    browser.get(SECRETS_PAGE.format("team"))
    # 8, as for any list page: the same seven, and one for the "same value as" keys (tests/test_tag_grants.py)
    with django_assert_max_num_queries(9):  # 9: the workspace's two-factor policy, one query
        assert browser.get(SECRETS_PAGE.format("team")).status_code == 200


# manage.py secrets_expiring

FROZEN = datetime.datetime(2030, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def expiring(alice, bob, team):
    """At FROZEN: in team, one secret expired 5 days ago (grace 2: refused), one 1 day ago (in
    grace), one expiring in 3 days and one in 30; in bob's personal workspace, one in 6 days."""

    def at(**offset: float) -> datetime.datetime:
        return FROZEN + datetime.timedelta(**offset)

    create_secret(actor=alice, workspace=team, key="OLD_TOKEN", value="canary-1", expires_at=at(days=-5))
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="canary-2", expires_at=at(days=-1))
    create_secret(actor=alice, workspace=team, key="API_KEY", value="canary-3", expires_at=at(days=3, hours=6))
    create_secret(actor=alice, workspace=team, key="LATER", value="canary-4", expires_at=at(days=30))
    create_secret(actor=alice, workspace=team, key="FOREVER", value="canary-5")
    create_secret(actor=bob, workspace=bob.personal_workspace, key="MINE", value="canary-6", expires_at=at(days=6))
    give_grace(team, 2, alice)


def run_command(monkeypatch, *arguments: str) -> str:
    monkeypatch.setattr(timezone, "now", lambda: FROZEN)
    out = io.StringIO()
    call_command("secrets_expiring", *arguments, stdout=out)
    output = out.getvalue()
    assert "canary" not in output
    return output


def test_the_command_lists_what_expires_soon_per_workspace(monkeypatch, expiring):
    assert run_command(monkeypatch, "--days", "7") == (
        "4 secrets in 2 workspaces expire within 7 days or have expired (as of 2030-06-15 12:00 UTC).\n"
        "\n"
        "bob (bob (personal)); owners: bob <bob@example.com>; grace for expired secrets: none\n"
        "  MINE  expires 2030-06-21 12:00 UTC, in 6 days\n"
        "\n"
        "team (Team); owners: alice <alice@example.com>; grace for expired secrets: 2 days\n"
        "  OLD_TOKEN    expired 2030-06-10 12:00 UTC, 5 days ago; runners are refused it\n"
        "  DB_PASSWORD  expired 2030-06-14 12:00 UTC, 1 day ago; runners may read it until 2030-06-16 12:00 UTC "
        "(grace)\n"
        "  API_KEY      expires 2030-06-18 18:00 UTC, in 3 days\n"
    )


def test_the_command_speaks_json_for_scripts(monkeypatch, expiring):
    document = json.loads(run_command(monkeypatch, "--days", "7", "--workspace", "team", "--format", "json"))
    assert document == {
        "as_of": "2030-06-15T12:00:00+00:00",
        "within_days": 7,
        "workspaces": [
            {
                "workspace": "team",
                "name": "Team",
                "owners": [{"username": "alice", "email": "alice@example.com"}],
                "expired_secret_grace_days": 2,
                "secrets": [
                    {
                        "key": "OLD_TOKEN",
                        "expires_at": "2030-06-10T12:00:00+00:00",
                        "days_left": -5,
                        "state": "expired",
                    },
                    {
                        "key": "DB_PASSWORD",
                        "expires_at": "2030-06-14T12:00:00+00:00",
                        "days_left": -1,
                        "state": "grace",
                    },
                    {"key": "API_KEY", "expires_at": "2030-06-18T18:00:00+00:00", "days_left": 3, "state": "expiring"},
                ],
            }
        ],
    }


def test_the_command_with_days_zero_lists_only_what_has_expired(monkeypatch, expiring):
    output = run_command(monkeypatch, "--days", "0", "--workspace", "team")
    assert output.startswith("2 secrets in 1 workspace expire now or have expired")
    assert "OLD_TOKEN" in output and "DB_PASSWORD" in output and "API_KEY" not in output


def test_the_command_says_so_when_nothing_expires(monkeypatch, expiring):
    assert run_command(monkeypatch, "--days", "7", "--workspace", "alice") == (
        "No secret expires within 7 days, and none has expired (as of 2030-06-15 12:00 UTC).\n"
    )
    empty = json.loads(run_command(monkeypatch, "--workspace", "alice", "--format", "json"))
    assert empty["workspaces"] == [] and empty["within_days"] == 7


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workspace", "nope"], "No workspace 'nope'."),
        (["--days", "-1"], "--days must be a whole number of days from 0 to 36500, not -1."),
    ],
)
def test_the_command_refuses_bad_arguments(expiring, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("secrets_expiring", *arguments, stdout=io.StringIO())
