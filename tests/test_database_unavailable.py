"""A database that fails mid-request: every kind of endpoint answers 503 with a clear message, and
nothing is half-written. The queries fail in the database layer (an execute wrapper), where a real
outage surfaces; `tests/test_database_outage.py` stops a real PostgreSQL under a real app server.
"""

from __future__ import annotations

import contextlib
import logging
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError, connection
from django.test import Client

from secrets_app import errors
from secrets_app.models import AuditEvent, Secret, Workspace
from secrets_app.services.runs import launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from tests.conftest import PASSWORD, JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

# What a driver's message can hold, and a page must never show: a host, an address, a parameter.
DRIVER_TEXT = 'connection to server at "db-primary.internal" (10.1.2.3), port 5432 failed: key=LEAKED_PARAMETER'
LEAKED = ("db-primary.internal", "10.1.2.3", "LEAKED_PARAMETER", "port 5432")
UNAVAILABLE_MESSAGE = errors.DatabaseUnavailable.default_message
TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK)\b", re.IGNORECASE)


@contextlib.contextmanager
def database_fails(on: str = "", error: type[Exception] = OperationalError):
    """Every statement whose SQL contains `on` (all of them if empty) fails with `error`, as if the
    database went away just then. Savepoint statements pass, so the test's own transaction stays
    usable to look at what was left behind."""
    failed: list[str] = []

    def fail(execute, sql, params, many, context):
        if on in sql and not TRANSACTION_CONTROL.match(sql):
            failed.append(sql)
            raise error(DRIVER_TEXT)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield failed
    assert failed, f"no statement matched {on!r}: the test did not reach the database where it meant to"


def tolerant(client: Client | JsonClient) -> Client | JsonClient:
    """Answer like a real server instead of re-raising the request's exception in the test."""
    (client.client if isinstance(client, JsonClient) else client).raise_request_exception = False
    return client


def assert_unavailable_json(response) -> None:
    assert error_of(response) == (503, "database_unavailable")
    assert response.json()["error"]["message"] == UNAVAILABLE_MESSAGE
    assert response["Retry-After"] == "30"
    assert_nothing_leaked(response)


def assert_unavailable_page(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<h1>Temporarily unavailable</h1>" in page and UNAVAILABLE_MESSAGE in page
    assert "/static/css/console.css" in page  # the site's own layout and style
    assert response["Retry-After"] == "30"
    assert_nothing_leaked(response)


def assert_nothing_leaked(response) -> None:
    body = response.content.decode()
    assert not any(text in body for text in LEAKED), body
    assert "OperationalError" not in body and "Traceback" not in body


@pytest.fixture
def personal(alice) -> Workspace:
    return Workspace.objects.get(personal_owner=alice)


# Pages, the API, admin and sign-in


def test_a_page_whose_query_fails_is_a_503_page_in_the_site_style(alice, personal):
    client = tolerant(signed_in_client(alice))
    with database_fails(on='"secrets_app_secret"'):
        response = client.get(f"/settings/developer/{personal.slug}/secrets/")
    assert_unavailable_page(response)


def test_an_api_list_whose_query_fails_is_a_503_in_the_api_error_shape(alice_api, personal):
    with database_fails(on='"secrets_app_secret"'):
        response = tolerant(alice_api).get(f"/api/v1/workspaces/{personal.slug}/secrets/")
    assert_unavailable_json(response)


def test_a_session_that_must_be_loaded_from_the_database_is_a_503_not_a_500(alice_api):
    cache.clear()  # the session is no longer cached: the session middleware's load reads the database
    with database_fails(on='"django_session"') as failed:
        response = tolerant(alice_api).get("/api/v1/workspaces/")
    assert_unavailable_json(response)
    assert all("SELECT" in sql for sql in failed)


def test_a_cached_session_whose_user_cannot_be_loaded_is_a_503_page(alice):
    client = tolerant(signed_in_client(alice))
    with database_fails(on='"auth_user"'):
        response = client.get("/settings/account/")
    assert_unavailable_page(response)


def test_signing_in_while_the_database_is_down_is_a_503_and_signs_nobody_in(alice):
    browser = tolerant(Client())
    with database_fails():
        response = browser.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert_unavailable_page(response)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    api = tolerant(JsonClient())
    api.refresh_csrf()
    with database_fails():
        response = api.post("/api/v1/session/", {"username": "alice", "password": PASSWORD})
    assert_unavailable_json(response)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert api.login("alice").status_code == 200  # and once it is back, signing in works


def test_admin_pages_and_the_sign_in_answer_503_pages(make_user):
    make_user("root", is_staff=True, is_superuser=True)
    admin = tolerant(signed_in_client(get_user_model().objects.get(username="root")))
    with database_fails():
        assert_unavailable_page(admin.get("/admin/secrets_app/secret/"))
    with database_fails():
        assert_unavailable_page(tolerant(Client()).post("/accounts/login/", {"login": "root", "password": PASSWORD}))


def test_an_interface_error_is_a_503_too(alice_api):
    with database_fails(error=InterfaceError):
        response = tolerant(alice_api).get("/api/v1/workspaces/")
    assert_unavailable_json(response)


# Writes leave nothing behind


def test_an_api_create_that_fails_midway_leaves_nothing_and_can_be_done_again(alice_api, personal):
    url = f"/api/v1/workspaces/{personal.slug}/secrets/"
    body = {"key": "DURING_OUTAGE", "value": "outage-value-42", "tags": ["ops"]}
    with database_fails(on='INSERT INTO "secrets_app_auditevent"'):  # after the secret and its tag were written
        response = tolerant(alice_api).post(url, body)
    assert_unavailable_json(response)
    assert "outage-value-42" not in response.content.decode()
    assert not Secret.objects.filter(key="DURING_OUTAGE").exists()
    assert not personal.tags.filter(name="ops").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_CREATED).exists()
    assert alice_api.post(url, body).status_code == 201
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_CREATED).count() == 1


def test_a_ui_form_post_that_fails_midway_leaves_nothing(alice, personal):
    client = tolerant(signed_in_client(alice))
    with database_fails(on='INSERT INTO "secrets_app_secret"'):
        response = client.post(
            f"/settings/developer/{personal.slug}/secrets/", {"key": "FORM_KEY", "value": "form-value-42"}
        )
    assert_unavailable_page(response)
    assert "form-value-42" not in response.content.decode()
    assert not Secret.objects.filter(key="FORM_KEY").exists()


# The runner read


@pytest.fixture
def runner(alice, team) -> JsonClient:
    create_secret(actor=alice, workspace=team, key="RUNNER_KEY", value="runner-value-42")
    workflow = register_workflow(
        actor=alice, workspace=team, name="job", definition={"token": "${workflow.secrets.RUNNER_KEY}"}
    )
    _, session_key = launch_execution(actor=alice, workspace=team, workflow=workflow)
    client = JsonClient()
    client.client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return tolerant(client)


def test_a_runner_read_whose_query_fails_is_a_503(runner):
    with database_fails(on='FROM "secrets_app_secret"'):
        response = runner.get("/api/v1/runner/secrets/RUNNER_KEY/")
    assert_unavailable_json(response)
    assert runner.get("/api/v1/runner/secrets/RUNNER_KEY/").json()["value"] == "runner-value-42"


def test_a_runner_read_whose_audit_write_fails_returns_no_value(runner):
    with database_fails(on='INSERT INTO "secrets_app_auditevent"'):
        response = runner.get("/api/v1/runner/secrets/RUNNER_KEY/")
    assert_unavailable_json(response)
    assert "runner-value-42" not in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ).exists()


# What stays as it was


def test_health_checks_while_the_database_is_down(client):
    with database_fails():
        readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["checks"]["database"] == "unreachable (OperationalError)"
    with connection.execute_wrapper(lambda *args: pytest.fail("/healthz touched the database")):
        assert client.get("/healthz").status_code == 200


def test_a_conflict_is_still_a_409_not_an_outage(alice_api, personal):
    url = f"/api/v1/workspaces/{personal.slug}/secrets/"
    assert alice_api.post(url, {"key": "TAKEN", "value": "v"}).status_code == 201
    assert error_of(alice_api.post(url, {"key": "TAKEN", "value": "v"})) == (409, "secret_exists")


@pytest.mark.parametrize("error", [ProgrammingError, IntegrityError])
def test_other_database_errors_left_unhandled_stay_500s(alice_api, error):
    with database_fails(on='"secrets_app_workspace"', error=error):
        response = tolerant(alice_api).get("/api/v1/workspaces/")
    assert error_of(response) == (500, "server_error")
    assert "Retry-After" not in response
    assert_nothing_leaked(response)


def test_the_500_page_does_not_load_the_user_that_just_failed_to_load(alice):
    client = tolerant(signed_in_client(alice))
    with database_fails(on='"auth_user"', error=ProgrammingError):
        response = client.get("/settings/account/")
    assert response.status_code == 500 and "<h1>Server error</h1>" in response.content.decode()
    assert_nothing_leaked(response)


def test_the_failure_is_logged_once_naming_the_driver_error_never_its_text(alice_api, caplog):
    with caplog.at_level(logging.INFO), database_fails(on='"secrets_app_workspace"'):
        tolerant(alice_api).get("/api/v1/workspaces/")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in records] == [
        "Database unavailable (OperationalError): GET /api/v1/workspaces/ answered 503"
    ]
    assert records[0].exc_info is None
