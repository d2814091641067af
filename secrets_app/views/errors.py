"""Error answers for every request: Django's handlers (400, 403, 404, 500), the CSRF failure, the
sign-in lockout and the runner-session refusal. A page for the browser, the JSON error envelope
under /api/."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import get_adapter as account_adapter
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.log import log_response

from secrets_app import errors
from secrets_app.error_responses import (
    console_error_response,
    error_response,
    not_found_response,
    request_too_large_message,
    status_of,
)
from secrets_app.http import is_api_request
from secrets_app.views.base import ForbiddenPage, NotFoundPage

logger = logging.getLogger(__name__)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api_request(request):
        return error_response(
            403,
            "csrf_failed",
            "CSRF check failed: send the X-CSRFToken header with the token from GET /api/v1/session/.",
        )
    return render(request, "403_csrf.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return not_found_response(request)
    message = str(exception) if isinstance(exception, NotFoundPage) else ""
    return render(request, "404.html", {"message": message}, status=404)


RUNNER_SESSION_SCOPE_MESSAGE = (
    "A runner session may only read secrets (GET /api/v1/runner/secrets/<key>/, POST /api/v1/runner/resolve/) "
    "and see or finish its own execution; sign in as a user for everything else."
)


def confirm_identity(request: HttpRequest) -> HttpResponse:
    """The "confirm it's you" page (django-allauth's), then back to the page the user was on: the
    form they sent is not kept nor replayed (see `reauthentication.require_recent_authentication`)."""
    back = request.get_full_path() if request.method in ("GET", "HEAD") else _same_site_referer(request)
    query = urlencode({"next": back})
    methods = account_adapter().get_reauthentication_methods(request.user)
    if not methods:
        # Signed in by single sign-on, without a password or a second factor: sign in again.
        logout(request)
        return redirect(f"{reverse('account_login')}?{query}")
    if request.method not in ("GET", "HEAD"):
        messages.info(request, "Confirm it's you, then send the form again.")
    return redirect(f"{methods[0]['url']}?{query}")


def _same_site_referer(request: HttpRequest) -> str:
    """The page a form was sent from (its path), if it is one of the console's; else the home page."""
    referer = request.META.get("HTTP_REFERER", "")
    if url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse("home")


def console_error_page(request: HttpRequest, error: errors.ConsoleError) -> HttpResponse:
    """The page of a domain refusal: 404 and 403 as Django's own, any other with its status and
    message (and `Retry-After` for a rate limit)."""
    if isinstance(error, errors.ReauthenticationRequired):
        return confirm_identity(request)
    if isinstance(error, errors.NotFound):
        return page_not_found(request, NotFoundPage(error.message))
    if isinstance(error, errors.MfaRequiredByWorkspace):
        context = {"message": error.message, "next_step": (reverse("mfa_index"), "Add a second factor")}
        return render(request, "403.html", context, status=403)
    if isinstance(error, errors.AccessDenied):
        return permission_denied(request, ForbiddenPage(error.message))
    response = render(request, "refused.html", {"message": error.message}, status=status_of(error))
    if isinstance(error, errors.RateLimited):
        response["Retry-After"] = str(error.retry_after_seconds)
    return response


def request_too_large(request: HttpRequest) -> HttpResponse:
    message = request_too_large_message()
    if is_api_request(request):
        return error_response(413, "request_too_large", message)
    return render(request, "413.html", {"message": message}, status=413)


def runner_session_refused(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return error_response(403, "runner_session_scope", RUNNER_SESSION_SCOPE_MESSAGE)
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
        response = error_response(429, "too_many_sign_in_attempts", message)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def too_many_requests(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """django-allauth's rate limits (its handler429)."""
    message = "Too many attempts in a short time: wait a minute and try again."
    if is_api_request(request):
        response = error_response(429, "too_many_requests", message)
    else:
        response = render(request, "refused.html", {"title": "Too many attempts", "message": message}, status=429)
    response["Retry-After"] = "60"
    return response


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return error_response(403, "permission_denied", "You do not have permission to do that.")
    message = str(exception) if isinstance(exception, ForbiddenPage) else ""
    return render(request, "403.html", {"message": message}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return error_response(400, "bad_request", "The request could not be understood.")
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
        return error_response(500, "server_error", "The server failed to answer; nothing was changed.")
    # Without the request, as Django's own handler does: its context processors could fail again.
    return HttpResponse(loader.render_to_string("500.html"), status=500)


def database_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    """503 with a fixed message (the driver's text can name hosts and carry SQL parameters), and
    one log line naming the driver's error class, never its text."""
    unavailable = errors.DatabaseUnavailable()
    if is_api_request(request):
        response = console_error_response(unavailable)
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


def malformed_input_is_400(view: Callable) -> Callable:
    """For a view of a library that parses what the browser sends (a security key's answer) and
    raises on what it cannot read: a 400 page instead of a 500."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            logger.warning("Unreadable input to %s", request.path)
            message = "The security key's answer could not be read. Try again."
            if is_api_request(request):
                return error_response(400, "invalid_input", message)
            return render(request, "refused.html", {"message": message}, status=400)

    return wrapper
