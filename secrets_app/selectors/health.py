"""Health: can this process reach the services it depends on?"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import DatabaseError, connection


def dependency_checks() -> dict[str, str]:
    """Can this process reach its database and its cache right now? "ok", or why not."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as error:
        checks["database"] = f"unreachable ({type(error).__name__})"
    probe = f"readyz-probe-{uuid.uuid4().hex}"
    try:
        cache.set(probe, "stored", timeout=10)
        checks["cache"] = "ok" if cache.get(probe) == "stored" else "not storing values"
        cache.delete(probe)
    except Exception as error:
        checks["cache"] = f"unreachable ({type(error).__name__})"
    return checks
