"""Small request helpers shared by the UI views and the JSON API."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or the entry a trusted proxy appended to X-Forwarded-For.

    `TRUSTED_PROXY_COUNT` (default 0) says how many proxies in front of the app append to the
    header; entries further left are written by the client and are not believed.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")
