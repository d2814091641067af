"""Tags in the admin, with guardian's object-permission pages for their grants, saved through the
grant services so every grant and revoke is checked and audited."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdmin

from secrets_app import permissions
from secrets_app.admin.base import ConsoleModelAdmin
from secrets_app.http import client_ip
from secrets_app.models import Tag, TagGroupObjectPermission, TagUserObjectPermission
from secrets_app.permissions import Action
from secrets_app.services.approvals import set_tag_protected
from secrets_app.services.grants import delete_tag, grant_tag_permissions, revoke_tag_grant


class AuditedTagPermissionsMixin:
    """Guardian's object-permission admin forms for tags: they offer only the tag grants, and
    save through the services, so every grant and revoke is checked and audited."""

    grantee_kind = ""
    grant_model: type = TagUserObjectPermission

    def __init__(self, grantee: Any, obj: Tag, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        self.request = request
        super().__init__(grantee, obj, *args, **kwargs)

    def grantee(self) -> Any:
        raise NotImplementedError

    def get_obj_perms_field_choices(self) -> list[tuple[str, str]]:
        labels = dict(Tag._meta.permissions)
        return [(codename, labels[codename]) for codename in permissions.TAG_PERMISSION_NAMES.values()]

    def save_obj_perms(self) -> None:
        wanted = set(self.cleaned_data[self.get_obj_perms_field_name()])
        held = set(self.get_obj_perms_field_initial()) & set(permissions.TAG_PERMISSION_SHORT_NAMES)
        grantee, tag, ip = self.grantee(), self.obj, client_ip(self.request)
        grantee_argument = (
            {"username": grantee.get_username()} if self.grantee_kind == "user" else {"group_name": grantee.name}
        )
        if wanted - held:
            grant_tag_permissions(
                actor=self.request.user,
                workspace=tag.workspace,
                tag_name=tag.name,
                permission_names=[permissions.TAG_PERMISSION_SHORT_NAMES[c] for c in sorted(wanted - held)],
                ip_address=ip,
                **grantee_argument,
            )
        for codename in held - wanted:
            row = self.grant_model.objects.get(
                **{self.grantee_kind: grantee}, content_object=tag, permission__codename=codename
            )
            revoke_tag_grant(
                actor=self.request.user,
                workspace=tag.workspace,
                grant_id=f"{self.grantee_kind}-{row.pk}",
                ip_address=ip,
            )


class AuditedUserTagPermissionsForm(AuditedTagPermissionsMixin, AdminUserObjectPermissionsForm):
    grantee_kind = "user"
    grant_model = TagUserObjectPermission

    def grantee(self) -> Any:
        return self.user


class AuditedGroupTagPermissionsForm(AuditedTagPermissionsMixin, AdminGroupObjectPermissionsForm):
    grantee_kind = "group"
    grant_model = TagGroupObjectPermission

    def grantee(self) -> Any:
        return self.group


@admin.register(Tag)
class TagAdmin(GuardedModelAdmin, ConsoleModelAdmin):
    list_display = ("name", "workspace", "protected", "secret_count", "created_at")
    search_fields = ("name", "workspace__slug")
    fields = ("name", "workspace", "protected", "created_at")
    readonly_fields = ("name", "workspace", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            ConsoleModelAdmin.get_queryset(self, request)
            .select_related("workspace")
            .annotate(secret_count=Count("secret_tags"))
        )

    @admin.display(ordering="secret_count")
    def secret_count(self, obj: Tag) -> int:
        return obj.secret_count

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.MANAGE_GRANTS, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tags are made by tagging a secret

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.MANAGE_GRANTS, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.MANAGE_GRANTS, obj)

    def obj_perms_manage_user_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self.refusals_as_messages(request, super().obj_perms_manage_user_view, *args, **kwargs)

    def obj_perms_manage_group_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self.refusals_as_messages(request, super().obj_perms_manage_group_view, *args, **kwargs)

    def get_obj_perms_manage_user_form(self, request: HttpRequest) -> Any:
        return functools.partial(AuditedUserTagPermissionsForm, request=request)

    def get_obj_perms_manage_group_form(self, request: HttpRequest) -> Any:
        return functools.partial(AuditedGroupTagPermissionsForm, request=request)

    def save_model(self, request: HttpRequest, obj: Tag, form: Any, change: bool) -> None:
        # The one field changed here, through the service that audits it.
        if "protected" in form.changed_data:
            wanted = obj.protected
            obj.protected = not wanted
            set_tag_protected(actor=request.user, tag=obj, protected=wanted, ip_address=client_ip(request))

    def delete_model(self, request: HttpRequest, obj: Tag) -> None:
        delete_tag(actor=request.user, tag=obj, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for tag in queryset:
            self.delete_model(request, tag)
