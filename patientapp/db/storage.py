"""All SQL lives here: schema migrations and named read/write functions, no rules.

Every connection gets the same pragmas (WAL, synchronous=FULL, a busy timeout, foreign
keys, secure_delete); with a key it is a SQLCipher connection, keyed before anything else.
Every write that reads first runs inside ``write(db)``, which opens the transaction
with BEGIN IMMEDIATE so two requests can never interleave a read and a write.
Which visit changes are allowed when is decided in ``visits``, which calls the ``set_*``
writers below inside such a transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time as system_clock
import unicodedata
from collections.abc import Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout queues writers
    fcntl = None
from sqlite_utils.migrations import Migrations

from patientapp.domain import audit_actions as action_names
from patientapp.domain.records import (
    TIME_TEXT,
    Alert,
    BoardVisit,
    EarlierAcknowledgement,
    SafetyAnswer,
    Visit,
)

try:  # encryption at rest is optional: the `encryption` extra (Linux x86_64 wheels)
    import sqlcipher3
except ImportError:  # pragma: no cover - the test extra installs it
    sqlcipher3 = None

BUSY_TIMEOUT_MS = 10_000
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    # Deleted rows are overwritten with zeros, so purged answers leave no bytes behind
    # (some SQLite builds do this by default; many do not).
    "PRAGMA secure_delete=ON",
)
# Words in SQLite's messages for a write that may work in a moment, and the cause logged.
WRITE_FAILURES = (
    ("locked", "locked"),
    ("busy", "locked"),
    ("full", "full"),
    ("readonly", "read-only"),
    ("disk i/o", "io"),
)


DRIVERS = (sqlite3, sqlcipher3) if sqlcipher3 else (sqlite3,)
# The same errors from either driver (handlers and `except` clauses take these tuples).
OPERATIONAL_ERRORS = tuple(driver.OperationalError for driver in DRIVERS)
INTEGRITY_ERRORS = tuple(driver.IntegrityError for driver in DRIVERS)
DATABASE_ERRORS = tuple(driver.DatabaseError for driver in DRIVERS)
PLAIN_HEADER = b"SQLite format 3\x00"  # an encrypted file starts with random salt instead


class StorageError(RuntimeError):
    """The database cannot be used as configured; the message names the path."""


class NotEncrypted(StorageError):
    """A key is configured but the database is still plain (encrypt-db converts it)."""


def write_failure(error: sqlite3.OperationalError) -> str | None:
    """The cause of a failed write (locked, full, read-only, io), or None for other errors."""
    text = str(error).lower()
    return next((cause for words, cause in WRITE_FAILURES if words in text), None)


migrations = Migrations("patientapp")


@migrations()
def m001_initial(db: Database) -> None:
    statements = [
        """CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            display_name TEXT NOT NULL DEFAULT '',
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'psychiatrist', 'frontdesk')),
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE staff_sessions (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            ended_at TEXT
        )""",
        """CREATE TABLE visits (
            id INTEGER PRIMARY KEY,
            patient_ref TEXT NOT NULL,
            appointment_at TEXT NOT NULL,
            psychiatrist_id INTEGER REFERENCES users(id),
            suggested_language TEXT NOT NULL DEFAULT '',
            answer_language TEXT NOT NULL DEFAULT '',
            token_hash TEXT NOT NULL UNIQUE,
            code_hash TEXT NOT NULL UNIQUE,
            expires_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'invited'
                CHECK (status IN ('invited', 'in_progress', 'submitted', 'reviewed', 'cancelled')),
            questionnaire_version TEXT NOT NULL DEFAULT '',
            safety TEXT CHECK (safety IN ('endorsed', 'not_endorsed', 'declined')),
            current_step INTEGER NOT NULL DEFAULT 0,
            furthest_step INTEGER NOT NULL DEFAULT 0,
            created_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            started_at TEXT,
            last_activity_at TEXT,
            submitted_at TEXT,
            reviewed_at TEXT,
            reviewed_by INTEGER REFERENCES users(id),
            cancelled_at TEXT,
            replaces_visit_id INTEGER REFERENCES visits(id) ON DELETE SET NULL
        )""",
        "CREATE INDEX visits_by_day ON visits (appointment_at)",
        "CREATE INDEX visits_by_ref ON visits (patient_ref, submitted_at)",
        """CREATE TABLE answers (
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            value TEXT NOT NULL,
            in_person INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (visit_id, item_id)
        )""",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            visit_id INTEGER NOT NULL UNIQUE REFERENCES visits(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            acknowledged_at TEXT,
            acknowledged_by INTEGER REFERENCES users(id)
        )""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            user_id INTEGER,
            actor TEXT NOT NULL DEFAULT '',
            action TEXT NOT NULL,
            visit_id INTEGER,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX audit_by_at ON audit_log (at)",
        # The audit log is append-only: the database itself refuses edits and deletes.
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
        """CREATE TABLE failures (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX failures_lookup ON failures (scope, key, at)",
    ]
    for sql in statements:
        db.execute(sql)


@migrations()
def m002_answer_language(db: Database) -> None:
    # Free text is shown exactly as written, tagged with the language it was written in;
    # a patient may switch language mid-way, so the language belongs to each answer.
    db.execute("ALTER TABLE answers ADD COLUMN language TEXT NOT NULL DEFAULT ''")


@migrations()
def m010_safety_history(db: Database) -> None:
    # A worrying safety answer later changed or skipped must still reach the psychiatrist,
    # so every saved value is kept with its time ("declined" for a skip).
    db.execute(
        """CREATE TABLE safety_answers (
            id INTEGER PRIMARY KEY,
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            value TEXT NOT NULL,
            saved_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX safety_answers_by_visit ON safety_answers (visit_id, id)")


@migrations()
def m020_secret_generation(db: Database) -> None:
    # Counts re-issues: a patient session remembers the generation it entered with, so a
    # browser that opened an old link or code loses the visit once new secrets exist.
    db.execute("ALTER TABLE visits ADD COLUMN secret_generation INTEGER NOT NULL DEFAULT 0")


@migrations()
def m030_mfa(db: Database) -> None:
    # A second factor: the TOTP secret (a pending one until a code confirms it), the last
    # time step accepted (so no code works twice), and single-use recovery codes, hashed.
    for sql in (
        "ALTER TABLE users ADD COLUMN totp_secret TEXT",
        "ALTER TABLE users ADD COLUMN totp_pending TEXT",
        "ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN mfa_enrolled_at TEXT",
        """CREATE TABLE recovery_codes (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL,
            used_at TEXT
        )""",
        "CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id)",
    ):
        db.execute(sql)


@migrations()
def m040_drafts(db: Database) -> None:
    # What a patient typed on a step without tapping Next: kept so a reload or another
    # device shows it, never read by the summary; bound to the secret generation it was
    # typed under, and deleted with its visit.
    db.execute(
        """CREATE TABLE drafts (
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            fields TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            PRIMARY KEY (visit_id, step)
        )"""
    )


AUDIT_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)


def _utc_text(value: str, zone: tzinfo | None) -> str:
    moment = datetime.fromisoformat(value)
    return _utc(moment, zone).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@migrations()
def m050_utc_times(db: Database) -> None:
    # Times were stored as naive local time: ambiguous in the hour that repeats when the
    # clocks go back, and wrong once the server's zone differs from the clinic's. Each one
    # becomes UTC with its offset, read as the clinic's Settings zone, else the server's.
    zone = zone_setting(db)
    db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")  # the one sanctioned rewrite
    for table in db.table_names():
        columns = [c.name for c in db[table].columns if _is_time_column(c.name)]
        for column in columns:
            stored = db.conn.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
                f" AND {column} != '' AND {column} NOT LIKE '%+00:00'"
            ).fetchall()
            for (value,) in stored:
                db.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {column} = ?",
                    (_utc_text(value, zone), value),
                )
    db.execute(AUDIT_TRIGGERS[0])
    row = _one(db, "SELECT value FROM settings WHERE key = 'retention_last_run'")
    if row:
        last = json.loads(row["value"])
        if last.get("at") and "+" not in last["at"]:
            last["at"] = _utc_text(last["at"], zone)
            put_setting(db, "retention_last_run", last)


@migrations()
def m051_api_tokens(db: Database) -> None:
    # One bearer token per integration (an EHR interface, a research register): only its
    # SHA-256 is kept, it reads and never writes, and an admin can revoke it.
    db.execute(
        """CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            scope TEXT NOT NULL DEFAULT 'read' CHECK (scope IN ('read')),
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES users(id),
            last_used_at TEXT,
            revoked_at TEXT
        )"""
    )


def connect(
    path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS, key: str | None = None
) -> Database:
    """Open the database with the pragmas every connection needs (SQLCipher with a key)."""
    conn = _driver(key).connect(str(path), timeout=busy_timeout_ms / 1000, check_same_thread=False)
    keyed = ("PRAGMA cipher_log_level = NONE", f"PRAGMA key = {_quoted(key)}") if key else ()
    try:
        for pragma in (*keyed, *PRAGMAS, f"PRAGMA busy_timeout={int(busy_timeout_ms)}"):
            conn.execute(pragma)
    except DATABASE_ERRORS as error:
        conn.close()
        if "not a database" not in str(error):
            raise
        raise _unreadable(Path(path), key) from None
    conn.create_function("ref_key", 1, reference_key, deterministic=True)
    db = Database(conn, execute_plugins=False)
    db._busy_timeout_ms = int(busy_timeout_ms)  # the write queue gives up after it too
    return db


def reference_key(reference: str | None) -> str:
    """A patient reference as it is compared: NFKC, Unicode case folding and no spaces,
    so "ÉLO 12", "élo12" and their full-width forms match, in every script (SQLite's own
    UPPER folds ASCII letters only)."""
    folded = unicodedata.normalize("NFKC", reference or "").casefold()
    return "".join(folded.split())


def _driver(key: str | None):
    if key and sqlcipher3 is None:  # pragma: no cover - the test extra installs it
        raise StorageError(
            "A database key is set but SQLCipher is not installed: install the "
            "sqlcipher3-binary pin from requirements-test.lock (README, Operations)."
        )
    return sqlcipher3 if key else sqlite3


def _quoted(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"  # PRAGMA takes no parameters


def is_plain(path: str | Path) -> bool:
    """Whether the file is an unencrypted SQLite database."""
    with open(path, "rb") as fh:
        return fh.read(len(PLAIN_HEADER)) == PLAIN_HEADER


def _unreadable(path: Path, key: str | None) -> StorageError:
    if key and is_plain(path):
        return NotEncrypted(
            f"The database {path} is not encrypted but a key is set: run "
            "`flask --app app encrypt-db` once to encrypt it, or unset PATIENTAPP_DB_KEY "
            "and PATIENTAPP_DB_KEY_FILE."
        )
    if key:
        return StorageError(
            f"The database {path} cannot be opened with the configured key "
            "(PATIENTAPP_DB_KEY or PATIENTAPP_DB_KEY_FILE): the key is wrong, or the "
            "file is not a patientapp database."
        )
    return StorageError(
        f"The database {path} is encrypted (or not a database): set PATIENTAPP_DB_KEY "
        "or PATIENTAPP_DB_KEY_FILE to its key."
    )


def initialise(path: str | Path, key: str | None = None) -> None:
    """Create the database file if needed and apply pending migrations."""
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_writable(path)
    if not Path(path).exists():
        # Answers are health data: only the app's own user may read the file (SQLite
        # gives the -wal and -shm files the same mode).
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = connect(path, key=key)
    try:
        migrations.apply(db)
    finally:
        db.close()


def check_writable(path: str | Path) -> None:
    """Refuse to start on a database that could be read but never saved to."""
    path = Path(path)
    # SQLite writes the -wal and -shm files beside the database, so the folder counts too.
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"The folder {path.parent} is read-only: the database cannot be saved.")
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(f"The database file {path} is read-only: answers cannot be saved.")


@contextmanager
def write(db: Database):
    """A write transaction that takes the write lock before its first read.

    Writers queue on a file lock beside the database (``<database>.lock``) before
    BEGIN IMMEDIATE, across threads and server processes alike. A writer that waits
    longer than the connection's busy timeout gives up with SQLite's own "database is
    locked", which pages answer with 503 and the typed screen kept: one stuck writer
    never freezes the site. Without fcntl (Windows) SQLite's busy timeout alone queues
    them.

    Nested, it joins the transaction already open on this connection: an action and its
    audit row are written by one ``write`` around both, and commit or roll back together.
    """
    if getattr(db, "_write_depth", 0):
        db._write_depth += 1
        try:
            yield db
        finally:
            db._write_depth -= 1
        return
    with _queued(db):
        db.execute("BEGIN IMMEDIATE")
        db._write_depth = 1
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        else:
            db.commit()
        finally:
            db._write_depth = 0


# Threads of one process queue on a lock of their own (a futex: each goes the moment the
# previous one is done); the one at the front then waits for the file lock, which other
# server processes hold in turn. Both waits end at the busy timeout.
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
FILE_LOCK_NAPS = (0.0002, 0.0005, 0.001, 0.002)  # seconds between tries, then the last


def _thread_lock(path: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(path, threading.Lock())


def _forget_thread_locks() -> None:  # pragma: no cover - runs in a forked child
    global _thread_locks_guard
    _thread_locks.clear()  # a lock held by a thread that did not cross the fork
    _thread_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_thread_locks)


def _locked_out() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("database is locked")


@contextmanager
def _queued(db: Database):
    path = _lock_path(db)
    if path is None:
        yield
        return
    # One open per transaction: flock excludes every other open of the file, so threads
    # of one process queue as well as processes, and nothing is left open afterwards.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a folder turned read-only: SQLite itself names the failure
        yield
        return
    deadline = system_clock.monotonic() + getattr(db, "_busy_timeout_ms", BUSY_TIMEOUT_MS) / 1000
    in_process = _thread_lock(path)
    try:
        if not in_process.acquire(timeout=max(0.0, deadline - system_clock.monotonic())):
            raise _locked_out()
        try:
            _flock_until(fd, deadline)
            yield
        finally:
            in_process.release()
    finally:
        os.close(fd)  # closing releases the file lock


def _flock_until(fd: int, deadline: float) -> None:
    """Take the file lock, or raise "database is locked" at the deadline."""
    naps = iter(FILE_LOCK_NAPS)
    nap = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - system_clock.monotonic()
            if left <= 0:
                raise _locked_out() from None
            nap = next(naps, nap)
            system_clock.sleep(min(nap, left))


def _lock_path(db: Database) -> str | None:
    """The lock file beside the database file (None: in memory, or no fcntl)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    path = getattr(db, "_lock_path", False)
    if path is False:
        file = next(
            (row[2] for row in db.conn.execute("PRAGMA database_list") if row[1] == "main"), ""
        )
        path = db._lock_path = f"{file}.lock" if file else None
    return path


# --- time: stored in UTC with its offset, read back as the clinic's local time ------------
#
# The app thinks in the clinic's local time (naive datetimes, from web.now()); the file
# holds every timestamp as UTC with "+00:00", so no stored time is ambiguous and a change
# of time zone or a DST change never reorders them. The zone is the clinic's Settings zone,
# set per request by web.get_db(); None means the server's own local zone.

_zone: ContextVar[tzinfo | None] = ContextVar("clinic_zone", default=None)
LOCAL_FORMAT = TIME_TEXT


ZONE_NAME_MAX = 64  # the longest IANA name has 32 characters; a longer one is no zone


def zone_named(name: str) -> tzinfo | None:
    """The IANA time zone of this name, or None when there is no such zone."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return None
    if len(name) > ZONE_NAME_MAX:
        return None
    try:
        return ZoneInfo(name)
    # A folder of the zone database ("Europe") is IsADirectoryError, a name too long for
    # the file system OSError, a file that is not a zone ("zone.tab") ValueError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def use_zone(zone: tzinfo | None) -> None:
    """Read and write times in this zone from now on, in this thread."""
    _zone.set(zone)


def current_zone() -> tzinfo | None:
    return _zone.get()


def zone_setting(db: Database) -> tzinfo | None:
    """The zone named in the clinic's settings, read straight from the database."""
    row = _one(db, "SELECT value FROM settings WHERE key = 'time_zone'")
    return zone_named(json.loads(row["value"])) if row else None


def _utc(moment: datetime, zone: tzinfo | None) -> datetime:
    if moment.tzinfo is None:
        # A naive time is the clinic's local time; without a zone, the server's (Python
        # reads the system's rules for that, DST included). `fold` picks the hour that
        # repeats when clocks go back.
        moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    return moment.astimezone(UTC)


def to_utc(moment: datetime) -> datetime:
    """The instant a time names: a naive one is the clinic's local time (see _utc)."""
    return _utc(moment, _zone.get())


def _ts(moment: datetime) -> str:
    """A time as it is stored: UTC with its offset, e.g. 2026-11-25T15:00:00+00:00."""
    return _utc(moment, _zone.get()).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def stamp(moment: datetime) -> str:
    """A time as stored (for a value kept outside a timestamp column, e.g. a setting)."""
    return _ts(moment)


def _day_start(day: date) -> str:
    return _ts(datetime.combine(day, time.min))


def local_text(stored: str) -> str:
    """A stored time as the clinic's local time, in the "YYYY-MM-DD HH:MM:SS" the app
    reads; a time stored without offset (before m050) is already local."""
    # The same few times are read on every request of a visit: each is converted once
    # per zone (and per server zone rules, which time.tzset() may change).
    system_zone = (system_clock.timezone, system_clock.altzone, system_clock.tzname)
    return _local_text(stored, _zone.get(), system_zone)


@lru_cache(maxsize=4096)
def _local_text(stored: str, zone: tzinfo | None, _system_zone: tuple) -> str:
    moment = datetime.fromisoformat(stored)
    if moment.tzinfo is None:
        return stored
    return (moment.astimezone(zone) if zone else moment.astimezone()).strftime(LOCAL_FORMAT)


def local_time(stored: str) -> datetime:
    """A stored time as the clinic's local time, a naive datetime: what local_text
    reads, parsed once (the records' times)."""
    system_zone = (system_clock.timezone, system_clock.altzone, system_clock.tzname)
    return _local_time(stored, _zone.get(), system_zone)


@lru_cache(maxsize=4096)
def _local_time(stored: str, zone: tzinfo | None, system_zone: tuple) -> datetime:
    return datetime.fromisoformat(_local_text(stored, zone, system_zone))


def _is_time_column(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def _rows(db: Database, sql: str, params=(), *, typed: bool = False) -> list[dict]:
    """Rows of a read as dicts, times as the clinic's local time: text, or with `typed`
    naive datetimes (for the records).

    Reads go straight to the connection: sqlite-utils' query() wraps each one in a
    savepoint, which outside a transaction is a transaction of its own per SELECT.
    """
    cursor = db.conn.execute(sql, params)
    names = [column[0] for column in cursor.description]
    times = [i for i, name in enumerate(names) if _is_time_column(name)]
    local = local_time if typed else local_text
    rows = []
    for row in cursor:
        if times:
            row = list(row)
            for i in times:
                if isinstance(row[i], str) and row[i]:
                    row[i] = local(row[i])
        rows.append(dict(zip(names, row, strict=False)))
    return rows


def _one(db: Database, sql: str, params=()) -> dict | None:
    rows = _rows(db, sql, params)
    return rows[0] if rows else None


# --- settings ---------------------------------------------------------------------------


def get_settings(db: Database) -> dict[str, object]:
    return {row["key"]: json.loads(row["value"]) for row in _rows(db, "SELECT * FROM settings")}


def save_settings(db: Database, values: dict[str, object]) -> None:
    with write(db):
        for key, value in values.items():
            put_setting(db, key, value)


def put_setting(db: Database, key: str, value: object) -> None:
    """Write one setting inside the caller's transaction."""
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def delete_setting(db: Database, key: str) -> None:
    db.execute("DELETE FROM settings WHERE key = ?", (key,))


# --- visits and invitations -------------------------------------------------------------


def create_visit(
    db: Database,
    *,
    patient_ref: str,
    appointment_at: datetime,
    psychiatrist_id: int | None,
    suggested_language: str,
    token_hash: str,
    code_hash: str,
    expires_at: datetime,
    created_by: int | None,
    now: datetime,
    replaces_visit_id: int | None = None,
    measures: tuple[str, ...] = (),
) -> int:
    cursor = db.execute(
        """INSERT INTO visits (patient_ref, appointment_at, psychiatrist_id, suggested_language,
               token_hash, code_hash, expires_at, created_by, created_at, replaces_visit_id,
               uuid, measures)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            patient_ref,
            _ts(appointment_at),
            psychiatrist_id,
            suggested_language,
            token_hash,
            code_hash,
            _ts(expires_at),
            created_by,
            _ts(now),
            replaces_visit_id,
            str(uuid4()),  # the visit's FHIR id, stable across backup and restore
            " ".join(measures),
        ),
    )
    return cursor.lastrowid


def _visits(db: Database, sql: str, params=()) -> list[Visit]:
    return [Visit.from_row(row) for row in _rows(db, sql, params, typed=True)]


def _visit(db: Database, sql: str, params=()) -> Visit | None:
    found = _visits(db, sql, params)
    return found[0] if found else None


def get_visit(db: Database, visit_id: int) -> Visit | None:
    return _visit(db, "SELECT * FROM visits WHERE id = ?", (visit_id,))


def visit_by_token_hash(db: Database, token_hash: str) -> Visit | None:
    """The visit a link opens: its own link, or one a message carried."""
    return _visit(
        db,
        """SELECT * FROM visits WHERE token_hash = :t
           OR id = (SELECT visit_id FROM link_tokens WHERE token_hash = :t)""",
        {"t": token_hash},
    )


def visit_by_code_hash(db: Database, code_hash: str) -> Visit | None:
    return _visit(db, "SELECT * FROM visits WHERE code_hash = ?", (code_hash,))


def set_started(
    db: Database,
    visit_id: int,
    *,
    language: str,
    version: str,
    now: datetime,
    first: str | None = None,
    offered: tuple[str, ...] = (),
) -> None:
    """In progress from step 1; `first`: the last question of the first screen, shown now
    unless a further one was shown before; `offered`: the standard measures asked, kept
    from the first start."""
    db.execute(
        """UPDATE visits SET status = 'in_progress', answer_language = ?,
               questionnaire_version = ?, started_at = COALESCE(started_at, ?),
               last_activity_at = ?, current_step = MAX(current_step, 1),
               furthest_step = MAX(furthest_step, 1), reached_item = COALESCE(reached_item, ?),
               measures_offered = COALESCE(measures_offered, ?),
               measures_language = COALESCE(measures_language, ?)
           WHERE id = ?""",
        (language, version, _ts(now), _ts(now), first, " ".join(offered), language, visit_id),
    )


def set_answer_language(db: Database, visit_id: int, language: str) -> None:
    db.execute("UPDATE visits SET answer_language = ? WHERE id = ?", (language, visit_id))


def save_answers(
    db: Database, visit_id: int, answers: dict[str, object], *, now: datetime, language: str
) -> None:
    """Store answers by item id; None removes an answer."""
    updated_at = _ts(now)
    for item_id, value in answers.items():
        if value is None:
            db.execute(
                "DELETE FROM answers WHERE visit_id = ? AND item_id = ?", (visit_id, item_id)
            )
        else:
            encoded = json.dumps(value, ensure_ascii=False)
            # The language changes only when the answer does: re-saving the same
            # words after switching language must not relabel them.
            db.execute(
                """INSERT INTO answers (visit_id, item_id, value, updated_at, language)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(visit_id, item_id) DO UPDATE SET
                       language = CASE WHEN answers.value = excluded.value
                                       THEN answers.language ELSE excluded.language END,
                       value = excluded.value, updated_at = excluded.updated_at""",
                (visit_id, item_id, encoded, updated_at, language),
            )


def set_step(
    db: Database,
    visit_id: int,
    *,
    step: int,
    next_step: int,
    now: datetime,
    safety: str | None,
    reached: str | None = None,
) -> None:
    """Move the patient from step to next_step; a safety outcome replaces the last one;
    `reached`, when given, is the last question of the furthest screen now shown."""
    db.execute(
        """UPDATE visits SET current_step = ?, furthest_step = MAX(furthest_step, ?, ?),
               last_activity_at = ?, safety = COALESCE(?, safety),
               reached_item = COALESCE(?, reached_item) WHERE id = ?""",
        (next_step, step, next_step, _ts(now), safety, reached, visit_id),
    )


def save_draft(
    db: Database,
    visit_id: int,
    step: int,
    generation: int,
    fields: dict[str, list[str]],
    now: datetime,
) -> None:
    """Keep one step's typed fields (form field name -> values), replacing the last draft."""
    db.execute(
        """INSERT INTO drafts (visit_id, step, generation, fields, saved_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(visit_id, step) DO UPDATE SET generation = excluded.generation,
               fields = excluded.fields, saved_at = excluded.saved_at""",
        (visit_id, step, generation, json.dumps(fields, ensure_ascii=False), _ts(now)),
    )


def draft_for(db: Database, visit_id: int, step: int, generation: int) -> dict | None:
    """One step's draft fields, if typed under this secret generation."""
    row = _one(
        db,
        "SELECT fields FROM drafts WHERE visit_id = ? AND step = ? AND generation = ?",
        (visit_id, step, generation),
    )
    return json.loads(row["fields"]) if row else None


def has_draft(db: Database, visit_id: int, generation: int) -> bool:
    return (
        _one(
            db,
            "SELECT 1 AS x FROM drafts WHERE visit_id = ? AND generation = ? LIMIT 1",
            (visit_id, generation),
        )
        is not None
    )


def delete_drafts(db: Database, visit_id: int, step: int | None = None) -> None:
    """Forget one step's draft, or every draft of the visit."""
    if step is None:
        db.execute("DELETE FROM drafts WHERE visit_id = ?", (visit_id,))
    else:
        db.execute("DELETE FROM drafts WHERE visit_id = ? AND step = ?", (visit_id, step))


def answers_for(db: Database, visit_id: int) -> tuple[dict[str, object], set[str]]:
    """A visit's answers by item id, and the items marked for in-person talk."""
    answers, in_person = {}, set()
    for row in _rows(
        db, "SELECT item_id, value, in_person FROM answers WHERE visit_id = ?", (visit_id,)
    ):
        answers[row["item_id"]] = json.loads(row["value"])
        if row["in_person"]:
            in_person.add(row["item_id"])
    return answers, in_person


def answer_languages(db: Database, visit_id: int) -> dict[str, str]:
    """The language each answer was given in (empty when unknown)."""
    return {
        row["item_id"]: row["language"]
        for row in _rows(
            db, "SELECT item_id, language FROM answers WHERE visit_id = ?", (visit_id,)
        )
    }


def set_in_person(db: Database, visit_id: int, in_person: set[str]) -> None:
    """Mark exactly these answers as kept for talking in person."""
    db.execute("UPDATE answers SET in_person = 0 WHERE visit_id = ?", (visit_id,))
    for item_id in in_person:
        db.execute(
            "UPDATE answers SET in_person = 1 WHERE visit_id = ? AND item_id = ?",
            (visit_id, item_id),
        )


def set_submitted(db: Database, visit_id: int, now: datetime) -> None:
    db.execute(
        """UPDATE visits SET status = 'submitted', submitted_at = ?, last_activity_at = ?
           WHERE id = ?""",
        (_ts(now), _ts(now), visit_id),
    )


def raise_alert(db: Database, visit_id: int, now: datetime) -> None:
    """Open a safety alert for the visit, once; a re-raised alert stays as it was."""
    db.execute(
        "INSERT OR IGNORE INTO alerts (visit_id, created_at) VALUES (?, ?)", (visit_id, _ts(now))
    )


def reopen_alert(db: Database, visit_id: int, now: datetime) -> bool:
    """Inside the caller's transaction: the visit's acknowledged alert opened again, raised
    anew at `now` (unacknowledged, not escalated, no on-call e-mail yet), its
    acknowledgement kept in earlier_acknowledgements; False when it was not acknowledged."""
    db.execute(
        """INSERT INTO earlier_acknowledgements
               (visit_id, raised_at, acknowledged_at, acknowledged_by, acknowledged_note,
                escalated_at, mail_sent_at)
           SELECT visit_id, created_at, acknowledged_at, acknowledged_by, acknowledged_note,
                  escalated_at, mail_sent_at
           FROM alerts WHERE visit_id = ? AND acknowledged_at IS NOT NULL""",
        (visit_id,),
    )
    cursor = db.execute(
        """UPDATE alerts SET created_at = ?, acknowledged_at = NULL, acknowledged_by = NULL,
               acknowledged_note = '', escalated_at = NULL, mail_sent_at = NULL,
               mail_attempts = 0, mail_next_at = NULL, mail_error = ''
           WHERE visit_id = ? AND acknowledged_at IS NOT NULL""",
        (_ts(now), visit_id),
    )
    return cursor.rowcount == 1


def earlier_acknowledgements(db: Database, visit_id: int) -> list[EarlierAcknowledgement]:
    """The acknowledgements of the visit's alert before a worse answer opened it again,
    oldest first, each with the name of whoever acknowledged it."""
    return [
        EarlierAcknowledgement(**row)
        for row in _rows(
            db,
            """SELECT e.id, e.visit_id, e.raised_at, e.acknowledged_at, e.acknowledged_note,
                      e.escalated_at, e.mail_sent_at, u.display_name AS acknowledged_by_name
               FROM earlier_acknowledgements e LEFT JOIN users u ON u.id = e.acknowledged_by
               WHERE e.visit_id = ? ORDER BY e.id""",
            (visit_id,),
            typed=True,
        )
    ]


def record_safety_answer(db: Database, visit_id: int, value: str, now: datetime) -> None:
    db.execute(
        "INSERT INTO safety_answers (visit_id, value, saved_at) VALUES (?, ?, ?)",
        (visit_id, value, _ts(now)),
    )


def safety_answers(db: Database, visit_id: int) -> list[SafetyAnswer]:
    """Every safety value saved for the visit, oldest first, with saved_at."""
    return [
        SafetyAnswer(value=row["value"], saved_at=row["saved_at"])
        for row in _rows(
            db,
            "SELECT value, saved_at FROM safety_answers WHERE visit_id = ? ORDER BY id",
            (visit_id,),
            typed=True,
        )
    ]


def alert_for(db: Database, visit_id: int) -> Alert | None:
    rows = _rows(
        db,
        """SELECT a.*, u.display_name AS acknowledged_by_name FROM alerts a
                       LEFT JOIN users u ON u.id = a.acknowledged_by WHERE a.visit_id = ?""",
        (visit_id,),
        typed=True,
    )
    return Alert.from_row(rows[0]) if rows else None


# --- failures (rate limits) ---------------------------------------------------------------
#
# The SQL beneath throttle.py, the only module that counts or writes these rows (the purge
# below and forget_trusted_device only delete them). The table keeps tries being checked,
# their failures, marks (a lock began, a visit was opened from an address) and API
# requests, each under its scope.


def count_failures(db: Database, scope: str, key: str, since: datetime) -> int:
    row = _one(
        db,
        "SELECT COUNT(*) AS n FROM failures WHERE scope = ? AND key = ? AND at >= ?",
        (scope, key, _ts(since)),
    )
    return row["n"]


def failure_times(db: Database, scope: str, key: str, since: datetime) -> list[datetime]:
    """When each failure under (scope, key) since `since` happened, oldest first."""
    rows = _rows(
        db,
        "SELECT at FROM failures WHERE scope = ? AND key = ? AND at >= ? ORDER BY at",
        (scope, key, _ts(since)),
    )
    return [datetime.fromisoformat(row["at"]) for row in rows]  # local, like the clock


def clear_failures(db: Database, scope: str, key: str) -> None:
    db.execute("DELETE FROM failures WHERE scope = ? AND key = ?", (scope, key))


def prune_failures(db: Database, before: datetime) -> None:
    db.execute("DELETE FROM failures WHERE at < ?", (_ts(before),))


def record_attempts(db: Database, pairs: list[tuple[str, str]], now: datetime) -> list[int]:
    """A row under each (scope, key) at `now`, e.g. a try counted before it is checked, so
    concurrent tries see each other; the new rows' ids, for delete_failure_rows should the
    try succeed."""
    with write(db):
        return [
            db.execute(
                "INSERT INTO failures (scope, key, at) VALUES (?, ?, ?)", (scope, key, _ts(now))
            ).lastrowid
            for scope, key in pairs
        ]


def delete_failure_rows(db: Database, ids: list[int]) -> None:
    """Take back the rows of an attempt that succeeded (a right code is no failure)."""
    for row_id in ids:
        db.execute("DELETE FROM failures WHERE id = ?", (row_id,))


def prune_scope(db: Database, scope: str, before: datetime) -> None:
    """Forget one scope's rows older than `before` (e.g. where visits were opened)."""
    db.execute("DELETE FROM failures WHERE scope = ? AND at < ?", (scope, _ts(before)))


@migrations()
def m060_trusted_devices(db: Database) -> None:
    # Browsers that completed a staff sign-in (OWASP's device cookies): the cookie holds a
    # random nonce, only its SHA-256 is kept, bound to the account it signed in.
    db.execute(
        """CREATE TABLE trusted_devices (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        )"""
    )


@migrations()
def m070_acknowledged_note(db: Database) -> None:
    # An optional one-line note by whoever acknowledged a safety alert ("spoke with the
    # patient at the desk"), shown with the acknowledgement; staff words, never the patient's.
    db.execute("ALTER TABLE alerts ADD COLUMN acknowledged_note TEXT NOT NULL DEFAULT ''")


@migrations()
def m080_alert_escalation(db: Database) -> None:
    # An alert nobody acknowledged in time is escalated: when the server's loop first saw
    # it so, and the one e-mail to the on-call address (no patient detail) with its tries:
    # sent, how many attempts, when the next may start, and the relay's last refusal.
    for column in (
        "escalated_at TEXT",
        "mail_sent_at TEXT",
        "mail_attempts INTEGER NOT NULL DEFAULT 0",
        "mail_next_at TEXT",
        "mail_error TEXT NOT NULL DEFAULT ''",
    ):
        db.execute(f"ALTER TABLE alerts ADD COLUMN {column}")


@migrations()
def m090_invitation_messages(db: Database) -> None:
    # Invitations sent by e-mail or text, and one reminder. A patient's contact details
    # live only in `contacts`, one row per visit, deleted once the visit is sent,
    # cancelled or expired (an opt-out keeps the row with both emptied). `messages` holds
    # what is due and what became of it, never an address; `link_tokens` are the extra
    # links those messages carried (only their SHA-256), each opening its visit.
    statements = [
        """CREATE TABLE contacts (
            visit_id INTEGER PRIMARY KEY REFERENCES visits(id) ON DELETE CASCADE,
            email TEXT NOT NULL DEFAULT '',
            phone TEXT NOT NULL DEFAULT '',
            opted_out_at TEXT
        )""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('invitation', 'reminder')),
            channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
            due_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'sent', 'failed', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT,
            sent_at TEXT,
            answer TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX messages_due ON messages (state, due_at)",
        "CREATE INDEX messages_by_visit ON messages (visit_id)",
        """CREATE TABLE link_tokens (
            token_hash TEXT PRIMARY KEY,
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            opened_at TEXT
        )""",
        "CREATE INDEX link_tokens_by_visit ON link_tokens (visit_id)",
    ]
    for sql in statements:
        db.execute(sql)


# What the FHIR API exports about a visit changes: the change sequence goes up by one and
# the change time (microseconds since 1970, UTC) moves on, never backwards, in the same
# transaction as the change (CHANGE_BUMP: `{visit}` the visit's id, `{moment}` a stored
# time of the change, e.g. NEW.submitted_at). Sequence order is commit order, so a reader
# paging by sequence never misses a change committed while it reads.
CHANGE_BUMP = """
    UPDATE change_clock SET seq = seq + 1,
        us = MAX(us + 1, COALESCE(CAST(strftime('%s', {moment}) AS INTEGER) * 1000000, 0))
        WHERE id = 1;
    UPDATE visits SET change_seq = (SELECT seq FROM change_clock WHERE id = 1),
        changed_us = (SELECT us FROM change_clock WHERE id = 1) WHERE id = {visit};"""
# The visit columns the FHIR resources read (exports/fhir.py); a change to any of them is
# a change of the exported resource.
EXPORTED_COLUMNS = (
    "status",
    "patient_ref",
    "appointment_at",
    "questionnaire_version",
    "answer_language",
    "safety",
    "furthest_step",
    "started_at",
    "last_activity_at",
    "submitted_at",
    "reviewed_at",
    "cancelled_at",
)
_VISIT_LATEST = """MAX(COALESCE(NEW.last_activity_at, ''), COALESCE(NEW.submitted_at, ''),
    COALESCE(NEW.reviewed_at, ''), COALESCE(NEW.cancelled_at, ''),
    COALESCE(NEW.started_at, ''))"""
_ACTIVITY = "(SELECT last_activity_at FROM visits WHERE id = {visit})"


def _bump(visit: str, moment: str) -> str:
    return CHANGE_BUMP.format(visit=visit, moment=moment)


@migrations()
def m100_fhir_changes(db: Database) -> None:
    # Issue 22. Each visit gets a random UUID (its FHIR id: a row id is reused once a
    # backup is restored and visits are added again), a change sequence and a change
    # time, kept by triggers on every change of what the FHIR resources read, so an
    # integration engine pages by sequence and never misses or repeats a change. API
    # tokens can expire, be rotated, and (off by default) read visits still in progress.
    for sql in (
        "ALTER TABLE visits ADD COLUMN uuid TEXT",
        "ALTER TABLE visits ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE visits ADD COLUMN changed_us INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE change_clock (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            us INTEGER NOT NULL
        )""",
        "ALTER TABLE api_tokens ADD COLUMN expires_at TEXT",
        "ALTER TABLE api_tokens ADD COLUMN in_progress INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_tokens ADD COLUMN rotated_at TEXT",
    ):
        db.execute(sql)
    for (visit_id,) in db.execute("SELECT id FROM visits").fetchall():
        db.execute("UPDATE visits SET uuid = ? WHERE id = ?", (str(uuid4()), visit_id))
    # Existing visits in the order of their last change, each one microsecond apart.
    seq, last = 0, 0
    latest = _VISIT_LATEST.replace("NEW.", "")
    for visit_id, moment in db.execute(
        f"SELECT id, {latest} AS latest FROM visits WHERE started_at IS NOT NULL"
        " ORDER BY latest, id"
    ).fetchall():
        seq += 1
        last = max(last + 1, int(datetime.fromisoformat(moment).timestamp()) * 1_000_000)
        db.execute(
            "UPDATE visits SET change_seq = ?, changed_us = ? WHERE id = ?", (seq, last, visit_id)
        )
    db.execute("INSERT INTO change_clock (id, seq, us) VALUES (1, ?, ?)", (seq, last))
    db.execute("CREATE UNIQUE INDEX visits_by_uuid ON visits (uuid)")
    db.execute("CREATE INDEX visits_by_change ON visits (change_seq)")
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in EXPORTED_COLUMNS)
    triggers = [
        # A visit inserted without one (create_visit gives one) gets a random UUID.
        """CREATE TRIGGER visits_uuid AFTER INSERT ON visits WHEN NEW.uuid IS NULL
           BEGIN UPDATE visits SET uuid = lower(hex(randomblob(4)) || '-' ||
               hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' ||
               substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
               || '-' || hex(randomblob(6))) WHERE id = NEW.id; END""",
        f"""CREATE TRIGGER visits_changed AFTER UPDATE OF {", ".join(EXPORTED_COLUMNS)}
           ON visits WHEN NEW.started_at IS NOT NULL AND ({changed})
           BEGIN {_bump("NEW.id", _VISIT_LATEST)} END""",
        f"""CREATE TRIGGER answers_added AFTER INSERT ON answers
           BEGIN {_bump("NEW.visit_id", "NEW.updated_at")} END""",
        f"""CREATE TRIGGER answers_changed AFTER UPDATE OF value, in_person, language
           ON answers WHEN NEW.value IS NOT OLD.value OR NEW.in_person IS NOT OLD.in_person
               OR NEW.language IS NOT OLD.language
           BEGIN {_bump("NEW.visit_id", _ACTIVITY.format(visit="NEW.visit_id"))} END""",
        f"""CREATE TRIGGER answers_removed AFTER DELETE ON answers
           WHEN EXISTS (SELECT 1 FROM visits WHERE id = OLD.visit_id)
           BEGIN {_bump("OLD.visit_id", _ACTIVITY.format(visit="OLD.visit_id"))} END""",
        f"""CREATE TRIGGER safety_answers_added AFTER INSERT ON safety_answers
           BEGIN {_bump("NEW.visit_id", "NEW.saved_at")} END""",
    ]
    for sql in triggers:
        db.execute(sql)


@migrations()
def m101_fhir_alert_changes(db: Database) -> None:
    # Issue 22, part 7: the safety alert's Flag and the one page (DocumentReference) read
    # the visit's alert; raising it and acknowledging it (who, when, the note) change them.
    acknowledged = ("acknowledged_at", "acknowledged_by", "acknowledged_note")
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in acknowledged)
    for sql in (
        f"""CREATE TRIGGER alerts_added AFTER INSERT ON alerts
           BEGIN {_bump("NEW.visit_id", "NEW.created_at")} END""",
        f"""CREATE TRIGGER alerts_acknowledged AFTER UPDATE OF {", ".join(acknowledged)}
           ON alerts WHEN {changed}
           BEGIN {_bump("NEW.visit_id", "COALESCE(NEW.acknowledged_at, NEW.created_at)")} END""",
    ):
        db.execute(sql)


@migrations()
def m102_health_probe(db: Database) -> None:
    # Issue 27, part 3: one row that GET /healthz rewrites to prove the database takes a
    # write; never a patient table.
    db.execute(
        "CREATE TABLE health_probe (id INTEGER PRIMARY KEY CHECK (id = 1), beats INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO health_probe (id, beats) VALUES (1, 0)")


@migrations()
def m103_reached_item(db: Database) -> None:
    # Issue 24 (CONTENT.md v3, "reached is per screen"): the last question of the furthest
    # screen the patient was shown. Items after it are "not reached", never "skipped",
    # even within a section already begun; a visit from before reads by section.
    db.execute("ALTER TABLE visits ADD COLUMN reached_item TEXT")


# The sections before the safety question in 2026.3, when the two standard measures came
# in as sections 8 and 9 just before it (m104).
SECTIONS_BEFORE_SAFETY_2026_3 = 7


@migrations()
def m104_measures(db: Database) -> None:
    # Issue 25 (CONTENT.md v3, "Optional validated measures"): the standard measures an
    # invitation includes (instrument ids, space-separated, as staff chose them), and
    # those offered once the patient started (NULL before: only the language they start
    # in decides, once, so a later language switch never unasks what was answered).
    db.execute("ALTER TABLE visits ADD COLUMN measures TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE visits ADD COLUMN measures_offered TEXT")
    db.execute("ALTER TABLE visits ADD COLUMN measures_language TEXT")  # that start's
    # GAD-7 and PHQ-9 are now steps 8 and 9, so the safety question is step 10 and the
    # review 11: a visit on its way keeps its place, and its drafts their step.
    # Only a visit on its way shows its step (FHIR's progress): a sent or cancelled one
    # is renumbered without counting as a change, so no integration reads it again.
    first = SECTIONS_BEFORE_SAFETY_2026_3 + 1
    [(trigger,)] = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'visits_changed'"
    ).fetchall()
    db.execute("DROP TRIGGER visits_changed")
    for done in (True, False):
        if not done:
            db.execute(trigger)
        where = (
            "status NOT IN ('invited', 'in_progress')"
            if done
            else "status IN ('invited', 'in_progress')"
        )
        for column in ("current_step", "furthest_step"):
            db.execute(
                f"UPDATE visits SET {column} = {column} + 2 WHERE {column} >= ? AND {where}",
                (first,),
            )
    db.execute("UPDATE drafts SET step = step + 2 WHERE step >= ?", (first,))
    # Each measure total of a sent visit, written when it is sent (its answers no longer
    # change): what the FHIR Observation search counts and pages by, like safety_answers.
    db.execute(
        """CREATE TABLE measure_totals (
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            instrument TEXT NOT NULL,
            total INTEGER NOT NULL,
            PRIMARY KEY (visit_id, instrument)
        )"""
    )


@migrations()
def m105_provider_sign_in(db: Database) -> None:
    # Issue 28: staff sign in with the clinic's OpenID Provider. An identity (the
    # provider's issuer and subject) is bound to one of our accounts, never made one; a
    # link an admin creates binds it at its first use. A session remembers which way it
    # was signed in, so signing out also ends the provider's session.
    db.execute(
        """CREATE TABLE staff_identities (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            linked_at TEXT NOT NULL,
            linked_how TEXT NOT NULL,
            last_sign_in_at TEXT,
            UNIQUE (issuer, subject),
            UNIQUE (user_id, issuer)
        )"""
    )
    db.execute(
        """CREATE TABLE identity_links (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES users(id),
            expires_at TEXT NOT NULL,
            used_at TEXT
        )"""
    )
    db.execute("ALTER TABLE staff_sessions ADD COLUMN provider TEXT")  # its issuer
    # 1 when the provider's second factor stood in for ours (Settings allow it).
    db.execute("ALTER TABLE staff_sessions ADD COLUMN provider_mfa INTEGER NOT NULL DEFAULT 0")


@migrations()
def m106_logout_hint(db: Database) -> None:
    # The ID token a session was signed in with at the clinic's sign-in service, sent back
    # as id_token_hint when it signs out there (Okta and Duende IdentityServer need it).
    # Kept only while the session lasts: ending it clears the column.
    db.execute("ALTER TABLE staff_sessions ADD COLUMN id_token TEXT")


@migrations()
def m107_earlier_acknowledgements(db: Database) -> None:
    # A safety answer worse than the one an acknowledgement covered opens the alert again
    # (raised anew, not acknowledged, not escalated, no e-mail yet); the acknowledgement
    # it had is kept here, so the summary still says who checked on the patient and when.
    db.execute(
        """CREATE TABLE earlier_acknowledgements (
            id INTEGER PRIMARY KEY,
            visit_id INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
            raised_at TEXT NOT NULL,
            acknowledged_at TEXT NOT NULL,
            acknowledged_by INTEGER REFERENCES users(id),
            acknowledged_note TEXT NOT NULL DEFAULT '',
            escalated_at TEXT,
            mail_sent_at TEXT
        )"""
    )
    db.execute(
        "CREATE INDEX earlier_acknowledgements_by_visit ON earlier_acknowledgements (visit_id)"
    )


def probe(db: Database, timeout_ms: int) -> None:
    """Read and write the database once, waiting at most timeout_ms for the write lock
    (the queue and SQLite's busy timeout alike); raises what SQLite raises."""
    kept = getattr(db, "_busy_timeout_ms", BUSY_TIMEOUT_MS)
    db.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
    db._busy_timeout_ms = int(timeout_ms)
    try:
        with write(db):
            db.execute("SELECT beats FROM health_probe WHERE id = 1").fetchone()
            db.execute("UPDATE health_probe SET beats = beats + 1 WHERE id = 1")
    finally:
        db._busy_timeout_ms = kept
        db.execute(f"PRAGMA busy_timeout={int(kept)}")


def add_trusted_device(db: Database, device_hash: str, user_id: int, now: datetime) -> None:
    db.execute(
        "INSERT INTO trusted_devices (id, user_id, created_at) VALUES (?, ?, ?)",
        (device_hash, user_id, _ts(now)),
    )


def trusted_device(db: Database, device_hash: str) -> dict | None:
    return _one(db, "SELECT * FROM trusted_devices WHERE id = ?", (device_hash,))


def forget_trusted_device(db: Database, device_hash: str) -> None:
    db.execute("DELETE FROM trusted_devices WHERE id = ?", (device_hash,))
    db.execute("DELETE FROM failures WHERE scope = 'login-device' AND key = ?", (device_hash,))


def prune_trusted_devices(db: Database, before: datetime) -> None:
    db.execute("DELETE FROM trusted_devices WHERE created_at < ?", (_ts(before),))


# --- users and staff sessions ------------------------------------------------------------


def count_users(db: Database) -> int:
    return _one(db, "SELECT COUNT(*) AS n FROM users")["n"]


def create_user(
    db: Database, *, email: str, display_name: str, password_hash: str, role: str, now: datetime
) -> int:
    cursor = db.execute(
        """INSERT INTO users (email, display_name, password_hash, role, created_at)
           VALUES (?, ?, ?, ?, ?)""",
        (email.strip(), display_name.strip(), password_hash, role, _ts(now)),
    )
    return cursor.lastrowid


def get_user(db: Database, user_id: int) -> dict | None:
    return _one(db, "SELECT * FROM users WHERE id = ?", (user_id,))


def user_by_email(db: Database, email: str) -> dict | None:
    return _one(db, "SELECT * FROM users WHERE email = ?", (email.strip(),))


def user_by_email_any_case(db: Database, email: str) -> dict | None:
    """The one account with this address whatever its case (None if none, or several)."""
    rows = _rows(db, "SELECT * FROM users WHERE lower(email) = lower(?)", (email.strip(),))
    return rows[0] if len(rows) == 1 else None


def list_users(db: Database) -> list[dict]:
    return _rows(db, "SELECT * FROM users ORDER BY active DESC, display_name, email")


def psychiatrists(db: Database) -> list[dict]:
    return _rows(
        db,
        "SELECT id, display_name, email FROM users WHERE role = 'psychiatrist'"
        " AND active = 1 ORDER BY display_name, email",
    )


def update_user(db: Database, user_id: int, **fields) -> None:
    allowed = {"display_name", "role", "active", "password_hash"}
    assignments = {k: v for k, v in fields.items() if k in allowed}
    if not assignments:
        return
    sql = ", ".join(f"{key} = ?" for key in assignments)
    db.execute(f"UPDATE users SET {sql} WHERE id = ?", (*assignments.values(), user_id))


def start_staff_session(
    db: Database,
    session_hash: str,
    user_id: int,
    now: datetime,
    provider: str | None = None,
    provider_mfa: bool = False,
    id_token: str | None = None,
) -> None:
    """`provider`: the issuer it was signed in with, None for a password; `provider_mfa`:
    the provider's second factor stood in for ours; `id_token`: the provider's ID token,
    for its sign-out."""
    db.execute(
        "INSERT INTO staff_sessions (id, user_id, created_at, last_seen_at, provider,"
        " provider_mfa, id_token) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_hash, user_id, _ts(now), _ts(now), provider, int(provider_mfa), id_token or None),
    )


def forget_stale_id_tokens(db: Database, now: datetime, config: Mapping) -> None:
    """The ID tokens of sessions past their absolute or idle timeout (`config`'s
    STAFF_ABSOLUTE_HOURS, STAFF_IDLE_MINUTES) forgotten: such a session, never signed
    out, ends only when its browser comes back. At every sign-in, and hourly."""
    started_before = now - timedelta(hours=config["STAFF_ABSOLUTE_HOURS"])
    seen_before = now - timedelta(minutes=config["STAFF_IDLE_MINUTES"])
    db.execute(
        "UPDATE staff_sessions SET id_token = NULL WHERE id_token IS NOT NULL"
        " AND (created_at < ? OR last_seen_at < ?)",
        (_ts(started_before), _ts(seen_before)),
    )


def logout_hint(db: Database, session_hash: str) -> str | None:
    """The ID token an open session was signed in with at the provider, if any."""
    row = db.execute(
        "SELECT id_token FROM staff_sessions WHERE id = ? AND ended_at IS NULL", (session_hash,)
    ).fetchone()
    return row[0] if row else None


# --- identities at the clinic's OpenID Provider ------------------------------------------


def identity_user(db: Database, issuer: str, subject: str) -> dict | None:
    """The account bound to this identity, with the binding's id as `identity_id`."""
    return _one(
        db,
        """SELECT u.*, i.id AS identity_id FROM staff_identities i
           JOIN users u ON u.id = i.user_id WHERE i.issuer = ? AND i.subject = ?""",
        (issuer, subject),
    )


def user_identities(db: Database, user_id: int) -> list[dict]:
    return _rows(
        db, "SELECT * FROM staff_identities WHERE user_id = ? ORDER BY linked_at", (user_id,)
    )


def link_identity(
    db: Database, user_id: int, issuer: str, subject: str, how: str, now: datetime
) -> None:
    db.execute(
        "INSERT INTO staff_identities (user_id, issuer, subject, linked_at, linked_how)"
        " VALUES (?, ?, ?, ?, ?)",
        (user_id, issuer, subject, _ts(now), how),
    )


def unlink_identities(db: Database, user_id: int) -> int:
    """Every identity bound to the account; how many there were."""
    return db.execute("DELETE FROM staff_identities WHERE user_id = ?", (user_id,)).rowcount


def identity_signed_in(db: Database, identity_id: int, now: datetime) -> None:
    db.execute(
        "UPDATE staff_identities SET last_sign_in_at = ? WHERE id = ?", (_ts(now), identity_id)
    )


def add_identity_link(
    db: Database, link_hash: str, user_id: int, created_by: int, now: datetime, expires: datetime
) -> None:
    """A new link for the account; any earlier unused one stops working."""
    db.execute("DELETE FROM identity_links WHERE user_id = ? AND used_at IS NULL", (user_id,))
    db.execute(
        "INSERT INTO identity_links (id, user_id, created_at, created_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (link_hash, user_id, _ts(now), created_by, _ts(expires)),
    )


def identity_link(db: Database, link_hash: str, now: datetime) -> dict | None:
    """An unused, unexpired link, with its account's e-mail and state."""
    return _one(
        db,
        """SELECT l.*, u.email, u.active FROM identity_links l JOIN users u ON u.id = l.user_id
           WHERE l.id = ? AND l.used_at IS NULL AND l.expires_at > ?""",
        (link_hash, _ts(now)),
    )


def open_identity_link(db: Database, user_id: int, now: datetime) -> dict | None:
    return _one(
        db,
        "SELECT * FROM identity_links WHERE user_id = ? AND used_at IS NULL AND expires_at > ?",
        (user_id, _ts(now)),
    )


def use_identity_link(db: Database, link_hash: str, now: datetime) -> bool:
    """Mark the link used; False when another request used it first."""
    cursor = db.execute(
        "UPDATE identity_links SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?",
        (_ts(now), link_hash, _ts(now)),
    )
    return cursor.rowcount == 1


def staff_session(db: Database, session_hash: str) -> dict | None:
    return _one(
        db,
        """SELECT s.*, u.email, u.display_name, u.role, u.active, u.mfa_enrolled_at
                       FROM staff_sessions s JOIN users u ON u.id = s.user_id
                       WHERE s.id = ? AND s.ended_at IS NULL""",
        (session_hash,),
    )


def touch_staff_session(db: Database, session_hash: str, now: datetime) -> None:
    db.execute("UPDATE staff_sessions SET last_seen_at = ? WHERE id = ?", (_ts(now), session_hash))


def end_staff_session(db: Database, session_hash: str, now: datetime) -> None:
    db.execute(
        "UPDATE staff_sessions SET ended_at = ?, id_token = NULL WHERE id = ? AND ended_at IS NULL",
        (_ts(now), session_hash),
    )


def end_other_sessions(db: Database, user_id: int, keep: str, now: datetime) -> None:
    """End every session of the user but the one with id hash ``keep``."""
    db.execute(
        "UPDATE staff_sessions SET ended_at = ?, id_token = NULL"
        " WHERE user_id = ? AND id != ? AND ended_at IS NULL",
        (_ts(now), user_id, keep),
    )


def end_user_sessions(db: Database, user_id: int, now: datetime) -> None:
    """Every session of the account ends, and no browser stays trusted for it (a new
    password, a reset second factor or a deactivation starts its trust again)."""
    db.execute(
        "UPDATE staff_sessions SET ended_at = ?, id_token = NULL"
        " WHERE user_id = ? AND ended_at IS NULL",
        (_ts(now), user_id),
    )
    forget_trusted_devices(db, user_id)


def forget_trusted_devices(db: Database, user_id: int) -> None:
    db.execute("DELETE FROM trusted_devices WHERE user_id = ?", (user_id,))


# --- second factor -----------------------------------------------------------------------


def set_totp_pending(db: Database, user_id: int, secret: str) -> None:
    db.execute("UPDATE users SET totp_pending = ? WHERE id = ?", (secret, user_id))


def enrol_totp(
    db: Database, user_id: int, *, step: int, code_hashes: list[str], now: datetime
) -> None:
    """Make the pending secret the account's own, with a fresh set of recovery codes."""
    with write(db):
        db.execute(
            """UPDATE users SET totp_secret = totp_pending, totp_pending = NULL,
                   totp_last_step = ?, mfa_enrolled_at = ? WHERE id = ?""",
            (step, _ts(now), user_id),
        )
        db.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
        for code_hash in code_hashes:
            db.execute(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
                (user_id, code_hash),
            )


def use_totp_step(db: Database, user_id: int, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used already."""
    cursor = db.execute(
        "UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
        (step, user_id, step),
    )
    return cursor.rowcount == 1


def unused_recovery_codes(db: Database, user_id: int) -> list[dict]:
    return _rows(
        db,
        "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,),
    )


def use_recovery_code(db: Database, code_id: int, now: datetime) -> bool:
    cursor = db.execute(
        "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL",
        (_ts(now), code_id),
    )
    return cursor.rowcount == 1


def reset_mfa(db: Database, user_id: int) -> None:
    """Forget the account's second factor and its recovery codes."""
    with write(db):
        db.execute(
            """UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0,
                   mfa_enrolled_at = NULL WHERE id = ?""",
            (user_id,),
        )
        db.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))


# --- audit log ---------------------------------------------------------------------------


def audit(
    db: Database,
    action: str,
    *,
    now: datetime,
    user_id: int | None = None,
    actor: str = "",
    visit_id: int | None = None,
    detail: str = "",
) -> None:
    """Append one entry. Never pass answer content: who, what, which visit, when."""
    action_names.check(action)
    db.execute(
        "INSERT INTO audit_log (at, user_id, actor, action, visit_id, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (_ts(now), user_id, actor, action, visit_id, detail),
    )


def audit_entries(
    db: Database,
    *,
    action: str = "",
    user_id: int | None = None,
    visit_id: int | None = None,
    since: str = "",
    until: str = "",
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    where, params = ["1 = 1"], []
    if action:
        where.append("a.action = ?")
        params.append(action)
    if user_id is not None:
        where.append("a.user_id = ?")
        params.append(user_id)
    if visit_id is not None:
        where.append("a.visit_id = ?")
        params.append(visit_id)
    if since:
        where.append("a.at >= ?")
        params.append(_ts(datetime.fromisoformat(since)))
    if until:
        where.append("a.at < ?")
        params.append(_ts(datetime.fromisoformat(until)))
    sql = f"""SELECT a.*, u.email AS user_email FROM audit_log a
              LEFT JOIN users u ON u.id = a.user_id
              WHERE {" AND ".join(where)} ORDER BY a.id DESC LIMIT ? OFFSET ?"""
    return _rows(db, sql, (*params, limit, offset))


def audit_actions(db: Database) -> list[str]:
    return [row["action"] for row in _rows(db, "SELECT DISTINCT action FROM audit_log ORDER BY 1")]


# --- the staff board and summaries -------------------------------------------------------


# A board line: the visit, its psychiatrist, and its alert's columns named alert_*.
_BOARD_COLUMNS = """v.*, p.display_name AS psychiatrist_name, p.email AS psychiatrist_email,
    a.id AS alert_id, a.visit_id AS alert_visit_id, a.created_at AS alert_created_at,
    a.acknowledged_at AS alert_acknowledged_at, a.acknowledged_by AS alert_acknowledged_by,
    a.acknowledged_note AS alert_acknowledged_note,
    a.escalated_at AS alert_escalated_at, a.mail_sent_at AS alert_mail_sent_at,
    a.mail_attempts AS alert_mail_attempts, a.mail_next_at AS alert_mail_next_at,
    a.mail_error AS alert_mail_error,
    ack.display_name AS alert_acknowledged_by_name"""
_BOARD_JOINS = """LEFT JOIN users p ON p.id = v.psychiatrist_id
    LEFT JOIN users ack ON ack.id = a.acknowledged_by"""


def _board_visits(db: Database, sql: str, params=()) -> list[BoardVisit]:
    return [
        BoardVisit(
            visit=Visit.from_row(row),
            psychiatrist_name=row["psychiatrist_name"],
            psychiatrist_email=row["psychiatrist_email"],
            alert=Alert.from_row(row, prefix="alert_"),
        )
        for row in _rows(db, sql, params, typed=True)
    ]


def visits_for_day(db: Database, day: str) -> list[BoardVisit]:
    """Visits whose appointment falls on day (YYYY-MM-DD), with alert and names."""
    return _board_visits(
        db,
        f"""SELECT {_BOARD_COLUMNS}
           FROM visits v
           LEFT JOIN alerts a ON a.visit_id = v.id
           {_BOARD_JOINS}
           WHERE v.appointment_at >= ? AND v.appointment_at < ?
           ORDER BY v.appointment_at, v.id""",
        (
            _day_start(date.fromisoformat(day)),
            _day_start(date.fromisoformat(day) + timedelta(days=1)),
        ),
    )


def open_alerts(db: Database) -> list[BoardVisit]:
    """Every unacknowledged safety alert, newest first, whatever the day, each with its
    visit (whose ``alert`` it is)."""
    return _board_visits(
        db,
        f"""SELECT {_BOARD_COLUMNS}
           FROM alerts a JOIN visits v ON v.id = a.visit_id
           {_BOARD_JOINS}
           WHERE a.acknowledged_at IS NULL AND v.status != 'cancelled'
           ORDER BY a.created_at DESC""",
    )


def acknowledge_alert(
    db: Database, visit_id: int, user_id: int, now: datetime, note: str = ""
) -> bool:
    cursor = db.execute(
        """UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?, acknowledged_note = ?
           WHERE visit_id = ? AND acknowledged_at IS NULL""",
        (_ts(now), user_id, note, visit_id),
    )
    return cursor.rowcount == 1


def set_cancelled(db: Database, visit_id: int, now: datetime) -> None:
    db.execute(
        "UPDATE visits SET status = 'cancelled', cancelled_at = ? WHERE id = ?",
        (_ts(now), visit_id),
    )


def set_secrets(
    db: Database, visit_id: int, token_hash: str, code_hash: str, expires_at: datetime
) -> None:
    """A new link and code: the old ones stop working (with every browser that entered by
    them), answers stay."""
    db.execute(
        "UPDATE visits SET token_hash = ?, code_hash = ?, expires_at = ?, "
        "secret_generation = secret_generation + 1 WHERE id = ?",
        (token_hash, code_hash, _ts(expires_at), visit_id),
    )
    db.execute("DELETE FROM link_tokens WHERE visit_id = ?", (visit_id,))


def set_reviewed(db: Database, visit_id: int, user_id: int, now: datetime) -> None:
    db.execute(
        "UPDATE visits SET status = 'reviewed', reviewed_at = ?, reviewed_by = ? WHERE id = ?",
        (_ts(now), user_id, visit_id),
    )


def previous_visit(db: Database, visit: Visit) -> Visit | None:
    """The same patient reference's last sent visit before this one.

    References are compared ignoring case in every script and spaces ("rb 12" is
    "RB12", "ÉLO12" is "élo12"): staff type them by hand (reference_key).
    """
    return _visit(
        db,
        """SELECT * FROM visits
                     WHERE ref_key(patient_ref) = ref_key(?)
                       AND id != ?
                       AND status IN ('submitted', 'reviewed') AND submitted_at < ?
                       ORDER BY submitted_at DESC LIMIT 1""",
        (
            visit.patient_ref,
            visit.id,
            _ts(visit.submitted_at) if visit.submitted_at else "9999",
        ),
    )


def save_measure_totals(db: Database, visit_id: int, totals: dict[str, int]) -> None:
    """Keep a sent visit's measure totals (instrument id -> total)."""
    db.execute("DELETE FROM measure_totals WHERE visit_id = ?", (visit_id,))
    for instrument, total in totals.items():
        db.execute(
            "INSERT INTO measure_totals (visit_id, instrument, total) VALUES (?, ?, ?)",
            (visit_id, instrument, total),
        )


def earlier_visits(db: Database, visit: Visit, limit: int = 5) -> list[Visit]:
    """The same patient reference's sent visits before this one, newest first (at most
    ``limit``): the trend of its standard measures. References match as in
    previous_visit."""
    return _visits(
        db,
        """SELECT * FROM visits
                     WHERE ref_key(patient_ref) = ref_key(?)
                       AND id != ?
                       AND status IN ('submitted', 'reviewed') AND submitted_at < ?
                       ORDER BY submitted_at DESC LIMIT ?""",
        (
            visit.patient_ref,
            visit.id,
            _ts(visit.submitted_at) if visit.submitted_at else "9999",
            limit,
        ),
    )


# --- in use: a server holds the database open for its lifetime -----------------------------
#
# Every process that opens the database through the app (each `serve` process, `flask run`,
# a command) holds a shared lock on ``<database>.in-use`` until it exits; forked workers
# share their parent's. A command that rewrites the file under the server (encrypt-db,
# rekey-db) needs it alone: it converts this process's lock to an exclusive one, which is
# refused at once while any other process holds its shared lock, even an idle one.

_in_use: dict[str, int] = {}  # database path -> the open file this process locks
_in_use_guard = threading.Lock()


class InUse(StorageError):
    """Another process (a running server) has the database open."""


def _in_use_path(path: str | Path) -> str:
    return f"{Path(path).resolve()}.in-use"


def hold_in_use(path: str | Path) -> None:
    """Mark the database as open by this process until it exits (idempotent, cheap)."""
    if fcntl is None:  # pragma: no cover - Windows: no advisory locks
        return
    lock = _in_use_path(path)
    if lock in _in_use:
        return
    with _in_use_guard:
        if lock in _in_use:
            return
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only folder: opening the database will say so
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InUse(
                f"The database {path} is being changed by a maintenance command "
                "(encrypt-db or rekey-db): wait for it to finish, then start again."
            ) from None
        _in_use[lock] = fd


@contextmanager
def used_alone(path: str | Path, command: str):
    """Hold the database alone for a command that rewrites it: refused (InUse) while any
    other process has it open, e.g. a server that is running or idle."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    hold_in_use(path)
    fd = _in_use.get(_in_use_path(path))
    if fd is None:  # pragma: no cover - an unwritable folder
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # A refused conversion drops the shared lock (flock(2)): take it back.
        with suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        raise InUse(
            f"the database is open in a running server: stop `flask serve` (or `make run`, "
            f"`flask run`, every process using {path}), then run {command} again"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_SH)


# --- operations --------------------------------------------------------------------------


def backup(db: Database, target: str | Path, key: str | None = None) -> None:
    """A consistent copy through SQLite's online backup API, safe while the app runs;
    with the database's key the copy is encrypted with it too."""
    destination = _driver(key).connect(str(target))
    try:
        if key:
            destination.execute(f"PRAGMA key = {_quoted(key)}")
        db.conn.backup(destination)
    finally:
        destination.close()


def delete_before(db: Database, cutoff: datetime) -> dict[str, int]:
    """Inside the caller's transaction, delete visits (answers and alerts go with them)
    with appointments before cutoff, and ended sessions and failures as old; the counts."""
    counts = purge_counts(db, cutoff)
    db.execute(
        "UPDATE visits SET replaces_visit_id = NULL WHERE replaces_visit_id IN "
        "(SELECT id FROM visits WHERE appointment_at < ?)",
        (_ts(cutoff),),
    )
    db.execute("DELETE FROM visits WHERE appointment_at < ?", (_ts(cutoff),))
    db.execute(
        "DELETE FROM staff_sessions WHERE ended_at IS NOT NULL AND ended_at < ?", (_ts(cutoff),)
    )
    prune_failures(db, cutoff)
    return counts


def checkpoint(db: Database) -> bool:
    """Copy the WAL into the database file and empty it, so deleted pages (already zeroed
    by secure_delete) no longer linger in the -wal file; False if a reader kept it busy."""
    return db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0


def export_encrypted(path: str | Path, target: str | Path, key: str) -> None:
    """Write an encrypted copy of the plain database at path into the empty file target
    (SQLCipher's sqlcipher_export), in WAL mode like every database here."""
    conn = _driver(key).connect(str(path))
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(target), key))
        conn.execute("SELECT sqlcipher_export('encrypted')")
        conn.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        conn.execute("DETACH DATABASE encrypted")
    finally:
        conn.close()
    connect(target, key=key).close()


def rekey(db: Database, new_key: str) -> None:
    """Re-encrypt every page with new_key (PRAGMA rekey)."""
    db.execute(f"PRAGMA rekey = {_quoted(new_key)}")


def count_visits(db: Database) -> int:
    """How many visits exist at all (the demo command refuses a database that has any)."""
    return _one(db, "SELECT COUNT(*) AS n FROM visits")["n"]


def integrity_problems(db: Database) -> list[str]:
    """What PRAGMA integrity_check and foreign_key_check find wrong (empty: sound). Page
    and table names only, never a row's content."""
    found = [row[0] for row in db.conn.execute("PRAGMA integrity_check").fetchall()]
    problems = [] if found == ["ok"] else found
    broken = db.conn.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        problems.append(f"{len(broken)} rows break foreign keys in {', '.join(tables)}")
    return problems


def copy_contents(db: Database) -> dict:
    """What a restored copy holds, counts and stored times only: visits, answers, audit
    entries, the newest saved answer, the newest write of any kind, and the migrations
    applied (for comparing with this code's)."""
    counts = _one(
        db,
        """SELECT (SELECT COUNT(*) FROM visits) AS visits,
                  (SELECT COUNT(*) FROM answers) AS answers,
                  (SELECT COUNT(*) FROM audit_log) AS audit_entries""",
    )
    # Stored UTC text with one format sorts as time does; raw, not local (_rows would).
    newest = db.conn.execute(
        """SELECT MAX(t) FROM (
               SELECT MAX(updated_at) AS t FROM answers
               UNION ALL SELECT MAX(at) FROM audit_log
               UNION ALL SELECT MAX(created_at) FROM visits
               UNION ALL SELECT MAX(last_activity_at) FROM visits
               UNION ALL SELECT MAX(saved_at) FROM safety_answers)"""
    ).fetchone()[0]
    answer = db.conn.execute("SELECT MAX(updated_at) FROM answers").fetchone()[0]
    applied = [m.name for m in migrations.applied(db)]
    return {**counts, "newest_answer": answer, "newest_write": newest, "migrations": applied}


def migration_names() -> list[str]:
    """The migrations this code applies, in order (a copy's schema is compared with them)."""
    return [m.name for m in migrations._migrations]


def purge_counts(db: Database, cutoff: datetime) -> dict[str, int]:
    """What delete_before(cutoff) would delete, without deleting it (for --dry-run)."""
    return _one(
        db,
        """SELECT COUNT(*) AS visits,
                  (SELECT COUNT(*) FROM answers WHERE visit_id IN
                      (SELECT id FROM visits WHERE appointment_at < :c)) AS answers,
                  (SELECT COUNT(*) FROM alerts WHERE visit_id IN
                      (SELECT id FROM visits WHERE appointment_at < :c)) AS alerts
           FROM visits WHERE appointment_at < :c""",
        {"c": _ts(cutoff)},
    )


# --- integrations: API tokens and exports --------------------------------------------------


def create_api_token(
    db: Database,
    *,
    name: str,
    token_hash: str,
    created_by: int | None,
    now: datetime,
    expires_at: datetime | None = None,
    in_progress: bool = False,
) -> int:
    cursor = db.execute(
        """INSERT INTO api_tokens (name, token_hash, created_at, created_by, expires_at,
               in_progress) VALUES (?, ?, ?, ?, ?, ?)""",
        (
            name,
            token_hash,
            _ts(now),
            created_by,
            _ts(expires_at) if expires_at else None,
            int(in_progress),
        ),
    )
    return cursor.lastrowid


def rotate_api_token(db: Database, token_id: int, token_hash: str, now: datetime) -> bool:
    """A new secret for a live token: the old one stops working at once."""
    cursor = db.execute(
        "UPDATE api_tokens SET token_hash = ?, rotated_at = ? WHERE id = ? AND revoked_at IS NULL",
        (token_hash, _ts(now), token_id),
    )
    return cursor.rowcount == 1


def api_tokens(db: Database) -> list[dict]:
    return _rows(
        db,
        """SELECT t.id, t.name, t.scope, t.created_at, t.last_used_at, t.revoked_at,
                  t.expires_at, t.in_progress, t.rotated_at,
                  u.display_name AS created_by_name
           FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by
           ORDER BY t.revoked_at IS NOT NULL, t.id DESC""",
    )


def get_api_token(db: Database, token_id: int) -> dict | None:
    return _one(db, "SELECT * FROM api_tokens WHERE id = ?", (token_id,))


def api_token_by_hash(db: Database, token_hash: str) -> dict | None:
    """A live (not revoked) token with this hash."""
    return _one(
        db, "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    )


def api_token_ever(db: Database, token_hash: str) -> dict | None:
    """The token with this hash, revoked or not (to name who was refused)."""
    return _one(db, "SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,))


def revoke_api_token(db: Database, token_id: int, now: datetime) -> bool:
    cursor = db.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (_ts(now), token_id),
    )
    return cursor.rowcount == 1


def touch_api_token(db: Database, token_id: int, now: datetime) -> None:
    db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (_ts(now), token_id))


# --- the FHIR API: visits by change sequence ------------------------------------------------


# The rows a visit's other FHIR resources are made of (exports/derived.py): a search for
# them reads only the visits that have some (an Observation per safety_answers row, a
# Flag per alerts row).
EXPORTED_ROWS = ("safety_answers", "alerts", "measure_totals")


def _tables(having: str | tuple[str, ...]) -> tuple[str, ...]:
    tables = (having,) if isinstance(having, str) else tuple(having)
    if not tables or any(table not in EXPORTED_ROWS for table in tables):
        raise ValueError(having)
    return tables


def _exported_where(
    statuses: tuple[str, ...],
    ranges: tuple[tuple[int | None, int | None], ...],
    having: str | tuple[str, ...] | None = None,
) -> tuple[str, list]:
    """The WHERE of an API search: started visits in these statuses whose change time
    (microseconds) lies in every [low, high) range (None: open), with rows in `having`
    (one or more of EXPORTED_ROWS: rows in any of them) when given."""
    where = [
        "started_at IS NOT NULL",
        f"status IN ({', '.join('?' for _ in statuses) or 'NULL'})",
    ]
    if having is not None:
        union = " UNION ".join(f"SELECT visit_id FROM {table}" for table in _tables(having))
        where.append(f"id IN ({union})")
    params: list = list(statuses)
    for low, high in ranges:
        if low is not None:
            where.append("changed_us >= ?")
            params.append(low)
        if high is not None:
            where.append("changed_us < ?")
            params.append(high)
    return " AND ".join(where), params


def exported_visits(
    db: Database,
    *,
    statuses: tuple[str, ...],
    ranges: tuple[tuple[int | None, int | None], ...] = (),
    after_seq: int = 0,
    limit: int,
    having: str | tuple[str, ...] | None = None,
) -> list[Visit]:
    """Visits for an API search, in change-sequence order after `after_seq` (keyset
    paging: a visit that changes between pages moves behind the cursor, never skips)."""
    where, params = _exported_where(statuses, ranges, having)
    return _visits(
        db,
        f"SELECT * FROM visits WHERE {where} AND change_seq > ? ORDER BY change_seq LIMIT ?",
        (*params, after_seq, limit),
    )


def count_exported(
    db: Database,
    *,
    statuses: tuple[str, ...],
    ranges: tuple[tuple[int | None, int | None], ...] = (),
    having: str | tuple[str, ...] | None = None,
) -> int:
    """How many visits a search matches, or with `having` how many of those rows (of
    every table named)."""
    where, params = _exported_where(statuses, ranges, having)
    if having is not None:
        return sum(
            _one(
                db,
                f"""SELECT COUNT(*) AS n FROM {table}
                    WHERE visit_id IN (SELECT id FROM visits WHERE {where})""",
                params,
            )["n"]
            for table in _tables(having)
        )
    return _one(db, f"SELECT COUNT(*) AS n FROM visits WHERE {where}", params)["n"]


def questionnaire_versions(db: Database) -> list[str]:
    """Every questionnaire version a started visit was answered under."""
    rows = db.execute(
        "SELECT DISTINCT questionnaire_version FROM visits"
        " WHERE started_at IS NOT NULL AND questionnaire_version != ''"
    ).fetchall()
    return sorted(row[0] for row in rows)


def visit_by_uuid(db: Database, visit_uuid: str) -> Visit | None:
    return _visit(db, "SELECT * FROM visits WHERE uuid = ?", (visit_uuid,))


def bump_all_changes(db: Database, now: datetime) -> int:
    """Inside the caller's transaction: every started visit's export changed (a setting
    the FHIR resources read, e.g. chart numbers): a new change for each, in their order."""
    ids = [
        row[0]
        for row in db.execute(
            "SELECT id FROM visits WHERE started_at IS NOT NULL ORDER BY change_seq, id"
        ).fetchall()
    ]
    moment = _ts(now)
    for visit_id in ids:
        db.execute(
            """UPDATE change_clock SET seq = seq + 1,
                   us = MAX(us + 1, CAST(strftime('%s', ?) AS INTEGER) * 1000000) WHERE id = 1""",
            (moment,),
        )
        db.execute(
            """UPDATE visits SET change_seq = (SELECT seq FROM change_clock WHERE id = 1),
                   changed_us = (SELECT us FROM change_clock WHERE id = 1) WHERE id = ?""",
            (visit_id,),
        )
    return len(ids)


def visits_between(db: Database, first: date, last: date) -> list[Visit]:
    """Every visit with its appointment on a day from first to last, in order."""
    return _visits(
        db,
        """SELECT * FROM visits WHERE appointment_at >= ? AND appointment_at < ?
           ORDER BY appointment_at, id""",
        (_day_start(first), _day_start(last + timedelta(days=1))),
    )


# --- safety report -----------------------------------------------------------------------


def alerts_raised_on(db: Database, day: date) -> list[BoardVisit]:
    """The safety alerts raised on `day` (the clinic's local day), oldest first, each with
    its visit (cancelled ones too), the visit's psychiatrist and whoever acknowledged it;
    also an alert first raised that day and opened again by a worse answer since (its
    earlier acknowledgement raised that day: see earlier_acknowledgements)."""
    span = (_day_start(day), _day_start(day + timedelta(days=1)))
    return _board_visits(
        db,
        f"""SELECT {_BOARD_COLUMNS}
           FROM alerts a JOIN visits v ON v.id = a.visit_id
           {_BOARD_JOINS}
           WHERE (a.created_at >= ? AND a.created_at < ?)
              OR EXISTS (SELECT 1 FROM earlier_acknowledgements e WHERE e.visit_id = v.id
                         AND e.raised_at >= ? AND e.raised_at < ?)
           ORDER BY a.created_at, a.id""",
        span + span,
    )


# --- escalation mail ---------------------------------------------------------------------
#
# The SQL beneath domain/escalation.py: alerts nobody acknowledged in time are marked
# escalated once, and each one's e-mail is claimed (attempts + 1, no other try before the
# lease ends) in the caller's write transaction before it is sent outside it.

_ESCALATION_ALERTS = """SELECT a.*, NULL AS acknowledged_by_name
    FROM alerts a JOIN visits v ON v.id = a.visit_id
    WHERE a.acknowledged_at IS NULL AND v.status != 'cancelled'"""


def alerts_to_escalate(db: Database, raised_before: datetime) -> list[Alert]:
    """Open alerts on visits still going ahead, raised at or before `raised_before`, not
    yet marked escalated; oldest first."""
    rows = _rows(
        db,
        f"""{_ESCALATION_ALERTS} AND a.escalated_at IS NULL AND a.created_at <= ?
            ORDER BY a.created_at, a.id""",
        (_ts(raised_before),),
        typed=True,
    )
    return [Alert.from_row(row) for row in rows]


def mark_escalated(db: Database, alert_id: int, now: datetime) -> bool:
    """Mark the alert escalated, once; False when it already was or was acknowledged."""
    cursor = db.execute(
        """UPDATE alerts SET escalated_at = ?
           WHERE id = ? AND escalated_at IS NULL AND acknowledged_at IS NULL""",
        (_ts(now), alert_id),
    )
    return cursor.rowcount == 1


def escalation_mail_due(db: Database, now: datetime) -> Alert | None:
    """The oldest escalated, still open alert whose e-mail is unsent and whose next try
    may start now (no try yet, the backoff over, or a claimed send's lease run out)."""
    rows = _rows(
        db,
        f"""{_ESCALATION_ALERTS} AND a.escalated_at IS NOT NULL AND a.mail_sent_at IS NULL
            AND (a.mail_next_at IS NULL OR a.mail_next_at <= ?)
            ORDER BY a.created_at, a.id LIMIT 1""",
        (_ts(now),),
        typed=True,
    )
    return Alert.from_row(rows[0]) if rows else None


def claim_escalation_mail(db: Database, alert_id: int, now: datetime, until: datetime) -> int:
    """Take the alert's next e-mail try: no other try starts before `until`. The attempt's
    number, or 0 when the try was not free to take (sent, or claimed by another)."""
    cursor = db.execute(
        """UPDATE alerts SET mail_attempts = mail_attempts + 1, mail_next_at = ?
           WHERE id = ? AND mail_sent_at IS NULL
           AND (mail_next_at IS NULL OR mail_next_at <= ?)""",
        (_ts(until), alert_id, _ts(now)),
    )
    if cursor.rowcount != 1:
        return 0
    return db.execute("SELECT mail_attempts FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]


# A send's outcome is recorded only on the escalated alert it was claimed for: an alert
# opened again by a worse answer while the e-mail was on its way is not escalated (yet),
# and must get an e-mail of its own when it is.


def escalation_mail_sent(db: Database, alert_id: int, now: datetime) -> None:
    db.execute(
        """UPDATE alerts SET mail_sent_at = ?, mail_next_at = NULL, mail_error = ''
           WHERE id = ? AND escalated_at IS NOT NULL""",
        (_ts(now), alert_id),
    )


def escalation_mail_failed(db: Database, alert_id: int, error: str, next_at: datetime) -> None:
    db.execute(
        """UPDATE alerts SET mail_error = ?, mail_next_at = ?
           WHERE id = ? AND escalated_at IS NOT NULL""",
        (error, _ts(next_at), alert_id),
    )


# --- invitation messages -----------------------------------------------------------------
# Which message is due, and when contact details go, is decided in ``delivery``.


def contact(db: Database, visit_id: int) -> dict | None:
    return _one(db, "SELECT * FROM contacts WHERE visit_id = ?", (visit_id,))


def put_contact(db: Database, visit_id: int, *, email: str, phone: str) -> None:
    """Store the visit's address and number (an empty one keeps what was stored)."""
    db.execute(
        """INSERT INTO contacts (visit_id, email, phone) VALUES (:v, :e, :p)
           ON CONFLICT(visit_id) DO UPDATE SET
               email = CASE WHEN :e != '' THEN :e ELSE email END,
               phone = CASE WHEN :p != '' THEN :p ELSE phone END""",
        {"v": visit_id, "e": email, "p": phone},
    )


def opt_out(db: Database, visit_id: int, now: datetime) -> None:
    """No more messages for this visit: the details erased, the refusal kept."""
    db.execute(
        """INSERT INTO contacts (visit_id, opted_out_at) VALUES (?, ?)
           ON CONFLICT(visit_id) DO UPDATE SET email = '', phone = '',
               opted_out_at = COALESCE(opted_out_at, excluded.opted_out_at)""",
        (visit_id, _ts(now)),
    )
    cancel_messages(db, visit_id)


def contacts_to_erase(db: Database, now: datetime) -> list[int]:
    """Visits whose contact details must go: sent, cancelled, or past their expiry."""
    rows = _rows(
        db,
        """SELECT c.visit_id FROM contacts c JOIN visits v ON v.id = c.visit_id
           WHERE (c.email != '' OR c.phone != '')
           AND (v.status IN ('submitted', 'reviewed', 'cancelled') OR v.expires_at <= ?)""",
        (_ts(now),),
    )
    return [row["visit_id"] for row in rows]


def erase_contact(db: Database, visit_id: int) -> None:
    db.execute("DELETE FROM contacts WHERE visit_id = ?", (visit_id,))
    cancel_messages(db, visit_id)


def cancel_messages(db: Database, visit_id: int) -> None:
    db.execute(
        "UPDATE messages SET state = 'cancelled', next_at = NULL "
        "WHERE visit_id = ? AND state = 'queued'",
        (visit_id,),
    )


def queue_message(
    db: Database, visit_id: int, *, kind: str, channel: str, due_at: datetime, now: datetime
) -> int:
    """Queue one message, replacing a queued one of the same kind and channel."""
    db.execute(
        "DELETE FROM messages WHERE visit_id = ? AND kind = ? AND channel = ? "
        "AND state = 'queued' AND attempts = 0",
        (visit_id, kind, channel),
    )
    cursor = db.execute(
        "INSERT INTO messages (visit_id, kind, channel, due_at, created_at) VALUES (?, ?, ?, ?, ?)",
        (visit_id, kind, channel, _ts(due_at), _ts(now)),
    )
    return cursor.lastrowid


def messages_of(db: Database, visit_ids: list[int]) -> dict[int, list[dict]]:
    """Each visit's messages, oldest first, times local and typed."""
    found: dict[int, list[dict]] = {visit_id: [] for visit_id in visit_ids}
    if not visit_ids:
        return found
    marks = ", ".join("?" * len(visit_ids))
    rows = _rows(
        db,
        f"SELECT * FROM messages WHERE visit_id IN ({marks}) ORDER BY due_at, id",
        visit_ids,
        typed=True,
    )
    for row in rows:
        found[row["visit_id"]].append(row)
    return found


def link_opened_at(db: Database, visit_ids: list[int]) -> dict[int, datetime]:
    """When each visit was first opened from a link a message carried."""
    if not visit_ids:
        return {}
    marks = ", ".join("?" * len(visit_ids))
    rows = _rows(
        db,
        f"""SELECT visit_id, MIN(opened_at) AS opened_at FROM link_tokens
            WHERE visit_id IN ({marks}) AND opened_at IS NOT NULL GROUP BY visit_id""",
        visit_ids,
        typed=True,
    )
    return {row["visit_id"]: row["opened_at"] for row in rows}


def message_due(db: Database, now: datetime) -> dict | None:
    """The oldest queued message whose time has come and whose next try may start."""
    return _one(
        db,
        """SELECT * FROM messages WHERE state = 'queued' AND due_at <= :n
           AND (next_at IS NULL OR next_at <= :n) ORDER BY due_at, id LIMIT 1""",
        {"n": _ts(now)},
    )


def next_message_at(db: Database) -> datetime | None:
    """When the next queued message may be tried (clinic time), if any is queued."""
    row = _one(
        db,
        """SELECT MIN(CASE WHEN next_at > due_at THEN next_at ELSE due_at END) AS due_at
           FROM messages WHERE state = 'queued'""",
    )
    return datetime.fromisoformat(row["due_at"]) if row and row["due_at"] else None


def claim_message(db: Database, message_id: int, now: datetime, until: datetime) -> int:
    """Take the message's next try: no other starts before `until`. The attempt's number,
    or 0 when it was not free to take."""
    cursor = db.execute(
        """UPDATE messages SET attempts = attempts + 1, next_at = ?
           WHERE id = ? AND state = 'queued' AND (next_at IS NULL OR next_at <= ?)""",
        (_ts(until), message_id, _ts(now)),
    )
    if cursor.rowcount != 1:
        return 0
    return db.execute("SELECT attempts FROM messages WHERE id = ?", (message_id,)).fetchone()[0]


def postpone_message(db: Database, message_id: int, until: datetime) -> None:
    """Not now (quiet hours): the message waits, no try counted."""
    db.execute("UPDATE messages SET next_at = ? WHERE id = ?", (_ts(until), message_id))


def message_done(
    db: Database,
    message_id: int,
    *,
    state: str,
    answer: str = "",
    error: str = "",
    next_at: datetime | None = None,
    sent_at: datetime | None = None,
) -> None:
    """Record a try: sent, failed for good, cancelled, or (queued) to be tried at next_at."""
    db.execute(
        """UPDATE messages SET state = ?, answer = ?, error = ?, next_at = ?, sent_at = ?
           WHERE id = ?""",
        (
            state,
            answer,
            error,
            _ts(next_at) if next_at else None,
            _ts(sent_at) if sent_at else None,
            message_id,
        ),
    )


def add_link_token(
    db: Database, token_hash: str, visit_id: int, message_id: int, now: datetime
) -> None:
    db.execute(
        "INSERT INTO link_tokens (token_hash, visit_id, message_id, created_at) "
        "VALUES (?, ?, ?, ?)",
        (token_hash, visit_id, message_id, _ts(now)),
    )


def drop_link_tokens(db: Database, message_id: int) -> None:
    """The links of a try that did not leave: nobody holds them."""
    db.execute("DELETE FROM link_tokens WHERE message_id = ?", (message_id,))


def link_unopened(db: Database, token_hash: str) -> bool:
    """Whether the link is a message's that nobody has opened yet."""
    return bool(
        db.execute(
            "SELECT 1 FROM link_tokens WHERE token_hash = ? AND opened_at IS NULL", (token_hash,)
        ).fetchone()
    )


def mark_link_opened(db: Database, token_hash: str, now: datetime) -> None:
    """Note the first opening of a message's link."""
    db.execute(
        "UPDATE link_tokens SET opened_at = ? WHERE token_hash = ? AND opened_at IS NULL",
        (_ts(now), token_hash),
    )
