"""Keep the id of the key that sealed each value in an indexed column, for key rotation."""

from django.db import migrations, models

import secrets_app.fields

BATCH = 2000


def copy_key_ids_from_headers(apps, schema_editor):
    from secrets_app.crypto import sealed_key_id

    secret_model = apps.get_model("secrets_app", "Secret")
    rows = secret_model.objects.filter(key_id="").only("id", "value")
    pending = []
    for secret in rows.iterator(chunk_size=BATCH):
        secret.key_id = sealed_key_id(secret.value)
        pending.append(secret)
        if len(pending) == BATCH:
            secret_model.objects.bulk_update(pending, ["key_id"])
            pending = []
    secret_model.objects.bulk_update(pending, ["key_id"])


class Migration(migrations.Migration):
    dependencies = [("secrets_app", "0004_audit_without_time_index")]

    operations = [
        migrations.AddField(
            model_name="secret",
            name="key_id",
            field=secrets_app.fields.SealingKeyIdField(
                default="",
                editable=False,
                help_text="Id of the encryption key the value is sealed with.",
                max_length=32,
                sealed_field="value",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(copy_key_ids_from_headers, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="secret",
            index=models.Index(fields=["key_id", "id"], name="secret_sealing_key"),
        ),
    ]
