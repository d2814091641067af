"""Failed sign-ins are limited per username and per address, on the UI, the API and the admin."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from tests.conftest import PASSWORD, JsonClient, error_of

pytestmark = pytest.mark.django_db

LIMIT = 5


def api_sign_in(username: str, password: str, address: str = "203.0.113.7"):
    client = JsonClient()
    client.client.defaults["REMOTE_ADDR"] = address
    return client, client.login(username, password)


def ui_sign_in(username: str, password: str, address: str = "203.0.113.7"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post("/accounts/login/", {"login": username, "password": password})


def fail(times: int, username: str = "alice", address: str = "203.0.113.7") -> list[tuple[int, str]]:
    return [error_of(api_sign_in(username, "wrong password", address)[1]) for _ in range(times)]


def fail_up_to_the_limit(username: str = "alice", address: str = "203.0.113.7") -> None:
    """The limit-th failure is the one that locks, and it already answers 429."""
    answers = fail(LIMIT, username, address)
    assert answers == [(401, "invalid_credentials")] * (LIMIT - 1) + [(429, "too_many_sign_in_attempts")]


def test_the_api_refuses_with_429_after_the_limit_even_with_the_right_password(alice):
    fail_up_to_the_limit()

    client, response = api_sign_in("alice", PASSWORD)

    assert error_of(response) == (429, "too_many_sign_in_attempts")
    message = response.json()["error"]["message"]
    assert "locked for 15 minutes after 5 failed attempts" in message
    assert response["Retry-After"] == "900"
    assert client.get("/api/v1/session/").json()["user"] is None


def test_failures_below_the_limit_do_not_lock_and_a_success_starts_the_usernames_count_again(alice):
    fail(LIMIT - 1)
    assert api_sign_in("alice", PASSWORD)[1].status_code == 200
    fail(LIMIT - 1, address="198.51.100.20")
    assert api_sign_in("alice", PASSWORD, "198.51.100.20")[1].status_code == 200


def test_a_success_never_resets_the_addresss_count(alice, make_user):
    """An attacker signing in to their own account every 4th guess still hits the address's limit."""
    make_user("mallory")
    answers = []
    for number, victim in enumerate(["carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "lee"]):
        if number and number % 3 == 0:
            api_sign_in("mallory", PASSWORD)
        answers.append(fail(1, victim)[0])
    assert answers[: LIMIT - 1] == [(401, "invalid_credentials")] * (LIMIT - 1)
    assert answers[LIMIT - 1 :] == [(429, "too_many_sign_in_attempts")] * (10 - LIMIT + 1)


def test_a_success_resets_only_its_own_usernames_count(alice, bob):
    fail(LIMIT - 1, "bob", "198.51.100.30")
    assert api_sign_in("alice", PASSWORD, "198.51.100.31")[1].status_code == 200
    assert fail(1, "bob", "198.51.100.32") == [(429, "too_many_sign_in_attempts")]


def test_a_username_is_locked_whatever_address_the_guesses_come_from(alice):
    for number in range(LIMIT - 1):
        assert fail(1, "alice", f"198.51.100.{number}") == [(401, "invalid_credentials")]
    assert fail(1, "alice", "198.51.100.99") == [(429, "too_many_sign_in_attempts")]
    assert error_of(api_sign_in("alice", PASSWORD, "192.0.2.200")[1]) == (429, "too_many_sign_in_attempts")


def test_an_address_is_locked_whatever_usernames_it_guesses(alice, bob):
    answers = [fail(1, username)[0] for username in ("carol", "dave", "erin", "frank", "grace")]
    assert answers[-1] == (429, "too_many_sign_in_attempts")
    assert error_of(api_sign_in("bob", PASSWORD)[1]) == (429, "too_many_sign_in_attempts")
    assert api_sign_in("bob", PASSWORD, "192.0.2.99")[1].status_code == 200


def test_the_sign_in_page_shows_the_lockout_with_429(alice):
    for _ in range(LIMIT - 1):
        _, response = ui_sign_in("alice", "wrong password")
        assert (
            response.status_code == 400
            and b"The username and/or password you specified are not correct" in response.content
        )
    assert ui_sign_in("alice", "wrong password")[1].status_code == 429

    client, response = ui_sign_in("alice", PASSWORD)

    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert "Too many failed sign-ins" in page and "locked for 15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_the_ui_api_and_admin_share_one_count(alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    fail(2)
    for _ in range(2):
        assert ui_sign_in("alice", "wrong password")[1].status_code == 400

    # The admin has no sign-in of its own: it sends people to the console's.
    admin = Client(REMOTE_ADDR="203.0.113.7")
    sent = admin.get("/admin/login/?next=/admin/")
    assert sent.status_code == 302 and sent["Location"].startswith("/accounts/login/")
    guess = admin.post("/accounts/login/?next=/admin/", {"login": "alice", "password": "wrong"})
    assert guess.status_code == 429  # the fifth failure, counted across the page and the API

    response = admin.post("/accounts/login/?next=/admin/", {"login": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in admin.session


def test_the_limit_and_lockout_come_from_the_environment(alice, settings):
    import datetime

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = datetime.timedelta(minutes=3)
    assert fail(2)[-1] == (429, "too_many_sign_in_attempts")
    response = api_sign_in("alice", PASSWORD)[1]
    assert error_of(response) == (429, "too_many_sign_in_attempts")
    assert "locked for 3 minutes after 2 failed attempts" in response.json()["error"]["message"]
    assert response["Retry-After"] == "180"


def test_guessed_passwords_never_reach_the_logs(alice, caplog):
    caplog.set_level(logging.DEBUG)
    for number in range(LIMIT + 1):
        api_sign_in("alice", f"guess-{number}-Zq9")
    assert "Zq9" not in caplog.text
    assert "alice" in caplog.text  # the lockout itself is logged, with the username


def change_password(client: Client, old: str):
    return client.post(
        "/accounts/password/change/",
        {"oldpassword": old, "password1": "a-New-passw0rd-77", "password2": "a-New-passw0rd-77"},
    )


def test_wrong_current_passwords_on_the_password_form_count_as_failed_sign_ins(alice):
    """A stolen session cannot use the password form to test guesses without limit."""
    browser = Client(REMOTE_ADDR="203.0.113.7")
    browser.force_login(alice)
    answers = [change_password(browser, f"guess-{number}").status_code for number in range(LIMIT)]
    assert answers == [400] * (LIMIT - 1) + [429]
    locked = change_password(browser, PASSWORD)
    assert locked.status_code == 429 and "locked for 15 minutes" in locked.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    assert error_of(api_sign_in("alice", PASSWORD, "198.51.100.50")[1]) == (429, "too_many_sign_in_attempts")


def test_the_right_current_password_still_changes_it(alice):
    browser = Client(REMOTE_ADDR="203.0.113.7")
    browser.force_login(alice)
    assert change_password(browser, "one wrong guess").status_code == 400
    assert change_password(browser, PASSWORD).status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-New-passw0rd-77")
