"""Workspaces: yours, a page at a time; creating a team one; its Settings and its Members pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from secrets_app import errors, permissions
from secrets_app.forms import MemberAddForm, MemberRoleForm, MfaPolicyForm, WorkspaceCreateForm, WorkspaceSettingsForm
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.pagination import paginate
from secrets_app.selectors.workspaces import members_of, workspace_for, workspaces_for
from secrets_app.services.workspaces import (
    add_member,
    change_member_role,
    create_team_workspace,
    remove_member,
    set_expired_secret_grace,
    set_mfa_policy,
)
from secrets_app.views.base import console_view, developer_context, show_errors


@console_view
@require_http_methods(["GET"])
def workspace_list(request: HttpRequest) -> HttpResponse:
    """Every workspace you can see, with your role, personal first, then by name."""
    page = paginate(workspaces_for(request.user), request.GET.get("page"))
    return render(request, "developer/workspaces.html", {"page": page, "section": "workspaces"})


@console_view
@require_http_methods(["GET", "POST"])
def workspace_new(request: HttpRequest) -> HttpResponse:
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = create_team_workspace(actor=request.user, ip_address=client_ip(request), **form.cleaned_data)
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Workspace {workspace.name} created; you are its owner.")
            return redirect("secrets", slug=workspace.slug)
    context = {"form": form, "section": "new-workspace"}
    return render(request, "developer/workspace_new.html", context, status=400 if form.errors else 200)


@console_view
@require_http_methods(["GET", "POST"])
def workspace_settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The workspace's settings: how long runners may still read an expired secret."""
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.CONFIGURE_WORKSPACE, workspace)
    form = WorkspaceSettingsForm(
        request.POST or None, initial={"expired_secret_grace_days": workspace.expired_secret_grace_days}
    )
    if request.method == "POST" and form.is_valid():
        try:
            set_expired_secret_grace(
                actor=request.user,
                workspace=workspace,
                days=form.cleaned_data["expired_secret_grace_days"],
                ip_address=client_ip(request),
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, "Workspace settings saved.")
            return redirect("workspace-settings", slug=workspace.slug)
    context = developer_context(
        request,
        workspace,
        "workspace-settings",
        form=form,
        mfa_form=MfaPolicyForm(initial={"require_mfa": workspace.require_mfa}),
        may_set_mfa_policy=permissions.can(request.user, Action.SET_MFA_POLICY, workspace),
    )
    return render(request, "developer/workspace_settings.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
@reauthentication_required
def workspace_mfa_policy(request: HttpRequest, slug: str) -> HttpResponse:
    """Owners: require two-factor of everyone using the workspace's secrets (or stop requiring it)."""
    workspace = workspace_for(request.user, slug)
    form = MfaPolicyForm(request.POST)
    form.is_valid()  # a checkbox: absent is False, anything else True
    required = bool(form.cleaned_data.get("require_mfa"))
    try:
        set_mfa_policy(actor=request.user, workspace=workspace, required=required, ip_address=client_ip(request))
    except errors.InvalidOperation as refusal:
        messages.error(request, refusal.message)
        return redirect("workspace-settings", slug=workspace.slug)
    messages.success(
        request,
        "Two-factor authentication is now required here." if required else "Two-factor is no longer required here.",
    )
    return redirect("workspace-settings", slug=workspace.slug)


@console_view
@require_http_methods(["GET", "POST"])
@reauthentication_required
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    # Members see who else is in; a tag grantee, who only sees the secrets granted, does not.
    permissions.require(request.user, Action.VIEW_WORKSPACE, workspace)
    add_form = MemberAddForm(request.POST or None)
    if request.method == "POST":
        if add_form.is_valid():
            try:
                add_member(
                    actor=request.user, workspace=workspace, ip_address=client_ip(request), **add_form.cleaned_data
                )
            except (ValidationError, errors.ConsoleError) as error:
                show_errors(add_form, error)
            else:
                messages.success(request, f"Added {add_form.cleaned_data['username']}.")
                return redirect("members", slug=workspace.slug)
    context = developer_context(
        request,
        workspace,
        "members",
        members=paginate(members_of(workspace), request.GET.get("page")),
        add_form=add_form,
        role_form=MemberRoleForm(),
    )
    return render(request, "developer/members.html", context, status=400 if add_form.errors else 200)


@console_view
@require_POST
@reauthentication_required
def member_change(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    """Change a member's role, or remove them (`remove` in the form)."""
    workspace = workspace_for(request.user, slug)
    try:
        if "remove" in request.POST:
            remove_member(actor=request.user, workspace=workspace, username=username, ip_address=client_ip(request))
            messages.success(request, f"Removed {username}.")
        else:
            form = MemberRoleForm(request.POST)
            if not form.is_valid():
                raise errors.InvalidOperation("Choose a valid role.")
            change_member_role(
                actor=request.user,
                workspace=workspace,
                username=username,
                role=form.cleaned_data["role"],
                ip_address=client_ip(request),
            )
            messages.success(request, f"{username} is now {form.cleaned_data['role']}.")
    except errors.AccessDenied:
        raise
    except errors.ConsoleError as error:
        messages.error(request, error.message)
    try:
        workspace_for(request.user, slug)
    except errors.WorkspaceNotFound:  # they removed themselves
        return redirect("developer-settings")
    return redirect("members", slug=workspace.slug)
