"""A save the database refuses for a moment (locked, full, read-only) keeps what was typed."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patientapp import create_app
from patientapp.db import storage
from tests.conftest import checked, csrf_from, make_invitation

KEPT = (
    "We could not save just now. Your answers on this screen are kept. "
    "Please try again in a moment."
)
TYPED = "my own words about the pills"
ROOT = Path(__file__).resolve().parents[2]


def post_step_one(patient, text=TYPED):
    return patient.post("/step/1", {"T2": text, "action": "next"}, follow=False)


def assert_kept(response, text=TYPED):
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert KEPT in html
    assert text in html  # the textarea still holds what the patient typed


def stored(db, visit_id):
    return storage.answers_for(db, visit_id)[0]


def test_a_held_lock_keeps_the_typed_step_then_saves_once_released(
    app, patient, invitation, db, caplog
):
    app.config["DATABASE_BUSY_TIMEOUT_MS"] = 50
    patient.start(invitation.token)
    db.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.ERROR):
            started = time.monotonic()
            response = post_step_one(patient)
            waited = time.monotonic() - started
    finally:
        db.conn.rollback()
    assert_kept(response)
    assert waited < 3, "the configured busy timeout, not the 10 s default, ends the wait"
    assert "database write failed on POST /step/<int:number>: locked" in caplog.text
    assert "T2" not in stored(db, invitation.visit_id)
    response = post_step_one(patient)
    assert response.status_code == 302
    assert stored(db, invitation.visit_id)["T2"] == TYPED


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("database or disk is full", "full"),
        ("attempt to write a readonly database", "read-only"),
        ("disk I/O error", "io"),
    ],
)
def test_a_full_or_read_only_disk_keeps_the_step_and_logs_only_the_cause(
    app, patient, invitation, db, monkeypatch, caplog, message, cause
):
    patient.start(invitation.token)
    post_step_one(patient, "saved before")
    patient.client.get("/step/1")

    def refuse(*_args, **_kwargs):
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(storage, "save_answers", refuse)
    with caplog.at_level(logging.INFO):
        response = post_step_one(patient)
    assert_kept(response)
    assert f"database write failed on POST /step/<int:number>: {cause}" in caplog.text
    assert TYPED not in caplog.text and invitation.token not in caplog.text
    assert stored(db, invitation.visit_id)["T2"] == "saved before"  # nothing stored is lost


def test_a_refused_start_keeps_the_welcome_screen(app, client, invitation, monkeypatch):
    client.get(f"/v/{invitation.token}")
    html = client.get("/welcome").get_data(as_text=True)
    monkeypatch.setattr(storage, "set_started", _full)
    response = client.post("/welcome", data={"csrf_token": csrf_from(html)})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert KEPT in response.get_data(as_text=True)
    assert "<form" in response.get_data(as_text=True)  # the start button is still there


def test_a_refused_send_keeps_the_review_and_its_ticks(app, patient, invitation, monkeypatch, db):
    patient.start(invitation.token)
    post_step_one(patient)
    html = patient.to_review().get_data(as_text=True)
    monkeypatch.setattr(storage, "set_submitted", _full)
    response = patient.client.post(
        "/review",
        data={"csrf_token": csrf_from(html), "in_person": "T2", "action": "submit"},
    )
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    page = response.get_data(as_text=True)
    assert KEPT in page
    assert checked(page, "in_person") == ["T2"]
    assert storage.get_visit(db, invitation.visit_id).status == "in_progress"


def test_staff_see_their_own_could_not_save_page(app, psychiatrist, monkeypatch, caplog):
    invitation = make_invitation(app)
    html = psychiatrist.get("/staff/").get_data(as_text=True)
    monkeypatch.setattr(storage, "set_cancelled", _full)
    with caplog.at_level(logging.ERROR):
        response = psychiatrist.post(
            f"/staff/visits/{invitation.visit_id}/cancel", data={"csrf_token": csrf_from(html)}
        )
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "could not save just now" in page and "Back to the board" in page
    assert "/staff/visits/<int:visit_id>/cancel: full" in caplog.text


def test_other_database_errors_stay_crashes(app, patient, invitation, monkeypatch):
    patient.start(invitation.token)

    def broken(*_args, **_kwargs):
        raise sqlite3.OperationalError("no such table: answers")

    monkeypatch.setattr(storage, "save_answers", broken)
    with pytest.raises(sqlite3.OperationalError):
        post_step_one(patient)


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_start_up_refuses_a_read_only_database(tmp_path, monkeypatch, read_only):
    database = tmp_path / "data" / "test.db"
    database.parent.mkdir()
    database.touch()
    refused = database if read_only == "file" else database.parent
    real_access = storage.os.access
    monkeypatch.setattr(
        storage.os, "access", lambda path, mode: path != refused and real_access(path, mode)
    )
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    with pytest.raises(storage.StorageError, match="read-only") as refusal:
        create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE": str(database)})
    assert str(refused) in str(refusal.value)


def _full(*_args, **_kwargs):
    raise sqlite3.OperationalError("database or disk is full")


def test_serve_exits_naming_a_read_only_folder(tmp_path):
    """`flask serve` on a folder it cannot write stops with one clear line, no traceback."""
    folder = tmp_path / "locked-away"
    folder.mkdir()
    # Tests run as root, where chmod stops no write: the check itself is told the folder is
    # read-only.
    code = (
        "import os, sys\n"
        "real = os.access\n"
        f"os.access = lambda path, mode: str(path) != {str(folder)!r} and real(path, mode)\n"
        "from flask.cli import main\n"
        "sys.argv = ['flask', '--app', 'app', 'serve']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "PATIENTAPP_INSTANCE": str(tmp_path / "instance"),
            "PATIENTAPP_DATABASE": str(folder / "patientapp.db"),
        },
    )
    assert result.returncode == 1
    assert f"The folder {folder} is read-only" in result.stderr
    assert "Traceback" not in result.stderr and "Serving on" not in result.stdout


def test_a_refused_save_with_a_language_switch_shows_the_kept_screen_in_it(
    patient, invitation, monkeypatch
):
    patient.start(invitation.token)
    monkeypatch.setattr(storage, "save_answers", _full)
    response = patient.post("/step/1", {"T2": TYPED, "lang": "es"}, follow=False)
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert '<html lang="es"' in html and "No pudimos guardar en este momento" in html
    assert TYPED in html


def test_writers_queue_on_a_file_lock_beside_the_database(tmp_path):
    """Every write transaction holds <database>.lock, so writers in other threads and
    server processes wait their turn in the kernel instead of SQLite's sleep-and-retry."""
    import fcntl

    path = tmp_path / "queue.db"
    storage.initialise(path)
    db = storage.connect(path)
    try:
        other = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with storage.write(db), pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once committed
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL stays
    finally:
        db.close()


def test_a_stuck_writer_holding_the_queue_gets_503_with_the_screen_kept_not_a_freeze(
    app, patient, invitation, db, caplog
):
    """Found by holding <database>.lock for 40 s: every save waited the whole 40 s. The
    queue gives up after the busy timeout, as a locked database does."""
    import fcntl

    app.config["DATABASE_BUSY_TIMEOUT_MS"] = 200
    patient.start(invitation.token)
    stuck = os.open(f"{app.config['DATABASE']}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        with caplog.at_level(logging.ERROR):
            started = time.monotonic()
            response = post_step_one(patient)
            waited = time.monotonic() - started
    finally:
        os.close(stuck)
    assert_kept(response)
    assert 0.15 < waited < 3, waited
    assert "database write failed on POST /step/<int:number>: locked" in caplog.text
    assert "T2" not in stored(db, invitation.visit_id)
    assert post_step_one(patient).status_code == 302
    assert stored(db, invitation.visit_id)["T2"] == TYPED


def test_threads_of_one_process_queued_behind_a_stuck_writer_each_give_up_in_time(tmp_path):
    import fcntl
    import threading

    path = tmp_path / "queue.db"
    storage.initialise(path)
    stuck = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(stuck, fcntl.LOCK_EX)
    outcomes = []

    def writer():
        db = storage.connect(path, busy_timeout_ms=300)
        started = time.monotonic()
        try:
            with storage.write(db):
                db.execute("INSERT INTO settings (key, value) VALUES ('x', '1')")
            outcomes.append(("saved", time.monotonic() - started))
        except sqlite3.OperationalError as error:
            outcomes.append((str(error), time.monotonic() - started))
        finally:
            db.close()

    try:
        threads = [threading.Thread(target=writer) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        os.close(stuck)
    assert [message for message, _ in outcomes] == ["database is locked"] * 6
    assert max(waited for _, waited in outcomes) < 2


def test_a_nested_write_joins_the_open_transaction_and_rolls_back_with_it(tmp_path):
    path = tmp_path / "nested.db"
    storage.initialise(path)
    db = storage.connect(path)
    try:

        def inner_saved_then_outer_fails():
            with storage.write(db):
                with storage.write(db):
                    db.execute("INSERT INTO settings (key, value) VALUES ('inner', '1')")
                raise RuntimeError("the outer action fails after the inner one")

        with pytest.raises(RuntimeError):
            inner_saved_then_outer_fails()
        assert storage.get_settings(db) == {}
        with storage.write(db), storage.write(db):
            db.execute("INSERT INTO settings (key, value) VALUES ('inner', '1')")
        assert storage.get_settings(db) == {"inner": 1}
    finally:
        db.close()
