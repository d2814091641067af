"""Importing a .env file in a real browser: paste, preview without values, confirm; a conflict; an upload."""

import pytest
from playwright.sync_api import expect

from secrets_app.models import Secret
from secrets_app.services.secrets import create_secret
from tests.browser.test_secrets_flow import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = "browser-dotenv-canary-41d"
DOTENV = f'# production\nexport API_KEY={CANARY}\nPEM="-----BEGIN KEY-----\n{CANARY}\n-----END KEY-----\n"\n'


def open_import(page) -> None:
    page.get_by_role("link", name="Import .env").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Import a .env file")


def test_paste_preview_and_import_a_dotenv_file(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    open_import(page)
    page.get_by_label("Paste a .env file").fill(DOTENV)
    page.get_by_label("Tags for every imported secret").fill("env:prod")
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Import preview")
    expect(page.get_by_role("row", name="2 API_KEY new")).to_be_visible()
    expect(page.get_by_role("row", name="3 PEM new")).to_be_visible()
    assert CANARY not in page.content()

    page.get_by_role("button", name="Import 2 secrets").click()
    expect(page.get_by_text("Imported 2 secrets.")).to_be_visible()
    expect(page.get_by_role("row", name="API_KEY")).to_contain_text("env:prod")
    assert CANARY not in page.content()
    workspace = alice.personal_workspace
    assert Secret.objects.get(workspace=workspace, key="PEM").reveal_value() == (
        f"-----BEGIN KEY-----\n{CANARY}\n-----END KEY-----\n"
    )


def test_a_conflict_found_at_confirm_time_imports_nothing(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    open_import(page)
    page.get_by_label("Paste a .env file").fill("FIRST=1\nSECOND=2\n")
    page.get_by_role("button", name="Preview").click()
    create_secret(actor=alice, workspace=alice.personal_workspace, key="SECOND", value="meanwhile")

    page.get_by_role("button", name="Import 2 secrets").click()
    expect(page.get_by_role("row", name="2 SECOND conflict")).to_be_visible()
    expect(page.get_by_text("Nothing was imported.")).to_be_visible()
    expect(page.get_by_role("button", name="Import 2 secrets")).to_have_count(0)
    assert not Secret.objects.filter(key="FIRST").exists()


def test_an_uploaded_file_with_a_bad_line_is_previewed_with_the_reason(browser_page, alice, tmp_path):
    dotenv_file = tmp_path / ".env"
    dotenv_file.write_bytes(b"GOOD=1\r\nEMPTY=\r\n")
    page = browser_page
    sign_in(page, "alice")
    open_import(page)
    page.get_by_label("…or upload the file").set_input_files(str(dotenv_file))
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("row", name="2 EMPTY invalid")).to_contain_text("The value is empty")
    expect(page.get_by_role("link", name="Give the file again")).to_be_visible()
    assert not Secret.objects.filter(key="GOOD").exists()
