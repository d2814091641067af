"""A real OpenID Connect provider for SSO tests: panva's `oidc-provider` on the machine's Node.js.

    with start_oidc_provider("client-id", "client-secret", "http://127.0.0.1:8000/cb/") as op:
        op.issuer  # "http://127.0.0.1:<port>", discovery at op.discovery_url

The provider (tests/oidc_provider/provider.mjs) registers one confidential client, requires PKCE
(S256), accepts any login id (email `<id>@sso.example` unless the id is an email) and uses the
library's built-in login and consent pages. Without Node.js the test is skipped, unless
REQUIRE_BROWSER is set, which turns the skip into a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
READY_TIMEOUT = 30
NPM_CI_TIMEOUT = 300


@dataclass(frozen=True)
class OIDCProvider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    token_auth_method: str

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(f"REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def _installed() -> bool:
    """Whether node_modules holds the oidc-provider version package.json pins."""
    pinned = json.loads((PROVIDER_DIR / "package.json").read_text())["dependencies"]["oidc-provider"]
    installed = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    return installed.exists() and json.loads(installed.read_text())["version"] == pinned


def _ensure_node_modules() -> None:
    """Install the pinned provider with `npm ci` the first time; later runs reuse node_modules."""
    if _installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm not found on PATH: install Node.js (with npm) to run the OIDC provider")
    # Lock package.json, so parallel test processes don't run `npm ci` in the same place at once.
    with open(PROVIDER_DIR / "package.json") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
        )
        if result.returncode != 0:
            pytest.fail(f"`npm ci` in {PROVIDER_DIR} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def start_oidc_provider(
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    *,
    token_auth_method: str = "client_secret_post",
) -> Iterator[OIDCProvider]:
    """Run the provider on a free 127.0.0.1 port until the block exits.

    `redirect_uri` may hold several URIs separated by spaces. The client authenticates with
    `token_auth_method` (client_secret_post or client_secret_basic), the only method discovery
    advertises, so allauth picks it without a `token_auth_method` app setting.
    """
    node = shutil.which("node")
    if node is None:
        _unavailable("node not found on PATH: install Node.js >= 20 to run the OIDC provider")
    _ensure_node_modules()

    env = {
        "PATH": os.environ["PATH"],
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": client_secret,
        "OIDC_REDIRECT_URI": redirect_uri,
        "OIDC_TOKEN_AUTH_METHOD": token_auth_method,
        "PORT": "0",  # provider.mjs binds a free port itself and reports it in the READY line
    }
    process = subprocess.Popen(
        [node, "provider.mjs"],
        cwd=PROVIDER_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Drain both pipes in threads: a full pipe would block the provider, and readline() on the
    # main thread could not honour the timeout.
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()
    try:
        issuer = _wait_for_ready(process, lines, stderr)
        yield OIDCProvider(issuer, client_id, client_secret, redirect_uri, token_auth_method)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_ready(process: subprocess.Popen, lines: queue.Queue[str], stderr: list[str]) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            if process.poll() is not None:
                time.sleep(0.2)  # let the stderr thread catch the last words
                pytest.fail(f"the OIDC provider exited with {process.returncode}:\n{''.join(stderr)}")
            continue
        if line.startswith("READY "):
            return line.split(" ", 1)[1].strip()
    pytest.fail(f"the OIDC provider did not print READY within {READY_TIMEOUT}s:\n{''.join(stderr)}")


@pytest.fixture
def oidc_provider_factory() -> Iterator:
    """A fixture returning `start(client_id, client_secret, redirect_uri, **kw) -> OIDCProvider`;
    every provider started through it is stopped after the test."""
    with ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(start_oidc_provider(*args, **kwargs))
