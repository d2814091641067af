"""Browser pages, driven through Django's test client: what a signed-in person sees and can do."""

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from secrets_app.models import AuditEvent, Membership, Role, Secret, Workspace
from secrets_app.services.secrets import create_secret
from tests.conftest import PASSWORD, signed_in_client

pytestmark = pytest.mark.django_db


def page(slug: str, *parts: str) -> str:
    return "/settings/developer/" + "/".join([slug, *parts]) + "/"


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def messages_in(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def alice_client(alice) -> Client:
    return signed_in_client(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return signed_in_client(bob)


# Signing in and up


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(page("alice", "secrets"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/").headers["Location"] == "/accounts/login/"


def test_sign_in_leads_to_the_personal_workspace_secrets(client, alice):
    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == page("alice", "secrets")
    assert "Secrets" in text_of(response)


def test_wrong_password_shows_an_error(client, alice):
    response = client.post("/accounts/login/", {"login": "alice", "password": "nope"})
    assert response.status_code == 400
    assert "The username and/or password you specified are not correct." in text_of(response)


def test_sign_up_creates_the_user_and_their_personal_workspace_then_asks_to_confirm_the_address(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "carol@example.com", "password1": "An-excellent-pass-77", "password2": "An-excellent-pass-77"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/accounts/confirm-email/"
    assert "We have sent an email to you for verification" in text_of(response)
    assert "carol@example.com" in messages_in(response)[0]
    carol = get_user_model().objects.get(username="carol")
    assert Workspace.objects.get(personal_owner=carol).kind == "personal"
    signed_in = client.post("/accounts/login/", {"login": "carol", "password": "An-excellent-pass-77"}, follow=True)
    assert signed_in.redirect_chain[-1][0] == page("carol", "secrets")


def test_sign_up_with_mismatched_passwords_shows_the_error_and_creates_nobody(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "carol@example.com", "password1": "An-excellent-pass-77", "password2": "different-77-Pass"},
    )
    assert response.status_code == 400 and "You must type the same password each time." in text_of(response)
    assert not get_user_model().objects.filter(email="carol@example.com").exists()


def test_sign_out_is_a_post(alice_client):
    # A GET only asks "Are you sure?": a link or an image cannot sign anyone out.
    confirm = alice_client.get("/accounts/logout/")
    assert confirm.status_code == 200 and "Are you sure you want to sign out?" in text_of(confirm)
    assert alice_client.get(page("alice", "secrets")).status_code == 200
    response = alice_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert alice_client.get(page("alice", "secrets")).status_code == 302


# Account Settings


def test_profile_can_be_saved_and_never_changes_the_address(alice_client, alice):
    response = alice_client.post(
        "/settings/account/", {"first_name": "Alice", "last_name": "A", "email": "a@example.org"}, follow=True
    )
    assert "Profile saved." in messages_in(response)
    alice.refresh_from_db()
    # The address changes on Account Settings → E-mail, which confirms it, never here.
    assert (alice.first_name, alice.email) == ("Alice", "alice@example.com")


def test_a_member_is_added_by_their_address_too(alice_client, team, bob):
    response = alice_client.post(page("team", "members"), {"username": bob.email.upper(), "role": "viewer"})
    assert response.status_code == 302
    assert team.memberships.get(user=bob).role == "viewer"


def test_password_can_be_changed(alice_client, alice):
    response = alice_client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": "Brand-new-pass-88", "password2": "Brand-new-pass-88"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("Brand-new-pass-88")


# The Secrets list


def test_secrets_page_lists_metadata_never_values_and_says_secrets_are_immutable(alice_client, alice):
    create_secret(
        actor=alice, workspace=alice.personal_workspace, key="DB_PASSWORD", value="pa55-canary", tags=["env:prod"]
    )
    response = alice_client.get(page("alice", "secrets"))
    body = text_of(response)
    assert response.status_code == 200
    assert "DB_PASSWORD" in body and "env:prod" in body and "alice" in body
    assert "pa55-canary" not in body
    assert "Secrets are immutable" in body
    assert not re.search(r">\s*Edit\s*<", body)


def test_add_secret_from_the_form(alice_client, alice):
    response = alice_client.post(
        page("alice", "secrets"),
        {"key": "API_KEY", "value": "line one\r\nline two\r\n", "tags": "team:ops, env:prod"},
        follow=True,
    )
    assert "Secret API_KEY added. Its value will not be shown again." in messages_in(response)
    secret = Secret.objects.get(workspace=alice.personal_workspace, key="API_KEY")
    assert secret.reveal_value() == "line one\nline two\n"
    assert sorted(secret.tags.values_list("name", flat=True)) == ["env:prod", "team:ops"]
    assert "line one" not in text_of(response)


def test_add_secret_from_an_uploaded_file_keeps_its_bytes(alice_client, alice):
    pem = b"-----BEGIN KEY-----\r\nabc\n-----END KEY-----\n"
    upload = SimpleUploadedFile("key.pem", pem, content_type="application/x-pem-file")
    response = alice_client.post(page("alice", "secrets"), {"key": "PEM", "value": "", "value_file": upload})
    assert response.status_code == 302
    assert Secret.objects.get(key="PEM").reveal_value().encode() == pem


def test_uploading_a_binary_file_is_refused(alice_client):
    upload = SimpleUploadedFile("blob.bin", b"\xff\xfe\x00binary", content_type="application/octet-stream")
    response = alice_client.post(page("alice", "secrets"), {"key": "BLOB", "value_file": upload})
    assert response.status_code == 400 and "not UTF-8 text" in text_of(response)
    assert not Secret.objects.filter(key="BLOB").exists()


def test_typing_a_value_and_uploading_a_file_is_refused(alice_client):
    upload = SimpleUploadedFile("v.txt", b"from file")
    response = alice_client.post(page("alice", "secrets"), {"key": "BOTH", "value": "typed", "value_file": upload})
    assert "not both" in text_of(response)
    assert not Secret.objects.filter(key="BOTH").exists()


def test_duplicate_key_shows_the_error_without_echoing_the_value(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="DUP", value="original")
    response = alice_client.post(page("alice", "secrets"), {"key": "DUP", "value": "echo-canary"})
    body = text_of(response)
    assert response.status_code == 400
    assert "already exists" in body and "delete it first" in body
    assert "echo-canary" not in body
    assert "paste it again" in body
    assert Secret.objects.get(key="DUP").reveal_value() == "original"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "9lives", "value": "v"}, "start with a letter or '_'"),
        ({"key": "OK", "value": ""}, "The value must not be empty."),
        ({"key": "OK", "value": "x" * (64 * 1024 + 1)}, "the limit is 65536 bytes"),
        ({"key": "OK", "value": "v", "tags": "good bad!tag"}, "is not valid"),
        ({"key": "", "value": "v"}, "This field is required."),
    ],
)
def test_bad_input_in_the_add_form_shows_a_clear_error_and_adds_nothing(alice_client, data, message):
    before = Secret.objects.count(), AuditEvent.objects.count()
    response = alice_client.post(page("alice", "secrets"), data)
    assert response.status_code == 400
    assert message in text_of(response)
    assert (Secret.objects.count(), AuditEvent.objects.count()) == before


def test_secrets_page_is_paginated(alice_client, alice):
    for number in range(55):
        create_secret(actor=alice, workspace=alice.personal_workspace, key=f"K{number:02}", value="v")
    first, second = alice_client.get(page("alice", "secrets")), alice_client.get(page("alice", "secrets") + "?page=2")
    assert "K49" in text_of(first) and "K50" not in text_of(first)
    assert "K54" in text_of(second) and "Page 2 of 2" in text_of(second)
    assert alice_client.get(page("alice", "secrets") + "?page=9").status_code == 404


# One secret, tags and deletion


def test_secret_page_shows_metadata_and_hides_the_value(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="detail-canary", tags=["a"])
    body = text_of(alice_client.get(page("alice", "secrets", "K")))
    assert "K" in body and "(hidden)" in body and "detail-canary" not in body


def test_tags_can_be_added_and_removed_from_the_secret_page(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    response = alice_client.post(page("alice", "secrets", "K", "tags"), {"tags": "team:ops env:prod"}, follow=True)
    assert "Tagged K: team:ops, env:prod." in messages_in(response)
    response = alice_client.post(page("alice", "secrets", "K", "tags", "team:ops", "remove"), follow=True)
    assert "Removed tag team:ops from K." in messages_in(response)
    assert list(Secret.objects.get(key="K").tags.values_list("name", flat=True)) == ["env:prod"]


def test_an_invalid_tag_shows_the_error(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    response = alice_client.post(page("alice", "secrets", "K", "tags"), {"tags": "no!good"})
    assert response.status_code == 400 and "is not valid" in text_of(response)


def test_delete_asks_for_confirmation_then_deletes(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="GONE", value="v")
    confirm = alice_client.get(page("alice", "secrets", "GONE", "delete"))
    assert confirm.status_code == 200 and "cannot be undone" in text_of(confirm)
    assert Secret.objects.filter(key="GONE").exists()
    response = alice_client.post(page("alice", "secrets", "GONE", "delete"), follow=True)
    assert "Secret GONE deleted. You can add it again with a new value." in messages_in(response)
    assert not Secret.objects.filter(key="GONE").exists()
    again = alice_client.post(page("alice", "secrets"), {"key": "GONE", "value": "new"})
    assert again.status_code == 302


def test_there_is_no_edit_page(alice_client, alice):
    create_secret(actor=alice, workspace=alice.personal_workspace, key="K", value="v")
    assert alice_client.get(page("alice", "secrets", "K", "edit")).status_code == 404
    assert alice_client.post(page("alice", "secrets", "K"), {"value": "new"}).status_code == 405


# Workspaces, the switcher and roles


def test_switcher_lists_my_workspaces_and_opens_the_chosen_one(alice_client, team):
    body = text_of(alice_client.get(page("alice", "secrets")))
    assert 'value="alice"' in body and 'value="team"' in body
    response = alice_client.get("/settings/developer/?workspace=team", follow=True)
    assert response.redirect_chain == [(page("team", "secrets"), 302)]
    assert alice_client.get("/settings/developer/")["Location"] == page("team", "secrets")


def test_switching_to_a_workspace_you_cannot_see_is_404(bob_client, team):
    assert bob_client.get("/settings/developer/?workspace=team").status_code == 404


def test_pages_of_a_hidden_workspace_are_404(bob_client, team, alice):
    create_secret(actor=alice, workspace=team, key="K", value="v")
    for url in (
        page("team", "secrets"),
        page("team", "secrets", "K"),
        page("team", "secrets", "K", "delete"),
        page("team", "members"),
    ):
        assert bob_client.get(url).status_code == 404
    assert bob_client.post(page("team", "secrets"), {"key": "X", "value": "v"}).status_code == 404


def test_viewer_sees_no_add_form_and_cannot_add(bob_client, team, add_member, bob, alice):
    create_secret(actor=alice, workspace=team, key="K", value="v")
    add_member(bob, Role.VIEWER)
    body = text_of(bob_client.get(page("team", "secrets")))
    assert "Add a secret" not in body and "K" not in re.findall(r'class="key"[^>]*>([^<]*)<', body)
    assert bob_client.post(page("team", "secrets"), {"key": "X", "value": "v"}).status_code == 403
    assert not Secret.objects.filter(key="X").exists()


def test_creating_a_team_workspace_from_the_ui(alice_client):
    response = alice_client.post("/settings/workspaces/new/", {"name": "Data team", "slug": "data"}, follow=True)
    assert response.redirect_chain[-1][0] == page("data", "secrets")
    assert Membership.objects.get(workspace__slug="data").role == Role.OWNER


def test_a_taken_slug_is_a_form_error(alice_client, team):
    response = alice_client.post("/settings/workspaces/new/", {"name": "Again", "slug": "team"})
    assert response.status_code == 400 and "already exists" in text_of(response)


def test_owner_adds_changes_and_removes_members(alice_client, team, bob):
    response = alice_client.post(page("team", "members"), {"username": "bob", "role": "viewer"}, follow=True)
    assert "Added bob." in messages_in(response)
    alice_client.post(page("team", "members", "bob"), {"role": "admin"})
    assert Membership.objects.get(workspace=team, user=bob).role == Role.ADMIN
    alice_client.post(page("team", "members", "bob"), {"remove": "1"})
    assert not Membership.objects.filter(workspace=team, user=bob).exists()
    assert set(AuditEvent.objects.filter(workspace=team).values_list("action", flat=True)) >= {
        "member.added",
        "member.role_changed",
        "member.removed",
    }


def test_adding_an_unknown_user_is_a_form_error(alice_client, team):
    response = alice_client.post(page("team", "members"), {"username": "nobody", "role": "member"})
    assert response.status_code == 400 and "No active user named" in text_of(response)


def test_the_last_owner_cannot_leave_or_be_demoted(alice_client, team, alice):
    response = alice_client.post(page("team", "members", "alice"), {"role": "admin"}, follow=True)
    assert any("at least one owner" in m for m in messages_in(response))
    response = alice_client.post(page("team", "members", "alice"), {"remove": "1"}, follow=True)
    assert any("at least one owner" in m for m in messages_in(response))
    assert Membership.objects.get(workspace=team, user=alice).role == Role.OWNER


def test_admin_cannot_touch_owners(bob_client, team, add_member, bob, alice):
    add_member(bob, Role.ADMIN)
    assert bob_client.post(page("team", "members", "alice"), {"remove": "1"}).status_code == 403
    assert bob_client.post(page("team", "members"), {"username": "bob", "role": "owner"}).status_code in (400, 403)
    assert Membership.objects.get(workspace=team, user=alice).role == Role.OWNER


def test_member_cannot_manage_members(bob_client, team, add_member, bob, make_user):
    add_member(bob, Role.MEMBER)
    make_user("carol")
    response = bob_client.post(page("team", "members"), {"username": "carol", "role": "member"})
    assert response.status_code == 403 and "do not have permission" in text_of(response)
    assert not Membership.objects.filter(workspace=team, user__username="carol").exists()


def test_personal_workspace_has_no_members_page_link(alice_client):
    assert page("alice", "members") not in text_of(alice_client.get(page("alice", "secrets")))


def test_console_pages_are_never_cached(alice_client):
    assert "no-store" in alice_client.get(page("alice", "secrets"))["Cache-Control"]


def test_forms_enforce_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(page("alice", "secrets"), {"key": "K", "value": "v"})
    assert response.status_code == 403 and "could not be verified" in text_of(response)
    assert not Secret.objects.filter(key="K").exists()


def test_the_404_page_shows_no_url_patterns_or_server_paths(alice_client, settings):
    settings.DEBUG = False
    response = alice_client.get("/settings/no-such-page/")
    body = text_of(response)
    assert response.status_code == 404
    assert "There is nothing here, or you cannot see it." in body
    assert "accounts/login/" not in body and "tried" not in body and "/work/" not in body


def test_a_404_of_the_consoles_own_still_says_what_is_missing(alice_client, settings):
    settings.DEBUG = False
    response = alice_client.get(page("alice", "secrets", "NOPE"))
    assert response.status_code == 404
    assert "No such secret in this workspace, or you cannot see it." in text_of(response)
