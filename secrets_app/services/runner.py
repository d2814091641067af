"""The runner read: the values a runner asks for, all or nothing, under the runner rules.

Every read and every refusal is an audit event, written before any value is returned: if that
write fails, nothing leaves (Vault's rule).
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from secrets_app import permissions
from secrets_app.crypto import MAX_SEALING_OVERHEAD, DecryptionFailed
from secrets_app.errors import (
    AccessDenied,
    ApprovalRequired,
    OutsideWorkflowScope,
    ResolvedTooLarge,
    RunnerSessionEnded,
    SecretExpired,
    SecretNotFound,
    SecretsRefused,
    TooManyPlaceholders,
    WorkspaceMismatch,
)
from secrets_app.models import AuditEvent, Execution, Expiry, ExpiryState, Secret
from secrets_app.placeholders import Template, json_string_size
from secrets_app.selectors.runner import RunnerContext, keys_visible_to_runner, sealed_values, secrets_for_runner
from secrets_app.services import approvals, audit
from secrets_app.validators import SECRET_KEY_PATTERN, TEMPLATE_MAX_NAMES, printable_key


def _runner_event(
    context: RunnerContext,
    *,
    action: str,
    key: str,
    secret: Secret | None,
    ip_address: str | None,
    **detail: Any,
) -> AuditEvent:
    if not context.is_local:
        detail["workflow"] = context.workflow
    return audit.audit_event(
        action=action,
        actor=context.user,
        workspace=context.lookup_workspace,
        secret=secret,
        secret_key=printable_key(key),
        execution_id=context.execution_id,
        ip_address=ip_address,
        detail={**detail, "local": context.is_local},
    )


# A template names at most TEMPLATE_MAX_NAMES different secrets (validators), and filled in it is at
# most this big (as JSON): one request's work and answer stay bounded whatever it asks for.
TEMPLATE_MAX_BYTES = 1024 * 1024
# One refused request is one audit event; it lists at most this many of its refused keys.
REFUSED_KEYS_LISTED = 100
# A runner that keeps coming back with an ended session is audited at most once a minute.
ENDED_SESSION_AUDIT_SECONDS = 60


@sensitive_variables()
def read_secrets_for_runner(
    *, context: RunnerContext, keys: list[str], ip_address: str | None = None, template: Template | None = None
) -> dict[str, str]:
    """The values of `keys` for a runner, all or nothing, under the runner rules. For a `template`
    (whose names are `keys`), a refusal lists every refused key with its reason, and the document
    filled in must stay within TEMPLATE_MAX_BYTES: that is checked before the values are fetched
    (from their stored sizes) and again, exactly, before they are returned.

    Every read and every refusal is an audit event (one for a refused request, one per value
    read), written before any value is returned: if that write fails, this raises and no value
    leaves (Vault's rule). Raises the refusal: SecretNotFound, AccessDenied (SecretExpired,
    WorkspaceMismatch), RunnerSessionEnded, SecretsRefused, TooManyPlaceholders, ResolvedTooLarge.
    A template that names no secret reads nothing and is not audited; it too must fit.
    """
    if template is not None and not keys:
        if template.size > TEMPLATE_MAX_BYTES:
            raise ResolvedTooLarge(TEMPLATE_MAX_BYTES)
        return {}
    if len(keys) > TEMPLATE_MAX_NAMES:
        _record_refusal(context, dict.fromkeys(keys, "too_many_placeholders"), ip_address=ip_address)
        raise TooManyPlaceholders(len(keys), TEMPLATE_MAX_NAMES)
    found: dict[str, Secret] = {}
    in_grace: set[str] = set()
    if context.workspace_mismatch:
        refused = dict.fromkeys(keys, "workspace_mismatch")
    else:
        well_formed = [key for key in keys if SECRET_KEY_PATTERN.fullmatch(key)]
        # A template's values are fetched only once their sizes are known to fit.
        read = secrets_for_runner(context, well_formed, with_values=template is None)
        found = {secret.key: secret for secret in read}
        refused, in_grace = _decide(context, keys, found)
    if not refused and template is not None:
        if (
            template.filled_size({key: found[key].stored_size - MAX_SEALING_OVERHEAD for key in keys})
            > TEMPLATE_MAX_BYTES
        ):
            refused = dict.fromkeys(keys, "resolved_too_large")
        else:
            sealed_values(list(found.values()))
    values: dict[str, str] = {}
    if not refused:
        for key in keys:
            try:
                values[key] = found[key].reveal_value()
            except DecryptionFailed:
                refused[key] = "undecryptable"
    if not refused and template is not None:
        if template.filled_size({key: json_string_size(value) for key, value in values.items()}) > TEMPLATE_MAX_BYTES:
            refused = dict.fromkeys(keys, "resolved_too_large")
    if refused:
        _record_refusal(context, refused, ip_address=ip_address)
        awaiting = [key for key, reason in refused.items() if reason == "approval_required"]
        if awaiting:
            approvals.request_approval_for_keys(execution_id=context.execution_id, keys=awaiting, ip_address=ip_address)
        raise _refusal(refused, template=template is not None)
    audit.record_events(
        [
            _runner_event(
                context,
                action=AuditEvent.Action.SECRET_READ,
                key=key,
                secret=found[key],
                ip_address=ip_address,
                **({"expired_grace": True} if key in in_grace else {}),
            )
            for key in keys
        ]
    )
    return values


def _decide(context: RunnerContext, keys: list[str], found: dict[str, Secret]) -> tuple[dict[str, str], set[str]]:
    """Which keys are refused, and why; which are read in their workspace's grace."""
    refused: dict[str, str] = {}
    in_grace: set[str] = set()
    for key in keys:
        secret = found.get(key)
        if secret is None:
            refused[key] = "secret_not_found"
        elif not context.is_local and not secret.execution_live:
            refused[key] = "execution_finished"
        elif not secret.usable:
            refused[key] = "permission_denied"
        elif not secret.in_scope:
            refused[key] = "outside_workflow_scope"
        elif secret.awaits_approval:
            refused[key] = "approval_required"
        elif secret.expires_at is not None:
            expiry = Expiry.of(secret.expires_at, grace_days=secret.grace_days, now=timezone.now())
            if not permissions.expiry_allows_use(expiry):
                refused[key] = "secret_expired"
            elif expiry.state is ExpiryState.GRACE:
                in_grace.add(key)
    if "permission_denied" in refused.values():
        # Off the hot path: someone who may not even see the secret is told it is not there.
        seen = keys_visible_to_runner(context, [k for k, r in refused.items() if r == "permission_denied"])
        refused = {
            k: "secret_not_found" if r == "permission_denied" and k not in seen else r for k, r in refused.items()
        }
    return refused, in_grace


def _refusal(refused: dict[str, str], *, template: bool) -> Exception:
    """The error for a refused runner read: one key read alone gets its own error; a template's
    keys get one list."""
    reasons = set(refused.values())
    if reasons == {"resolved_too_large"}:
        return ResolvedTooLarge(TEMPLATE_MAX_BYTES)
    if reasons == {"workspace_mismatch"}:
        return WorkspaceMismatch()
    if reasons == {"execution_finished"}:
        return RunnerSessionEnded("execution_finished")
    if len(refused) == 1 and not template:
        ((key, reason),) = refused.items()
        if reason == "secret_not_found":
            return SecretNotFound(f"No secret {key} that this run may read.")
        if reason == "undecryptable":
            return DecryptionFailed()
        if reason == "approval_required":
            return ApprovalRequired(
                f"Secret {key} is protected: an owner or admin other than the launcher must approve this run "
                "(Developer Settings → Approvals)."
            )
        if reason == "outside_workflow_scope":
            return OutsideWorkflowScope(
                f"This run's workflow does not declare secret {key}: declare it (a ${{workflow.secrets.{key}}} "
                'placeholder, or its "secrets" list) and register the workflow again.'
            )
        if reason == "secret_expired":
            return SecretExpired(
                f"Secret {key} has expired and its workspace's grace, if any, has run out: runners may no longer "
                "read it. Delete it and add it again with a new value."
            )
        return AccessDenied(f"The user who launched this run may not use secret {key}.")
    return SecretsRefused(refused)


def refuse_ended_runner_session(
    *, execution: Execution, key: str = "", ip_address: str | None = None
) -> RunnerSessionEnded:
    """The refusal of a runner that came back with the session of a finished or expired execution
    (or of one whose launcher can no longer sign in), before any work for the keys it asks for.
    Audited at most once per ENDED_SESSION_AUDIT_SECONDS for each execution, so that a leaked ended
    session cannot fill its team's log; `key` is the key it asked for, if a single one."""
    if execution.status != Execution.Status.RUNNING:
        reason = "execution_finished"
    elif execution.expires_at <= timezone.now():
        reason = "execution_expired"
    else:
        reason = "session_expired"
    if cache.add(f"runner:ended-session-audited:{execution.pk}", 1, ENDED_SESSION_AUDIT_SECONDS):
        context = RunnerContext(
            user=execution.launched_by,
            lookup_workspace=execution.home_workspace,
            execution_id=str(execution.id),
            run_workspace_id=execution.workspace_id,
            workflow=execution.workflow_reference,
        )
        _record_refusal(context, {key: reason}, ip_address=ip_address)
    return RunnerSessionEnded(reason)


def _record_refusal(context: RunnerContext, refused: dict[str, str], *, ip_address: str | None) -> None:
    """One `secret.read_denied` event for a refused request: its key and reason if it asked for
    one key; else its reason (or "several") and the first REFUSED_KEYS_LISTED refused keys, each
    with its reason, and how many there were."""
    reasons = set(refused.values())
    detail: dict[str, Any] = {"reason": reasons.pop() if len(reasons) == 1 else "several"}
    key = next(iter(refused)) if len(refused) == 1 else ""
    if len(refused) > 1:
        listed = sorted(refused)[:REFUSED_KEYS_LISTED]
        detail |= {"refused": {printable_key(name): refused[name] for name in listed}, "refused_count": len(refused)}
    audit.record_events(
        [
            _runner_event(
                context,
                action=AuditEvent.Action.SECRET_READ_DENIED,
                key=key,
                secret=None,
                ip_address=ip_address,
                **detail,
            )
        ]
    )
