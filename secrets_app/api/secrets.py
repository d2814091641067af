"""Secrets: their metadata (never a value), adding, deleting, tagging, a .env import, and "which
keys hold this value?". There is no update: secrets are immutable."""

import datetime
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_variables
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field, StrictBool

from secrets_app.api.auth import session_auth
from secrets_app.api.parsing import JsonBody
from secrets_app.api.responses import JSON_BODY, SIGNED_IN, ImportEntry, answers
from secrets_app.api.types import (
    DateTime,
    Expiry,
    Paged,
    PageNumber,
    PathSecretKey,
    PathSlug,
    PathTag,
    SecretKey,
    SecretValue,
    TagNames,
    Text,
    UnreadDays,
    UUIDText,
)
from secrets_app.error_responses import error_response
from secrets_app.errors import SecretImmutable
from secrets_app.http import client_ip
from secrets_app.models import ExpiryState, Secret, Workspace
from secrets_app.reauthentication import reauthentication_required
from secrets_app.selectors.pagination import PAGE_SIZE, page_fields, paginate
from secrets_app.selectors.secrets import (
    SAME_VALUE_LISTED,
    VALUE_LOOKUP_LISTED,
    secret_for,
    secrets_visible_to,
    with_same_value_keys,
)
from secrets_app.selectors.workspaces import workspace_for
from secrets_app.services.imports import import_dotenv, plan_dotenv_import
from secrets_app.services.secrets import create_secret, delete_secret, find_secrets_by_value, tag_secret, untag_secret

router = Router(tags=["secrets"], auth=session_auth)

SECRETS = "/workspaces/{slug:slug}/secrets/"
SECRET = "/workspaces/{slug:slug}/secrets/{key}/"
# Declared before SECRET, whose key may be "import": see `secret_named_import`.
IMPORT = "/workspaces/{slug:slug}/secrets/import/"


class NewSecret(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: SecretKey
    value: SecretValue
    tags: TagNames = []
    expires_at: Expiry = None


class SecretTags(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    tags: Annotated[TagNames, Field(min_length=1)]


class DotenvImport(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    dotenv: Text = Field(description="The .env file's text: at most 256 KiB and 2,000 lines.")
    tags: TagNames = []
    dry_run: StrictBool = Field(default=False, description="Preview only: each line's status, nothing written.")


class ValueToLookUp(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: SecretValue


class SecretOut(Schema):
    """A secret's metadata. There is deliberately no way to put its value here."""

    id: UUIDText
    key: str
    workspace: str
    tags: list[str]
    created_by: str | None
    created_at: DateTime
    expires_at: DateTime | None
    expiry: Literal[tuple(state.value for state in ExpiryState)]
    last_read_at: DateTime | None
    last_read_by_workflow: str | None
    last_read_by_user: str | None
    last_read_execution: UUIDText | None
    reads_last_30_days: int = Field(ge=0)
    same_value_as: list[str] = Field(
        max_length=SAME_VALUE_LISTED,
        description=f"The first {SAME_VALUE_LISTED} keys (by key) of the other secrets here that you may see "
        "and that hold the same value.",
    )
    same_value_count: int = Field(ge=0, description="How many other secrets here (that you may see) hold it.")


class SecretPage(Paged):
    workspace: str
    secrets: list[SecretOut] = Field(max_length=PAGE_SIZE)


class ImportPreview(Schema):
    entries: list[ImportEntry]
    importable: bool


class Imported(Schema):
    imported: list[str]


class ValueLookup(Schema):
    workspace: str
    keys: list[str] = Field(
        max_length=VALUE_LOOKUP_LISTED, description=f"The first {VALUE_LOOKUP_LISTED} keys (by key) holding it."
    )
    count: int = Field(ge=0, description="How many secrets here hold it.")


def secret_json(secret: Secret) -> dict[str, Any]:
    return {
        "id": str(secret.pk),
        "key": secret.key,
        "workspace": secret.workspace.slug,
        "tags": sorted(tag.name for tag in secret.tags.all()),
        "created_by": secret.created_by.get_username() if secret.created_by else None,
        "created_at": secret.created_at.isoformat(),
        "expires_at": secret.expires_at.isoformat() if secret.expires_at else None,
        "expiry": secret.expiry.state.value,
        "last_read_at": secret.last_read_at.isoformat() if secret.last_read_at else None,
        "last_read_by_workflow": secret.last_read_workflow or None,
        "last_read_by_user": secret.last_read_reader or None,
        "last_read_execution": str(secret.last_read_execution) if secret.last_read_execution else None,
        "reads_last_30_days": secret.recent_reads,
        "same_value_as": secret.same_value_as,
        "same_value_count": secret.same_value_count,
    }


def _secret_answer(user: Any, workspace: Workspace, key: str) -> dict[str, Any]:
    """A secret as the API shows it, with the keys that hold the same value."""
    (secret,) = with_same_value_keys(user, workspace, [secret_for(user, workspace, key)])
    return secret_json(secret)


@router.get(
    SECRETS,
    url_name="api-secrets",
    response=answers({200: SecretPage}, *SIGNED_IN, 400, 404),
    summary="Metadata of the secrets you may see, sorted by key, 50 a page; never values",
)
def list_secrets(
    request: HttpRequest,
    slug: PathSlug,
    page: PageNumber = None,
    tag: str = Query("", description="Only secrets carrying this tag."),
    q: str = Query("", description="Only keys containing this text."),
    unread_days: UnreadDays = None,
) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    visible = secrets_visible_to(request.user, workspace, tag=tag, search=q, unread_days=unread_days)
    found = paginate(visible, page)
    return {
        "workspace": workspace.slug,
        **page_fields(found),
        "secrets": [secret_json(s) for s in with_same_value_keys(request.user, workspace, found.object_list)],
    }


@router.post(
    SECRETS,
    url_name="api-secrets",
    response=answers({201: SecretOut}, *SIGNED_IN, *JSON_BODY, 404, 409),
    summary="Add a secret",
)
@sensitive_variables()
def add_secret(request: HttpRequest, slug: PathSlug, secret: NewSecret = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    created = create_secret(
        actor=request.user,
        workspace=workspace,
        key=secret.key,
        value=secret.value,
        tags=secret.tags,
        expires_at=secret.expires_at,
        ip_address=client_ip(request),
    )
    # Answered from the row just written, not read back by key: a delete of the key by someone else
    # in between must not turn this 201 into a 404.
    created.last_read_at = created.last_read_workflow = created.last_read_reader = created.last_read_execution = None
    created.recent_reads = 0
    if created.expires_at is not None:
        created.expires_at = created.expires_at.astimezone(datetime.UTC)  # as the database gives it back
    (answer,) = with_same_value_keys(request.user, workspace, [created])
    return Status(201, secret_json(answer))


@router.post(
    IMPORT,
    url_name="api-secrets-import",
    response=answers({200: ImportPreview, 201: Imported}, *SIGNED_IN, *JSON_BODY, 404, 409),
    exclude_unset=True,
    summary="Import a .env file, all or nothing (dry_run: each line's status); existing keys are never overwritten",
)
@sensitive_variables()
def import_secrets(request: HttpRequest, slug: PathSlug, file: DotenvImport = JsonBody(...)) -> Any:
    """Dry run: 200, each line's status. Otherwise 201 with the keys imported, or 400 / 409 listing
    every line that stopped it, nothing written."""
    workspace = workspace_for(request.user, slug)
    if file.dry_run:
        plan = plan_dotenv_import(actor=request.user, workspace=workspace, text=file.dotenv, tags=file.tags)
        return Status(200, {"entries": [line.as_json() for line in plan.lines], "importable": plan.importable})
    imported = import_dotenv(
        actor=request.user, workspace=workspace, text=file.dotenv, tags=file.tags, ip_address=client_ip(request)
    )
    return Status(201, {"imported": [secret.key for secret in imported]})


@router.api_operation(
    ["GET", "DELETE", "PUT", "PATCH"],
    IMPORT,
    url_name="api-secrets-import",
    response=answers({200: SecretOut, 204: None}, *SIGNED_IN, 404, 405),
    include_in_schema=False,
)
def secret_named_import(request: HttpRequest, slug: PathSlug) -> Any:
    """`secrets/import/` is also the address of a secret whose key is "import": POST imports, and
    every other method is that secret's."""
    operation = {"GET": get_secret, "DELETE": remove_secret, "PUT": refuse_update, "PATCH": refuse_update}
    return operation[request.method](request, slug, "import")


@router.get(
    SECRET, url_name="api-secret", response=answers({200: SecretOut}, *SIGNED_IN, 404), summary="One secret's metadata"
)
def get_secret(request: HttpRequest, slug: PathSlug, key: PathSecretKey) -> dict[str, Any]:
    return _secret_answer(request.user, workspace_for(request.user, slug), key)


@router.delete(
    SECRET,
    url_name="api-secret",
    response=answers({204: None}, *SIGNED_IN, 404),
    summary="Delete a secret; its key can then be added again",
)
def remove_secret(request: HttpRequest, slug: PathSlug, key: PathSecretKey) -> HttpResponse:
    workspace = workspace_for(request.user, slug)
    delete_secret(actor=request.user, secret=secret_for(request.user, workspace, key), ip_address=client_ip(request))
    return HttpResponse(status=204)


@router.put(
    SECRET,
    url_name="api-secret",
    operation_id="refuse_put",
    response=answers({}, *SIGNED_IN, 404, 405),
    summary="Refused: secrets are immutable (405 secret_immutable)",
)
@router.patch(
    SECRET,
    url_name="api-secret",
    operation_id="refuse_patch",
    response=answers({}, *SIGNED_IN, 404, 405),
    summary="Refused: secrets are immutable (405 secret_immutable)",
)
def refuse_update(request: HttpRequest, slug: PathSlug, key: PathSecretKey) -> HttpResponse:
    response = error_response(405, SecretImmutable.code, SecretImmutable.default_message)
    response["Allow"] = "GET, DELETE"
    return response


@router.post(
    f"{SECRET}tags/",
    url_name="api-secret-tags",
    response=answers({200: SecretOut}, *SIGNED_IN, *JSON_BODY, 404),
    summary="Add tags to a secret (a tag with grants shares it: a recent re-authentication is needed)",
)
@reauthentication_required
def add_tags(request: HttpRequest, slug: PathSlug, key: PathSecretKey, tags: SecretTags = JsonBody(...)) -> Any:
    workspace = workspace_for(request.user, slug)
    found = secret_for(request.user, workspace, key)
    tag_secret(actor=request.user, secret=found, tag_names=tags.tags, ip_address=client_ip(request))
    return _secret_answer(request.user, workspace, key)


@router.delete(
    f"{SECRET}tags/{{tag}}/",
    url_name="api-secret-tag",
    response=answers({204: None}, *SIGNED_IN, 400, 404),
    summary="Remove a tag from a secret",
)
@reauthentication_required
def untag(request: HttpRequest, slug: PathSlug, key: PathSecretKey, tag: PathTag) -> HttpResponse:
    found = secret_for(request.user, workspace_for(request.user, slug), key)
    untag_secret(actor=request.user, secret=found, tag_name=tag, ip_address=client_ip(request))
    return HttpResponse(status=204)


@router.post(
    "/workspaces/{slug:slug}/value-lookup/",
    url_name="api-value-lookup",
    response=answers({200: ValueLookup}, *SIGNED_IN, *JSON_BODY, 404, 429),
    summary="Owners and admins: which keys of this workspace hold this value (audited; key names only)",
)
@sensitive_variables()
@reauthentication_required
def look_up_value(request: HttpRequest, slug: PathSlug, lookup: ValueToLookUp = JsonBody(...)) -> dict[str, Any]:
    workspace = workspace_for(request.user, slug)
    keys, count = find_secrets_by_value(
        actor=request.user, workspace=workspace, value=lookup.value, ip_address=client_ip(request)
    )
    return {"workspace": workspace.slug, "keys": keys, "count": count}
