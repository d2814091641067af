"""The tamper-evident audit log: HMAC chains, and `manage.py verify_audit_log` naming the first
altered or missing event."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models, transaction

from secrets_app.models import AuditEvent
from secrets_app.services import audit
from secrets_app.services.audit import record_event
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret, delete_secret, import_secrets
from secrets_app.services.workspaces import add_member
from tests.conftest import migrate_to
from tests.test_runners import DEFINITION, launch, read, runner_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_chain():
    """Each test starts a chain of its own: the previous test's events were rolled back."""
    connection.audit_chain = None


@pytest.fixture
def history(alice, bob, team):
    """A dozen events of every kind, including single writes and bulk ones."""
    add_member(actor=alice, workspace=team, username="bob", role="member", ip_address="2001:0db8::0001")
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v1", tags=["env:prod"])
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value="v2")
    import_secrets(actor=alice, workspace=team, entries=[("A", "1", []), ("B", "2", ["env:dev"])])
    workflow = register_workflow(actor=alice, workspace=team, name="nightly", definition=DEFINITION)
    _, session_key = launch(alice, team, workflow)
    assert read(runner_client(session_key), "API_KEY").status_code == 200
    assert read(runner_client(session_key), "NOPE").status_code == 404
    delete_secret(actor=alice, secret=team.secrets.get(key="A"))
    return list(AuditEvent.objects.order_by("id"))


def verify() -> str:
    output = io.StringIO()
    call_command("verify_audit_log", stdout=output, stderr=output)
    return output.getvalue()


def verify_fails() -> str:
    output = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit_log", stdout=output, stderr=output)
    return str(raised.value)


def tamper(event: AuditEvent, **fields) -> None:
    """What someone with write access to the database can do; the app itself never can."""
    models.QuerySet.update(AuditEvent.objects.filter(pk=event.pk), **fields)


def remove(*events: AuditEvent) -> None:
    models.QuerySet.delete(AuditEvent.objects.filter(pk__in=[event.pk for event in events]))


def test_every_event_is_a_link_of_one_unbroken_chain(history):
    assert len(history) >= 12
    assert len({event.chain_id for event in history}) == 1
    assert [event.chain_seq for event in history] == list(range(1, len(history) + 1))
    assert all(len(event.mac) == 64 for event in history)
    output = verify()
    assert f"Checked {len(history)} audit events in 1 chains." in output
    assert "Audit log intact" in output


@pytest.mark.parametrize(
    "change",
    [
        {"secret_key": "OTHER_KEY"},
        {"action": AuditEvent.Action.WORKSPACE_DELETED},
        {"actor_username": "mallory"},
        {"ip_address": "198.51.100.1"},
        {"detail": {"tags": ["env:test"]}},
        {"mac": "0" * 64},
    ],
)
def test_an_altered_event_is_named(history, change):
    victim = history[4]
    tamper(victim, **change)
    message = verify_fails()
    assert message.startswith("Audit log tampered with:")
    assert f"first: altered: event {victim.id} ({AuditEvent.objects.get(pk=victim.pk).action}" in message


def test_a_changed_time_is_an_altered_event(history):
    victim = history[2]
    tamper(victim, at=victim.at.replace(year=2020))
    assert f"first: altered: event {victim.id} " in verify_fails()


def test_a_deleted_event_is_named_by_its_place_in_the_chain(history):
    victim, following = history[5], history[6]
    remove(victim)
    message = verify_fails()
    assert f"first: missing: #{victim.chain_seq} of chain {victim.chain_id}, before event {following.id}" in message


def test_deleted_first_events_are_missing_too(history):
    remove(history[0], history[1])
    assert f"first: missing: #1-#2 of chain {history[0].chain_id}, before event {history[2].id}" in verify_fails()


def test_renumbering_to_hide_a_deletion_breaks_the_next_link(history):
    remove(history[5])
    for event in history[6:]:
        tamper(event, chain_seq=event.chain_seq - 1)
    assert f"first: altered: event {history[6].id} " in verify_fails()


def test_an_event_appended_without_the_key_is_altered(history, settings):
    servers_key = settings.AUDIT_HMAC_KEY
    settings.AUDIT_HMAC_KEY = "a key the attacker chose, since they cannot read the servers'"
    record_event(action=AuditEvent.Action.SECRET_DELETED, secret_key="FORGED")
    settings.AUDIT_HMAC_KEY = servers_key
    forged = AuditEvent.objects.get(secret_key="FORGED")
    assert forged.chain_seq == len(history) + 1
    assert f"first: altered: event {forged.id} " in verify_fails()


def test_events_of_a_rolled_back_transaction_leave_no_gap(alice, team):
    create_secret(actor=alice, workspace=team, key="KEPT", value="v")
    with pytest.raises(RuntimeError), transaction.atomic():
        create_secret(actor=alice, workspace=team, key="ROLLED_BACK", value="v")
        raise RuntimeError("the request failed after the audit write")
    try:
        with transaction.atomic():
            create_secret(actor=alice, workspace=team, key="SAVEPOINT", value="v")
            raise RuntimeError
    except RuntimeError:
        pass
    create_secret(actor=alice, workspace=team, key="AFTER", value="v")
    keys = list(
        AuditEvent.objects.filter(action="secret.created").order_by("chain_seq").values_list("secret_key", flat=True)
    )
    assert keys == ["KEPT", "AFTER"]
    assert "Audit log intact" in verify()


def test_a_failed_audit_write_starts_a_new_chain_and_the_log_stays_verifiable(alice, team, monkeypatch):
    create_secret(actor=alice, workspace=team, key="BEFORE", value="v")
    first_chain = AuditEvent.objects.get(secret_key="BEFORE").chain_id

    def lost_connection(event):
        raise ConnectionError("connection lost mid-commit")

    monkeypatch.setattr(audit, "_insert_audit_event", lost_connection)
    with pytest.raises(ConnectionError):
        record_event(action=AuditEvent.Action.SECRET_DELETED, secret_key="LOST")
    monkeypatch.undo()
    record_event(action=AuditEvent.Action.SECRET_DELETED, secret_key="AFTER")

    after = AuditEvent.objects.get(secret_key="AFTER")
    assert after.chain_id != first_chain and after.chain_seq == 1
    output = verify()
    assert "in 2 chains" in output and "Audit log intact" in output


def test_the_app_never_updates_or_deletes_events(history):
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=history[0].pk).update(secret_key="X")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=history[0].pk).delete()
    with pytest.raises(PermissionError):
        history[0].save()
    with pytest.raises(PermissionError):
        history[0].delete()
    assert "Audit log intact" in verify()


@pytest.mark.django_db(transaction=True)
def test_the_migration_links_events_written_before_the_chain_existed():
    old_event = migrate_to(("secrets_app", "0007_audit_action_exported")).get_model("secrets_app", "AuditEvent")
    for number in range(5):
        old_event.objects.create(
            action="secret.created",
            secret_key=f"OLD_{number}",
            ip_address="2001:db8:0:0:0:0:0:1",
            detail={"tags": ["b", "a"], "z": 1},
        )
    migrate_to()  # through 0008_audit_chain

    linked = list(AuditEvent.objects.order_by("id"))
    assert [event.chain_seq for event in linked] == [1, 2, 3, 4, 5]
    assert len({event.chain_id for event in linked}) == 1
    assert "Checked 5 audit events in 1 chains." in verify() and "intact" in verify()


def raw_update(event: AuditEvent, column: str, text: str) -> None:
    """What a database writer can put in a column the ORM would refuse to read."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET {column} = %s WHERE id = %s", [text, event.pk])


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="PostgreSQL's typed columns cannot hold a time that is no time"
)
def test_a_row_that_cannot_be_read_is_reported_and_the_rest_of_the_log_still_checked(history):
    raw_update(history[2], "at", "not a time at all")
    raw_update(history[5], "ip_address", "999.999.1.1")
    raw_update(history[7], "secret_id", "zz-not-a-uuid")
    tamper(history[9], secret_key="ALTERED_AFTER_THE_BAD_ROWS")
    output = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit_log", stdout=output, stderr=output)
    report = output.getvalue()
    assert f"Checked {len(history)} audit events in 1 chains." in report
    assert f"malformed: event {history[2].id} (" in report and ": its at cannot be read" in report
    assert f"malformed: event {history[5].id} (" in report and ": its ip_address cannot be read" in report
    assert f"malformed: event {history[7].id} (" in report and ": its secret_id cannot be read" in report
    assert f"altered: event {history[9].id} (" in report
    assert "Audit log tampered with: 4 problems" in str(raised.value)


def test_an_altered_event_in_the_middle_is_one_problem_and_the_chain_checks_on(history):
    tamper(history[3], detail={"edited": True})
    message = verify_fails()
    assert "Audit log tampered with: 1 problems" in message and f"event {history[3].id} " in message
