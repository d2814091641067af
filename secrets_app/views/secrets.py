"""Developer Settings → Secrets: the list and the add form, a secret's page, tags, deletion and
"is this value stored here?"."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from secrets_app import errors, permissions
from secrets_app.forms import SecretCreateForm, SecretFilterForm, TagAddForm, ValueLookupForm
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.grants import TAG_MENU_SIZE, effective_access, tags_visible_to
from secrets_app.selectors.pagination import capped, paginate
from secrets_app.selectors.runs import workflows_using_key
from secrets_app.selectors.secrets import secret_for, secrets_visible_to, with_same_value_keys
from secrets_app.selectors.workspaces import personal_workspace_of, workspace_for
from secrets_app.services.secrets import create_secret, delete_secret, find_secrets_by_value, tag_secret, untag_secret
from secrets_app.views.base import CURRENT_WORKSPACE_SESSION_KEY, console_view, developer_context, show_errors


@console_view
@require_GET
def developer_settings(request: HttpRequest) -> HttpResponse:
    """Open the workspace chosen in the switcher, else the last one used, else the personal one."""
    wanted = request.GET.get("workspace") or request.session.get(CURRENT_WORKSPACE_SESSION_KEY)
    if wanted:
        try:
            return redirect("secrets", slug=workspace_for(request.user, wanted).slug)
        except errors.WorkspaceNotFound:
            if request.GET.get("workspace"):
                raise
    return redirect("secrets", slug=personal_workspace_of(request.user).slug)


@console_view
@sensitive_post_parameters()
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def secrets_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The Secrets list and the add form."""
    workspace = workspace_for(request.user, slug)
    form = SecretCreateForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                secret = create_secret(
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
    tags = capped(tags_visible_to(request.user, workspace), TAG_MENU_SIZE)
    page, active_filters = None, {}
    if filters.is_valid():
        active_filters = {name: value for name, value in filters.cleaned_data.items() if value}
        secrets = secrets_visible_to(
            request.user,
            workspace,
            tag=active_filters.get("tag", ""),
            search=active_filters.get("q", ""),
            unread_days=active_filters.get("unread_days"),
        )
        page = paginate(secrets, request.GET.get("page"))
        page.object_list = with_same_value_keys(request.user, workspace, page.object_list)
    context = developer_context(
        request,
        workspace,
        "secrets",
        form=form,
        lookup_form=ValueLookupForm(),
        page=page,
        filters=filters,
        filter_query=urlencode(active_filters),
        tags=tags,
        tag_filter_listed=any(tag["name"] == active_filters.get("tag") for tag in tags),
    )
    return render(request, "developer/secrets.html", context, status=400 if filters.errors or form.errors else 200)


@console_view
@require_GET
def secret_detail(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    secret = secret_for(request.user, workspace, key)
    return render(
        request, "developer/secret_detail.html", _secret_detail_context(request, workspace, secret, TagAddForm())
    )


def _secret_detail_context(request: HttpRequest, workspace: Any, secret: Any, tag_form: TagAddForm) -> dict[str, Any]:
    sees_everyone = permissions.can(request.user, Action.VIEW_SECRETS, workspace)
    access = effective_access(secret) if sees_everyone else None
    (secret,) = with_same_value_keys(request.user, workspace, [secret])
    return developer_context(request, workspace, "secrets", secret=secret, tag_form=tag_form, access=access)


@sensitive_post_parameters()
@sensitive_variables()
@console_view
@require_http_methods(["GET", "POST"])
@reauthentication_required(methods=("GET", "POST"))
def value_lookup(request: HttpRequest, slug: str) -> HttpResponse:
    """ "Is this value stored anywhere in this workspace?" for its owners and admins."""
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.FIND_SECRETS_BY_VALUE, workspace)
    form = ValueLookupForm(request.POST or None)
    found, count, limited = None, 0, None
    if request.method == "POST" and form.is_valid():
        try:
            found, count = find_secrets_by_value(
                actor=request.user, workspace=workspace, value=form.cleaned_data["value"], ip_address=client_ip(request)
            )
        except ValidationError as error:
            show_errors(form, error)
        except errors.RateLimited as error:
            show_errors(form, error)
            limited = error
    form = ValueLookupForm() if found is not None else form  # the value is never sent back
    context = developer_context(request, workspace, "secrets", lookup_form=form, found=found, found_count=count)
    response = render(request, "developer/value_lookup.html", context, status=429 if limited else 200)
    if limited:
        response["Retry-After"] = str(limited.retry_after_seconds)
    return response


@console_view
@require_http_methods(["GET", "POST"])
def secret_delete(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """GET: the confirmation step. POST: delete."""
    workspace = workspace_for(request.user, slug)
    secret = secret_for(request.user, workspace, key)
    if request.method == "POST":
        delete_secret(actor=request.user, secret=secret, ip_address=client_ip(request))
        messages.success(request, f"Secret {secret.key} deleted. You can add it again with a new value.")
        return redirect("secrets", slug=workspace.slug)
    permissions.require_on_secret(request.user, Action.DELETE_SECRET, secret)
    workflows = workflows_using_key(workspace, secret.key)
    return render(
        request,
        "developer/secret_confirm_delete.html",
        developer_context(request, workspace, "secrets", secret=secret, workflows=workflows),
    )


@console_view
@require_POST
@reauthentication_required
def secret_tags_add(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    secret = secret_for(request.user, workspace, key)
    form = TagAddForm(request.POST)
    if form.is_valid():
        try:
            added = tag_secret(
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
@reauthentication_required
def secret_tag_remove(request: HttpRequest, slug: str, key: str, tag: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    secret = secret_for(request.user, workspace, key)
    try:
        untag_secret(actor=request.user, secret=secret, tag_name=tag, ip_address=client_ip(request))
    except errors.TagNotFound as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed tag {tag} from {secret.key}.")
    return redirect("secret-detail", slug=workspace.slug, key=secret.key)
