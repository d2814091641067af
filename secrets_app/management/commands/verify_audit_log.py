"""Check the audit log's HMAC chains: name the first altered or missing event.

    manage.py verify_audit_log

Exits with status 1 when any event fails. Keep the summary it prints (events and chains) with
your backups: deleting the newest events of a chain leaves no gap to find, so a count that went
down between two runs is the sign of that.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from secrets_app.selectors.audit import audit_chain_report

SHOWN = 50


class Command(BaseCommand):
    help = "Verify the audit log's HMAC chains; name the first altered or missing event."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_report()
        self.stdout.write(f"Checked {report.events:,} audit events in {report.chains:,} chains.")
        if not report.problems:
            self.stdout.write("Audit log intact: every event matches its MAC and no chain has a gap.")
            return
        for problem in report.problems[:SHOWN]:
            self.stderr.write(f"  {problem.description}")
        if len(report.problems) > SHOWN:
            self.stderr.write(f"  ... and {len(report.problems) - SHOWN:,} more")
        raise CommandError(
            f"Audit log tampered with: {len(report.problems):,} problems; first: {report.problems[0].description}"
        )
