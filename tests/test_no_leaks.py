"""A value, once given, is never shown again: not in pages, listings, the admin, logs or error reports."""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from secrets_app import services
from tests.conftest import JsonClient

pytestmark = pytest.mark.django_db

CANARY = "canary-Value-7f3a9e"


@pytest.fixture
def everything_logged(caplog, settings):
    """DEBUG on (so Django logs every SQL statement with its parameters) and every logger at DEBUG."""
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    return caplog


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert CANARY.encode().hex() not in text


def test_no_page_listing_admin_view_or_log_line_shows_a_value(alice, everything_logged):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    team = services.create_team_workspace(actor=alice, name="Team", slug="team")
    api = JsonClient()
    api.login("alice")
    assert (
        api.post(
            "/api/v1/workspaces/team/secrets/", {"key": "VIA_API", "value": CANARY, "tags": ["env:prod"]}
        ).status_code
        == 201
    )

    browser = Client()
    browser.force_login(alice)
    assert browser.post("/settings/developer/team/secrets/", {"key": "VIA_UI", "value": CANARY}).status_code == 302
    duplicate = browser.post("/settings/developer/team/secrets/", {"key": "VIA_UI", "value": CANARY})
    admin = Client()
    admin.force_login(root)
    secret_id = team.secrets.get(key="VIA_API").pk

    bodies = [
        duplicate.content.decode(),
        api.get("/api/v1/workspaces/team/secrets/").content.decode(),
        api.get("/api/v1/workspaces/team/secrets/VIA_API/").content.decode(),
        api.post("/api/v1/workspaces/team/secrets/", {"key": "VIA_API", "value": CANARY}).content.decode(),
        browser.get("/settings/developer/team/secrets/").content.decode(),
        browser.get("/settings/developer/team/secrets/VIA_API/").content.decode(),
        browser.get("/settings/developer/team/secrets/VIA_API/delete/").content.decode(),
        admin.get("/admin/secrets_app/secret/").content.decode(),
        admin.get(f"/admin/secrets_app/secret/{secret_id}/change/").content.decode(),
        admin.get("/admin/secrets_app/auditevent/").content.decode(),
    ]
    assert "VIA_API" in bodies[1]
    assert_no_canary(*bodies)
    assert_no_canary(*(record.getMessage() for record in everything_logged.records))
    assert any("INSERT" in record.getMessage() for record in everything_logged.records), "SQL was not logged"


@pytest.fixture
def api_with_a_failing_audit_log(alice, monkeypatch) -> JsonClient:
    """Alice's API client, on a server whose audit write raises after the value arrived."""

    def explode(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services, "record_events", explode)
    api = JsonClient()
    api.login("alice")
    api.client.raise_request_exception = False
    return api


def test_an_exception_while_storing_a_value_reveals_it_nowhere(alice, settings, caplog, api_with_a_failing_audit_log):
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    api = api_with_a_failing_audit_log
    response = api.post("/api/v1/workspaces/alice/secrets/", {"key": "BOOM", "value": CANARY})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert len(mail.outbox) == 1
    report = mail.outbox[0].body + "".join(str(alt[0]) for alt in mail.outbox[0].alternatives)
    assert "audit store unavailable" in report  # the report is real...
    assert_no_canary(response.content.decode(), report)  # ...and holds no value
    assert_no_canary(*(record.getMessage() for record in caplog.records))
    assert not alice.personal_workspace.secrets.filter(key="BOOM").exists()


def test_even_the_debug_error_page_with_local_variables_holds_no_value(settings, api_with_a_failing_audit_log):
    settings.DEBUG = True
    api = api_with_a_failing_audit_log
    response = api.client.post(
        "/api/v1/workspaces/alice/secrets/",
        data=json.dumps({"key": "BOOM", "value": CANARY}),
        content_type="application/json",
        headers={"X-CSRFToken": api.csrf_token, "Accept": "text/html"},
    )
    page = response.content.decode()
    assert response.status_code == 500 and "Local vars" in page  # the technical page, with frames
    assert_no_canary(page)
