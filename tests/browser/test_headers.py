"""The Content-Security-Policy holds in a real browser: the console and the admin run under it
without a single violation (the `browser_page` fixture checks every browser test for that), and
an injected inline script is refused."""

import time

import pytest

from tests.browser.test_secrets_flow import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_injected_inline_script_is_refused_by_the_browser(browser_page, alice):
    page = browser_page
    sign_in(page, "alice")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
        }"""
    )
    deadline = time.monotonic() + 5
    while not page.csp_violations and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert page.evaluate("() => window.injected") is None
    assert len(page.csp_violations) == 1 and "inline script" in page.csp_violations[0]
    page.csp_violations.clear()  # expected here; the fixture then checks nothing else broke the policy


def test_the_admin_runs_under_the_policy(browser_page, alice, team):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    page = browser_page
    sign_in(page, "alice")
    for path in (
        "/admin/",
        "/admin/secrets_app/workspace/",
        f"/admin/secrets_app/workspace/{team.pk}/change/",
        "/admin/secrets_app/secret/",
        "/admin/auth/user/",
        f"/admin/auth/user/{alice.pk}/change/",
    ):
        response = page.goto(path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
