"""Request bodies: JSON only, read before any field is validated.

`JsonBody(...)` marks an operation's body parameter, as ninja's `Body(...)` does, and reads it
strictly: another media type is 415 `unsupported_media_type` (checked before the body is read, so
a form post is never parsed as JSON), a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` 413
`request_too_large` (Django's RequestDataTooBig, answered by the API's handler), and an empty
body, or one that is not JSON as `strict_json` reads it (RFC 8259: no NaN or Infinity, finite
numbers, each member named once, at most 64 levels deep) 400 `malformed_json`.
"""

from typing import Any

from django.http import HttpRequest
from ninja.params.models import Body, BodyModel

from secrets_app import strict_json
from secrets_app.error_responses import BadRequest


def read_json_document(request: HttpRequest) -> Any:
    """The request's body as any JSON value, or BadRequest."""
    if request.content_type != "application/json":
        raise BadRequest(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
    body = request.body
    if not body:
        raise BadRequest(400, "malformed_json", "The request body is empty; send a JSON document.")
    try:
        return strict_json.loads(body)
    except strict_json.JsonRefused as refused:
        raise BadRequest(400, "malformed_json", f"The request body is not valid JSON: {refused}") from None


class JsonBodyModel(BodyModel):
    @classmethod
    def get_request_data(cls, request: HttpRequest, api: Any, path_params: dict[str, Any]) -> dict[str, Any]:
        document = read_json_document(request)
        name = getattr(cls, "__read_from_single_attr__", None)
        return {name: document} if name else document


class JsonBody(Body):
    """The operation's body parameter, read by `read_json_document`."""

    _model = JsonBodyModel

    @classmethod
    def _param_source(cls) -> str:
        return "body"
