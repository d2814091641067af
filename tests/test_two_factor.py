"""Two-factor authentication (django-allauth's TOTP and recovery codes), re-authentication before
sensitive actions, and the workspace policy that requires a second factor."""

from __future__ import annotations

import time

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client

from secrets_app.models import AuditEvent, Execution, Workspace
from secrets_app.services.runs import launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import PASSWORD, JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

SECRET_BASE32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def enrol_totp(user) -> pyotp.TOTP:
    """A TOTP authenticator for `user` (as enrolling on the page makes), and its app's codes."""
    TOTP.activate(user, SECRET_BASE32)
    return pyotp.TOTP(SECRET_BASE32)


def recovery_codes(user) -> list[str]:
    return RecoveryCodes.activate(user).get_unused_codes()


def api_sign_in(username: str, **extra) -> tuple[JsonClient, object]:
    client = JsonClient()
    client.refresh_csrf()
    response = client.post("/api/v1/session/", {"username": username, "password": PASSWORD, **extra})
    if response.status_code == 200:
        client.csrf_token = response.json()["csrf_token"]
    return client, response


# Storage


def test_a_totp_secret_is_stored_sealed_never_in_the_clear(alice):
    enrol_totp(alice)
    stored = Authenticator.objects.get(user=alice, type=Authenticator.Type.TOTP).data["secret"]
    assert SECRET_BASE32 not in stored
    assert TOTP(Authenticator.objects.get(user=alice, type=Authenticator.Type.TOTP)).validate_code(
        pyotp.TOTP(SECRET_BASE32).now()
    )


# The API's sign-in


def test_the_api_sign_in_asks_for_the_code_of_an_account_with_two_factor(alice):
    totp = enrol_totp(alice)
    _, without = api_sign_in("alice")
    assert error_of(without) == (401, "mfa_required")
    assert without.json()["error"]["field"] == "code"
    _, wrong = api_sign_in("alice", code="000000" if totp.now() != "000000" else "111111")
    assert error_of(wrong) == (401, "invalid_code")
    client, right = api_sign_in("alice", code=totp.now())
    assert right.status_code == 200 and right.json()["user"]["username"] == "alice"
    assert client.get("/api/v1/sessions/").status_code == 200


def test_a_wrong_password_is_refused_before_any_code_is_asked_for(alice):
    enrol_totp(alice)
    client = JsonClient()
    client.refresh_csrf()
    response = client.post("/api/v1/session/", {"username": "alice", "password": "wrong-one-1"})
    assert error_of(response) == (401, "invalid_credentials")


def test_a_recovery_code_signs_in_once_and_is_audited(alice):
    enrol_totp(alice)
    codes = recovery_codes(alice)
    _, first = api_sign_in("alice", code=codes[0])
    assert first.status_code == 200
    _, again = api_sign_in("alice", code=codes[0])
    assert error_of(again) == (401, "invalid_code")
    event = AuditEvent.objects.get(action=AuditEvent.Action.RECOVERY_CODE_USED)
    assert event.actor == alice and event.detail == {"unused": len(codes) - 1}


def test_wrong_codes_are_limited(alice):
    totp = enrol_totp(alice)
    answers = [api_sign_in("alice", code="not-a-code")[1] for _ in range(10)]
    assert {error_of(answer)[1] for answer in answers} == {"invalid_code"}
    _, right = api_sign_in("alice", code=totp.now())
    assert error_of(right) == (429, "too_many_codes")  # the limit holds even for the right code
    assert right["Retry-After"] == "300"


# Factors on the pages


def test_adding_and_removing_a_totp_factor_is_audited_and_removing_it_ends_other_sessions(
    alice, django_capture_on_commit_callbacks
):
    other = signed_in_client(alice)
    client = signed_in_client(alice)
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.FACTOR_ADDED, detail__factor="totp").exists()
    assert other.get("/settings/account/").status_code == 200  # adding one ends nothing
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.FACTOR_REMOVED, detail__factor="totp").exists()
    # TOTP goes with its recovery codes: each removal is audited, the first ends the other sessions.
    ended = AuditEvent.objects.filter(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED).order_by("id")
    assert [event.detail["reason"] for event in ended] == ["factor_removed", "factor_removed"]
    assert ended[0].detail["ended"]["browser"] == 1
    assert other.get("/settings/account/").status_code == 302
    assert client.get("/settings/account/").status_code == 200


def test_removing_a_factor_long_after_signing_in_asks_to_confirm_it_is_you(alice):
    enrol_totp(alice)
    client = signed_in_client(alice, checked_seconds_ago=3600)
    response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()


# Re-authentication


@pytest.fixture
def job(alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v-1")
    return register_workflow(actor=alice, workspace=team, name="job", definition={"k": "${workflow.secrets.API_KEY}"})


def test_launching_long_after_signing_in_asks_to_confirm_then_launches(alice, team, job):
    client = signed_in_client(alice, checked_seconds_ago=3600)
    launch = f"/settings/developer/{team.slug}/workflows/job/launch/"
    response = client.post(launch, {"workspace": team.slug})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert not Execution.objects.exists()
    confirm = client.get(response["Location"])
    assert confirm.status_code == 200 and b"password" in confirm.content.lower()
    confirmed = client.post(response["Location"], {"password": PASSWORD})
    # Back to where the form was (nothing sent is replayed); sent again, it launches.
    assert confirmed.status_code == 302 and not Execution.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REAUTHENTICATED, detail__method="password").exists()
    launched = client.post(launch, {"workspace": team.slug})
    assert launched.status_code == 302 and launched["Location"].endswith("/launched/")
    assert Execution.objects.count() == 1


def test_a_recent_sign_in_needs_no_confirmation(alice, team, job):
    client = signed_in_client(alice, checked_seconds_ago=60)
    response = client.post(f"/settings/developer/{team.slug}/workflows/job/launch/", {"workspace": team.slug})
    assert response.status_code == 302 and response["Location"].endswith("/launched/")
    assert Execution.objects.count() == 1


def test_the_api_answers_reauthentication_required_and_accepts_a_password_or_a_code(alice, team, job, settings):
    totp = enrol_totp(alice)
    client, _ = api_sign_in("alice", code=totp.now())
    # The window has passed.
    session = client.client.session
    for record in session["account_authentication_methods"]:
        record["at"] -= settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1
    session.save()
    launch = f"/api/v1/workspaces/{team.slug}/executions/"
    refused = client.post(launch, {"workflow": f"{team.slug}/job"})
    assert error_of(refused) == (401, "reauthentication_required")
    assert not Execution.objects.exists()
    wrong = client.post("/api/v1/session/reauthenticate/", {"password": "nope-nope-1"})
    assert error_of(wrong) == (401, "invalid_credentials")
    both = client.post("/api/v1/session/reauthenticate/", {"password": PASSWORD, "code": "1"})
    assert error_of(both) == (400, "invalid_input")
    time.sleep(0)  # the code of the sign-in was used; the next step's is another
    confirmed = client.post("/api/v1/session/reauthenticate/", {"password": PASSWORD})
    assert confirmed.status_code == 200 and "reauthenticated_until" in confirmed.json()
    assert client.post(launch, {"workflow": f"{team.slug}/job"}).status_code == 201


def test_value_lookup_asks_first_and_never_keeps_the_value_it_was_sent(alice, team):
    create_secret(actor=alice, workspace=team, key="PIN", value="4321")
    client = signed_in_client(alice, checked_seconds_ago=3600)
    lookup = f"/settings/developer/{team.slug}/value-lookup/"
    response = client.post(lookup, {"value": "4321"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert "4321" not in str(dict(client.session))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VALUE_LOOKED_UP).exists()


def test_granting_and_member_changes_need_a_recent_check(alice, bob, team):
    client = signed_in_client(alice, checked_seconds_ago=3600)
    members = client.post(f"/settings/developer/{team.slug}/members/", {"username": "bob", "role": "member"})
    assert members.status_code == 302 and members["Location"].startswith("/accounts/reauthenticate/")
    grant = client.post(f"/settings/developer/{team.slug}/access/", {"tag": "prod", "grantee": "bob"})
    assert grant.status_code == 302 and grant["Location"].startswith("/accounts/reauthenticate/")
    assert not team.memberships.filter(user=bob).exists()


# The workspace policy


def test_an_owner_requires_two_factor_and_a_member_without_one_is_refused_until_enrolled(alice, bob, team, add_member):
    add_member(bob, "member")
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v-1")
    owner = signed_in_client(alice)
    refused = owner.post(f"/settings/developer/{team.slug}/settings/two-factor/", {"require_mfa": "on"}, follow=True)
    assert refused.redirect_chain[-1][0] == f"/settings/developer/{team.slug}/settings/"
    assert b"second factor to your own account" in refused.content
    assert not Workspace.objects.get(pk=team.pk).require_mfa
    enrol_totp(alice)
    response = owner.post(f"/settings/developer/{team.slug}/settings/two-factor/", {"require_mfa": "on"})
    assert response.status_code == 302
    assert Workspace.objects.get(pk=team.pk).require_mfa
    event = AuditEvent.objects.get(action=AuditEvent.Action.WORKSPACE_SETTINGS_CHANGED)
    assert event.detail == {"require_mfa": {"from": False, "to": True}}

    member = signed_in_client(bob)
    page = member.get(f"/settings/developer/{team.slug}/secrets/")
    assert page.status_code == 403 and b"requires two-factor authentication" in page.content
    assert b'href="/accounts/2fa/">Add a second factor</a>' in page.content
    assert member.get(f"/settings/developer/{team.slug}/members/").status_code == 200  # still sees it
    bob_api, _ = api_sign_in("bob")
    assert error_of(bob_api.get(f"/api/v1/workspaces/{team.slug}/secrets/")) == (403, "mfa_required_by_workspace")
    assert bob_api.get(f"/api/v1/workspaces/{team.slug}/").status_code == 200

    enrol_totp(bob)
    assert member.get(f"/settings/developer/{team.slug}/secrets/").status_code == 200


def test_runner_sessions_minted_before_the_policy_keep_reading(alice, bob, team, add_member):
    add_member(bob, "member")
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v-1")
    workflow = register_workflow(actor=bob, workspace=team, name="job", definition={"k": "${workflow.secrets.API_KEY}"})
    _, runner_key = launch_execution(actor=bob, workspace=team, workflow=workflow)
    enrol_totp(alice)
    owner_api, _ = api_sign_in("alice", code=pyotp.TOTP(SECRET_BASE32).now())
    assert owner_api.send("PATCH", f"/api/v1/workspaces/{team.slug}/", {"require_mfa": True}).status_code == 200
    runner = Client()
    runner.cookies["sessionid"] = runner_key
    read = runner.get("/api/v1/runner/secrets/API_KEY/")
    assert read.status_code == 200 and read.json()["value"] == "v-1"


def test_only_owners_set_the_policy(alice, bob, team, add_member):
    add_member(bob, "admin")
    enrol_totp(bob)
    bob_api, _ = api_sign_in("bob", code=pyotp.TOTP(SECRET_BASE32).now())
    answer = bob_api.send("PATCH", f"/api/v1/workspaces/{team.slug}/", {"require_mfa": True})
    assert error_of(answer) == (403, "permission_denied")
    assert not Workspace.objects.get(pk=team.pk).require_mfa


# What an attacker tried (each once a hole)


def test_the_policy_holds_tag_grantees_too(alice, bob, team):
    from secrets_app.services.grants import grant_tag_permissions

    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="hunter2-prod", tags=["prod"])
    register_workflow(actor=alice, workspace=team, name="job", definition={"k": "${workflow.secrets.DB_PASSWORD}"})
    grant_tag_permissions(actor=alice, workspace=team, tag_name="prod", permission_names=["use"], username="bob")
    enrol_totp(alice)
    team.require_mfa = True
    team.save()
    bob_api, _ = api_sign_in("bob")
    assert error_of(bob_api.get(f"/api/v1/workspaces/{team.slug}/secrets/")) == (403, "mfa_required_by_workspace")
    launched = bob_api.post(f"/api/v1/workspaces/{team.slug}/executions/", {"workflow": f"{team.slug}/job"})
    assert error_of(launched) == (403, "mfa_required_by_workspace")
    assert not Execution.objects.exists()
    assert signed_in_client(bob).get(f"/settings/developer/{team.slug}/secrets/").status_code == 403


def test_every_change_in_the_admin_needs_a_recent_check(make_user, team, alice, bob):
    root = make_user("root", is_staff=True, is_superuser=True)
    stale = signed_in_client(root, checked_seconds_ago=3600)
    assert stale.get("/admin/auth/user/").status_code == 200  # reading is fine
    response = stale.post(
        f"/admin/auth/user/{bob.pk}/password/", {"password1": "Set-by-admin-77", "password2": "Set-by-admin-77"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)
    # allauth's records are not in the admin at all: factors are removed by their owner, audited.
    assert stale.get("/admin/mfa/authenticator/").status_code == 404
    assert stale.get("/admin/socialaccount/socialaccount/").status_code == 404


def test_a_confirmation_never_replays_what_a_stale_session_sent(alice, bob, team):
    stale = signed_in_client(alice, checked_seconds_ago=3600)
    members = f"/settings/developer/{team.slug}/members/"
    planted = stale.post(members, {"username": "bob", "role": "owner"}, HTTP_REFERER=f"http://testserver{members}")
    assert planted.status_code == 302 and planted["Location"].startswith("/accounts/reauthenticate/")
    assert "next=%2Fsettings%2Fdeveloper%2Fteam%2Fmembers%2F" in planted["Location"]
    confirmed = stale.post(planted["Location"], {"password": PASSWORD})
    assert confirmed.status_code == 302 and confirmed["Location"] == members
    assert not team.memberships.filter(user=bob).exists()  # nothing was carried out


def test_the_lockout_counts_a_username_in_any_case(alice):
    for _ in range(5):
        api_sign_in("alice", password="wrong-pass-1") if False else None
        client = JsonClient()
        client.refresh_csrf()
        client.post("/api/v1/session/", {"username": "alice", "password": "wrong-pass-1"})
    for spelling in ("ALICE", "Alice"):
        client = JsonClient()
        client.refresh_csrf()
        answer = client.post("/api/v1/session/", {"username": spelling, "password": PASSWORD})
        assert error_of(answer) == (429, "too_many_sign_in_attempts")
    page = Client().post("/accounts/login/", {"login": "Alice", "password": PASSWORD})
    assert page.status_code == 429


def test_malformed_security_key_answers_and_long_names_are_4xx(alice):
    import json

    browser = Client()
    browser.get("/accounts/login/")  # the passkey sign-in's challenge, in the session
    for credential in ({"id": 1}, {"id": "x", "response": 5}, "not json"):
        data = json.dumps(credential) if not isinstance(credential, str) else credential
        answer = browser.post("/accounts/2fa/webauthn/login/", {"credential": data})
        assert answer.status_code < 500, answer.status_code
    assert signed_in_client(alice).get("/accounts/2fa/webauthn/").status_code == 200
    long_address = "a" * 250 + "@example.com"
    signup = Client().post("/accounts/signup/", {"email": long_address, "password1": PASSWORD, "password2": PASSWORD})
    assert signup.status_code == 400
    login = Client().post("/accounts/login/", {"login": "x" * 60_000 + "@example.com", "password": "p"})
    assert login.status_code == 400
    api = JsonClient()
    api.refresh_csrf()
    assert api.post("/api/v1/session/", {"username": "x" * 60_000 + "@a.b", "password": "p"}).status_code in (
        400,
        401,
    )
