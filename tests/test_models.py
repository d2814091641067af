"""The Secret model and its encrypted field: storage, binding, immutability."""

import base64
import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import QuerySet

from secrets_app import crypto
from secrets_app.crypto import DecryptionFailed
from secrets_app.errors import SecretImmutable
from secrets_app.fields import SealedValue
from secrets_app.models import AuditEvent, Membership, Role, Secret, Workspace
from secrets_app.services.secrets import create_secret, delete_secret
from secrets_app.services.workspaces import add_member

pytestmark = pytest.mark.django_db

AWKWARD_VALUES = [
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
    "  leading and trailing spaces  ",
    "\n\nblank lines around\n\n",
    "windows\r\nline\r\nendings\r\n",
    "\ttabs\tand\u00a0non-breaking\u2003spaces",
    "Unicode: héllo wörld ✓ 日本語 🔑 \u200b zero-width",
    '{"json": ["with", "quotes", "\\\\backslash"]}',
    "x",
    "é" * (32 * 1024),  # 64 KiB of UTF-8 exactly
]


def raw_stored_bytes(secret_id) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value FROM secrets_app_secret WHERE id = %s",
            [secret_id.hex if connection.vendor == "sqlite" else secret_id],
        )
        row = cursor.fetchone()
    return bytes(row[0]) if row else b""


def test_new_user_gets_a_personal_workspace_they_own(alice):
    workspace = Workspace.objects.get(personal_owner=alice)
    assert workspace.kind == Workspace.Kind.PERSONAL
    assert workspace.slug == "alice"
    assert list(workspace.memberships.values_list("user__username", "role")) == [("alice", Role.OWNER)]


def test_createsuperuser_also_gets_a_personal_workspace(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "x-Very-long-pass-9")
    call_command(
        "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com", stdout=io.StringIO()
    )
    root = get_user_model().objects.get(username="root")
    assert Workspace.objects.filter(personal_owner=root, kind="personal").exists()


def test_personal_slugs_stay_unique_when_usernames_collide(make_user):
    make_user("Ops")
    make_user("ops")
    slugs = sorted(Workspace.objects.filter(kind="personal").values_list("slug", flat=True))
    assert slugs == ["ops", "ops-2"]


@pytest.mark.parametrize("value", AWKWARD_VALUES, ids=range(len(AWKWARD_VALUES)))
def test_awkward_values_round_trip_byte_exactly(alice, value):
    workspace = alice.personal_workspace
    secret = create_secret(actor=alice, workspace=workspace, key="AWKWARD", value=value)
    reloaded = Secret.objects.get(pk=secret.pk)
    assert reloaded.reveal_value() == value
    assert reloaded.reveal_value().encode("utf-8") == value.encode("utf-8")


def test_database_holds_only_the_sealed_form_bound_to_the_row(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="TOKEN", value="plain-token-value")
    stored = raw_stored_bytes(secret.pk)
    assert b"plain-token-value" not in stored
    assert stored[0] == crypto.FORMAT_VERSION
    assert crypto.unseal(stored, secret.associated_data()) == "plain-token-value"


def test_instance_keeps_only_ciphertext_after_save(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="TOKEN", value="in-memory")
    assert isinstance(secret.value, SealedValue)
    assert "in-memory" not in repr(secret.__dict__)


def test_reading_the_field_gives_ciphertext_never_the_value(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="TOKEN", value="attr-canary")
    loaded = Secret.objects.get(pk=secret.pk)
    assert isinstance(loaded.value, SealedValue)
    assert b"attr-canary" not in loaded.value and "attr-canary" not in str(loaded.value)


def test_ciphertext_copied_to_another_row_fails_loudly_instead_of_reading_the_wrong_value(alice):
    workspace = alice.personal_workspace
    source = create_secret(actor=alice, workspace=workspace, key="SOURCE", value="source-value")
    target = create_secret(actor=alice, workspace=workspace, key="TARGET", value="target-value")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE secrets_app_secret SET value = (SELECT value FROM secrets_app_secret WHERE key = %s) "
            "WHERE key = %s",
            ["SOURCE", "TARGET"],
        )
    copied = Secret.objects.get(pk=target.pk)
    with pytest.raises(DecryptionFailed):
        copied.reveal_value()
    assert Secret.objects.get(pk=source.pk).reveal_value() == "source-value"


def test_ciphertext_copied_to_another_workspace_with_the_same_key_fails(alice, team):
    personal = create_secret(actor=alice, workspace=alice.personal_workspace, key="SAME", value="personal")
    create_secret(actor=alice, workspace=team, key="SAME", value="team")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE secrets_app_secret SET value = %s WHERE workspace_id = %s AND key = 'SAME'",
            [raw_stored_bytes(personal.pk), team.pk],
        )
    with pytest.raises(DecryptionFailed):
        Secret.objects.get(workspace=team, key="SAME").reveal_value()


def test_changing_secret_key_setting_leaves_every_value_readable(alice, settings):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="survives")
    settings.SECRET_KEY = "an entirely different django secret key for signing " * 2
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "survives"


def test_values_sealed_under_a_retired_active_key_read_after_a_new_key_is_added(alice, settings):
    old_ring = settings.SECRETS_ENCRYPTION_KEYS
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="old-key-value")
    new_key = base64.b64encode(os.urandom(32)).decode()
    settings.SECRETS_ENCRYPTION_KEYS = f"newest:{new_key},{old_ring}"
    settings.SECRETS_ENCRYPTION_ACTIVE_KEY = "newest"
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "old-key-value"
    fresh = create_secret(actor=alice, workspace=alice.personal_workspace, key="K2", value="new")
    assert crypto.sealed_key_id(raw_stored_bytes(fresh.pk)) == "newest"


def test_listing_with_deferred_values_survives_a_corrupt_row(alice):
    workspace = alice.personal_workspace
    create_secret(actor=alice, workspace=workspace, key="GOOD", value="good")
    broken = create_secret(actor=alice, workspace=workspace, key="BROKEN", value="broken")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE secrets_app_secret SET value = %s WHERE key = 'BROKEN'", [b"\x01garbage"])
    keys = [s.key for s in Secret.objects.filter(workspace=workspace).defer("value")]
    assert keys == ["BROKEN", "GOOD"]
    with pytest.raises(DecryptionFailed):
        Secret.objects.get(pk=broken.pk).reveal_value()


def test_saving_a_changed_key_is_refused(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    secret = Secret.objects.get(pk=secret.pk)
    secret.key = "RENAMED"
    with pytest.raises(SecretImmutable):
        secret.save()
    assert Secret.objects.filter(key="K").exists() and not Secret.objects.filter(key="RENAMED").exists()


def test_saving_a_changed_value_is_refused(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    secret = Secret.objects.get(pk=secret.pk)
    secret.value = "changed"
    with pytest.raises(SecretImmutable):
        secret.save()
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "v"


def test_moving_a_secret_to_another_workspace_is_refused(alice, team):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    secret.workspace = team
    with pytest.raises(SecretImmutable):
        secret.save()


def test_saving_an_unchanged_secret_keeps_its_value(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    reloaded = Secret.objects.get(pk=secret.pk)
    reloaded.save()
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "v"


@pytest.mark.parametrize("field", ["key", "value", "workspace", "workspace_id", "id"])
def test_queryset_update_of_an_identity_field_is_refused(alice, field):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    new = {"key": "NEW", "value": SealedValue(b"x"), "workspace": None, "workspace_id": 999, "id": secret.pk}[field]
    with pytest.raises(SecretImmutable):
        Secret.objects.filter(pk=secret.pk).update(**{field: new})
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "v"


def test_bulk_update_of_key_is_refused(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    secret.key = "NEW"
    with pytest.raises(SecretImmutable):
        Secret.objects.bulk_update([secret], ["key"])


def test_plaintext_can_never_be_written_through_a_raw_update(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    with pytest.raises(TypeError), transaction.atomic():
        QuerySet.update(Secret.objects.filter(pk=secret.pk), value="plaintext")
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "v"


def test_repr_and_str_of_a_secret_never_hold_the_value(alice):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="repr-canary")
    for text in (repr(secret), str(secret), repr(Secret.objects.get(pk=secret.pk)), repr(secret.__dict__["value"])):
        assert "repr-canary" not in text


def test_dumpdata_writes_ciphertext_never_plaintext(alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="dump-canary-value")
    out = io.StringIO()
    call_command("dumpdata", "secrets_app.secret", stdout=out)
    dumped = out.getvalue()
    assert "dump-canary-value" not in dumped
    assert '"value": "sealed:' in dumped


def test_dumpdata_and_loaddata_round_trip_keeps_the_value(alice, tmp_path):
    secret = create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="round-trip")
    fixture = tmp_path / "secrets.json"
    call_command("dumpdata", "secrets_app.secret", output=str(fixture))
    Secret.objects.all().delete()
    call_command("loaddata", str(fixture), stdout=io.StringIO())
    assert Secret.objects.get(pk=secret.pk).reveal_value() == "round-trip"


def test_deleting_a_secret_erases_its_ciphertext_and_frees_the_key(alice):
    workspace = alice.personal_workspace
    secret = create_secret(actor=alice, workspace=workspace, key="K", value="first")
    stored = raw_stored_bytes(secret.pk)
    delete_secret(actor=alice, secret=secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM secrets_app_secret")
        assert all(bytes(row[0]) != stored for row in cursor.fetchall())
    again = create_secret(actor=alice, workspace=workspace, key="K", value="second")
    assert Secret.objects.get(pk=again.pk).reveal_value() == "second"


def test_audit_events_cannot_be_changed_or_deleted(alice):
    event = AuditEvent.objects.filter(workspace=alice.personal_workspace).first()
    event.action = "forged"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(action="forged")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


def test_deleting_a_user_keeps_their_audit_history(alice, team):
    create_secret(actor=alice, workspace=team, key="K", value="v")
    bob = get_user_model().objects.create_user("bob")
    add_member(actor=alice, workspace=team, username="bob", role=Role.OWNER)
    count = AuditEvent.objects.count()
    alice.delete()
    assert AuditEvent.objects.count() == count
    assert AuditEvent.objects.filter(actor_username="alice", action="secret.created").exists()
    assert Membership.objects.filter(user=bob, workspace=team).exists()
