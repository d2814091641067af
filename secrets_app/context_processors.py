"""Template context shared by every console page."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from secrets_app.selectors.runner import RUNNER_EXECUTION
from secrets_app.selectors.workspaces import workspace_menu


def workspace_switcher(request: HttpRequest) -> dict[str, Any]:
    """The first of the signed-in user's workspaces (`selectors.workspaces.workspace_menu`), for
    the switcher in the page header: read only if the page shows it."""
    if not request.user.is_authenticated or request.path.startswith(("/admin/", "/api/")) or _is_runner(request):
        return {}
    return {"switcher_workspaces": SimpleLazyObject(lambda: workspace_menu(request.user))}


def _is_runner(request: HttpRequest) -> bool:
    return RUNNER_EXECUTION in getattr(request, "session", {})


def identity(request: HttpRequest) -> dict[str, Any]:
    """What the sign-in pages and Account Settings show of the identity settings; and whether the
    request is a runner session's, whose pages (errors) show nothing of the user who launched it."""
    return {
        "runner_session": _is_runner(request),
        "sso_only": settings.SSO_ONLY,
        "sso_enabled": bool(settings.SOCIALACCOUNT_PROVIDERS.get("openid_connect", {}).get("APPS")),
        "signup_open": settings.SIGNUP_OPEN and not settings.SSO_ONLY,
    }
