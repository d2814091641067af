"""`python -m secrets_app.client login | logout | whoami`: the login file of the client."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from secrets_app.client.console import ConsoleClient
from secrets_app.client.context import client_from_configuration, login_file
from secrets_app.client.errors import ClientError


def _write_login_file(url: str, session: str) -> Path:
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"url": url, "session": session}, file)
    path.chmod(0o600)
    return path


def main(argv: list[str] | None = None, *, read_password: Callable[[str], str] = getpass.getpass) -> int:
    parser = argparse.ArgumentParser(prog="python -m secrets_app.client", description="Secrets Console client")
    commands = parser.add_subparsers(dest="command", required=True)
    login_command = commands.add_parser("login", help="sign in and save the session to the login file")
    login_command.add_argument("--url", default=os.environ.get("CONSOLE_URL", "http://127.0.0.1:8000"))
    login_command.add_argument("--username", default=os.environ.get("USER", ""))
    login_command.add_argument(
        "--code", help="a TOTP or recovery code, for an account with two-factor authentication (asked for if needed)"
    )
    commands.add_parser("logout", help="end the saved session and delete the login file")
    commands.add_parser("whoami", help="show who the configured session belongs to")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "login":
            client = ConsoleClient(arguments.url)
            password = read_password(f"Password for {arguments.username}: ")
            try:
                user = client.login(arguments.username, password, arguments.code)
            except ClientError as error:
                if error.code != "mfa_required" or arguments.code:
                    raise
                user = client.login(arguments.username, password, read_password("Two-factor code: "))
            path = _write_login_file(client.url, client.session)
            print(f"Signed in as {user['username']}; session saved to {path} (mode 0600).")
        elif arguments.command == "logout":
            client_from_configuration().logout()
            login_file().unlink(missing_ok=True)
            print("Signed out.")
        else:
            user = client_from_configuration().whoami()
            print(f"Signed in as {user['username']}." if user else "The session has ended; log in again.")
    except ClientError as error:
        print(f"error: {error} ({error.code})", file=sys.stderr)
        return 1
    return 0
