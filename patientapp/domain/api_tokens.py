"""The FHIR API's bearer tokens: made here, shown once, stored only as a SHA-256 hash.

The Integrations page creates them (``admin``), with an optional expiry day and the
in-progress scope, and rotates them (a new secret, the old one stops); the API checks them
(``api``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, time, timedelta

from patientapp.db import storage

TOKEN_PREFIX = "pa_"  # noqa: S105 - a marker that lets secret scanners spot a leaked token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def end_of(day: date) -> datetime:
    """When a token that expires on `day` stops: the start of the next day, clinic time."""
    return datetime.combine(day + timedelta(days=1), time.min)


def create_token(
    db,
    name: str,
    created_by: int | None,
    moment: datetime,
    *,
    expires_at: datetime | None = None,
    in_progress: bool = False,
) -> tuple[int, str]:
    """A new integration token: its id and the secret, which is shown once and never
    stored (only its hash is). ``in_progress``: the scope that also reads visits not yet
    sent, status and progress only (off unless an admin ticks it)."""
    token = new_token()
    token_id = storage.create_api_token(
        db,
        name=name,
        token_hash=hash_token(token),
        created_by=created_by,
        now=moment,
        expires_at=expires_at,
        in_progress=in_progress,
    )
    return token_id, token


def rotate_token(db, token_id: int, moment: datetime) -> str | None:
    """A new secret for a live token (same name, scope and expiry); the old secret stops
    working at once. None when the token is revoked."""
    token = new_token()
    return token if storage.rotate_api_token(db, token_id, hash_token(token), moment) else None
