"""The runner endpoints: read one value, or resolve a JSON template, with the forms of each value a
runner masks in its logs. The only answers of the console that hold a value."""

from typing import Annotated, Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.debug import sensitive_variables
from ninja import Router, Schema
from pydantic import Field, WithJsonSchema

from secrets_app.api.auth import runner_reader_auth, runner_session_auth, session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, answers
from secrets_app.api.types import PathSecretKey
from secrets_app.http import client_ip
from secrets_app.placeholders import Template, substitute
from secrets_app.redaction import redaction_forms
from secrets_app.services.runner import read_secrets_for_runner

router = Router(tags=["runner"])

REDACT_DESCRIPTION = (
    "The forms the value(s) may take in logs, longest first: mask each of them. At most 512 KiB of them (as JSON): "
    "each value, then its own forms, then its JSON leaves' forms."
)


class Ping(Schema):
    ok: bool


class RunnerSecret(Schema):
    key: str
    value: str
    redact: list[str] = Field(description=REDACT_DESCRIPTION)


class Resolved(Schema):
    document: Any = Field(description="The document sent, with each placeholder replaced by its value.")
    secrets: list[str]
    redact: list[str] = Field(description=REDACT_DESCRIPTION)


TemplateDocument = Annotated[
    Any,
    WithJsonSchema(
        {
            "description": "Any JSON document; each `${workflow.secrets.KEY}` in a string value is replaced.",
            "example": {"headers": {"Authorization": "Bearer ${workflow.secrets.API_KEY}"}},
        }
    ),
]


@router.get(
    "/runner/ping/",
    auth=[session_auth, runner_session_auth],
    url_name="api-runner-ping",
    response=answers({200: Ping}, *SIGNED_IN),
    summary="Does this session still work? Reads nothing",
)
def ping(request: HttpRequest) -> dict[str, Any]:
    return {"ok": True}


@router.get(
    "/runner/secrets/{key}/",
    auth=runner_reader_auth,
    url_name="api-runner-secret",
    response=answers({200: RunnerSecret}, *SIGNED_IN, 404, 500),
    summary="A runner reads one value (a runner session: from its workflow's home; a user's session: from "
    "their personal workspace)",
)
@sensitive_variables()
def read_secret(request: HttpRequest, key: PathSecretKey) -> JsonResponse:
    values = read_secrets_for_runner(context=request.auth, keys=[key], ip_address=client_ip(request))
    # Answered as built, not validated again against RunnerSecret: this is the hot path.
    return JsonResponse({"key": key, "value": values[key], "redact": redaction_forms(values[key])})


@router.post(
    "/runner/resolve/",
    auth=runner_reader_auth,
    url_name="api-runner-resolve",
    response=answers({200: Resolved}, *SIGNED_IN, *JSON_BODY, 404, 500),
    summary="A runner sends any JSON document and gets it back with each ${workflow.secrets.KEY} replaced, all "
    "or nothing",
)
@sensitive_variables()
def resolve(request: HttpRequest, template: TemplateDocument = JsonBody(...)) -> dict[str, Any]:
    planned = Template.of(template)
    names = planned.names
    values = read_secrets_for_runner(context=request.auth, keys=names, ip_address=client_ip(request), template=planned)
    return {"document": substitute(template, values), "secrets": names, "redact": redaction_forms(*values.values())}
