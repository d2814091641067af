"""Sign-up, sign-in, password change and reset, through django-allauth: no enumeration, sessions
end when a credential is replaced, every identity event audited."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.test import Client

from secrets_app.models import AuditEvent, UserSession, Workspace
from tests.conftest import PASSWORD, JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Brand-new-pass-88"


def sign_up(client: Client, email: str, password: str = PASSWORD):
    return client.post("/accounts/signup/", {"email": email, "password1": password, "password2": password})


def test_signing_up_answers_check_your_email_and_gives_a_personal_workspace():
    client = Client()
    response = sign_up(client, "zed@example.com")
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    user = get_user_model().objects.get(email="zed@example.com")
    assert user.username == "zed"
    assert Workspace.objects.filter(personal_owner=user).exists()
    assert [m.to for m in mail.outbox] == [["zed@example.com"]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_SIGNED_UP)
    assert event.actor == user and event.detail == {"method": "password"}
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"zed@example.com" in page.content
    # Not signed in until they sign in.
    assert client.get("/settings/account/").status_code == 302


def test_sign_up_answers_the_same_for_an_address_that_has_an_account(alice):
    alice.email = "alice@example.com"
    alice.save()
    known, unknown = Client(), Client()
    first = sign_up(known, "alice@example.com")
    second = sign_up(unknown, "nobody@example.com")
    assert (first.status_code, first["Location"]) == (second.status_code, second["Location"])
    assert known.get(first["Location"]).content.replace(b"alice", b"X") == unknown.get(
        second["Location"]
    ).content.replace(b"nobody", b"X")
    assert get_user_model().objects.filter(email__iexact="alice@example.com").count() == 1
    # The owner of the address is told, by e-mail only.
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "nobody@example.com"]


def test_sign_up_never_asks_for_a_username_so_it_cannot_tell_one_exists(alice):
    page = Client().get("/accounts/signup/")
    assert page.status_code == 200
    assert b'name="username"' not in page.content
    response = sign_up(Client(), "alice@elsewhere.example")
    assert response.status_code == 302
    assert get_user_model().objects.get(email="alice@elsewhere.example").username != "alice"


def test_sign_in_by_username_or_email_and_a_wrong_password_says_nothing_of_which(alice):
    alice.email = "alice@example.com"
    alice.save()
    for login in ("alice", "alice@example.com"):
        client = Client()
        response = client.post("/accounts/login/", {"login": login, "password": PASSWORD})
        assert response.status_code == 302, response.content
        assert UserSession.objects.filter(session_key=client.session.session_key).exists()
    wrong = Client().post("/accounts/login/", {"login": "alice", "password": "nope-nope-1"})
    unknown = Client().post("/accounts/login/", {"login": "nobody", "password": "nope-nope-1"})
    assert wrong.status_code == unknown.status_code == 400
    assert b"not correct" in wrong.content and b"not correct" in unknown.content


def test_signing_up_can_be_closed(settings):
    settings.SIGNUP_OPEN = False
    page = Client().get("/accounts/signup/")
    assert b"closed" in page.content.lower()
    sign_up(Client(), "zed@example.com")
    assert not get_user_model().objects.filter(email="zed@example.com").exists()


def test_a_password_change_ends_every_other_session_and_is_audited(alice):
    other = signed_in_client(alice)
    client = signed_in_client(alice)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert client.get("/settings/account/").status_code == 200
    assert other.get("/settings/account/").status_code == 302
    actions = list(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert AuditEvent.Action.PASSWORD_CHANGED in actions and AuditEvent.Action.OTHER_SESSIONS_REVOKED in actions


def test_a_password_reset_ends_every_session_and_is_audited(alice):
    alice.email = "alice@example.com"
    alice.save()
    signed_in = signed_in_client(alice)
    response = Client().post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert response.status_code == 302
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)
    client = Client()
    form = client.get(link, follow=True)
    assert form.status_code == 200
    done = client.post(form.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert signed_in.get("/settings/account/").status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.OTHER_SESSIONS_REVOKED)
    assert event.detail["reason"] == "password_reset"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PASSWORD_RESET, actor=alice).exists()


def test_a_reset_for_an_unknown_address_answers_the_same(alice):
    alice.email = "alice@example.com"
    alice.save()
    known = Client().post("/accounts/password/reset/", {"email": "alice@example.com"})
    unknown = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])


def test_sso_only_leaves_password_sign_in_to_superusers(alice, make_user, settings):
    settings.SSO_ONLY = True
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Company SSO",
                    "client_id": "console",
                    "secret": "s",
                    "settings": {"server_url": "http://127.0.0.1:9/"},
                }
            ]
        }
    }
    page = Client().get("/accounts/login/")
    assert b"Company SSO" in page.content and b"Administrators: sign in with a password" in page.content
    assert b"Sign up" not in page.content
    refused = Client().post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert refused.status_code == 400 and b"Sign in with single sign-on" in refused.content
    make_user("root", is_staff=True, is_superuser=True)
    assert Client().post("/accounts/login/", {"login": "root", "password": PASSWORD}).status_code == 302
    api = JsonClient()
    api.refresh_csrf()
    assert error_of(api.post("/api/v1/session/", {"username": "alice", "password": PASSWORD})) == (403, "sso_only")


class CountingHasher(MD5PasswordHasher):
    """Django's MD5 hasher (fast, for tests), counting the passwords it hashes."""

    algorithm = "counting_md5"
    hashed = 0

    def encode(self, password, salt):
        CountingHasher.hashed += 1
        return super().encode(password, salt)


def test_sign_up_and_sign_in_hash_a_password_whether_the_name_exists_or_not(alice, settings):
    """Same timing class: the slow step, hashing a password, happens once on each path."""
    settings.PASSWORD_HASHERS = ["tests.test_identity.CountingHasher"]
    alice.email = "alice@example.com"
    alice.save()
    hashed = {}
    for label, email in (("known", "alice@example.com"), ("new", "nobody@example.com")):
        CountingHasher.hashed = 0
        sign_up(Client(), email)
        hashed[f"sign-up, {label} address"] = CountingHasher.hashed
    for label, login in (("known", "alice"), ("unknown", "nobody-at-all")):
        CountingHasher.hashed = 0
        Client().post("/accounts/login/", {"login": login, "password": "wrong-pass-99"})
        hashed[f"sign-in, {label} username"] = CountingHasher.hashed
    assert hashed["sign-up, known address"] == hashed["sign-up, new address"] == 1, hashed
    assert hashed["sign-in, known username"] == hashed["sign-in, unknown username"], hashed


def test_sign_up_sets_the_same_cookies_for_a_known_and_a_new_address(alice):
    alice.email = "alice@example.com"
    alice.save()
    known = sign_up(Client(), "alice@example.com")
    new = sign_up(Client(), "nobody@example.com")
    assert sorted(known.cookies) == sorted(new.cookies)


def test_with_mandatory_verification_the_api_refuses_an_unconfirmed_address(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    sign_up(Client(), "mallory@victim-corp.com")
    user = get_user_model().objects.get(email="mallory@victim-corp.com")
    api = JsonClient()
    api.refresh_csrf()
    answer = api.post("/api/v1/session/", {"username": user.username, "password": PASSWORD})
    assert error_of(answer) == (403, "email_unverified")


def test_account_settings_shows_your_own_security_log(alice):
    from secrets_app.services.accounts import record_factor_added, record_reauthentication

    record_factor_added(user=alice, factor="totp", ip_address="198.51.100.4")
    record_reauthentication(user=alice, method="password")
    page = signed_in_client(alice).get("/settings/account/").content.decode()
    assert "<title>Profile · Secrets Console</title>" in page and page.count('id="security-title"') == 1
    log = page.split('id="security-title"')[1]
    assert "Second factor added (totp)" in log and "198.51.100.4" in log
    assert "Identity confirmed for a sensitive action (password)" in log
