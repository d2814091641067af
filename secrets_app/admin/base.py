"""What every admin page of the console shares: staff see only the workspaces they manage, and a
service's refusal is a message, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect

from secrets_app import errors, permissions
from secrets_app.models import Workspace
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required


def reauthenticating_admin_view(admin_view: Callable) -> Callable:
    """`AdminSite.admin_view`, whose views need a recent re-authentication for every change they
    make (`reauthentication.reauthentication_required`)."""

    def wrap(view: Callable, cacheable: bool = False) -> Callable:
        return admin_view(reauthentication_required(view), cacheable)

    return wrap


class ConsoleModelAdmin(admin.ModelAdmin):
    """Staff enter the admin; what they see is limited to the workspaces they manage.

    Every change goes through the services, which decide again. Should one refuse what the admin
    offered (a row deleted meanwhile, a permission lost), the admin says so and changes nothing
    (the admin's transaction is rolled back), rather than answering 500.
    """

    workspace_path = "workspace"

    def refusals_as_messages(self, request: HttpRequest, view: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(request, *args, **kwargs)
        except (errors.ConsoleError, ValidationError) as refusal:
            text = refusal.message if isinstance(refusal, errors.ConsoleError) else " ".join(refusal.messages)
            self.message_user(request, f"Nothing was changed: {text}", level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self.refusals_as_messages(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self.refusals_as_messages(request, super().delete_view, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self.refusals_as_messages(request, super().changelist_view, *args, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.can_use_admin_site(request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        managed = Workspace.objects.filter(permissions.admin_workspaces_filter(request.user))
        return super().get_queryset(request).filter(**{f"{self.workspace_path}__in": managed})

    def workspace_of(self, obj: Any) -> Workspace | None:
        return obj.workspace if obj is not None else None

    def allows(self, request: HttpRequest, action: Action, obj: Any) -> bool:
        if obj is None:
            return permissions.can_use_admin_site(request.user)
        return permissions.admin_can(request.user, action, self.workspace_of(obj))
