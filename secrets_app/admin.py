"""Admin site: workspace management. Access comes from `permissions`, writes go through `services`.

Secrets are read-only here (metadata only, never the value; delete allowed) and the audit
log is read-only.
"""

from __future__ import annotations

import functools
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdmin

from secrets_app.services.grants import delete_tag, grant_tag_permissions, revoke_tag_grant
from secrets_app.services.secrets import delete_secret
from secrets_app.services.workspaces import (
    add_member,
    change_member_role,
    create_team_workspace,
    delete_workspace,
    remove_member,
    rename_workspace,
    set_expired_secret_grace,
)

from . import errors, permissions
from .http import client_ip
from .models import (
    AuditEvent,
    Membership,
    Role,
    Secret,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
    Workspace,
)
from .permissions import Action


class ConsoleModelAdmin(admin.ModelAdmin):
    """Staff enter the admin; what they see is limited to the workspaces they manage."""

    workspace_path = "workspace"

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


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        roles = []
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if form.instance.pk and "user" in form.changed_data:
                form.add_error("user", "A member's user cannot be changed: remove the member and add the new one.")
            if not form.cleaned_data.get("DELETE"):
                roles.append(form.cleaned_data.get("role"))
        if Role.OWNER not in roles:
            raise ValidationError(errors.LockOut.default_message)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 1
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)

    def _manages(self, request: HttpRequest, obj: Workspace | None) -> bool:
        if obj is None:
            return permissions.can_use_admin_site(request.user)
        return permissions.admin_can(request.user, Action.MANAGE_MEMBERS, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission


@admin.register(Workspace)
class WorkspaceAdmin(ConsoleModelAdmin):
    list_display = ("slug", "name", "member_count", "secret_count", "created_at")
    search_fields = ("slug", "name")
    inlines = [MembershipInline]
    workspace_path = "pk"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            Workspace.objects.filter(permissions.admin_workspaces_filter(request.user))
            .annotate(member_count=Count("memberships", distinct=True), secret_count=Count("secrets", distinct=True))
            .order_by("slug")
        )

    def workspace_of(self, obj: Any) -> Workspace | None:
        return obj

    @admin.display(ordering="member_count")
    def member_count(self, obj: Workspace) -> int:
        return obj.member_count

    @admin.display(ordering="secret_count")
    def secret_count(self, obj: Workspace) -> int:
        return obj.secret_count

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name", "slug"] if obj is None else ["name", "slug", "kind", "expired_secret_grace_days", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is in every address and runner configuration; it is fixed at creation.
        if obj is None:
            return []
        fixed = ["slug", "kind", "created_at"]
        if not permissions.admin_can(request.user, Action.CONFIGURE_WORKSPACE, obj):
            fixed.append("expired_secret_grace_days")
        return fixed

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.VIEW_WORKSPACE, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions.can_use_admin_site(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.MANAGE_MEMBERS, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.DELETE_WORKSPACE, obj)

    def save_model(self, request: HttpRequest, obj: Workspace, form: Any, change: bool) -> None:
        if change:
            rename_workspace(actor=request.user, workspace=obj, name=obj.name, ip_address=client_ip(request))
            if "expired_secret_grace_days" in form.changed_data:
                set_expired_secret_grace(
                    actor=request.user,
                    workspace=obj,
                    days=obj.expired_secret_grace_days,
                    ip_address=client_ip(request),
                )
            return
        created = create_team_workspace(
            actor=request.user, name=obj.name, slug=obj.slug, owner=None, ip_address=client_ip(request)
        )
        # The inline formsets are bound to `obj`: make it the row the service created.
        obj.pk, obj.created_at, obj.kind = created.pk, created.created_at, created.kind
        obj._state.adding, obj._state.db = False, created._state.db

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        workspace, ip = form.instance, client_ip(request)
        formset.save(commit=False)
        # Adds and promotions first, removals last: the workspace keeps an owner at every step.
        for membership in formset.new_objects:
            add_member(
                actor=request.user,
                workspace=workspace,
                username=membership.user.username,
                role=membership.role,
                ip_address=ip,
            )
        changed = sorted(formset.changed_objects, key=lambda pair: pair[0].role != Role.OWNER)
        for membership, _ in changed:
            change_member_role(
                actor=request.user,
                workspace=workspace,
                username=membership.user.username,
                role=membership.role,
                ip_address=ip,
            )
        for membership in formset.deleted_objects:
            remove_member(actor=request.user, workspace=workspace, username=membership.user.username, ip_address=ip)

    def delete_model(self, request: HttpRequest, obj: Workspace) -> None:
        delete_workspace(actor=request.user, workspace=obj, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for workspace in queryset:
            self.delete_model(request, workspace)


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
    list_display = ("name", "workspace", "secret_count", "created_at")
    search_fields = ("name", "workspace__slug")
    fields = ("name", "workspace", "created_at")
    readonly_fields = ("name", "workspace", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            ConsoleModelAdmin.get_queryset(self, request)
            .select_related("workspace")
            .annotate(secret_count=Count("secrets"))
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

    def get_obj_perms_manage_user_form(self, request: HttpRequest) -> Any:
        return functools.partial(AuditedUserTagPermissionsForm, request=request)

    def get_obj_perms_manage_group_form(self, request: HttpRequest) -> Any:
        return functools.partial(AuditedGroupTagPermissionsForm, request=request)

    def delete_model(self, request: HttpRequest, obj: Tag) -> None:
        delete_tag(actor=request.user, tag=obj, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for tag in queryset:
            self.delete_model(request, tag)


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
