"""Request bodies: JSON only, read before any field is validated.

`JsonBody(...)` marks an operation's body parameter, as ninja's `Body(...)` does, and reads it
strictly: another media type is 415 `unsupported_media_type` (checked before the body is read, so
a form post is never parsed as JSON), a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` 413
`request_too_large` (Django's RequestDataTooBig, answered by the API's handler), and an empty
body, one that is not JSON or one nested more than JSON_MAX_DEPTH levels 400 `malformed_json`.
"""

import json
from typing import Any

from django.http import HttpRequest
from ninja.params.models import Body, BodyModel

from secrets_app.error_responses import BadRequest
from secrets_app.validators import JSON_MAX_DEPTH, json_depth_exceeds


def read_json_document(request: HttpRequest) -> Any:
    """The request's body as any JSON value, or BadRequest."""
    if request.content_type != "application/json":
        raise BadRequest(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
    try:
        document = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest(400, "malformed_json", "The request body is not valid JSON.") from None
    if json_depth_exceeds(document):
        raise BadRequest(400, "malformed_json", f"The JSON document is nested more than {JSON_MAX_DEPTH} levels deep.")
    return document


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
