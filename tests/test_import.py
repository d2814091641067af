"""Importing a .env file: the parser, the all-or-nothing service, the pages, the API and the client."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import time

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from secrets_app import crypto, dotenv
from secrets_app.client import ClientError, ConsoleClient
from secrets_app.errors import AccessDenied, DotenvConflicts, DotenvInvalid
from secrets_app.forms import seal_pending_import
from secrets_app.models import AuditEvent, Role, Secret, Tag, Workspace
from secrets_app.selectors import secrets as secret_selectors
from secrets_app.services import audit
from secrets_app.services.accounts import register_user
from secrets_app.services.grants import grant_tag_permissions
from secrets_app.services.imports import (
    DOTENV_CONFLICT_MESSAGE,
    DOTENV_EMPTY_VALUE_MESSAGE,
    import_dotenv,
    plan_dotenv_import,
)
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import change_member_role
from tests.conftest import PASSWORD, JsonClient, error_of, signed_in_client

pytestmark = pytest.mark.django_db

CANARY = "canary-Dotenv-5e81c2"
IMPORT_API = "/api/v1/workspaces/team/secrets/import/"
IMPORT_PAGE = "/settings/developer/team/import/"
CONFIRM_PAGE = "/settings/developer/team/import/confirm/"


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert CANARY.encode().hex() not in text
        assert base64.b64encode(CANARY.encode()).decode()[:16] not in text


def values_in(workspace) -> dict[str, str]:
    return {secret.key: secret.reveal_value() for secret in Secret.objects.filter(workspace=workspace)}


def parse(text: str) -> dict[str, str]:
    parsed = dotenv.parse(text)
    assert parsed.problems == []
    return {assignment.key: assignment.value for assignment in parsed.assignments}


def problems(text: str) -> list[tuple[int, str]]:
    return [(problem.line, problem.code) for problem in dotenv.parse(text).problems]


# The parser


def test_plain_assignments_blank_lines_and_comments_are_read():
    assert parse("# a comment\n\nA=1\n   # indented comment\nB=two words\n") == {"A": "1", "B": "two words"}


def test_assignments_keep_their_line_numbers():
    parsed = dotenv.parse("# header\nA=1\n\nB=2\n")
    assert [(a.line, a.key) for a in parsed.assignments] == [(2, "A"), (4, "B")]


def test_export_prefix_and_whitespace_around_the_equals_sign_are_allowed():
    assert parse("export A=1\n  export\tB = 2\nC\t=\t3\nexport=4\n") == {"A": "1", "B": "2", "C": "3", "export": "4"}


def test_a_hash_after_whitespace_starts_a_comment_but_inside_a_value_it_is_kept():
    assert parse("A=1 # one\nB=pass#word\nC=#not-a-comment\nD=x\t# tab too\n") == {
        "A": "1",
        "B": "pass#word",
        "C": "#not-a-comment",
        "D": "x",
    }


def test_single_quoted_values_are_taken_literally():
    assert parse("A='  $HOME \\n \"x\" # kept '  # comment\n") == {"A": '  $HOME \\n "x" # kept '}


def test_double_quoted_values_understand_escapes():
    assert parse('A="l1\\nl2\\tt\\r \\"q\\" back\\\\slash # kept"\n') == {"A": 'l1\nl2\tt\r "q" back\\slash # kept'}


def test_unknown_escapes_in_double_quotes_are_kept_as_written():
    assert parse('A="C:\\dir\\$x"\n') == {"A": "C:\\dir\\$x"}


def test_a_double_quoted_value_may_span_lines():
    text = 'PEM="-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n" # the key\nNEXT=1\n'
    parsed = dotenv.parse(text)
    assert parsed.problems == []
    assert [(a.line, a.key, a.value) for a in parsed.assignments] == [
        (1, "PEM", "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n"),
        (5, "NEXT", "1"),
    ]


def test_a_single_quoted_value_may_span_lines_too():
    assert parse("A='one\ntwo'\n") == {"A": "one\ntwo"}


def test_crlf_files_and_a_utf8_bom_are_read():
    text = '\ufeffA=1\r\nB="x\r\ny"\r\nC=\u00e9t\u00e9 \u2603\r\n'
    assert parse(text) == {"A": "1", "B": "x\ny", "C": "\u00e9t\u00e9 \u2603"}


def test_quoted_values_keep_their_whitespace_and_unquoted_values_are_stripped():
    assert parse("A=  padded  \nB='  padded  '\n") == {"A": "padded", "B": "  padded  "}


def test_a_line_that_is_not_an_assignment_is_malformed_with_its_number():
    assert problems("A=1\njust words\nexport ONLY\nKEY value=1\n") == [
        (2, "malformed_line"),
        (3, "malformed_line"),
        (4, "malformed_line"),
    ]


def test_text_after_a_closing_quote_is_malformed():
    assert problems('A="x" y\nB=\'x\'z\nC="ok" # fine\n') == [(1, "malformed_line"), (2, "malformed_line")]


def test_an_unterminated_quote_is_reported_on_its_opening_line_and_nothing_after_it_is_read():
    parsed = dotenv.parse('A=1\nB="never closed\nC=3\nD=bad line\nnot an assignment\n')
    assert [(p.line, p.code) for p in parsed.problems] == [(2, "unterminated_quote")]
    assert "double quote" in parsed.problems[0].message
    assert [a.key for a in parsed.assignments] == ["A"]


@pytest.mark.parametrize("text", ["A=1\rB=2\rC=3\r", "A=1\r\nB=2\nC=3\r", "A=1\rB=2\r\nC=3"])
def test_every_line_end_convention_ends_a_line(text):
    assert parse(text) == {"A": "1", "B": "2", "C": "3"}


def test_a_quoted_value_in_a_cr_only_file_keeps_its_lines():
    assert parse('PEM="one\rtwo"\rNEXT=n\r') == {"PEM": "one\ntwo", "NEXT": "n"}


def test_a_quote_closed_lines_later_by_another_assignment_names_both_lines():
    parsed = dotenv.parse('A="open\nB=2\nC="x" tail\n')
    assert [(p.line, p.code) for p in parsed.problems] == [(1, "malformed_line")]
    assert "closes on line 3" in parsed.problems[0].message


def test_a_key_set_twice_is_reported_on_its_second_line():
    parsed = dotenv.parse("A=1\nB=2\nA=3\n")
    assert [(p.line, p.code, p.key) for p in parsed.problems] == [(3, "duplicate_key", "A")]
    assert "line 1" in parsed.problems[0].message
    assert [a.key for a in parsed.assignments] == ["A", "B"]


def test_problems_never_quote_the_line_or_its_value():
    text = f'{CANARY}\nA="{CANARY}" {CANARY}\nB="{CANARY}\nB={CANARY}\nB={CANARY}\n'
    for problem in dotenv.parse(text).problems:
        assert CANARY not in problem.message and CANARY not in problem.key


def test_an_assignment_never_shows_its_value_in_its_repr():
    (assignment,) = dotenv.parse(f"A={CANARY}\n").assignments
    assert CANARY not in repr(assignment) and CANARY not in repr(dotenv.parse(f"A={CANARY}\n"))


def test_a_file_over_the_size_limit_is_refused_whole():
    with pytest.raises(dotenv.DotenvRefused) as refused:
        dotenv.parse("A=" + "x" * dotenv.MAX_BYTES)
    assert refused.value.code == "dotenv_too_large" and "256 KiB" in refused.value.message


def test_a_file_over_the_line_limit_is_refused_whole_but_a_full_one_is_read():
    assert len(dotenv.parse("".join(f"K{n}=v\n" for n in range(dotenv.MAX_LINES))).assignments) == dotenv.MAX_LINES
    with pytest.raises(dotenv.DotenvRefused) as refused:
        dotenv.parse("#\n" * (dotenv.MAX_LINES + 1))
    assert refused.value.code == "dotenv_too_many_lines"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "\ufeff"])
def test_a_file_without_any_assignment_is_refused(text):
    with pytest.raises(dotenv.DotenvRefused) as refused:
        dotenv.parse(text)
    assert refused.value.code == "dotenv_empty"


# The service: a plan, then one all-or-nothing write


def plan_lines(plan) -> list[tuple[int, str, str, str]]:
    return [(line.line, line.key, line.status, line.code) for line in plan.lines]


def test_the_plan_checks_every_line_with_the_console_rules(alice, team):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    text = "\n".join(
        [
            "NEW=1",
            "TAKEN=2",
            "1BAD=3",
            "EMPTY=",
            'NUL="a\\u0000"'.replace("\\u0000", "\x00"),
            "BIG=" + "x" * (64 * 1024 + 1),
            "NEW=again",
            "no equals sign",
        ]
    )
    plan = plan_dotenv_import(actor=alice, workspace=team, text=text)
    assert plan_lines(plan) == [
        (1, "NEW", "new", ""),
        (2, "TAKEN", "conflict", "secret_exists"),
        (3, "", "invalid", "invalid_key"),
        (4, "EMPTY", "invalid", "empty_value"),
        (5, "NUL", "invalid", "invalid_value"),
        (6, "BIG", "invalid", "value_too_large"),
        (7, "NEW", "invalid", "duplicate_key"),
        (8, "", "invalid", "malformed_line"),
    ]
    assert not plan.importable
    assert plan.counts == {"new": 1, "conflict": 1, "invalid": 6}
    assert "empty" in plan.lines[3].error and "64 KiB" in plan.lines[5].error
    assert Secret.objects.filter(workspace=team).count() == 1  # the plan writes nothing


def test_an_import_adds_every_secret_byte_exactly_with_the_tags(alice, team):
    text = "A=1\nexport B=\"two\\nlines\"\nC='$literal'\n"
    imported = import_dotenv(actor=alice, workspace=team, text=text, tags=["env:prod", "team:ops"])
    assert [secret.key for secret in imported] == ["A", "B", "C"]
    assert values_in(team) == {"A": "1", "B": "two\nlines", "C": "$literal"}
    for secret in Secret.objects.filter(workspace=team):
        assert sorted(tag.name for tag in secret.tags.all()) == ["env:prod", "team:ops"]


def test_an_import_writes_one_audit_event_per_secret_and_no_value(alice, team):
    before = AuditEvent.objects.count()
    import_dotenv(actor=alice, workspace=team, text=f"A={CANARY}\nB={CANARY}2\n", tags=["env:dev"])
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.secret_key, e.actor_username, e.detail) for e in events] == [
        (AuditEvent.Action.SECRET_CREATED, "A", "alice", {"tags": ["env:dev"]}),
        (AuditEvent.Action.SECRET_CREATED, "B", "alice", {"tags": ["env:dev"]}),
    ]
    assert_no_canary(*(json.dumps(e.detail) for e in events))


def test_one_invalid_line_imports_nothing(alice, team):
    with pytest.raises(DotenvInvalid) as refused:
        import_dotenv(actor=alice, workspace=team, text="A=1\nB=\nC=3\n", tags=["env:new"])
    assert [(line.line, line.key, line.code) for line in refused.value.plan.refused_lines] == [(2, "B", "empty_value")]
    assert "Line 2:" in refused.value.message
    assert not Secret.objects.filter(workspace=team).exists()
    assert not Tag.objects.filter(workspace=team).exists()


def test_one_conflict_imports_nothing_and_never_overwrites(alice, team):
    create_secret(actor=alice, workspace=team, key="B", value="original")
    with pytest.raises(DotenvConflicts) as refused:
        import_dotenv(actor=alice, workspace=team, text="A=1\nB=replacement\n")
    assert refused.value.keys == ["B"] and "B (line 2)" in refused.value.message
    assert values_in(team) == {"B": "original"}


def test_a_key_taken_after_the_plan_was_read_imports_nothing(alice, team, monkeypatch):
    create_secret(actor=alice, workspace=team, key="B", value="original")
    # The plan saw the workspace before someone added B; the write then finds it taken.
    monkeypatch.setattr(secret_selectors, "secret_keys_taken", lambda workspace, keys: set())
    with pytest.raises(DotenvConflicts) as refused:
        import_dotenv(actor=alice, workspace=team, text="A=1\nB=2\n")
    assert [(line.line, line.key, line.status) for line in refused.value.plan.refused_lines] == [(2, "B", "conflict")]
    assert values_in(team) == {"B": "original"}


def test_a_failure_in_the_middle_of_the_write_leaves_nothing(alice, team, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record_events", explode)
    with pytest.raises(RuntimeError):
        import_dotenv(actor=alice, workspace=team, text="A=1\nB=2\n", tags=["env:new"])
    assert not Secret.objects.filter(workspace=team).exists()
    assert not Tag.objects.filter(workspace=team).exists()


def test_a_viewer_may_neither_preview_nor_import(alice, bob, team, add_member):
    add_member(bob, Role.VIEWER)
    with pytest.raises(AccessDenied):
        plan_dotenv_import(actor=bob, workspace=team, text="A=1\n")
    with pytest.raises(AccessDenied):
        import_dotenv(actor=bob, workspace=team, text="A=1\n")
    assert not Secret.objects.filter(workspace=team).exists()


def test_a_member_may_not_import_with_a_tag_that_carries_grants(alice, bob, team, add_member):
    add_member(bob, Role.MEMBER)
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:ops", permission_names=["view"], username="bob")
    with pytest.raises(AccessDenied):
        plan_dotenv_import(actor=bob, workspace=team, text="A=1\n", tags=["team:ops"])
    assert plan_dotenv_import(actor=bob, workspace=team, text="A=1\n", tags=["env:dev"]).importable


def test_the_number_of_queries_does_not_grow_with_the_number_of_lines(alice, team):
    Tag.objects.create(workspace=team, name="env:dev")

    def statements_to_import(count: int, prefix: str) -> list[str]:
        workspace = Workspace.objects.get(pk=team.pk)  # fresh: nothing cached from the last import
        text = "".join(f"{prefix}_{n}=value-{n}\n" for n in range(count))
        with CaptureQueriesContext(connection) as queries:
            import_dotenv(actor=alice, workspace=workspace, text=text, tags=["env:dev"])
        return [query["sql"].split()[0] for query in queries]

    few, many = statements_to_import(5, "FEW"), statements_to_import(200, "MANY")
    assert [verb for verb in many if verb != "INSERT"] == [verb for verb in few if verb != "INSERT"]
    # One bulk INSERT each for secrets, their tags and their audit events; SQLite's limit on
    # parameters per statement splits them into a few batches, PostgreSQL's does not.
    assert few.count("INSERT") == 3 and many.count("INSERT") <= 8
    assert Secret.objects.filter(workspace=team).count() == 205


# The JSON API


def test_a_dry_run_answers_each_line_and_writes_nothing(alice_api, alice, team):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    response = alice_api.post(IMPORT_API, {"dotenv": f"NEW={CANARY}\nTAKEN=x\nBAD=\n", "dry_run": True})
    assert response.status_code == 200
    body = response.json()
    assert body["importable"] is False
    assert body["entries"][0] == {"line": 1, "key": "NEW", "status": "new"}
    assert body["entries"][1]["status"] == "conflict" and body["entries"][1]["code"] == "secret_exists"
    assert body["entries"][2] == {
        "line": 3,
        "key": "BAD",
        "status": "invalid",
        "code": "empty_value",
        "error": DOTENV_EMPTY_VALUE_MESSAGE,
    }
    assert_no_canary(response.content.decode())
    assert set(values_in(team)) == {"TAKEN"}


def test_an_importable_dry_run_says_so(alice_api, team):
    response = alice_api.post(IMPORT_API, {"dotenv": "A=1\nB=2\n", "tags": ["env:dev"], "dry_run": True})
    assert response.json() == {
        "entries": [{"line": 1, "key": "A", "status": "new"}, {"line": 2, "key": "B", "status": "new"}],
        "importable": True,
    }


def test_an_import_through_the_api_answers_the_keys_it_added(alice_api, team):
    response = alice_api.post(IMPORT_API, {"dotenv": f"A={CANARY}\nB='x y'\n", "tags": ["env:dev"]})
    assert response.status_code == 201
    assert response.json() == {"imported": ["A", "B"]}
    assert values_in(team) == {"A": CANARY, "B": "x y"}
    assert_no_canary(response.content.decode())


def test_invalid_lines_are_a_400_listing_every_problem_and_nothing_is_written(alice_api, alice, team):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    response = alice_api.post(IMPORT_API, {"dotenv": f"A={CANARY}\n{CANARY}\nTAKEN=1\nC=\n"})
    assert error_of(response) == (400, "invalid_input")
    error = response.json()["error"]
    assert [(e["line"], e["status"]) for e in error["entries"]] == [(2, "invalid"), (3, "conflict"), (4, "invalid")]
    assert [message.split(":")[0] for message in error["fields"]["dotenv"]] == ["Line 2", "Line 3", "Line 4"]
    assert "Line 2:" in error["message"] and "Line 4:" in error["message"]
    assert_no_canary(response.content.decode())
    assert set(values_in(team)) == {"TAKEN"}


def test_conflicts_are_a_409_listing_the_keys_and_nothing_is_written(alice_api, alice, team):
    create_secret(actor=alice, workspace=team, key="B", value="original")
    response = alice_api.post(IMPORT_API, {"dotenv": "A=1\nB=2\n"})
    assert error_of(response) == (409, "secret_exists")
    error = response.json()["error"]
    assert error["keys"] == ["B"]
    assert error["entries"] == [
        {
            "line": 2,
            "key": "B",
            "status": "conflict",
            "code": "secret_exists",
            "error": DOTENV_CONFLICT_MESSAGE,
        }
    ]
    assert values_in(team) == {"B": "original"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "dotenv"),
        ({"dotenv": 1}, "dotenv"),
        ({"dotenv": "A=1", "tags": "env:dev"}, "tags"),
        ({"dotenv": "A=1", "dry_run": "yes"}, "dry_run"),
        ({"dotenv": "A=1", "tags": ["not a tag!"]}, "tags"),
        ({"dotenv": "# nothing\n"}, "dotenv"),
        ({"dotenv": "A=1", "values": {}}, "values"),
    ],
)
def test_bad_requests_are_400_naming_the_field(alice_api, team, body, field):
    response = alice_api.post(IMPORT_API, body)
    assert error_of(response) == (400, "invalid_input")
    assert field in response.json()["error"]["fields"]
    assert not Secret.objects.filter(workspace=team).exists()


def test_a_file_over_the_limit_is_a_400_on_the_dotenv_field(alice_api, team):
    response = alice_api.post(IMPORT_API, {"dotenv": "A=" + "x" * dotenv.MAX_BYTES})
    assert error_of(response) == (400, "invalid_input")
    assert "256 KiB" in response.json()["error"]["fields"]["dotenv"][0]


def test_a_viewer_gets_403_a_stranger_404_and_nobody_signed_in_401(alice, bob, team, add_member, api):
    add_member(bob, Role.VIEWER)
    bob_api = JsonClient()
    bob_api.login("bob")
    assert error_of(bob_api.post(IMPORT_API, {"dotenv": "A=1\n", "dry_run": True})) == (403, "permission_denied")
    carol = JsonClient()
    register_user(username="carol", email="", password=PASSWORD)
    carol.login("carol")
    assert error_of(carol.post(IMPORT_API, {"dotenv": "A=1\n"})) == (404, "workspace_not_found")
    api.refresh_csrf()
    assert error_of(api.post(IMPORT_API, {"dotenv": "A=1\n"})) == (401, "not_authenticated")
    assert not Secret.objects.filter(workspace=team).exists()


def test_the_import_needs_the_csrf_token(alice_api, team):
    response = alice_api.post(IMPORT_API, {"dotenv": "A=1\n"}, csrf=False)
    assert error_of(response) == (403, "csrf_failed")
    assert not Secret.objects.filter(workspace=team).exists()


def test_a_secret_called_import_is_still_read_and_deleted_at_its_address(alice_api, alice, team):
    create_secret(actor=alice, workspace=team, key="import", value="v")
    assert alice_api.get(IMPORT_API).json()["key"] == "import"
    assert error_of(alice_api.send("PUT", IMPORT_API, {})) == (405, "secret_immutable")
    assert alice_api.delete(IMPORT_API).status_code == 204
    assert not Secret.objects.filter(workspace=team).exists()


def test_a_key_taken_between_check_and_write_is_a_409(alice_api, alice, team, monkeypatch):
    create_secret(actor=alice, workspace=team, key="B", value="original")
    monkeypatch.setattr(secret_selectors, "secret_keys_taken", lambda workspace, keys: set())
    response = alice_api.post(IMPORT_API, {"dotenv": "A=1\nB=2\n"})
    assert error_of(response) == (409, "secret_exists")
    assert response.json()["error"]["entries"][0]["line"] == 2
    assert values_in(team) == {"B": "original"}


# The pages


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def pending_token(response) -> str:
    return html.unescape(re.search(r'name="pending" value="([^"]*)"', response.content.decode())[1])


@pytest.fixture
def alice_browser(alice) -> Client:
    return signed_in_client(alice)


def test_the_secrets_page_links_to_the_import_for_those_who_may_add(alice_browser, bob, team, add_member):
    assert IMPORT_PAGE in alice_browser.get("/settings/developer/team/secrets/").content.decode()
    add_member(bob, Role.VIEWER)
    viewer = signed_in_client(bob)
    assert IMPORT_PAGE not in viewer.get("/settings/developer/team/secrets/").content.decode()


def test_the_import_page_offers_a_text_box_an_upload_and_tags(alice_browser, team):
    response = alice_browser.get(IMPORT_PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    for field in ('name="dotenv"', 'name="dotenv_file"', 'name="tags"', ">Preview<"):
        assert field in page


def test_a_pasted_file_is_previewed_by_key_and_line_never_by_value(alice_browser, alice, team):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    text = f'# prod\r\nAPI_KEY={CANARY}\r\nPEM="{CANARY}\r\nline two"\r\n'
    response = alice_browser.post(IMPORT_PAGE, {"dotenv": text, "tags": "env:prod"})
    assert response.status_code == 200
    page = text_of(response)
    assert "API_KEY" in page and "PEM" in page and "env:prod" in page
    assert "Import 2 secrets" in page
    assert_no_canary(response.content.decode(), page)
    # The hidden field holds ciphertext, not an encoding of the file.
    sealed = base64.urlsafe_b64decode(pending_token(response).split(".")[1])
    assert CANARY.encode() not in sealed
    assert not Secret.objects.filter(workspace=team).exclude(key="TAKEN").exists()


def test_confirming_the_preview_imports_every_secret(alice_browser, team):
    preview = alice_browser.post(IMPORT_PAGE, {"dotenv": f"A={CANARY}\nB=2\n", "tags": "env:prod"})
    response = alice_browser.post(CONFIRM_PAGE, {"pending": pending_token(preview)}, follow=True)
    assert response.redirect_chain[-1][0] == "/settings/developer/team/secrets/"
    assert "Imported 2 secrets." in text_of(response)
    assert values_in(team) == {"A": CANARY, "B": "2"}
    assert sorted(Secret.objects.get(key="A").tags.values_list("name", flat=True)) == ["env:prod"]
    assert_no_canary(response.content.decode())


def test_an_uploaded_file_is_imported_the_same_way(alice_browser, team):
    upload = SimpleUploadedFile(".env", f"\ufeffexport A={CANARY}\r\nB='b'\r\n".encode())
    preview = alice_browser.post(IMPORT_PAGE, {"dotenv_file": upload, "tags": ""})
    assert preview.status_code == 200 and "Import 2 secrets" in text_of(preview)
    assert_no_canary(preview.content.decode())
    alice_browser.post(CONFIRM_PAGE, {"pending": pending_token(preview)})
    assert values_in(team) == {"A": CANARY, "B": "b"}


def test_a_file_with_an_invalid_line_gets_no_import_button(alice_browser, team):
    response = alice_browser.post(IMPORT_PAGE, {"dotenv": f"A={CANARY}\nB=\n{CANARY}\n"})
    assert response.status_code == 400
    page = text_of(response)
    assert "Nothing was imported" in page and DOTENV_EMPTY_VALUE_MESSAGE in page
    assert "not KEY=value" in page
    assert 'name="pending"' not in page and "Import 1 secret" not in page
    assert_no_canary(response.content.decode())


def test_a_conflict_is_shown_and_gets_no_import_button(alice_browser, alice, team):
    create_secret(actor=alice, workspace=team, key="B", value="original")
    response = alice_browser.post(IMPORT_PAGE, {"dotenv": "A=1\nB=2\n"})
    assert response.status_code == 409
    assert "conflict" in text_of(response) and 'name="pending"' not in text_of(response)


def test_a_key_added_between_preview_and_confirm_imports_nothing_and_shows_the_conflict(alice_browser, alice, team):
    preview = alice_browser.post(IMPORT_PAGE, {"dotenv": "A=1\nB=2\n"})
    create_secret(actor=alice, workspace=team, key="B", value="meanwhile")
    response = alice_browser.post(CONFIRM_PAGE, {"pending": pending_token(preview)})
    assert response.status_code == 409
    page = text_of(response)
    assert DOTENV_CONFLICT_MESSAGE in page and "Nothing was imported" in page
    assert values_in(team) == {"B": "meanwhile"}


@pytest.mark.parametrize(
    ("post", "error"),
    [
        ({"dotenv": "A=1\n", "dotenv_file": "upload"}, "not both"),
        ({"dotenv": ""}, "Paste a .env file or upload one."),
        ({"dotenv_file": "latin-1"}, "not UTF-8"),
        ({"dotenv": f"A={CANARY}\n", "tags": "bad!tag"}, "is not valid"),
        ({"dotenv": f"# {CANARY}\n"}, "holds no KEY=value line"),
    ],
)
def test_a_form_error_never_sends_the_file_back(alice_browser, team, post, error):
    if post.get("dotenv_file") == "upload":
        post["dotenv_file"] = SimpleUploadedFile(".env", b"B=2\n")
    elif post.get("dotenv_file") == "latin-1":
        post["dotenv_file"] = SimpleUploadedFile(".env", "A=caf\u00e9\n".encode("latin-1"))
    response = alice_browser.post(IMPORT_PAGE, post)
    assert response.status_code == 400
    assert error in text_of(response)
    assert "A=1" not in text_of(response)
    assert_no_canary(response.content.decode())


def test_an_upload_over_the_limit_is_refused_before_it_is_read(alice_browser, team):
    upload = SimpleUploadedFile(".env", b"A=" + b"x" * dotenv.MAX_BYTES)
    response = alice_browser.post(IMPORT_PAGE, {"dotenv_file": upload})
    assert response.status_code == 400 and "the limit is 256 KiB" in text_of(response)


def test_a_viewer_gets_403_and_a_stranger_404_on_the_import_pages(alice, bob, team, add_member):
    add_member(bob, Role.VIEWER)
    viewer = signed_in_client(bob)
    assert viewer.get(IMPORT_PAGE).status_code == 403
    assert viewer.post(IMPORT_PAGE, {"dotenv": "A=1\n"}).status_code == 403
    assert viewer.post(CONFIRM_PAGE, {"pending": "x"}).status_code == 403
    stranger = signed_in_client(register_user(username="carol", email="", password=PASSWORD))
    assert stranger.get(IMPORT_PAGE).status_code == 404
    assert stranger.post(CONFIRM_PAGE, {"pending": "x"}).status_code == 404
    assert not Secret.objects.filter(workspace=team).exists()


def test_a_viewer_cannot_confirm_a_preview_made_while_they_were_a_member(alice, bob, team, add_member):
    add_member(bob, Role.MEMBER)
    bob_browser = signed_in_client(bob)
    preview = bob_browser.post(IMPORT_PAGE, {"dotenv": "A=1\n"})
    change_member_role(actor=alice, workspace=team, username="bob", role=Role.VIEWER)
    assert bob_browser.post(CONFIRM_PAGE, {"pending": pending_token(preview)}).status_code == 403
    assert not Secret.objects.filter(workspace=team).exists()


# The sealed confirm token


def confirm_is_refused(browser: Client, token: str, team) -> str:
    response = browser.post(CONFIRM_PAGE, {"pending": token})
    assert response.status_code == 400
    assert not Secret.objects.filter(workspace=team).exists()
    return text_of(response)


def test_an_altered_token_is_refused(alice_browser, team):
    token = pending_token(alice_browser.post(IMPORT_PAGE, {"dotenv": "A=1\n"}))
    issued, sealed = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sealed))
    raw[-1] ^= 1
    for altered in (
        f"{issued}.{base64.urlsafe_b64encode(bytes(raw)).decode()}",
        f"{int(issued) + 1}.{sealed}",  # a later time: the time is sealed too
        "not a token",
        "",
    ):
        page = confirm_is_refused(alice_browser, altered, team)
    assert "could not be opened" in confirm_is_refused(alice_browser, token[:-4], team)
    assert "This field is required" in page


def test_a_token_older_than_15_minutes_is_refused(alice, alice_browser, team):
    associated_data = crypto.pending_import_associated_data(user_id=alice.pk, workspace_id=team.pk)
    stale = crypto.seal_token("[]\nA=1\n", associated_data, now=time.time() - 15 * 60 - 5)
    assert "more than 15 minutes old" in confirm_is_refused(alice_browser, stale, team)
    fresh = crypto.seal_token("[]\nA=1\n", associated_data, now=time.time() - 14 * 60)
    assert alice_browser.post(CONFIRM_PAGE, {"pending": fresh}).status_code == 302


def test_a_token_from_the_future_is_refused(alice, alice_browser, team):
    associated_data = crypto.pending_import_associated_data(user_id=alice.pk, workspace_id=team.pk)
    future = crypto.seal_token("[]\nA=1\n", associated_data, now=time.time() + 3600)
    assert "more than 15 minutes old" in confirm_is_refused(alice_browser, future, team)


def test_a_token_made_for_another_user_is_refused(alice, bob, team, add_member):
    add_member(bob, Role.MEMBER)
    bobs = pending_token(signed_in_client(bob).post(IMPORT_PAGE, {"dotenv": "A=1\n"}))
    assert "could not be opened" in confirm_is_refused(signed_in_client(alice), bobs, team)


def test_a_token_made_for_another_workspace_is_refused(alice, alice_browser, team):
    personal = alice.personal_workspace
    token = seal_pending_import(text="A=1\n", tag_names=[], user_id=alice.pk, workspace_id=personal.pk)
    assert "could not be opened" in confirm_is_refused(alice_browser, token, team)
    assert not Secret.objects.filter(workspace=personal).exists()


def test_the_token_carries_the_tags_of_the_preview(alice, alice_browser, team):
    token = seal_pending_import(text="A=1\n", tag_names=["env:prod"], user_id=alice.pk, workspace_id=team.pk)
    assert alice_browser.post(CONFIRM_PAGE, {"pending": token}).status_code == 302
    assert list(Secret.objects.get(key="A").tags.values_list("name", flat=True)) == ["env:prod"]


# No value anywhere: pages, answers, logs, error reports


@pytest.fixture
def everything_logged(caplog, settings):
    settings.DEBUG = True  # Django then logs every SQL statement with its parameters
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    return caplog


def test_no_log_line_holds_a_value_through_a_whole_import(alice, alice_browser, alice_api, team, everything_logged):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    text = f"A={CANARY}\nB='{CANARY}'\n"
    preview = alice_browser.post(IMPORT_PAGE, {"dotenv": text})
    alice_browser.post(CONFIRM_PAGE, {"pending": pending_token(preview)})
    answers = [
        alice_api.post(IMPORT_API, {"dotenv": f"C={CANARY}\n", "dry_run": True}),
        alice_api.post(IMPORT_API, {"dotenv": f"C={CANARY}\nTAKEN={CANARY}\n"}),
        alice_api.post(IMPORT_API, {"dotenv": f"C={CANARY}\nD=\n"}),
        alice_api.post(IMPORT_API, {"dotenv": f"C={CANARY}\n"}),
    ]
    assert [answer.status_code for answer in answers] == [200, 409, 400, 201]
    assert values_in(team)["B"] == CANARY
    assert any("INSERT" in record.getMessage() for record in everything_logged.records), "SQL was not logged"
    assert_no_canary(*(record.getMessage() for record in everything_logged.records))
    assert_no_canary(*(answer.content.decode() for answer in answers))


def _fail_audit(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record_events", explode)


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG page"])
@pytest.mark.parametrize("path", ["UI confirm", "API import"])
def test_a_failure_while_importing_reveals_no_value(path, debug, alice, team, monkeypatch, settings, caplog):
    settings.DEBUG = debug
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    text = f'A={CANARY}\nB="{CANARY}\\n"\n'
    if path == "UI confirm":
        browser = signed_in_client(alice)
        browser.raise_request_exception = False
        token = pending_token(browser.post(IMPORT_PAGE, {"dotenv": text}))
        _fail_audit(monkeypatch)
        response = browser.post(CONFIRM_PAGE, {"pending": token}, HTTP_ACCEPT="text/html")
    else:
        api = JsonClient()
        api.login("alice")
        api.client.raise_request_exception = False
        _fail_audit(monkeypatch)
        response = api.client.post(
            IMPORT_API,
            data=json.dumps({"dotenv": text}),
            content_type="application/json",
            headers={"X-CSRFToken": api.csrf_token, "Accept": "text/html"},
        )
    assert response.status_code == 500
    page = response.content.decode()
    if debug:
        assert "Local vars" in page and "Traceback" in page
    else:
        report = mail.outbox[0].body + "".join(str(alt[0]) for alt in mail.outbox[0].alternatives)
        assert "audit store unavailable" in report
        assert_no_canary(report)
    assert_no_canary(page)
    assert_no_canary(*(record.getMessage() for record in caplog.records))
    assert not Secret.objects.filter(workspace=team).exists()


# The Python client, against a real server


@pytest.fixture
def console(live_server, alice, team) -> ConsoleClient:
    client = ConsoleClient(live_server.url)
    client.login("alice", PASSWORD)
    return client


@pytest.mark.django_db(transaction=True)
def test_the_client_previews_then_imports_a_file(console, team):
    text = 'API_KEY=abc\nPEM="-----BEGIN-----\nxyz\n-----END-----\n"\n'
    preview = console.import_dotenv("team", text, tags=["env:prod"], dry_run=True)
    assert preview == {
        "entries": [{"line": 1, "key": "API_KEY", "status": "new"}, {"line": 2, "key": "PEM", "status": "new"}],
        "importable": True,
    }
    assert not Secret.objects.filter(workspace=team).exists()
    assert console.import_dotenv("team", text, tags=["env:prod"]) == {"imported": ["API_KEY", "PEM"]}
    assert values_in(team) == {"API_KEY": "abc", "PEM": "-----BEGIN-----\nxyz\n-----END-----\n"}


@pytest.mark.django_db(transaction=True)
def test_the_client_raises_with_every_refused_line(console, alice, team):
    create_secret(actor=alice, workspace=team, key="TAKEN", value="v")
    with pytest.raises(ClientError) as conflict:
        console.import_dotenv("team", "A=1\nTAKEN=2\n")
    assert (conflict.value.status, conflict.value.code) == (409, "secret_exists")
    assert conflict.value.details["keys"] == ["TAKEN"]
    with pytest.raises(ClientError) as invalid:
        console.import_dotenv("team", "A=1\nB=\n")
    assert (invalid.value.status, invalid.value.code) == (400, "invalid_input")
    assert [(e["line"], e["code"]) for e in invalid.value.details["entries"]] == [(2, "empty_value")]
    assert "Line 2" in str(invalid.value)
    assert set(values_in(team)) == {"TAKEN"}


def test_a_cr_only_file_imports_one_secret_per_line_through_the_api(alice_api, team):
    response = alice_api.post(IMPORT_API, {"dotenv": "A=1\rB=2\rC=3\r"})
    assert response.status_code == 201 and response.json() == {"imported": ["A", "B", "C"]}
    assert values_in(team) == {"A": "1", "B": "2", "C": "3"}


def test_after_an_unterminated_quote_the_preview_shows_nothing_of_the_rest_of_the_file(alice_browser, team):
    text = f'API_KEY=ok\nPEM="-----BEGIN KEY-----\nMIIB_{CANARY}=x\nAFTER_THE_QUOTE=y\n'
    response = alice_browser.post(IMPORT_PAGE, {"dotenv": text})
    page = text_of(response)
    assert response.status_code == 400
    assert "never closed" in page and "API_KEY" in page
    assert "MIIB" not in page and "AFTER_THE_QUOTE" not in page
    assert_no_canary(page)
    dry_run = alice_browser.post(IMPORT_API, {"dotenv": text, "dry_run": True}, content_type="application/json")
    assert [entry["line"] for entry in dry_run.json()["entries"]] == [1, 2]
