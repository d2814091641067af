"""The API's exception handlers: every refusal answers the error envelope of `error_responses`,
with the status its kind of error has everywhere in the console."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as RequestValidationError

from secrets_app.crypto import DecryptionFailed
from secrets_app.error_responses import (
    console_error_response,
    error_response,
    invalid_input_response,
    not_signed_in_response,
    request_too_large_message,
    validation_error_response,
)
from secrets_app.errors import ConsoleError

# What a request's field errors say, by pydantic's error type; a rule of ours says its own message.
FIELD_ERROR_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "string_type": "Must be a string.",
    "list_type": "Must be a list of strings.",
    "bool_type": "Must be true or false.",
    "int_type": "Must be a whole number.",
    "dict_type": "Must be a JSON object.",
    "model_type": "Must be a JSON object.",
    "model_attributes_type": "Must be a JSON object.",
}
BODY_NOT_AN_OBJECT = "The request body must be a JSON object."


def _field_error(error: dict[str, Any]) -> tuple[str, str]:
    """(field, message) of one pydantic error of a request: the body's top-level field (or the
    query parameter) it is under, and what is wrong."""
    source, *where = error["loc"]
    if source == "body":
        where = where[1:]  # the name of the operation's body parameter
    field = str(where[0]) if where else "__all__"
    if error["type"] == "string_type" and len(where) > 1:
        return field, FIELD_ERROR_MESSAGES["list_type"]  # an item of a list of strings
    return field, FIELD_ERROR_MESSAGES.get(error["type"], error["msg"])


def request_validation_error(request: HttpRequest, error: RequestValidationError) -> HttpResponse:
    """400 `invalid_input` naming each field's problems; 413 `value_too_large` if a field is over
    its size limit; a body that is not a JSON object is said so."""
    fields: dict[str, list[str]] = {}
    too_large = ""
    for problem in error.errors:
        field, message = _field_error(problem)
        if field == "__all__" and problem["loc"][0] == "body":
            return error_response(400, "invalid_input", BODY_NOT_AN_OBJECT)
        fields.setdefault(field, []).append(message)
        if problem["type"] == "value_too_large" and not too_large:
            too_large = field
    if too_large:
        return error_response(413, "value_too_large", " ".join(fields[too_large]), fields=fields)
    return invalid_input_response(fields)


def _reraise(request: HttpRequest, error: Exception) -> HttpResponse:
    # Django's own handling answers it: `views.errors.server_error` (503 for a lost database, 500
    # otherwise), never a traceback, whatever DEBUG says.
    raise error


def install_error_handlers(api: NinjaAPI) -> None:
    api.add_exception_handler(ConsoleError, lambda request, error: console_error_response(error))
    api.add_exception_handler(DjangoValidationError, lambda request, error: validation_error_response(error))
    api.add_exception_handler(RequestValidationError, request_validation_error)
    api.add_exception_handler(AuthenticationError, lambda request, error: not_signed_in_response(request))
    api.add_exception_handler(
        RequestDataTooBig,
        lambda request, error: error_response(413, "request_too_large", request_too_large_message()),
    )
    api.add_exception_handler(
        DecryptionFailed,
        lambda request, error: error_response(
            500, "undecryptable", "The stored value could not be decrypted; nothing was returned."
        ),
    )
    api.add_exception_handler(Exception, _reraise)
