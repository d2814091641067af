"""Template context shared by every console page."""

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from secrets_app.selectors.workspaces import workspace_menu


def workspace_switcher(request: HttpRequest) -> dict[str, Any]:
    """The first of the signed-in user's workspaces (`selectors.workspaces.workspace_menu`), for
    the switcher in the page header: read only if the page shows it."""
    if not request.user.is_authenticated or request.path.startswith(("/admin/", "/api/")):
        return {}
    return {"switcher_workspaces": SimpleLazyObject(lambda: workspace_menu(request.user))}
