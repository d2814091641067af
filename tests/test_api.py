"""The JSON API: happy paths and every bad input, each with its status, code and no half-writes."""

import json

import pytest
from django.conf import settings

from secrets_app.models import AuditEvent, Role, Secret, Tag
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import create_team_workspace
from secrets_app.validators import SECRET_VALUE_MAX_BYTES
from tests.conftest import JsonClient, error_of

pytestmark = pytest.mark.django_db

SECRETS = "/api/v1/workspaces/{}/secrets/"


def secrets_url(slug: str, key: str = "") -> str:
    return SECRETS.format(slug) + (f"{key}/" if key else "")


def assert_nothing_written(before_secrets: int, before_events: int) -> None:
    assert Secret.objects.count() == before_secrets
    assert AuditEvent.objects.count() == before_events


# Session


def test_session_get_gives_a_csrf_token_and_no_user_when_signed_out(api):
    response = api.get("/api/v1/session/")
    assert response.status_code == 200
    assert response.json()["user"] is None
    assert response.json()["csrf_token"]
    assert settings.CSRF_COOKIE_NAME in response.cookies


def test_login_answers_the_user_and_a_rotated_csrf_token(api, alice):
    before = api.refresh_csrf()
    response = api.post("/api/v1/session/", {"username": "alice", "password": "correct-Horse-battery-42"})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"username": "alice", "email": "alice@example.com", "personal_workspace": "alice"}
    assert body["csrf_token"] and body["csrf_token"] != before


def test_login_with_a_wrong_password_is_401(api, alice):
    api.refresh_csrf()
    response = api.post("/api/v1/session/", {"username": "alice", "password": "wrong"})
    assert error_of(response) == (401, "invalid_credentials")


def test_login_without_csrf_token_is_403(api, alice):
    response = api.post("/api/v1/session/", {"username": "alice", "password": "x"}, csrf=False)
    assert error_of(response) == (403, "csrf_failed")
    assert "X-CSRFToken" in response.json()["error"]["message"]


def test_logout_ends_the_session(alice_api):
    assert alice_api.delete("/api/v1/session/").status_code == 204
    assert error_of(alice_api.get("/api/v1/workspaces/"))[0] == 401


def test_no_session_is_401_not_authenticated(api):
    assert error_of(api.get("/api/v1/workspaces/")) == (401, "not_authenticated")


def test_unknown_or_expired_session_cookie_is_401_session_expired(api):
    api.client.cookies[settings.SESSION_COOKIE_NAME] = "no-such-session-key-0123456789abcdef"
    assert error_of(api.get(secrets_url("alice"))) == (401, "session_expired")


def test_session_endpoint_rejects_other_methods_with_405(alice_api):
    response = alice_api.send("PUT", "/api/v1/session/", {})
    assert error_of(response) == (405, "method_not_allowed")
    assert response["Allow"] == "GET, POST, DELETE"


# Workspaces


def test_workspaces_lists_the_callers_workspaces_with_roles(alice_api, team, bob):
    create_team_workspace(actor=bob, name="Bob's team", slug="bobs-team")
    body = alice_api.get("/api/v1/workspaces/").json()
    assert body["workspaces"] == [
        {
            "slug": "alice",
            "name": "alice (personal)",
            "kind": "personal",
            "role": "owner",
            "expired_secret_grace_days": 0,
            "require_mfa": False,
        },
        {
            "slug": "team",
            "name": "Team",
            "kind": "team",
            "role": "owner",
            "expired_secret_grace_days": 0,
            "require_mfa": False,
        },
    ]


def test_creating_a_team_workspace_makes_the_caller_owner(alice_api):
    response = alice_api.post("/api/v1/workspaces/", {"slug": "ops", "name": "Ops"})
    assert response.status_code == 201
    assert response.json() == {
        "slug": "ops",
        "name": "Ops",
        "kind": "team",
        "role": "owner",
        "expired_secret_grace_days": 0,
        "require_mfa": False,
    }


def test_creating_a_workspace_with_a_taken_slug_is_409(alice_api, team):
    assert error_of(alice_api.post("/api/v1/workspaces/", {"slug": "team", "name": "Again"})) == (
        409,
        "workspace_exists",
    )


# Listing


def test_list_is_sorted_by_key_and_carries_metadata_only(alice_api, alice):
    for key in ("ZETA", "ALPHA", "mid"):
        create_secret(
            actor=alice, workspace=alice.personal_workspace, key=key, value=f"value-of-{key}", tags=["env:prod"]
        )
    response = alice_api.get(secrets_url("alice"))
    assert response.status_code == 200
    body = response.json()
    assert [s["key"] for s in body["secrets"]] == ["ALPHA", "ZETA", "mid"]
    assert set(body["secrets"][0]) == {
        "id",
        "key",
        "workspace",
        "tags",
        "created_by",
        "created_at",
        "expires_at",
        "expiry",
        "last_read_at",
        "last_read_by_workflow",
        "same_value_as",
        "same_value_count",
        "last_read_by_user",
        "last_read_execution",
        "reads_last_30_days",
    }
    assert body["secrets"][0]["tags"] == ["env:prod"] and body["secrets"][0]["created_by"] == "alice"
    assert body["count"] == 3 and body["page"] == 1 and body["pages"] == 1
    assert "value-of-" not in response.content.decode()


def test_list_is_paginated_fifty_a_page(alice_api, alice):
    for number in range(51):
        create_secret(actor=alice, workspace=alice.personal_workspace, key=f"K{number:03}", value="v")
    first = alice_api.get(secrets_url("alice")).json()
    second = alice_api.get(secrets_url("alice") + "?page=2").json()
    assert len(first["secrets"]) == 50 and first["pages"] == 2
    assert [s["key"] for s in second["secrets"]] == ["K050"]


@pytest.mark.parametrize("page", ["0", "3", "x", "-1"])
def test_a_page_out_of_range_is_404(alice_api, page):
    assert error_of(alice_api.get(secrets_url("alice") + f"?page={page}")) == (404, "page_not_found")


def test_one_secrets_metadata(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="ONE", value="one-value")
    response = alice_api.get(secrets_url("alice", "ONE"))
    assert response.status_code == 200 and response.json()["key"] == "ONE"
    assert "one-value" not in response.content.decode()


# Creating


def test_create_answers_201_with_metadata_and_stores_the_value_sealed(alice_api, alice):
    response = alice_api.post(
        secrets_url("alice"), {"key": "API_KEY", "value": "s3cr3t\n", "tags": ["team:ops", "env:prod"]}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["key"] == "API_KEY" and body["tags"] == ["env:prod", "team:ops"] and body["workspace"] == "alice"
    assert "s3cr3t" not in response.content.decode()
    secret = Secret.objects.get(workspace=alice.personal_workspace, key="API_KEY")
    assert secret.reveal_value() == "s3cr3t\n"
    event = AuditEvent.objects.get(action="secret.created", secret_key="API_KEY")
    assert (
        event.actor == alice and event.ip_address == "127.0.0.1" and event.detail == {"tags": ["team:ops", "env:prod"]}
    )


def test_values_are_stored_byte_exactly(alice_api, alice):
    value = "  -----BEGIN KEY-----\r\nabc\n\tdef  \n-----END KEY-----\n\n 🔑 "
    assert alice_api.post(secrets_url("alice"), {"key": "PEM", "value": value}).status_code == 201
    assert Secret.objects.get(key="PEM").reveal_value().encode() == value.encode()


def test_duplicate_key_is_409_and_changes_nothing(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="DUP", value="original")
    counts = Secret.objects.count(), AuditEvent.objects.count()
    response = alice_api.post(secrets_url("alice"), {"key": "DUP", "value": "replacement"})
    assert error_of(response) == (409, "secret_exists")
    assert "delete" in response.json()["error"]["message"].lower()
    assert_nothing_written(*counts)
    assert Secret.objects.get(key="DUP").reveal_value() == "original"


def test_same_key_may_exist_in_two_workspaces(alice_api, team):
    assert alice_api.post(secrets_url("alice"), {"key": "SHARED", "value": "a"}).status_code == 201
    assert alice_api.post(secrets_url("team"), {"key": "SHARED", "value": "b"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "1STARTS_WITH_DIGIT", "value": "v"}, "key"),
        ({"key": "has space", "value": "v"}, "key"),
        ({"key": "slash/inside", "value": "v"}, "key"),
        ({"key": "", "value": "v"}, "key"),
        ({"key": "K" * 129, "value": "v"}, "key"),
        ({"key": "ünïcode", "value": "v"}, "key"),
        ({"key": "K", "value": ""}, "value"),
        ({"key": "K", "value": "nul\u0000inside"}, "value"),
        ({"key": "K", "value": "\ud800 lone surrogate"}, "value"),
        ({"key": "K", "value": 42}, "value"),
        ({"key": ["K"], "value": "v"}, "key"),
        ({"key": "K", "value": "v", "tags": "not-a-list"}, "tags"),
        ({"key": "K", "value": "v", "tags": ["bad tag!"]}, "tags"),
        ({"key": "K", "value": "v", "tags": ["ok", 5]}, "tags"),
        ({"value": "v"}, "key"),
        ({"key": "K"}, "value"),
        ({"key": "K", "value": "v", "vaule": "typo"}, "vaule"),
    ],
)
def test_bad_fields_are_400_naming_the_field_and_change_nothing(alice_api, body, field):
    counts = Secret.objects.count(), AuditEvent.objects.count()
    response = alice_api.post(secrets_url("alice"), body)
    assert error_of(response) == (400, "invalid_input")
    assert field in response.json()["error"]["fields"]
    assert_nothing_written(*counts)
    assert not Tag.objects.exists()


def test_longest_valid_key_and_largest_value_are_accepted(alice_api):
    response = alice_api.post(secrets_url("alice"), {"key": "K" * 128, "value": "x" * SECRET_VALUE_MAX_BYTES})
    assert response.status_code == 201


def test_oversized_value_is_413_with_the_limit_and_changes_nothing(alice_api):
    counts = Secret.objects.count(), AuditEvent.objects.count()
    response = alice_api.post(secrets_url("alice"), {"key": "BIG", "value": "é" * (SECRET_VALUE_MAX_BYTES // 2 + 1)})
    assert error_of(response) == (413, "value_too_large")
    assert "65536" in response.json()["error"]["message"]
    assert_nothing_written(*counts)


def test_request_body_over_the_upload_limit_is_413(alice_api):
    response = alice_api.post(secrets_url("alice"), {"key": "HUGE", "value": "x" * (2 * 1024 * 1024)})
    assert error_of(response) == (413, "request_too_large")


def test_malformed_json_is_400(alice_api):
    counts = Secret.objects.count(), AuditEvent.objects.count()
    assert error_of(alice_api.post(secrets_url("alice"), raw='{"key": "K", "value": ')) == (400, "malformed_json")
    assert error_of(alice_api.post(secrets_url("alice"), raw=b"\xff\xfe")) == (400, "malformed_json")
    assert_nothing_written(*counts)


@pytest.mark.parametrize("raw", ['["K", "v"]', '"K"', "null", "42"])
def test_json_that_is_not_an_object_is_400(alice_api, raw):
    assert error_of(alice_api.post(secrets_url("alice"), raw=raw)) == (400, "invalid_input")


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type_is_415(alice_api, content_type):
    response = alice_api.post(
        secrets_url("alice"), raw=json.dumps({"key": "K", "value": "v"}), content_type=content_type
    )
    assert error_of(response) == (415, "unsupported_media_type")
    assert not Secret.objects.filter(key="K").exists()


def test_post_without_csrf_token_is_403_and_changes_nothing(alice_api):
    counts = Secret.objects.count(), AuditEvent.objects.count()
    assert error_of(alice_api.post(secrets_url("alice"), {"key": "K", "value": "v"}, csrf=False)) == (
        403,
        "csrf_failed",
    )
    assert_nothing_written(*counts)


def test_post_with_a_stale_csrf_token_is_403(alice_api):
    alice_api.csrf_token = "x" * 64
    assert error_of(alice_api.post(secrets_url("alice"), {"key": "K", "value": "v"})) == (403, "csrf_failed")


def test_signed_out_post_is_refused_and_changes_nothing(api, alice):
    api.refresh_csrf()
    counts = Secret.objects.count(), AuditEvent.objects.count()
    assert error_of(api.post(secrets_url("alice"), {"key": "K", "value": "v"})) == (401, "not_authenticated")
    assert_nothing_written(*counts)


# Visibility and permission


def test_workspace_you_cannot_see_is_404_exactly_like_one_that_does_not_exist(bob_api, team):
    hidden = bob_api.get(secrets_url("team"))
    missing = bob_api.get(secrets_url("no-such-workspace"))
    assert error_of(hidden) == error_of(missing) == (404, "workspace_not_found")
    assert hidden.json() == missing.json()
    assert error_of(bob_api.post(secrets_url("team"), {"key": "K", "value": "v"}))[0] == 404


def test_someone_elses_personal_workspace_is_404(bob_api, alice):
    assert error_of(bob_api.get(secrets_url("alice"))) == (404, "workspace_not_found")


def test_hidden_secret_and_missing_secret_get_the_same_404(bob_api, alice, team, add_member, bob):
    create_secret(actor=alice, workspace=team, key="EXISTS", value="v")
    add_member(bob, Role.VIEWER)
    hidden = bob_api.get(secrets_url("team", "EXISTS"))
    missing = bob_api.get(secrets_url("team", "MISSING"))
    assert error_of(hidden) == error_of(missing) == (404, "secret_not_found")
    assert hidden.json() == missing.json()
    assert error_of(bob_api.delete(secrets_url("team", "EXISTS")))[0] == 404


def test_viewer_cannot_create_a_secret(bob_api, team, add_member, bob):
    add_member(bob, Role.VIEWER)
    counts = Secret.objects.count(), AuditEvent.objects.count()
    assert error_of(bob_api.post(secrets_url("team"), {"key": "K", "value": "v"})) == (403, "permission_denied")
    assert_nothing_written(*counts)


def test_member_can_create_list_and_delete(bob_api, team, add_member, bob):
    add_member(bob, Role.MEMBER)
    assert bob_api.post(secrets_url("team"), {"key": "K", "value": "v"}).status_code == 201
    assert [s["key"] for s in bob_api.get(secrets_url("team")).json()["secrets"]] == ["K"]
    assert bob_api.delete(secrets_url("team", "K")).status_code == 204


# Deleting, and no update


def test_delete_is_204_audited_and_the_key_can_be_added_again(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="ROTATE", value="old")
    response = alice_api.delete(secrets_url("alice", "ROTATE"))
    assert response.status_code == 204
    assert error_of(alice_api.get(secrets_url("alice", "ROTATE"))) == (404, "secret_not_found")
    assert AuditEvent.objects.filter(action="secret.deleted", secret_key="ROTATE", actor=alice).exists()
    assert alice_api.post(secrets_url("alice"), {"key": "ROTATE", "value": "new"}).status_code == 201
    assert Secret.objects.get(key="ROTATE").reveal_value() == "new"


def test_delete_of_a_missing_secret_is_404(alice_api):
    assert error_of(alice_api.delete(secrets_url("alice", "NOPE"))) == (404, "secret_not_found")


def test_delete_without_csrf_is_403_and_keeps_the_secret(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="KEEP", value="v")
    assert error_of(alice_api.delete(secrets_url("alice", "KEEP"), csrf=False)) == (403, "csrf_failed")
    assert Secret.objects.filter(key="KEEP").exists()


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_put_and_patch_are_405_saying_delete_and_recreate(alice_api, alice, method):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="original")
    response = alice_api.send(method, secrets_url("alice", "K"), {"value": "changed"})
    assert error_of(response) == (405, "secret_immutable")
    message = response.json()["error"]["message"].lower()
    assert "delete" in message and "add it again" in message
    assert response["Allow"] == "GET, DELETE"
    assert Secret.objects.get(key="K").reveal_value() == "original"


def test_wrong_method_on_the_list_is_405(alice_api):
    response = alice_api.send("PUT", secrets_url("alice"), {})
    assert error_of(response) == (405, "method_not_allowed")
    assert response["Allow"] == "GET, POST"


def test_unknown_api_path_is_a_json_404(alice_api):
    assert error_of(alice_api.get("/api/v1/nothing-here/")) == (404, "not_found")


# Tags


def test_tags_can_be_added_and_removed(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    response = alice_api.post(secrets_url("alice", "K") + "tags/", {"tags": ["team:ops", "env:prod", "team:ops"]})
    assert response.status_code == 200 and response.json()["tags"] == ["env:prod", "team:ops"]
    assert alice_api.delete(secrets_url("alice", "K") + "tags/team:ops/").status_code == 204
    assert alice_api.get(secrets_url("alice", "K")).json()["tags"] == ["env:prod"]
    actions = list(AuditEvent.objects.filter(secret_key="K").values_list("action", "detail"))
    assert ("secret.untagged", {"tag": "team:ops"}) in actions
    assert ("secret.tagged", {"tag": "env:prod"}) in actions


def test_removing_a_tag_the_secret_lacks_is_404(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    response = alice_api.delete(secrets_url("alice", "K") + "tags/absent/")
    assert error_of(response) == (404, "tag_not_found")
    assert response.json()["error"]["message"] == "K has no tag 'absent'."


def test_invalid_tag_is_400_and_nothing_is_tagged(alice_api, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    response = alice_api.post(secrets_url("alice", "K") + "tags/", {"tags": ["fine", "not fine"]})
    assert error_of(response) == (400, "invalid_input")
    assert not Tag.objects.exists()


def test_viewer_cannot_tag(bob_api, alice, team, add_member, bob):
    create_secret(actor=alice, workspace=team, key="K", value="v")
    add_member(bob, Role.VIEWER)
    assert error_of(bob_api.post(secrets_url("team", "K") + "tags/", {"tags": ["x"]}))[0] == 404


def test_responses_are_never_cached(alice_api):
    response = alice_api.get(secrets_url("alice"))
    assert "no-store" in response["Cache-Control"]


def test_json_client_fixture_really_enforces_csrf(api):
    assert isinstance(api, JsonClient) and api.client.handler.enforce_csrf_checks


def test_a_too_large_error_on_any_field_is_a_413_naming_that_field():
    from django.core.exceptions import ValidationError

    from secrets_app.error_responses import validation_error_response

    error = ValidationError({"dotenv": [ValidationError("The file is over 256 KiB.", code="value_too_large")]})
    response = validation_error_response(error)
    assert response.status_code == 413
    assert json.loads(response.content)["error"] == {
        "code": "value_too_large",
        "message": "The file is over 256 KiB.",
        "fields": {"dotenv": ["The file is over 256 KiB."]},
    }


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/"), ("get", "/api/v1/nothing/here/"), ("get", "/api/v1/docs"), ("post", "/api/v1/session")],
)
def test_a_path_no_route_has_is_a_json_404_whatever_debug_says(alice_api, settings, debug, method, path):
    settings.DEBUG = debug
    response = alice_api.get(path) if method == "get" else alice_api.post(path, {})
    assert error_of(response) == (404, "not_found")
    assert response["Content-Type"] == "application/json"
    if not path.endswith("/"):
        assert "API paths end with a slash" in response.json()["error"]["message"]
