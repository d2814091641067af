"""The JSON API at /api/v1/, on django-ninja: one router per domain, the error handlers, the OpenAPI
document generated from the routers' declarations, and the URL patterns.

Two things differ from ninja's defaults, on purpose:

- CSRF is checked by Django's CsrfViewMiddleware on every unsafe request to every route, signing
  in included: ninja exempts its views and checks CSRF in cookie authentication only, which would
  leave the unauthenticated routes (sign-in) unchecked. The patterns here are not exempt.
- A method a route does not have answers 405 in the error envelope, with `Allow`; a path no route
  has answers 404 in the envelope, whatever DEBUG says (no HTML page, no redirect to add a slash).
"""

import functools
import json
from collections.abc import Callable
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import URLPattern, re_path
from django.utils.cache import patch_cache_control
from ninja import NinjaAPI, Schema
from ninja.operation import Operation
from ninja.renderers import JSONRenderer
from pydantic import ConfigDict

from secrets_app.api import approvals, grants, runner, runs, secrets, sessions, workspaces
from secrets_app.api.handlers import install_error_handlers
from secrets_app.api.responses import answers
from secrets_app.error_responses import error_response

PREFIX = "/api/v1"
OPENAPI_MAX_AGE = 60 * 60
# The order `Allow` lists methods in.
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


class StrictJSONRenderer(JSONRenderer):
    """Answers are strict JSON (RFC 8259): a number JSON cannot write is an error, never `NaN`."""

    json_dumps_params: ClassVar[dict[str, Any]] = {"allow_nan": False}


class ConsoleAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        """An operation is named by its function (`add_secret`), unless it gives its own id."""
        return operation.view_func.__name__


api = ConsoleAPI(
    title="Secrets Console API",
    version="1",
    description=(
        "Session-authenticated JSON API. Sign in with POST /api/v1/session/ (first GET it for a CSRF token); send "
        "the X-CSRFToken header on every unsafe method. Errors are always "
        '`{"error": {"code": ..., "message": ...}}`. Values are only ever returned by the runner endpoints.'
    ),
    openapi_url=None,
    docs_url=None,
    renderer=StrictJSONRenderer(),
    urls_namespace="api-v1",
)
install_error_handlers(api)
for domain in (sessions, workspaces, secrets, grants, runs, approvals, runner):
    api.add_router("", domain.router)


class OpenApiDocument(Schema):
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation, built once per process from the routers, as
    it is served (JSON: status codes as strings)."""
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix=PREFIX)))


@api.get(
    "/openapi.json",
    auth=None,
    url_name="api-openapi",
    response=answers({200: OpenApiDocument}),
    summary="This document",
)
def openapi_document(request: HttpRequest) -> HttpResponse:
    """Public, like the README that describes the same routes; it holds no secrets."""
    response = JsonResponse(document())
    patch_cache_control(response, public=True, max_age=OPENAPI_MAX_AGE)
    return response


def _as_console_route(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = [method for method in METHOD_ORDER if method in response["Allow"].split(", ")]
            response = error_response(
                405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}."
            )
            response["Allow"] = ", ".join(allowed)
        return response

    route.csrf_exempt = False  # functools.wraps copied ninja's exemption; Django's middleware checks CSRF here
    return route


def unknown_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    hint = "" if request.path.endswith("/") else " API paths end with a slash."
    return error_response(404, "not_found", f"No API endpoint at {request.path}.{hint}")


def urlpatterns() -> list[URLPattern]:
    """The API's URL patterns, to include under `api/v1/` with the namespace `api-v1`."""
    patterns, _, _ = api.urls
    # ninja's root pattern only names the API's root for reverse(); this API is never reversed.
    routes = [pattern for pattern in patterns if pattern.name != "api-root"]
    for pattern in routes:
        pattern.callback = _as_console_route(pattern.callback)
    return [*routes, re_path(r"^(?P<path>.*)$", unknown_endpoint, name="api-not-found")]
