"""Secrets and the audit log in the admin: read-only metadata (never a value), secrets deletable
through the service, audit events never changed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from secrets_app.admin.base import ConsoleModelAdmin
from secrets_app.http import client_ip
from secrets_app.models import AuditEvent, Secret, Tag
from secrets_app.permissions import Action
from secrets_app.services.secrets import delete_secret


@admin.register(Secret)
class SecretAdmin(ConsoleModelAdmin):
    """Metadata only: the value is not a field here, and nothing can be changed."""

    list_display = ("key", "workspace", "tag_list", "created_by", "created_at", "expires_at")
    list_select_related = ("workspace", "created_by")
    search_fields = ("key", "workspace__slug")
    fields = ("key", "workspace", "tag_list", "created_by", "created_at", "expires_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .defer("value")
            .select_related("workspace", "created_by")
            .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name")))
        )

    @admin.display(description="tags")
    def tag_list(self, obj: Secret) -> str:
        return ", ".join(sorted(tag.name for tag in obj.tags.all())) or "—"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.VIEW_SECRETS, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.DELETE_SECRET, obj)

    def delete_model(self, request: HttpRequest, obj: Secret) -> None:
        delete_secret(actor=request.user, secret=obj, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for secret in queryset:
            self.delete_model(request, secret)


@admin.register(AuditEvent)
class AuditEventAdmin(ConsoleModelAdmin):
    """Read-only: audit events are never changed or deleted."""

    list_display = ("at", "action", "actor_username", "workspace_slug", "secret_key", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_username", "workspace_slug", "secret_key")
    date_hierarchy = "at"
    fields = ("at", "action", "actor_username", "workspace_slug", "secret_key", "secret_id", "ip_address", "detail")
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.VIEW_AUDIT, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
