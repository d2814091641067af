"""Account Settings → Sessions in a real browser: two browsers and a run, one revoked from the other."""

import pytest
from playwright.sync_api import expect

from secrets_app.services.runs import launch_execution, register_workflow
from secrets_app.services.secrets import create_secret
from tests.browser.test_secrets_flow import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_session_revoked_in_one_browser_is_signed_out_in_the_other(chromium, live_server, alice, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    workflow = register_workflow(
        actor=alice, workspace=team, name="nightly", definition={"t": "${workflow.secrets.API_KEY}"}
    )
    launch_execution(actor=alice, workspace=team, workflow=workflow)
    contexts = [
        chromium.new_context(base_url=live_server.url),
        chromium.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}),
    ]
    try:
        revoke_one_browser_from_the_other(live_server, *(context.new_page() for context in contexts))
    finally:
        for context in contexts:
            context.close()


def revoke_one_browser_from_the_other(live_server, laptop, phone) -> None:
    sign_in(laptop, "alice")
    sign_in(phone, "alice")
    phone.goto("/settings/account/")
    expect(phone.locator("table.sessions tbody tr")).to_have_count(3)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # the table fits a phone

    laptop.goto("/settings/account/")
    sessions = laptop.locator("table.sessions tbody tr")
    expect(sessions).to_have_count(3)
    current = laptop.locator("table.sessions tr[aria-current]")
    expect(current).to_contain_text("this session")
    expect(current).to_contain_text("Chrome on Linux")
    expect(laptop.get_by_role("row", name="team/nightly")).to_contain_text("Runner")

    laptop.get_by_role("row", name="team/nightly").get_by_role("button", name="End run").click()
    expect(laptop.get_by_text("Runner session of team/nightly ended")).to_be_visible()
    expect(sessions).to_have_count(2)
    sessions.filter(has_not_text="this session").get_by_role("button", name="Revoke").click()
    expect(laptop.get_by_text("Browser session (Chrome on Linux) ended")).to_be_visible()
    expect(sessions).to_have_count(1)

    phone.goto("/settings/account/")
    expect(phone).to_have_url(f"{live_server.url}/accounts/login/?next=/settings/account/")
