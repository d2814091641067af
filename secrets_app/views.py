"""Browser pages: Account Settings and Developer Settings. Thin: parse, call, render."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.utils import timezone
from django.utils.log import log_response
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import api, errors, permissions, selectors, services
from .audit_exports import EXPORT_FORMATS
from .forms import (
    AuditFilterForm,
    DotenvConfirmForm,
    DotenvImportForm,
    GrantForm,
    LaunchForm,
    MemberAddForm,
    MemberRoleForm,
    ProfileForm,
    SecretCreateForm,
    SecretFilterForm,
    SignUpForm,
    TagAddForm,
    ValueLookupForm,
    WorkflowRegisterForm,
    WorkspaceCreateForm,
    WorkspaceSettingsForm,
    seal_pending_import,
)
from .http import client_ip, is_api_request
from .permissions import Action

CURRENT_WORKSPACE_SESSION_KEY = "current_workspace"

logger = logging.getLogger(__name__)


def domain_errors_as_http(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Unknown or hidden things are 404 pages; forbidden actions are 403 pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except errors.NotFound as error:
            raise Http404(error.message) from None
        except errors.AccessDenied as error:
            raise PermissionDenied(error.message) from None

    return wrapper


def console_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    return login_required(domain_errors_as_http(view))


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


def _developer_context(request: HttpRequest, workspace: Any, section: str, **extra: Any) -> dict[str, Any]:
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


# Accounts


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect("developer-settings")


@sensitive_post_parameters()
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.register_user(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome! Your personal workspace is ready.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """The profile form, and the user's sessions."""
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        services.update_profile(user=request.user, **form.cleaned_data)
        messages.success(request, "Profile saved.")
        return redirect("account-settings")
    sessions = selectors.sessions_of(request.user, current_session_key=request.session.session_key)
    return render(request, "account/profile.html", {"form": form, "section": "profile", "sessions": sessions})


@console_view
@require_POST
def session_revoke(request: HttpRequest, session_id: str) -> HttpResponse:
    """End one of your sessions; ending the current one signs you out."""
    found = selectors.session_for(request.user, session_id, current_session_key=request.session.session_key)
    services.revoke_session(actor=request.user, user_session=found, ip_address=client_ip(request))
    if found.is_current:
        logout(request)
        messages.success(request, "This session has ended: you are signed out.")
        return redirect("login")
    if found.execution:
        messages.success(
            request, f"Runner session of {found.execution.workflow_reference} ended; its execution is finished."
        )
    else:
        messages.success(request, f"{found.get_kind_display()} session ({found.device}) ended: it is signed out.")
    return redirect("account-settings")


@console_view
@require_POST
def sessions_revoke_others(request: HttpRequest) -> HttpResponse:
    """Sign out everywhere else: every session but this one ends."""
    ended = services.revoke_other_sessions(
        actor=request.user, current_session_key=request.session.session_key, ip_address=client_ip(request)
    )
    count = sum(ended.values())
    messages.success(request, f"Signed out everywhere else: {count} other session{'' if count == 1 else 's'} ended.")
    return redirect("account-settings")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, through `services.change_password`: every other session of the
    user's ends at once; this one stays signed in."""

    template_name = "account/password_change.html"

    @sensitive_variables()
    def form_valid(self, form: django_forms.Form) -> HttpResponse:
        services.change_password(
            user=form.user,
            new_password=form.cleaned_data["new_password1"],
            current_session_key=self.request.session.session_key,
            ip_address=client_ip(self.request),
        )
        update_session_auth_hash(self.request, form.user)
        return redirect(self.get_success_url())


# Developer Settings


@console_view
@require_GET
def developer_settings(request: HttpRequest) -> HttpResponse:
    """Open the workspace chosen in the switcher, else the last one used, else the personal one."""
    wanted = request.GET.get("workspace") or request.session.get(CURRENT_WORKSPACE_SESSION_KEY)
    if wanted:
        try:
            return redirect("secrets", slug=selectors.workspace_for(request.user, wanted).slug)
        except errors.WorkspaceNotFound:
            if request.GET.get("workspace"):
                raise
    return redirect("secrets", slug=selectors.personal_workspace_of(request.user).slug)


@console_view
@sensitive_post_parameters()
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def secrets_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The Secrets list and the add form."""
    workspace = selectors.workspace_for(request.user, slug)
    form = SecretCreateForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                secret = services.create_secret(
                    actor=request.user,
                    workspace=workspace,
                    key=form.cleaned_data["key"],
                    value=form.cleaned_data["value"],
                    tags=form.tag_names(),
                    expires_at=form.cleaned_data["expires_at"],
                    ip_address=client_ip(request),
                )
            except (ValidationError, errors.ConsoleError) as error:
                show_errors(form, error)
            else:
                messages.success(request, f"Secret {secret.key} added. Its value will not be shown again.")
                return redirect("secrets", slug=workspace.slug)
        # The page that reports the error never carries the value back to the browser.
        form.data = form.data.copy()
        form.data["value"] = ""
    filters = SecretFilterForm(request.GET)
    page, active_filters = None, {}
    if filters.is_valid():
        active_filters = {name: value for name, value in filters.cleaned_data.items() if value}
        secrets = selectors.secrets_visible_to(
            request.user,
            workspace,
            tag=active_filters.get("tag", ""),
            search=active_filters.get("q", ""),
            unread_days=active_filters.get("unread_days"),
        )
        page = selectors.paginate(secrets, request.GET.get("page"))
        page.object_list = selectors.with_same_value_keys(request.user, workspace, page.object_list)
    context = _developer_context(
        request,
        workspace,
        "secrets",
        form=form,
        lookup_form=ValueLookupForm(),
        page=page,
        filters=filters,
        filter_query=urlencode(active_filters),
        tags=selectors.tags_visible_to(request.user, workspace),
    )
    return render(request, "developer/secrets.html", context, status=400 if filters.errors else 200)


# Importing a .env file: paste or upload, preview, confirm.
#
# The confirm step carries the previewed file back to the server in a hidden field SEALED with
# crypto.seal_token (AES-GCM, bound to this user, this workspace and the time of the preview, and
# refused after 15 minutes), rather than keeping the pending import on the server: nothing holding
# values is written anywhere before the import itself (the session store is the database and the
# cache, outside the encryption of values), nothing is left to clean up when a preview is
# abandoned, and any app server can take the confirmation. The browser holds only ciphertext it
# cannot open or alter, and no page ever holds a value in clear.


def _import_page(
    request: HttpRequest, workspace: Any, form: DotenvImportForm, *, refusal: Sequence[str] = ()
) -> HttpResponse:
    if form.is_bound:
        # The page that reports a problem never carries the file back to the browser.
        form.data = form.data.copy()
        form.data["dotenv"] = ""
    context = _developer_context(request, workspace, "secrets", form=form, refusal=refusal)
    status = 400 if form.errors or refusal else 200
    return render(request, "developer/secrets_import.html", context, status=status)


@sensitive_variables()
def _preview_page(request: HttpRequest, workspace: Any, plan: services.DotenvImportPlan, text: str) -> HttpResponse:
    """The preview: each line's key and status, never a value; the Import button only when every
    line is new."""
    pending = (
        seal_pending_import(text=text, tag_names=plan.tag_names, user_id=request.user.pk, workspace_id=workspace.pk)
        if plan.importable
        else ""
    )
    counts = plan.counts
    status = 200 if plan.importable else 400 if counts[services.DOTENV_INVALID] else 409
    context = _developer_context(request, workspace, "secrets", plan=plan, counts=counts, pending=pending)
    return render(request, "developer/secrets_import_preview.html", context, status=status)


@console_view
@sensitive_post_parameters()
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def secrets_import(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the import form. POST: the preview of what importing the file would do."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.CREATE_SECRET, workspace)
    form = DotenvImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["dotenv"]
        try:
            plan = services.plan_dotenv_import(
                actor=request.user, workspace=workspace, text=text, tags=form.tag_names()
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            return _preview_page(request, workspace, plan, text)
    return _import_page(request, workspace, form)


@console_view
@sensitive_post_parameters()
@sensitive_variables()
@require_POST
def secrets_import_confirm(request: HttpRequest, slug: str) -> HttpResponse:
    """Import the previewed file, all or nothing; a key taken since the preview shows it again."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.CREATE_SECRET, workspace)
    confirm = DotenvConfirmForm(request.POST, user_id=request.user.pk, workspace_id=workspace.pk)
    if not confirm.is_valid():
        return _import_page(request, workspace, DotenvImportForm(), refusal=confirm.errors.get("pending", []))
    text, tag_names = confirm.cleaned_data["pending"]
    try:
        imported = services.import_dotenv(
            actor=request.user, workspace=workspace, text=text, tags=tag_names, ip_address=client_ip(request)
        )
    except (errors.DotenvInvalid, errors.DotenvConflicts) as error:
        return _preview_page(request, workspace, error.plan, text)
    messages.success(request, f"Imported {len(imported)} secret{'' if len(imported) == 1 else 's'}.")
    return redirect("secrets", slug=workspace.slug)


@console_view
@require_GET
def secret_detail(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    secret = selectors.secret_for(request.user, workspace, key)
    return render(
        request, "developer/secret_detail.html", _secret_detail_context(request, workspace, secret, TagAddForm())
    )


def _secret_detail_context(request: HttpRequest, workspace: Any, secret: Any, tag_form: TagAddForm) -> dict[str, Any]:
    sees_everyone = permissions.can(request.user, Action.VIEW_SECRETS, workspace)
    access = selectors.effective_access(secret) if sees_everyone else None
    (secret,) = selectors.with_same_value_keys(request.user, workspace, [secret])
    return _developer_context(request, workspace, "secrets", secret=secret, tag_form=tag_form, access=access)


@sensitive_post_parameters()
@sensitive_variables()
@console_view
@require_http_methods(["GET", "POST"])
def value_lookup(request: HttpRequest, slug: str) -> HttpResponse:
    """ "Is this value stored anywhere in this workspace?" for its owners and admins."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.FIND_SECRETS_BY_VALUE, workspace)
    form = ValueLookupForm(request.POST or None)
    found = None
    if request.method == "POST" and form.is_valid():
        try:
            found = services.find_secrets_by_value(
                actor=request.user, workspace=workspace, value=form.cleaned_data["value"], ip_address=client_ip(request)
            )
        except ValidationError as error:
            show_errors(form, error)
    form = ValueLookupForm() if found is not None else form  # the value is never sent back
    context = _developer_context(request, workspace, "secrets", lookup_form=form, found=found)
    return render(request, "developer/value_lookup.html", context)


@console_view
@require_http_methods(["GET", "POST"])
def secret_delete(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """GET: the confirmation step. POST: delete."""
    workspace = selectors.workspace_for(request.user, slug)
    secret = selectors.secret_for(request.user, workspace, key)
    if request.method == "POST":
        services.delete_secret(actor=request.user, secret=secret, ip_address=client_ip(request))
        messages.success(request, f"Secret {secret.key} deleted. You can add it again with a new value.")
        return redirect("secrets", slug=workspace.slug)
    permissions.require_on_secret(request.user, Action.DELETE_SECRET, secret)
    workflows = selectors.workflows_using_key(workspace, secret.key)
    return render(
        request,
        "developer/secret_confirm_delete.html",
        _developer_context(request, workspace, "secrets", secret=secret, workflows=workflows),
    )


@console_view
@require_POST
def secret_tags_add(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    secret = selectors.secret_for(request.user, workspace, key)
    form = TagAddForm(request.POST)
    if form.is_valid():
        try:
            added = services.tag_secret(
                actor=request.user, secret=secret, tag_names=form.tag_names(), ip_address=client_ip(request)
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Tagged {secret.key}: {', '.join(added)}." if added else "Nothing new to add.")
            return redirect("secret-detail", slug=workspace.slug, key=secret.key)
    return render(
        request, "developer/secret_detail.html", _secret_detail_context(request, workspace, secret, form), status=400
    )


@console_view
@require_POST
def secret_tag_remove(request: HttpRequest, slug: str, key: str, tag: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    secret = selectors.secret_for(request.user, workspace, key)
    try:
        services.untag_secret(actor=request.user, secret=secret, tag_name=tag, ip_address=client_ip(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Removed tag {tag} from {secret.key}.")
    return redirect("secret-detail", slug=workspace.slug, key=secret.key)


# Access: tag grants


@console_view
@require_http_methods(["GET", "POST"])
def access_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Tags, the grants made on them, and the form to grant more."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_GRANTS, workspace)
    form = GrantForm(request.POST or None, initial={"tag": request.GET.get("tag", "")})
    if request.method == "POST" and form.is_valid():
        try:
            granted = services.grant_tag_permissions(
                actor=request.user,
                workspace=workspace,
                tag_name=form.cleaned_data["tag"],
                permission_names=form.cleaned_data["permissions"],
                ip_address=client_ip(request),
                **form.grantee_arguments(),
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            grantee = form.cleaned_data["grantee"]
            messages.success(request, f"Granted {', '.join(granted)} on tag {form.cleaned_data['tag']} to {grantee}.")
            return redirect("access", slug=workspace.slug)
    context = _developer_context(
        request,
        workspace,
        "access",
        form=form,
        tags=selectors.tags_visible_to(request.user, workspace),
        grants=selectors.grants_in(workspace),
    )
    return render(request, "developer/access.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
def grant_revoke(request: HttpRequest, slug: str, grant_id: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    services.revoke_tag_grant(actor=request.user, workspace=workspace, grant_id=grant_id, ip_address=client_ip(request))
    messages.success(request, "Grant revoked; the access it gave has ended.")
    return redirect("access", slug=workspace.slug)


@console_view
@require_POST
def tag_delete(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    found = selectors.tag_for(request.user, workspace, tag)
    services.delete_tag(actor=request.user, tag=found, ip_address=client_ip(request))
    messages.success(request, f"Tag {tag} deleted: it left its secrets, and its grants ended.")
    return redirect("access", slug=workspace.slug)


# Workflows and executions


def _launch_targets(user: Any) -> list[Any]:
    return [w for w in selectors.workspaces_for(user) if permissions.can_launch_in(user, w)]


@console_view
@require_http_methods(["GET", "POST"])
def workflows_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The workflows registered in this workspace, and the form to register one."""
    workspace = selectors.workspace_for(request.user, slug)
    form = WorkflowRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workflow = services.register_workflow(
                actor=request.user, workspace=workspace, ip_address=client_ip(request), **form.cleaned_data
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Workflow {workflow.reference} registered.")
            return redirect("workflows", slug=workspace.slug)
    targets = _launch_targets(request.user)
    context = _developer_context(
        request,
        workspace,
        "workflows",
        form=form,
        workflows=selectors.workflows_in(workspace),
        launch_form=LaunchForm(workspaces=targets, initial={"workspace": workspace.slug}) if targets else None,
    )
    return render(request, "developer/workflows.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
def workflow_launch(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Launch a workflow; the page shows the runner session once."""
    workflow = selectors.workflow_for(request.user, f"{slug}/{name}")
    form = LaunchForm(request.POST, workspaces=_launch_targets(request.user))
    if not form.is_valid():
        messages.error(request, "Choose a workspace you may launch executions in.")
        return redirect("workflows", slug=slug)
    target = selectors.workspace_for(request.user, form.cleaned_data["workspace"])
    execution, session_key = services.launch_execution(
        actor=request.user, workspace=target, workflow=workflow, ip_address=client_ip(request)
    )
    context = _developer_context(request, target, "executions", execution=execution, runner_session=session_key)
    return render(request, "developer/execution_launched.html", context, status=201)


@console_view
@require_POST
def workflow_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    workflow = selectors.workflow_for(request.user, f"{slug}/{name}")
    services.delete_workflow(actor=request.user, workflow=workflow, ip_address=client_ip(request))
    messages.success(request, f"Workflow {workflow.reference} deleted; its running executions ended.")
    return redirect("workflows", slug=slug)


@console_view
@require_GET
def executions_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    page = selectors.paginate(selectors.executions_in(workspace), request.GET.get("page"))
    return render(request, "developer/executions.html", _developer_context(request, workspace, "executions", page=page))


@console_view
@require_POST
def execution_finish(request: HttpRequest, execution_id: str) -> HttpResponse:
    execution = selectors.execution_for(request.user, execution_id)
    try:
        ended = services.finish_execution(actor=request.user, execution=execution, ip_address=client_ip(request))
    except errors.ExecutionNotRunning as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"Execution of {ended.workflow_reference} {ended.status}; its runner session has ended."
        )
    return redirect("executions", slug=execution.workspace.slug)


# Workspaces and members


@console_view
@require_http_methods(["GET", "POST"])
def workspace_new(request: HttpRequest) -> HttpResponse:
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.create_team_workspace(
                actor=request.user, ip_address=client_ip(request), **form.cleaned_data
            )
        except (ValidationError, errors.ConsoleError) as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Workspace {workspace.name} created; you are its owner.")
            return redirect("secrets", slug=workspace.slug)
    return render(request, "developer/workspace_new.html", {"form": form, "section": "new-workspace"})


@console_view
@require_http_methods(["GET", "POST"])
def workspace_settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The workspace's settings: how long runners may still read an expired secret."""
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.CONFIGURE_WORKSPACE, workspace)
    form = WorkspaceSettingsForm(
        request.POST or None, initial={"expired_secret_grace_days": workspace.expired_secret_grace_days}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.set_expired_secret_grace(
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
    context = _developer_context(request, workspace, "workspace-settings", form=form)
    return render(request, "developer/workspace_settings.html", context, status=400 if form.errors else 200)


@console_view
@require_http_methods(["GET", "POST"])
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    add_form = MemberAddForm(request.POST or None)
    if request.method == "POST":
        if add_form.is_valid():
            try:
                services.add_member(
                    actor=request.user, workspace=workspace, ip_address=client_ip(request), **add_form.cleaned_data
                )
            except (ValidationError, errors.ConsoleError) as error:
                show_errors(add_form, error)
            else:
                messages.success(request, f"Added {add_form.cleaned_data['username']}.")
                return redirect("members", slug=workspace.slug)
    context = _developer_context(
        request,
        workspace,
        "members",
        members=selectors.members_of(workspace),
        add_form=add_form,
        role_form=MemberRoleForm(),
    )
    return render(request, "developer/members.html", context, status=400 if add_form.errors else 200)


@console_view
@require_POST
def member_change(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    """Change a member's role, or remove them (`remove` in the form)."""
    workspace = selectors.workspace_for(request.user, slug)
    try:
        if "remove" in request.POST:
            services.remove_member(
                actor=request.user, workspace=workspace, username=username, ip_address=client_ip(request)
            )
            messages.success(request, f"Removed {username}.")
        else:
            form = MemberRoleForm(request.POST)
            if not form.is_valid():
                raise errors.InvalidOperation("Choose a valid role.")
            services.change_member_role(
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
        selectors.workspace_for(request.user, slug)
    except errors.WorkspaceNotFound:  # they removed themselves
        return redirect("developer-settings")
    return redirect("members", slug=workspace.slug)


# Activity: the audit log

# Rows fetched from the database at a time while an export streams.
EXPORT_FETCH_SIZE = 2000


def _activity_page(request: HttpRequest, workspace: Any, filters: AuditFilterForm) -> HttpResponse:
    """The Activity page: the filtered events, or the filters' errors (400) and no events."""
    if not filters.is_valid():
        context = _developer_context(request, workspace, "activity", filters=filters, page=None)
        return render(request, "developer/activity.html", context, status=400)
    events = selectors.audit_events_in(workspace, **filters.selector_arguments())
    context = _developer_context(
        request,
        workspace,
        "activity",
        filters=filters,
        page=selectors.paginate(events, request.GET.get("page")),
        filter_query=filters.query_string(),
        export_formats=list(EXPORT_FORMATS),
    )
    return render(request, "developer/activity.html", context)


@console_view
@require_GET
def activity_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.VIEW_AUDIT, workspace)
    return _activity_page(request, workspace, AuditFilterForm(request.GET))


@console_view
@require_GET
def activity_export(request: HttpRequest, slug: str, export_format: str) -> HttpResponse:
    """The filtered audit log as a file, streamed; the export is itself an audit event."""
    if export_format not in EXPORT_FORMATS:
        raise Http404(f"No export as {export_format!r}; choose one of: {', '.join(EXPORT_FORMATS)}.")
    workspace = selectors.workspace_for(request.user, slug)
    permissions.require(request.user, Action.VIEW_AUDIT, workspace)
    filters = AuditFilterForm(request.GET)
    if not filters.is_valid():
        return _activity_page(request, workspace, filters)
    services.record_audit_export(
        actor=request.user,
        workspace=workspace,
        export_format=export_format,
        filters=filters.active(),
        ip_address=client_ip(request),
    )
    events = selectors.audit_events_in(workspace, **filters.selector_arguments())
    content_type, write_chunks = EXPORT_FORMATS[export_format]
    response = StreamingHttpResponse(
        write_chunks(events.iterator(chunk_size=EXPORT_FETCH_SIZE)), content_type=content_type
    )
    filename = f"audit-{workspace.slug}-{timezone.localtime():%Y%m%d-%H%M%S}.{export_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# Health checks for load balancers


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answering; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """The process can reach its database and its cache: 200, else 503 naming what failed."""
    checks = selectors.dependency_checks()
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# Error pages


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api_request(request):
        return api.error_response(
            403,
            "csrf_failed",
            "CSRF check failed: send the X-CSRFToken header with the token from GET /api/v1/session/.",
        )
    return render(request, "403_csrf.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return api.not_found(request)
    return render(
        request, "404.html", {"message": str(exception) if isinstance(exception, Http404) else ""}, status=404
    )


RUNNER_SESSION_SCOPE_MESSAGE = (
    "A runner session may only read secrets (GET /api/v1/runner/secrets/<key>/, POST /api/v1/runner/resolve/) "
    "and see or finish its own execution; sign in as a user for everything else."
)


def runner_session_refused(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return api.error_response(403, "runner_session_scope", RUNNER_SESSION_SCOPE_MESSAGE)
    return render(request, "403.html", {"message": RUNNER_SESSION_SCOPE_MESSAGE}, status=403)


def sign_in_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """What django-axes answers, in place of the sign-in's own answer, while sign-in is locked."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    message = (
        f"Sign-in is locked for {minutes} minutes after {settings.AXES_FAILURE_LIMIT} failed attempts "
        "for this username or from this address."
    )
    if is_api_request(request):
        response = api.error_response(429, "too_many_sign_in_attempts", message)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return api.error_response(403, "permission_denied", "You do not have permission to do that.")
    return render(request, "403.html", {"message": str(exception or "")}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return api.error_response(400, "bad_request", "The request could not be understood.")
    return render(request, "400.html", status=400)


# What a database that is down, restarting or unreachable raises; not IntegrityError or the other
# DatabaseErrors that services expect and handle.
DATABASE_OUTAGE_ERRORS = (OperationalError, InterfaceError)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler for every exception nothing else caught, raised anywhere in a request: a
    view, admin, the login, or a middleware (loading the session or the user happens there).

    Django calls it while handling the exception, so `sys.exc_info()` is that exception. A lost
    database is a 503 that says so; anything else a 500.
    """
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_OUTAGE_ERRORS):
        return database_unavailable(request, error)
    if is_api_request(request):
        return api.error_response(500, "server_error", "The server failed to answer; nothing was changed.")
    # Without the request, as Django's own handler does: its context processors could fail again.
    return HttpResponse(loader.render_to_string("500.html"), status=500)


def database_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    """503 with a fixed message (the driver's text can name hosts and carry SQL parameters), and
    one log line naming the driver's error class, never its text."""
    unavailable = errors.DatabaseUnavailable()
    if is_api_request(request):
        response = api.console_error_response(unavailable)
    else:
        # Rendered without the request: its context processors would load the user, from the database.
        page = loader.render_to_string("503.html", {"message": unavailable.message})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(unavailable.retry_after_seconds)
    cause = error.__cause__ or error  # Django wraps the driver's error; its class names the condition
    sqlstate = getattr(cause, "sqlstate", None)
    # log_response marks the response as logged, so Django does not log it again with the
    # exception's text.
    log_response(
        "Database unavailable (%s%s): %s %s answered 503",
        type(cause).__name__,
        f", SQLSTATE {sqlstate}" if sqlstate else "",
        request.method,
        request.path,
        response=response,
        request=request,
        logger=logger,
    )
    return response
