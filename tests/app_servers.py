"""Real app servers for the tests that need them: gunicorn with the production settings, on real
PostgreSQL and Redis (`test_scale_out.py`, `test_database_outage.py`).

Those tests run where the services exist and are skipped elsewhere, unless REQUIRE_SCALE_OUT is
set (as in `.ci/run`), which turns the skip into a failure.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
SERVE = [str(GUNICORN), "--config", "console/gunicorn.conf.py", "--access-logfile", "/dev/null"]
MANAGE = [sys.executable, "manage.py"]


def missing_service(reason: str) -> NoReturn:
    """Skip the test for lack of `reason`'s service, or fail it when REQUIRE_SCALE_OUT is set."""
    if os.environ.get("REQUIRE_SCALE_OUT"):
        pytest.fail(f"REQUIRE_SCALE_OUT is set but this run {reason}")
    pytest.skip(reason)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_redis_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(*, database_url: str, cache_url: str, workers: int) -> dict[str, str]:
    """The environment of an app server with DEBUG off, fresh keys and persistent connections."""
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "CONSOLE_ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECRETS_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "AUDIT_HMAC_KEY": secrets.token_urlsafe(48),
        "SECRETS_FINGERPRINT_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_WORKERS": str(workers),
    }


def manage(env: dict[str, str], *arguments: str) -> None:
    subprocess.run([*MANAGE, *arguments], cwd=ROOT, env=env, check=True, timeout=300)


class AppServer:
    """One gunicorn server on a free port; what it logs goes to `log_path`."""

    def __init__(self, env: dict[str, str]) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.port, self.env = port, env
        handle, name = tempfile.mkstemp(prefix="app-server-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "w") as log:
            self.process = subprocess.Popen(
                SERVE,
                cwd=ROOT,
                env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app server exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"app server at {self.base} never became ready: {self.log()}")

    def worker_pids(self) -> set[int]:
        """The gunicorn workers now serving (Linux): a worker that died and was replaced shows here."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return {int(pid) for pid in children.split()}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)
