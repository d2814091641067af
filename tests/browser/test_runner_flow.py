"""Workflows and executions in a real browser: register, launch, read with the runner session, finish."""

import json

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from secrets_app.services.runs import launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from tests.browser.test_secrets_flow import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def runner_read(session_key: str, key: str):
    runner = Client()
    runner.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return runner.get(f"/api/v1/runner/secrets/{key}/")


def test_register_launch_read_and_finish_from_the_console(browser_page, alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="browser-runner-canary")
    page = browser_page
    sign_in(page, "alice")
    page.goto("/settings/developer/team/workflows/")
    page.get_by_label("Name").fill("nightly")
    page.get_by_label("Definition").fill(json.dumps({"token": "${workflow.secrets.API_KEY}"}))
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Workflow team/nightly registered.")).to_be_visible()
    row = page.get_by_role("row", name="nightly")
    expect(row).to_contain_text("API_KEY")

    row.get_by_label("Run nightly in").select_option("team")
    row.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", name="Execution launched")).to_be_visible()
    credential = page.locator("pre.credential").inner_text()
    session_key = credential.split("CONSOLE_SESSION=")[1].strip()
    page.reload()  # shown once: a reload neither shows it again nor launches again
    expect(page.get_by_text("The runner session was shown once")).to_be_visible()
    assert session_key not in page.content()
    assert runner_read(session_key, "API_KEY").json()["value"] == "browser-runner-canary"

    page.get_by_role("link", name="See all executions").click()
    execution_row = page.get_by_role("row", name="team/nightly")
    expect(execution_row).to_contain_text("running")
    execution_row.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("finished; its runner session has ended")).to_be_visible()
    expect(page.get_by_role("row", name="team/nightly")).to_contain_text("finished")
    assert runner_read(session_key, "API_KEY").json()["error"]["code"] == "execution_finished"
    assert "browser-runner-canary" not in page.content()

    page.goto("/settings/developer/team/secrets/API_KEY/delete/")
    expect(page.get_by_text("1 registered workflow uses this key")).to_be_visible()
    expect(page.locator(".workflow-list")).to_contain_text("nightly")


def test_every_developer_settings_page_fits_a_phone_screen(chromium, live_server, alice, team):
    create_secret(
        actor=alice, workspace=team, key="A_RATHER_LONG_SECRET_KEY_NAME", value="v", tags=["env:prod", "team:ops"]
    )
    workflow = register_workflow(
        actor=alice,
        workspace=team,
        name="nightly-etl",
        definition={"t": "${workflow.secrets.A_RATHER_LONG_SECRET_KEY_NAME}"},
    )
    launch_execution(actor=alice, workspace=team, workflow=workflow)
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, "alice")
    for section in (
        "secrets/",
        "secrets/A_RATHER_LONG_SECRET_KEY_NAME/",
        "workflows/",
        "executions/",
        "access/",
        "members/",
        "activity/",
    ):
        page.goto(f"/settings/developer/team/{section}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, section
    context.close()
