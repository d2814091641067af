"""Encryption keys: re-sealing values (and TOTP secrets) under the active key of the ring
(`manage.py rotate_encryption_key`), each committed batch audited."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from allauth.mfa.models import Authenticator
from django.db import transaction

from secrets_app import crypto
from secrets_app.crypto import DecryptionFailed
from secrets_app.models import AuditEvent, Secret
from secrets_app.services import audit


@dataclass
class ResealedBatch:
    resealed: int = 0
    gone: int = 0
    unreadable: list[Secret] = field(default_factory=list)


def reseal_secrets(secrets: list[Secret], *, from_key_id: str = "") -> ResealedBatch:
    """Seal these secrets' values again under the active key, in one transaction, audited in it
    (`encryption.rotated`, one event per batch): a run stopped at any point leaves a record of
    exactly the batches it committed.

    A row deleted (or already resealed) since it was read counts as gone. A row that cannot be
    opened is left exactly as it is and reported: rotation never replaces what it cannot read.
    """
    outcome = ResealedBatch()
    with transaction.atomic():
        for secret in secrets:
            try:
                written = Secret.objects.reseal(secret)
            except DecryptionFailed:
                outcome.unreadable.append(secret)
                continue
            if written:
                outcome.resealed += 1
            else:
                outcome.gone += 1
        audit.record_event(
            action=AuditEvent.Action.ENCRYPTION_KEY_ROTATED,
            detail={
                "to_key_id": crypto.key_ring().active_key_id,
                "from_key_id": from_key_id,
                "resealed": outcome.resealed,
                "unreadable": len(outcome.unreadable),
            },
        )
    return outcome


def reseal_totp_secrets() -> tuple[int, int]:
    """Seal every TOTP authenticator's secret under the active key too (they are sealed under the
    ring like values: identity.MFAAdapter). Returns (resealed, unreadable); an unreadable one is left
    as it is. One transaction per authenticator row; there is one per user at most."""
    resealed = unreadable = 0
    active = crypto.key_ring().active_key_id
    for authenticator in Authenticator.objects.filter(type=Authenticator.Type.TOTP).iterator():
        sealed = authenticator.data.get("secret", "")
        try:
            if crypto.sealed_key_id(base64.urlsafe_b64decode(sealed)) == active:
                continue
            secret = crypto.unseal_text(sealed, crypto.TOTP_ASSOCIATED_DATA)
        except (DecryptionFailed, ValueError):
            unreadable += 1
            continue
        with transaction.atomic():
            authenticator.data["secret"] = crypto.seal_text(secret, crypto.TOTP_ASSOCIATED_DATA)
            authenticator.save(update_fields=["data"])
        resealed += 1
    return resealed, unreadable
