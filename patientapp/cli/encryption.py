"""flask encrypt-db and rekey-db: encryption at rest with SQLCipher (stop the server first)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from patientapp import config
from patientapp.cli.common import audit_entry, fail
from patientapp.db import storage
from patientapp.web.context import close_thread_db


def _audit_in(path: Path, key: str, action: str) -> None:
    db = storage.connect(path, key=key)  # the converted copy: no one else has it open
    try:
        audit_entry(db, action)
    finally:
        db.close()


def _empty_file(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@click.command("encrypt-db")
@with_appcontext
def encrypt_db_command() -> None:
    """Encrypt the plain database with the configured key (PATIENTAPP_DB_KEY or _FILE)."""
    key = current_app.config.get("DATABASE_KEY")
    if not key:
        fail("set PATIENTAPP_DB_KEY or PATIENTAPP_DB_KEY_FILE to the new key first")
    path = Path(current_app.config["DATABASE"])
    if not storage.is_plain(path):
        fail(f"{path} is already encrypted")
    try:
        with storage.used_alone(path, "encrypt-db"):
            _encrypt(path, key)
    except storage.InUse as refusal:
        fail(str(refusal))
    click.echo(
        f"{path} is now encrypted. Keep the key set for every start, and keep a copy of it "
        "apart from the backups: without it the answers cannot be read."
    )


def _encrypt(path: Path, key: str) -> None:
    close_thread_db()
    plain = storage.connect(path, busy_timeout_ms=1000)
    emptied = storage.checkpoint(plain)  # every answer in the file itself, the WAL empty
    plain.close()
    if not emptied:
        fail("the database is in use: stop the server, then run encrypt-db again")
    temp = path.with_name(f".{path.name}.encrypting")
    kept = path.with_name(f"{path.name}.before-encryption")
    _empty_file(temp)
    try:
        storage.export_encrypted(path, temp, key)
        _audit_in(temp, key, "encrypt-db")  # the entry exists exactly when the file does
        kept.unlink(missing_ok=True)
        os.link(path, kept)  # the plain file stays until the encrypted one opens
        os.replace(temp, path)
        check = storage.connect(path, key=key)
        check.execute("SELECT COUNT(*) FROM visits").fetchone()
        check.close()
    except BaseException:
        if kept.exists():
            os.replace(kept, path)
        temp.unlink(missing_ok=True)
        raise
    kept.unlink()


@click.command("rekey-db")
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the new key (else PATIENTAPP_NEW_DB_KEY or PATIENTAPP_NEW_DB_KEY_FILE).",
)
@with_appcontext
def rekey_db_command(new_key_file: Path | None) -> None:
    """Re-encrypt the database with a new key (PRAGMA rekey)."""
    key = current_app.config.get("DATABASE_KEY")
    if not key:
        fail("the database is not encrypted: run encrypt-db first")
    instance = Path(current_app.instance_path)
    try:
        if new_key_file:
            new_key = config.key_from_file(new_key_file, instance)
        else:
            new_key = config.database_key(instance, name="NEW_DB_KEY")
    except storage.StorageError as refusal:
        fail(str(refusal))
    if not new_key:
        fail("give the new key: --new-key-file, PATIENTAPP_NEW_DB_KEY or _FILE")
    if new_key == key:
        fail("the new key is the current key")
    try:
        with storage.used_alone(current_app.config["DATABASE"], "rekey-db"):
            close_thread_db()
            db = storage.connect(current_app.config["DATABASE"], key=key)
            try:
                with storage.write(db):  # the entry, then the key change: both, or neither
                    audit_entry(db, "rekey-db")
                    storage.rekey(db, new_key)
            finally:
                db.close()
    except storage.InUse as refusal:
        fail(str(refusal))
    current_app.config["DATABASE_KEY"] = new_key
    click.echo(
        "The database now opens with the new key only: set it in PATIENTAPP_DB_KEY or "
        "PATIENTAPP_DB_KEY_FILE before the next start. Earlier backups keep the old key."
    )
