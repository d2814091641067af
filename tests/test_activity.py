"""Developer Settings → Activity: the audit log for workspace admins, its filters and its exports."""

from __future__ import annotations

import csv
import datetime
import html
import io
import json
import re
from unittest import mock
from urllib.parse import parse_qs

import pytest
from django.contrib.auth.models import Group
from django.http import StreamingHttpResponse

from secrets_app.audit_exports import EXPORT_FIELDS, spreadsheet_safe
from secrets_app.models import AuditEvent, Role
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.runs import register_workflow
from secrets_app.services.secrets import create_secret, import_secrets, tag_secret
from secrets_app.services.workspaces import add_member as add_workspace_member
from secrets_app.services.workspaces import create_team_workspace
from tests.conftest import signed_in_client
from tests.test_runners import launch, read, runner_client

pytestmark = pytest.mark.django_db

LEAKY_VALUE = "VALUE-that-must-never-leak-6f1c9"


def activity(slug: str = "team", query: str = "") -> str:
    return f"/settings/developer/{slug}/activity/" + (f"?{query}" if query else "")


def export(export_format: str, slug: str = "team", query: str = "") -> tuple[str, dict[str, list[str]]]:
    """An export's address and its form (the filters), for `client.post(*export(...))`."""
    return f"/settings/developer/{slug}/activity.{export_format}", parse_qs(query)


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def content_of(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def rows_of(response) -> list[dict[str, str]]:
    """The events listed on an Activity page, as {column: text}."""
    body = response.content.decode()
    rows = []
    for row in re.findall(r"<tr>\s*(<td.*?)</tr>", body, flags=re.S):
        cells = re.findall(r'<td data-label="([^"]+)"[^>]*>(.*?)</td>', row, flags=re.S)
        rows.append({label: html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for label, cell in cells})
    return rows


def csv_rows(response) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(content_of(response), newline=""))
    header = next(reader)
    assert tuple(header) == EXPORT_FIELDS
    return [dict(zip(header, row, strict=True)) for row in reader]


def json_lines(response) -> list[dict]:
    text = content_of(response)
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def at(moment: datetime.datetime):
    """Audit events written inside this block carry `moment` as their time."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


@pytest.fixture
def owner(alice):
    return signed_in_client(alice)


@pytest.fixture
def member_of(team, add_member, make_user):
    def make(role: Role, username: str | None = None):
        user = make_user(username or f"a-{role.value}")
        add_member(user, role)
        return user

    return make


# Who may see it


def test_the_owner_sees_the_activity_page_linked_in_the_navigation(owner, team):
    response = owner.get(activity())
    assert response.status_code == 200
    assert f'href="{activity()}" aria-current="page">Activity</a>' in response.content.decode()
    assert f'href="{activity()}"' in owner.get("/settings/developer/team/secrets/").content.decode()


def test_an_admin_sees_the_page_and_exports(member_of, team):
    admin = signed_in_client(member_of(Role.ADMIN))
    assert admin.get(activity()).status_code == 200
    assert admin.post(*export("csv")).status_code == 200
    assert admin.post(*export("jsonl")).status_code == 200


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_are_refused_and_not_shown_the_link(member_of, team, role):
    client = signed_in_client(member_of(role))
    for response in (client.get(activity()), client.post(*export("csv")), client.post(*export("jsonl"))):
        assert response.status_code == 403 and "permission" in text_of(response)
    assert activity() not in client.get("/settings/developer/team/secrets/").content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


def test_outsiders_are_told_the_workspace_is_not_there(bob, team):
    client = signed_in_client(bob)
    for response in (client.get(activity()), client.post(*export("csv")), client.get(activity("nope"))):
        assert response.status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


def test_a_superuser_reads_a_team_workspace_log_but_never_a_personal_one(alice, team, make_user):
    root = signed_in_client(make_user("root", is_superuser=True))
    assert root.get(activity()).status_code == 200
    assert root.get(activity("alice")).status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, team):
    for response in (client.get(activity()), client.post(*export("csv"))):
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_owner_of_a_personal_workspace_sees_its_activity(alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="v")
    response = signed_in_client(alice).get(activity("alice"))
    assert [row["Key"] for row in rows_of(response)] == ["MINE", "—"]


def test_an_unknown_export_format_is_404(owner, team):
    assert owner.post(*export("xlsx")).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


def test_events_of_other_workspaces_never_appear(alice, owner, team):
    other = create_team_workspace(actor=alice, name="Other", slug="other")
    create_secret(actor=alice, workspace=other, key="OTHER_KEY", value="v")
    create_secret(actor=alice, workspace=team, key="TEAM_KEY", value="v")
    assert [row["Key"] for row in rows_of(owner.get(activity()))] == ["TEAM_KEY", "—"]
    assert "OTHER_KEY" not in owner.get(activity(query="key=KEY")).content.decode()
    assert {row["workspace"] for row in csv_rows(owner.post(*export("csv")))} == {"team"}
    assert {line["workspace"] for line in json_lines(owner.post(*export("jsonl")))} == {"team"}


# What it shows


def test_events_are_listed_newest_first_with_readable_columns(alice, owner, team, bob):
    add_workspace_member(actor=alice, workspace=team, username="bob", role=Role.MEMBER, ip_address="203.0.113.9")
    create_secret(actor=alice, workspace=team, key="API_KEY", value="v", tags=["env:prod", "team:ops"])
    rows = rows_of(owner.get(activity()))
    assert [row["Action"] for row in rows] == ["Secret created", "Member added", "Workspace created"]
    created, added, _ = rows
    assert created["User"] == "alice" and created["Key"] == "API_KEY" and created["IP address"] == "—"
    assert created["Detail"] == "tags: env:prod, team:ops"
    assert added["Detail"] == "member: bob; role: member" and added["IP address"] == "203.0.113.9"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", created["Time"])


def test_runner_reads_show_their_execution(alice, owner, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value=LEAKY_VALUE)
    workflow = register_workflow(
        actor=alice, workspace=team, name="nightly", definition={"token": "${workflow.secrets.API_KEY}"}
    )
    execution, session_key = launch(alice, team, workflow)
    assert read(runner_client(session_key), "API_KEY").status_code == 200
    (row,) = rows_of(owner.get(activity(query="action=secret.read")))
    assert row["Execution"] == str(execution.id)[:8] and row["User"] == "alice"
    assert row["Detail"] == "local: no; workflow: team/nightly"


def test_the_page_explains_bad_filters_instead_of_listing(owner, team):
    response = owner.get(activity(query="date_from=2026-13-01&action=secret.exploded"))
    assert response.status_code == 400
    body = text_of(response)
    assert "Enter a date as YYYY-MM-DD." in body
    assert "Select a valid choice. secret.exploded is not one of the available choices." in body
    assert "Correct the filters above" in body and rows_of(response) == []


def test_an_end_date_before_the_start_date_is_a_form_error(owner, team):
    response = owner.get(activity(query="date_from=2026-03-10&date_to=2026-03-09"))
    assert response.status_code == 400 and "The end date is before the start date." in text_of(response)


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_dates_out_of_range_are_form_errors_not_crashes(owner, team, day):
    response = owner.get(activity(query=f"date_from={day}&date_to={day}"))
    assert response.status_code == 400 and "Ensure this value is" in text_of(response)


def test_a_bad_filter_on_an_export_answers_the_page_with_the_error_and_exports_nothing(owner, team):
    response = owner.post(*export("csv", query="date_to=yesterday"))
    assert response.status_code == 400 and "Enter a date as YYYY-MM-DD." in text_of(response)
    assert 'action="/settings/developer/team/activity/"' in text_of(response)  # corrected, it lists
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


# Filters


@pytest.fixture
def history(alice, team, member_of):
    """Events by alice and by an admin, on three keys, over three days (site time zone UTC)."""
    admin = member_of(Role.ADMIN, "carol")
    for day, actor, key in [(8, alice, "DB_PASSWORD"), (9, admin, "API_KEY"), (10, alice, "api_key_old")]:
        with at(datetime.datetime(2020, 3, day, 12, tzinfo=datetime.UTC)):
            secret = create_secret(actor=actor, workspace=team, key=key, value=LEAKY_VALUE)
            tag_secret(actor=actor, secret=secret, tag_names=["team:ops"])
    return team


def keys_listed(response) -> list[str]:
    assert response.status_code == 200
    return [row["Key"] for row in rows_of(response)]


def test_filter_by_key_matches_keys_containing_the_text_in_any_case(owner, history):
    assert keys_listed(owner.get(activity(query="key=api_key"))) == ["api_key_old"] * 2 + ["API_KEY"] * 2
    assert keys_listed(owner.get(activity(query="key=DB_PASSWORD"))) == ["DB_PASSWORD"] * 2
    assert keys_listed(owner.get(activity(query="key=NOPE"))) == []
    assert "No events match." in text_of(owner.get(activity(query="key=NOPE")))


def test_filter_by_user_takes_the_exact_username(owner, history):
    assert keys_listed(owner.get(activity(query="user=carol"))) == ["API_KEY", "API_KEY"]
    assert keys_listed(owner.get(activity(query="user=car"))) == []


def test_filter_by_action(owner, history):
    assert keys_listed(owner.get(activity(query="action=secret.tagged"))) == [
        "api_key_old",
        "API_KEY",
        "DB_PASSWORD",
    ]


def test_filter_by_dates_includes_both_days(owner, history):
    assert keys_listed(owner.get(activity(query="date_from=2020-03-09&date_to=2020-03-09"))) == ["API_KEY"] * 2
    assert keys_listed(owner.get(activity(query="date_from=2020-03-09&date_to=2020-03-10"))) == [
        *["api_key_old"] * 2,
        *["API_KEY"] * 2,
    ]
    # Only a start: up to now, with the events the fixtures made today.
    assert keys_listed(owner.get(activity(query="date_from=2020-03-10"))) == ["—", "—", "api_key_old", "api_key_old"]
    assert keys_listed(owner.get(activity(query="date_to=2020-03-08"))) == ["DB_PASSWORD"] * 2


def test_dates_are_days_in_the_site_time_zone(alice, owner, team, settings):
    settings.TIME_ZONE = "America/New_York"
    for hour, key in [(3, "LATE_ON_THE_NINTH"), (5, "EARLY_ON_THE_TENTH")]:
        with at(datetime.datetime(2026, 3, 10, hour, 30, tzinfo=datetime.UTC)):
            create_secret(actor=alice, workspace=team, key=key, value="v")
    assert keys_listed(owner.get(activity(query="date_from=2026-03-10&date_to=2026-03-10"))) == ["EARLY_ON_THE_TENTH"]
    assert keys_listed(owner.get(activity(query="date_from=2026-03-09&date_to=2026-03-09"))) == ["LATE_ON_THE_NINTH"]
    assert "America/New_York" in text_of(owner.get(activity()))


def test_filters_combine(owner, history):
    query = "key=api&user=alice&action=secret.created&date_from=2020-03-10&date_to=2020-03-10"
    assert keys_listed(owner.get(activity(query=query))) == ["api_key_old"]
    assert keys_listed(owner.get(activity(query="key=api&user=alice&date_to=2020-03-09"))) == []


def test_the_form_keeps_the_filters_and_the_export_forms_carry_them(owner, history):
    body = owner.get(activity(query="key=api&action=secret.created")).content.decode()
    assert 'name="key" value="api"' in body
    assert '<option value="secret.created" selected>' in body
    for export_format in ("csv", "jsonl"):
        assert f'<form method="post" action="/settings/developer/team/activity.{export_format}"' in body
    assert body.count('<input type="hidden" name="key" value="api">') == 2
    assert body.count('<input type="hidden" name="action" value="secret.created">') == 2


def test_an_export_is_a_post_so_a_link_cannot_write_to_the_log(owner, history):
    assert owner.get(export("csv")[0]).status_code == 405
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


# Pagination


def test_the_log_is_paginated_and_page_links_keep_the_filters(alice, owner, team):
    import_secrets(actor=alice, workspace=team, entries=[(f"KEY_{n:03}", "v", []) for n in range(60)])
    first = owner.get(activity(query="key=KEY_"))
    assert len(rows_of(first)) == 50 and "60 events" in text_of(first)
    assert 'href="?key=KEY_&amp;page=2"' in first.content.decode()
    second = owner.get(activity(query="key=KEY_&page=2"))
    assert [row["Key"] for row in rows_of(second)] == [f"KEY_{n:03}" for n in range(9, -1, -1)]
    assert owner.get(activity(query="page=9")).status_code == 404


# Exports


def test_csv_export_streams_the_filtered_events_as_an_attachment(owner, history):
    response = owner.post(*export("csv", query="user=carol"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="audit-team-\d{8}-\d{6}\.csv"', response["Content-Disposition"])
    assert "no-store" in response["Cache-Control"]
    rows = csv_rows(response)
    assert [(row["action"], row["actor"], row["key"]) for row in rows] == [
        ("secret.tagged", "carol", "API_KEY"),
        ("secret.created", "carol", "API_KEY"),
    ]
    assert json.loads(rows[0]["detail"]) == {"tag": "team:ops"}
    assert rows[0]["at"] == "2020-03-09T12:00:00+00:00" and rows[0]["secret_id"] and rows[0]["execution_id"] == ""


def test_json_lines_export_has_one_object_per_line_with_stable_fields(alice, owner, history):
    response = owner.post(*export("jsonl", query="key=api_key_old"))
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="audit-team-\d{8}-\d{6}\.jsonl"', response["Content-Disposition"])
    assert "no-store" in response["Cache-Control"]
    tagged, created = json_lines(response)
    assert tuple(tagged) == EXPORT_FIELDS
    assert tagged["action"] == "secret.tagged" and tagged["detail"] == {"tag": "team:ops"}
    assert created == {
        "id": created["id"],
        "at": "2020-03-10T12:00:00+00:00",
        "action": "secret.created",
        "actor": "alice",
        "workspace": "team",
        "key": "api_key_old",
        "secret_id": tagged["secret_id"],
        "execution_id": None,
        "ip_address": None,
        "detail": {},
    }


def test_a_large_export_is_sent_in_chunks(alice, owner, team):
    import_secrets(actor=alice, workspace=team, entries=[(f"KEY_{n:04}", "v", []) for n in range(1200)])
    response = owner.post(*export("jsonl"))
    chunks = list(response.streaming_content)
    assert len(chunks) == 3
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1200 + 2  # the workspace's creation, the export


def test_an_export_is_itself_audited(alice, owner, team):
    response = owner.post(*export("csv", query="key=api&action=secret.read"), REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED)
    assert (event.actor_username, event.workspace_id, event.ip_address) == ("alice", team.pk, "198.51.100.7")
    assert event.detail == {"format": "csv", "filters": {"key": "api", "action": "secret.read"}}
    owner.post(*export("jsonl"))
    newer, older = rows_of(owner.get(activity(query="action=audit.exported")))
    assert newer["Action"] == "Audit log exported" and newer["Detail"] == "filters: none; format: jsonl"
    assert older["Detail"] == "filters: action=secret.read, key=api; format: csv"


FORMULA = '=HYPERLINK("https:evil.example","x")'


def test_keys_of_refused_runner_reads_that_look_like_formulas_are_defused(alice, owner, team):
    """A runner may ask for any key; a refused read records it (escaped, never validated)."""
    workflow = register_workflow(actor=alice, workspace=team, name="w", definition={})
    _, session_key = launch(alice, team, workflow)
    runner = runner_client(session_key)
    for key in (FORMULA, "@SUM(1)", "-1+2", "+1"):
        assert read(runner, key).status_code == 404
    query = "action=secret.read_denied"
    assert sorted(row["key"] for row in csv_rows(owner.post(*export("csv", query=query)))) == [
        "'+1",
        "'-1+2",
        '\'=HYPERLINK("https:evil.example","x")',
        "'@SUM(1)",
    ]
    # JSON Lines is not read by spreadsheets: it keeps every key exactly as recorded.
    assert sorted(line["key"] for line in json_lines(owner.post(*export("jsonl", query=query)))) == [
        "+1",
        "-1+2",
        FORMULA,
        "@SUM(1)",
    ]
    assert FORMULA in text_of(owner.get(activity(query=query)))


def test_usernames_that_look_like_formulas_are_defused(alice, owner, team, make_user):
    for number, username in enumerate(("-2+3", "@SUM(1)", "+1")):
        user = make_user(username)
        add_workspace_member(actor=alice, workspace=team, username=username, role=Role.MEMBER)
        create_secret(actor=user, workspace=team, key=f"KEY_{number}", value="v")
    rows = csv_rows(owner.post(*export("csv", query="action=secret.created")))
    assert sorted(row["actor"] for row in rows) == ["'+1", "'-2+3", "'@SUM(1)"]


def test_free_text_in_detail_stays_inside_a_json_cell(alice, owner, team):
    Group.objects.create(name=FORMULA)
    grant_tag_permissions(
        actor=alice, workspace=team, tag_name="team:ops", permission_names=["view"], group_name=FORMULA
    )
    (row,) = csv_rows(owner.post(*export("csv", query="action=tag.granted")))
    assert row["detail"].startswith("{")
    assert json.loads(row["detail"]) == {"tag": "team:ops", "group": FORMULA, "permission": "view"}


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("API_KEY", "API_KEY"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_spreadsheet_safe_prefixes_only_a_leading_formula_character(cell, written):
    assert spreadsheet_safe(cell) == written


def test_no_secret_value_reaches_the_page_or_the_exports(alice, owner, team):
    create_secret(actor=alice, workspace=team, key="API_KEY", value=LEAKY_VALUE, tags=["team:ops"])
    workflow = register_workflow(
        actor=alice, workspace=team, name="nightly", definition={"token": "${workflow.secrets.API_KEY}"}
    )
    _, session_key = launch(alice, team, workflow)
    assert read(runner_client(session_key), "API_KEY").json()["value"] == LEAKY_VALUE
    page = owner.get(activity())
    assert "Value read by a runner" in text_of(page) and LEAKY_VALUE not in page.content.decode()
    for export_format in ("csv", "jsonl"):
        body = content_of(owner.post(*export(export_format)))
        assert "secret.read" in body and LEAKY_VALUE not in body


# Queries


@pytest.mark.parametrize("events", [5, 120])
def test_the_page_costs_a_fixed_number_of_queries(alice, owner, team, events, django_assert_max_num_queries):
    import_secrets(actor=alice, workspace=team, entries=[(f"KEY_{n:03}", "v", ["a:b"]) for n in range(events)])
    owner.get(activity())  # the session is loaded into the cache
    with django_assert_max_num_queries(6):  # 6: the workspace's two-factor policy is one query
        response = owner.get(activity(query="key=KEY&page=1"))
    assert len(rows_of(response)) == min(events, 50)


@pytest.mark.parametrize("events", [5, 2500])
def test_an_export_costs_a_fixed_number_of_queries(alice, owner, team, events, django_assert_max_num_queries):
    import_secrets(actor=alice, workspace=team, entries=[(f"KEY_{n:04}", "v", []) for n in range(events)])
    owner.get(activity())
    # The session, the user, the two-factor policy, the count (against the export limit), the audit
    # event, the events.
    with django_assert_max_num_queries(6):
        lines = json_lines(owner.post(*export("jsonl", query="action=secret.created")))
    assert len(lines) == events


def test_an_export_over_the_limit_asks_for_less_and_exports_nothing(alice, owner, team, monkeypatch):
    from secrets_app.views import activity as activity_views

    monkeypatch.setattr(activity_views, "EXPORT_MAX_EVENTS", 100)
    import_secrets(actor=alice, workspace=team, entries=[(f"KEY_{n:04}", "v", []) for n in range(100)])
    response = owner.post(*export("csv"))
    assert response.status_code == 400
    assert "This export would hold 101 events; one export holds at most 100." in text_of(response)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()
    # Narrowed to one action, it fits.
    assert owner.post(*export("csv", query="action=secret.created")).status_code == 200
