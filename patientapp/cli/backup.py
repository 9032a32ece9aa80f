"""flask backup: a consistent copy of the live database, safe while the app runs; flask
verify-backup: the restore drill, a copy restored into a scratch folder and checked."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from patientapp import config
from patientapp.cli.common import audit, audit_entry, fail
from patientapp.db import storage
from patientapp.domain import backups
from patientapp.web.context import close_thread_db, get_db, now


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _backup_to(target: Path) -> int:
    """Copy into a temporary file beside the target, then rename it into place in the
    transaction that records it, so the target is never a half-written copy, --force can
    replace any old file, and no copy of the answers exists without its audit entry."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    placed = False
    try:
        storage.backup(get_db(), temp_name, current_app.config.get("DATABASE_KEY"))
        os.chmod(temp_name, 0o600)  # the copy holds answers: readable by the owner only
        size = Path(temp_name).stat().st_size
        with storage.write(get_db()):
            audit("backup", detail=f"{target} ({size} bytes)")
            backups.record_backup(get_db(), now(), size)  # Settings shows the last copy
            os.replace(temp_name, target)
            placed = True
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        if placed:  # renamed, but its entry was not saved: no copy without one
            target.unlink(missing_ok=True)
        raise
    return size


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it already exists.")
@with_appcontext
def backup_command(path: Path, force: bool) -> None:
    """Write a consistent copy of the live database to PATH (safe while the app runs)."""
    target = path.expanduser().resolve()
    if not target.parent.is_dir():
        fail(f"the folder {target.parent} does not exist")
    if _same_file(target, Path(current_app.config["DATABASE"])):
        fail("PATH is the live database itself; choose another file")
    if target.exists() and not force:
        fail(f"{target} already exists; add --force to replace it")
    try:
        size = _backup_to(target)
    except (OSError, *storage.DATABASE_ERRORS) as error:  # a full or read-only disk
        reason = _reason(error)
        _audit_failure(f"{target}: {reason}")
        fail(f"the backup to {target} failed: {reason}; nothing was written")
    click.echo(f"Backup written to {target} ({size:,} bytes).")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _audit_failure(detail: str) -> None:
    """Audit a failed backup as a failed continuous copy is (`backup_failed`), when the
    database can still take the entry: the failure itself is said either way."""
    with contextlib.suppress(OSError, *storage.DATABASE_ERRORS), storage.write(get_db()):
        audit("backup_failed", detail=detail)


def _age(age) -> str:
    """A copy's age in words a cron mail reads at a glance: days and hours, or minutes."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "none"


def _report_lines(report: backups.Report) -> list[str]:
    schema = f"{report.migrations_applied} of {report.migrations_known} migrations"
    if report.pending:
        schema += f" ({len(report.pending)} to apply at the first start after restoring)"
    if report.newest_write is None:
        newest = "none (it holds no visits, answers or audit entries)"
    else:
        newest = f"{_when(report.newest_write)} (the copy is {_age(report.age)} old)"
    return [
        "Integrity check: ok (integrity_check, foreign_key_check)",
        f"Visits: {report.visits:,}; answers: {report.answers:,}; "
        f"audit entries: {report.audit_entries:,}",
        f"Newest saved answer: {_when(report.newest_answer)}",
        f"Newest write in the copy: {newest}",
        f"Schema: {schema}",
    ]


def _key_for(key_file: Path | None) -> str | None:
    if key_file is None:
        return current_app.config.get("DATABASE_KEY")
    try:
        return config.key_from_file(key_file, Path(current_app.instance_path))
    except storage.StorageError as refusal:
        fail(str(refusal))


@click.command("verify-backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the copy's key, when it differs from the database's (a copy made "
    "before rekey-db).",
)
@with_appcontext
def verify_backup_command(path: Path, key_file: Path | None) -> None:
    """The restore drill: restore a copy made by `backup` into a scratch folder, check its
    integrity, open it with the key, count its visits and say how old it is. The live
    database is not touched; counts and times only, no patient detail."""
    source = path.expanduser().resolve()
    if _same_file(source, Path(current_app.config["DATABASE"])):
        fail("PATH is the live database itself; give a backup copy")
    key = _key_for(key_file)
    db = get_db()  # the clinic's zone for the times below
    moment = now()
    try:
        report = backups.verify_copy(source, key, Path(current_app.instance_path), moment)
    except backups.CopyRefused as refusal:
        with storage.write(db):
            audit("backup_verify_failed", detail=f"{source}: {refusal}")
            backups.record_check(db, moment, None)
        fail(f"the copy {source} did not restore: {refusal}")
    age = int(report.age.total_seconds()) if report.age is not None else None
    with storage.write(db):
        audit(
            "backup_verified",
            detail=f"{source}: visits={report.visits} answers={report.answers} age_seconds={age}",
        )
        backups.record_check(db, moment, report)
    click.echo(f"The copy {source} restores.")
    for line in _report_lines(report):
        click.echo(f"  {line}")
    kind = backups.restore_kind(source, key, current_app.config.get("DATABASE_KEY"))
    if kind in VERIFY_SAYS:
        click.echo(f"  Encryption: {VERIFY_SAYS[kind]}")


VERIFY_SAYS = {  # what restore-backup would do with the copy here
    backups.ENCRYPT: "the copy is plain; restore-backup encrypts it with the configured key",
    backups.REKEY: "the copy has a key of its own; restore-backup (with the same --key-file) "
    "re-encrypts it with the configured key",
    backups.REFUSE: "the copy is encrypted and this database is not; restore-backup refuses "
    "it here until encrypt-db has been run",
}
REFUSED_HERE = (
    "the copy {source} is encrypted and this database is not: set PATIENTAPP_DB_KEY_FILE "
    "and run encrypt-db first, then restore-backup again; nothing was changed"
)
MAYBE_ENCRYPTED_HERE = (
    "the copy {source} is encrypted (or not a database) and this database is not: if it "
    "is an encrypted backup, set PATIENTAPP_DB_KEY_FILE and run encrypt-db first, then "
    "restore-backup again; nothing was changed"
)


def _looks_encrypted(path: Path) -> bool:
    """Whether the file may be an encrypted database: not SQLite's plain header, and
    whole pages (SQLCipher writes 4096-byte pages); an empty or short file, a text or a
    .gz is left to the copy's own checks, which name what is wrong with it."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return size > 0 and size % 512 == 0 and not storage.is_plain(path)


RESTORE_SAYS = {
    backups.ENCRYPT: "The copy was plain: the restored database is encrypted with the "
    "configured key.",
    backups.REKEY: "The copy had a key of its own: the restored database is re-encrypted "
    "with the configured key.",
}


@click.command("restore-backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the copy's key, when it differs from the database's (a copy made "
    "before rekey-db); the restored database gets the configured key.",
)
@with_appcontext
def restore_backup_command(path: Path, key_file: Path | None) -> None:
    """Replace the live database with a copy made by `backup`, the server stopped. The
    copy is checked first as verify-backup checks it, and put in place under the
    configured key (a plain copy encrypted, a copy with a key of its own re-encrypted);
    the database it replaces is kept beside it with its -wal and -shm (a -wal left there
    would otherwise be replayed into the restored file); the restore is audited in the
    restored database."""
    source = path.expanduser().resolve()
    live = Path(current_app.config["DATABASE"]).resolve()
    if _same_file(source, live):
        fail("PATH is the live database itself; give a backup copy")
    key = current_app.config.get("DATABASE_KEY")
    copy_key = _key_for(key_file)
    if not key and key_file is None and _looks_encrypted(source):
        fail(MAYBE_ENCRYPTED_HERE.format(source=source))  # said before the key it lacks
    moment = now()
    try:
        report = backups.verify_copy(source, copy_key, Path(current_app.instance_path), moment)
    except backups.CopyRefused as refusal:
        fail(f"the copy {source} did not restore: {refusal}; nothing was changed")
    kind = backups.restore_kind(source, copy_key, key)
    if kind == backups.REFUSE:
        fail(REFUSED_HERE.format(source=source))
    try:
        with storage.used_alone(live, "restore-backup"):
            kept = _put_in_place(source, live, (copy_key, key), kind, f"{moment:%Y%m%d-%H%M%S}")
    except storage.InUse as refusal:
        fail(str(refusal))
    except backups.CopyRefused as refusal:
        fail(f"the copy {source} did not restore: {refusal}; nothing was changed")
    click.echo(f"Restored {source} into {live}.")
    for line in _report_lines(report):
        click.echo(f"  {line}")
    if kind in RESTORE_SAYS:
        click.echo(RESTORE_SAYS[kind])
    click.echo(
        f"The database it replaced is kept as {kept} (with its -wal and -shm, if any): "
        "remove it once the app runs well on the restored one."
    )


def _copy_private(source: Path, target: Path) -> None:
    """Copy into a new file that only its owner may read from the first byte on, as the
    copy holds answers, wherever the database is configured to live."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as into:
        shutil.copyfileobj(into, out)


def _copy_with_wal(source: Path, target: Path) -> None:
    _copy_private(source, target)
    if Path(f"{source}-wal").exists():
        _copy_private(Path(f"{source}-wal"), Path(f"{target}-wal"))


def _remove(*paths: Path) -> None:
    for path in paths:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _put_in_place(source: Path, live: Path, keys: tuple, kind: str, stamp: str) -> Path:
    """The copy (and a -wal beside it) written beside the live file under the configured
    key and audited there, then renamed into its place once the live file and its -wal
    and -shm are moved aside; the name they were moved to."""
    close_thread_db()
    temp = live.with_name(f".{live.name}.restoring")
    kept = live.with_name(f"{live.name}.before-restore-{stamp}")
    for n in range(2, 100):  # two restores in one second: the first one's stays
        if not kept.exists():
            break
        kept = live.with_name(f"{live.name}.before-restore-{stamp}-{n}")
    try:
        _write_restored(source, temp, keys, kind)
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{live}{suffix}").exists():
                os.replace(f"{live}{suffix}", f"{kept}{suffix}")
        os.replace(temp, live)
    finally:
        _remove(temp)
    return kept


def _write_restored(source: Path, temp: Path, keys: tuple, kind: str) -> None:
    """The copy at temp, opening with the configured key (a plain copy encrypted, one
    with its own key re-encrypted) and holding its audit entry; CopyRefused when it
    cannot be, the live file untouched."""
    copy_key, key = keys
    plain = temp.with_name(f"{temp.name}-plain")  # a plain copy, before it is encrypted
    _remove(temp, plain)
    try:
        if kind == backups.ENCRYPT:
            _copy_with_wal(source, plain)
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            storage.export_encrypted(plain, temp, key)  # what the -wal holds comes along
        else:
            _copy_with_wal(source, temp)
        # Opened with the copy's own key: the -wal goes into it, and it is closed.
        restored = storage.connect(temp, key=copy_key if kind == backups.REKEY else key)
        try:
            audit_entry(restored, "backup_restored", detail=str(source))
            if kind == backups.REKEY:
                storage.rekey(restored, key)
        finally:
            restored.close()
        if kind == backups.REKEY:
            _opens(temp, key)  # as the next start will
    except (OSError, storage.StorageError, *storage.DATABASE_ERRORS) as error:
        raise backups.CopyRefused(_reason(error)) from None
    finally:
        _remove(plain)


def _opens(path: Path, key: str) -> None:
    db = storage.connect(path, key=key)
    try:
        db.execute("SELECT COUNT(*) FROM visits").fetchone()
    finally:
        db.close()
