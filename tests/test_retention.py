"""Retention: purged answers leave no bytes behind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from conftest import FULL_ANSWERS, finish_visit

MARKER = b"MARKER-7f3a-unique"


def raw_bytes(app) -> bytes:
    """The database file and its -wal file, as a disk reader would find them."""
    path = Path(app.config["DATABASE"])
    wal = Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def old_visit(app, clock, ref="OLD-1", answers=None):
    """A submitted visit whose appointment was 400 days ago (past the default 365)."""
    today = clock.moment
    clock.moment = today - timedelta(days=400)
    finish_visit(app, ref=ref, answers=answers)
    clock.moment = today


# --- no trace ----------------------------------------------------------------------------


def test_purged_answers_leave_no_bytes_in_the_database_or_its_wal(app, runner, clock):
    text = FULL_ANSWERS[1]["T2"] + " " + MARKER.decode()
    old_visit(app, clock, answers={**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": text}})
    assert MARKER in raw_bytes(app)  # the check below can see the marker when it is there
    result = runner.invoke(args=["purge"])
    assert "Removed 1 visits" in result.output
    assert MARKER not in raw_bytes(app)


def test_every_connection_deletes_securely(db):
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
