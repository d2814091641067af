"""What every console page shares: sign-in required, domain errors as 404 and 403 pages, a
service's refusal shown on its form, and the Developer Settings context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms as django_forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse

from secrets_app import errors, permissions
from secrets_app.permissions import Action

CURRENT_WORKSPACE_SESSION_KEY = "current_workspace"


class NotFoundPage(Http404):
    """A 404 whose message is the console's own, for the page to show. Any other Http404 is shown
    without its text: Django's resolver puts its URL patterns in it."""


class ForbiddenPage(PermissionDenied):
    """A 403 whose message is the console's own, for the page to show; any other is shown without."""


def console_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page for signed-in users. Its domain refusals become their pages (unknown or hidden
    things 404, forbidden actions 403) in `middleware.ConsoleErrorPagesMiddleware`, for every view."""
    return login_required(view)


def show_errors(form: django_forms.Form, error: ValidationError | errors.ConsoleError) -> None:
    """Put a service's refusal on the form, by field where it names one. A permission refusal
    is not a form problem: it goes on to be a 403 page."""
    if isinstance(error, errors.AccessDenied):
        raise error
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, field_errors)
    else:
        form.add_error(None, error.messages if isinstance(error, ValidationError) else error.message)


def developer_context(request: HttpRequest, workspace: Any, section: str, **extra: Any) -> dict[str, Any]:
    if request.session.get(CURRENT_WORKSPACE_SESSION_KEY) != workspace.slug:
        request.session[CURRENT_WORKSPACE_SESSION_KEY] = workspace.slug
    role = permissions.role_in(request.user, workspace)
    return {
        "workspace": workspace,
        "section": section,
        "role": role,
        "can": {action.value: permissions.role_allows(role, action) for action in Action},
        **extra,
    }
