"""Last use: when, by which workflow and execution, for whom each secret was last read, how often in
the last 30 days, and the "not read in N days" filter; all from the audit log, at list time."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from secrets_app.client import ClientError, ConsoleClient
from secrets_app.models import AuditEvent, Secret, Workspace
from secrets_app.services.audit import audit_event, record_events
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import finish_execution, register_workflow
from secrets_app.services.secrets import create_secret
from tests import test_runners
from tests.conftest import PASSWORD, error_of, signed_in_client
from tests.test_runners import launch, read, runner_client

# The runner tests' fixtures: the team's secrets (API_KEY, DB_PASSWORD), and a workflow there.
secrets_in_team = test_runners.secrets_in_team
workflow = test_runners.workflow

pytestmark = pytest.mark.django_db

SECRETS_PAGE = "/settings/developer/team/secrets/"
SECRETS_API = "/api/v1/workspaces/team/secrets/"


def row_of(page: str, key: str) -> str:
    return page.split(f'href="/settings/developer/team/secrets/{key}/"')[1].split("</tr>")[0]


def listed(client, query: str = "") -> dict[str, dict]:
    response = client.get(SECRETS_API + query)
    assert response.status_code == 200
    return {secret["key"]: secret for secret in response.json()["secrets"]}


def read_long_ago(workspace: Workspace, key: str, *, days_ago: float, workflow_reference: str = "team/old") -> None:
    """A runner read recorded `days_ago` days ago, as the runner read records one."""
    secret = Secret.objects.get(workspace=workspace, key=key)
    event = audit_event(
        action=AuditEvent.Action.SECRET_READ,
        actor=secret.created_by,
        workspace=workspace,
        secret=secret,
        detail={"workflow": workflow_reference, "local": False},
    )
    event.at = timezone.now() - datetime.timedelta(days=days_ago)
    record_events([event])


def test_the_list_shows_the_last_read_and_the_reads_of_the_last_30_days(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    for _ in range(3):
        assert read(runner, "API_KEY").status_code == 200
    last = AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ).latest("at")
    page = signed_in_client(alice).get(SECRETS_PAGE).content.decode()
    row = row_of(page, "API_KEY")
    assert f'datetime="{timezone.localtime(last.at).isoformat()}"' in row
    assert "by team/nightly" in row and "for alice" in row
    assert f'<code title="{execution.id}">{str(execution.id)[:8]}</code>' in row
    assert "3 reads in 30 days" in row
    unread = row_of(page, "DB_PASSWORD")
    assert "never" in unread and "0 reads in 30 days" in unread


def test_the_secrets_page_shows_its_last_read_and_its_reads(alice, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "API_KEY")
    read(runner_client(session_key), "API_KEY")
    page = signed_in_client(alice).get(SECRETS_PAGE + "API_KEY/").content.decode()
    last_read = page.split("<dt>Last read</dt>")[1].split("</dd>")[0]
    assert "by team/nightly" in last_read and "for alice" in last_read and str(execution.id) in last_read
    assert "<dt>Reads in the last 30 days</dt><dd>2</dd>" in page


def test_the_api_gives_the_last_read_in_the_list_and_for_one_secret(alice, alice_api, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "API_KEY")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SECRET_READ)
    expected = {
        "last_read_at": event.at.isoformat(),
        "last_read_by_workflow": "team/nightly",
        "last_read_by_user": "alice",
        "last_read_execution": str(execution.id),
        "reads_last_30_days": 1,
    }
    one = alice_api.get(SECRETS_API + "API_KEY/").json()
    assert {name: one[name] for name in expected} == expected
    api_key = listed(alice_api)["API_KEY"]
    assert {name: api_key[name] for name in expected} == expected
    never = listed(alice_api)["DB_PASSWORD"]
    assert [never[name] for name in expected] == [None, None, None, None, 0]


def test_a_local_run_is_shown_as_one_with_its_reader(alice, alice_api):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="v")
    assert read(alice_api, "MINE").status_code == 200
    mine = alice_api.get("/api/v1/workspaces/alice/secrets/MINE/").json()
    assert mine["last_read_by_user"] == "alice" and mine["reads_last_30_days"] == 1
    assert mine["last_read_by_workflow"] is None and mine["last_read_execution"] is None
    row = signed_in_client(alice).get("/settings/developer/alice/secrets/").content.decode()
    assert "(local run)" in row and "for alice" in row


def test_the_reader_is_the_launcher_of_the_run(alice, bob, team, workflow, add_member, alice_api):
    add_member(bob, "member")
    _, session_key = launch(bob, team, workflow)
    read(runner_client(session_key), "API_KEY")
    assert listed(alice_api)["API_KEY"]["last_read_by_user"] == "bob"


def test_reads_older_than_30_days_are_not_counted_but_the_last_read_is_the_latest(
    alice, alice_api, team, workflow, secrets_in_team
):
    read_long_ago(team, "API_KEY", days_ago=45)
    read_long_ago(team, "API_KEY", days_ago=31)
    old = listed(alice_api)["API_KEY"]
    assert old["reads_last_30_days"] == 0 and old["last_read_by_workflow"] == "team/old"
    read_long_ago(team, "API_KEY", days_ago=29)
    _, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "API_KEY")
    recent = listed(alice_api)["API_KEY"]
    assert recent["reads_last_30_days"] == 2 and recent["last_read_by_workflow"] == "team/nightly"


def test_refused_reads_are_not_reads(alice, alice_api, team, workflow):
    execution, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    finish_execution(actor=alice, execution=execution)
    assert error_of(read(runner, "API_KEY"))[0] == 401
    api_key = listed(alice_api)["API_KEY"]
    assert api_key["last_read_at"] is None and api_key["reads_last_30_days"] == 0


def test_a_grantee_sees_the_last_use_of_the_secrets_it_reaches(alice, bob, team, workflow, add_member, bob_api):
    add_member(bob, "viewer")
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:data", permission_names=["view"], username="bob")
    _, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "DB_PASSWORD")
    seen = listed(bob_api)
    assert list(seen) == ["DB_PASSWORD"]  # grants still decide what is seen
    assert seen["DB_PASSWORD"]["reads_last_30_days"] == 1 and seen["DB_PASSWORD"]["last_read_by_user"] == "alice"


# The "not read in N days" filter


@pytest.fixture
def stale(alice, team, workflow):
    """API_KEY read just now, DB_PASSWORD 40 days ago, NEVER_READ never."""
    create_secret(actor=alice, workspace=team, key="NEVER_READ", value="v")
    _, session_key = launch(alice, team, workflow)
    read(runner_client(session_key), "API_KEY")
    read_long_ago(team, "DB_PASSWORD", days_ago=40)
    return team


@pytest.mark.parametrize(
    ("days", "keys"),
    [("30", ["DB_PASSWORD", "NEVER_READ"]), ("60", ["NEVER_READ"]), ("1", ["DB_PASSWORD", "NEVER_READ"])],
)
def test_the_api_lists_secrets_not_read_in_n_days_never_read_included(alice_api, stale, days, keys):
    body = alice_api.get(f"{SECRETS_API}?unread_days={days}").json()
    assert [secret["key"] for secret in body["secrets"]] == keys and body["count"] == len(keys)


def test_the_page_filters_secrets_not_read_in_n_days(alice, stale):
    page = signed_in_client(alice).get(f"{SECRETS_PAGE}?unread_days=30").content.decode()
    assert "2 secrets" in page and "matching" in page
    assert "/secrets/DB_PASSWORD/" in page and "/secrets/NEVER_READ/" in page and "/secrets/API_KEY/" not in page
    assert 'name="unread_days" value="30"' in page


def test_the_unread_filter_combines_with_the_others_and_survives_paging(alice, stale):
    for number in range(55):
        create_secret(
            actor=alice, workspace=stale, key=f"UNUSED_{number:02}", value=f"unused-{number}", tags=["env:old"]
        )
    browser = signed_in_client(alice)
    page = browser.get(f"{SECRETS_PAGE}?tag=env:old&unread_days=30").content.decode()
    assert "55 secrets" in page and "unread_days=30&amp;page=2" in page
    second = browser.get(f"{SECRETS_PAGE}?tag=env:old&unread_days=30&page=2").content.decode()
    assert "UNUSED_54" in second and "NEVER_READ" not in second


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", "3651", "99999999999999999999"])
def test_a_bad_number_of_days_is_a_clear_error_on_the_page(alice, stale, days):
    response = signed_in_client(alice).get(f"{SECRETS_PAGE}?unread_days={days}")
    page = response.content.decode()
    assert response.status_code == 400
    assert "Not read in (days): Give a whole number of days from 1 to 3650, not " in page
    assert "/secrets/NEVER_READ/" not in page  # no list that looks filtered but is not


@pytest.mark.parametrize("days", ["0", "-3", "abc", "3651", "%C2%B2"])
def test_a_bad_number_of_days_is_400_on_the_api(alice_api, stale, days):
    response = alice_api.get(f"{SECRETS_API}?unread_days={days}")
    assert error_of(response) == (400, "invalid_input")
    assert "Give a whole number of days from 1 to 3650" in response.json()["error"]["fields"]["unread_days"][0]


# Cost: a constant number of queries, and nothing more for the runner read


def _queries(client, path: str) -> int:
    client.get(path)  # warm the per-process caches
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


def test_the_list_costs_the_same_queries_whatever_the_reads_and_the_filter(alice, team, workflow):
    browser = signed_in_client(alice)
    before = {path: _queries(browser, path) for path in (SECRETS_PAGE, SECRETS_API)}
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    for number in range(30):
        create_secret(actor=alice, workspace=team, key=f"K{number:02}", value="v")
        read(runner, f"K{number:02}")
    after = {path: _queries(browser, path) for path in (SECRETS_PAGE, SECRETS_API)}
    filtered = {path: _queries(browser, path + "?unread_days=7") for path in (SECRETS_PAGE, SECRETS_API)}
    assert before == after == filtered
    # With the "same value as" query, and the workspace's two-factor policy.
    assert after[SECRETS_PAGE] <= 9 and after[SECRETS_API] <= 7


def test_a_runner_read_writes_only_its_audit_event(alice, team, workflow):
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    read(runner, "API_KEY")  # the session is now in the cache
    with CaptureQueriesContext(connection) as captured:
        assert read(runner, "API_KEY").status_code == 200
    writes = [q["sql"] for q in captured.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(captured.captured_queries) == 3
    assert len(writes) == 1 and "secrets_app_auditevent" in writes[0]


# The client


@pytest.mark.django_db(transaction=True)
def test_the_client_lists_last_use_and_stale_secrets(live_server, alice, team):
    create_secret(actor=alice, workspace=team, key="USED", value="v")
    create_secret(actor=alice, workspace=team, key="UNUSED", value="v")
    nightly = register_workflow(actor=alice, workspace=team, name="nightly", definition={}, secrets=["USED"])
    execution, session_key = launch(alice, team, nightly)
    assert ConsoleClient(live_server.url, session_key).get_secret("USED") == "v"
    console = ConsoleClient(live_server.url)
    console.login("alice", PASSWORD)
    used = {s["key"]: s for s in console.list_secrets("team")["secrets"]}["USED"]
    assert used["last_read_execution"] == str(execution.id) and used["reads_last_30_days"] == 1
    assert used["last_read_by_user"] == "alice" and used["last_read_by_workflow"] == "team/nightly"
    assert [s["key"] for s in console.list_secrets("team", unread_days=7)["secrets"]] == ["UNUSED"]
    with pytest.raises(ClientError) as refused:
        console.list_secrets("team", unread_days=0)
    assert refused.value.code == "invalid_input" and refused.value.status == 400


def test_an_empty_number_of_days_is_no_filter_on_the_api(alice_api, stale):
    response = alice_api.get(f"{SECRETS_API}?unread_days=")
    assert response.status_code == 200
    assert response.json()["count"] == len(alice_api.get(SECRETS_API).json()["secrets"])
