"""Encryption at rest: with a key the database, its WAL and its backups are SQLCipher files
that plain sqlite3 cannot read; encrypt-db and rekey-db convert and rotate."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from patientapp import config, create_app
from patientapp.db import storage
from patientapp.web.context import close_thread_db
from tests.conftest import FULL_ANSWERS, finish_visit

sqlcipher3 = pytest.importorskip("sqlcipher3")  # wheels for Linux x86_64 only

ROOT = Path(__file__).resolve().parents[2]
KEY = "correct horse 'battery' staple"  # a quote, so the PRAGMA quoting is exercised
MARKER = "MARKER-c1ph3r-unique"
PASSWORD = "violet kettle harbour umbrella"


@pytest.fixture
def db_key():
    return KEY


def with_marker():
    return {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": f"{FULL_ANSWERS[1]['T2']} {MARKER}"}}


def raw_bytes(path) -> bytes:
    """The database file and its -wal file, as a disk reader would find them."""
    wal = Path(f"{path}-wal")
    return Path(path).read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def plain_refuses(path) -> None:
    with closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.DatabaseError) as error:
        conn.execute("select * from sqlite_master")
    assert "file is not a database" in str(error.value)


def answer_texts(path, key) -> list[str]:
    db = storage.connect(path, key=key)
    try:
        return [row[0] for row in db.execute("SELECT value FROM answers").fetchall()]
    finally:
        db.close()


def reopen(app, **changes):
    """A new app on the same database, as a restart with other settings would make."""
    close_thread_db()
    names = ("TESTING", "SECRET_KEY", "DATABASE", "CLOCK", "HOLD_DATABASE_IN_USE")
    settings = {key: app.config[key] for key in names}
    return create_app(
        {**settings, "COMPILED_TRANSLATIONS": app.config["COMPILED_TRANSLATIONS"]} | changes
    )


# --- the encrypted file ------------------------------------------------------------------


def test_plain_sqlite3_cannot_open_an_encrypted_database(app):
    plain_refuses(app.config["DATABASE"])


def test_an_answer_is_in_neither_the_file_nor_its_wal(app):
    finish_visit(app, answers=with_marker())
    assert any(MARKER in text for text in answer_texts(app.config["DATABASE"], KEY))
    assert Path(app.config["DATABASE"] + "-wal").stat().st_size > 0  # the WAL is checked too
    assert MARKER.encode() not in raw_bytes(app.config["DATABASE"])


def test_every_connection_keeps_its_pragmas_when_encrypted(db):
    assert db.execute("PRAGMA cipher_version").fetchone()[0].startswith("4.")
    # What README and SECURITY.md say: SQLCipher 4's defaults, not weakened.
    assert db.execute("PRAGMA cipher").fetchone()[0] == "AES-256-CBC"
    assert db.execute("PRAGMA kdf_iter").fetchone()[0] == "256000"
    assert db.execute("PRAGMA cipher_hmac_algorithm").fetchone()[0] == "HMAC_SHA512"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == storage.BUSY_TIMEOUT_MS
    assert "_sqlite_migrations" in db.table_names()  # the migrations ran


def test_a_patient_visit_and_its_summary_work_on_an_encrypted_database(app, psychiatrist):
    invitation = finish_visit(app, ref="ENC-1")
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    assert "ENC-1" in html
    assert "Whether I can lower the dose before summer." in html


def test_a_duplicate_account_is_refused_cleanly_on_an_encrypted_database(app, monkeypatch):
    from patientapp.domain import accounts
    from patientapp.web.context import get_db, now

    # The check before the insert is skipped, as when two requests race: SQLCipher's own
    # IntegrityError must still become the clean refusal.
    monkeypatch.setattr(accounts, "check_new_email", lambda _db, _email: None)
    with app.test_request_context():
        new = {"email": "a@example.org", "role": "admin", "password": PASSWORD}
        accounts.create_account(get_db(), **new, now=now())
        with pytest.raises(accounts.AccountError) as refusal:
            accounts.create_account(get_db(), **new, now=now())

    assert refusal.value.reason == "duplicate"


def test_a_held_lock_on_an_encrypted_database_keeps_the_typed_step(app, patient, invitation, db):
    app.config["DATABASE_BUSY_TIMEOUT_MS"] = 50
    patient.start(invitation.token)
    db.execute("BEGIN IMMEDIATE")
    try:
        response = patient.post("/step/1", {"T2": "typed", "action": "next"}, follow=False)
    finally:
        db.conn.rollback()
    assert response.status_code == 503  # SQLCipher's OperationalError, handled like sqlite3's
    assert "typed" in response.get_data(as_text=True)


def test_purge_checkpoints_an_encrypted_database(app, runner, clock):
    from datetime import timedelta

    today = clock.moment
    clock.moment = today - timedelta(days=400)
    finish_visit(app, ref="OLD-1")
    clock.moment = today
    result = runner.invoke(args=["purge"])
    assert "Removed 1 visit " in result.output
    assert Path(app.config["DATABASE"] + "-wal").stat().st_size == 0
    assert answer_texts(app.config["DATABASE"], KEY) == []


def test_a_backup_stays_encrypted(app, runner, tmp_path):
    finish_visit(app, answers=with_marker())
    target = tmp_path / "copy.db"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    plain_refuses(target)
    assert MARKER.encode() not in target.read_bytes()
    assert any(MARKER in text for text in answer_texts(target, KEY))


# --- start-up refusals -------------------------------------------------------------------


def test_a_wrong_key_is_refused_with_a_clear_message(app):
    with pytest.raises(storage.StorageError, match="cannot be opened with the configured key"):
        reopen(app, DATABASE_KEY="not the key")


def test_no_key_on_an_encrypted_database_says_which_setting_to_set(app):
    with pytest.raises(storage.StorageError, match=r"is encrypted .* set PATIENTAPP_DB_KEY"):
        reopen(app, DATABASE_KEY=None)


def test_the_server_refuses_a_wrong_key_without_a_traceback(app, tmp_path):
    env = {
        **os.environ,
        "PATIENTAPP_INSTANCE": str(tmp_path / "instance"),
        "PATIENTAPP_DATABASE": app.config["DATABASE"],
        "PATIENTAPP_DB_KEY": "not the key",
    }
    run = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "backup", str(tmp_path / "b.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    assert "patientapp cannot start: The database" in run.stderr
    assert "cannot be opened with the configured key" in run.stderr
    assert "Traceback" not in run.stderr and "ERROR CORE" not in run.stderr


def test_the_key_comes_from_a_file_outside_the_instance_folder(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    outside = tmp_path / "db_key"
    outside.write_text("from a file\n")
    assert config.database_key(instance, {"PATIENTAPP_DB_KEY_FILE": str(outside)}) == "from a file"
    assert config.database_key(instance, {"PATIENTAPP_DB_KEY": "from env"}) == "from env"
    assert config.database_key(instance, {}) is None
    inside = instance / "db_key"
    inside.write_text("kept with the data\n")
    with pytest.raises(storage.StorageError, match="inside the instance folder"):
        config.database_key(instance, {"PATIENTAPP_DB_KEY_FILE": str(inside)})
    with pytest.raises(storage.StorageError, match="not both"):
        config.database_key(instance, {"PATIENTAPP_DB_KEY": "a", "PATIENTAPP_DB_KEY_FILE": "b"})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(storage.StorageError, match="is empty"):
        config.database_key(instance, {"PATIENTAPP_DB_KEY_FILE": str(tmp_path / "empty")})
    with pytest.raises(storage.StorageError, match="cannot be read"):
        config.database_key(instance, {"PATIENTAPP_DB_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(storage.StorageError, match="NUL"):
        config.database_key(instance, {"PATIENTAPP_DB_KEY": "a\x00b"})


def test_start_up_reads_the_key_file(app, tmp_path, monkeypatch):
    (tmp_path / "db_key").write_text(KEY + "\n")
    monkeypatch.setenv("PATIENTAPP_DB_KEY_FILE", str(tmp_path / "db_key"))
    close_thread_db()
    settings = {k: app.config[k] for k in ("TESTING", "SECRET_KEY", "DATABASE", "CLOCK")}
    assert create_app(settings).config["DATABASE_KEY"] == KEY


# --- rekey-db ----------------------------------------------------------------------------


def test_rekey_db_rotates_the_key(app, runner, tmp_path):
    finish_visit(app, answers=with_marker())
    (tmp_path / "new_key").write_text("the new key\n")
    result = runner.invoke(args=["rekey-db", "--new-key-file", str(tmp_path / "new_key")])
    assert result.exit_code == 0, result.output
    assert "opens with the new key only" in result.output
    close_thread_db()
    assert any(MARKER in text for text in answer_texts(app.config["DATABASE"], "the new key"))
    with pytest.raises(storage.StorageError, match="configured key"):
        answer_texts(app.config["DATABASE"], KEY)
    plain_refuses(app.config["DATABASE"])
    assert MARKER.encode() not in raw_bytes(app.config["DATABASE"])
    reopened = reopen(app, DATABASE_KEY="the new key")
    with reopened.app_context():
        from patientapp.web.context import get_db

        assert [e["action"] for e in storage.audit_entries(get_db(), action="rekey-db")] == [
            "rekey-db"
        ]


def test_rekey_db_takes_the_new_key_from_the_environment(app, runner):
    result = runner.invoke(args=["rekey-db"], env={"PATIENTAPP_NEW_DB_KEY": "env key"})
    assert result.exit_code == 0, result.output
    close_thread_db()
    assert answer_texts(app.config["DATABASE"], "env key") == []


def test_rekey_db_refusals(app, runner, tmp_path):
    result = runner.invoke(args=["rekey-db"])
    assert result.exit_code == 1
    assert "give the new key" in result.output
    result = runner.invoke(args=["rekey-db"], env={"PATIENTAPP_NEW_DB_KEY": KEY})
    assert "the new key is the current key" in result.output
    inside = Path(app.instance_path) / "new_key"
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_text("x\n")
    result = runner.invoke(args=["rekey-db", "--new-key-file", str(inside)])
    assert "inside the instance folder" in result.output
    app.config["DATABASE_KEY"] = None
    result = runner.invoke(args=["rekey-db"], env={"PATIENTAPP_NEW_DB_KEY": "k2"})
    assert "not encrypted: run encrypt-db first" in result.output
    app.config["DATABASE_KEY"] = KEY


# --- encrypt-db --------------------------------------------------------------------------


@pytest.fixture
def plain_app(app):
    """The app on a plain database (as every clinic's was before encryption)."""
    return reopen_plain(app)


def reopen_plain(app):
    Path(app.config["DATABASE"]).unlink()
    for suffix in ("-wal", "-shm"):
        Path(app.config["DATABASE"] + suffix).unlink(missing_ok=True)
    return reopen(app, DATABASE_KEY=None)


def test_encrypt_db_end_to_end(plain_app, tmp_path):
    finish_visit(plain_app, answers=with_marker())
    path = plain_app.config["DATABASE"]
    assert MARKER.encode() in raw_bytes(path)
    close_thread_db()
    env = {
        **os.environ,
        "PATIENTAPP_INSTANCE": str(tmp_path / "instance"),
        "PATIENTAPP_DATABASE": path,
        "PATIENTAPP_DB_KEY": KEY,
    }
    run = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "encrypt-db"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "is now encrypted" in run.stdout
    plain_refuses(path)
    assert MARKER.encode() not in raw_bytes(path)
    assert any(MARKER in text for text in answer_texts(path, KEY))
    names = (p.name for p in Path(path).parent.iterdir() if "test.db" in p.name)
    kept = {"test.db.lock", "test.db.in-use"}  # the writers' queue, the in-use lock
    left = sorted(name for name in names if name not in kept)
    assert left == ["test.db"]  # no plain copy left behind
    assert Path(path).stat().st_mode & 0o777 == 0o600


def test_a_key_on_a_plain_database_asks_for_encrypt_db(plain_app, monkeypatch):
    with pytest.raises(storage.NotEncrypted, match="flask --app app encrypt-db"):
        reopen(plain_app, DATABASE_KEY=KEY)
    monkeypatch.setattr(sys, "argv", ["flask", "--app", "app", "encrypt-db"])
    reopen(plain_app, DATABASE_KEY=KEY)  # the command itself can start


def test_encrypt_db_in_process_and_its_refusals(plain_app):
    runner = plain_app.test_cli_runner()
    result = runner.invoke(args=["encrypt-db"])
    assert result.exit_code == 1
    assert "set PATIENTAPP_DB_KEY" in result.output
    finish_visit(plain_app, answers=with_marker())
    plain_app.config["DATABASE_KEY"] = KEY
    result = runner.invoke(args=["encrypt-db"])
    assert result.exit_code == 0, result.output
    assert any(MARKER in text for text in answer_texts(plain_app.config["DATABASE"], KEY))
    result = runner.invoke(args=["encrypt-db"])
    assert "already encrypted" in result.output


def test_encrypt_db_puts_the_plain_file_back_when_the_check_fails(plain_app, monkeypatch):
    finish_visit(plain_app, answers=with_marker())
    plain_app.config["DATABASE_KEY"] = KEY
    real_connect = storage.connect

    def failing_check(path, busy_timeout_ms=storage.BUSY_TIMEOUT_MS, key=None):
        if key and str(path) == plain_app.config["DATABASE"]:  # the check after the swap
            raise storage.StorageError("simulated")
        return real_connect(path, busy_timeout_ms, key)

    with monkeypatch.context() as patched:
        patched.setattr(storage, "connect", failing_check)
        result = plain_app.test_cli_runner().invoke(args=["encrypt-db"])
    assert result.exit_code != 0
    path = Path(plain_app.config["DATABASE"])
    assert storage.is_plain(path)
    assert any(MARKER in text for text in answer_texts(path, None))
    assert not list(path.parent.glob("*before-encryption*"))
    assert not list(path.parent.glob("*.encrypting"))


def test_encrypt_db_refuses_a_database_in_use(plain_app):
    finish_visit(plain_app, answers=with_marker())
    plain_app.config["DATABASE_KEY"] = KEY
    reader = storage.connect(plain_app.config["DATABASE"])
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM answers").fetchone()  # holds the WAL
        result = plain_app.test_cli_runner().invoke(args=["encrypt-db"])
    finally:
        reader.close()
    assert result.exit_code == 1
    assert "in use: stop the server" in result.output
    assert storage.is_plain(plain_app.config["DATABASE"])


def test_the_encryption_bench_runs(capsys):
    spec = importlib.util.spec_from_file_location("bench_encryption", ROOT / "bench/encryption.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "step save p50" in out
    assert "rekey-db" in out


# --- restoring copies made under another key, or none ------------------------------------


def visit_count(path, key) -> int:
    db = storage.connect(path, key=key)
    try:
        return db.execute("SELECT COUNT(*) FROM visits").fetchone()[0]
    finally:
        db.close()


def test_a_backup_made_before_rekey_db_restores_with_its_own_key_file(app, runner, tmp_path):
    """As the walk found it: README said to restore such a copy with its own key set, but
    the command then could not open the live database, which has the new key."""
    finish_visit(app, answers=with_marker())
    copy = tmp_path / "before-rekey.db"
    assert runner.invoke(args=["backup", str(copy)]).exit_code == 0
    finish_visit(app, ref="A-1002")  # after the backup: not in it
    (tmp_path / "new_key").write_text("the new key\n")
    result = runner.invoke(args=["rekey-db", "--new-key-file", str(tmp_path / "new_key")])
    assert result.exit_code == 0, result.output
    current = reopen(app, DATABASE_KEY="the new key")  # the configuration after rekey-db
    (tmp_path / "old_key").write_text(KEY + "\n")

    result = current.test_cli_runner().invoke(args=["restore-backup", str(copy)])
    assert result.exit_code == 1 and "--key-file" in result.output  # its key is needed
    result = current.test_cli_runner().invoke(
        args=["verify-backup", "--key-file", str(tmp_path / "old_key"), str(copy)]
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypts it with the configured key" in result.output
    result = current.test_cli_runner().invoke(
        args=["restore-backup", "--key-file", str(tmp_path / "old_key"), str(copy)]
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted with the configured key" in result.output
    close_thread_db()
    database = app.config["DATABASE"]
    restarted = reopen(current, DATABASE_KEY="the new key")  # starts with the current key
    with restarted.app_context():
        from patientapp.web.context import get_db

        assert storage.count_visits(get_db()) == 1  # the backup's, not the live one's 2
        assert len(storage.audit_entries(get_db(), action="backup_restored")) == 1
    close_thread_db()
    assert any(MARKER in text for text in answer_texts(database, "the new key"))
    with pytest.raises(storage.StorageError, match="configured key"):
        visit_count(database, KEY)  # the old key opens it no more
    assert MARKER.encode() not in raw_bytes(database)


def test_a_plain_backup_from_before_encrypt_db_is_restored_encrypted(plain_app, tmp_path):
    """As the walk found it: the drill said such a copy restores, then restore-backup
    died with a traceback (NotEncrypted)."""
    finish_visit(plain_app, answers=with_marker())
    copy = tmp_path / "plain.db"
    assert plain_app.test_cli_runner().invoke(args=["backup", str(copy)]).exit_code == 0
    finish_visit(plain_app, ref="A-1002")
    plain_app.config["DATABASE_KEY"] = KEY
    assert plain_app.test_cli_runner().invoke(args=["encrypt-db"]).exit_code == 0
    encrypted = reopen(plain_app, DATABASE_KEY=KEY)
    runner = encrypted.test_cli_runner()

    result = runner.invoke(args=["verify-backup", str(copy)])
    assert result.exit_code == 0, result.output
    assert "restore-backup encrypts it with the configured key" in result.output
    result = runner.invoke(args=["restore-backup", str(copy)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "encrypted with the configured key" in result.output
    close_thread_db()
    database = plain_app.config["DATABASE"]
    plain_refuses(database)
    assert MARKER.encode() not in raw_bytes(database)
    assert visit_count(database, KEY) == 1
    assert any(MARKER in text for text in answer_texts(database, KEY))
    live = Path(database)
    assert not list(live.parent.glob(f".{live.name}.restoring*"))  # no plain copy left
    assert oct(live.stat().st_mode & 0o777) == "0o600"
    reopen(encrypted, DATABASE_KEY=KEY)  # starts


def test_an_encrypted_backup_is_not_restored_into_a_plain_database(plain_app, tmp_path):
    finish_visit(plain_app)
    plain = tmp_path / "plain.db"
    assert plain_app.test_cli_runner().invoke(args=["backup", str(plain)]).exit_code == 0
    copy = tmp_path / "encrypted.db"
    copy.touch()
    storage.export_encrypted(plain, copy, KEY)
    (tmp_path / "key").write_text(KEY + "\n")
    runner = plain_app.test_cli_runner()
    args = ["--key-file", str(tmp_path / "key"), str(copy)]
    result = runner.invoke(args=["verify-backup", *args])
    assert result.exit_code == 0, result.output
    assert "restore-backup refuses it here" in result.output
    result = runner.invoke(args=["restore-backup", *args])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: the copy {copy} is encrypted and this database is not: set "
        "PATIENTAPP_DB_KEY_FILE and run encrypt-db first, then restore-backup again; "
        "nothing was changed"
    ]
    # Without --key-file (the key is not at hand): one line, not a key error.
    result = runner.invoke(args=["restore-backup", str(copy)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: the copy {copy} is encrypted (or not a database) and this database is "
        "not: if it is an encrypted backup, set PATIENTAPP_DB_KEY_FILE and run encrypt-db "
        "first, then restore-backup again; nothing was changed"
    ]
    # An empty file or a text is said to be what it is (a second reading found them
    # all called "encrypted").
    empty, text = tmp_path / "empty.db", tmp_path / "notes.db"
    empty.touch()
    text.write_text("not a database\n")
    for bad in (empty, text):
        result = runner.invoke(args=["restore-backup", str(bad)])
        assert result.exit_code == 1 and "run encrypt-db" not in result.output, result.output
    close_thread_db()
    assert storage.is_plain(plain_app.config["DATABASE"])
