"""Staff accounts without the web: the roles, the one email rule, the checks and the
insert every new account goes through (the setup link, the Users page and the
create-user command), and the one-time setup link for the first admin.

No request is needed: callers pass the database and the time.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l

from patientapp.db import storage
from patientapp.domain.passwords import hash_password, hash_secret, password_problem

ROLES = ("admin", "psychiatrist", "frontdesk")
ROLE_LABELS = {
    "admin": _l("Admin"),
    "psychiatrist": _l("Psychiatrist"),
    "frontdesk": _l("Front desk"),
}
MAX_EMAIL = 200
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BAD_EMAIL = _l("Please enter an email address like name@example.org.")
DUPLICATE_EMAIL = _l("There is already an account with this email address.")


def email_problem(email: str) -> str | None:
    """The one email rule, in the current language; None when the address will do."""
    if len(email) > MAX_EMAIL or not EMAIL_SHAPE.match(email):
        return str(BAD_EMAIL)
    return None


class AccountError(ValueError):
    """Why an account was not created: `reason` is "email", "duplicate" or "password",
    `field` the form field it belongs to, and the message is in the current language."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.field = "password" if reason == "password" else "email"


def check_new_email(db, email: str) -> None:
    """Raise AccountError unless `email` is well formed and no account has it yet."""
    problem = email_problem(email)
    if problem:
        raise AccountError("email", problem)
    if storage.user_by_email(db, email) is not None:
        raise AccountError("duplicate", str(DUPLICATE_EMAIL))


@dataclass(frozen=True)
class NewAccount:
    """An account that passed every rule, its password already hashed: ready to insert."""

    email: str
    display_name: str
    password_hash: str
    role: str


def checked_account(
    db, *, email: str, password: str, role: str, display_name: str = ""
) -> NewAccount:
    """Apply every rule and hash the password, writing nothing: the slow part (zxcvbn,
    argon2) runs before the write lock is taken, so no patient's save waits for it.
    Raises AccountError when the email or the password is refused."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    email = email.strip()
    check_new_email(db, email)
    problem = password_problem(password, [email, display_name, _clinic_name(db)])
    if problem:
        raise AccountError("password", problem)
    return NewAccount(email, display_name.strip(), hash_password(password), role)


def _clinic_name(db) -> str:
    """The clinic's name as typed under Settings (empty when none is set), which no
    password may be built from."""
    return storage.get_settings(db).get("clinic_name") or ""


def insert_account(db, account: NewAccount, now: datetime) -> int:
    """Insert a checked account (inside the caller's write, beside its audit entry) and
    return its id; AccountError if the address was added a moment ago."""
    try:
        return storage.create_user(
            db,
            email=account.email,
            display_name=account.display_name,
            password_hash=account.password_hash,
            role=account.role,
            now=now,
        )
    except storage.INTEGRITY_ERRORS as exc:
        raise AccountError("duplicate", str(DUPLICATE_EMAIL)) from exc


def create_account(
    db, *, email: str, password: str, role: str, display_name: str = "", now: datetime
) -> int:
    """Create a staff account and return its id: the setup link, the Users page and the
    create-user command all apply these rules, so every account meets them. Raises
    AccountError, writing nothing, when the email or the password is refused."""
    account = checked_account(
        db, email=email, password=password, role=role, display_name=display_name
    )
    return insert_account(db, account, now)


# --- first admin -------------------------------------------------------------------------

SETUP_SETTING = "setup_token_hash"


def issue_setup_token(db) -> str | None:
    """A one-time link to create the first admin, while no account exists."""
    if storage.count_users(db):
        return None
    token = secrets.token_urlsafe(32)
    storage.save_settings(db, {SETUP_SETTING: hash_secret(token)})
    return token
