"""Identity in a real browser (django-allauth): sign-up, TOTP with recovery codes, passkeys on
Chromium's virtual authenticator, "confirm it's you" before a sensitive action, and single sign-on
with a real OpenID Connect provider (tests/oidc_provider.py)."""

import copy
import re
import time

import pyotp
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from console.environment import web_origin
from secrets_app.models import AuditEvent, Workspace
from secrets_app.models.runs import Execution
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret
from tests.browser.test_secrets_flow import sign_in
from tests.conftest import PASSWORD
from tests.oidc_provider import start_oidc_provider

pytestmark = pytest.mark.django_db(transaction=True)


def totp_code(secret: str) -> str:
    """The current code; one read in the last second of its window is the next window's instead,
    so that the server, a moment later, still takes it (allauth allows no drift: MFA_TOTP_TOLERANCE 0)."""
    if 30 - time.time() % 30 < 1.5:
        time.sleep(1.6)
    return pyotp.TOTP(secret).now()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign In")


def password_step(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In", exact=True).click()


def second_factor_step(page, code: str) -> None:
    expect(page).to_have_url(f"{page.url.split('/accounts/')[0]}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Secrets")


def test_sign_up_ends_at_check_your_email_then_the_user_signs_in(browser_page):
    page = browser_page
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("dora@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Verify Your Email Address")
    user = get_user_model().objects.get(email="dora@example.com")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_SIGNED_UP, actor=user).exists()
    password_step(page, "dora@example.com")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Secrets")


def test_totp_enrolment_then_sign_in_with_a_code_then_with_a_recovery_code(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    page.get_by_role("link", name="Account Settings").click()
    page.get_by_role("link", name="Two-factor authentication").click()
    page.get_by_role("link", name="Activate").click()
    secret = page.get_by_label("Authenticator secret").input_value()
    page.get_by_label("Authenticator code").fill(totp_code(secret))
    page.get_by_role("button", name="Activate").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Recovery Codes")
    recovery_codes = page.get_by_label("Unused codes").input_value().split()
    assert len(recovery_codes) == 10

    sign_out(page)
    password_step(page, "alice")
    second_factor_step(page, totp_code(secret))

    sign_out(page)
    password_step(page, "alice@example.com")
    second_factor_step(page, recovery_codes[0])

    actions = set(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert {AuditEvent.Action.FACTOR_ADDED, AuditEvent.Action.RECOVERY_CODE_USED} <= actions


def test_register_a_passkey_then_sign_in_with_it(browser_page, alice, settings):
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
    page = browser_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    sign_in(page, "alice")
    page.goto("/accounts/2fa/webauthn/add/")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Recovery Codes")
    assert len(cdp.send("WebAuthn.getCredentials", authenticator)["credentials"]) == 1

    sign_out(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Secrets")
    expect(page.get_by_role("button", name="Sign out")).to_contain_text("alice")


def test_a_launch_after_the_reauthentication_window_asks_for_the_password_then_launches(
    browser_page, alice, team, settings
):
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    register_workflow(actor=alice, workspace=team, name="nightly", definition={"t": "${workflow.secrets.API_KEY}"})
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 1
    page = browser_page
    sign_in(page, "alice")
    page.goto(f"/settings/developer/{team.slug}/workflows/")
    time.sleep(1.5)  # the sign-in's password check is now out of the window

    page.get_by_role("row", name="nightly").get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm Access")
    assert not Execution.objects.exists()
    page.get_by_label("Password").fill(PASSWORD)
    expect(page.get_by_text("Confirm it's you, then send the form again.")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    # Back on the Workflows page: nothing sent before the confirmation is replayed; launch again.
    expect(page).to_have_url(re.compile(r"/workflows/$"))
    assert not Execution.objects.exists()
    page.get_by_role("row", name="nightly").get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Execution launched")
    expect(page.locator("pre.credential")).to_contain_text("CONSOLE_SESSION=")
    assert Execution.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REAUTHENTICATED, actor=alice).count() == 1


@pytest.fixture
def sso(settings, live_server):
    """The real provider, and the console configured for it as SOCIALACCOUNT_PROVIDERS would be."""
    callback = live_server.url + reverse("openid_connect_callback", kwargs={"provider_id": "sso"})
    with start_oidc_provider("console-sso", "sso-test-secret", callback) as op:
        settings.SOCIALACCOUNT_PROVIDERS = {
            "openid_connect": {
                "OAUTH_PKCE_ENABLED": True,
                "APPS": [
                    {
                        "provider_id": "sso",
                        "name": "Single sign-on",
                        "client_id": op.client_id,
                        "secret": op.client_secret,
                        "settings": {"server_url": op.issuer, "oauth_pkce_enabled": True},
                    }
                ],
            }
        }
        # What console/settings.py adds for OIDC_ISSUER_URL: the provider may be a form's destination.
        policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
        policy["DIRECTIVES"]["form-action"].append(web_origin(op.issuer))
        settings.CONTENT_SECURITY_POLICY = policy
        yield op


def sign_in_at_the_provider(page, op, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Single sign-on").click()
    page.get_by_role("button", name="Continue").click()  # allauth's "sign in via Single sign-on" (POST)
    expect(page, "the console's form posts, then redirects the browser to the provider").to_have_url(
        re.compile("^" + re.escape(op.issuer + "/"))
    )
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("ignored")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent


def test_single_sign_on_creates_a_user_with_a_personal_workspace(browser_page, sso):
    page = browser_page
    sign_in_at_the_provider(page, sso, "erin")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Secrets")
    user = get_user_model().objects.get(email="erin@sso.example")
    assert user.username == "erin"
    expect(page.get_by_role("button", name="Sign out")).to_contain_text("erin")
    assert Workspace.objects.filter(personal_owner=user).exists()
    signed_up = AuditEvent.objects.get(action=AuditEvent.Action.USER_SIGNED_UP, actor=user)
    assert signed_up.detail == {"method": "sso"}


def test_single_sign_on_with_the_address_of_an_existing_account_does_not_link_it(browser_page, sso, make_user):
    frank = make_user("frank", email="frank@sso.example")
    EmailAddress.objects.create(user=frank, email="frank@sso.example", verified=True, primary=True)
    page = browser_page
    sign_in_at_the_provider(page, sso, "frank")
    # Back at the sign-in page, told to sign in and connect single sign-on from Account Settings.
    expect(page.get_by_text("An account with this e-mail address exists already.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert not SocialAccount.objects.exists()
    assert get_user_model().objects.count() == 1
