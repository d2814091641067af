"""Bounded work per request, before any of it is done: an oversized body is refused by its declared
size without being read, and slow clients cannot hold the server's threads (gunicorn's asyncio
worker reads requests; console/asgi.py buffers each body within a deadline)."""

from __future__ import annotations

import io
import json
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler

from tests.app_servers import AppServer, manage, production_env

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
        }
        manage(env, "migrate", "--noinput", "-v0")
        app = AppServer(env)
        try:
            app.wait_ready()
            yield app
        finally:
            app.stop()


def slow_client(port: int, first: bytes, stop: threading.Event) -> None:
    """Send `first`, then one byte a second, until stopped or refused."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(first)
        while not stop.wait(1):
            try:
                connection.sendall(b"a")
            except OSError:
                return


def healthz_seconds(server: AppServer) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(server.base + "/healthz", timeout=10) as response:
        assert response.status == 200
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
