"""Response policies that apply to every page and API answer."""

import time
from collections.abc import Callable
from typing import Any

from allauth.core.exceptions import ReauthenticationRequired as AllauthReauthenticationRequired
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, cc_delim_re

from secrets_app import errors, permissions
from secrets_app.error_responses import console_error_response
from secrets_app.http import is_api_request
from secrets_app.models import Workspace
from secrets_app.selectors.runner import RUNNER_EXECUTION
from secrets_app.services.sessions import record_session_seen
from secrets_app.views.errors import console_error_page, request_too_large, runner_session_refused


class NoStoreMiddleware:
    """Nothing this application renders may be kept by a browser or proxy cache.

    Static files never reach this middleware: WhiteNoise answers them earlier, with their
    own long-lived cache headers. A view whose answer is the same for everyone (the OpenAPI
    document) says so with `Cache-Control: public`, and keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _declared_public(response):
            add_never_cache_headers(response)
        return response


def _declared_public(response: HttpResponse) -> bool:
    return "public" in cc_delim_re.split(response.get("Cache-Control", "").lower())


class RequestSizeLimitMiddleware:
    """A request whose body is declared larger than DATA_UPLOAD_MAX_MEMORY_SIZE is refused with 413
    before a byte of it is read: a 30 MB file posted to a form is not received to be refused
    after. (Django's own check of that setting leaves out uploaded files.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return request_too_large(request)
        return self.get_response(request)


class FormErrorStatusMiddleware:
    """A form sent back with errors answers 400, on django-allauth's pages as on the console's own
    (which set it themselves): allauth's views answer 200 with the errors shown."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_template_response(self, request: HttpRequest, response: Any) -> Any:
        if request.method == "POST" and response.status_code == 200:
            forms = [value for value in (response.context_data or {}).values() if hasattr(value, "errors")]
            if any(getattr(form, "is_bound", False) and form.errors for form in forms):
                response.status_code = 400
        return response


class ConsoleErrorPagesMiddleware:
    """A refusal of the domain (`errors.ConsoleError`) that reaches no handler is the page of its
    status, with its message (`views.errors.console_error_page`): for every page, the admin and
    any view added later, never a 500. The API answers its own (`api.handlers`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, AllauthReauthenticationRequired):
            # allauth's own pages (two-factor, password) ask by the console's rule, and never keep
            # what was sent (a new password) to replay it.
            exception = errors.ReauthenticationRequired(minutes=settings.REAUTHENTICATION_MINUTES)
        if isinstance(exception, errors.ConsoleError) and not is_api_request(request):
            return console_error_page(request, exception)
        return None


class RunnerSessionScopeMiddleware:
    """Keep runner sessions on the runner endpoints (`permissions.runner_session_may_call`).

    A runner session authenticates as the user who launched the execution; without this, a
    leaked runner session would be that user's full session.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable, view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        execution_id = request.session.get(RUNNER_EXECUTION) if request.user.is_authenticated else None
        if execution_id is None:
            return None
        route = request.resolver_match.url_name if request.resolver_match else None
        if permissions.runner_session_may_call(execution_id, route, request.method, view_kwargs):
            return None
        return runner_session_refused(request)


class WorkspaceMfaPolicyMiddleware:
    """A workspace that requires two-factor refuses its secrets, workflows and executions to a
    member without a second factor (`permissions.mfa_policy_refuses` on `MFA_POLICY_ROUTES`): a
    page saying how to add one, or `403 mfa_required_by_workspace`. Workspaces the caller cannot
    see are left to the view (its 404)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable, view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        route = request.resolver_match.url_name if request.resolver_match else None
        if route not in permissions.MFA_POLICY_ROUTES or not request.user.is_authenticated:
            return None
        # Whoever can see the workspace (a member, a tag grantee, a superuser) is held to its policy.
        visible = Workspace.objects.filter(permissions.visible_workspaces_filter(request.user))
        workspace = visible.filter(slug=view_kwargs.get("slug"), require_mfa=True).first()
        if workspace is None or not permissions.mfa_policy_refuses(request.user, workspace):
            return None
        error = errors.MfaRequiredByWorkspace()
        return console_error_response(error) if is_api_request(request) else console_error_page(request, error)


class SessionActivityMiddleware:
    """Note when each signed-in session was last used (Account Settings → Sessions), without a
    database write per request: each process writes a session's `last_seen_at` at most once every
    `INTERVAL_SECONDS`, so the time shown is right to within that interval."""

    INTERVAL_SECONDS = 300
    # Past this many remembered sessions, start afresh (memory stays bounded; each costs one write).
    REMEMBERED_MAX = 10_000

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._next_write: dict[str, float] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # After the view: a sign-in has its new key by now, a sign-out has none.
        session_key = request.session.session_key
        now = time.monotonic()
        if session_key and self._next_write.get(session_key, 0.0) <= now and request.user.is_authenticated:
            record_session_seen(session_key=session_key)
            if len(self._next_write) >= self.REMEMBERED_MAX:
                self._next_write.clear()
            self._next_write[session_key] = now + self.INTERVAL_SECONDS
        return response
