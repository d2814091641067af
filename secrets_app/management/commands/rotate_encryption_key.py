"""Re-encrypt every stored value still sealed under an older key of the key ring.

    manage.py rotate_encryption_key [--dry-run] [--batch-size 500]

Rotation, step by step (see the README's Security section): add the new key to the front of
SECRETS_ENCRYPTION_KEYS (or name it in SECRETS_ENCRYPTION_ACTIVE_KEY) on every server, then run
this. Each batch is one transaction, so the command can be stopped or killed at any moment and
simply run again: rows already resealed are not touched twice, and a half-done batch is rolled
back, still sealed (and readable) under its old key. Remove an old key from the ring only once
this reports no values under it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_app import crypto
from secrets_app.selectors.keys import sealed_value_counts, secrets_sealed_under
from secrets_app.services.keys import reseal_secrets, reseal_totp_secrets

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Re-encrypt values sealed under older keys with the active key, in resumable batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report what would be re-encrypted; write nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args: Any, dry_run: bool, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        ring = crypto.key_ring()
        counts = sealed_value_counts()
        self._print_counts("Values per encryption key id", counts, ring)
        rotatable = {
            key_id: rows for key_id, rows in counts.items() if key_id != ring.active_key_id and key_id in ring.keys
        }
        missing = {key_id: rows for key_id, rows in counts.items() if key_id not in ring.keys}
        total = sum(rotatable.values())
        if not dry_run:
            totp_resealed, totp_unreadable = reseal_totp_secrets()
            self.stdout.write(
                f"Two-factor (TOTP) secrets re-encrypted: {totp_resealed:,}; could not be opened: {totp_unreadable:,}."
            )
        if dry_run:
            self.stdout.write(
                f"Dry run: {total:,} values would be re-encrypted under {ring.active_key_id!r}; nothing written."
            )
            self._refuse_missing_keys(missing)
            return
        if not total:
            self.stdout.write(f"Nothing to do: every readable value is sealed under {ring.active_key_id!r}.")
            self._refuse_missing_keys(missing)
            return

        self.stdout.write(
            f"Re-encrypting {total:,} values under {ring.active_key_id!r}, {batch_size:,} per transaction."
        )
        resealed: dict[str, int] = {}
        unreadable = []
        done = 0
        for key_id in rotatable:
            after = None
            while batch := secrets_sealed_under(key_id, after=after, limit=batch_size):
                outcome = reseal_secrets(batch, from_key_id=key_id)
                resealed[key_id] = resealed.get(key_id, 0) + outcome.resealed
                unreadable += outcome.unreadable
                done += len(batch)
                after = batch[-1].id
                self._print_progress(done, total)

        self.stdout.write(f"Re-encrypted {sum(resealed.values()):,} values; {len(unreadable):,} could not be opened.")
        self._print_counts("Values per encryption key id now", sealed_value_counts(), ring)
        if unreadable:
            for secret in unreadable[:20]:
                self.stderr.write(
                    f"  cannot open secret {secret.id} ({secret.key!r} in workspace {secret.workspace_id})"
                )
            raise CommandError(
                f"{len(unreadable):,} values could not be opened (altered data, or sealed for another row) "
                "and were left as they are."
            )
        self._refuse_missing_keys(missing)

    def _print_counts(self, title: str, counts: dict[str, int], ring: crypto.KeyRing) -> None:
        self.stdout.write(f"{title} (active: {ring.active_key_id}):")
        if not counts:
            self.stdout.write("  (no values stored)")
        for key_id, rows in counts.items():
            note = (
                "active"
                if key_id == ring.active_key_id
                else "older key"
                if key_id in ring.keys
                else "NOT IN THE KEY RING"
            )
            self.stdout.write(f"  {key_id:<32} {rows:>12,}  {note}")

    def _print_progress(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // total
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        # One line per batch when the output is a file or a pipe, one redrawn line in a terminal.
        ending = "\r" if self.stdout.isatty() and done < total else "\n"
        self.stdout.write(f"[{bar}] {done:>12,}/{total:,} {100 * done // total:>3}%", ending=ending)
        self.stdout.flush()

    def _refuse_missing_keys(self, missing: dict[str, int]) -> None:
        if missing:
            named = ", ".join(f"{key_id!r} ({rows:,} values)" for key_id, rows in missing.items())
            raise CommandError(
                f"Values are sealed under key ids missing from {crypto.KEYS_VARIABLE}: {named}. "
                "They cannot be opened until that key is back in the ring."
            )
