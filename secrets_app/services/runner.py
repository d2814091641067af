"""The runner read: the values a runner asks for, all or nothing, under the runner rules.

Every read and every refusal is an audit event, written before any value is returned: if that
write fails, nothing leaves (Vault's rule).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from secrets_app import permissions
from secrets_app.crypto import DecryptionFailed
from secrets_app.errors import (
    AccessDenied,
    RunnerSessionEnded,
    SecretExpired,
    SecretNotFound,
    SecretsRefused,
    WorkspaceMismatch,
)
from secrets_app.models import AuditEvent, Execution, Expiry, ExpiryState, Secret
from secrets_app.selectors.runner import RunnerContext, keys_visible_to_runner, secrets_for_runner
from secrets_app.services import audit
from secrets_app.validators import SECRET_KEY_PATTERN, printable_key


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


@sensitive_variables()
def read_secrets_for_runner(
    *, context: RunnerContext, keys: list[str], ip_address: str | None = None, template: bool = False
) -> dict[str, str]:
    """The values of `keys` for a runner, all or nothing, under the runner rules. For a `template`,
    a refusal lists every refused key with its reason.

    Every read and every refusal is an audit event, written before any value is returned: if
    that write fails, this raises and no value leaves (Vault's rule).
    """
    found: dict[str, Secret] = {}
    in_grace: set[str] = set()
    if context.workspace_mismatch:
        refused = dict.fromkeys(keys, "workspace_mismatch")
    else:
        well_formed = [key for key in keys if SECRET_KEY_PATTERN.fullmatch(key)]
        found = {secret.key: secret for secret in secrets_for_runner(context, well_formed)}
        refused = {}
        for key in keys:
            secret = found.get(key)
            if secret is None:
                refused[key] = "secret_not_found"
            elif not context.is_local and not secret.execution_live:
                refused[key] = "execution_finished"
            elif not secret.usable:
                refused[key] = "permission_denied"
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
    values: dict[str, str] = {}
    if not refused:
        for key in keys:
            try:
                values[key] = found[key].reveal_value()
            except DecryptionFailed:
                refused[key] = "undecryptable"
    if refused:
        _record_refusals(context, refused, ip_address=ip_address)
        raise _refusal(refused, template=template)
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


def _refusal(refused: dict[str, str], *, template: bool) -> Exception:
    """The error for a refused runner read: one key read alone gets its own error; a template's
    keys get one list."""
    reasons = set(refused.values())
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
        if reason == "secret_expired":
            return SecretExpired(
                f"Secret {key} has expired and its workspace's grace, if any, has run out: runners may no longer "
                "read it. Delete it and add it again with a new value."
            )
        return AccessDenied(f"The user who launched this run may not use secret {key}.")
    return SecretsRefused(refused)


def refuse_ended_runner_session(
    *, execution: Execution, keys: list[str], ip_address: str | None = None
) -> RunnerSessionEnded:
    """Audit a runner that came back with the session of a finished or expired execution (or of
    one whose launcher can no longer sign in)."""
    if execution.status != Execution.Status.RUNNING:
        reason = "execution_finished"
    elif execution.expires_at <= timezone.now():
        reason = "execution_expired"
    else:
        reason = "session_expired"
    context = RunnerContext(
        user=execution.launched_by,
        lookup_workspace=execution.home_workspace,
        execution_id=str(execution.id),
        run_workspace_id=execution.workspace_id,
        workflow=execution.workflow_reference,
    )
    _record_refusals(context, dict.fromkeys(keys, reason), ip_address=ip_address)
    return RunnerSessionEnded(reason)


def _record_refusals(context: RunnerContext, refused: dict[str, str], *, ip_address: str | None) -> None:
    """One `secret.read_denied` event per refused key, with its reason."""
    audit.record_events(
        [
            _runner_event(
                context,
                action=AuditEvent.Action.SECRET_READ_DENIED,
                key=key,
                secret=None,
                reason=reason,
                ip_address=ip_address,
            )
            for key, reason in refused.items()
        ]
    )
