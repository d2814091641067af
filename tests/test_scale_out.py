"""Two app servers (gunicorn, production settings) on one PostgreSQL and one Redis: what one does,
the other sees at once; and concurrent writes of one key stay consistent.

These need the real services: they run when DATABASE_URL names PostgreSQL and CACHE_URL names
Redis (as in `.ci/run`), and are skipped otherwise, unless REQUIRE_SCALE_OUT is set, which turns
the skip into a failure. The servers are started by `tests/app_servers.py`.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from secrets_app.client import ClientError, ConsoleClient
from tests.app_servers import (
    MANAGE,
    ROOT,
    AppServer,
    manage,
    missing_service,
    production_env,
    with_database,
    with_redis_db,
)

PASSWORD = "scale-Out-password-42"
SERVERS_REDIS_DB = 3  # not the suite's own cache database, which every test clears


def _services() -> tuple[str, str]:
    database_url, cache_url = os.environ.get("DATABASE_URL", ""), os.environ.get("CACHE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")) and cache_url.startswith("redis://"):
        return database_url, cache_url
    missing_service("needs PostgreSQL and Redis: set DATABASE_URL=postgres://... and CACHE_URL=redis://...")


class ServerAddresses(list):
    """The servers' base addresses; `env` is their environment (for manage.py on their database)."""

    env: dict[str, str]


@pytest.fixture(scope="module")
def servers():
    """Two gunicorn app servers (two workers each) sharing a fresh PostgreSQL database and Redis."""
    database_url, cache_url = _services()
    import psycopg
    import redis

    name = f"scale_out_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    cache = with_redis_db(cache_url, SERVERS_REDIS_DB)
    redis.Redis.from_url(cache).flushdb()
    env = production_env(database_url=with_database(database_url, name), cache_url=cache, workers=2)
    # As behind a load balancer: the sign-in limit test names the client address in X-Forwarded-For.
    env["TRUSTED_PROXY_COUNT"] = "1"
    manage(env, "migrate", "--noinput", "-v0")
    create_users = (
        "from django.contrib.auth import get_user_model; "
        "from secrets_app.services.workspaces import create_team_workspace; "
        f"alice = get_user_model().objects.create_user('alice', password='{PASSWORD}'); "
        f"get_user_model().objects.create_user('bob', password='{PASSWORD}'); "
        "create_team_workspace(actor=alice, name='Team', slug='team')"
    )
    manage(env, "shell", "-c", create_users)
    started = []
    try:
        for _ in range(2):
            server = AppServer(env)
            started.append(server)
            server.wait_ready()
        addresses = ServerAddresses(server.base for server in started)
        addresses.env = env
        yield addresses
    finally:
        for server in started:
            server.stop()
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def signed_in(base: str, username: str = "alice") -> ConsoleClient:
    client = ConsoleClient(base)
    client.login(username, PASSWORD)
    return client


def on(base: str, session: str) -> ConsoleClient:
    """The same session, presented to another server."""
    return ConsoleClient(base, session)


def status_of(call) -> int:
    try:
        call()
    except ClientError as error:
        return error.status or 0
    return 200


# One load balancer, two stateless app servers


def test_a_session_made_on_one_server_works_on_the_other(servers):
    server_a, server_b = servers
    alice_on_a = signed_in(server_a)
    assert on(server_b, alice_on_a.session).whoami()["username"] == "alice"


def test_signing_out_on_one_server_ends_the_session_on_the_other(servers):
    server_a, server_b = servers
    alice_on_a = signed_in(server_a)
    alice_on_b = on(server_b, alice_on_a.session)
    assert alice_on_b.whoami()["username"] == "alice"  # now cached on B's side too
    alice_on_a.logout()
    assert alice_on_b.whoami() is None


def test_a_secret_added_on_one_server_is_read_by_a_runner_on_the_other(servers):
    server_a, server_b = servers
    alice = signed_in(server_a)
    alice.add_secret("team", "SHARED_KEY", "added-on-a\nsecond line")
    alice.register_workflow("team", "reader", {"token": "${workflow.secrets.SHARED_KEY}"})
    run = alice.launch("team", "team/reader")
    assert on(server_b, run["runner_session"]).get_secret("SHARED_KEY") == "added-on-a\nsecond line"
    assert on(server_a, run["runner_session"]).get_secret("SHARED_KEY") == "added-on-a\nsecond line"


def test_a_delete_on_one_server_is_seen_at_once_on_the_other(servers):
    server_a, server_b = servers
    alice_a = signed_in(server_a)
    alice_b = on(server_b, alice_a.session)
    alice_a.add_secret("team", "SHORT_LIVED", "v1")
    alice_a.register_workflow("team", "short", {"token": "${workflow.secrets.SHORT_LIVED}"})
    runner_b = on(server_b, alice_a.launch("team", "team/short")["runner_session"])
    assert runner_b.get_secret("SHORT_LIVED") == "v1"
    assert "SHORT_LIVED" in [s["key"] for s in alice_b.list_secrets("team")["secrets"]]
    alice_a.delete_secret("team", "SHORT_LIVED")
    assert "SHORT_LIVED" not in [s["key"] for s in alice_b.list_secrets("team")["secrets"]]
    assert status_of(lambda: runner_b.get_secret("SHORT_LIVED")) == 404
    alice_b.add_secret("team", "SHORT_LIVED", "v2")  # re-created through the other server
    assert runner_b.get_secret("SHORT_LIVED") == "v2"


def test_finishing_an_execution_on_one_server_ends_its_runner_session_on_the_other(servers):
    server_a, server_b = servers
    alice = signed_in(server_a)
    alice.add_secret("team", "FINISH_KEY", "v")
    alice.register_workflow("team", "finisher", {"token": "${workflow.secrets.FINISH_KEY}"})
    run = alice.launch("team", "team/finisher")
    runners_b = [on(server_b, run["runner_session"]) for _ in range(4)]
    assert {runner.get_secret("FINISH_KEY") for runner in runners_b} == {"v"}  # in both of B's workers
    alice.finish(run["id"])
    statuses = Counter(status_of(lambda r=runner: r.get_secret("FINISH_KEY")) for runner in runners_b)
    assert statuses == {401: 4}


# Concurrent writes of one key (PostgreSQL)


def test_twenty_concurrent_creates_of_one_key_give_one_201_and_nineteen_409s(servers):
    server_a, server_b = servers
    session = signed_in(server_a).session

    def create(number: int) -> int:
        client = on(servers[number % 2], session)
        return status_of(lambda: client.add_secret("team", "RACE_KEY", f"value-{number}"))

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = Counter(pool.map(create, range(20)))
    assert statuses == {200: 1, 409: 19}, statuses  # 200 here is the client's "no error": the API said 201
    listed = [s for s in on(server_b, session).list_secrets("team")["secrets"] if s["key"] == "RACE_KEY"]
    assert len(listed) == 1


def test_concurrent_delete_and_recreate_of_a_key_leaves_exactly_one_consistent_secret(servers):
    server_a, server_b = servers
    alice = signed_in(server_a)
    session = alice.session
    alice.add_secret("team", "ROTATED", "original")
    alice.register_workflow("team", "rotation", {"token": "${workflow.secrets.ROTATED}"})
    runner_session = alice.launch("team", "team/rotation")["runner_session"]
    written = {f"rotated-{number}" for number in range(12)}

    def rotate(number: int) -> tuple[int, int]:
        client = on(servers[number % 2], session)
        deleted = status_of(lambda: client.delete_secret("team", "ROTATED"))
        created = status_of(lambda: client.add_secret("team", "ROTATED", f"rotated-{number}"))
        return deleted, created

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(rotate, range(12)))
    assert {deleted for deleted, _ in outcomes} <= {200, 404}, outcomes
    assert {created for _, created in outcomes} <= {200, 409}, outcomes
    assert any(created == 200 for _, created in outcomes)
    listed = [s for s in on(server_b, session).list_secrets("team")["secrets"] if s["key"] == "ROTATED"]
    assert len(listed) == 1
    value = on(server_b, runner_session).get_secret("ROTATED")
    assert value in written  # readable, whole, and one of the values written


# Sign-in limits (counted in the shared cache)


def sign_in_status(base: str, username: str, password: str, address: str) -> tuple[int, str]:
    """POST /api/v1/session/ from `address` (as the load balancer reports it): status and error code."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(base + "/api/v1/session/") as response:
        csrf_token = json.load(response)["csrf_token"]
    request = urllib.request.Request(
        base + "/api/v1/session/",
        data=json.dumps({"username": username, "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf_token, "X-Forwarded-For": address},
    )
    try:
        with opener.open(request) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)["error"]["code"]


def test_failed_sign_ins_on_both_servers_add_up_to_one_lockout(servers):
    server_a, server_b = servers
    guesses = [sign_in_status(servers[number % 2], "bob", f"guess-{number}", "198.51.100.23") for number in range(5)]
    assert guesses == [(401, "invalid_credentials")] * 4 + [(429, "too_many_sign_in_attempts")]
    assert sign_in_status(server_b, "bob", PASSWORD, "192.0.2.50") == (429, "too_many_sign_in_attempts")
    assert sign_in_status(server_a, "bob", PASSWORD, "192.0.2.50") == (429, "too_many_sign_in_attempts")
    # The guessing address is locked for every username; others sign in as usual.
    assert sign_in_status(server_a, "alice", PASSWORD, "198.51.100.23") == (429, "too_many_sign_in_attempts")
    assert sign_in_status(server_b, "alice", PASSWORD, "192.0.2.51")[0] == 200


# The audit log written by four workers


def test_the_audit_log_both_servers_wrote_verifies_as_one_set_of_unbroken_chains(servers):
    """Run last: every test above wrote events through both servers' workers, concurrently."""
    result = subprocess.run(
        [*MANAGE, "verify_audit_log"], cwd=ROOT, env=servers.env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    events, chains = (int(word.replace(",", "")) for word in re.findall(r"[\d,]+", result.stdout.splitlines()[0]))
    assert events > 30 and chains >= 2
    assert "Audit log intact" in result.stdout
