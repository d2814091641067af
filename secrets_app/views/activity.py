"""Developer Settings → Activity: the workspace's audit log, filtered, and its export."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from secrets_app import permissions
from secrets_app.audit_exports import EXPORT_FORMATS
from secrets_app.forms import AuditFilterForm
from secrets_app.http import client_ip
from secrets_app.permissions import Action
from secrets_app.selectors.audit import audit_events_in
from secrets_app.selectors.pagination import paginate
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.audit import record_audit_export
from secrets_app.views.base import NotFoundPage, console_view, developer_context

# Rows fetched from the database at a time while an export streams.
EXPORT_FETCH_SIZE = 2000
# Events one export holds (about 17 MB of CSV): the server takes an answer whole before sending it
# (console/asgi.py), so each export's size is bounded; more is a form error asking for less.
EXPORT_MAX_EVENTS = 100_000


def _activity_page(request: HttpRequest, workspace: Any, filters: AuditFilterForm) -> HttpResponse:
    """The Activity page: the filtered events, or the filters' errors (400) and no events."""
    if not filters.is_valid():
        context = developer_context(request, workspace, "activity", filters=filters, page=None)
        return render(request, "developer/activity.html", context, status=400)
    events = audit_events_in(workspace, **filters.selector_arguments())
    context = developer_context(
        request,
        workspace,
        "activity",
        filters=filters,
        page=paginate(events, request.GET.get("page")),
        filter_query=filters.query_string(),
        export_filters=list(filters.active().items()),
        export_formats=list(EXPORT_FORMATS),
    )
    return render(request, "developer/activity.html", context)


@console_view
@require_GET
def activity_page(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.VIEW_AUDIT, workspace)
    return _activity_page(request, workspace, AuditFilterForm(request.GET))


@console_view
@require_POST
def activity_export(request: HttpRequest, slug: str, export_format: str) -> HttpResponse:
    """The filtered audit log as a file, streamed; the export is itself an audit event, so it is a
    POST (with the filters in the form): a link or an image elsewhere cannot write to the log."""
    if export_format not in EXPORT_FORMATS:
        raise NotFoundPage(f"No export as {export_format!r}; choose one of: {', '.join(EXPORT_FORMATS)}.")
    workspace = workspace_for(request.user, slug)
    permissions.require(request.user, Action.VIEW_AUDIT, workspace)
    filters = AuditFilterForm(request.POST)
    if filters.is_valid():
        events = audit_events_in(workspace, **filters.selector_arguments())
        count = events.count()
        if count > EXPORT_MAX_EVENTS:
            filters.add_error(
                None,
                f"This export would hold {count:,} events; one export holds at most {EXPORT_MAX_EVENTS:,}. Choose "
                "fewer days (from, to), an action or a user, and export each part.",
            )
    if not filters.is_valid():
        return _activity_page(request, workspace, filters)
    record_audit_export(
        actor=request.user,
        workspace=workspace,
        export_format=export_format,
        filters=filters.active(),
        ip_address=client_ip(request),
    )
    content_type, write_chunks = EXPORT_FORMATS[export_format]
    response = StreamingHttpResponse(
        write_chunks(events.iterator(chunk_size=EXPORT_FETCH_SIZE)), content_type=content_type
    )
    filename = f"audit-{workspace.slug}-{timezone.localtime():%Y%m%d-%H%M%S}.{export_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
