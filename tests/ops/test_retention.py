"""Retention: purged answers leave no bytes behind, and the server purges by itself once
a day."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from pathlib import Path

import waitress

from patientapp.db import storage
from patientapp.domain import retention
from patientapp.web.context import get_db, now
from tests.conftest import FULL_ANSWERS, create_user, finish_visit, login

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


def refs_left(db) -> list[str]:
    return [row["patient_ref"] for row in db.query("SELECT patient_ref FROM visits ORDER BY id")]


def purge_entries(app) -> list[dict]:
    with app.app_context():
        return storage.audit_entries(get_db(), action="purge")


# --- no trace ----------------------------------------------------------------------------


def test_purged_answers_leave_no_bytes_in_the_database_or_its_wal(app, runner, clock):
    text = FULL_ANSWERS[1]["T2"] + " " + MARKER.decode()
    old_visit(app, clock, answers={**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": text}})
    assert MARKER in raw_bytes(app)  # the check below can see the marker when it is there
    result = runner.invoke(args=["purge"])
    assert "Removed 1 visit " in result.output
    assert MARKER not in raw_bytes(app)


def test_every_connection_deletes_securely(db):
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1


# --- the server runs retention itself ----------------------------------------------------


def test_serve_purges_old_visits_before_serving(app, runner, clock, db, monkeypatch):
    old_visit(app, clock)
    finish_visit(app, ref="NEW-1")
    started = []
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: started.append(refs_left(db)))
    result = runner.invoke(args=["serve"])
    assert result.exit_code == 0, result.output
    assert started == [["NEW-1"]]
    [entry] = purge_entries(app)
    assert entry["actor"] == "retention"
    assert entry["detail"].startswith("visits=1 answers=")
    assert entry["detail"].endswith("alerts=0 before=2025-11-25")


def test_retention_runs_again_only_after_a_day(app, clock, db):
    old_visit(app, clock, ref="OLD-1")
    assert retention.check(app, now)["visits"] == 1
    old_visit(app, clock, ref="OLD-2")
    clock.advance(hours=23, minutes=59)
    assert retention.check(app, now) is None
    assert refs_left(db) == ["OLD-2"]
    clock.advance(minutes=1)
    assert retention.check(app, now)["visits"] == 1
    assert refs_left(db) == []
    assert [e["actor"] for e in purge_entries(app)] == ["retention", "retention"]


def test_only_one_process_runs_retention_a_day(app, clock):
    old_visit(app, clock)
    path = app.config["DATABASE"]
    with closing(storage.connect(path)) as first, closing(storage.connect(path)) as second:
        assert retention.run_if_due(first, clock())["visits"] == 1
        assert retention.run_if_due(second, clock()) is None
    assert len(purge_entries(app)) == 1


def test_settings_page_shows_when_old_visits_were_last_removed(app, client, clock):
    old_visit(app, clock, ref="OLD-1")
    old_visit(app, clock, ref="OLD-2")
    create_user(app, "admin@example.org", "admin")
    login(client, "admin@example.org")
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert "Old visits last removed" not in page
    retention.check(app, now)
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert "Old visits last removed: 11/25/26, 9:00\u202fAM, 2 visits" in page


def test_one_removed_visit_is_counted_in_the_singular(app, client, clock):
    old_visit(app, clock, ref="OLD-1")
    create_user(app, "admin@example.org", "admin")
    login(client, "admin@example.org")
    retention.check(app, now)
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert "Old visits last removed: 11/25/26, 9:00\u202fAM, 1 visit<" in page


def test_settings_page_says_it_in_the_staff_language(app, client, clock):
    retention.check(app, now)
    create_user(app, "admin@example.org", "admin")
    login(client, "admin@example.org")
    page = client.get("/staff/admin/settings?lang=fr").get_data(as_text=True)
    assert (
        "Dernière suppression des anciennes consultations : 25/11/2026 09:00, 0 consultation"
        in page
    )
