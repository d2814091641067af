"""A value, once given, is never shown again: not in pages, listings, the admin, logs or error reports."""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from secrets_app.services import audit
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import create_team_workspace
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
    team = create_team_workspace(actor=alice, name="Team", slug="team")
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

    monkeypatch.setattr(audit, "record_events", explode)
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


# Every path that holds a value, forced to fail while it holds it


@pytest.fixture
def running_workflow(alice):
    """A value in alice's team workspace, and a runner session of a workflow that uses it."""
    from tests.test_runners import launch, runner_client

    team = create_team_workspace(actor=alice, name="Team", slug="team")
    create_secret(actor=alice, workspace=team, key="API_KEY", value=CANARY)
    workflow = register_workflow(
        actor=alice, workspace=team, name="nightly", definition={"token": "${workflow.secrets.API_KEY}"}
    )
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    runner.client.raise_request_exception = False
    return runner


def _fail_audit(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record_events", explode)


def _fail_answer(monkeypatch):
    """The values are read, decrypted and audited; building the answer that holds them then fails."""
    from secrets_app.api import runner, v1

    real_json_response, real_render = runner.JsonResponse, v1.api.renderer.render

    def fails_on_values(data, *args, **kwargs):
        if "value" in data or "document" in data:
            raise RuntimeError("answer could not be built")
        return real_json_response(data, *args, **kwargs)

    def render_fails_on_values(request, data, **kwargs):
        if "value" in data or "document" in data:
            raise RuntimeError("answer could not be built")
        return real_render(request, data, **kwargs)

    # The runner read builds its JsonResponse; resolve's answer is rendered by the API.
    monkeypatch.setattr(runner, "JsonResponse", fails_on_values)
    monkeypatch.setattr(v1.api.renderer, "render", render_fails_on_values)


def _ui_create(alice, running_workflow):
    browser = Client(raise_request_exception=False)
    browser.force_login(alice)
    return browser.post(
        "/settings/developer/alice/secrets/", {"key": "VIA_UI", "value": CANARY}, HTTP_ACCEPT="text/html"
    )


def _runner_read(alice, running_workflow):
    return running_workflow.client.get("/api/v1/runner/secrets/API_KEY/", HTTP_ACCEPT="text/html")


def _runner_resolve(alice, running_workflow):
    return running_workflow.client.post(
        "/api/v1/runner/resolve/",
        json.dumps({"env": {"TOKEN": "${workflow.secrets.API_KEY}"}}),
        content_type="application/json",
        headers={"X-CSRFToken": running_workflow.csrf_token, "Accept": "text/html"},
    )


VALUE_PATHS = {
    "UI create, audit fails": (_ui_create, _fail_audit),
    "runner read, audit fails": (_runner_read, _fail_audit),
    "runner read, answer fails": (_runner_read, _fail_answer),
    "resolve, audit fails": (_runner_resolve, _fail_audit),
    "resolve, answer fails": (_runner_resolve, _fail_answer),
}


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG page"])
@pytest.mark.parametrize("path", VALUE_PATHS)
def test_a_failure_on_any_value_path_reveals_the_value_nowhere(
    path, debug, alice, running_workflow, monkeypatch, settings, caplog
):
    request, failure = VALUE_PATHS[path]
    settings.DEBUG = debug
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    failure(monkeypatch)

    response = request(alice, running_workflow)

    assert response.status_code == 500
    page = response.content.decode()
    if debug:
        assert "Local vars" in page and "Traceback" in page  # the technical page, frames and all
    else:
        assert len(mail.outbox) == 1
        report = mail.outbox[0].body + "".join(str(alt[0]) for alt in mail.outbox[0].alternatives)
        assert "Traceback" in report
        assert "could not be built" in report or "audit store unavailable" in report
        assert_no_canary(report)
    assert_no_canary(page)
    assert_no_canary(*(record.getMessage() for record in caplog.records))
    assert_no_canary(*(str(record.exc_info[1]) for record in caplog.records if record.exc_info))


def test_a_full_create_read_resolve_cycle_logs_no_value_even_at_debug(alice, running_workflow, everything_logged):
    api = JsonClient()
    api.login("alice")
    assert api.post("/api/v1/workspaces/team/secrets/", {"key": "SECOND", "value": CANARY + "-2"}).status_code == 201
    read = running_workflow.get("/api/v1/runner/secrets/API_KEY/")
    assert read.json()["value"] == CANARY  # the one place a value is answered
    resolved = running_workflow.post("/api/v1/runner/resolve/", {"t": "${workflow.secrets.API_KEY}"})
    assert resolved.json()["document"] == {"t": CANARY}
    assert_no_canary(*(record.getMessage() for record in everything_logged.records))
    assert sum("SELECT" in record.getMessage() for record in everything_logged.records) > 5, "SQL was not logged"


def test_a_refused_value_is_not_echoed_in_validation_errors(alice):
    api = JsonClient()
    api.login("alice")
    too_big = "x" * 65_536 + CANARY
    refusals = [
        (too_big, 413, "value_too_large"),
        (CANARY + "\x00", 400, "invalid_input"),
        (CANARY + "\ud800", 400, "invalid_input"),
    ]
    for value, status, code in refusals:
        response = api.post("/api/v1/workspaces/alice/secrets/", raw=json.dumps({"key": "K", "value": value}))
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        assert_no_canary(response.content.decode())
