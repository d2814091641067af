"""Developer Settings → Secrets → Import .env: paste or upload, preview, confirm.

The confirm step carries the previewed file back to the server in a hidden field SEALED with
crypto.seal_token (AES-GCM, bound to this user, this workspace and the time of the preview, and
refused after 15 minutes), rather than keeping the pending import on the server: nothing holding
values is written anywhere before the import itself (the session store is the database and the
cache, outside the encryption of values), nothing is left to clean up when a preview is
abandoned, and any app server can take the confirmation. The browser holds only ciphertext it
cannot open or alter, and no page ever holds a value in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from secrets_app import errors, permissions
from secrets_app.forms import DotenvConfirmForm, DotenvImportForm, seal_pending_import
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.imports import DOTENV_INVALID, DotenvImportPlan, import_dotenv, plan_dotenv_import
from secrets_app.views.base import console_view, developer_context, show_errors


def _import_page(
    request: HttpRequest, workspace: Any, form: DotenvImportForm, *, refusal: Sequence[str] = ()
) -> HttpResponse:
    if form.is_bound:
        # The page that reports a problem never carries the file back to the browser.
        form.data = form.data.copy()
        form.data["dotenv"] = ""
    context = developer_context(request, workspace, "secrets", form=form, refusal=refusal)
    status = 400 if form.errors or refusal else 200
    return render(request, "developer/secrets_import.html", context, status=status)


@sensitive_variables()
def _preview_page(request: HttpRequest, workspace: Any, plan: DotenvImportPlan, text: str) -> HttpResponse:
    """The preview: each line's key and status, never a value; the Import button only when every
    line is new."""
    pending = (
        seal_pending_import(text=text, tag_names=plan.tag_names, user_id=request.user.pk, workspace_id=workspace.pk)
        if plan.importable
        else ""
    )
    counts = plan.counts
    status = 200 if plan.importable else 400 if counts[DOTENV_INVALID] else 409
    context = developer_context(request, workspace, "secrets", plan=plan, counts=counts, pending=pending)
    return render(request, "developer/secrets_import_preview.html", context, status=status)


@console_view
@sensitive_post_parameters()
@sensitive_variables()
@require_http_methods(["GET", "POST"])
def secrets_import(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the import form. POST: the preview of what importing the file would do."""
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.CREATE_SECRET, workspace)
    form = DotenvImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["dotenv"]
        try:
            plan = plan_dotenv_import(actor=request.user, workspace=workspace, text=text, tags=form.tag_names())
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
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.CREATE_SECRET, workspace)
    confirm = DotenvConfirmForm(request.POST, user_id=request.user.pk, workspace_id=workspace.pk)
    if not confirm.is_valid():
        return _import_page(request, workspace, DotenvImportForm(), refusal=confirm.errors.get("pending", []))
    text, tag_names = confirm.cleaned_data["pending"]
    try:
        imported = import_dotenv(
            actor=request.user, workspace=workspace, text=text, tags=tag_names, ip_address=client_ip(request)
        )
    except (errors.DotenvInvalid, errors.DotenvConflicts) as error:
        return _preview_page(request, workspace, error.plan, text)
    messages.success(request, f"Imported {len(imported)} secret{'' if len(imported) == 1 else 's'}.")
    return redirect("secrets", slug=workspace.slug)
