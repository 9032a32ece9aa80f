"""Time: stored as UTC with its offset, read and shown in the clinic's time zone, and
today's naive local times migrated (m050_utc_times)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from patientapp.db import storage
from patientapp.web.context import get_db
from tests.conftest import create_user, finish_visit, login, make_invitation


def raw(path, sql):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def set_zone(app, name):
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": name})


def test_every_stored_time_is_utc_with_its_offset(app):
    finish_visit(app)
    path = app.config["DATABASE"]
    checked = 0
    with storage.connect(path) as db:
        tables = {t: [c.name for c in db[t].columns] for t in db.table_names()}
    for table, columns in tables.items():
        for column in columns:
            if column == "at" or column.endswith("_at"):
                for (value,) in raw(path, f"SELECT {column} FROM {table} WHERE {column} != ''"):
                    if value is not None:
                        assert value.endswith("+00:00"), (table, column, value)
                        checked += 1
    assert checked > 10


def test_a_clinic_zone_stores_utc_and_reads_back_local(app):
    set_zone(app, "America/Chicago")
    visit_id = make_invitation(app).visit_id  # 14:00 on 25 November, Chicago (UTC-6)
    [(stored,)] = raw(
        app.config["DATABASE"], f"SELECT appointment_at FROM visits WHERE id = {visit_id}"
    )
    assert stored == "2026-11-25T20:00:00+00:00"
    with app.app_context():
        assert storage.get_visit(get_db(), visit_id).appointment_at == datetime(2026, 11, 25, 14)


def test_an_evening_visit_stays_on_its_local_day_on_the_board(app):
    """20:00 in Chicago is 02:00 UTC the next day: the board must still list it today."""
    set_zone(app, "America/Chicago")
    evening = make_invitation(app, patient_ref="EVE-1", when=datetime(2026, 11, 25, 20, 0)).visit_id
    with app.app_context():
        today = storage.visits_for_day(get_db(), "2026-11-25")
        tomorrow = storage.visits_for_day(get_db(), "2026-11-26")
    assert [line.visit.id for line in today] == [evening] and tomorrow == []
    create_user(app, "desk@example.org", "frontdesk")
    client = app.test_client()
    login(client, "desk@example.org")
    page = client.get("/staff/?day=2026-11-25").get_data(as_text=True)
    assert "EVE-1" in page and "8:00" in page


def test_the_repeated_autumn_hour_is_stored_apart(app):
    """01:30 happens twice in Chicago on 1 November 2026: fold tells the two apart."""
    set_zone(app, "America/Chicago")
    with app.app_context():
        db = get_db()
        first = storage._ts(datetime(2026, 11, 1, 1, 30, fold=0))
        second = storage._ts(datetime(2026, 11, 1, 1, 30, fold=1))
        assert db is not None
    assert (first, second) == ("2026-11-01T06:30:00+00:00", "2026-11-01T07:30:00+00:00")


def test_a_bad_stored_zone_falls_back_to_the_server_zone(app):
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": "Nowhere/Land"})
    with app.app_context():
        get_db()
        assert storage.current_zone() is None


# --- the migration --------------------------------------------------------------------------


def legacy_database(path, zone_name=None):
    """A database as it was before m050: naive local times everywhere."""
    db = storage.connect(path)
    storage.migrations.apply(db, stop_before="m050_utc_times")
    db.execute(
        "INSERT INTO users (email, password_hash, role, created_at) VALUES "
        "('a@example.org', 'x', 'admin', '2026-07-01 08:00:00')"
    )
    db.execute(
        """INSERT INTO visits (patient_ref, appointment_at, token_hash, code_hash, expires_at,
               status, created_at, started_at, submitted_at)
           VALUES ('A-1', '2026-07-01 14:00:00', 't', 'c', '2026-07-01 23:59:59', 'submitted',
               '2026-07-01 09:00:00', '2026-07-01 13:40:00', '2026-07-01 13:50:00')"""
    )
    db.execute(
        "INSERT INTO audit_log (at, action) VALUES ('2026-07-01 13:55:00', 'summary_viewed')"
    )
    db.execute(
        "INSERT INTO safety_answers (visit_id, value, saved_at) VALUES (1, 'several_days', "
        "'2026-07-01 13:45:00')"
    )
    db.execute(
        "INSERT INTO settings (key, value) VALUES ('retention_last_run', "
        '\'{"at": "2026-07-01 03:00:00", "visits": 0}\')'
    )
    if zone_name:
        db.execute("INSERT INTO settings (key, value) VALUES ('time_zone', ?)", (f'"{zone_name}"',))
    return db


def test_m050_converts_naive_local_times_in_the_clinic_zone(tmp_path):
    path = tmp_path / "old.db"
    db = legacy_database(path, "Europe/Paris")  # UTC+2 in July
    try:
        storage.migrations.apply(db)
    finally:
        db.close()
    assert raw(path, "SELECT appointment_at, expires_at, created_at, submitted_at FROM visits") == [
        (
            "2026-07-01T12:00:00+00:00",
            "2026-07-01T21:59:59+00:00",
            "2026-07-01T07:00:00+00:00",
            "2026-07-01T11:50:00+00:00",
        )
    ]
    assert raw(path, "SELECT at FROM audit_log") == [("2026-07-01T11:55:00+00:00",)]
    assert raw(path, "SELECT saved_at FROM safety_answers") == [("2026-07-01T11:45:00+00:00",)]
    assert raw(path, "SELECT created_at FROM users") == [("2026-07-01T06:00:00+00:00",)]
    [(last,)] = raw(path, "SELECT value FROM settings WHERE key = 'retention_last_run'")
    assert "2026-07-01T01:00:00+00:00" in last
    # The audit log is append-only again afterwards.
    with pytest.raises(sqlite3.IntegrityError):
        raw(path, "UPDATE audit_log SET action = 'x'")


def test_m050_without_a_zone_reads_the_servers_local_time(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        path = tmp_path / "old.db"
        db = legacy_database(path)
        try:
            storage.migrations.apply(db)
        finally:
            db.close()
    finally:
        monkeypatch.undo()
        time.tzset()
    [(appointment,)] = raw(path, "SELECT appointment_at FROM visits")
    assert appointment == "2026-07-01T05:00:00+00:00"  # 14:00 in Tokyo (UTC+9)
