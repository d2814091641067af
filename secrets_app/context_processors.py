"""Template context shared by every console page."""

from typing import Any

from django.http import HttpRequest

from secrets_app.selectors.workspaces import workspaces_for


def workspace_switcher(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's workspaces, for the switcher in the page header (one query, lazily)."""
    if not request.user.is_authenticated or request.path.startswith(("/admin/", "/api/")):
        return {}
    return {"switcher_workspaces": workspaces_for(request.user)}
