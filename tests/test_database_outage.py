"""PostgreSQL goes away under a running app server, and comes back: while it is down every endpoint
answers 503 with a clear message and /readyz fails; once it is back the same server process, with
the same sessions, works again and nothing was lost.

The database is a private PostgreSQL instance this test starts itself (initdb in a temporary
folder, its own port), never the machine's shared server. It needs PostgreSQL's server binaries
(PG_BINDIR, default /usr/lib/postgresql/15/bin) and Redis (CACHE_URL=redis://...): it runs with
the PostgreSQL and Redis run of `.ci/run`, is skipped elsewhere, and fails for lack of either when
REQUIRE_SCALE_OUT is set.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from secrets_app.errors import DatabaseUnavailable
from tests.app_servers import AppServer, free_port, manage, missing_service, production_env, with_redis_db

PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
OUTAGE_REDIS_DB = 11  # no other test, and not the suite's own cache database
PASSWORD = "outage-Password-42"
VALUE = "before the outage: é ✓\nsecond line\n"
NEW_VALUE = "tried during the outage, written after"


class PrivatePostgres:
    """A PostgreSQL instance of this test's own, in a temporary folder, on its own port, with trust
    authentication. initdb refuses to run as root: as root it runs as the `postgres` OS user."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.data, self.server_log = folder, folder / "data", folder / "server.log"
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"
        )

    def _run(self, program: str, *arguments: str) -> subprocess.CompletedProcess:
        command = [*self.as_owner, str(PG_BINDIR / program), *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr}{self._server_log()}")
        return result

    def _server_log(self) -> str:
        return self.server_log.read_text(errors="replace") if self.server_log.exists() else ""

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c shared_buffers=16MB -c max_connections=20"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.server_log), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stopped (fast shutdown: sessions are cut, as in a failover) until the block ends,
        then started again, whatever happened in the block."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self.as_owner, str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True
        )
        return status.returncode == 0

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url("console"), autocommit=True) as connection:
            return connection.execute(sql).fetchall()

    def remove(self) -> None:
        try:
            if self.data.exists() and self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cache_url() -> str:
    """The Redis database the app server caches sessions in; skips (or fails) first if this run
    lacks Redis or PostgreSQL's binaries."""
    cache_url = os.environ.get("CACHE_URL", "")
    if not cache_url.startswith("redis://"):
        missing_service("needs Redis: set CACHE_URL=redis://...")
    if not (PG_BINDIR / "initdb").is_file():
        missing_service(f"needs PostgreSQL's server binaries in {PG_BINDIR} (set PG_BINDIR)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing_service("runs as root, so needs a `postgres` OS user to run initdb as")
        if shutil.which("runuser") is None:
            missing_service("runs as root, so needs `runuser` to run initdb as the `postgres` user")
    return with_redis_db(cache_url, OUTAGE_REDIS_DB)


@pytest.fixture(scope="module")
def postgres(cache_url):
    instance = PrivatePostgres(Path(tempfile.mkdtemp(prefix="outage-pg-")))
    try:
        instance.initdb()
        instance.start()
        import psycopg

        with psycopg.connect(instance.url("postgres"), autocommit=True) as connection:
            connection.execute("CREATE DATABASE console")
        yield instance
    finally:
        instance.remove()


@pytest.fixture(scope="module")
def server(postgres, cache_url):
    """One gunicorn app server, one worker (so that each request below meets the same persistent
    connection), production settings with CONN_MAX_AGE=60, on the private PostgreSQL."""
    import redis

    redis.Redis.from_url(cache_url).flushdb()
    static_root = tempfile.mkdtemp(prefix="outage-static-")
    env = production_env(database_url=postgres.url("console"), cache_url=cache_url, workers=1)
    env["STATIC_ROOT"] = static_root  # pages name their hashed static files
    app = None
    try:
        manage(env, "collectstatic", "--noinput", "-v0")
        manage(env, "migrate", "--noinput", "-v0")
        app = AppServer(env)
        app.wait_ready()
        yield app
    finally:
        if app is not None:
            app.stop()
        shutil.rmtree(static_root, ignore_errors=True)
        redis.Redis.from_url(cache_url).flushdb()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Caller:
    """One HTTP caller with its own cookies (session, CSRF token), like a browser or a runner;
    redirects are answers, not followed."""

    def __init__(self, app: AppServer, session: str = "") -> None:
        self.port = app.port
        self.cookies = {"sessionid": session} if session else {}

    def send(self, method: str, path: str, *, data: Any = None, form: dict[str, str] | None = None) -> Answer:
        headers = {"Accept": "application/json"} if path.startswith("/api/") else {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        token = self.cookies.get("csrftoken", "")
        body = None
        if data is not None:
            body, headers["Content-Type"], headers["X-CSRFToken"] = json.dumps(data), "application/json", token
        if form is not None:
            body = urlencode({**form, "csrfmiddlewaretoken": token})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            connection.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return answer

    def get(self, path: str) -> Answer:
        return self.send("GET", path)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Answer:
        return self.send("POST", path, data=data, **kwargs)


def sign_up(app: AppServer, username: str) -> Caller:
    """A browser that signed up through the sign-up form (as `<username>@example.com`), then signed in."""
    browser = Caller(app)
    assert browser.get("/accounts/signup/").status == 200
    email = f"{username}@example.com"
    form = {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    assert browser.post("/accounts/signup/", form=form).status == 302
    assert browser.get("/accounts/login/").status == 200
    assert browser.post("/accounts/login/", form={"login": email, "password": PASSWORD}).status == 302
    return browser


def api_sign_in(app: AppServer, username: str) -> Caller:
    api = Caller(app)
    api.get("/api/v1/session/")
    answer = api.post("/api/v1/session/", {"username": f"{username}@example.com", "password": PASSWORD})
    assert answer.status == 200, answer.text
    return api


def audit_events(postgres: PrivatePostgres) -> list[tuple[str, str]]:
    return postgres.query("SELECT action, secret_key FROM secrets_app_auditevent ORDER BY id")


def secret_keys(api: Caller, slug: str) -> list[str]:
    answer = api.get(f"/api/v1/workspaces/{slug}/secrets/")
    assert answer.status == 200, answer.text
    return [secret["key"] for secret in answer.json()["secrets"]]


def assert_unavailable(answer: Answer, *, page: bool, leaked: tuple[str, ...]) -> None:
    assert answer.status == 503, answer.text
    assert answer.headers["Retry-After"] == "30"
    if page:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "Temporarily unavailable" in answer.text and DatabaseUnavailable.default_message in answer.text
    else:
        assert answer.json() == {
            "error": {"code": "database_unavailable", "message": DatabaseUnavailable.default_message}
        }
    assert not any(text in answer.text for text in leaked), answer.text


def test_with_postgresql_stopped_every_endpoint_answers_503_and_everything_works_again_when_it_is_back(
    postgres, server
):
    # Before: a user (signed up in a browser, and signed in on the API), a secret, a workflow and
    # an execution with its runner session, each through HTTP.
    browser = sign_up(server, "outage-user")
    api = api_sign_in(server, "outage-user")
    slug = api.get("/api/v1/session/").json()["user"]["personal_workspace"]
    assert api.post(f"/api/v1/workspaces/{slug}/secrets/", {"key": "BEFORE", "value": VALUE}).status == 201
    definition = {"token": "${workflow.secrets.BEFORE}"}
    assert api.post(f"/api/v1/workspaces/{slug}/workflows/", {"name": "job", "definition": definition}).status == 201
    launched = api.post(f"/api/v1/workspaces/{slug}/executions/", {"workflow": f"{slug}/job"})
    assert launched.status == 201, launched.text
    runner = Caller(server, launched.json()["runner_session"])
    assert runner.get("/api/v1/session/").status == 200  # its CSRF cookie, for the template below
    assert runner.get("/api/v1/runner/secrets/BEFORE/").json()["value"] == VALUE
    stranger, credentials = Caller(server), {"login": "outage-user@example.com", "password": PASSWORD}
    assert stranger.get("/accounts/login/").status == 200  # its CSRF cookie, for the sign-in below
    events_before = audit_events(postgres)
    workers = server.worker_pids()

    driver_text = (f"port {postgres.port}", "Connection refused", "connection to server")
    leaked = (*driver_text, "OperationalError")
    secrets_url = f"/api/v1/workspaces/{slug}/secrets/"
    with postgres.stopped():
        during = {
            "UI page": (browser.get(f"/settings/developer/{slug}/secrets/"), True),
            "API list": (api.get(secrets_url), False),
            "API create": (api.post(secrets_url, {"key": "DURING", "value": NEW_VALUE}), False),
            "runner read": (runner.get("/api/v1/runner/secrets/BEFORE/"), False),
            "runner template": (runner.post("/api/v1/runner/resolve/", definition), False),
            "admin": (browser.get("/admin/"), True),
            "sign-in form": (stranger.post("/accounts/login/", form=credentials), True),
            "API sign-in": (
                stranger.post("/api/v1/session/", {"username": credentials["login"], "password": PASSWORD}),
                False,
            ),
        }
        for name, (answer, page) in during.items():
            try:
                assert_unavailable(answer, page=page, leaked=leaked)
            except AssertionError as failure:
                raise AssertionError(f"{name}: {failure}") from None
        assert "sessionid" not in stranger.cookies  # nobody was signed in
        readiness = stranger.get("/readyz")
        assert readiness.status == 503
        assert readiness.json() == {
            "status": "unavailable",
            "checks": {"database": "unreachable (OperationalError)", "cache": "ok"},
        }
        assert stranger.get("/healthz").status == 200
        log = server.log()
        assert log.count(" Database unavailable (") == len(during), log  # one line each, naming no host
        assert not any(text in log for text in driver_text), log

    # Started again. The same server process and workers, the same sessions: no restart, nothing lost.
    assert server.worker_pids() == workers
    assert audit_events(postgres) == events_before  # the outage wrote nothing, not even half
    assert stranger.get("/readyz").status == 200
    assert runner.get("/api/v1/runner/secrets/BEFORE/").json()["value"] == VALUE
    assert runner.post("/api/v1/runner/resolve/", definition).json()["document"] == {"token": VALUE}
    assert secret_keys(api, slug) == ["BEFORE"]  # the create tried during the outage left nothing
    assert api.post(secrets_url, {"key": "DURING", "value": NEW_VALUE}).status == 201
    assert secret_keys(api, slug) == ["BEFORE", "DURING"]
    page = browser.get(f"/settings/developer/{slug}/secrets/")
    assert page.status == 200 and "DURING" in page.text
    assert browser.get("/admin/").status == 302  # to the admin's sign-in: this user is not staff
    signed_in = stranger.post("/accounts/login/", form=credentials)
    assert signed_in.status == 302 and "sessionid" in stranger.cookies
    assert audit_events(postgres) == [
        *events_before,
        ("secret.read", "BEFORE"),
        ("secret.read", "BEFORE"),
        ("secret.created", "DURING"),
    ]


def test_a_database_restart_between_requests_fails_no_request(postgres, server):
    """The worker's persistent connection (CONN_MAX_AGE) died with the restart: it is checked
    before reuse (CONN_HEALTH_CHECKS) and replaced, so not even the first request after fails."""
    sign_up(server, "restart-user")
    api = api_sign_in(server, "restart-user")
    slug = api.get("/api/v1/session/").json()["user"]["personal_workspace"]
    assert secret_keys(api, slug) == []
    postgres.restart()
    assert secret_keys(api, slug) == []
    assert api.post(f"/api/v1/workspaces/{slug}/secrets/", {"key": "AFTER_RESTART", "value": "v"}).status == 201
    assert Caller(server).get("/readyz").status == 200
