"""Configuration from the environment: required keys, the generated .env, static files without DEBUG."""

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console import generate_env

ROOT = Path(__file__).resolve().parent.parent
GOOD_RING = "k1:" + base64.b64encode(b"k" * 32).decode()
AUDIT_KEY = "a" * 40
FINGERPRINT_KEY = "f" * 40


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py in a clean environment holding only `env` (and no .env file)."""
    environment = {"PATH": os.environ["PATH"], "CONSOLE_ENV_FILE": "", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


BASE = {
    "SECRET_KEY": "x" * 50,
    "SECRETS_ENCRYPTION_KEYS": GOOD_RING,
    "AUDIT_HMAC_KEY": AUDIT_KEY,
    "SECRETS_FINGERPRINT_KEY": FINGERPRINT_KEY,
    "DEBUG": "true",
}


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "SECRETS_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY"]
)
def test_startup_fails_naming_a_missing_key(missing):
    env = {name: value for name, value in BASE.items() if name != missing}
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_startup_fails_naming_a_malformed_key_ring():
    result = run_manage("check", **{**BASE, "SECRETS_ENCRYPTION_KEYS": "k1:dG9vIHNob3J0"})
    assert result.returncode != 0
    assert "SECRETS_ENCRYPTION_KEYS: key 'k1' must be the base64 of exactly 32 bytes" in result.stderr


@pytest.mark.parametrize("variable", ["AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY"])
def test_startup_fails_on_a_short_hmac_key(variable):
    result = run_manage("check", **{**BASE, variable: "too-short"})
    assert result.returncode != 0
    assert f"{variable} must be at least 32 characters long" in result.stderr


def test_production_mode_requires_allowed_hosts():
    result = run_manage("check", **{**BASE, "DEBUG": "false"})
    assert result.returncode != 0
    assert "Set the ALLOWED_HOSTS environment variable" in result.stderr


PRODUCTION = {
    "SECRET_KEY": "Yq3-" + "f8Kd_2pLz" * 6,
    "SECRETS_ENCRYPTION_KEYS": GOOD_RING,
    "AUDIT_HMAC_KEY": AUDIT_KEY,
    "SECRETS_FINGERPRINT_KEY": FINGERPRINT_KEY,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "secrets.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://secrets.example.com",
    "DATABASE_URL": "postgres://console@db.internal:5432/console",
    "CACHE_URL": "redis://cache.internal:6379/1",
}


@pytest.mark.parametrize(
    "missing",
    ["DATABASE_URL", "CACHE_URL", "SECRET_KEY", "SECRETS_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY"],
)
def test_production_startup_fails_naming_each_missing_variable(missing):
    env = {name: value for name, value in PRODUCTION.items() if name != missing}
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


@pytest.mark.parametrize("cache_url", ["locmemcache://", "dummycache://"])
def test_production_refuses_a_cache_other_processes_cannot_see(cache_url):
    result = run_manage("check", **{**PRODUCTION, "CACHE_URL": cache_url})
    assert result.returncode != 0
    assert "Set the CACHE_URL environment variable to a shared cache" in result.stderr


def test_check_deploy_is_clean_with_the_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_flags_a_debug_deployment():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "DEBUG": "true"})
    assert result.returncode != 0 and "security.W018" in result.stderr


DATABASE_CONNECTION_SETTINGS = (
    "from django.conf import settings; database = settings.DATABASES['default']; "
    "print(database['OPTIONS']['connect_timeout'], database['CONN_MAX_AGE'], database['CONN_HEALTH_CHECKS'])"
)


def test_postgresql_connections_give_up_quickly_and_are_checked_before_reuse():
    production = {**PRODUCTION, "CONN_MAX_AGE": "60"}
    result = run_manage("shell", "-v0", "-c", DATABASE_CONNECTION_SETTINGS, **production)
    assert result.stdout.split() == ["5", "60", "True"], result.stderr
    own_timeout = {**production, "DATABASE_URL": PRODUCTION["DATABASE_URL"] + "?connect_timeout=2"}
    result = run_manage("shell", "-v0", "-c", DATABASE_CONNECTION_SETTINGS, **own_timeout)
    assert result.stdout.split() == ["2", "60", "True"], result.stderr


def test_a_complete_environment_starts():
    result = run_manage("check", **BASE)
    assert result.returncode == 0, result.stderr


def test_whitenoise_serves_hashed_static_files_with_debug_off(tmp_path):
    env = {**PRODUCTION, "ALLOWED_HOSTS": "testserver", "STATIC_ROOT": str(tmp_path / "static")}
    collected = run_manage("collectstatic", "--noinput", "-v0", **env)
    assert collected.returncode == 0, collected.stderr
    script = (
        "import django, re; django.setup();"
        "from django.test import Client; from django.templatetags.static import static;"
        "url = static('css/console.css'); c = Client();"
        "r = c.get(url, secure=True);"
        "print(url, r.status_code, r.headers.get('Cache-Control'), len(b''.join(r.streaming_content)), sep='|')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "CONSOLE_ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "console.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    url, status, cache_control, size = result.stdout.strip().split("|")
    assert url.startswith("/static/css/console.") and url.endswith(".css") and url != "/static/css/console.css"
    assert status == "200" and "immutable" in cache_control and int(size) > 1000


def test_generated_env_file_has_fresh_keys_and_is_private(tmp_path):
    target = tmp_path / ".env"
    added = generate_env.ensure_env_file(target)
    assert added == ["DEBUG", "SECRET_KEY", "SECRETS_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY"]
    text = target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    ring = next(line for line in text.splitlines() if line.startswith("SECRETS_ENCRYPTION_KEYS="))
    key_id, key = ring.split("=", 1)[1].split(":")
    assert len(base64.b64decode(key)) == 32 and key_id.startswith("k")


def test_generated_env_file_is_never_overwritten_only_completed(tmp_path):
    target = tmp_path / ".env"
    target.write_text("SECRET_KEY=keep-me\nSECRETS_ENCRYPTION_KEYS=k:keep\n")
    assert generate_env.ensure_env_file(target) == ["DEBUG", "AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY"]
    assert generate_env.ensure_env_file(target) == []
    text = target.read_text()
    assert "SECRET_KEY=keep-me" in text and "SECRETS_ENCRYPTION_KEYS=k:keep" in text and "DEBUG=true" in text


@pytest.mark.django_db
def test_the_suite_runs_on_the_database_and_cache_the_environment_names():
    from django.conf import settings
    from django.db import connection

    database_url = os.environ.get("DATABASE_URL", "sqlite://")
    expected_vendor = "postgresql" if database_url.startswith(("postgres", "pgsql")) else "sqlite"
    assert connection.vendor == expected_vendor
    expected_cache = "RedisCache" if os.environ.get("CACHE_URL", "").startswith("redis") else "LocMemCache"
    assert settings.CACHES["default"]["BACKEND"].endswith(expected_cache)


@pytest.mark.django_db
def test_models_and_migrations_agree():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


DOLLAR_KEY = "$q*eo-SECRET-Kx7!" + "y" * 40


@pytest.mark.parametrize(
    "variable", ["SECRET_KEY", "AUDIT_HMAC_KEY", "SECRETS_FINGERPRINT_KEY", "SECRETS_ENCRYPTION_ACTIVE_KEY"]
)
def test_a_key_that_starts_with_a_dollar_is_read_literally(variable):
    """django-environ would read `$q*eo…` as the name of another variable (and print it)."""
    env = {**BASE, variable: DOLLAR_KEY}
    if variable == "SECRETS_ENCRYPTION_ACTIVE_KEY":
        env["SECRETS_ENCRYPTION_KEYS"] = GOOD_RING
    setting = "SECRETS_ENCRYPTION_ACTIVE_KEY" if variable.endswith("ACTIVE_KEY") else variable
    script = f"from django.conf import settings; print(settings.{setting} == {DOLLAR_KEY!r})"
    result = run_manage("shell", "-c", script, **env)
    assert "q*eo" not in result.stderr and "SECRET-Kx7" not in result.stderr
    if variable == "SECRETS_ENCRYPTION_ACTIVE_KEY":
        # Not a key id of the ring: start-up stops, naming the variable and not its value.
        assert "SECRETS_ENCRYPTION_ACTIVE_KEY is not one of the key ids in SECRETS_ENCRYPTION_KEYS" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "postgres://app:Passw0rd-in-url@db.example:notaport/app"),
        ("CACHE_URL", "nosuchscheme://user:Passw0rd-in-url@cache/1"),
        ("EMAIL_URL", "smtp://user:Passw0rd-in-url@mail:notaport"),
        ("CONN_MAX_AGE", "Passw0rd-in-url"),
        ("DATABASE_URL", "$Passw0rd-in-url"),
    ],
)
def test_a_value_that_cannot_be_read_stops_start_up_without_printing_it(variable, value):
    result = run_manage("check", **{**BASE, variable: value})
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Passw0rd-in-url" not in result.stderr + result.stdout


def test_an_env_file_is_read_only_where_named_and_must_exist(tmp_path):
    env_file = tmp_path / "console.env"
    env_file.write_text(f"AUDIT_HMAC_KEY={AUDIT_KEY}\n")
    without_audit_key = {name: value for name, value in BASE.items() if name != "AUDIT_HMAC_KEY"}
    assert run_manage("check", **without_audit_key, CONSOLE_ENV_FILE=str(env_file)).returncode == 0
    # Empty (what `make serve-prod` sets): no file at all, so the missing key stops start-up.
    empty = run_manage("check", **without_audit_key, CONSOLE_ENV_FILE="")
    assert empty.returncode != 0 and "Set the AUDIT_HMAC_KEY environment variable" in empty.stderr
    missing = run_manage("check", **BASE, CONSOLE_ENV_FILE=str(tmp_path / "nowhere.env"))
    assert missing.returncode != 0 and "CONSOLE_ENV_FILE names a file that does not exist" in missing.stderr
    assert str(tmp_path) not in missing.stderr


def test_make_serve_prod_never_reads_the_development_env_file(tmp_path):
    # serve-prod's first command, with a stand-in python that prints what it was given and stops.
    (tmp_path / "python").write_text('#!/bin/sh\necho "CONSOLE_ENV_FILE=[${CONSOLE_ENV_FILE-unset}]"\nexit 3\n')
    (tmp_path / "python").chmod(0o755)
    # A stamp newer than requirements.txt, so the install step has nothing to do (as after `make run`).
    (tmp_path / "installed").write_text("")
    result = subprocess.run(
        ["make", "serve-prod", f"BIN={tmp_path}", f"INSTALLED={tmp_path / 'installed'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert "CONSOLE_ENV_FILE=[]" in result.stdout, result.stdout + result.stderr


def test_single_sign_on_comes_from_the_environment(tmp_path):
    show = (
        "from django.conf import settings as s; app = s.SOCIALACCOUNT_PROVIDERS['openid_connect']['APPS'][0]; "
        "print(app['name'], app['client_id'], app['settings']['server_url'], s.SSO_ONLY, s.MFA_PASSKEY_LOGIN_ENABLED, "
        "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action'])"
    )
    sso = {
        "OIDC_ISSUER_URL": "https://id.example.com/realms/main",
        "OIDC_CLIENT_ID": "console",
        "OIDC_CLIENT_SECRET": "s3cret",
        "OIDC_BUTTON_LABEL": "Example ID",
        "SSO_ONLY": "true",
    }
    shown = run_manage("shell", "-v", "0", "-c", show, **BASE, **sso)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [
        "Example",
        "ID",
        "console",
        "https://id.example.com/realms/main",
        "True",
        "False",  # no passkey sign-in where only single sign-on may sign in
        "[\"'self'\",",
        "'https://id.example.com']",
    ]
    refused = run_manage("check", **BASE, SSO_ONLY="true")
    assert refused.returncode != 0 and "SSO_ONLY=true needs OIDC_ISSUER_URL" in refused.stderr
    closed = run_manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings as s; print(s.SIGNUP_OPEN)",
        **BASE,
        SIGNUP_OPEN="false",
    )
    assert closed.stdout.strip() == "False"
