"""The FHIR API's bearer tokens: made here, shown once, stored only as a SHA-256 hash.

The Integrations page creates them (``admin``); the API checks them (``api``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from patientapp.db import storage

TOKEN_PREFIX = "pa_"  # noqa: S105 - a marker that lets secret scanners spot a leaked token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db, name: str, created_by: int | None, moment: datetime) -> tuple[int, str]:
    """A new integration token: its id and the secret, which is shown once and never
    stored (only its hash is)."""
    token = new_token()
    token_id = storage.create_api_token(
        db, name=name, token_hash=hash_token(token), created_by=created_by, now=moment
    )
    return token_id, token
