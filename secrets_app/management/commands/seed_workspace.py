"""Fill a team workspace with generated secrets, tags and tag grants, through the services.

For demos, benchmarks and scale tests:
    manage.py seed_workspace --workspace bench --secrets 10000 --tags 200 --grants 1000
"""

from __future__ import annotations

import math
import secrets as random_tokens
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

from secrets_app.models import Workspace
from secrets_app.permissions import TAG_PERMISSION_NAMES
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.secrets import import_secrets
from secrets_app.services.workspaces import create_team_workspace

BATCH = 2000
GRANTEE_USERS = 50
GRANTEE_GROUPS = 10
USERS_PER_GROUP = 5


@dataclass
class SeededWorkspace:
    workspace: Workspace
    owner: Any
    grantee_users: list[Any]
    groups: list[Group]


def _user(username: str) -> Any:
    user_model = get_user_model()
    return user_model.objects.filter(username=username).first() or user_model.objects.create_user(username=username)


def seed_workspace(*, slug: str, secrets: int, tags: int, grants: int, owner: str = "") -> SeededWorkspace:
    """Create (or extend) team workspace `slug` with `secrets` secrets spread over `tags` tags, and
    `grants` grants on those tags to generated users and groups."""
    owner_user = _user(owner or f"{slug}-owner")
    workspace = Workspace.objects.filter(slug=slug).first() or create_team_workspace(
        actor=owner_user, name=slug.title(), slug=slug
    )
    tag_names = [f"team:t{number:03}" for number in range(tags)]
    start = workspace.secrets.count()
    for batch_start in range(start, start + secrets, BATCH):
        batch_end = min(batch_start + BATCH, start + secrets)
        import_secrets(
            actor=owner_user,
            workspace=workspace,
            entries=[
                (f"SECRET_{number:06}", random_tokens.token_urlsafe(24), [tag_names[number % tags]] if tags else [])
                for number in range(batch_start, batch_end)
            ],
        )
    users = [_user(f"{slug}-user-{number:03}") for number in range(GRANTEE_USERS)]
    groups = []
    for number in range(GRANTEE_GROUPS):
        group, _ = Group.objects.get_or_create(name=f"{slug}-group-{number:02}")
        group.user_set.add(*users[number * USERS_PER_GROUP : (number + 1) * USERS_PER_GROUP])
        groups.append(group)
    grantees = [("user", user.username) for user in users] + [("group", group.name) for group in groups]
    # Spread the grants: tag and grantee both advance with every grant; once every (tag, grantee)
    # pair has one, the next round grants the next permission.
    permission_names = list(TAG_PERMISSION_NAMES)
    rounds = math.lcm(len(tag_names), len(grantees)) if tag_names else 0
    if grants > rounds * len(permission_names):
        raise ValueError(f"At most {rounds * len(permission_names)} distinct grants fit {tags} tags.")
    for number in range(grants):
        kind, name = grantees[number % len(grantees)]
        grant_tag_permissions(
            actor=owner_user,
            workspace=workspace,
            tag_name=tag_names[number % len(tag_names)],
            permission_names=[permission_names[number // rounds]],
            **({"username": name} if kind == "user" else {"group_name": name}),
        )
    return SeededWorkspace(workspace=workspace, owner=owner_user, grantee_users=users, groups=groups)


class Command(BaseCommand):
    help = "Fill a team workspace with generated secrets, tags and tag grants."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", default="seeded", help="slug of the team workspace (created if missing)")
        parser.add_argument("--secrets", type=int, default=1000)
        parser.add_argument("--tags", type=int, default=20)
        parser.add_argument("--grants", type=int, default=50)
        parser.add_argument("--owner", default="", help="username of the owner (created if missing)")

    def handle(self, *args: Any, **options: Any) -> None:
        seeded = seed_workspace(
            slug=options["workspace"],
            secrets=options["secrets"],
            tags=options["tags"],
            grants=options["grants"],
            owner=options["owner"],
        )
        self.stdout.write(
            f"Workspace {seeded.workspace.slug}: {seeded.workspace.secrets.count()} secrets, "
            f"{seeded.workspace.tags.count()} tags; owner {seeded.owner.username}."
        )
