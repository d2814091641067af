"""Importing a .env file (the format: `secrets_app/dotenv.py`): a plan of every line first, then
one all-or-nothing write through `secrets.import_secrets`. Nothing is ever overwritten."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from secrets_app import dotenv, permissions
from secrets_app.errors import DotenvConflicts, DotenvInvalid, SecretAlreadyExists
from secrets_app.models import Secret, Workspace
from secrets_app.permissions import Action
from secrets_app.selectors import secrets as secret_selectors
from secrets_app.services.secrets import clean_tag_names, import_secrets, require_tagging_rights, validate_new_secret
from secrets_app.validators import SECRET_KEY_PATTERN

# Importing a .env file (the format: secrets_app/dotenv.py)

DOTENV_NEW, DOTENV_CONFLICT, DOTENV_INVALID = "new", "conflict", "invalid"
DOTENV_CONFLICT_MESSAGE = (
    "A secret with this key already exists in this workspace; an import never replaces one (secrets are "
    "immutable): delete it first, or leave this line out."
)
DOTENV_EMPTY_VALUE_MESSAGE = "The value is empty: the console stores no empty values; give one or leave this line out."


@dataclass(frozen=True)
class DotenvImportLine:
    """One line of a .env import as a preview shows it: the key only if it is a valid key (an
    unreadable line may be a piece of a value), never the value."""

    line: int
    status: str
    key: str = ""
    code: str = ""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"line": self.line, "key": self.key or None, "status": self.status}
        if self.error:
            answer.update(code=self.code, error=self.error)
        return answer


@dataclass(frozen=True)
class DotenvImportPlan:
    """What importing a .env file would do, line by line, and the entries it would write."""

    lines: list[DotenvImportLine]
    tag_names: list[str]
    entries: list[tuple[str, str, list[str]]] = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((DOTENV_NEW, DOTENV_CONFLICT, DOTENV_INVALID), 0)
        for line in self.lines:
            counts[line.status] += 1
        return counts

    @property
    def importable(self) -> bool:
        return all(line.status == DOTENV_NEW for line in self.lines)

    @property
    def refused_lines(self) -> list[DotenvImportLine]:
        return [line for line in self.lines if line.status != DOTENV_NEW]

    def with_conflicts(self, keys: Iterable[str]) -> DotenvImportPlan:
        """The same plan, with these keys found taken after all."""
        taken = set(keys)
        lines = [
            DotenvImportLine(line.line, DOTENV_CONFLICT, line.key, SecretAlreadyExists.code, DOTENV_CONFLICT_MESSAGE)
            if line.key in taken and line.status == DOTENV_NEW
            else line
            for line in self.lines
        ]
        return DotenvImportPlan(lines=lines, tag_names=self.tag_names, entries=self.entries)


def _invalid_dotenv_line(assignment: dotenv.Assignment, error: ValidationError) -> DotenvImportLine:
    problems = [problem for field_errors in error.error_dict.values() for problem in field_errors]
    message = " ".join(
        DOTENV_EMPTY_VALUE_MESSAGE if problem.code == "empty_value" else " ".join(problem.messages)
        for problem in problems
    )
    key = "" if "key" in error.error_dict else assignment.key
    return DotenvImportLine(assignment.line, DOTENV_INVALID, key, problems[0].code or "invalid_input", message)


@sensitive_variables()
def plan_dotenv_import(*, actor: Any, workspace: Workspace, text: str, tags: Iterable[str] = ()) -> DotenvImportPlan:
    """Read a .env file for import into `workspace`: each line new, a conflict or invalid, with
    the same rules (and permission checks) as adding one secret. Writes nothing."""
    permissions.require(actor, Action.CREATE_SECRET, workspace)
    try:
        tag_names = clean_tag_names(tags)
    except ValidationError as error:
        raise ValidationError({"tags": error}) from None
    require_tagging_rights(actor, workspace, tag_names)
    try:
        parsed = dotenv.parse(text)
    except dotenv.DotenvRefused as error:
        raise ValidationError({"dotenv": ValidationError(error.message, code=error.code)}) from None
    lines = [
        DotenvImportLine(
            problem.line,
            DOTENV_INVALID,
            problem.key if SECRET_KEY_PATTERN.fullmatch(problem.key) else "",
            problem.code,
            problem.message,
        )
        for problem in parsed.problems
    ]
    valid = []
    for assignment in parsed.assignments:
        try:
            validate_new_secret(assignment.key, assignment.value, ())
        except ValidationError as error:
            lines.append(_invalid_dotenv_line(assignment, error))
        else:
            valid.append(assignment)
    taken = secret_selectors.secret_keys_taken(workspace, [assignment.key for assignment in valid])
    for assignment in valid:
        if assignment.key in taken:
            lines.append(
                DotenvImportLine(
                    assignment.line,
                    DOTENV_CONFLICT,
                    assignment.key,
                    SecretAlreadyExists.code,
                    DOTENV_CONFLICT_MESSAGE,
                )
            )
        else:
            lines.append(DotenvImportLine(assignment.line, DOTENV_NEW, assignment.key))
    lines.sort(key=lambda line: line.line)
    entries = [(assignment.key, assignment.value, tag_names) for assignment in valid if assignment.key not in taken]
    return DotenvImportPlan(lines=lines, tag_names=tag_names, entries=entries)


@sensitive_variables()
def import_dotenv(
    *, actor: Any, workspace: Workspace, text: str, tags: Iterable[str] = (), ip_address: str | None = None
) -> list[Secret]:
    """Import a .env file's secrets (each with `tags`) into `workspace` through `import_secrets`:
    one transaction, all or nothing. Refused whole if a line is invalid (DotenvInvalid) or a key
    exists (DotenvConflicts): nothing is ever overwritten."""
    plan = plan_dotenv_import(actor=actor, workspace=workspace, text=text, tags=tags)
    counts = plan.counts
    if counts[DOTENV_INVALID]:
        raise DotenvInvalid(plan)
    if counts[DOTENV_CONFLICT]:
        raise DotenvConflicts(plan)
    try:
        return import_secrets(actor=actor, workspace=workspace, entries=plan.entries, ip_address=ip_address)
    except SecretAlreadyExists as error:
        # Someone added one of the keys after the plan was read; the transaction wrote nothing.
        raise DotenvConflicts(plan.with_conflicts(error.keys)) from None
