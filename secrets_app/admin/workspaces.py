"""Workspaces in the admin: their settings and members, through the workspace services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from secrets_app import errors, permissions
from secrets_app.admin.base import ConsoleModelAdmin
from secrets_app.http import client_ip
from secrets_app.models import Membership, Role, Secret, Workspace
from secrets_app.permissions import Action
from secrets_app.reauthentication import require_recent_authentication
from secrets_app.services.workspaces import (
    add_member,
    change_member_role,
    create_team_workspace,
    delete_workspace,
    remove_member,
    rename_workspace,
    set_expired_secret_grace,
    set_mfa_policy,
)

# A workspace's members are edited inline only up to this many (an inline shows every row at once);
# a larger team is managed on the console's Members page, a page at a time.
ADMIN_INLINE_MEMBERS = 100


def _count_in(model: Any, workspace_field: str = "workspace") -> Coalesce:
    """How many `model` rows belong to the outer workspace, as a subquery (never a join: two
    joined counts would multiply members by secrets)."""
    rows = model.objects.filter(**{workspace_field: OuterRef("pk")}).order_by().values(workspace_field)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0)


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
            .annotate(member_count=_count_in(Membership), secret_count=_count_in(Secret))
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

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is not None and obj.memberships.count() > ADMIN_INLINE_MEMBERS:
            if request.method == "GET":
                messages.info(
                    request,
                    f"{obj.name} has more than {ADMIN_INLINE_MEMBERS} members: manage them on its Members page in "
                    "the console.",
                )
            return []
        return self.inlines

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name", "slug"]
        return ["name", "slug", "kind", "expired_secret_grace_days", "require_mfa", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is in every address and runner configuration; it is fixed at creation.
        if obj is None:
            return []
        fixed = ["slug", "kind", "created_at"]
        if not permissions.admin_can(request.user, Action.CONFIGURE_WORKSPACE, obj):
            fixed.append("expired_secret_grace_days")
        if obj.is_personal or not permissions.admin_can(request.user, Action.SET_MFA_POLICY, obj):
            fixed.append("require_mfa")
        return fixed

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, Action.VIEW_WORKSPACE, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Here a new workspace is made without an owner and its members are added after it, which
        # only superusers may do; others create team workspaces in the console, as their owner.
        return permissions.can_use_admin_site(request.user) and request.user.is_superuser

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
            if "require_mfa" in form.changed_data:
                require_recent_authentication(request)
                set_mfa_policy(
                    actor=request.user, workspace=obj, required=obj.require_mfa, ip_address=client_ip(request)
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
