"""Keyed fingerprints of values, for "same value as" and "is this value stored here?"."""

from django.db import migrations, models

import secrets_app.fields

BATCH = 1000


def fingerprint_existing_values(apps, schema_editor):
    from secrets_app import crypto

    secret_model = apps.get_model("secrets_app", "Secret")
    pending = []
    for secret in secret_model.objects.filter(fingerprint="").iterator(chunk_size=BATCH):
        aad = crypto.secret_associated_data(workspace_id=secret.workspace_id, secret_id=secret.id, key=secret.key)
        try:
            plaintext = crypto.unseal(secret.value, aad)
        except crypto.DecryptionFailed:
            continue  # left without a fingerprint: it matches nothing
        secret.fingerprint = crypto.value_fingerprint(plaintext, workspace_id=secret.workspace_id)
        pending.append(secret)
        if len(pending) == BATCH:
            secret_model.objects.bulk_update(pending, ["fingerprint"])
            pending = []
    secret_model.objects.bulk_update(pending, ["fingerprint"])


class Migration(migrations.Migration):
    dependencies = [("secrets_app", "0010_audit_action_sessions")]

    operations = [
        migrations.AddField(
            model_name="secret",
            name="fingerprint",
            field=secrets_app.fields.SealedValueFingerprintField(default="", editable=False, max_length=64, sealed_field="value"),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="secret",
            name="value",
            field=secrets_app.fields.EncryptedTextField(fingerprint_field="fingerprint"),
        ),
        migrations.RunPython(fingerprint_existing_values, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="secret",
            index=models.Index(fields=["workspace", "fingerprint"], name="secret_value_fingerprint"),
        ),
    ]
