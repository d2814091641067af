"""Value fingerprints: "same value as" in the list, and "is this value stored here?" for admins."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command

from secrets_app import crypto
from secrets_app.models import AuditEvent, Role, Secret
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.secrets import create_secret
from tests.conftest import error_of, migrate_to, signed_in_client

pytestmark = pytest.mark.django_db

SHARED = "shared-Value-canary-41d"


def secrets_page(client, slug="team"):
    return client.get(f"/settings/developer/{slug}/secrets/").content.decode()


@pytest.fixture
def twins(alice, team):
    """Three secrets in team, two of them holding the same value; the same value also elsewhere."""
    create_secret(actor=alice, workspace=team, key="DB_PASSWORD", value=SHARED)
    create_secret(actor=alice, workspace=team, key="PG_PASS", value=SHARED, tags=["team:data"])
    create_secret(actor=alice, workspace=team, key="OTHER", value="different")
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value=SHARED)
    return team


def test_a_fingerprint_is_a_keyed_hash_bound_to_its_workspace(alice, twins, settings):
    db_password = Secret.objects.get(workspace=twins, key="DB_PASSWORD")
    pg_pass = Secret.objects.get(workspace=twins, key="PG_PASS")
    mine = Secret.objects.get(key="MINE")
    assert len(db_password.fingerprint) == 64 and db_password.fingerprint == pg_pass.fingerprint
    assert mine.fingerprint != db_password.fingerprint  # same value, other workspace: unrelated
    assert db_password.fingerprint != hashlib.sha256(SHARED.encode()).hexdigest()  # not a bare hash
    assert db_password.fingerprint == crypto.value_fingerprint(SHARED, workspace_id=twins.pk)
    settings.SECRETS_FINGERPRINT_KEY = "another key entirely, at least 32 characters"
    assert crypto.value_fingerprint(SHARED, workspace_id=twins.pk) != db_password.fingerprint


def test_the_list_and_the_secret_page_name_the_secrets_with_the_same_value(alice, twins):
    client = signed_in_client(alice)
    page = secrets_page(client)
    assert "same value as PG_PASS" in page and "same value as DB_PASSWORD" in page
    assert page.count("same value as") == 2  # OTHER holds its own value
    assert "MINE" not in page  # never compared across workspaces
    detail = client.get("/settings/developer/team/secrets/DB_PASSWORD/").content.decode()
    assert "Same value as" in detail and "PG_PASS" in detail
    assert "Same value as" not in client.get("/settings/developer/team/secrets/OTHER/").content.decode()
    assert "same value as" not in secrets_page(client, "alice")


def test_the_api_names_them_too(alice_api, twins):
    listed = {s["key"]: s["same_value_as"] for s in alice_api.get("/api/v1/workspaces/team/secrets/").json()["secrets"]}
    assert listed == {"DB_PASSWORD": ["PG_PASS"], "OTHER": [], "PG_PASS": ["DB_PASSWORD"]}
    assert alice_api.get("/api/v1/workspaces/team/secrets/PG_PASS/").json()["same_value_as"] == ["DB_PASSWORD"]


def test_a_secret_you_cannot_see_is_never_named(alice, bob, twins, add_member):
    add_member(bob, Role.VIEWER)
    grant_tag_permissions(actor=alice, workspace=twins, tag_name="team:data", permission_names=["view"], username="bob")
    page = secrets_page(signed_in_client(bob))
    assert "PG_PASS" in page and "DB_PASSWORD" not in page and "same value as" not in page


def test_fingerprints_are_never_shown(alice, twins, make_user):
    root = make_user("root", is_staff=True, is_superuser=True)
    fingerprint = Secret.objects.get(workspace=twins, key="DB_PASSWORD").fingerprint
    client, admin = signed_in_client(alice), signed_in_client(root)
    secret_id = Secret.objects.get(workspace=twins, key="DB_PASSWORD").pk
    bodies = [
        secrets_page(client),
        client.get("/settings/developer/team/secrets/DB_PASSWORD/").content.decode(),
        client.get("/api/v1/workspaces/team/secrets/").content.decode(),
        client.post("/settings/developer/team/activity.jsonl").getvalue().decode(),
        admin.get("/admin/secrets_app/secret/").content.decode(),
        admin.get(f"/admin/secrets_app/secret/{secret_id}/change/").content.decode(),
    ]
    for body in bodies:
        assert fingerprint not in body and fingerprint[:16] not in body


def test_an_admin_learns_which_keys_hold_a_pasted_value_and_the_search_is_audited(alice, twins):
    client = signed_in_client(alice)
    assert "Is a value stored anywhere in this workspace?" in secrets_page(client)
    response = client.post("/settings/developer/team/value-lookup/", {"value": SHARED})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Stored as 2 secrets" in page and "DB_PASSWORD" in page and "PG_PASS" in page
    assert "MINE" not in page and SHARED not in page
    missing = client.post("/settings/developer/team/value-lookup/", {"value": "never-stored"}).content.decode()
    assert "Not stored in this workspace" in missing and "never-stored" not in missing
    events = list(AuditEvent.objects.filter(action=AuditEvent.Action.VALUE_LOOKED_UP).order_by("id"))
    assert [event.detail for event in events] == [
        {"matches": ["DB_PASSWORD", "PG_PASS"], "match_count": 2},
        {"matches": [], "match_count": 0},
    ]
    assert all(event.actor_username == "alice" and event.workspace_slug == "team" for event in events)
    assert not any(SHARED in str(event.detail) for event in events)


def test_the_lookup_is_for_owners_and_admins_only(alice, bob, make_user, twins, add_member):
    carol = make_user("carol")
    add_member(bob, Role.MEMBER)
    add_member(carol, Role.ADMIN)
    assert signed_in_client(carol).post("/settings/developer/team/value-lookup/", {"value": SHARED}).status_code == 200
    member = signed_in_client(bob)
    assert member.post("/settings/developer/team/value-lookup/", {"value": SHARED}).status_code == 403
    assert "Is a value stored anywhere" not in secrets_page(member)
    stranger = signed_in_client(make_user("dave"))
    assert stranger.post("/settings/developer/team/value-lookup/", {"value": SHARED}).status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VALUE_LOOKED_UP).count() == 1


def test_the_lookup_api(alice_api, bob_api, bob, twins, add_member):
    answer = alice_api.post("/api/v1/workspaces/team/value-lookup/", {"value": SHARED})
    assert answer.status_code == 200 and answer.json() == {
        "workspace": "team",
        "keys": ["DB_PASSWORD", "PG_PASS"],
        "count": 2,
    }
    assert alice_api.post("/api/v1/workspaces/alice/value-lookup/", {"value": SHARED}).json()["keys"] == ["MINE"]
    assert error_of(alice_api.post("/api/v1/workspaces/team/value-lookup/", {"value": ""}))[0] == 400
    assert error_of(alice_api.post("/api/v1/workspaces/team/value-lookup/", {}))[0] == 400
    add_member(bob, Role.MEMBER)
    assert error_of(bob_api.post("/api/v1/workspaces/team/value-lookup/", {"value": SHARED}))[0] == 403
    assert SHARED not in answer.content.decode()


def test_rotation_keeps_fingerprints_and_they_are_immutable(alice, twins, settings):
    import base64

    from secrets_app.errors import SecretImmutable

    before = dict(Secret.objects.values_list("key", "fingerprint"))
    settings.SECRETS_ENCRYPTION_KEYS = (
        "next:" + base64.b64encode(b"n" * 32).decode() + "," + settings.SECRETS_ENCRYPTION_KEYS
    )
    call_command("rotate_encryption_key", stdout=io.StringIO())
    assert set(Secret.objects.values_list("key_id", flat=True)) == {"next"}
    assert dict(Secret.objects.values_list("key", "fingerprint")) == before
    with pytest.raises(SecretImmutable):
        Secret.objects.update(fingerprint="")


@pytest.mark.django_db(transaction=True)
def test_the_migration_fingerprints_values_stored_before_it(alice, team):
    create_secret(actor=alice, workspace=team, key="OLD_ONE", value=SHARED)
    create_secret(actor=alice, workspace=team, key="OLD_TWO", value=SHARED)
    expected = Secret.objects.get(key="OLD_ONE").fingerprint
    migrate_to(("secrets_app", "0010_audit_action_sessions"))  # before fingerprints: the column goes
    migrate_to()  # through 0011_value_fingerprint
    assert set(Secret.objects.filter(key__startswith="OLD_").values_list("fingerprint", flat=True)) == {expected}


@pytest.mark.django_db(transaction=True)
def test_the_client_finds_a_value_and_sees_the_same_value_flags(live_server, settings, alice, twins):
    from secrets_app.client import ClientError, ConsoleClient, NotFound, WorkspaceNotFound
    from tests.conftest import PASSWORD

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    console = ConsoleClient(live_server.url)
    console.login("alice", PASSWORD)
    assert console.find_value("team", SHARED) == {"workspace": "team", "keys": ["DB_PASSWORD", "PG_PASS"], "count": 2}
    assert console.find_value("team", "not stored") == {"workspace": "team", "keys": [], "count": 0}
    with pytest.raises(WorkspaceNotFound) as missing:
        console.find_value("nosuch", SHARED)
    assert isinstance(missing.value, NotFound) and missing.value.code == "workspace_not_found"
    listed = {s["key"]: s["same_value_as"] for s in console.list_secrets("team")["secrets"]}
    assert listed["DB_PASSWORD"] == ["PG_PASS"]
    with pytest.raises(ClientError) as refused:
        console.find_value("team", "")
    assert refused.value.status == 400


# Each lookup answers a guess: they are limited per user and workspace (VALUE_LOOKUP_RATE)


def test_a_four_digit_pin_cannot_be_guessed_through_the_lookup(alice_api, alice, twins, settings):
    settings.VALUE_LOOKUP_RATE = "10/h"
    create_secret(actor=alice, workspace=twins, key="PIN", value="4821")
    answers = [alice_api.post("/api/v1/workspaces/team/value-lookup/", {"value": f"{pin:04}"}) for pin in range(122)]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert {error_of(a) for a in answers[10:]} == {(429, "too_many_lookups")}
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Try again later" in refused.json()["error"]["message"]
    assert "PIN" not in refused.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VALUE_LOOKED_UP).count() == 10
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VALUE_LOOKUP_REFUSED).count() == 112


def test_the_limit_is_per_user_and_workspace_and_shared_by_the_page_and_the_api(alice, alice_api, twins, settings):
    settings.VALUE_LOOKUP_RATE = "3/h"
    browser = signed_in_client(alice)
    for _ in range(2):
        assert alice_api.post("/api/v1/workspaces/team/value-lookup/", {"value": SHARED}).status_code == 200
    assert browser.post("/settings/developer/team/value-lookup/", {"value": SHARED}).status_code == 200
    page = browser.post("/settings/developer/team/value-lookup/", {"value": SHARED})
    assert page.status_code == 429 and "Too many value searches" in page.content.decode()
    assert SHARED not in page.content.decode() and int(page["Retry-After"]) > 0
    # Another workspace of hers counts apart.
    assert alice_api.post("/api/v1/workspaces/alice/value-lookup/", {"value": SHARED}).json()["keys"] == ["MINE"]


def test_the_rate_comes_from_the_environment_and_is_checked_at_start_up():
    from tests.test_settings import BASE, run_manage

    result = run_manage("check", **{**BASE, "VALUE_LOOKUP_RATE": "lots"})
    assert result.returncode != 0 and "VALUE_LOOKUP_RATE must be a rate such as 10/h" in result.stderr


def test_only_those_who_may_look_values_up_see_the_same_value_flags(alice, alice_api, bob, bob_api, twins, add_member):
    """A member who may add secrets cannot use a probe secret's flags as a lookup: it would have
    neither the lookup's role nor its rate limit."""
    add_member(bob, Role.MEMBER)
    probe = bob_api.post("/api/v1/workspaces/team/secrets/", {"key": "PROBE", "value": SHARED})
    assert probe.status_code == 201
    assert (probe.json()["same_value_as"], probe.json()["same_value_count"]) == ([], 0)
    listed = {
        s["key"]: s["same_value_count"] for s in bob_api.get("/api/v1/workspaces/team/secrets/").json()["secrets"]
    }
    assert set(listed.values()) == {0}
    assert "same value as" not in secrets_page(signed_in_client(bob))
    # The owner, who may look values up, sees them all.
    owner_view = alice_api.get("/api/v1/workspaces/team/secrets/PROBE/").json()
    assert owner_view["same_value_as"] == ["DB_PASSWORD", "PG_PASS"] and owner_view["same_value_count"] == 2
