"""Signing in and out, and your sessions (browser, API, runner): list them, end one, end the others."""

import datetime
from typing import Any, Literal

from allauth.account.utils import has_verified_email
from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.debug import sensitive_variables
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from secrets_app.api.auth import session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, answers
from secrets_app.api.types import (
    DateTime,
    ExecutionStatus,
    Paged,
    PageNumber,
    PathUUID,
    Text,
    UUIDText,
    WorkflowReference,
)
from secrets_app.error_responses import error_response
from secrets_app.errors import MfaRequired
from secrets_app.http import client_ip
from secrets_app.identity import LOGIN_MAX_LENGTH, check_second_factor
from secrets_app.models import Execution, UserSession, Workspace
from secrets_app.permissions import has_second_factor
from secrets_app.reauthentication import last_authenticated_at, record_check
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields
from secrets_app.selectors.runner import RUNNER_EXECUTION
from secrets_app.selectors.sessions import session_for, sessions_of
from secrets_app.services.sessions import revoke_other_sessions, revoke_session

router = Router(tags=["sessions"])


class SignIn(Schema):
    """A username (or e-mail address) and password; and, for an account with two-factor
    authentication, a current TOTP code or an unused recovery code."""

    model_config = ConfigDict(extra="forbid", strict=True)

    username: Text
    password: Text
    code: Text | None = None


class Reauthenticate(Schema):
    """Your password, or a TOTP or recovery code: exactly one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    password: Text | None = None
    code: Text | None = None


class Reauthenticated(Schema):
    reauthenticated_until: DateTime


class User(Schema):
    username: str
    email: str
    personal_workspace: str | None


class RunnerSessionOut(Schema):
    """What a runner session is: its execution. Never anything of the user who launched it."""

    execution: UUIDText
    workflow: WorkflowReference
    workspace: str
    expires_at: DateTime


class Session(Schema):
    user: User | None = Field(description="The signed-in user; null for a runner session, and when signed out.")
    runner: RunnerSessionOut | None = Field(default=None, description="A runner session's execution.")
    csrf_token: str


class SessionExecution(Schema):
    id: UUIDText
    workflow: WorkflowReference
    workspace: str
    status: ExecutionStatus


class UserSessionOut(Schema):
    """One of your sessions. Never its session key: sessions are named by `id`."""

    id: UUIDText
    kind: Literal[tuple(UserSession.Kind.values)]
    current: bool
    created_at: DateTime
    last_seen_at: DateTime | None
    expires_at: DateTime
    ip_address: str | None
    user_agent: str
    device: str
    execution: SessionExecution | None


class UserSessionList(Paged):
    sessions: list[UserSessionOut] = Field(max_length=PAGE_SIZE)


class EndedCounts(Schema):
    browser: int = Field(ge=0)
    api: int = Field(ge=0)
    runner: int = Field(ge=0)


class SessionsEnded(Schema):
    ended: EndedCounts


def anonymous_place(execution: Execution) -> dict[str, str]:
    """Where a run is, as its runner may learn it: a personal workspace's slug and references are
    made from its owner's username, so they read `(personal)` instead."""
    if execution.workspace.is_personal:
        return {"workflow": f"(personal)/{execution.workflow_reference.split('/', 1)[1]}", "workspace": "(personal)"}
    return {"workflow": execution.workflow_reference, "workspace": execution.workspace.slug}


def user_json(user: Any) -> dict[str, Any] | None:
    if not user.is_authenticated:
        return None
    personal = Workspace.objects.filter(personal_owner=user).values_list("slug", flat=True).first()
    return {"username": user.get_username(), "email": user.email, "personal_workspace": personal}


def session_json(user_session: UserSession) -> dict[str, Any]:
    execution = user_session.execution
    return {
        "id": str(user_session.pk),
        "kind": user_session.kind,
        "current": user_session.is_current,
        "created_at": user_session.created_at.isoformat(),
        "last_seen_at": user_session.last_seen_at.isoformat() if user_session.last_seen_at else None,
        "expires_at": user_session.expires_at.isoformat(),
        "ip_address": user_session.ip_address,
        "user_agent": user_session.user_agent,
        "device": user_session.device,
        "execution": {
            "id": str(execution.id),
            "workflow": execution.workflow_reference,
            "workspace": execution.workspace.slug,
            "status": execution.display_status,
        }
        if execution
        else None,
    }


@router.get(
    "/session/",
    auth=None,
    url_name="api-session",
    response=answers({200: Session}, 503),
    summary="Who is signed in, and a CSRF token (sets the csrftoken cookie)",
)
def who_am_i(request: HttpRequest) -> dict[str, Any]:
    execution_id = request.session.get(RUNNER_EXECUTION) if request.user.is_authenticated else None
    if execution_id is not None:
        # A runner session learns its execution, nothing of its launcher (name, e-mail, workspaces).
        execution = Execution.objects.select_related("workspace").get(pk=execution_id)
        runner = {
            "execution": str(execution.id),
            **anonymous_place(execution),
            "expires_at": execution.expires_at.isoformat(),
        }
        return {"user": None, "runner": runner, "csrf_token": get_token(request)}
    return {"user": user_json(request.user), "runner": None, "csrf_token": get_token(request)}


@router.post(
    "/session/",
    auth=None,
    url_name="api-session",
    response=answers({200: Session}, 401, 403, 429, 503, *JSON_BODY),
    summary="Sign in; answers the new CSRF token (it rotates at sign-in)",
)
@sensitive_variables()
def sign_in(request: HttpRequest, credentials: SignIn = JsonBody(...)) -> Any:
    if len(credentials.username) > LOGIN_MAX_LENGTH:
        # No account has such a name; it is never sent to the database.
        return error_response(401, "invalid_credentials", "Wrong username or password.")
    user = authenticate(request, username=credentials.username, password=credentials.password)
    if user is None:
        return error_response(401, "invalid_credentials", "Wrong username or password.")
    if settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory" and not has_verified_email(user):
        return error_response(403, "email_unverified", "Confirm your e-mail address first (the link in its mail).")
    if settings.SSO_ONLY and not user.is_superuser:
        return error_response(
            403, "sso_only", "Sign in with single sign-on in a browser: passwords are for administrators."
        )
    if has_second_factor(user):
        if not credentials.code:
            raise MfaRequired()
        if not check_second_factor(request, user, credentials.code):
            return error_response(401, "invalid_code", "Wrong or used code.", field="code")
    login(request, user)
    record_check(request, user, method="password")
    if credentials.code:
        # Recorded again after login(), which starts the session anew.
        record_check(request, user, method="mfa")
    # login() rotated the CSRF token; the new one is what the caller must send from now on.
    return {"user": user_json(user), "csrf_token": get_token(request)}


@router.post(
    "/session/reauthenticate/",
    auth=session_auth,
    url_name="api-session-reauthenticate",
    response=answers({200: Reauthenticated}, *SIGNED_IN, 400, 429, *JSON_BODY),
    summary="Confirm it's you (password, or a TOTP or recovery code) before a sensitive action",
)
@sensitive_variables()
def reauthenticate(request: HttpRequest, proof: Reauthenticate = JsonBody(...)) -> Any:
    if (proof.password is None) == (proof.code is None):
        return error_response(400, "invalid_input", 'Send exactly one of "password" and "code".')
    user = request.user
    if proof.password is not None:
        if authenticate(request, username=user.get_username(), password=proof.password) is None:
            return error_response(401, "invalid_credentials", "Wrong password.", field="password")
        record_check(request, user, method="password", reauthenticated=True)
    elif not has_second_factor(user) or not check_second_factor(request, user, proof.code, reauthenticated=True):
        return error_response(401, "invalid_code", "Wrong or used code.", field="code")
    until = last_authenticated_at(request) + settings.ACCOUNT_REAUTHENTICATION_TIMEOUT
    return {"reauthenticated_until": datetime.datetime.fromtimestamp(until, tz=datetime.UTC).isoformat()}


@router.delete(
    "/session/", auth=None, url_name="api-session", response=answers({204: None}, 403, 503), summary="Sign out"
)
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse(status=204)


@router.get(
    "/sessions/",
    auth=session_auth,
    url_name="api-user-sessions",
    response=answers({200: UserSessionList}, *SIGNED_IN, 404),
    summary="Your live sessions (browser, API, runner), newest first, 50 a page",
)
def list_sessions(request: HttpRequest, page: PageNumber = None) -> dict[str, Any]:
    found = sessions_of(request.user, current_session_key=request.session.session_key, page=page)
    return {**page_fields(found), "sessions": [session_json(s) for s in found]}


@router.post(
    "/sessions/revoke-others/",
    auth=session_auth,
    url_name="api-user-sessions-revoke-others",
    response=answers({200: SessionsEnded}, *SIGNED_IN),
    summary="Sign out everywhere else: every session of yours but this one ends",
)
def end_other_sessions(request: HttpRequest) -> dict[str, Any]:
    ended = revoke_other_sessions(
        actor=request.user, current_session_key=request.session.session_key, ip_address=client_ip(request)
    )
    return {"ended": ended}


@router.get(
    "/sessions/{session_id}/",
    auth=session_auth,
    url_name="api-user-session",
    response=answers({200: UserSessionOut}, *SIGNED_IN, 404),
    summary="One of your sessions (never its key)",
)
def get_session(request: HttpRequest, session_id: PathUUID) -> dict[str, Any]:
    return session_json(session_for(request.user, session_id, current_session_key=request.session.session_key))


@router.delete(
    "/sessions/{session_id}/",
    auth=session_auth,
    url_name="api-user-session",
    response=answers({204: None}, *SIGNED_IN, 404),
    summary="End one of your sessions (a runner session's execution finishes; the current one signs you out)",
)
def end_session(request: HttpRequest, session_id: PathUUID) -> HttpResponse:
    found = session_for(request.user, session_id, current_session_key=request.session.session_key)
    revoke_session(actor=request.user, user_session=found, ip_address=client_ip(request))
    if found.is_current:
        logout(request)
    return HttpResponse(status=204)
