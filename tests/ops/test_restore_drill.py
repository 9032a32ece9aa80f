"""The restore drill: `flask verify-backup` restores a copy into a scratch folder, checks
it and says how old it is; `flask backup` and the drill are recorded, and Settings warns
when either is overdue."""

from __future__ import annotations

import hashlib
import html
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from patientapp.db import storage
from patientapp.domain import backups
from patientapp.web.context import get_db
from tests.conftest import FULL_ANSWERS, create_user, finish_visit, login, make_invitation
from tests.helpers.disks import mounted

KEY = "drill 'key' staple"
MARKER = "MARKER-dr1ll-unique"
NARROW_NBSP = "\u202f"


def with_marker():
    return {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": f"{FULL_ANSWERS[1]['T2']} {MARKER}"}}


def stored(app) -> dict:
    with app.app_context():
        return storage.get_settings(get_db())


def audit_rows(app, action: str) -> list[dict]:
    with app.app_context():
        return storage.audit_entries(get_db(), action=action)


def live_counts(app) -> dict[str, int]:
    db = storage.connect(app.config["DATABASE"], key=app.config["DATABASE_KEY"])
    try:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("visits", "answers")
        }
    finally:
        db.close()


def backup(runner, target: Path) -> None:
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output


def verify(runner, target: Path, *extra: str):
    return runner.invoke(args=["verify-backup", *extra, str(target)])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scratch_left(app) -> list[Path]:
    return list(Path(app.instance_path).glob(".verify-backup-*"))


def refused_cleanly(result) -> str:
    """A failed drill: exit 1, one line, no traceback; the line."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: the copy ") and "did not restore" in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def visits(app, clock):
    """Two sent visits (one with a marker in its free text), one only invited."""
    finish_visit(app, answers=with_marker())
    finish_visit(app, ref="A-1002")
    clock.advance(minutes=30)
    make_invitation(app, "A-1003")
    return live_counts(app)


# --- a good copy -------------------------------------------------------------------------


def test_a_real_backup_restores_and_the_report_matches(
    app, runner, clock, visits, tmp_path, monkeypatch
):
    opened = []
    real_connect = storage.connect
    monkeypatch.setattr(
        storage,
        "connect",
        lambda path, *a, **kw: opened.append(Path(path)) or real_connect(path, *a, **kw),
    )
    made_at = clock.moment
    target = tmp_path / "copy.db"
    backup(runner, target)
    size = target.stat().st_size
    assert stored(app)[backups.LAST_BACKUP] == {"at": storage.stamp(made_at), "bytes": size}
    before = digest(target)
    clock.advance(hours=26, minutes=5)
    result = verify(runner, target)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"The copy {target} restores." in out
    assert "Integrity check: ok" in out
    assert f"Visits: {visits['visits']}; answers: {visits['answers']:,};" in out
    assert visits["visits"] == 3 and visits["answers"] > 10
    # The newest write is the invitation made at 09:30; the answers were saved at 09:00.
    assert "Newest saved answer: 2026-11-25 09:00" in out
    assert "Newest write in the copy: 2026-11-25 09:30 (the copy is 1 d 2 h old)" in out
    known = len(storage.migration_names())
    assert f"Schema: {known} of {known} migrations" in out
    # Counts and times only: no reference, no answer text.
    for private in ("A-1001", "A-1002", "A-1003", MARKER):
        assert private not in out
    assert digest(target) == before  # the copy itself is only read, never opened in place
    assert [p.name for p in tmp_path.glob("copy.db*")] == ["copy.db"]  # no -wal, no -shm
    [restored] = [p for p in opened if p.name == "restored.db"]  # SQLite opened the scratch copy
    assert restored.parent.parent == Path(app.instance_path) and target not in opened
    assert scratch_left(app) == []
    verified = stored(app)[backups.LAST_RESTORE_VERIFIED]
    assert verified["at"] == storage.stamp(clock.moment)
    assert verified["written"] == storage.stamp(made_at)
    assert (verified["age_seconds"], verified["visits"]) == ((26 * 60 + 5) * 60, 3)
    assert stored(app)[backups.LAST_RESTORE_CHECK] == {
        "at": storage.stamp(clock.moment),
        "ok": True,
    }
    [entry] = audit_rows(app, "backup_verified")
    assert entry["actor"] == "cli"
    assert entry["detail"] == (
        f"{target}: visits=3 answers={visits['answers']} age_seconds={(26 * 60 + 5) * 60}"
    )


def test_the_copy_is_checked_not_the_live_database(app, runner, visits, tmp_path):
    target = tmp_path / "copy.db"
    backup(runner, target)
    finish_visit(app, ref="LATER-1")  # only in the live database
    result = verify(runner, target)
    assert "Visits: 3;" in result.output
    refused = runner.invoke(args=["verify-backup", app.config["DATABASE"]])
    assert refused.exit_code == 1 and "live database" in refused.output


def test_a_copy_missing_later_migrations_still_restores(app, runner, tmp_path):
    target = tmp_path / "copy.db"
    backup(runner, target)
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm101_fhir_alert_changes'")
        conn.commit()
    result = verify(runner, target)
    assert result.exit_code == 0, result.output
    known = len(storage.migration_names())
    assert f"Schema: {known - 1} of {known} migrations (1 to apply at the first start" in (
        result.output
    )
    assert "Newest write in the copy: none (it holds no visits, answers or" in result.output


# --- copies that do not restore ----------------------------------------------------------


def test_a_truncated_copy_fails_cleanly_and_is_audited(app, runner, clock, visits, tmp_path):
    target = tmp_path / "copy.db"
    backup(runner, target)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    result = verify(runner, target)
    line = refused_cleanly(result)
    assert str(target) in line
    [entry] = audit_rows(app, "backup_verify_failed")
    assert entry["actor"] == "cli" and entry["detail"].startswith(f"{target}: ")
    assert stored(app)[backups.LAST_RESTORE_CHECK] == {
        "at": storage.stamp(clock.moment),
        "ok": False,
    }
    assert backups.LAST_RESTORE_VERIFIED not in stored(app)
    assert audit_rows(app, "backup_verified") == []
    assert scratch_left(app) == []


def test_an_index_out_of_step_with_its_table_fails_the_integrity_check(
    app, runner, visits, tmp_path
):
    """Damage that every count still reads past: only integrity_check finds it."""
    target = tmp_path / "copy.db"
    backup(runner, target)
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX visits_by_ref ON visits "
            "(created_at, submitted_at)' WHERE name = 'visits_by_ref'"
        )
        conn.commit()
    with closing(sqlite3.connect(target)) as conn:  # the damage reads as whole rows
        assert conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 3
    line = refused_cleanly(verify(runner, target))
    assert "integrity check failed" in line and "visits_by_ref" in line
    assert len(audit_rows(app, "backup_verify_failed")) == 1


def test_an_answer_without_its_visit_fails_the_foreign_key_check(app, runner, visits, tmp_path):
    target = tmp_path / "copy.db"
    backup(runner, target)
    with closing(sqlite3.connect(target)) as conn:  # foreign keys off, as sqlite3's default
        conn.execute(
            "INSERT INTO answers (visit_id, item_id, value, updated_at) "
            "VALUES (999, 'T1', '1', '2026-11-25T15:00:00+00:00')"
        )
        conn.commit()
    line = refused_cleanly(verify(runner, target))
    assert "integrity check failed: 1 rows break foreign keys in answers" in line


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the copy is empty"),
        (b"not a database at all, just text " * 200, "the copy is encrypted (or not a database)"),
    ],
)
def test_an_empty_or_foreign_file_fails_cleanly(app, runner, tmp_path, content, words):
    target = tmp_path / "copy.db"
    target.write_bytes(content)
    assert words in refused_cleanly(verify(runner, target))


def test_a_missing_file_fails_cleanly(app, runner, tmp_path):
    assert "does not exist" in refused_cleanly(verify(runner, tmp_path / "nowhere.db"))


def test_a_copy_from_a_newer_version_is_refused(app, runner, tmp_path):
    target = tmp_path / "copy.db"
    backup(runner, target)
    with closing(sqlite3.connect(target)) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('patientapp', 'm999_from_the_future', '2027-01-01')"
        )
        conn.commit()
    assert "newer version of the app" in refused_cleanly(verify(runner, target))


@pytest.mark.parametrize(
    ("options", "said"),
    [("size=64k", "database or disk is full"), ("ro,size=1m", "Read-only file system")],
)
def test_a_backup_to_a_full_or_read_only_disk_fails_in_one_line_and_is_audited(
    app, runner, visits, tmp_path, options, said
):
    """As the walk found it: a 64 kB disk and a read-only one gave a Python traceback,
    and nothing in the audit log said the night's backup had failed."""
    with mounted(tmp_path / "disk", options) as disk:
        target = disk / "copy.db"
        result = runner.invoke(args=["backup", str(target)])
        left = sorted(p.name for p in disk.iterdir())
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # fail(), not an exception
    assert result.output.strip().splitlines() == [
        f"Error: the backup to {target} failed: {said}; nothing was written"
    ]
    assert left == []  # no temporary file, no half a copy
    [entry] = audit_rows(app, "backup_failed")
    assert entry["actor"] == "cli" and str(target) in entry["detail"] and said in entry["detail"]
    assert backups.LAST_BACKUP not in stored(app)


# --- encrypted copies --------------------------------------------------------------------


@pytest.mark.parametrize("db_key", [KEY])
def test_an_encrypted_backup_verifies_with_its_key_only(app, runner, visits, tmp_path):
    pytest.importorskip("sqlcipher3")
    target = tmp_path / "copy.db"
    backup(runner, target)
    assert not storage.is_plain(target)
    result = verify(runner, target)
    assert result.exit_code == 0, result.output
    assert f"Visits: {visits['visits']};" in result.output and MARKER not in result.output
    wrong = tmp_path / "wrong_key"
    wrong.write_text("not the key\n")
    line = refused_cleanly(verify(runner, target, "--key-file", str(wrong)))
    assert "cannot be opened with the key given" in line
    assert len(audit_rows(app, "backup_verify_failed")) == 1
    assert scratch_left(app) == []


def test_an_encrypted_copy_needs_a_key_and_a_plain_one_does_not(app, runner, visits, tmp_path):
    pytest.importorskip("sqlcipher3")
    plain = tmp_path / "plain.db"
    backup(runner, plain)
    encrypted = tmp_path / "encrypted.db"
    encrypted.touch()
    storage.export_encrypted(plain, encrypted, KEY)
    line = refused_cleanly(verify(runner, encrypted))
    assert "the copy is encrypted" in line and "--key-file" in line
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    result = verify(runner, encrypted, "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    assert "Visits: 3;" in result.output
    result = verify(runner, plain, "--key-file", str(key_file))  # a copy made before encrypt-db
    assert result.exit_code == 0, result.output


# --- Settings ----------------------------------------------------------------------------


def backup_block(app, block_id: str = "backups") -> tuple[list[str], list[str]]:
    """The Settings page's backup lines (or those of another block, e.g. "copies"): (all
    of them, the warnings), read by an admin signed in afresh (the clock moves past the
    idle timeout between reads)."""
    client = app.test_client()
    assert login(client, "boss@example.org").status_code == 302
    response = client.get("/staff/admin/settings")
    assert response.status_code == 200, response.status_code
    page = response.get_data(as_text=True)
    block = page.split(f'<div id="{block_id}">', 1)[1].split("</div>", 1)[0]
    lines = [html.unescape(line) for line in block.split("<p ")[1:]]
    text = [line.split(">", 1)[1].split("</p>", 1)[0] for line in lines]
    warnings = [t for t, line in zip(text, lines, strict=True) if "notice urgent" in line]
    return text, warnings


def test_settings_shows_the_last_copy_and_restore_and_warns_when_overdue(
    app, runner, clock, tmp_path
):
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": "America/Chicago"})
    create_user(app, "boss@example.org", "admin")
    lines, warnings = backup_block(app)
    assert warnings == ["No backup has been made yet.", "No restore has been verified yet."]
    assert lines == warnings

    target = tmp_path / "copy.db"
    backup(runner, target)
    mb = f"{target.stat().st_size / 1_000_000:,.1f}"
    lines, warnings = backup_block(app)
    assert lines[0] == f"Last successful backup: 11/25/26, 9:00{NARROW_NBSP}AM, {mb} MB"
    assert warnings == ["No restore has been verified yet."]

    clock.advance(hours=2)
    assert verify(runner, target).exit_code == 0
    lines, warnings = backup_block(app)
    assert lines == [
        f"Last successful backup: 11/25/26, 9:00{NARROW_NBSP}AM, {mb} MB",
        f"Last verified restore: 11/25/26, 11:00{NARROW_NBSP}AM, of a copy written "
        f"11/25/26, 9:00{NARROW_NBSP}AM",
    ]
    assert warnings == []

    clock.advance(days=7)  # the copy 7 days and 2 hours old, the drill exactly 7 days
    assert backup_block(app)[1] == ["Backup overdue: the last one is more than 7 days old."]
    clock.advance(minutes=1)
    assert backup_block(app)[1] == [
        "Backup overdue: the last one is more than 7 days old.",
        "Restore check overdue: the last one is more than 7 days old.",
    ]

    with app.app_context():  # the clinic's own limit
        storage.save_settings(get_db(), {"backup_overdue_days": 30})
    assert backup_block(app)[1] == []

    target.write_bytes(b"")
    assert verify(runner, target).exit_code == 1
    lines, warnings = backup_block(app)
    assert warnings == [f"The last restore check failed: 12/2/26, 11:01{NARROW_NBSP}AM."]
    assert lines[1].startswith("Last verified restore: 11/25/26, 11:00")  # the last good one


def test_the_overdue_limit_is_a_setting_from_1_to_90_days(app, client):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert 'name="backup_overdue_days"' in page and 'value="7"' in page
    from tests.conftest import csrf_from

    base = {
        "clinic_name": "",
        "languages": app.config["OFFERED_LANGUAGES"],
        "invite_extra_days": "0",
        "patient_idle_minutes": "15",
        "retention_days": "365",
        "escalate_after_minutes": "5",
    }
    for bad in ("0", "91", "x"):
        token = csrf_from(client.get("/staff/admin/settings").get_data(as_text=True))
        response = client.post(
            "/staff/admin/settings",
            data={"csrf_token": token, **base, "backup_overdue_days": bad},
        )
        assert response.status_code == 422
        assert "Please enter a whole number from 1 to 90." in html.unescape(
            response.get_data(as_text=True)
        )
    token = csrf_from(client.get("/staff/admin/settings").get_data(as_text=True))
    response = client.post(
        "/staff/admin/settings", data={"csrf_token": token, **base, "backup_overdue_days": "14"}
    )
    assert response.status_code == 302
    assert stored(app)["backup_overdue_days"] == 14
    [entry] = audit_rows(app, "settings_changed")
    assert entry["detail"] == "backup_overdue_days"
