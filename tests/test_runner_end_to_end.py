"""The runner path end to end: a real server (live_server) and the stdlib client in another process."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from secrets_app.client import ConsoleClient, redaction_forms
from secrets_app.models import AuditEvent
from secrets_app.selectors.grants import grants_in
from secrets_app.services.grants import grant_tag_permissions, revoke_tag_grant
from secrets_app.services.secrets import create_secret
from secrets_app.services.workspaces import create_team_workspace
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

# Runs in a fresh interpreter, with only the client module: proves it needs nothing but the
# standard library, and that Django is never imported on the runner side.
RUNNER_SCRIPT = """
import json, sys
from secrets_app import client
operation, argument = sys.argv[1], sys.argv[2]
try:
    result = client.get_secret(argument) if operation == "get" else client.resolve(json.loads(argument))
    answer = {"value": result}
except client.ClientError as error:
    answer = {"error": type(error).__name__, "code": error.code, "message": str(error)}
answer["django_imported"] = any(name == "django" or name.startswith("django.") for name in sys.modules)
print(json.dumps(answer))
"""

SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "acme-prod-4821",
        "private_key_id": "9f2c41d07be35a6e",
        "private_key": (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
            "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
        ),
        "client_email": "runner@acme-prod-4821.iam.example.com",
    },
    indent=2,
)

# A runner step that logs a JSON secret every way a careless step might, through `logging` with
# masking installed on the root logger's handler, and prints nothing else.
LOGGING_RUNNER_SCRIPT = r"""
import base64, json, logging, sys, urllib.parse
from secrets_app import client
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
client.install_log_masking()
log = logging.getLogger("runner.step")
value = client.get_secret("SERVICE_ACCOUNT")
document = json.loads(value)
log.info("raw: %s", value)
for number, line in enumerate(value.splitlines()):
    log.info("line %d: %s", number, line)
log.info("as a JSON string: %s", json.dumps(value))
log.info("base64: %s", base64.b64encode(value.encode()).decode())
log.info("url-safe base64: %s", base64.urlsafe_b64encode(value.encode()).decode().rstrip("="))
log.info("url-encoded: %s", urllib.parse.quote(value, safe=""))
log.warning("private key: %s", document["private_key"])
for number, line in enumerate(document["private_key"].splitlines()):
    logging.getLogger("runner.step.pem").info("key line %d: %s", number, line)  # a child logger
log.info("%(email)s in %(project)s", {"email": document["client_email"], "project": document["project_id"]})
inputs = client.resolve({"token": "Bearer ${workflow.secrets.API_KEY}", "key": "${workflow.secrets.SERVICE_ACCOUNT}"})
log.info("resolved inputs: %s", json.dumps(inputs))
try:
    raise RuntimeError(f"upload with key {document['private_key_id']} failed")
except RuntimeError:
    log.exception("step failed")
log.info("django imported: %s", any(name == "django" or name.startswith("django.") for name in sys.modules))
"""


def run_client(operation: str, argument: str, **environment: str) -> dict:
    """Run the client in a separate process with exactly these CONSOLE_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSOLE")}
    env.update(environment, PYTHONPATH=str(ROOT))
    env.setdefault("CONSOLE_LOGIN_FILE", "/nonexistent/login.json")
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER_SCRIPT, operation, argument],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(completed.stdout)
    assert answer.pop("django_imported") is False
    return answer


@pytest.fixture
def console(live_server, alice, team):
    """Workspaces A (`team`, home of the workflow) and B (`other`), alice signed in over HTTP."""
    create_team_workspace(actor=alice, name="Other", slug="other")
    create_secret(actor=alice, workspace=team, key="API_KEY", value="team-api-key")
    create_secret(actor=alice, workspace=team, key="PEM_KEY", value=PEM, tags=["team:ops"])
    create_secret(actor=alice, workspace=alice.personal_workspace, key="MINE", value="personal-value")
    client = ConsoleClient(live_server.url)
    client.login("alice", PASSWORD)
    client.register_workflow(
        "team",
        "nightly",
        {"steps": [{"token": "${workflow.secrets.API_KEY}"}, {"key": "${workflow.secrets.PEM_KEY}"}]},
        secrets=["SERVICE_ACCOUNT"],  # read by name in its code (get_secret)
    )
    return client


def runner_env(live_server, session: str) -> dict[str, str]:
    return {"CONSOLE_URL": live_server.url, "CONSOLE_SESSION": session}


def denied_reasons() -> list[tuple[str, str]]:
    return [
        (event.secret_key, event.detail["reason"])
        for event in AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ_DENIED).order_by("id")
    ]


def test_launched_in_its_home_workspace_the_runner_reads_values_byte_exactly(live_server, console):
    execution = console.launch("team", "team/nightly")
    env = runner_env(live_server, execution["runner_session"])
    assert run_client("get", "API_KEY", **env) == {"value": "team-api-key"}
    assert run_client("get", "PEM_KEY", **env) == {"value": PEM}
    reads = AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ, execution_id=execution["id"])
    assert sorted(reads.values_list("secret_key", flat=True)) == ["API_KEY", "PEM_KEY"]


def test_launched_in_another_workspace_the_runner_gets_workspace_mismatch(live_server, console):
    execution = console.launch("other", "team/nightly")
    answer = run_client("get", "API_KEY", **runner_env(live_server, execution["runner_session"]))
    assert answer["error"] == "WorkspaceMismatch" and answer["code"] == "workspace_mismatch"
    assert "registered" in answer["message"]
    assert denied_reasons() == [("API_KEY", "workspace_mismatch")]


def test_after_finishing_the_runner_session_is_refused(live_server, console):
    execution = console.launch("team", "team/nightly")
    env = runner_env(live_server, execution["runner_session"])
    assert run_client("get", "API_KEY", **env) == {"value": "team-api-key"}
    assert console.finish(execution["id"])["status"] == "finished"
    answer = run_client("get", "API_KEY", **env)
    assert answer["error"] == "SessionExpired" and answer["code"] == "execution_finished"
    assert denied_reasons() == [("API_KEY", "execution_finished")]


def test_revoking_a_grant_mid_execution_refuses_the_next_read(live_server, console, alice, bob, team):
    grant_tag_permissions(actor=alice, workspace=team, tag_name="team:ops", permission_names=["use"], username="bob")
    bob_client = ConsoleClient(live_server.url)
    bob_client.login("bob", PASSWORD)
    execution = bob_client.launch("team", "team/nightly")
    env = runner_env(live_server, execution["runner_session"])
    assert run_client("get", "PEM_KEY", **env) == {"value": PEM}
    (grant,) = [g for g in grants_in(team) if g.grantee == "bob"]
    revoke_tag_grant(actor=alice, workspace=team, grant_id=grant.id)
    answer = run_client("get", "PEM_KEY", **env)
    assert answer["error"] == "SecretNotFound" and answer["code"] == "secret_not_found"
    assert denied_reasons() == [("PEM_KEY", "secret_not_found")]


def test_a_local_session_reads_the_personal_workspace_and_not_a_team_one(live_server, console):
    env = runner_env(live_server, console.session)
    assert run_client("get", "MINE", **env) == {"value": "personal-value"}
    answer = run_client("get", "API_KEY", **env)
    assert answer["error"] == "SecretNotFound"
    assert denied_reasons() == [("API_KEY", "secret_not_found")]
    local_reads = AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ, execution_id=None)
    assert list(local_reads.values_list("secret_key", "workspace_slug")) == [("MINE", "alice")]


def test_resolve_fills_a_nested_document_and_fails_whole_on_an_unknown_name(live_server, console):
    env = runner_env(live_server, console.launch("team", "team/nightly")["runner_session"])
    document = {"a": [{"b": "Bearer ${workflow.secrets.API_KEY}"}, 7, None], "c": "$workflow.secrets.API_KEY"}
    answer = run_client("resolve", json.dumps(document), **env)
    assert answer == {"value": {"a": [{"b": "Bearer team-api-key"}, 7, None], "c": "$workflow.secrets.API_KEY"}}
    answer = run_client(
        "resolve", json.dumps({"x": "${workflow.secrets.API_KEY}", "y": "${workflow.secrets.GONE}"}), **env
    )
    assert answer["error"] == "SecretNotFound" and "GONE" in answer["message"]
    assert "team-api-key" not in json.dumps(answer)
    assert denied_reasons() == [("GONE", "secret_not_found")]


def test_local_context_answers_before_the_console_is_asked(live_server, console):
    local = {"CONSOLE_USE_LOCAL_SECRETS": "true", "CONSOLE__SECRETS__API_KEY": "from-the-environment"}
    # With no console configured at all, the local context alone answers...
    assert run_client("get", "API_KEY", **local) == {"value": "from-the-environment"}
    answer = run_client("resolve", json.dumps({"t": "${workflow.secrets.API_KEY}"}), **local)
    assert answer == {"value": {"t": "from-the-environment"}}
    # ...and with one, local names never reach it while the others do.
    env = {**local, **runner_env(live_server, console.launch("team", "team/nightly")["runner_session"])}
    answer = run_client("resolve", json.dumps(["${workflow.secrets.API_KEY}", "${workflow.secrets.PEM_KEY}"]), **env)
    assert answer == {"value": ["from-the-environment", PEM]}
    assert list(
        AuditEvent.objects.filter(action=AuditEvent.Action.SECRET_READ).values_list("secret_key", flat=True)
    ) == ["PEM_KEY"]
    # Without the flag, the variable is ignored.
    without_flag = run_client("get", "API_KEY", CONSOLE__SECRETS__API_KEY="ignored")
    assert without_flag["error"] == "NotConfigured"


def test_a_runner_logging_a_json_secret_in_every_form_leaves_none_of_it_in_its_log(live_server, console, team, alice):
    create_secret(actor=alice, workspace=team, key="SERVICE_ACCOUNT", value=SERVICE_ACCOUNT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSOLE")}
    env.update(runner_env(live_server, console.launch("team", "team/nightly")["runner_session"]))
    env.update(PYTHONPATH=str(ROOT), CONSOLE_LOGIN_FILE="/nonexistent/login.json")
    completed = subprocess.run(
        [sys.executable, "-c", LOGGING_RUNNER_SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    log = completed.stdout
    assert completed.stderr == ""
    leaked = [form for form in redaction_forms(SERVICE_ACCOUNT, "team-api-key") if form in log]
    assert leaked == []
    by_hand = [
        "9f2c41d07be35a6e",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
        "acme-prod-4821",
        "runner@acme-prod-4821.iam.example.com",
        "service_account",
        "team-api-key",
        base64.b64encode(SERVICE_ACCOUNT.encode()).decode()[:40],
    ]
    assert [text for text in by_hand if text in log] == []
    lines = log.splitlines()
    assert "INFO runner.step raw: ***" in lines
    assert "INFO runner.step line 0: {" in lines  # one character: too short to be worth masking
    assert "INFO runner.step line 2: ***" in lines
    assert 'INFO runner.step as a JSON string: "***"' in lines
    assert "INFO runner.step.pem key line 1: ***" in lines
    assert "INFO runner.step *** in ***" in lines
    assert 'INFO runner.step resolved inputs: {"token": "Bearer ***", "key": "***"}' in lines
    assert "RuntimeError: upload with key *** failed" in lines
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "INFO runner.step django imported: False"


def test_login_prompts_without_echo_and_saves_a_private_session_file(live_server, console, tmp_path):
    login_path = tmp_path / "config" / "login.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSOLE")}
    env.update(PYTHONPATH=str(ROOT), CONSOLE_LOGIN_FILE=str(login_path))
    command = [sys.executable, "-m", "secrets_app.client", "login", "--url", live_server.url, "--username", "alice"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a terminal of its own, as a person at a prompt would have
        os.execve(sys.executable, command, env)
    transcript = _read_until(terminal, b"Password for alice: ")
    os.write(terminal, PASSWORD.encode() + b"\n")
    transcript += _read_until(terminal, None)
    _, status = os.waitpid(pid, 0)
    text = transcript.decode()
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Signed in as alice" in text
    assert PASSWORD not in text  # never echoed
    assert stat.S_IMODE(login_path.stat().st_mode) == 0o600
    saved = json.loads(login_path.read_text())
    assert saved["url"] == live_server.url and PASSWORD not in login_path.read_text()
    # The saved session is an ordinary one: a local run, the personal workspace only.
    from_file = {"CONSOLE_LOGIN_FILE": str(login_path)}
    assert run_client("get", "MINE", **from_file) == {"value": "personal-value"}
    assert run_client("get", "API_KEY", **from_file)["error"] == "SecretNotFound"


def test_login_asks_for_the_two_factor_code_of_an_account_that_has_one(live_server, console, tmp_path):
    import pyotp
    from allauth.mfa.totp.internal.auth import TOTP

    from tests.test_two_factor import SECRET_BASE32

    TOTP.activate(get_user_model().objects.get(username="alice"), SECRET_BASE32)
    login_path = tmp_path / "login.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSOLE")}
    env.update(PYTHONPATH=str(ROOT), CONSOLE_LOGIN_FILE=str(login_path))
    command = [sys.executable, "-m", "secrets_app.client", "login", "--url", live_server.url, "--username", "alice"]
    pid, terminal = pty.fork()
    if pid == 0:
        os.execve(sys.executable, command, env)
    transcript = _read_until(terminal, b"Password for alice: ")
    os.write(terminal, PASSWORD.encode() + b"\n")
    transcript += _read_until(terminal, b"Two-factor code: ")
    os.write(terminal, pyotp.TOTP(SECRET_BASE32).now().encode() + b"\n")
    transcript += _read_until(terminal, None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, transcript.decode()
    assert "Signed in as alice" in transcript.decode()
    # --code on the command line, with a recovery code this time.
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    code = RecoveryCodes.activate(get_user_model().objects.get(username="alice")).get_unused_codes()[0]
    completed = subprocess.run(
        [*command, "--code", code], env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "Signed in as alice" in completed.stdout


def test_a_wrong_password_at_login_fails_and_writes_nothing(live_server, console, tmp_path):
    login_path = tmp_path / "login.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSOLE")}
    env.update(PYTHONPATH=str(ROOT), CONSOLE_LOGIN_FILE=str(login_path))
    completed = subprocess.run(
        [sys.executable, "-m", "secrets_app.client", "login", "--url", live_server.url, "--username", "alice"],
        env=env,
        input="not-the-password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "invalid_credentials" in completed.stderr
    assert not login_path.exists()


def _read_until(terminal: int, marker: bytes | None, timeout: float = 30) -> bytes:
    """Read the child's terminal until `marker` appears (or, with None, until it closes)."""
    received = b""
    while marker is None or marker not in received:
        ready, _, _ = select.select([terminal], [], [], timeout)
        if not ready:
            raise AssertionError(f"timed out waiting for {marker!r}; got {received!r}")
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # EIO: the child closed its terminal
            break
        if not chunk:
            break
        received += chunk
    return received


def test_a_real_runner_is_refused_undeclared_and_unapproved_protected_secrets(live_server, console, alice, bob, team):
    from secrets_app.models import ExecutionApproval, Tag
    from secrets_app.services.approvals import decide_approval
    from secrets_app.services.workspaces import add_member

    create_secret(actor=alice, workspace=team, key="UNDECLARED", value="never-read")
    Tag.objects.filter(workspace=team, name="team:ops").update(protected=True)
    add_member(actor=alice, workspace=team, username="bob", role="admin")
    execution = console.launch("team", "team/nightly")
    assert execution["status"] == "waiting_for_approval"
    env = runner_env(live_server, execution["runner_session"])
    outside = run_client("get", "UNDECLARED", **env)
    assert outside["code"] == "outside_workflow_scope" and "never-read" not in str(outside)
    waiting = run_client("get", "PEM_KEY", **env)
    assert waiting["code"] == "approval_required"
    assert run_client("get", "API_KEY", **env) == {"value": "team-api-key"}  # not protected
    decide_approval(actor=bob, approval=ExecutionApproval.objects.get(), approve=True)
    assert run_client("get", "PEM_KEY", **env) == {"value": PEM}
