"""The API's field types, each declared once from the validators' own rule.

A request field is checked by the same function the services apply (so its message is the same
wherever the rule is broken), and the OpenAPI document shows the rule's pattern and lengths from
the same constants. Path parameters only document their rule: a malformed key or tag names
nothing, so it is answered 404 like any other unknown name.
"""

import datetime
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError
from django.utils import timezone
from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from secrets_app.models import Execution, Workspace
from secrets_app.strict_json import LONE_SURROGATE, NUL, text_problem
from secrets_app.validators import (
    EXPIRED_SECRET_GRACE_MAX_DAYS,
    SECRET_KEY_MAX_LENGTH,
    SECRET_KEY_PATTERN,
    SECRET_MAX_TAGS,
    SLUG_PATTERN,
    TAG_MAX_LENGTH,
    TAG_PATTERN,
    UNREAD_DAYS_MAX,
    WORKFLOW_NAME_MAX_LENGTH,
    WORKFLOW_NAME_PATTERN,
    parse_secret_expiry,
    parse_unread_days,
    validate_expired_secret_grace_days,
    validate_secret_expiry,
    validate_secret_key,
    validate_secret_value,
    validate_tag_count,
    validate_tag_name,
    validate_workflow_name,
)

# No text the console keeps or looks up may hold what it cannot store (`strict_json.text_problem`).
NUL_REFUSED = "Must not contain NUL characters; encode binary data (e.g. base64)."
UNSTORABLE_TEXT = {
    NUL: NUL_REFUSED,
    LONE_SURROGATE: "Must be Unicode text: it holds a lone surrogate (\\ud800-\\udfff).",
}
NO_NUL_PATTERN = "^[^\\u0000]*$"


def full_match(pattern: re.Pattern[str]) -> str:
    """A Python pattern as the anchored pattern JSON Schema expects."""
    return f"^(?:{pattern.pattern})$"


def _storable(text: str) -> str:
    problem = text_problem(text)
    if problem:
        raise PydanticCustomError(problem, UNSTORABLE_TEXT[problem])
    return text


def rule(check: Callable[[Any], None]) -> AfterValidator:
    """A validator of ours as a pydantic one: its ValidationError becomes the field's error, with
    its code as the error type (so `value_too_large` stays a 413) and its message unchanged."""

    def validate(value: Any) -> Any:
        _as_field_error(check, value)
        return value

    return AfterValidator(validate)


def parsed(parse: Callable[[Any], Any]) -> AfterValidator:
    """A parser of ours as a pydantic validator: the field's value is what `parse` answers, and
    its ValidationError is the field's error, as in `rule`."""
    return AfterValidator(lambda value: _as_field_error(parse, value))


def _as_field_error(function: Callable[[Any], Any], value: Any) -> Any:
    try:
        return function(value)
    except ValidationError as error:
        raise PydanticCustomError(error.code or "invalid", "{message}", {"message": " ".join(error.messages)}) from None


def _string(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", **schema})


# Any text that can be stored: no NUL, no lone surrogate.
Text = Annotated[StrictStr, AfterValidator(_storable), _string(pattern=NO_NUL_PATTERN)]

SECRET_KEY_SCHEMA = {"pattern": full_match(SECRET_KEY_PATTERN), "maxLength": SECRET_KEY_MAX_LENGTH}
TAG_SCHEMA = {"pattern": full_match(TAG_PATTERN), "maxLength": TAG_MAX_LENGTH}
WORKFLOW_NAME_SCHEMA = {"pattern": full_match(WORKFLOW_NAME_PATTERN), "maxLength": WORKFLOW_NAME_MAX_LENGTH}
SLUG_MAX_LENGTH = Workspace._meta.get_field("slug").max_length
SLUG_SCHEMA = {"pattern": full_match(SLUG_PATTERN), "maxLength": SLUG_MAX_LENGTH}
WORKSPACE_NAME_MAX_LENGTH = Workspace._meta.get_field("name").max_length

SecretKey = Annotated[Text, rule(validate_secret_key), _string(**SECRET_KEY_SCHEMA)]
SecretValue = Annotated[
    Text,
    rule(validate_secret_value),
    _string(
        pattern=NO_NUL_PATTERN,
        minLength=1,
        description="Unicode text without NUL, at most 64 KiB of UTF-8 (else 413 value_too_large).",
    ),
]
TagName = Annotated[Text, rule(validate_tag_name), _string(**TAG_SCHEMA)]
WorkflowName = Annotated[Text, rule(validate_workflow_name), _string(**WORKFLOW_NAME_SCHEMA)]


def _tag_list_length(names: Any) -> Any:
    # Counted before any item is checked, so that a long list costs nothing.
    if isinstance(names, list):
        _as_field_error(validate_tag_count, len(names))
    return names


# Tags given in one request: at most SECRET_MAX_TAGS.
TagNames = Annotated[list[TagName], BeforeValidator(_tag_list_length), Field(max_length=SECRET_MAX_TAGS)]


# Checked by the service, as the model's own fields (Workspace.full_clean), with Django's messages.
NewSlug = Annotated[Text, _string(**SLUG_SCHEMA)]
WorkspaceName = Annotated[Text, _string(pattern=NO_NUL_PATTERN, minLength=1, maxLength=WORKSPACE_NAME_MAX_LENGTH)]
GraceDays = Annotated[
    Any,
    rule(validate_expired_secret_grace_days),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 0,
            "maximum": EXPIRED_SECRET_GRACE_MAX_DAYS,
            "description": "Days after a secret's expiry during which runners may still read it.",
        }
    ),
]


def _expiry(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    expires_at = parse_secret_expiry(value)
    validate_secret_expiry(expires_at, now=timezone.now())
    return expires_at


# An optional expiry: null, or an ISO 8601 date (the midnight starting it) or date and time in the future.
Expiry = Annotated[
    Any,
    parsed(_expiry),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "ISO 8601 date or date-time in the future; set only at creation.",
        }
    ),
]

# Path parameters: the rule is shown, not enforced (a name that breaks it names nothing: 404).
PathSlug = Annotated[str, _string(**SLUG_SCHEMA)]
PathSecretKey = Annotated[str, _string(**SECRET_KEY_SCHEMA)]
PathTag = Annotated[str, _string(**TAG_SCHEMA)]
PathWorkflowName = Annotated[str, _string(**WORKFLOW_NAME_SCHEMA)]
GrantId = Annotated[str, _string(pattern=r"^(?:user|group)-[0-9]+$")]
PathUUID = Annotated[str, _string(format="uuid")]

# A workflow as `<home-workspace-slug>/<name>`; one that breaks the form names no workflow (404).
WorkflowReference = Annotated[
    Text,
    _string(
        pattern=rf"^[-a-zA-Z0-9_]+/(?:{WORKFLOW_NAME_PATTERN.pattern})$",
        description="`<home-workspace-slug>/<workflow-name>`.",
    ),
]
DateTime = Annotated[str, _string(format="date-time")]
UUIDText = Annotated[str, _string(format="uuid")]


# Query parameters. A page outside 1..pages is 404 page_not_found (selectors.pagination).
PageNumber = Annotated[str | None, WithJsonSchema({"type": "integer", "minimum": 1, "description": "From 1."})]


def _unread_days(text: str | None) -> int | None:
    return parse_unread_days(text) if text else None


UnreadDays = Annotated[
    str | None,
    parsed(_unread_days),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": UNREAD_DAYS_MAX,
            "description": "Only secrets no runner has read in this many days (never read included).",
        }
    ),
]


class Paged(Schema):
    """A page of a list: `count` rows in all, this is page `page` of `pages` (PAGE_SIZE rows a
    page; `?page=N`, from 1; a page outside 1..pages is 404 page_not_found)."""

    count: int = Field(ge=0, description="Rows in all.")
    page: int = Field(ge=1)
    pages: int = Field(ge=1)


# An execution's status as the API shows it (`Execution.display_status`).
ExecutionStatus = Literal[tuple([*Execution.Status.values, "expired", "waiting_for_approval"])]
