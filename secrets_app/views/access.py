"""Developer Settings → Access: tags, the grants made on them, granting and revoking."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from secrets_app import errors, permissions
from secrets_app.forms import GrantForm
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.grants import grants_in, tag_for, tags_visible_to
from secrets_app.selectors.pagination import paginate
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.approvals import set_tag_protected
from secrets_app.services.grants import delete_tag, grant_tag_permissions, revoke_tag_grant
from secrets_app.views.base import console_view, developer_context, show_errors


@console_view
@require_http_methods(["GET", "POST"])
@reauthentication_required
def access_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Tags and the grants made on them (each a page at a time: `tags_page`, `grants_page`), and
    the form to grant more."""
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.MANAGE_GRANTS, workspace)
    form = GrantForm(request.POST or None, initial={"tag": request.GET.get("tag", "")})
    if request.method == "POST" and form.is_valid():
        try:
            granted = grant_tag_permissions(
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
    tags = paginate(tags_visible_to(request.user, workspace), request.GET.get("tags_page"))
    grants = paginate(grants_in(workspace), request.GET.get("grants_page"))
    context = developer_context(
        request,
        workspace,
        "access",
        form=form,
        tags=tags,
        grants=grants,
        # Paging through one list keeps the other on its page.
        tags_query=f"tags_page={tags.number}" if tags.number > 1 else "",
        grants_query=f"grants_page={grants.number}" if grants.number > 1 else "",
    )
    return render(request, "developer/access.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
@reauthentication_required
def grant_revoke(request: HttpRequest, slug: str, grant_id: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    revoke_tag_grant(actor=request.user, workspace=workspace, grant_id=grant_id, ip_address=client_ip(request))
    messages.success(request, "Grant revoked; the access it gave has ended.")
    return redirect("access", slug=workspace.slug)


@console_view
@require_POST
@reauthentication_required
def tag_delete(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    found = tag_for(request.user, workspace, tag)
    delete_tag(actor=request.user, tag=found, ip_address=client_ip(request))
    messages.success(request, f"Tag {tag} deleted: it left its secrets, and its grants ended.")
    return redirect("access", slug=workspace.slug)


@console_view
@require_POST
@reauthentication_required
def tag_protect(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    """Protect a tag (runs read its secrets only once another owner or admin approves), or stop."""
    workspace = workspace_for(request.user, slug)
    protected = request.POST.get("protected") == "true"
    set_tag_protected(
        actor=request.user,
        tag=tag_for(request.user, workspace, tag),
        protected=protected,
        ip_address=client_ip(request),
    )
    if protected:
        messages.success(request, f"Tag {tag} is protected: runs read its secrets only once another admin approves.")
    else:
        messages.success(request, f"Tag {tag} is no longer protected.")
    return redirect("access", slug=workspace.slug)
