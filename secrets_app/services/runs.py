"""Workflows and executions: register, delete, launch (minting a runner session) and finish."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from secrets_app import permissions
from secrets_app.errors import AccessDenied, ExecutionNotRunning, MfaRequiredByWorkspace, WorkflowAlreadyExists
from secrets_app.models import AuditEvent, Execution, UserSession, Workflow, WorkflowSecretReference, Workspace
from secrets_app.permissions import Action
from secrets_app.placeholders import placeholders_in
from secrets_app.selectors import runner as runner_selectors
from secrets_app.selectors.sessions import session_store
from secrets_app.services import approvals, audit
from secrets_app.strict_json import LONE_SURROGATE, NUL, unstorable_text
from secrets_app.validators import SECRET_KEY_PATTERN, TEMPLATE_MAX_NAMES, validate_workflow_name

WORKFLOW_DEFINITION_MAX_BYTES = 256 * 1024
UNSTORABLE_DEFINITION = {
    NUL: "The definition must not contain NUL characters (\\u0000).",
    LONE_SURROGATE: "The definition must be Unicode text: it holds a lone surrogate (\\ud800-\\udfff).",
}


def register_workflow(
    *,
    actor: Any,
    workspace: Workspace,
    name: str,
    definition: Any,
    secrets: list[str] | None = None,
    ip_address: str | None = None,
) -> Workflow:
    """Register a workflow in `workspace`, its home, with the secret keys it declares: those its
    definition names (`${workflow.secrets.KEY}`) and `secrets`, the keys its code reads by name
    (`get_secret`). Its runs may read those and no others (`outside_workflow_scope`). At most
    TEMPLATE_MAX_NAMES keys in all; raises ValidationError (`name`, `definition`, `secrets`)."""
    permissions.require(actor, Action.REGISTER_WORKFLOW, workspace)
    problems: dict[str, ValidationError] = {}
    try:
        validate_workflow_name(name)
    except ValidationError as error:
        problems["name"] = error
    if not isinstance(definition, dict):
        problems["definition"] = ValidationError("The definition must be a JSON object.")
    elif len(json.dumps(definition)) > WORKFLOW_DEFINITION_MAX_BYTES:
        problems["definition"] = ValidationError("The definition is larger than 256 KiB.")
    elif problem := unstorable_text(definition):
        problems["definition"] = ValidationError(UNSTORABLE_DEFINITION[problem])
    malformed = [key for key in secrets or [] if not isinstance(key, str) or not SECRET_KEY_PATTERN.fullmatch(key)]
    if malformed:
        problems["secrets"] = ValidationError(
            f"Not a secret key: {malformed[0]!r}"
            if len(malformed) == 1
            else f"{len(malformed)} entries are not secret keys."
        )
    if problems:
        raise ValidationError(problems)
    keys = sorted(set(placeholders_in(definition)) | set(secrets or []))
    if len(keys) > TEMPLATE_MAX_NAMES:
        # Its runs could never resolve it (400 too_many_placeholders), and its page would not end.
        raise ValidationError(
            {
                "definition": ValidationError(
                    f"The workflow declares {len(keys):,} different secrets; a workflow may declare at most "
                    f"{TEMPLATE_MAX_NAMES:,}.",
                    code="too_many_placeholders",
                )
            }
        )
    try:
        with transaction.atomic():
            workflow = Workflow.objects.create(
                workspace=workspace, name=name, definition=definition, registered_by=actor
            )
            WorkflowSecretReference.objects.bulk_create(
                [WorkflowSecretReference(workflow=workflow, key=k) for k in keys]
            )
            audit.record_event(
                action=AuditEvent.Action.WORKFLOW_REGISTERED,
                actor=actor,
                workspace=workspace,
                ip_address=ip_address,
                detail={"workflow": workflow.reference, "secrets": keys},
            )
    except IntegrityError:
        raise WorkflowAlreadyExists() from None
    return workflow


def delete_workflow(*, actor: Any, workflow: Workflow, ip_address: str | None = None) -> None:
    """Delete a workflow; its running executions end (their runner sessions are deleted)."""
    permissions.require(actor, Action.REGISTER_WORKFLOW, workflow.workspace)
    with transaction.atomic():
        end_runner_sessions(workflow.executions.filter(status=Execution.Status.RUNNING))
        audit.record_event(
            action=AuditEvent.Action.WORKFLOW_DELETED,
            actor=actor,
            workspace=workflow.workspace,
            ip_address=ip_address,
            detail={"workflow": workflow.reference},
        )
        workflow.delete()


def end_runner_sessions(executions: Any, status: str = Execution.Status.REVOKED) -> None:
    """Delete the runner sessions of these executions from the session store (cache and
    database), so every app server refuses them at once, and mark the executions ended."""
    for key in executions.values_list("runner_session_key", flat=True):
        session_store()(session_key=key).delete()
    executions.update(status=status, finished_at=timezone.now())


def launch_execution(
    *,
    actor: Any,
    workspace: Workspace,
    workflow: Workflow,
    lifetime_seconds: int | None = None,
    ip_address: str | None = None,
) -> tuple[Execution, str]:
    """Launch `workflow` in `workspace` (which may differ from its home). Returns the execution
    and its runner session key: a real Django session, bound to the execution and to `actor`,
    that ends when the execution finishes or after its lifetime."""
    permissions.require_launch(actor, workspace)
    if any(permissions.mfa_policy_refuses(actor, place) for place in {workspace, workflow.workspace}):
        # A runner session reads as its launcher: none is minted for someone the policy refuses.
        raise MfaRequiredByWorkspace()
    maximum = settings.RUNNER_SESSION_MAX_AGE
    lifetime = maximum if lifetime_seconds is None else lifetime_seconds
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 60 <= lifetime <= maximum:
        raise ValidationError({"lifetime": [f"The lifetime is a whole number of seconds from 60 to {maximum}."]})
    execution = Execution(
        id=uuid.uuid4(),
        workflow=workflow,
        workflow_reference=workflow.reference,
        home_workspace=workflow.workspace,
        workspace=workspace,
        launched_by=actor,
        expires_at=timezone.now() + datetime.timedelta(seconds=lifetime),
    )
    session = session_store()()
    session.update(
        {
            SESSION_KEY: str(actor.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: actor.get_session_auth_hash(),
            runner_selectors.RUNNER_EXECUTION: str(execution.id),
            runner_selectors.RUNNER_HOME_WORKSPACE: [workflow.workspace.pk, workflow.workspace.slug],
            runner_selectors.RUNNER_WORKSPACE: workspace.pk,
            runner_selectors.RUNNER_WORKFLOW: workflow.reference,
        }
    )
    session.set_expiry(lifetime)
    try:
        with transaction.atomic():
            session.create()
            execution.runner_session_key = session.session_key
            execution.save(force_insert=True)
            UserSession.objects.create(
                session_key=session.session_key,
                user=actor,
                kind=UserSession.Kind.RUNNER,
                execution=execution,
                ip_address=ip_address,
            )
            audit.record_event(
                action=AuditEvent.Action.EXECUTION_LAUNCHED,
                actor=actor,
                workspace=workspace,
                execution_id=execution.id,
                ip_address=ip_address,
                detail={"workflow": workflow.reference, "expires_at": execution.expires_at.isoformat()},
            )
            approvals.request_approval_if_needed(
                actor=actor, execution=execution, workflow=workflow, ip_address=ip_address
            )
    except Exception:
        session.delete()
        raise
    return execution, session.session_key


def finish_execution(*, actor: Any, execution: Execution, ip_address: str | None = None) -> Execution:
    """End an execution and its runner session, at once, for every app server.

    Ended by its launcher (or its own runner) it is `finished`; ended by a workspace admin who
    did not launch it, `revoked`.
    """
    if not permissions.can_finish_execution(actor, execution):
        raise AccessDenied("Only the user who launched it, or a workspace admin, can finish this execution.")
    status = Execution.Status.FINISHED if execution.launched_by_id == actor.pk else Execution.Status.REVOKED
    with transaction.atomic():
        running = Execution.objects.select_for_update().filter(pk=execution.pk, status=Execution.Status.RUNNING)
        if not running.exists():
            raise ExecutionNotRunning()
        end_runner_sessions(running, status=status)
        approvals.expire_pending_approval(execution=execution)
        audit.record_event(
            action=AuditEvent.Action.EXECUTION_FINISHED,
            actor=actor,
            workspace=execution.workspace,
            execution_id=execution.id,
            ip_address=ip_address,
            detail={"workflow": execution.workflow_reference, "status": status},
        )
    execution.refresh_from_db()
    return execution
