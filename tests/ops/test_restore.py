"""`flask restore-backup`: a copy made by `backup` put back in place of the live
database, the server stopped. Copying a backup over the file by hand left the old -wal
beside it, which SQLite replays into the restored file at the next open: a database
that was neither the copy nor the old one, with integrity_check still ok."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patientapp.db import storage
from tests.conftest import finish_visit, make_invitation

STALE = "written-after-the-backup"
# The tests mark rows with actions of their own (STALE above), which the app never writes.
pytestmark = pytest.mark.filterwarnings(
    "ignore::patientapp.domain.audit_actions.UnknownAuditAction"
)


def connect(app):
    return storage.connect(app.config["DATABASE"], key=app.config["DATABASE_KEY"])


def counts(app) -> dict:
    db = connect(app)
    try:
        return {
            "visits": db.execute("SELECT COUNT(*) FROM visits").fetchone()[0],
            "stale": db.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action = ?", (STALE,)
            ).fetchone()[0],
            "restored": db.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'backup_restored'"
            ).fetchone()[0],
        }
    finally:
        db.close()


def leave_a_wal(app, moment) -> None:
    """What a server stopped by SIGTERM leaves: a -wal holding its last writes, beside
    the database file (made here by keeping a copy of it while it is still there)."""
    live = Path(app.config["DATABASE"])
    db = connect(app)
    db.execute("PRAGMA wal_autocheckpoint=0")
    with storage.write(db):
        storage.audit(db, STALE, now=moment, actor="server")
    kept = live.with_name("kept-wal")
    shutil.copyfile(f"{live}-wal", kept)
    db.close()  # the last connection: SQLite checkpoints and removes its -wal
    shutil.copyfile(kept, f"{live}-wal")


@pytest.mark.parametrize("db_key", [None, "restore 'key' staple"])
def test_a_backup_is_put_back_whole_and_what_it_replaced_is_kept(app, runner, clock, tmp_path):
    finish_visit(app)
    copy = tmp_path / "copy.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    make_invitation(app, "AFTER-1")
    leave_a_wal(app, clock.moment)
    assert counts(app) == {"visits": 2, "stale": 1, "restored": 0}
    leave_a_wal(app, clock.moment)  # one more, left beside the file as the server left it

    result = runner.invoke(args=["restore-backup", str(copy)])
    assert result.exit_code == 0, result.output
    assert f"Restored {copy}" in result.output and "Visits: 1; " in result.output
    # The copy, and only the copy: nothing replayed from the -wal left beside the file.
    assert counts(app) == {"visits": 1, "stale": 0, "restored": 1}
    live = Path(app.config["DATABASE"])
    [kept] = live.parent.glob(f"{live.name}.before-restore-*[0-9]")
    assert not Path(f"{live}-wal").exists()
    assert f"kept as {kept}" in result.output.replace("\n", " ")
    # Nothing lost: the database it replaced, with what its -wal held, is kept whole.
    old = storage.connect(kept, key=app.config["DATABASE_KEY"])
    try:
        assert old.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 2
        assert old.execute("SELECT COUNT(*) FROM audit_log WHERE action = ?", (STALE,)).fetchone()[
            0
        ]
    finally:
        old.close()
    assert oct(live.stat().st_mode & 0o777) == "0o600"
    assert not list(live.parent.glob(f".{live.name}.restoring*"))


def test_a_damaged_copy_changes_nothing(app, runner, tmp_path):
    finish_visit(app)
    copy = tmp_path / "copy.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    copy.write_bytes(copy.read_bytes()[:4096])
    before = counts(app)
    result = runner.invoke(args=["restore-backup", str(copy)])
    assert result.exit_code == 1
    assert "did not restore" in result.output and "nothing was changed" in result.output
    assert counts(app) == before
    live = Path(app.config["DATABASE"])
    assert not list(live.parent.glob(f"{live.name}.before-restore-*"))


def test_a_restore_is_refused_while_a_server_has_the_database_open(app, runner, tmp_path):
    finish_visit(app)
    copy = tmp_path / "copy.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    make_invitation(app, "AFTER-1")
    lock = f"{Path(app.config['DATABASE']).resolve()}.in-use"
    server = subprocess.Popen(  # another process holding the database, as `serve` does
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); time.sleep(60)",
            lock,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "held", server.stdout.read()
        result = runner.invoke(args=["restore-backup", str(copy)])
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    assert result.exit_code == 1
    assert "running server" in result.output
    assert counts(app)["visits"] == 2  # untouched


def test_two_restores_in_one_second_keep_both_databases_they_replaced(app, runner, tmp_path):
    finish_visit(app)
    copy = tmp_path / "copy.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    make_invitation(app, "AFTER-1")
    for _ in range(2):  # the test clock stands still: the same second
        result = runner.invoke(args=["restore-backup", str(copy)])
        assert result.exit_code == 0, result.output
    live = Path(app.config["DATABASE"])
    kept = sorted(live.parent.glob(f"{live.name}.before-restore-*"))
    assert [p.name[-2:] for p in kept] == ["00", "-2"]
    first = storage.connect(kept[0], key=app.config["DATABASE_KEY"])
    try:
        assert first.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 2  # not lost
    finally:
        first.close()


def test_the_copy_is_never_readable_by_others_while_it_is_put_in_place(
    app, runner, clock, tmp_path, monkeypatch
):
    """The copy beside the live file, and a -wal that came with the backup, are created
    readable by their owner only, before a byte is written: a database kept outside the
    instance folder (mode 0700) may sit in a folder others can list. Here the umask
    would give them 0666."""
    finish_visit(app)
    copy = tmp_path / "copy.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    # A -wal left with the copy, holding a row the copy's file does not.
    shutil.copyfile(copy, tmp_path / "file-before")
    db = storage.connect(copy, key=app.config["DATABASE_KEY"])
    db.execute("PRAGMA wal_autocheckpoint=0")
    with storage.write(db):
        storage.audit(db, "written-in-the-copy", now=clock.moment, actor="server")
    shutil.copyfile(f"{copy}-wal", tmp_path / "kept-wal")
    db.close()  # checkpoints the row into the file: put the file back as it was
    shutil.copyfile(tmp_path / "file-before", copy)
    shutil.copyfile(tmp_path / "kept-wal", f"{copy}-wal")

    modes = {}
    opened = storage.connect

    def watching(path, *args, **kwargs):
        if str(path).endswith(".restoring"):
            for suffix in ("", "-wal"):
                modes[suffix] = oct(Path(f"{path}{suffix}").stat().st_mode & 0o777)
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(storage, "connect", watching)
    old_umask = os.umask(0)
    try:
        result = runner.invoke(args=["restore-backup", str(copy)])
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert modes == {"": "0o600", "-wal": "0o600"}
    monkeypatch.undo()
    restored = connect(app)
    try:  # what the -wal held came along
        assert (
            restored.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'written-in-the-copy'"
            ).fetchone()[0]
            == 1
        )
    finally:
        restored.close()
    assert oct(Path(app.config["DATABASE"]).stat().st_mode & 0o777) == "0o600"
