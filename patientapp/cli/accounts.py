"""flask create-user: a staff account made at the terminal, under the same rules as the
Users page and the setup link (domain.accounts)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import with_appcontext
from flask_babel import force_locale

from patientapp.cli.common import audit, fail
from patientapp.db import storage
from patientapp.domain.accounts import (
    ROLES,
    AccountError,
    check_new_email,
    checked_account,
    insert_account,
)
from patientapp.web.context import get_db, now

# The terminal's own wording; a password problem is told in the rule's own words.
WORDING = {
    "email": "give an email address like name@example.org",
    "duplicate": "an account with the email {email} already exists",
}


def _at_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password() -> str:
    """Prompt twice, hidden, at a terminal; otherwise read one line (for scripts)."""
    if _at_terminal():
        return click.prompt("Password", hide_input=True, confirmation_prompt="Password again")
    return sys.stdin.readline().rstrip("\r\n")


@contextmanager
def _refused_as_error(email: str) -> Iterator[None]:
    """Turn an AccountError into "Error: ..." and exit 1."""
    with force_locale("en"):  # a terminal has no browser language to follow
        try:
            yield
        except AccountError as error:
            wording = WORDING.get(error.reason)
            fail(wording.format(email=email) if wording else str(error))


@click.command("create-user")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the account may do.")
@click.option("--name", default="", help="Name as colleagues see it (default: none).")
@with_appcontext
def create_user_command(email: str, role: str, name: str) -> None:
    """Create a staff account for EMAIL. The password is asked for twice at a terminal,
    or read as one line from standard input: echo 'pw' | flask --app app create-user ..."""
    email = email.strip()
    with _refused_as_error(email):
        check_new_email(get_db(), email)  # before the prompt: no one types a password for nothing
    password = _read_password()
    db = get_db()
    with _refused_as_error(email):
        account = checked_account(
            db, email=email, password=password, role=role, display_name=name[:80]
        )
        with storage.write(db):  # the account and its entry together
            insert_account(db, account, now())
            audit("user_created", detail=f"{email} as {role}")
    click.echo(f"Created {role} account {email}.")
