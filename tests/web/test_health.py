"""GET /healthz: a monitor learns whether the database can be read and written, and
nothing about patients."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patientapp import create_app
from patientapp.db import storage
from patientapp.web.context import close_thread_db
from tests.conftest import make_invitation
from tests.helpers.disks import mounted

ROOT = Path(__file__).resolve().parents[2]


def beats(db) -> int:
    return db.execute("SELECT beats FROM health_probe").fetchone()[0]


def test_ok_reads_and_writes_and_says_nothing_about_patients(app, client, db):
    make_invitation(app, patient_ref="CHART-4711")
    audited = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    before = beats(db)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"status": "ok", "version": "0.1.0", "database": "plain"}
    assert beats(db) == before + 1  # the write reached the file
    body = response.get_data(as_text=True)
    assert "CHART-4711" not in body and "visit" not in body  # the answer above is all
    assert db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == audited
    assert "Set-Cookie" not in response.headers  # no session, nobody's activity
    head = client.head("/healthz")
    assert head.status_code == 200 and head.get_data() == b""
    assert client.post("/healthz").status_code == 405


def test_a_database_locked_by_another_writer_answers_503_quickly(app, client, db):
    db.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = client.get("/healthz")
        waited = time.monotonic() - started
    finally:
        db.conn.rollback()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["status"] == "unavailable"
    assert response.get_json()["reason"] == "locked"
    assert response.headers["Cache-Control"] == "no-store"
    assert waited < 2, "the health timeout, not the 10 s a save waits, ends the wait"
    assert client.get("/healthz").status_code == 200  # free again; the timeout is put back
    kept = storage.connect(app.config["DATABASE"])  # a fresh one has the default
    try:
        assert kept.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    finally:
        kept.close()


def test_a_stuck_writer_in_the_queue_answers_503_quickly(app, client):
    import fcntl

    stuck = os.open(f"{app.config['DATABASE']}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        started = time.monotonic()
        response = client.get("/healthz")
        waited = time.monotonic() - started
    finally:
        os.close(stuck)
    assert response.status_code == 503 and response.get_json()["reason"] == "locked"
    assert waited < 2


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("database or disk is full", "full"),
        ("attempt to write a readonly database", "read-only"),
        ("disk I/O error", "io"),
        ("file is not a database", "unreadable"),
        ("no such table: health_probe", "error"),
    ],
)
def test_each_failure_is_a_503_with_its_reason_never_a_500(
    app, client, monkeypatch, message, reason
):
    def refuse(*_args, **_kwargs):
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(storage, "probe", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == reason
    assert message not in response.get_data(as_text=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB file system of its own (tmpfs), which a test may fill; skipped where this
    user may not mount one."""
    with mounted(tmp_path / "small-disk", "size=1m,mode=0700") as mount_point:
        yield mount_point


def test_a_full_disk_answers_503_full_then_ok_once_room_is_made(
    tmp_path, small_disk, clock, compiled_translations, monkeypatch
):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "DATABASE": str(small_disk / "patientapp.db"),
            "CLOCK": clock,
            "COMPILED_TRANSLATIONS": str(compiled_translations),
            "HOLD_DATABASE_IN_USE": False,
        }
    )
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 200  # the WAL and its index exist
        filler = small_disk / "filler"
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
            while True:  # until the file system says no space is left
                fh.write(b"\0" * 4096)
        answers = [client.get("/healthz") for _ in range(3)]
        assert [a.status_code for a in answers] == [503] * 3
        assert {a.get_json()["reason"] for a in answers} == {"full"}
        filler.unlink()
        assert client.get("/healthz").status_code == 200
    finally:
        close_thread_db()


def test_a_deleted_database_answers_missing(app, client, tmp_path):
    assert client.get("/healthz").status_code == 200
    os.replace(app.config["DATABASE"], tmp_path / "moved.db")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["reason"] == "missing"


CHMOD_SCRIPT = """
import json, os, sys
from patientapp import create_app
from patientapp.db import storage
folder, only_sqlite = sys.argv[1], sys.argv[2] == "sqlite"
app = create_app({"TESTING": True, "SECRET_KEY": "x", "HOLD_DATABASE_IN_USE": False,
                  "DATABASE": os.path.join(folder, "test.db")})
os.chmod(os.path.join(folder, "test.db"), 0o444)
if only_sqlite:  # the file's mode unchecked: only the probe's own write can tell
    storage.check_writable = lambda path: None
response = app.test_client().get("/healthz")
print(json.dumps([response.status_code, response.get_json()]))
"""
# Root writes whatever a file's mode says: the server runs without the capabilities that
# allow it (as the systemd unit's own user would be refused).
AS_A_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("check", ["file-mode", "sqlite"])
def test_a_read_only_database_file_answers_503_read_only(tmp_path, check):
    """chmod 0444 on the file: the next connection SQLite opens is read-only."""
    if os.getuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root ignores a file's mode; setpriv (util-linux) drops that")
    folder = tmp_path / "data"
    folder.mkdir()
    prefix = AS_A_USER if os.getuid() == 0 else []
    result = subprocess.run(
        [*prefix, sys.executable, "-c", CHMOD_SCRIPT, str(folder), check],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATIENTAPP_INSTANCE": str(folder / "instance")},
    )
    assert result.returncode == 0, result.stderr
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 503
    assert body["status"] == "unavailable" and body["reason"] == "read-only"
