"""Domain errors raised by services and selectors.

Each carries a stable `code` for the JSON API; views and the API turn them into a message
and a status in one place (`error_responses.ERROR_STATUS`); pages show a 404 or 403 page for
the not-found and access-denied kinds (`middleware.ConsoleErrorPagesMiddleware`).
"""

from typing import Any


class ConsoleError(Exception):
    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def details(self) -> dict[str, object]:
        """Extra fields for the API's error body."""
        return {}


class NotFound(ConsoleError):
    code = "not_found"
    default_message = "Not found."


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"
    default_message = "No such workspace, or you cannot see it."


class SecretNotFound(NotFound):
    code = "secret_not_found"
    default_message = "No such secret in this workspace, or you cannot see it."


class PageNotFound(NotFound):
    code = "page_not_found"
    default_message = "No such page."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = "No such member in this workspace."


class TagNotFound(NotFound):
    code = "tag_not_found"
    default_message = "No such tag in this workspace, or you cannot see it."


class GrantNotFound(NotFound):
    code = "grant_not_found"
    default_message = "No such grant on this tag."


class GroupNotFound(NotFound):
    code = "group_not_found"
    default_message = "No such group."


class WorkflowNotFound(NotFound):
    code = "workflow_not_found"
    default_message = "No such workflow, or you cannot see it."


class ExecutionNotFound(NotFound):
    code = "execution_not_found"
    default_message = "No such execution, or you cannot see it."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "No such user."


class ApprovalNotFound(NotFound):
    code = "approval_not_found"
    default_message = "No such approval request, or you cannot see it."


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_message = "No such session of yours, or it has already ended."


class AccessDenied(ConsoleError):
    code = "permission_denied"
    default_message = "You do not have permission to do that in this workspace."


class Conflict(ConsoleError):
    code = "conflict"


class SecretAlreadyExists(Conflict):
    code = "secret_exists"
    default_message = (
        "A secret with this key already exists in this workspace. Secrets are immutable: "
        "delete it first, then add it again."
    )

    def __init__(self, message: str | None = None, keys: list[str] | None = None) -> None:
        super().__init__(message)
        self.keys = keys or []

    @classmethod
    def for_keys(cls, keys: list[str]) -> "SecretAlreadyExists":
        if len(keys) == 1:
            return cls(keys=keys)
        return cls(
            f"These keys already exist in this workspace: {', '.join(keys)}. Secrets are immutable: "
            "delete them first, then add them again.",
            keys=keys,
        )


class WorkspaceSlugTaken(Conflict):
    code = "workspace_exists"
    default_message = "A workspace with this slug already exists."


class AlreadyMember(Conflict):
    code = "already_member"
    default_message = "This user is already a member of the workspace."


class WorkflowAlreadyExists(Conflict):
    code = "workflow_exists"
    default_message = "A workflow with this name is already registered in this workspace."


class ExecutionNotRunning(Conflict):
    code = "execution_not_running"
    default_message = "The execution is not running any more."


class GrantExists(Conflict):
    code = "grant_exists"
    default_message = "That grant already exists."


class LockOut(Conflict):
    code = "last_owner"
    default_message = "A workspace must keep at least one owner: make someone else owner first."


class DatabaseUnavailable(ConsoleError):
    """The database could not be reached, or dropped the connection, while answering.

    Never raised: `views.errors.server_error` answers with it when a request fails with the driver's
    OperationalError or InterfaceError, wherever that happened (a view, the session or user load,
    admin). Its message is fixed: the driver's text can name hosts and carry SQL parameters.
    """

    code = "database_unavailable"
    default_message = (
        "The console cannot reach its database right now, so this request was not carried out and nothing was "
        "changed. Try again in a moment."
    )
    retry_after_seconds = 30


class InvalidOperation(ConsoleError):
    code = "invalid_operation"


class TooManyPlaceholders(InvalidOperation):
    code = "too_many_placeholders"

    def __init__(self, names: int, limit: int) -> None:
        super().__init__(
            f"The document names {names:,} different secrets; a template may name at most {limit:,}. Nothing was "
            "resolved."
        )


class TooLarge(ConsoleError):
    """A request whose answer, or part of it, would be over a documented size limit."""

    code = "too_large"


class ResolvedTooLarge(TooLarge):
    code = "resolved_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"With its values filled in, the document would be over {limit // 1024:,} KiB, the limit of a resolved "
            "template; nothing was resolved. Name each secret fewer times, or resolve smaller documents."
        )


class RateLimited(ConsoleError):
    """Too many requests of a kind: wait `retry_after_seconds` before the next."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)


class TooManyCodes(RateLimited):
    code = "too_many_codes"

    def __init__(self) -> None:
        super().__init__("Too many wrong two-factor codes: wait 5 minutes and try again.", retry_after_seconds=300)


class TooManyLookups(RateLimited):
    code = "too_many_lookups"


class SecretImmutable(InvalidOperation):
    code = "secret_immutable"
    default_message = "Secrets are immutable: delete the secret and add it again with the new value."


class WorkspaceMismatch(AccessDenied):
    code = "workspace_mismatch"
    default_message = (
        "This execution runs in another workspace than the one its workflow was registered in; "
        "runners read secrets only when the workflow runs in its own workspace."
    )


class SecretExpired(AccessDenied):
    code = "secret_expired"
    default_message = "The secret has expired: runners may no longer read it."


class AuthenticationRequired(ConsoleError):
    """The caller is signed in, but must prove who they are (again) first."""

    code = "authentication_required"


class ReauthenticationRequired(AuthenticationRequired):
    code = "reauthentication_required"
    default_message = (
        "Confirm it's you first: this action needs a password, TOTP or passkey check within the last "
        "{minutes} minutes (POST /api/v1/session/reauthenticate/ with your password or a code)."
    )

    def __init__(self, minutes: int) -> None:
        super().__init__(self.default_message.format(minutes=minutes))


class MfaRequired(AuthenticationRequired):
    """A sign-in with the right password, by a user who has a second factor, without its code."""

    code = "mfa_required"
    default_message = 'This account has two-factor authentication: send its TOTP or recovery code as "code".'

    def details(self) -> dict[str, object]:
        return {"field": "code"}


class MfaRequiredByWorkspace(AccessDenied):
    code = "mfa_required_by_workspace"
    default_message = (
        "This workspace requires two-factor authentication: add a second factor (Account Settings → "
        "Two-factor authentication) to use its secrets and executions."
    )


class ApprovalRequired(AccessDenied):
    code = "approval_required"
    default_message = "This secret is protected: an owner or admin other than the launcher must approve this run."


class OutsideWorkflowScope(AccessDenied):
    code = "outside_workflow_scope"
    default_message = "This run's workflow does not declare that secret."


class RunnerSessionEnded(ConsoleError):
    """A runner presented the session of an execution that has finished or expired."""

    code = "execution_finished"
    default_message = "The execution has finished: its runner session ended. Launch a new execution."

    messages_by_reason = {
        "execution_finished": default_message,
        "execution_expired": "The execution's runner session has expired. Launch a new execution.",
        "session_expired": (
            "The user who launched this execution can no longer sign in (deactivated, or their password "
            "changed), so its runner session no longer works."
        ),
    }

    def __init__(self, reason: str = "execution_finished") -> None:
        self.code = reason
        super().__init__(self.messages_by_reason[reason])


class SecretsRefused(ConsoleError):
    """Some of the secrets a runner asked for are unknown or not usable; nothing is returned."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        unknown = sorted(key for key, reason in refused.items() if reason == "secret_not_found")
        expired = sorted(key for key, reason in refused.items() if reason == "secret_expired")
        denied = sorted(key for key, reason in refused.items() if reason not in ("secret_not_found", "secret_expired"))
        parts = []
        if unknown:
            parts.append(f"unknown secret{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        if expired:
            parts.append(f"expired: {', '.join(expired)}")
        if denied:
            parts.append(f"not allowed to use: {', '.join(denied)}")
        self.all_unknown = not denied and not expired
        self.code = "unknown_secrets" if self.all_unknown else "secrets_refused"
        super().__init__("Nothing was resolved; " + "; ".join(parts) + ".")

    def details(self) -> dict[str, object]:
        return {"secrets": self.refused}


# Importing a .env file: the import is refused whole, and the refusal lists every line that stopped it.


class DotenvInvalid(InvalidOperation):
    """Some lines of a .env import are invalid; nothing was written."""

    code = "invalid_input"

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        refused = plan.refused_lines
        super().__init__("Nothing was imported. " + " ".join(f"Line {line.line}: {line.error}" for line in refused))

    def details(self) -> dict[str, object]:
        refused = self.plan.refused_lines
        return {
            "fields": {"dotenv": [f"Line {line.line}: {line.error}" for line in refused]},
            "entries": [line.as_json() for line in refused],
        }


class DotenvConflicts(SecretAlreadyExists):
    """Keys of a .env import already exist in the workspace; nothing was written (never overwritten)."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        conflicts = plan.refused_lines
        named = ", ".join(f"{line.key} (line {line.line})" for line in conflicts)
        super().__init__(
            f"Nothing was imported: these keys already exist in this workspace: {named}. Secrets are immutable: "
            "delete them first, or leave those lines out.",
            keys=[line.key for line in conflicts],
        )

    def details(self) -> dict[str, object]:
        return {"keys": self.keys, "entries": [line.as_json() for line in self.plan.refused_lines]}
