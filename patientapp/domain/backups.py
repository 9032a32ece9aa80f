"""Backups and the restore drill: the last successful copy (`flask backup`), the last
check of a copy (`flask verify-backup`), and whether either is overdue for the Settings
limit. The times are kept in the settings table as stored (UTC) text; every function
takes the database and the clinic's current time from its caller."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from patientapp.db import storage

LAST_BACKUP = "last_backup"  # {"at": stored time, "bytes": size}
LAST_RESTORE_VERIFIED = "last_restore_verified"  # the last copy that passed (see record_check)
LAST_RESTORE_CHECK = "last_restore_check"  # the last check, passed or not: {"at", "ok"}
DEFAULT_OVERDUE_DAYS = 7
OVERDUE_RANGE = (1, 90)


class CopyRefused(Exception):
    """The copy cannot be restored: one line saying why (no patient detail)."""


# How restore-backup puts a sound copy in place, so that the configured key (or none)
# opens the restored database, as the running configuration will.
AS_IS = "as is"
ENCRYPT = "encrypt"  # a plain copy (made before encrypt-db), a key configured
REKEY = "rekey"  # a copy encrypted with another key (made before rekey-db)
REFUSE = "refuse"  # an encrypted copy, the database here plain


def restore_kind(copy: Path, copy_key: str | None, key: str | None) -> str:
    """AS_IS, ENCRYPT, REKEY or REFUSE for a copy that opens with copy_key (ignored for
    a plain copy), the database's configured key being key."""
    if storage.is_plain(copy):
        return ENCRYPT if key else AS_IS
    if not key:
        return REFUSE
    return AS_IS if copy_key == key else REKEY


@dataclass
class Report:
    """What a verified copy holds: counts and times only."""

    visits: int
    answers: int
    audit_entries: int
    newest_answer: datetime | None  # the clinic's local time
    newest_write: datetime | None
    age: timedelta | None  # now minus the newest write
    migrations_applied: int
    migrations_known: int
    pending: list[str] = field(default_factory=list)  # this code's, not yet in the copy


def _local(stored: str | None) -> datetime | None:
    return storage.local_time(stored) if stored else None


def verify_copy(path: Path, key: str | None, scratch_parent: Path, now: datetime) -> Report:
    """Copy the file into a fresh scratch folder (the original is only read), open it as a
    restore would (with the key when the copy is encrypted), check it and describe it; the
    scratch folder is removed whatever happens. CopyRefused says why a copy fails."""
    if not path.is_file():
        raise CopyRefused(f"{path} does not exist or is not a file")
    try:
        scratch_parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".verify-backup-", dir=scratch_parent))  # 0700
    except OSError as error:
        raise CopyRefused(f"no scratch folder in {scratch_parent}: {error.strerror}") from None
    try:
        copy = scratch / "restored.db"
        try:
            shutil.copyfile(path, copy)
            wal = Path(f"{path}-wal")
            if wal.is_file():  # a copy taken as files, beside its WAL
                shutil.copyfile(wal, Path(f"{copy}-wal"))
        except OSError as error:  # unreadable, or no room for the scratch copy
            raise CopyRefused(f"the copy cannot be copied to {scratch}: {error.strerror}") from None
        return _check(copy, key, now)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check(copy: Path, key: str | None, now: datetime) -> Report:
    if os.path.getsize(copy) == 0:
        raise CopyRefused("the copy is empty")
    plain = storage.is_plain(copy)
    if not plain and not key:
        raise CopyRefused(
            "the copy is encrypted (or not a database): set PATIENTAPP_DB_KEY or "
            "PATIENTAPP_DB_KEY_FILE, or give --key-file, with the key it was made with"
        )
    try:
        db = storage.connect(copy, key=None if plain else key)
    except storage.StorageError:
        raise CopyRefused(
            "the copy cannot be opened with the key given: the key is wrong (a copy made "
            "before rekey-db needs its own key: --key-file), or the file is not a "
            "patientapp database"
        ) from None
    except storage.DATABASE_ERRORS as error:
        raise CopyRefused(f"the copy cannot be opened: {error}") from None
    try:
        return _describe(db, now)
    except storage.DATABASE_ERRORS as error:
        raise CopyRefused(f"the copy is damaged: {error}") from None
    finally:
        db.close()


def _describe(db, now: datetime) -> Report:
    problems = storage.integrity_problems(db)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CopyRefused(f"the integrity check failed: {problems[0]}{more}")
    if "visits" not in db.table_names():
        raise CopyRefused("the copy is not a patientapp database (no visits table)")
    found = storage.copy_contents(db)
    known = storage.migration_names()
    unknown = [name for name in found["migrations"] if name not in known]
    if unknown:
        raise CopyRefused(
            f"the copy was made by a newer version of the app ({len(unknown)} schema "
            "changes this code does not know): restore it with that version"
        )
    newest_write = _local(found["newest_write"])
    return Report(
        visits=found["visits"],
        answers=found["answers"],
        audit_entries=found["audit_entries"],
        newest_answer=_local(found["newest_answer"]),
        newest_write=newest_write,
        age=now - newest_write if newest_write else None,
        migrations_applied=len(found["migrations"]),
        migrations_known=len(known),
        pending=[name for name in known if name not in found["migrations"]],
    )


# --- what is recorded --------------------------------------------------------------------


def record_backup(db, now: datetime, size: int) -> None:
    """Inside the caller's transaction: the last successful copy."""
    storage.put_setting(db, LAST_BACKUP, {"at": storage.stamp(now), "bytes": size})


def record_check(db, now: datetime, report: Report | None) -> None:
    """Inside the caller's transaction: a check of a copy, passed (with its report) or
    failed (None); a failure leaves the last verified restore as it was."""
    storage.put_setting(db, LAST_RESTORE_CHECK, {"at": storage.stamp(now), "ok": bool(report)})
    if report is not None:
        written = storage.stamp(report.newest_write) if report.newest_write else None
        age = int(report.age.total_seconds()) if report.age is not None else None
        verified = {
            "at": storage.stamp(now),
            "written": written,  # the copy's newest write
            "age_seconds": age,
            "visits": report.visits,
        }
        storage.put_setting(db, LAST_RESTORE_VERIFIED, verified)


@dataclass(frozen=True)
class Status:
    """What Settings shows: each time in the clinic's local time (None: never)."""

    backup_at: datetime | None
    backup_bytes: int
    verified_at: datetime | None
    copy_written_at: datetime | None
    last_check_failed_at: datetime | None  # the last check, when it failed
    backup_overdue: bool
    restore_overdue: bool


def status(settings: dict, now: datetime, overdue_days: int) -> Status:
    """The last copy and the last verified restore from the settings, and whether either
    is older than overdue_days (or never happened)."""
    limit = timedelta(days=overdue_days)
    backup = settings.get(LAST_BACKUP) or {}
    verified = settings.get(LAST_RESTORE_VERIFIED) or {}
    check = settings.get(LAST_RESTORE_CHECK) or {}
    backup_at = _local(backup.get("at"))
    verified_at = _local(verified.get("at"))
    return Status(
        backup_at=backup_at,
        backup_bytes=int(backup.get("bytes") or 0),
        verified_at=verified_at,
        copy_written_at=_local(verified.get("written")),
        last_check_failed_at=None if check.get("ok", True) else _local(check.get("at")),
        backup_overdue=backup_at is None or now - backup_at > limit,
        restore_overdue=verified_at is None or now - verified_at > limit,
    )
