"""Health checks for load balancers: /healthz (the process) and /readyz (its database and cache)."""

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.test import Client

from secrets_app.selectors import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_database_and_cache():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}
    assert "no-store" in response["Cache-Control"]


def test_readyz_is_503_naming_an_unreachable_database(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", refuse)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unreachable (OperationalError)", "cache": "ok"},
    }


def test_readyz_is_503_naming_an_unreachable_cache(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", refuse)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "unreachable (ConnectionError)"}


def test_probes_answer_over_plain_http_when_https_is_enforced(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/readyz").status_code == 200
    assert Client().get("/accounts/login/").status_code == 301  # everything else moves to HTTPS


def test_ping_answers_a_constant_for_any_working_session(alice_api, api):
    assert alice_api.get("/api/v1/runner/ping/").json() == {"ok": True}
    assert api.get("/api/v1/runner/ping/").status_code == 401
