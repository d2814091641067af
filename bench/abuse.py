"""Abusive requests against a production server: its memory and the audit rows they cost stay flat.

Starts gunicorn (the production configuration, SQLite and Redis), seeds a user with one 64 KiB
secret, signs in, and sends in growing batches:

(a) resolve amplification: `{"x": "${workflow.secrets.BIG}" * 5000}`, 115 KB that would fill in
    to 328 MB;
(b) a refusal flood: a resolve naming 20,000 unknown secrets (over the 1,000-name cap);
(c) an ended runner session, coming back for a value;
(d) a flood under the cap: a resolve naming 1,000 unknown secrets, each looked up;

then prints, after each batch, the workers' peak resident memory (VmHWM) and the audit rows
written so far. Bounded work means both stay flat however many requests come.

    .venv/bin/python bench/abuse.py                 # batches of 0, 10, 50, 100 of each
    .venv/bin/python bench/abuse.py --batches 0,5   # quicker

Needs Redis (BENCH_CACHE_URL, default redis://127.0.0.1:6379/15, which it flushes).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from runner_read import PYTHON, ROOT, flush_cache, fresh_environment, run, start_gunicorn

PASSWORD = "abuse-Bench-passw0rd"


def child_seed() -> None:
    """Inside Django: the user, the 64 KiB secret, an execution launched and finished."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from secrets_app.services.runs import finish_execution, launch_execution, register_workflow
    from secrets_app.services.secrets import create_secret

    alice = get_user_model().objects.create_user("alice", password=PASSWORD)
    personal = alice.personal_workspace
    create_secret(actor=alice, workspace=personal, key="BIG", value="B" * (64 * 1024))
    workflow = register_workflow(actor=alice, workspace=personal, name="w", definition={"t": "${workflow.secrets.BIG}"})
    execution, session_key = launch_execution(actor=alice, workspace=personal, workflow=workflow)
    finish_execution(actor=alice, execution=execution)
    print(json.dumps({"ended_session": session_key}))


class Caller:
    """A signed-in API session (cookies and CSRF token), or a bare runner cookie."""

    def __init__(self, base: str, session: str = "") -> None:
        self.base, self.jar = base, http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.session, self.token = session, ""

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "X-CSRFToken": self.token}
        if self.session:
            headers["Cookie"] = f"sessionid={self.session}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def sign_in(self) -> None:
        self.token = json.loads(self.call("GET", "/api/v1/session/")[1])["csrf_token"]
        status, answer = self.call("POST", "/api/v1/session/", {"username": "alice", "password": PASSWORD})
        assert status == 200, answer
        self.token = json.loads(answer)["csrf_token"]


def peak_rss_mib(server: subprocess.Popen) -> float:
    """The largest peak resident set (VmHWM) among the server's workers, in MiB."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    peaks = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024)
    return max(peaks)


def audit_rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT COUNT(*) FROM secrets_app_auditevent").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="0,10,50,100", help="requests of each kind per batch")
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/15"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as folder:
        database = Path(folder) / "abuse.sqlite3"
        env = fresh_environment(f"sqlite:///{database}", options.cache_url)
        flush_cache(options.cache_url)
        run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, timeout=300)
        seeded = json.loads(run([PYTHON, __file__, "_seed"], env, timeout=300).stdout.strip().splitlines()[-1])
        server, base = start_gunicorn(env, 2)
        try:
            user, ended = Caller(base), Caller(base, seeded["ended_session"])
            user.sign_in()
            amplification = {"x": "${workflow.secrets.BIG}" * 5000}
            flood = {f"k{n}": f"${{workflow.secrets.NOPE_{n:05}}}" for n in range(20_000)}
            capped_flood = {f"k{n}": f"${{workflow.secrets.NOPE_{n:05}}}" for n in range(1_000)}
            print("Abusive requests against gunicorn (2 workers), SQLite, Redis")
            print(
                f"{'sent of each':>12} | {'(a) amplification':>18} | {'(b) flood':>10} | {'(c) ended':>10} | "
                f"{'(d) 1,000':>10} | "
                f"{'peak RSS (MiB)':>14} | {'audit rows':>10} | {'rows per request, this batch':>28}"
            )
            statuses: dict[str, set[int]] = {"a": set(), "b": set(), "c": set(), "d": set()}
            sent, rows_before = 0, audit_rows(database)
            for batch in (int(part) for part in options.batches.split(",")):
                for _ in range(batch):
                    statuses["a"].add(user.call("POST", "/api/v1/runner/resolve/", amplification)[0])
                    statuses["b"].add(user.call("POST", "/api/v1/runner/resolve/", flood)[0])
                    statuses["c"].add(ended.call("GET", "/api/v1/runner/secrets/BIG/")[0])
                    statuses["d"].add(user.call("POST", "/api/v1/runner/resolve/", capped_flood)[0])
                sent += batch
                shown = {kind: ",".join(map(str, sorted(found))) or "-" for kind, found in statuses.items()}
                rows = audit_rows(database)
                per_request = f"{(rows - rows_before) / (len(statuses) * batch):.2f}" if batch else "-"
                print(
                    f"{sent:>12} | {shown['a']:>18} | {shown['b']:>10} | {shown['c']:>10} | {shown['d']:>10} | "
                    f"{peak_rss_mib(server):>14.1f} | {rows:>10} | {per_request:>28}"
                )
                rows_before = rows
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_seed":
        sys.path.insert(0, str(ROOT))
        child_seed()
    else:
        main()
