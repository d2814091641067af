"""Fixtures shared by the whole suite: users, workspaces and a CSRF-enforcing JSON client."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from secrets_app.models import Role, Workspace
from secrets_app.services.workspaces import add_member as add_workspace_member
from secrets_app.services.workspaces import create_team_workspace

PASSWORD = "correct-Horse-battery-42"


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: Any) -> Any:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db: Any) -> Any:
    def make(username: str, **extra: Any) -> Any:
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user: Any) -> Any:
    return make_user("alice", email="alice@example.com")


@pytest.fixture
def bob(make_user: Any) -> Any:
    return make_user("bob", email="bob@example.com")


@pytest.fixture
def team(alice: Any) -> Workspace:
    """A team workspace owned by alice."""
    return create_team_workspace(actor=alice, name="Team", slug="team")


@pytest.fixture
def add_member(team: Workspace, alice: Any) -> Any:
    def add(user: Any, role: Role) -> None:
        add_workspace_member(actor=alice, workspace=team, username=user.username, role=role)

    return add


def signed_in_client(user: Any, *, checked_seconds_ago: float | None = 0) -> Client:
    """A browser-like client with `user` signed in, as by a password `checked_seconds_ago` (what
    re-authentication looks at); None for a session with no check on record."""
    client = Client()
    client.force_login(user)
    if checked_seconds_ago is not None:
        session = client.session
        session["account_authentication_methods"] = [{"method": "password", "at": time.time() - checked_seconds_ago}]
        session["account_authentication_methods_user"] = str(user.pk)
        session.save()
    return client


class JsonClient:
    """A browser-like API caller: session cookie, CSRF token in X-CSRFToken, JSON bodies."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.csrf_token = ""

    def refresh_csrf(self) -> str:
        self.csrf_token = self.client.get("/api/v1/session/").json()["csrf_token"]
        return self.csrf_token

    def login(self, username: str, password: str = PASSWORD) -> Any:
        self.refresh_csrf()
        response = self.post("/api/v1/session/", {"username": username, "password": password})
        if response.status_code == 200:
            self.csrf_token = response.json()["csrf_token"]
        return response

    def get(self, path: str, **extra: Any) -> Any:
        return self.client.get(path, **extra)

    def send(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        content_type: str = "application/json",
        raw: Any = None,
        csrf: bool = True,
    ) -> Any:
        body = raw if raw is not None else (json.dumps(data) if data is not None else "")
        headers = {"X-CSRFToken": self.csrf_token} if csrf else {}
        return self.client.generic(method, path, body, content_type=content_type, headers=headers)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self.send("POST", path, data, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.send("DELETE", path, **kwargs)


@pytest.fixture
def api() -> JsonClient:
    return JsonClient()


@pytest.fixture
def alice_api(alice: Any) -> JsonClient:
    client = JsonClient()
    assert client.login("alice").status_code == 200
    return client


@pytest.fixture
def bob_api(bob: Any) -> JsonClient:
    client = JsonClient()
    assert client.login("bob").status_code == 200
    return client


def migrate_to(target: tuple[str, str] | None = None) -> Any:
    """Migrate the test database to `target` (app label, migration name) or, by default, to the
    latest migrations; answers the models as they stand there. A migration test must end at the
    latest, or the tests after it run on an old schema."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    targets = [target] if target else executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def error_of(response: Any) -> tuple[int, str]:
    """(status, error code) of a JSON error answer."""
    return response.status_code, response.json()["error"]["code"]
