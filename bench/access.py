"""How access control grows with the size of a workspace.

Seeds workspaces of 100, 1,000 and 10,000 secrets (tags and grants scaled up to 200 tags and
1,000 grants), then prints, for each size, the server time of the Secrets list page (for a
member, and for a user who reaches secrets only through tag grants), of the list API, and of
one access check, with the number of queries each ran.

    .venv/bin/python bench/access.py            # a fresh SQLite database in a temporary folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch .venv/bin/python bench/access.py  # a scratch DB
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = (100, 1_000, 10_000)
REPEAT = 30


def setup_django() -> str:
    warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic for an in-process run
    workdir = tempfile.mkdtemp(prefix="bench-access-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.DEBUG = False  # measure without Django's per-query debug logging
    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"].split(":", 1)[0]


def timed(action: Callable[..., object], *args: object) -> tuple[float, int]:
    """Median milliseconds of `action(*args)` over REPEAT runs (after a warm-up), and its query count."""
    from django.db import connection

    queries = []

    def count(execute: Callable, sql: str, params: object, many: bool, context: object) -> object:
        queries.append(sql)
        return execute(sql, params, many, context)

    action(*args)
    with connection.execute_wrapper(count):
        action(*args)
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        action(*args)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), len(queries)


def main() -> None:
    database = setup_django()
    from django.test import Client

    from secrets_app import permissions
    from secrets_app.management.commands.seed_workspace import seed_workspace
    from secrets_app.permissions import Action
    from secrets_app.selectors.secrets import secrets_visible_to
    from secrets_app.selectors.workspaces import workspace_for

    print(f"Access-control growth on {database}: median of {REPEAT} runs, in-process test client")
    columns = ("member page", "grantee page", "list API", "access check")
    header = f"{'secrets':>8} {'tags':>5} {'grants':>6} | " + " ".join(f"{name:>16}" for name in columns)
    print(header)
    print("-" * len(header))
    for size in SIZES:
        tags, grants = min(200, size // 5), min(1_000, size // 10)
        started = time.perf_counter()
        seeded = seed_workspace(slug=f"bench-{size}", secrets=size, tags=tags, grants=grants)
        seed_seconds = time.perf_counter() - started
        slug = seeded.workspace.slug
        grantee = seeded.grantee_users[1]
        member_client, grantee_client = Client(), Client()
        member_client.force_login(seeded.owner)
        grantee_client.force_login(grantee)
        workspace = workspace_for(grantee, slug)
        reachable = secrets_visible_to(grantee, workspace).first()
        assert reachable is not None, "the grantee should reach some secrets"

        page, api = f"/settings/developer/{slug}/secrets/", f"/api/v1/workspaces/{slug}/secrets/"
        results = [
            timed(member_client.get, page),
            timed(grantee_client.get, page),
            timed(grantee_client.get, api),
            timed(permissions.can_on_secret, grantee, Action.VIEW_SECRETS, reachable),
        ]
        cells = " ".join(f"{ms:9.2f} ms {queries:2d}q" for ms, queries in results)
        print(f"{size:>8} {tags:>5} {grants:>6} | {cells}   (seeded in {seed_seconds:.1f} s)")


if __name__ == "__main__":
    main()
