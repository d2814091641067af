"""Your sessions: listed and revoked in Account Settings and the API; a password change ends the others."""

from __future__ import annotations

import html
import uuid
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from secrets_app import permissions
from secrets_app.errors import AccessDenied
from secrets_app.middleware import SessionActivityMiddleware
from secrets_app.models import AuditEvent, Execution, UserSession
from secrets_app.services.runs import finish_execution, launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from secrets_app.services.sessions import revoke_session
from tests.conftest import PASSWORD, JsonClient, error_of, migrate_to, signed_in_client

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NEW_PASSWORD = "Brand-new-pass-88"


def browser_signed_in(username: str, *, user_agent: str = FIREFOX, address: str = "203.0.113.7") -> Client:
    """A browser that signed in through the login page."""
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)
    response = client.post("/accounts/login/", {"login": username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def api_signed_in(username: str) -> JsonClient:
    client = JsonClient()
    assert client.login(username).status_code == 200
    return client


def listed(api: JsonClient) -> list[dict]:
    response = api.get("/api/v1/sessions/")
    assert response.status_code == 200
    return response.json()["sessions"]


def current_of(api: JsonClient) -> dict:
    (current,) = [s for s in listed(api) if s["current"]]
    return current


def signed_out_browser(client: Client) -> bool:
    response = client.get("/settings/account/")
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def session_exists(session_key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key)


def expire(session_key: str) -> None:
    Session.objects.filter(session_key=session_key).update(expire_date=timezone.now() - timezone.timedelta(seconds=1))


def text_of(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def workflow(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="tok")
    return register_workflow(
        actor=alice, workspace=team, name="nightly", definition={"token": "${workflow.secrets.API_KEY}"}
    )


def runner_for(session_key: str) -> JsonClient:
    runner = JsonClient()
    runner.client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    runner.refresh_csrf()
    return runner


def runner_read(runner: JsonClient):
    return runner.get("/api/v1/runner/secrets/API_KEY/")


# Listing


def test_a_user_signed_in_twice_sees_both_sessions_with_the_current_one_marked(alice):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    sessions = listed(api)
    assert sorted((s["kind"], s["current"]) for s in sessions) == [("api", True), ("browser", False)]
    (in_browser,) = [s for s in sessions if s["kind"] == "browser"]
    assert in_browser["ip_address"] == "203.0.113.7"
    assert in_browser["user_agent"] == FIREFOX and in_browser["device"] == "Firefox on Linux"
    assert in_browser["execution"] is None and in_browser["expires_at"] > in_browser["created_at"]

    page = browser.get("/settings/account/")
    assert page.status_code == 200
    rows = page.context["sessions"]
    assert sorted((s.kind, s.is_current) for s in rows) == [("api", False), ("browser", True)]
    text = text_of(page)
    assert "Firefox on Linux" in text and "this session" in text and "Sign out everywhere else" in text


def test_the_list_needs_a_signed_in_user(api):
    assert error_of(api.get("/api/v1/sessions/")) == (401, "not_authenticated")
    assert signed_out_browser(Client())


def test_the_session_list_is_read_only(alice_api):
    response = alice_api.post("/api/v1/sessions/", {})
    assert error_of(response) == (405, "method_not_allowed") and response["Allow"] == "GET"


def test_one_session_can_be_read_by_its_id(alice_api):
    current = current_of(alice_api)
    response = alice_api.get(f"/api/v1/sessions/{current['id']}/")
    assert response.status_code == 200 and response.json() == current


def test_a_runner_session_is_listed_with_its_workflow_execution_and_workspace(alice, team, workflow, alice_api):
    execution, _ = launch_execution(actor=alice, workspace=team, workflow=workflow, ip_address="198.51.100.4")
    (runner,) = [s for s in listed(alice_api) if s["kind"] == "runner"]
    assert runner["execution"] == {
        "id": str(execution.id),
        "workflow": "team/nightly",
        "workspace": "team",
        "status": "running",
    }
    assert runner["ip_address"] == "198.51.100.4" and runner["current"] is False
    page = signed_in_client(alice).get("/settings/account/")
    assert str(execution.id) in text_of(page) and "team/nightly" in text_of(page)


def test_expired_and_ended_sessions_are_not_listed(alice, team, workflow):
    expired, deleted = api_signed_in("alice"), api_signed_in("alice")
    viewer = api_signed_in("alice")
    expired_id, deleted_id = current_of(expired)["id"], current_of(deleted)["id"]
    expire(UserSession.objects.get(pk=expired_id).session_key)
    # Removed behind the store's back (as a database restore or a manual clean-up would).
    Session.objects.filter(session_key=UserSession.objects.get(pk=deleted_id).session_key).delete()
    execution, _ = launch_execution(actor=alice, workspace=team, workflow=workflow)
    finish_execution(actor=alice, execution=execution)

    ids = [s["id"] for s in listed(viewer)]
    assert ids == [current_of(viewer)["id"]]
    assert error_of(viewer.delete(f"/api/v1/sessions/{expired_id}/")) == (404, "session_not_found")


def test_sessions_a_password_change_elsewhere_made_unusable_are_not_listed(alice):
    old = browser_signed_in("alice")
    alice.set_password(NEW_PASSWORD)  # as the admin site or `manage.py changepassword` do
    alice.save()
    viewer = JsonClient()
    assert viewer.login("alice", NEW_PASSWORD).status_code == 200
    assert [s["kind"] for s in listed(viewer)] == ["api"]
    assert signed_out_browser(old)


def test_signing_in_forgets_rows_whose_session_is_gone(alice):
    first = api_signed_in("alice")
    first_key = UserSession.objects.get(pk=current_of(first)["id"]).session_key
    Session.objects.filter(session_key=first_key).delete()
    api_signed_in("alice")
    assert not UserSession.objects.filter(session_key=first_key).exists()


def test_clearsessions_also_clears_the_rows_of_expired_sessions(alice):
    ended = api_signed_in("alice")
    ended_key = UserSession.objects.get(pk=current_of(ended)["id"]).session_key
    kept = api_signed_in("alice")
    expire(ended_key)
    call_command("clearsessions")
    assert [str(pk) for pk in UserSession.objects.values_list("pk", flat=True)] == [current_of(kept)["id"]]


def test_signing_out_removes_the_session_from_the_list(alice):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    assert browser.post("/accounts/logout/").status_code == 302
    assert [s["kind"] for s in listed(api)] == ["api"]
    assert api.delete("/api/v1/session/").status_code == 204
    assert not UserSession.objects.exists()


def test_the_last_use_is_recorded_at_most_once_an_interval(alice):
    api = api_signed_in("alice")
    first = current_of(api)["last_seen_at"]
    assert first is not None
    UserSession.objects.update(last_seen_at=None)
    for _ in range(2):  # used again within the interval: not written
        assert current_of(api)["last_seen_at"] is None


# Revoking


def test_revoking_a_browser_session_signs_that_browser_out_on_its_next_request(alice):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    (in_browser,) = [s for s in listed(api) if s["kind"] == "browser"]
    assert api.delete(f"/api/v1/sessions/{in_browser['id']}/").status_code == 204
    assert signed_out_browser(browser)
    assert [s["kind"] for s in listed(api)] == ["api"]
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.SESSION_REVOKED)
    assert event.actor_username == "alice" and event.detail == {"kind": "browser"}


def test_revoking_an_api_session_from_the_page_makes_its_next_call_401(alice):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    api_id = current_of(api)["id"]
    response = browser.post(f"/settings/account/sessions/{api_id}/revoke/", follow=True)
    assert response.redirect_chain[-1][0] == "/settings/account/"
    assert "API session" in text_of(response) and "ended" in text_of(response)
    assert error_of(api.get("/api/v1/sessions/")) == (401, "session_expired")
    assert [s.kind for s in response.context["sessions"]] == ["browser"]


def test_revoking_a_runner_session_finishes_its_execution_and_refuses_the_runner(alice, team, workflow):
    execution, session_key = launch_execution(actor=alice, workspace=team, workflow=workflow)
    runner = runner_for(session_key)
    assert runner_read(runner).status_code == 200
    browser = browser_signed_in("alice")
    (runner_row,) = [s for s in browser.get("/settings/account/").context["sessions"] if s.kind == "runner"]
    response = browser.post(f"/settings/account/sessions/{runner_row.pk}/revoke/", follow=True)
    assert "execution is finished" in text_of(response)
    assert error_of(runner_read(runner)) == (401, "execution_finished")
    execution.refresh_from_db()
    assert execution.status == Execution.Status.FINISHED and not session_exists(session_key)
    revoked = AuditEvent.objects.get(action=AuditEvent.Action.SESSION_REVOKED)
    assert revoked.execution_id == execution.id and revoked.detail == {"kind": "runner", "workflow": "team/nightly"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXECUTION_FINISHED, execution_id=execution.id).exists()


def test_finishing_an_execution_removes_its_runner_session_from_the_list(alice, team, workflow, alice_api):
    execution, _ = launch_execution(actor=alice, workspace=team, workflow=workflow)
    finish_execution(actor=alice, execution=execution)
    assert [s["kind"] for s in listed(alice_api)] == ["api"]


def test_revoking_your_current_session_in_the_page_signs_you_out(alice):
    browser = browser_signed_in("alice")
    (current,) = browser.get("/settings/account/").context["sessions"]
    response = browser.post(f"/settings/account/sessions/{current.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert signed_out_browser(browser)
    assert AuditEvent.objects.get(action=AuditEvent.Action.SESSION_REVOKED).detail == {"kind": "browser"}


def test_revoking_your_current_session_through_the_api_signs_you_out(alice_api):
    assert alice_api.delete(f"/api/v1/sessions/{current_of(alice_api)['id']}/").status_code == 204
    assert error_of(alice_api.get("/api/v1/sessions/"))[0] == 401
    assert not UserSession.objects.exists()


def test_revoking_needs_the_csrf_token(alice_api):
    current = current_of(alice_api)
    assert error_of(alice_api.delete(f"/api/v1/sessions/{current['id']}/", csrf=False)) == (403, "csrf_failed")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(UserSession.objects.get().user)
    assert browser.post(f"/settings/account/sessions/{current['id']}/revoke/").status_code == 403
    assert len(listed(alice_api)) == 2


def test_the_revoke_form_answers_post_only(alice):
    browser = browser_signed_in("alice")
    (current,) = browser.get("/settings/account/").context["sessions"]
    assert browser.get(f"/settings/account/sessions/{current.pk}/revoke/").status_code == 405


@pytest.mark.parametrize("superuser", [False, True])
def test_nobody_sees_or_revokes_another_users_session(alice, bob, superuser):
    if superuser:
        bob.is_superuser = bob.is_staff = True
        bob.save()
    alice_browser = browser_signed_in("alice")
    alice_id = str(UserSession.objects.get(user=alice).pk)
    bob_api = api_signed_in("bob")
    assert [s["kind"] for s in listed(bob_api)] == ["api"]
    assert error_of(bob_api.get(f"/api/v1/sessions/{alice_id}/")) == (404, "session_not_found")
    assert error_of(bob_api.delete(f"/api/v1/sessions/{alice_id}/")) == (404, "session_not_found")
    bob_browser = browser_signed_in("bob")
    assert bob_browser.post(f"/settings/account/sessions/{alice_id}/revoke/").status_code == 404
    assert not signed_out_browser(alice_browser)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SESSION_REVOKED).exists()


@pytest.mark.parametrize("session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_session_id_is_404(alice_api, session_id):
    assert error_of(alice_api.delete(f"/api/v1/sessions/{session_id}/")) == (404, "session_not_found")


def test_a_runner_session_cannot_list_or_revoke_sessions(alice, team, workflow):
    _, session_key = launch_execution(actor=alice, workspace=team, workflow=workflow)
    runner = runner_for(session_key)
    own_id = str(UserSession.objects.get(kind="runner").pk)
    assert error_of(runner.get("/api/v1/sessions/")) == (403, "runner_session_scope")
    assert error_of(runner.delete(f"/api/v1/sessions/{own_id}/")) == (403, "runner_session_scope")
    assert error_of(runner.post("/api/v1/sessions/revoke-others/")) == (403, "runner_session_scope")
    assert session_exists(session_key)


def test_sign_out_everywhere_else_ends_every_other_session_and_keeps_this_one(alice, team, workflow):
    other_browser = browser_signed_in("alice")
    other_api = api_signed_in("alice")
    execution, session_key = launch_execution(actor=alice, workspace=team, workflow=workflow)
    runner = runner_for(session_key)
    browser = browser_signed_in("alice", user_agent="curl/8.5.0")
    response = browser.post("/settings/account/sessions/revoke-others/", follow=True)
    assert "3 other sessions ended" in text_of(response)
    assert [(s.kind, s.is_current) for s in response.context["sessions"]] == [("browser", True)]
    assert signed_out_browser(other_browser)
    assert error_of(other_api.get("/api/v1/sessions/")) == (401, "session_expired")
    assert error_of(runner_read(runner)) == (401, "execution_finished")
    assert Execution.objects.get(pk=execution.pk).status == Execution.Status.FINISHED
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED)
    assert event.detail == {
        "reason": "requested",
        "ended": {"browser": 1, "api": 1, "runner": 1},
        "executions": [str(execution.id)],
    }


def test_sign_out_everywhere_else_through_the_api(alice):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    response = api.post("/api/v1/sessions/revoke-others/")
    assert response.status_code == 200 and response.json() == {"ended": {"browser": 1, "api": 0, "runner": 0}}
    assert signed_out_browser(browser)
    assert [s["current"] for s in listed(api)] == [True]


# Password change


def test_a_password_change_ends_every_other_session_and_keeps_this_one(alice, team, workflow):
    other_browser = browser_signed_in("alice")
    other_api = api_signed_in("alice")
    execution, runner_key = launch_execution(actor=alice, workspace=team, workflow=workflow)
    runner = runner_for(runner_key)
    other_keys = list(UserSession.objects.values_list("session_key", flat=True))
    browser = browser_signed_in("alice")

    response = browser.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
    # Deleted from the store at once, not merely refused later for their stale password hash.
    assert not any(session_exists(key) for key in other_keys)
    assert signed_out_browser(other_browser)
    assert error_of(other_api.get("/api/v1/sessions/")) == (401, "session_expired")
    assert error_of(runner_read(runner)) == (401, "execution_finished")
    assert Execution.objects.get(pk=execution.pk).status == Execution.Status.FINISHED

    page = browser.get("/settings/account/")
    assert page.status_code == 200
    assert [(s.kind, s.is_current) for s in page.context["sessions"]] == [("browser", True)]
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED)
    assert event.detail["reason"] == "password_changed"
    assert event.detail["ended"] == {"browser": 1, "api": 1, "runner": 1}


def test_a_refused_password_change_ends_nothing(alice):
    other = browser_signed_in("alice")
    browser = browser_signed_in("alice")
    response = browser.post(
        "/accounts/password/change/",
        {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 400 and "Please type your current password." in text_of(response)
    assert not signed_out_browser(other)
    assert UserSession.objects.count() == 2
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED).exists()


def test_a_weak_password_is_refused_and_changes_nothing(alice):
    browser = browser_signed_in("alice")
    response = browser.post(
        "/accounts/password/change/", {"oldpassword": PASSWORD, "password1": "12345678", "password2": "12345678"}
    )
    assert response.status_code == 400 and "too common" in text_of(response)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


# Nothing leaks, and the page costs a fixed number of queries


def test_no_session_key_appears_in_any_page_or_api_answer(alice, team, workflow):
    browser = browser_signed_in("alice")
    api = api_signed_in("alice")
    launch_execution(actor=alice, workspace=team, workflow=workflow)
    keys = list(UserSession.objects.values_list("session_key", flat=True))
    assert len(keys) == 3
    some_id = current_of(api)["id"]
    bodies = [
        browser.get("/settings/account/").content.decode(),
        api.get("/api/v1/sessions/").content.decode(),
        api.get(f"/api/v1/sessions/{some_id}/").content.decode(),
        api.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000/").content.decode(),
        api.post("/api/v1/sessions/revoke-others/").content.decode(),
    ]
    for body in bodies:
        assert not any(key in body for key in keys)
    assert not any(key in event.detail.__repr__() for event in AuditEvent.objects.all() for key in keys)
    assert not any(key in str(row) for row in UserSession.objects.all() for key in keys)


def _account_page_queries(client: Client) -> int:
    client.get("/settings/account/")  # warm: the session is in the cache
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/settings/account/")
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_account_page_runs_a_fixed_number_of_queries_whatever_the_sessions(alice, team, workflow):
    browser = browser_signed_in("alice")
    few = _account_page_queries(browser)
    for _ in range(3):
        api_signed_in("alice")
        browser_signed_in("alice")
        launch_execution(actor=alice, workspace=team, workflow=workflow)
    many = _account_page_queries(browser)
    assert len(browser.get("/settings/account/").context["sessions"]) == 10
    assert few == many and many <= 5, (few, many)  # 5: the page's security log is one query


def test_only_your_own_sessions_are_yours_to_see_and_end(alice, bob):
    browser_signed_in("alice")
    alice_session = UserSession.objects.get(user=alice)
    assert not UserSession.objects.filter(permissions.own_sessions_filter(bob)).exists()
    assert list(UserSession.objects.filter(permissions.own_sessions_filter(alice))) == [alice_session]
    assert permissions.can_end_session(alice, alice_session) and not permissions.can_end_session(bob, alice_session)
    with pytest.raises(AccessDenied):
        revoke_session(actor=bob, user_session=alice_session)


def test_the_last_use_is_written_again_once_the_interval_has_passed(alice, monkeypatch):
    monkeypatch.setattr(SessionActivityMiddleware, "INTERVAL_SECONDS", 0)
    api = api_signed_in("alice")
    UserSession.objects.update(last_seen_at=None)
    assert current_of(api)["last_seen_at"] is None  # written after this answer was made
    assert current_of(api)["last_seen_at"] is not None


# Upgrading


@pytest.mark.django_db(transaction=True)
def test_the_migration_registers_the_sessions_signed_in_before_it(alice, team, workflow):
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore

    def stored_session(**data) -> str:
        session = store()
        session.update(data)
        session.create()
        return session.session_key

    signed_in = {
        SESSION_KEY: str(alice.pk),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: alice.get_session_auth_hash(),
    }
    migrate_to(("secrets_app", "0008_audit_chain"))  # before the session registry
    try:
        browser_key = stored_session(**signed_in)
        anonymous_key = stored_session(some="thing")
        execution_id = uuid.uuid4()
        running = Execution.objects.create(
            id=execution_id,
            workflow=workflow,
            workflow_reference="team/nightly",
            home_workspace=team,
            workspace=team,
            launched_by=alice,
            expires_at=timezone.now() + timezone.timedelta(hours=1),
            runner_session_key=stored_session(**signed_in, runner_execution=str(execution_id)),
        )
        ended_run_key = stored_session(**signed_in, runner_execution=str(uuid.uuid4()))
        expired_key = stored_session(**signed_in)
        expire(expired_key)
    finally:
        migrate_to()  # through 0009_sessions, and back to the latest schema
    rows = {row.session_key: row for row in UserSession.objects.all()}
    assert set(rows) == {browser_key, running.runner_session_key}
    assert not {anonymous_key, expired_key, ended_run_key} & set(rows)
    assert rows[browser_key].kind == "browser" and rows[browser_key].user == alice
    assert rows[running.runner_session_key].kind == "runner" and rows[running.runner_session_key].execution == running
