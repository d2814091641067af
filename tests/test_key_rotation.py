"""Key rotation (`manage.py rotate_encryption_key`), nonces, and tampered stored values."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import models

from secrets_app import crypto
from secrets_app.fields import SealedValue
from secrets_app.models import AuditEvent, Secret
from secrets_app.selectors.keys import sealed_value_counts
from secrets_app.services.keys import reseal_secrets
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret, delete_secret, import_secrets
from secrets_app.services.workspaces import create_team_workspace
from tests.test_runners import launch, read, runner_client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
OLD_KEY = base64.b64encode(b"o" * 32).decode()
NEW_KEY = base64.b64encode(b"n" * 32).decode()
OLD_RING = f"old:{OLD_KEY}"
ROTATED_RING = f"new:{NEW_KEY},old:{OLD_KEY}"


def value_of(number: int) -> str:
    return f"value {number}: ünïcode, 'quotes', line\nbreak"


@pytest.fixture
def sealed_under_old_key(settings, alice, team):
    """1,200 secrets in two workspaces sealed under `old`; then the ring gains `new` as active key."""
    settings.SECRETS_ENCRYPTION_KEYS = OLD_RING
    personal = create_team_workspace(actor=alice, name="Second", slug="second")
    for workspace, start in ((team, 0), (personal, 600)):
        import_secrets(
            actor=alice,
            workspace=workspace,
            entries=[(f"KEY_{number:05}", value_of(number), []) for number in range(start, start + 600)],
        )
    settings.SECRETS_ENCRYPTION_KEYS = ROTATED_RING
    return {f"{secret.workspace_id}/{secret.key}": secret.id for secret in Secret.objects.all()}


def overwrite_stored_value(secret_id, stored: bytes) -> None:
    """What an attacker with write access to the database can do, past the model's immutability."""
    models.QuerySet.update(Secret.objects.filter(pk=secret_id), value=SealedValue(stored))


def rotate(*args: str) -> str:
    output = io.StringIO()
    call_command("rotate_encryption_key", *args, stdout=output, stderr=output)
    return output.getvalue()


def assert_every_value_opens_under(key_id: str) -> None:
    secrets = list(Secret.objects.all())
    assert secrets
    for secret in secrets:
        assert secret.key_id == key_id == crypto.sealed_key_id(secret.value)
        assert secret.reveal_value() == value_of(int(secret.key.removeprefix("KEY_")))


def test_new_values_record_the_key_id_that_sealed_them(settings, alice, team):
    settings.SECRETS_ENCRYPTION_KEYS = ROTATED_RING
    one = create_secret(actor=alice, workspace=team, key="ONE", value="1")
    import_secrets(actor=alice, workspace=team, entries=[("TWO", "2", [])])
    for secret in Secret.objects.filter(key__in=["ONE", "TWO"]):
        assert secret.key_id == "new" == crypto.sealed_key_id(secret.value)
    assert Secret.objects.get(pk=one.pk).reveal_value() == "1"


def test_rotation_reseals_every_older_value_and_keeps_every_value(sealed_under_old_key):
    output = rotate("--batch-size", "250")

    assert_every_value_opens_under("new")
    assert {f"{secret.workspace_id}/{secret.key}": secret.id for secret in Secret.objects.all()} == sealed_under_old_key
    assert "1,200 values under 'new', 250 per transaction" in output
    assert output.count("%") == 5  # one progress line per batch: 250, 500, 750, 1000, 1200
    assert "[##############################]        1,200/1,200 100%" in output
    assert "Re-encrypted 1,200 values; 0 could not be opened." in output
    summary_now = output.split("Values per encryption key id now")[1]
    assert "new" in summary_now and "1,200" in summary_now and "old" not in summary_now
    # One event per committed batch.
    events = AuditEvent.objects.filter(action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED).order_by("id")
    assert [event.detail for event in events] == [
        {"to_key_id": "new", "from_key_id": "old", "resealed": rows, "unreadable": 0}
        for rows in (250, 250, 250, 250, 200)
    ]

    assert "Nothing to do" in rotate()


def test_dry_run_reports_and_writes_nothing(sealed_under_old_key):
    before = {secret.id: bytes(secret.value) for secret in Secret.objects.all()}
    output = rotate("--dry-run")
    assert "old" in output and "1,200" in output and "older key" in output
    assert "Dry run: 1,200 values would be re-encrypted under 'new'; nothing written." in output
    assert {secret.id: bytes(secret.value) for secret in Secret.objects.all()} == before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED).exists()


def test_a_rotation_that_dies_mid_batch_loses_nothing_and_a_rerun_finishes(sealed_under_old_key, monkeypatch):
    real_reseal = crypto.reseal
    calls = 0

    def dies_on_the_700th(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 700:
            raise KeyboardInterrupt  # the operator's Ctrl-C, half-way through the third batch
        return real_reseal(*args, **kwargs)

    monkeypatch.setattr(crypto, "reseal", dies_on_the_700th)
    with pytest.raises(KeyboardInterrupt):
        rotate("--batch-size", "300")

    # Two whole batches committed; the third rolled back, still sealed (and readable) under `old`.
    assert sealed_value_counts() == {"new": 600, "old": 600}
    # The log says exactly that: two batches of 300, nothing of the third.
    rotated = AuditEvent.objects.filter(action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED)
    assert [event.detail["resealed"] for event in rotated] == [300, 300]
    for secret in Secret.objects.all():
        assert secret.reveal_value() == value_of(int(secret.key.removeprefix("KEY_")))

    monkeypatch.setattr(crypto, "reseal", real_reseal)
    assert "Re-encrypted 600 values" in rotate("--batch-size", "300")
    assert_every_value_opens_under("new")


def test_a_value_that_cannot_be_opened_is_left_alone_and_reported(sealed_under_old_key):
    victim = Secret.objects.get(key="KEY_00007")
    tampered = bytearray(victim.value)
    tampered[-1] ^= 0x01
    overwrite_stored_value(victim.pk, bytes(tampered))

    with pytest.raises(CommandError) as raised:
        rotate()

    assert "1 values could not be opened" in str(raised.value)
    assert bytes(Secret.objects.get(pk=victim.pk).value) == bytes(tampered)
    assert Secret.objects.filter(key_id="new").count() == 1199
    rotated = AuditEvent.objects.filter(action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED)
    assert sum(event.detail["unreadable"] for event in rotated) == 1


def test_values_under_a_key_missing_from_the_ring_are_named_and_the_rest_rotated(settings, sealed_under_old_key):
    settings.SECRETS_ENCRYPTION_KEYS = f"new:{NEW_KEY}"
    with pytest.raises(CommandError) as raised:
        rotate()
    assert "'old' (1,200 values)" in str(raised.value) and "SECRETS_ENCRYPTION_KEYS" in str(raised.value)
    assert Secret.objects.filter(key_id="old").count() == 1200


def test_a_secret_deleted_after_it_was_read_for_rotation_is_not_brought_back(sealed_under_old_key, alice):
    batch = list(Secret.objects.filter(key_id="old").order_by("id")[:3])
    delete_secret(actor=alice, secret=batch[1])

    outcome = reseal_secrets(batch)

    assert (outcome.resealed, outcome.gone, outcome.unreadable) == (2, 1, [])
    assert not Secret.objects.filter(pk=batch[1].pk).exists()


def test_resealing_is_the_only_write_that_may_touch_a_sealed_value(sealed_under_old_key):
    from secrets_app.errors import SecretImmutable

    with pytest.raises(SecretImmutable):
        Secret.objects.update(key_id="new")
    secret = Secret.objects.first()
    with pytest.raises(SecretImmutable):
        Secret.objects.bulk_update([secret], ["key_id"])


def test_rotation_in_a_separate_process_survives_sigkill_and_a_rerun_finishes(tmp_path):
    """A real rotation, killed with SIGKILL part-way, on a database file of its own."""
    database = tmp_path / "rotation.sqlite3"
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "CACHE_URL": "locmemcache://",
        "DEBUG": "true",
        "SECRETS_ENCRYPTION_KEYS": OLD_RING,
    }
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*manage, *args], env={**environment, **extra}, cwd=ROOT, capture_output=True, text=True, check=True
        )

    run("migrate", "--noinput")
    run("seed_workspace", "--workspace", "rotation", "--secrets", "4000", "--tags", "0", "--grants", "0")
    environment["SECRETS_ENCRYPTION_KEYS"] = ROTATED_RING

    rotation = subprocess.Popen(
        [*manage, "rotate_encryption_key", "--batch-size", "100"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    progress_lines = 0
    for line in rotation.stdout:
        progress_lines += line.startswith("[")
        if progress_lines == 5:
            rotation.send_signal(signal.SIGKILL)
            break
    rotation.wait(timeout=30)
    assert rotation.returncode == -signal.SIGKILL

    counts = run("shell", "--no-imports", "-c", CHECK_EVERY_VALUE).stdout
    resealed, remaining = (int(part) for part in counts.split())
    assert resealed >= 500 and remaining > 0 and resealed + remaining == 4000

    rerun = run("rotate_encryption_key", "--batch-size", "500")
    assert f"Re-encrypting {remaining:,} values" in rerun.stdout
    assert run("shell", "--no-imports", "-c", CHECK_EVERY_VALUE).stdout.split() == ["4000", "0"]


# Opens every value (the seeded values are random, so "opens" is the check) and counts key ids.
CHECK_EVERY_VALUE = """
from secrets_app.models import Secret
secrets = list(Secret.objects.all())
assert all(secret.reveal_value() for secret in secrets)
print(sum(s.key_id == "new" for s in secrets), sum(s.key_id == "old" for s in secrets))
"""


def test_a_hundred_thousand_encryptions_use_a_hundred_thousand_distinct_nonces():
    ring = crypto.KeyRing.parse(ROTATED_RING)
    header = len(crypto._header(ring.active_key_id))
    aad = crypto.secret_associated_data(workspace_id=1, secret_id="same-row", key="SAME")
    nonces = {crypto.seal("same value", aad, ring=ring)[header : header + crypto.NONCE_BYTES] for _ in range(100_000)}
    assert len(nonces) == 100_000


def test_flipping_any_byte_of_a_stored_value_gives_runners_one_generic_error(alice, team):
    from tests.test_runners import DEFINITION

    create_secret(actor=alice, workspace=team, key="API_KEY", value="the value")
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="other")
    workflow = register_workflow(actor=alice, workspace=team, name="nightly", definition=DEFINITION)
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    secret = Secret.objects.get(key="API_KEY")
    stored = bytes(secret.value)
    answers = set()
    for position in range(len(stored)):
        tampered = bytearray(stored)
        tampered[position] ^= 0x01
        overwrite_stored_value(secret.pk, bytes(tampered))
        response = read(runner, "API_KEY")
        assert "the value" not in response.content.decode()
        answers.add((response.status_code, response.content))
    assert len(answers) == 1
    ((status, body),) = answers
    assert status == 500 and b"undecryptable" in body
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ_DENIED).count() == len(stored)


def test_two_factor_secrets_are_resealed_under_the_new_key_too(settings, alice, team):
    import pyotp
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP

    settings.SECRETS_ENCRYPTION_KEYS = OLD_RING
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    settings.SECRETS_ENCRYPTION_KEYS = ROTATED_RING
    assert "TOTP) secrets re-encrypted: 1;" in rotate()
    stored = Authenticator.objects.get(user=alice).data["secret"]
    assert crypto.sealed_key_id(base64.urlsafe_b64decode(stored)) == "new"
    # Once the old key is retired, the authenticator app's codes still work.
    settings.SECRETS_ENCRYPTION_KEYS = f"new:{NEW_KEY}"
    authenticator = Authenticator.objects.get(user=alice)
    assert authenticator.wrap().validate_code(pyotp.TOTP("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").now())
