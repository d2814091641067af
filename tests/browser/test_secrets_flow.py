"""The Secrets page in a real browser: sign in, add, see it listed without its value, duplicate, delete, re-add."""

import pytest
from playwright.sync_api import expect

from secrets_app.models import Secret
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

VALUE = "-----BEGIN KEY-----\nbrowser-canary-9c1\n-----END KEY-----\n"


def sign_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Secrets")


def add_secret(page, key: str, value: str, tags: str = "") -> None:
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Value").fill(value)
    if tags:
        page.get_by_label("Tags").fill(tags)
    page.get_by_role("button", name="Add secret").click()


def test_add_list_duplicate_delete_and_re_add_a_secret(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    expect(page.get_by_text("Secrets are immutable")).to_be_visible()

    add_secret(page, "DEPLOY_KEY", VALUE, tags="env:prod team:ops")
    expect(page.get_by_text("Secret DEPLOY_KEY added. Its value will not be shown again.")).to_be_visible()
    row = page.get_by_role("row", name="DEPLOY_KEY")
    expect(row).to_contain_text("env:prod")
    expect(row).to_contain_text("alice")
    assert "browser-canary-9c1" not in page.content()
    assert Secret.objects.get(key="DEPLOY_KEY").reveal_value() == VALUE

    add_secret(page, "DEPLOY_KEY", "another value")
    expect(page.get_by_text("A secret with this key already exists")).to_be_visible()
    expect(page.get_by_label("Value")).to_have_value("")
    assert Secret.objects.get(key="DEPLOY_KEY").reveal_value() == VALUE

    page.get_by_role("row", name="DEPLOY_KEY").get_by_role("link", name="Delete").click()
    expect(page.get_by_text("cannot be undone")).to_be_visible()
    page.get_by_role("button", name="Yes, delete DEPLOY_KEY").click()
    expect(page.get_by_text("Secret DEPLOY_KEY deleted.")).to_be_visible()
    expect(page.get_by_role("row", name="DEPLOY_KEY")).to_have_count(0)

    add_secret(page, "DEPLOY_KEY", "rotated value")
    expect(page.get_by_text("Secret DEPLOY_KEY added.")).to_be_visible()
    assert Secret.objects.get(key="DEPLOY_KEY").reveal_value() == "rotated value"


def test_tags_are_added_and_removed_on_the_secret_page(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    add_secret(page, "TAGGED", "v")
    page.get_by_role("link", name="TAGGED").click()
    page.get_by_label("New tags").fill("team:data")
    page.get_by_role("button", name="Add tags").click()
    expect(page.get_by_text("Tagged TAGGED: team:data.")).to_be_visible()
    page.get_by_role("button", name="Remove tag team:data").click()
    expect(page.get_by_text("Removed tag team:data from TAGGED.")).to_be_visible()


def test_switcher_opens_another_workspace(browser_page, alice, team):
    page = browser_page
    sign_in(page, "alice")
    page.get_by_label("Workspace").select_option("team")
    expect(page).to_have_url(f"{page.url.split('/settings')[0]}/settings/developer/team/secrets/")
    expect(page.get_by_role("heading", name="Secrets · Team")).to_be_visible()


def test_secrets_page_fits_a_phone_screen(chromium, live_server, alice):
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, "alice")
    add_secret(page, "PHONE_KEY", "v")
    expect(page.get_by_text("PHONE_KEY").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
