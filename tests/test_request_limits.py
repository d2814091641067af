"""Bounded work per request, before any of it is done: an oversized body is refused by its declared
size without being read, and slow clients cannot hold the server's threads (gunicorn's asyncio
worker reads requests; console/asgi.py buffers each body within a deadline)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler

from tests.app_servers import MANAGE, ROOT, AppServer, manage, production_env

THIRTY_MB = 30 * 1024 * 1024


class CountingStream(io.RawIOBase):
    """A request body of `size` bytes that is produced only as it is read, counting what was read."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        count = min(len(buffer), self.size - self.read_bytes)
        buffer[:count] = b"x" * count
        self.read_bytes += count
        return count


def post_declaring(path: str, size: int, content_type: str) -> tuple[int, str, CountingStream]:
    """POST `path` through Django's WSGI handler with a body of `size` bytes that nobody has sent
    yet; answers (status, body, the stream)."""
    stream = CountingStream(size)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BufferedReader(stream),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(size),
        "REMOTE_ADDR": "127.0.0.1",
    }
    statuses = []
    body = b"".join(WSGIHandler()(environ, lambda status, headers, *_: statuses.append(status)))
    return int(statuses[0].split()[0]), body.decode(), stream


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/settings/developer/alice/secrets/", "/settings/developer/alice/import/", "/accounts/login/"],
    ids=["the secret form", "the .env import", "the sign-in page"],
)
def test_a_30_mb_upload_to_a_form_is_refused_before_it_is_read(alice, path):
    status, page, stream = post_declaring(path, THIRTY_MB, "multipart/form-data; boundary=x")
    assert status == 413
    assert "over the 1024 KiB limit" in page
    assert stream.read_bytes == 0


@pytest.mark.django_db
def test_a_30_mb_body_to_the_api_is_a_json_413_and_is_not_read(alice):
    status, body, stream = post_declaring("/api/v1/workspaces/alice/secrets/", THIRTY_MB, "application/json")
    assert status == 413
    assert json.loads(body)["error"] == {
        "code": "request_too_large",
        "message": "The request body is over the 1024 KiB limit, so it was refused.",
    }
    assert stream.read_bytes == 0


@pytest.mark.django_db
def test_a_body_at_the_limit_is_read_as_usual(alice_api):
    response = alice_api.post("/api/v1/workspaces/alice/secrets/", raw=" " * (1024 * 1024 - 10) + "{}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_input"


# The production server, with slow clients


@pytest.fixture(scope="module")
def server():
    """`make serve-prod`'s gunicorn (its configuration and entry point), on SQLite and a local
    cache, with 2 workers and a 2-second body deadline."""
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as folder:
        env = {
            **production_env(database_url=f"sqlite:///{Path(folder) / 'db.sqlite3'}", cache_url="", workers=2),
            "DEBUG": "true",  # allows the local cache: these tests need no service
            "CACHE_URL": "locmemcache://",
            "REQUEST_BODY_TIMEOUT_SECONDS": "2",
            "REQUEST_HEADER_TIMEOUT_SECONDS": "2",
            "RESPONSE_SEND_TIMEOUT_SECONDS": "3",
            "GUNICORN_WORKER_CONNECTIONS": "60",
        }
        manage(env, "migrate", "--noinput", "-v0")
        env["SESSION"] = seed(env)
        app = AppServer(env)
        try:
            app.wait_ready()
            yield app
        finally:
            app.stop()


SEED = """
from django.contrib.auth import get_user_model
from django.test import Client
from secrets_app.services.secrets import import_secrets
alice = get_user_model().objects.create_user("alice", password="unused-Passw0rd!")
for batch in range(12):
    entries = [(f"K{batch}_{n:04}", "v", []) for n in range(2000)]
    import_secrets(actor=alice, workspace=alice.personal_workspace, entries=entries)
browser = Client()
browser.force_login(alice)
print(browser.cookies["sessionid"].value)
"""


def seed(env: dict[str, str]) -> str:
    """alice, with 24,000 secrets (and as many audit events) in her personal workspace; her session."""
    result = subprocess.run(
        [*MANAGE, "shell", "-c", SEED], cwd=ROOT, env=env, check=True, timeout=300, capture_output=True, text=True
    )
    return result.stdout.split()[-1]


def slow_client(port: int, first: bytes, stop: threading.Event) -> None:
    """Send `first`, then one byte a second, until stopped or refused."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(first)
        while not stop.wait(1):
            try:
                connection.sendall(b"a")
            except OSError:
                return


def healthz_seconds(server: AppServer, *, patient: bool = False) -> float:
    """How long /healthz takes to answer (`patient`: a timeout counts as slow, not as a failure)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(server.base + "/healthz", timeout=10) as response:
            assert response.status == 200
    except TimeoutError:
        if not patient:
            raise
        return float("inf")
    return time.monotonic() - started


def test_healthz_answers_while_slow_clients_hold_connections(server):
    slow_header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    slow_body = (
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
    )
    stop = threading.Event()
    clients = [
        threading.Thread(target=slow_client, args=(server.port, first, stop), daemon=True)
        for first in [slow_header] * 8 + [slow_body] * 8
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1.5)
        assert max(healthz_seconds(server) for _ in range(5)) < 1
    finally:
        stop.set()


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/session/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = connection.recv(65536).decode()
        while "request_timeout" not in answer and time.monotonic() - started < 8:
            answer += connection.recv(65536).decode()
        assert 1.5 <= time.monotonic() - started < 6
    assert answer.startswith("HTTP/1.1 408")
    assert '"code": "request_timeout"' in answer


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /settings/developer/alice/secrets/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 31457280\r\n\r\n"
        )
        answer = connection.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413")
    # The server's buffer says what Django would.
    assert answer.endswith("\r\n\r\nThe request body is over the 1024 KiB limit, so it was refused.")


def test_headers_that_do_not_arrive_in_time_are_a_408_and_the_connection_closes(server):
    """A client that sends a header line now and then is cut off at the deadline with a 408; one
    that sends nothing is closed then."""
    for first in (b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(first)
            started = time.monotonic()
            answer = b""
            while chunk := connection.recv(65536):  # until the server closes
                answer += chunk
                connection.sendall(b"X-Slow: 1\r\n") if first else None
            assert 1.5 <= time.monotonic() - started < 6
        assert answer.startswith(b"HTTP/1.1 408") if first else answer == b""


def test_connections_beyond_the_limit_are_refused_at_once(server):
    """Two workers of 60 connections each: of 200 idle connections, the extra ones are answered 503
    at once, and the server still answers once they are gone."""
    connections = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(200)]
    try:
        time.sleep(0.5)
        refused = 0
        for connection in connections:
            connection.setblocking(False)
            try:
                refused += connection.recv(1024).startswith(b"HTTP/1.1 503")
            except BlockingIOError:
                pass
        assert refused >= 200 - 2 * 60
    finally:
        for connection in connections:
            connection.close()
    time.sleep(0.5)
    assert healthz_seconds(server) < 1


def test_clients_that_stop_reading_an_export_hold_no_thread(server):
    """Eight clients ask for a 4 MB audit export and read none of it: every thread is free at once
    (the answer is taken whole before it is sent), the server answers others, and the stalled
    clients are dropped after the send deadline."""
    # An export is a POST: the CSRF cookie and the same token in the header (any 32 letters will do).
    csrf = "a" * 32
    cookies = f"sessionid={server.env['SESSION']}; csrftoken={csrf}"
    request = (
        "POST /settings/developer/alice/activity.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookies}\r\nX-CSRFToken: {csrf}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    stalled = []
    for _ in range(8):
        connection = socket.socket()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        connection.connect(("127.0.0.1", server.port))
        connection.sendall(request)
        stalled.append(connection)
    try:
        # The threads make the eight answers (seconds of work), then are free while nobody reads:
        # soon every request is answered at once (with the threads stuck, none ever would be).
        deadline, fast = time.monotonic() + 60, 0
        while fast < 10 and time.monotonic() < deadline:
            fast = fast + 1 if healthz_seconds(server, patient=True) < 0.5 else 0
        assert fast == 10
        reader = urllib.request.Request(server.base + "/settings/developer/alice/activity.csv", data=b"")
        reader.add_header("Cookie", cookies)
        reader.add_header("X-CSRFToken", csrf)
        with urllib.request.urlopen(reader, timeout=90) as response:  # stuck threads would never answer
            assert response.read().count(b"secret.created") == 24000
        time.sleep(4)  # past the send deadline: the stalled clients are cut off
        for connection in stalled:
            connection.settimeout(5)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200") and received.count(b"secret.created") < 24000
    finally:
        for connection in stalled:
            connection.close()
    assert healthz_seconds(server) < 1
