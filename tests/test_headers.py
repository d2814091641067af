"""Security headers on every kind of answer: pages, API, errors, the admin."""

import re
from pathlib import Path

import pytest

from secrets_app.services.secrets import create_secret
from tests.conftest import signed_in_client

pytestmark = pytest.mark.django_db

POLICY_PARTS = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
]


@pytest.fixture
def answers(alice, team):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v")
    client = signed_in_client(alice)
    return {
        "sign-in page": client.get("/accounts/login/"),
        "secrets page": client.get("/settings/developer/team/secrets/"),
        "secret page": client.get("/settings/developer/team/secrets/API_KEY/"),
        "API list": client.get("/api/v1/workspaces/team/secrets/"),
        "API error": client.get("/api/v1/workspaces/nowhere/secrets/"),
        "404 page": client.get("/settings/developer/nowhere/secrets/"),
        "admin": client.get("/admin/secrets_app/secret/"),
    }


def test_every_answer_carries_the_content_security_policy_without_inline_script(answers):
    for name, response in answers.items():
        policy = response["Content-Security-Policy"]
        for part in POLICY_PARTS:
            assert part in policy, (name, part)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name


def test_every_answer_refuses_framing_sniffing_referrers_and_caching(answers):
    for name, response in answers.items():
        assert response["X-Frame-Options"] == "DENY", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert "no-store" in response["Cache-Control"], name


def test_no_template_holds_inline_script_style_or_event_handlers():
    """What the policy would refuse in a browser, caught before it gets there."""
    templates = Path(__file__).resolve().parent.parent / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text()
        # A script element is a file of ours, or a JSON data block (never run: django-allauth's).
        assert not re.search(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))", text), template
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", text), template
