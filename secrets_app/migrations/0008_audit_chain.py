"""Tamper-evident audit log: each event becomes a link of an HMAC chain.

Events written before this migration are linked, in id order, into one chain of their own,
keyed with AUDIT_HMAC_KEY as it is set when the migration runs.
"""

import uuid

import django.utils.timezone
from django.db import migrations, models

BATCH = 2000


def link_existing_events(apps, schema_editor):
    from secrets_app.crypto import audit_mac
    from secrets_app.models import AuditEvent

    historical = apps.get_model("secrets_app", "AuditEvent")
    chain_id, mac, pending = uuid.uuid4(), "", []
    for seq, event in enumerate(historical.objects.order_by("id").iterator(chunk_size=BATCH), start=1):
        event.chain_id, event.chain_seq = chain_id, seq
        # The canonical content is the current model's: build one with the same field values.
        mac = event.mac = audit_mac(mac, AuditEvent(**{f.attname: getattr(event, f.attname) for f in historical._meta.concrete_fields}).chained_content())
        pending.append(event)
        if len(pending) == BATCH:
            historical.objects.bulk_update(pending, ["chain_id", "chain_seq", "mac"])
            pending = []
    historical.objects.bulk_update(pending, ["chain_id", "chain_seq", "mac"])


class Migration(migrations.Migration):
    dependencies = [("secrets_app", "0007_audit_action_exported")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_seq",
            field=models.PositiveBigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(link_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_id",
            field=models.UUIDField(editable=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_seq",
            field=models.PositiveBigIntegerField(editable=False),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.UniqueConstraint(fields=("chain_id", "chain_seq"), name="audit_chain_position"),
        ),
    ]
