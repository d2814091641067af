"""The console's models, by domain. Django finds an app's models here, and the rest of the app
imports them from here."""

from secrets_app.models.audit import AuditEvent
from secrets_app.models.runs import Execution, ExecutionApproval, Workflow, WorkflowSecretReference
from secrets_app.models.secrets import (
    IMMUTABLE_SECRET_FIELDS,
    Expiry,
    ExpiryState,
    Secret,
    SecretTag,
    Tag,
    TagGroupObjectPermission,
    TagUserObjectPermission,
)
from secrets_app.models.sessions import UserSession
from secrets_app.models.workspaces import Membership, Role, Workspace

__all__ = [
    "IMMUTABLE_SECRET_FIELDS",
    "AuditEvent",
    "Execution",
    "ExecutionApproval",
    "Expiry",
    "ExpiryState",
    "Membership",
    "Role",
    "Secret",
    "SecretTag",
    "Tag",
    "TagGroupObjectPermission",
    "TagUserObjectPermission",
    "UserSession",
    "Workflow",
    "WorkflowSecretReference",
    "Workspace",
]
