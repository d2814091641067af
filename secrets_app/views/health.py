"""Health checks for load balancers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from secrets_app.selectors.health import dependency_checks


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answering; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """The process can reach its database and its cache: 200, else 503 naming what failed."""
    checks = dependency_checks()
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
