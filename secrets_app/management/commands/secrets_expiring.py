"""List the secrets that expire soon, or have expired, per workspace: for a cron job or a mail.

    manage.py secrets_expiring --days 14 [--workspace acme] [--format text|json]

Never a value: keys, expiry times, days left, and each workspace's owners and grace. Exits 0
whether or not anything is listed; an unknown workspace or a bad --days is an error (status 1).
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from secrets_app.models import Expiry, ExpiryState, Secret, Workspace
from secrets_app.selectors.secrets import secrets_expiring

DAYS_MAX = 36500


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _when(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def _standing(expiry: Expiry) -> str:
    """How a secret stands, in words: "in 3 days", "2 days ago, in grace until ...", ..."""
    if expiry.state in (ExpiryState.ACTIVE, ExpiryState.EXPIRING):
        return "in less than a day" if expiry.days_left < 1 else f"in {_plural(expiry.days_left, 'day')}"
    ago = "less than a day ago" if expiry.days_ago < 1 else f"{_plural(expiry.days_ago, 'day')} ago"
    if expiry.state is ExpiryState.GRACE:
        return f"{ago}; runners may read it until {_when(expiry.grace_ends_at)} (grace)"
    return f"{ago}; runners are refused it"


class Command(BaseCommand):
    help = "List secrets that expire within N days, or have expired, per workspace (never their values)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.SECRET_EXPIRY_WARNING_DAYS,
            help="list secrets that expire within this many days, and those already expired "
            "(default: SECRET_EXPIRY_WARNING_DAYS)",
        )
        parser.add_argument("--workspace", default="", help="only this workspace (its slug)")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        days, slug = options["days"], options["workspace"]
        if not 0 <= days <= DAYS_MAX:
            raise CommandError(f"--days must be a whole number of days from 0 to {DAYS_MAX}, not {days}.")
        if slug and not Workspace.objects.filter(slug=slug).exists():
            raise CommandError(f"No workspace {slug!r}.")
        now = timezone.now()
        found = secrets_expiring(within_days=days, now=now, workspace_slug=slug)
        groups = [(workspace, list(secrets)) for workspace, secrets in groupby(found, key=lambda s: s.workspace)]
        if options["format"] == "json":
            self.stdout.write(json.dumps(self._document(groups, days=days, now=now), indent=2))
        else:
            self._write_text(groups, days=days, now=now)

    @staticmethod
    def _expiry(secret: Secret, now: Any) -> Expiry:
        return Expiry.of(secret.expires_at, grace_days=secret.workspace.expired_secret_grace_days, now=now)

    def _secret_json(self, secret: Secret, now: Any) -> dict[str, Any]:
        expiry = self._expiry(secret, now)
        return {
            "key": secret.key,
            "expires_at": timezone.localtime(secret.expires_at).isoformat(),
            "days_left": expiry.days_left,
            "state": expiry.state.value,
        }

    def _document(self, groups: list[tuple[Workspace, list[Secret]]], *, days: int, now: Any) -> dict[str, Any]:
        return {
            "as_of": timezone.localtime(now).isoformat(),
            "within_days": days,
            "workspaces": [
                {
                    "workspace": workspace.slug,
                    "name": workspace.name,
                    "owners": [
                        {"username": m.user.get_username(), "email": m.user.email} for m in workspace.owner_memberships
                    ],
                    "expired_secret_grace_days": workspace.expired_secret_grace_days,
                    "secrets": [self._secret_json(secret, now) for secret in secrets],
                }
                for workspace, secrets in groups
            ],
        }

    def _write_text(self, groups: list[tuple[Workspace, list[Secret]]], *, days: int, now: Any) -> None:
        window = f"within {_plural(days, 'day')}" if days else "now"
        if not groups:
            self.stdout.write(f"No secret expires {window}, and none has expired (as of {_when(now)}).")
            return
        total = sum(len(secrets) for _, secrets in groups)
        self.stdout.write(
            f"{_plural(total, 'secret')} in {_plural(len(groups), 'workspace')} expire {window} or have expired "
            f"(as of {_when(now)})."
        )
        for workspace, secrets in groups:
            owners = ", ".join(
                f"{m.user.get_username()} <{m.user.email}>" if m.user.email else m.user.get_username()
                for m in workspace.owner_memberships
            )
            grace = workspace.expired_secret_grace_days
            self.stdout.write("")
            self.stdout.write(
                f"{workspace.slug} ({workspace.name}); owners: {owners or 'none'}; "
                f"grace for expired secrets: {_plural(grace, 'day') if grace else 'none'}"
            )
            width = max(len(secret.key) for secret in secrets)
            for secret in secrets:
                verb = "expires" if secret.expires_at > now else "expired"
                standing = _standing(self._expiry(secret, now))
                self.stdout.write(f"  {secret.key:<{width}}  {verb} {_when(secret.expires_at)}, {standing}")
