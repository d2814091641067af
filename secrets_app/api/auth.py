"""Who may call an operation: a signed-in session, a runner session, or the reader of a runner read.

All of them are Django sessions in the `sessionid` cookie. CSRF is not checked here: Django's
CsrfViewMiddleware checks every unsafe request to this API before it reaches an operation (the
API's views are not exempt: see `secrets_app.api.v1.urlpatterns`). Which routes a runner session
may call at all is decided by `permissions.runner_session_may_call`, in RunnerSessionScopeMiddleware.
"""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie

from secrets_app.http import client_ip
from secrets_app.selectors.runner import RunnerContext, runner_context
from secrets_app.selectors.runs import execution_by_runner_session
from secrets_app.services.runner import refuse_ended_runner_session


class SessionAuth(APIKeyCookie):
    """A signed-in user's session: from POST /api/v1/session/ (or the browser's sign-in)."""

    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = (
        "A signed-in user's session, from POST /api/v1/session/. Unsafe methods also need the CSRF cookie "
        "and the X-CSRFToken header with the csrf_token from GET /api/v1/session/ (it rotates at sign-in)."
    )

    def __init__(self) -> None:
        super().__init__(csrf=False)  # checked by Django's middleware, for every route (see above)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return request.user if request.user.is_authenticated else None


class RunnerSessionAuth(SessionAuth):
    """An execution's runner session, on the few operations it may call besides the runner read."""

    openapi_description = (
        "An execution's runner session (`runner_session` from launching it): the runner endpoints and its own "
        "execution only."
    )


class RunnerReaderAuth(SessionAuth):
    """The reader of a runner read: a runner session (its workflow's home workspace) or a signed-in
    user's session (a local run: their personal workspace); authenticates as the `RunnerContext`.
    The session of an execution that has ended is refused here, before any work for the keys it
    asks for (`services.runner.refuse_ended_runner_session`)."""

    openapi_description = (
        "An execution's runner session (reads from its workflow's home workspace), or a signed-in user's "
        "session (a local run: reads from their personal workspace)."
    )

    def authenticate(self, request: HttpRequest, key: str | None) -> RunnerContext | None:
        if request.user.is_authenticated:
            return runner_context(request.session, request.user)
        ended = execution_by_runner_session(key or "")
        if ended is not None:
            asked_for = request.resolver_match.kwargs.get("key", "") if request.resolver_match else ""
            raise refuse_ended_runner_session(execution=ended, key=asked_for, ip_address=client_ip(request))
        return None


session_auth = SessionAuth()
runner_session_auth = RunnerSessionAuth()
runner_reader_auth = RunnerReaderAuth()
