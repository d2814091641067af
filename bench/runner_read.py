"""The runner read under load, against the framework's own floor, on this machine.

For each database (SQLite, and PostgreSQL when it is reachable) this script, in one run:

1. creates a fresh database and seeds, through the service layer, a workspace of 10,000 secrets,
   200 tags and 1,000 tag grants, registers a workflow there and launches an execution;
2. times (and measures the peak memory of) seeding 10,000 and 100,000 secrets through the services;
3. counts the SQL queries of one runner read;
4. starts gunicorn (production settings, Redis as the cache) and drives it with `wrk`, in
   alternating rounds, at (a) `GET /api/v1/runner/secrets/<key>/` with the runner session and
   (b) `GET /api/v1/runner/ping/`, a view that only authenticates the same session and answers a
   constant JSON body through the same middleware;

and prints requests/s and p50/p99 latency of (a) and (b) side by side, with the ratio a/b.

With `--compare REF`, the same load also runs against a second gunicorn serving the code of the
git commit REF (checked out in a temporary worktree), on the same database and cache, round by
round alternating with this tree's, so that both ratios come from one run on one machine.

    .venv/bin/python bench/runner_read.py                      # SQLite, then PostgreSQL if reachable
    .venv/bin/python bench/runner_read.py --databases sqlite   # one of them
    .venv/bin/python bench/runner_read.py --quick              # shorter rounds, no 100,000 seed
    .venv/bin/python bench/runner_read.py --compare c5146e9    # this tree and that commit, alternating

Needs `wrk` (apt-get install wrk) and Redis (CACHE_URL, default redis://127.0.0.1:6379/15, which
it flushes). PostgreSQL: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres);
the script creates and drops its own database there.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).parent / "gunicorn")
BENCH_DATABASE = "bench_runner_read"
THIS_TREE = "this tree"
TARGETS = {"ratio": 0.8, "p99_ms": 25.0, "queries": 4, "seed_100k_s": 60.0}


# Child process: seeding and query counting, inside Django


def child_seed(arguments: argparse.Namespace) -> None:
    """Seed one workspace through the services; print the time, peak memory and (optionally) a
    launched execution's runner session and the queries of one runner read, as JSON."""
    import django

    django.setup()
    from secrets_app.management.commands.seed_workspace import seed_workspace

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    seeded = seed_workspace(
        slug=arguments.slug, secrets=arguments.secrets, tags=arguments.tags, grants=arguments.grants
    )
    seconds = time.perf_counter() - started
    answer = {
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mib": rss_before / 1024,
    }
    if arguments.launch:
        answer.update(_launch_and_count(seeded))
    print(json.dumps(answer))


def _launch_and_count(seeded: object) -> dict[str, object]:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from secrets_app.services.runs import launch_execution, register_workflow

    workspace, owner = seeded.workspace, seeded.owner
    key = "SECRET_004242"
    workflow = register_workflow(
        actor=owner, workspace=workspace, name="bench", definition={"token": f"${{workflow.secrets.{key}}}"}
    )
    _, session_key = launch_execution(actor=owner, workspace=workspace, workflow=workflow)
    runner = Client()
    runner.cookies[settings.SESSION_COOKIE_NAME] = session_key
    path = f"/api/v1/runner/secrets/{key}/"
    assert runner.get(path).status_code == 200  # warm: the session is now in the cache
    with CaptureQueriesContext(connection) as queries:
        assert runner.get(path).status_code == 200
    return {"session": session_key, "path": path, "queries": len(queries), "sql": [q["sql"] for q in queries]}


# Parent process: databases, gunicorn, wrk


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_environment(database_url: str, cache_url: str) -> dict[str, str]:
    ring = "bench:" + base64.b64encode(os.urandom(32)).decode()
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "CONSOLE_ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECRETS_ENCRYPTION_KEYS": ring,
        "AUDIT_HMAC_KEY": secrets.token_urlsafe(48),
        "SECRETS_FINGERPRINT_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        **{name: os.environ[name] for name in ("GUNICORN_THREADS",) if name in os.environ},
    }


def run(command: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=ROOT, check=True, text=True, capture_output=True, **kwargs)


def prepare_postgres(admin_url: str) -> str | None:
    """A fresh, empty bench database on the server of `admin_url`, or None if unreachable."""
    import psycopg

    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    except psycopg.OperationalError:
        return None
    return admin_url.rsplit("/", 1)[0] + "/" + BENCH_DATABASE


def drop_postgres(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def flush_cache(cache_url: str) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    script = "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()"
    subprocess.run([PYTHON, "-c", script, cache_url], env=env, check=True)


def seed(env: dict[str, str], slug: str, secrets_count: int, tags: int, grants: int, launch: bool) -> dict:
    command = [PYTHON, __file__, "_seed", "--slug", slug, "--secrets", str(secrets_count)]
    command += ["--tags", str(tags), "--grants", str(grants)] + (["--launch"] if launch else [])
    return json.loads(run(command, env, timeout=900).stdout.strip().splitlines()[-1])


def _application(tree: Path) -> list[str]:
    """The application to name on gunicorn's command line: none where the tree's configuration
    names it (`wsgi_app`), the WSGI module for older commits."""
    return [] if "wsgi_app" in (tree / "console" / "gunicorn.conf.py").read_text() else ["console.wsgi"]


def start_gunicorn(env: dict[str, str], workers: int, tree: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the code in `tree` (this checkout, or a worktree of another commit)."""
    port = free_port()
    server_env = {
        **env,
        "PYTHONPATH": str(tree),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
    }
    # The error log goes to a file: a pipe nobody reads fills up under load and stalls the workers.
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        [GUNICORN, *_application(tree), "--config", "console/gunicorn.conf.py", "--access-logfile", "/dev/null"],
        env=server_env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    log.seek(0)
    raise SystemExit(f"gunicorn did not become ready: {log.read()}")


LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, session: str, seconds: int, connections: int, *, warm_up: bool = False) -> LoadResult:
    """`connections` clients on `url` for `seconds`. A warm-up round (each worker's first requests
    load the application and prepare its statements, seconds on PostgreSQL) may time out; a
    measured round may not."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", "30s"] if warm_up else []
    command += ["-H", f"Cookie: sessionid={session}", url]
    output = subprocess.run(command, check=True, text=True, capture_output=True).stdout
    if "Non-2xx" in output or ("Socket errors" in output and not warm_up):
        raise SystemExit(f"wrk saw failed requests against {url}:\n{output}")

    def latency(percentile: str) -> float:
        value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * LATENCY_UNITS[unit]

    rate = float(re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M).group(1))
    return LoadResult(rate, latency("50"), latency("99"))


def median_result(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        statistics.median(r.requests_per_second for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
    )


def bench_database(
    name: str, database_url: str, options: argparse.Namespace, trees: dict[str, Path]
) -> dict[str, object]:
    env = fresh_environment(database_url, options.cache_url)
    flush_cache(options.cache_url)
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, timeout=300)
    print(f"[{name}] seeding 10,000 secrets, 200 tags, 1,000 grants ...", file=sys.stderr)
    main = seed(env, "bench", 10_000, 200, 1_000, launch=True)
    seeds = {10_000: main}
    if not options.quick:
        print(f"[{name}] seeding 100,000 secrets ...", file=sys.stderr)
        seeds[100_000] = seed(env, "bench-large", 100_000, 200, 0, launch=False)
    loads = {}
    for workers in options.workers:
        servers = {label: start_gunicorn(env, workers, tree) for label, tree in trees.items()}
        samples: dict[str, tuple[list[LoadResult], list[LoadResult]]] = {label: ([], []) for label in trees}
        try:
            for _, base in servers.values():
                wrk(base + main["path"], main["session"], 2, options.connections, warm_up=True)  # every worker
                wrk(base + "/api/v1/runner/ping/", main["session"], 2, options.connections, warm_up=True)
            for round_number in range(options.rounds):
                print(
                    f"[{name}] {workers} workers, load round {round_number + 1}/{options.rounds} ...", file=sys.stderr
                )
                for label, (_, base) in servers.items():
                    reads, pings = samples[label]
                    reads.append(wrk(base + main["path"], main["session"], options.duration, options.connections))
                    pings.append(
                        wrk(base + "/api/v1/runner/ping/", main["session"], options.duration, options.connections)
                    )
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
        loads[workers] = {
            label: {"read": median_result(reads), "ping": median_result(pings)}
            for label, (reads, pings) in samples.items()
        }
    return {"loads": loads, "seeds": seeds, "queries": main["queries"]}


def report(results: dict[str, dict], options: argparse.Namespace) -> None:
    print(
        f"Runner read vs. baseline: gunicorn ({options.workers} workers), wrk {options.connections} connections, "
        f"{options.rounds} alternating rounds of {options.duration} s (medians), {os.cpu_count()} CPU cores"
    )
    header = (
        f"{'database':<10} {'code':<12} {'workers':>7} | {'(a) runner read':>26} | "
        f"{'(b) baseline (session only)':>27} | {'a/b':>5} | {'queries/read':>12}"
    )
    print(header)
    print(f"{'':<31} | {'req/s   p50 ms   p99 ms':>26} | {'req/s   p50 ms   p99 ms':>27} |       |")
    print("-" * len(header))
    for name, result in results.items():
        for workers, by_tree in result["loads"].items():
            for label, load in by_tree.items():
                read, ping = load["read"], load["ping"]
                print(
                    f"{name:<10} {label:<12} {workers:>7} | "
                    f"{read.requests_per_second:>8.0f} {read.p50_ms:>8.2f} {read.p99_ms:>8.2f} | "
                    f"{ping.requests_per_second:>9.0f} {ping.p50_ms:>8.2f} {ping.p99_ms:>8.2f} | "
                    f"{read.requests_per_second / ping.requests_per_second:>5.2f} | {result['queries']:>12}"
                )
    print()
    print("Seeding through the service layer (services.secrets.import_secrets, batches of 2,000; 200 tags):")
    for name, result in results.items():
        for size, seeded in result["seeds"].items():
            print(
                f"{name:<10} {size:>7,} secrets: {seeded['seconds']:6.1f} s, "
                f"peak RSS {seeded['peak_rss_mib']:6.0f} MiB (after start-up {seeded['rss_before_mib']:.0f} MiB)"
            )
    print()
    print("Targets, for this tree (best worker count for each):")
    for name, result in results.items():
        ours = [by_tree[THIS_TREE] for by_tree in result["loads"].values()]
        ratio = max(load["read"].requests_per_second / load["ping"].requests_per_second for load in ours)
        p99 = min(load["read"].p99_ms for load in ours)
        checks = [
            (f"a/b >= {TARGETS['ratio']} ({ratio:.2f})", ratio >= TARGETS["ratio"]),
            (f"p99 < {TARGETS['p99_ms']:.0f} ms ({p99:.1f})", p99 < TARGETS["p99_ms"]),
            (f"queries <= {TARGETS['queries']} ({result['queries']})", result["queries"] <= TARGETS["queries"]),
        ]
        if 100_000 in result["seeds"]:
            seconds = result["seeds"][100_000]["seconds"]
            checks.append(
                (f"100,000 seeded < {TARGETS['seed_100k_s']:.0f} s ({seconds:.0f})", seconds < TARGETS["seed_100k_s"])
            )
        print(f"  {name:<10} " + "   ".join(f"{label}: {'met' if ok else 'MISSED'}" for label, ok in checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[os.cpu_count() or 1, 2 * (os.cpu_count() or 1)],
        help="gunicorn worker counts to measure, e.g. 2,4 (default: cores, 2 x cores)",
    )
    parser.add_argument("--quick", action="store_true", help="3-second rounds and no 100,000 seed")
    parser.add_argument("--compare", metavar="REF", help="also serve git commit REF, alternating rounds with this tree")
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument(
        "--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    options = parser.parse_args()
    if options.quick:
        options.duration = 3
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as other:
        trees = {THIS_TREE: ROOT}
        if options.compare:
            run(["git", "worktree", "add", "--detach", other, options.compare], dict(os.environ))
            trees[options.compare[:12]] = Path(other)
        try:
            report(bench_databases(options, trees), options)
        finally:
            if options.compare:
                run(["git", "worktree", "remove", "--force", other], dict(os.environ))


def bench_databases(options: argparse.Namespace, trees: dict[str, Path]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for name in options.databases.split(","):
        if name == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-runner-") as workdir:
                results[name] = bench_database(name, f"sqlite:///{workdir}/bench.sqlite3", options, trees)
        elif name == "postgres":
            database_url = prepare_postgres(options.postgres_url)
            if database_url is None:
                print(f"[postgres] not reachable at {options.postgres_url}: skipped", file=sys.stderr)
                continue
            try:
                results[name] = bench_database(name, database_url, options, trees)
            finally:
                drop_postgres(options.postgres_url)
        else:
            raise SystemExit(f"unknown database {name!r}: use sqlite and/or postgres")
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_seed":
        seed_parser = argparse.ArgumentParser()
        seed_parser.add_argument("_seed")
        seed_parser.add_argument("--slug", required=True)
        seed_parser.add_argument("--secrets", type=int, required=True)
        seed_parser.add_argument("--tags", type=int, required=True)
        seed_parser.add_argument("--grants", type=int, required=True)
        seed_parser.add_argument("--launch", action="store_true")
        sys.path.insert(0, str(ROOT))
        child_seed(seed_parser.parse_args())
    else:
        main()
