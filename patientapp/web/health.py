"""GET /healthz: whether this server can read and write its database, for monitors.

No sign-in, no session, no audit entry (monitors poll it every few seconds), and nothing
about patients: the answer is the status, the app's version and the database mode. A
database that cannot be used answers 503 with the reason, within HEALTH_TIMEOUT_MS
rather than the 10 s a save may wait, and never a 500.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, jsonify

from patientapp import config
from patientapp.db import storage
from patientapp.web.context import get_db

bp = Blueprint("health", __name__)

# A file that is not a database, a wrong key, a damaged page: reads fail for good.
UNREADABLE = ("not a database", "malformed", "encrypted")


def reason_for(error: Exception) -> str:
    """locked, full, read-only, io, unreadable or error (missing is found before): never
    SQLite's own words."""
    if isinstance(error, storage.StorageError):
        return "read-only" if "read-only" in str(error) else "unreadable"
    if isinstance(error, OSError):
        return "io"
    text = str(error).lower()
    if any(words in text for words in UNREADABLE):
        return "unreadable"
    return storage.write_failure(error) or "error"


@bp.get("/healthz")
def healthz():
    settings = current_app.config
    path = Path(settings["DATABASE"])
    body = {
        "version": config.VERSION,
        "database": "encrypted" if settings.get("DATABASE_KEY") else "plain",
    }
    reason = None
    try:
        if not path.exists():  # deleted under a running server: nothing would be kept
            reason = "missing"
        else:
            storage.check_writable(path)  # what the next process to open it would find
            storage.probe(get_db(), settings["HEALTH_TIMEOUT_MS"])
    except (*storage.DATABASE_ERRORS, storage.StorageError, OSError) as error:
        reason = reason_for(error)
    if reason:
        current_app.logger.warning("health check failed: %s", reason)
        response = jsonify({"status": "unavailable", "reason": reason, **body})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    else:
        response = jsonify({"status": "ok", **body})
    response.headers["Cache-Control"] = "no-store"
    return response
