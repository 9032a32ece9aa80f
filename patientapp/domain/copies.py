"""Continuous copies: an off-site copy every few minutes that works with encryption.

Litestream copies a plain database continuously, but it cannot read a SQLCipher one (it
logs "file is not a database", copies nothing and keeps running). So the server makes
copies itself: every PATIENTAPP_COPY_INTERVAL_SECONDS one serving process (claimed under
BEGIN IMMEDIATE, like retention) writes a consistent copy through SQLite's online backup
API into PATIENTAPP_COPY_DIR, encrypted with the database's own key when it has one,
keeps the newest PATIENTAPP_COPY_KEEP, and runs PATIENTAPP_COPY_COMMAND (e.g. rclone) to
send the new file off-site. The recovery point, what a dead disk can lose, is the
interval plus the time one copy and its send take; each copy's time is recorded, and
Settings states it and warns when copies stop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from patientapp.db import storage
from patientapp.domain import backups

log = logging.getLogger(__name__)

ACTOR = "copies"
LAST = "copy_last"  # settings: the last attempt, successful or not
LAST_OK = "copy_last_ok"  # settings: the last copy made and sent
CLAIM = "copy_claim"  # settings: which pass is copying, until when
DISK = "copy_disk"  # settings: the folder of the last good copy and its device (st_dev)
NAME_RE = re.compile(r"^patientapp-(\d{8}T\d{6}(?:\d{3})?Z)\.db$")
COMMAND_TIMEOUT_SECONDS = 300
STOPPED_AFTER_INTERVALS = 3  # Settings warns when the newest copy is older than this
RECENT = 12  # the recovery point counts the slowest of this many recent copies


class CopyError(Exception):
    """A copy that was not made or not sent: the reason, one line, no patient detail."""


@dataclass(frozen=True)
class Plan:
    """The copies as the deployment sets them (PATIENTAPP_COPY_*)."""

    folder: Path
    interval: timedelta
    keep: int
    command: str

    @classmethod
    def of(cls, config) -> Plan | None:
        folder = str(config.get("COPY_DIR") or "").strip()
        if not folder:
            return None
        return cls(
            folder=Path(folder).expanduser(),
            interval=timedelta(seconds=max(1, int(config["COPY_INTERVAL_SECONDS"]))),
            keep=max(1, int(config["COPY_KEEP"])),
            command=str(config.get("COPY_COMMAND") or "").strip(),
        )


def plan_problem(config) -> str | None:
    """Why serve must not start with these copy settings, or None."""
    plan = Plan.of(config)
    if plan is None:
        return None
    folder = plan.folder.resolve()
    database = Path(config["DATABASE"]).resolve()
    if folder == database.parent:
        return (
            f"PATIENTAPP_COPY_DIR {folder} is the database's own folder: a copy there dies "
            "with the same disk. Give a folder on another disk or mount, or send the copies "
            "off-site with PATIENTAPP_COPY_COMMAND from a folder of their own."
        )
    if plan.command:
        try:
            words = shlex.split(plan.command)
        except ValueError as error:
            return f"PATIENTAPP_COPY_COMMAND cannot be read: {error}"
        if not words:
            return "PATIENTAPP_COPY_COMMAND is empty."
    return None


# --- Litestream and an encrypted database ------------------------------------------------

LITESTREAM_PATH_RE = re.compile(r"^\s*(?:-\s*)?path\s*:\s*[\"']?([^\"'#\n]+?)[\"']?\s*(?:#.*)?$")


def litestream_problem(
    database: str | Path, encrypted: bool, config_file: str | Path
) -> str | None:
    """Why serve must refuse to start: Litestream set up for an encrypted database (its
    metadata folder beside the file, or its config naming the file). Litestream cannot
    read SQLCipher's pages and fails silently, so the clinic would believe in copies that
    do not exist. None for a plain database or no Litestream."""
    if not encrypted:
        return None
    database = Path(database).resolve()
    found = None
    meta = database.with_name(f".{database.name}-litestream")
    if meta.exists():
        found = f"its folder {meta} is beside the database"
    else:
        try:
            text = Path(config_file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            match = LITESTREAM_PATH_RE.match(line)
            if match and _same_path(match.group(1).strip(), database):
                found = f"{config_file} names it"
                break
    if found is None:
        return None
    return (
        f"Litestream is set up for {database} ({found}), but the database is encrypted: "
        "Litestream cannot read it and would copy nothing. Remove the database from "
        "Litestream and set PATIENTAPP_COPY_DIR for encrypted copies (README, Operations)."
    )


def _same_path(written: str, database: Path) -> bool:
    try:
        return Path(os.path.expandvars(written)).expanduser().resolve() == database
    except (OSError, RuntimeError):
        return False


# --- one copy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    name: str
    size: int
    seconds: float  # the copy and its send
    sent: bool  # off-site by the command (False: no command, the folder is the copy)
    device: int = 0  # the disk it was written to (st_dev)
    removed_for_room: int = 0  # older copies removed because the disk was full


def file_name(moment_utc: datetime) -> str:
    return f"patientapp-{moment_utc:%Y%m%dT%H%M%S}{moment_utc.microsecond // 1000:03d}Z.db"


def generations(folder: Path) -> list[Path]:
    """The copies this server made in folder, oldest first (other files are not ours)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if NAME_RE.match(p.name) and p.is_file())


def make(db, plan: Plan, key: str | None, moment_utc: datetime) -> Made:
    """Write one copy into plan.folder (a temporary name, fsync, rename, fsync of the
    folder), send it with plan.command, then keep only the newest plan.keep copies."""
    began = time.monotonic()
    if not plan.folder.is_dir():
        # Made at start (prepare); gone since, e.g. an off-site disk no longer mounted:
        # never recreated here, where a copy would land on the database's own disk.
        raise CopyError(f"the folder {plan.folder} is missing (is its disk mounted?)")
    device = _checked_disk(storage.get_settings(db), plan.folder, _database_disk(db))
    _remove_stale_temps(plan.folder)
    name = file_name(moment_utc)
    target = plan.folder / name
    removed = 0
    while True:
        try:
            written = _write(db, key, plan.folder, target)
            break
        except Exception as error:  # the disk full, the folder gone, the database busy
            kept = generations(plan.folder)
            if not (_full(error) and len(kept) > 1):  # never the newest good copy
                raise CopyError(_not_written(error, removed, bool(kept))) from None
        # The copy disk is full (the database grew, or another file took the space):
        # the oldest copy makes room for the newest, one at a time, down to the newest
        # good one, which always stays. Otherwise every interval's copy would fail while
        # week-old copies sat there, and the recovery point would grow without bound.
        # Settings says so, as the folder now keeps fewer copies than PATIENTAPP_COPY_KEEP.
        kept[0].unlink(missing_ok=True)
        removed += 1
    if written.st_dev != device:  # unmounted while the copy was written
        target.unlink(missing_ok=True)
        raise CopyError(
            f"the folder {plan.folder} changed disks during the copy (is its disk mounted?)"
        )
    sent = False
    if plan.command:
        _send(plan.command, target)
        sent = True
    for old in generations(plan.folder)[: -plan.keep]:
        old.unlink(missing_ok=True)
    return Made(
        name=name,
        size=written.st_size,
        seconds=time.monotonic() - began,
        sent=sent,
        device=device,
        removed_for_room=removed,
    )


def _write(db, key: str | None, folder: Path, target: Path) -> os.stat_result:
    """One copy at target: written under a temporary name, synced, renamed, the folder
    synced; nothing left behind when it fails."""
    temp = folder / f".{target.name}.tmp"
    try:
        storage.backup(db, temp, key)
        os.chmod(temp, 0o600)  # the copy holds answers
        _fsync(temp)
        os.replace(temp, target)
        _fsync(folder)
        return target.stat()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _full(error: BaseException) -> bool:
    """Whether the copy failed for want of space: the OS said so (ENOSPC, a quota), or
    SQLite did while writing the copy (SQLITE_FULL, "database or disk is full")."""
    if isinstance(error, OSError):
        return error.errno in FULL_ERRNOS
    if isinstance(error, storage.DATABASE_ERRORS):
        code = getattr(error, "sqlite_errorcode", None)
        return code == 13 if code is not None else "disk is full" in str(error)
    return False


def _not_written(error: BaseException, removed: int, newest_left: bool) -> str:
    said = f"the copy could not be written: {_reason(error)}"
    if not _full(error):
        return said
    if removed:
        plural = "copy" if removed == 1 else "copies"
        said += f" (the disk is full even after removing the {removed} oldest {plural})"
    if newest_left:
        said += "; the newest copy is kept"
    return said


TEMP_RE = re.compile(r"^\.patientapp-\d{8}T\d{6}(?:\d{3})?Z\.db\.tmp$")


def _remove_stale_temps(folder: Path) -> None:
    """A copy cut short (its process killed by a restart) leaves its temporary file: a
    whole copy no generation count would ever remove. Only the claim's holder writes one,
    so any left when a claim is won is stale."""
    for path in folder.iterdir():
        if TEMP_RE.match(path.name):
            path.unlink(missing_ok=True)


# An off-site disk unmounted leaves its mount point behind: an empty folder on the disk
# below (the database's own, or another), where copies would go on as if nothing
# happened. Each good copy records, in the settings table (DISK) that every server
# process and a restart read, the folder's device and the mount point it lies under
# (the nearest folder, itself included, where a file system is mounted). A copy is
# refused when the folder now lies under another mount point (its disk unmounted: the
# folder has fallen onto the one below), or, for a record from before the mount point
# was kept, when it has fallen onto the database's own disk. A new device under the
# same mount point is taken (a USB disk plugged in again, an NFS or CIFS share mounted
# again, the week's other disk swapped in: their device numbers change).


def _disk_record(settings: dict, folder: Path) -> dict | None:
    """The disk of the last good copy into folder (None: none yet, or another folder)."""
    record = settings.get(DISK) or {}
    return record if record.get("folder") == str(folder.resolve()) else None


def _mount_point(folder: Path) -> str:
    """The mount point the folder lies under: the nearest folder, itself included, where
    a file system is mounted."""
    path = folder.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return str(path)


def _database_disk(db) -> int | None:
    """The device of the database's folder (None: a database without a file)."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    try:
        return os.stat(Path(path).resolve().parent).st_dev if path else None
    except OSError:
        return None


def _checked_disk(settings: dict, folder: Path, database: int | None) -> int:
    """The folder's device, when a copy may go there; else CopyError."""
    try:
        device = os.stat(folder).st_dev
    except OSError as error:  # gone since it was looked at
        raise CopyError(
            f"the folder {folder} cannot be read: {error.strerror} (is its disk mounted?)"
        ) from None
    record = _disk_record(settings, folder)
    if record is None:
        return device
    if "mount" in record and _mount_point(folder) != record["mount"]:
        raise CopyError(
            f"the folder {folder} is no longer on the disk mounted at {record['mount']} "
            "(is its disk mounted?)"
        )
    if "mount" not in record and device != record["device"] and device == database:
        raise CopyError(
            f"the folder {folder} is now on the database's own disk, the last copy was not "
            "(is its disk mounted?)"
        )
    return device


def _record_disk(db, folder: Path, device: int) -> None:
    """Inside the caller's transaction: the disk the last good copy went onto."""
    record = {"folder": str(folder.resolve()), "device": device, "mount": _mount_point(folder)}
    storage.put_setting(db, DISK, record)


def prepare(config) -> None:
    """At start, before any copy: make the copy folder (0700) unless copies already went
    into it (missing now, its disk is not mounted: the copies say so, and so does the
    log now), and say in the log when the copies will refuse the folder as it is."""
    plan = Plan.of(config)
    if plan is None:
        return
    db = storage.connect(config["DATABASE"], key=config.get("DATABASE_KEY"))
    try:
        record = _disk_record(storage.get_settings(db), plan.folder)
        if record is None:
            plan.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            return
        if not plan.folder.is_dir():
            log.warning("the copy folder %s is missing (is its disk mounted?)", plan.folder)
            return
        try:
            _checked_disk(storage.get_settings(db), plan.folder, _database_disk(db))
        except CopyError as refusal:
            log.warning("%s: no copy is made there until it is back", refusal)
    finally:
        db.close()


def same_disk(config) -> bool:
    """Whether the copy folder is on the database's own file system (a dead disk would
    take both), judged by the device of the folder or its nearest existing parent."""
    plan = Plan.of(config)
    if plan is None:
        return False
    folder = plan.folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        database = Path(config["DATABASE"]).resolve().parent
        return os.stat(folder).st_dev == os.stat(database).st_dev
    except OSError:
        return False


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _send(command: str, path: Path) -> None:
    """Run the off-site command with {path} and {name} filled in, without a shell."""
    words = [
        word.replace("{path}", str(path)).replace("{name}", path.name)
        for word in shlex.split(command)
    ]
    try:
        command = subprocess.Popen(  # the deployment's own command, no shell
            words,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout ends all of it
        )
    except FileNotFoundError:
        raise CopyError(f"the copy command {words[0]!r} was not found") from None
    try:
        _out, stderr = command.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)
        command.communicate()
        raise CopyError(
            f"the copy command did not finish within {COMMAND_TIMEOUT_SECONDS} s"
        ) from None
    if command.returncode != 0:
        said = stderr.decode("utf-8", "replace").strip().splitlines()
        last = said[-1][:300] if said else "no message"
        raise CopyError(f"the copy command failed (exit {command.returncode}): {last}")


# --- the server's loop -------------------------------------------------------------------


def _due(settings: dict, plan: Plan, now_utc: datetime) -> bool:
    last = settings.get(LAST) or {}
    if last.get("at") and now_utc - _utc(last["at"]) < plan.interval:
        return False
    claim = settings.get(CLAIM) or {}
    held = claim.get("until") and _utc(claim["until"]) > now_utc
    return not (held and _alive(claim.get("pid")))


def _alive(pid) -> bool:
    """Whether the process holding a claim still runs (every server process shares this
    machine: SQLite's database is local). A claim of a killed process lapses at once."""
    if not isinstance(pid, int) or pid <= 0:
        return True  # no owner recorded: trust the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim(db, plan: Plan, now_utc: datetime) -> str | None:
    """A token when a copy is due and no other process is making one: looked at first
    without the write lock (most passes stop there), then claimed under it."""
    if not _due(storage.get_settings(db), plan, now_utc):
        return None
    token = secrets.token_hex(8)
    with storage.write(db):
        if not _due(storage.get_settings(db), plan, now_utc):
            return None
        lease = timedelta(seconds=COMMAND_TIMEOUT_SECONDS + 60)
        claim = {"until": _utc_text(now_utc + lease), "pid": os.getpid(), "token": token}
        storage.put_setting(db, CLAIM, claim)
    return token


def _release(db, token: str) -> None:
    """Inside the caller's transaction: drop the claim only if it is still this one (a
    copy that outlived its lease must not end another process's)."""
    if (storage.get_settings(db).get(CLAIM) or {}).get("token") == token:
        storage.delete_setting(db, CLAIM)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _utc_text(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def run_if_due(db, plan: Plan, key: str | None, now_utc: datetime, now_local: datetime):
    """One pass: a copy when one is due; the Made, a CopyError, or None (not due)."""
    token = _claim(db, plan, now_utc)
    if token is None:
        return None
    try:
        made = make(db, plan, key, now_utc)
    except CopyError as failure:
        with storage.write(db):
            storage.audit(db, "backup_failed", now=now_local, actor=ACTOR, detail=str(failure))
            storage.put_setting(
                db, LAST, {"at": _utc_text(now_utc), "ok": False, "error": str(failure)}
            )
            _release(db, token)
        log.warning("continuous copy failed: %s", failure)
        return failure
    except BaseException:
        with contextlib.suppress(Exception), storage.write(db):
            _release(db, token)  # the next pass may try again at once
        raise
    with storage.write(db):
        where = "sent off-site" if made.sent else "kept in the folder"
        if made.removed_for_room:
            where += f"; the disk was full: {made.removed_for_room} oldest removed for room"
        storage.audit(
            db,
            "backup",
            now=now_local,
            actor=ACTOR,
            detail=f"{made.name} ({made.size} bytes, {made.seconds:.2f} s, {where})",
        )
        if made.sent:  # Settings' last backup counts only a copy that left the machine
            backups.record_backup(db, now_local, made.size)
        before = storage.get_settings(db).get(LAST_OK) or {}
        recent = [*before.get("recent", []), round(made.seconds, 3)][-RECENT:]
        record = {"at": _utc_text(now_utc), "ok": True, "seconds": round(made.seconds, 3)}
        storage.put_setting(db, LAST, {**record, "name": made.name})
        room = {"removed_for_room": made.removed_for_room}
        storage.put_setting(db, LAST_OK, {**record, "name": made.name, "recent": recent, **room})
        _record_disk(db, plan.folder, made.device)
        _release(db, token)
    return made


@dataclass(frozen=True)
class State:
    """What Settings shows about continuous copies (None when they are off)."""

    interval: timedelta
    folder: Path
    sent_by_command: bool
    recovery_point: timedelta  # interval + the loop's look + the slowest recent copy
    newest_age: timedelta | None  # since the last good copy (None: none yet)
    stopped: bool  # no good copy for STOPPED_AFTER_INTERVALS intervals
    failed_at_utc: datetime | None  # the last attempt, when it failed
    failure: str
    keep: int = 0  # PATIENTAPP_COPY_KEEP
    kept: int = 0  # copies in the folder now
    full: bool = False  # the last good copy had to remove older ones: the disk is full


def slowest(last_ok: dict) -> float:
    """Seconds of the slowest recent copy (its write and its send)."""
    return max([float(last_ok.get("seconds") or 0), *map(float, last_ok.get("recent", []))])


def recovery_point(interval: timedelta, took: timedelta) -> timedelta:
    """The most a dead disk can lose: answers saved just after a copy wait the interval
    and up to one look of the loop for the next copy, and that copy's own time."""
    return interval + timedelta(seconds=check_every(interval)) + took


def state(config, settings: dict, now_utc: datetime) -> State | None:
    plan = Plan.of(config)
    if plan is None:
        return None
    ok = settings.get(LAST_OK) or {}
    last = settings.get(LAST) or {}
    newest = _utc(ok["at"]) if ok.get("at") else None
    age = now_utc - newest if newest else None
    took = timedelta(seconds=slowest(ok))
    limit = STOPPED_AFTER_INTERVALS * plan.interval + timedelta(minutes=1)
    failed = last if last and not last.get("ok", True) else {}
    return State(
        interval=plan.interval,
        folder=plan.folder,
        sent_by_command=bool(plan.command),
        recovery_point=recovery_point(plan.interval, took),
        newest_age=age,
        stopped=age is None or age > limit,
        failed_at_utc=_utc(failed["at"]) if failed.get("at") else None,
        failure=str(failed.get("error") or ""),
        keep=plan.keep,
        kept=len(generations(plan.folder)),
        full=bool(ok.get("removed_for_room")),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def check(app, clock: Callable[[], datetime], utc_clock: Callable[[], datetime] = utc_now, db=None):
    """One pass of the loop, on the loop's connection or (None) one of its own: an
    encrypted database's connection costs a key derivation (about 0.1 s) to open."""
    plan = Plan.of(app.config)
    if plan is None:
        return None
    key = app.config.get("DATABASE_KEY")
    own = db is None
    with app.app_context():
        if own:
            db = storage.connect(app.config["DATABASE"], key=key)
        try:
            storage.use_zone(storage.zone_setting(db))
            return run_if_due(db, plan, key, utc_clock(), clock())
        finally:
            if own:
                db.close()


class Loop:
    """The copying thread of one serving process; ``set()`` stops it and waits for a copy
    under way, so none outlives the server."""

    JOIN_SECONDS = COMMAND_TIMEOUT_SECONDS + 30

    def __init__(self, app, clock, utc_clock, every: float):
        self.stop = threading.Event()
        self.every = every
        self.thread = threading.Thread(
            target=self._watch, args=(app, clock, utc_clock), name="copies", daemon=True
        )

    def _watch(self, app, clock, utc_clock) -> None:
        db = None
        try:
            while not self.stop.wait(self.every):
                try:
                    if db is None:
                        db = storage.connect(
                            app.config["DATABASE"], key=app.config.get("DATABASE_KEY")
                        )
                    check(app, clock, utc_clock, db)
                except Exception:
                    log.exception("continuous copy pass failed; trying again")
                    if db is not None:  # a fresh connection next pass
                        db.close()
                        db = None
        finally:
            if db is not None:
                db.close()

    def set(self) -> None:
        self.stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(self.JOIN_SECONDS)

    def is_set(self) -> bool:
        return self.stop.is_set()


def check_every(interval: timedelta) -> float:
    """How often the loop looks whether a copy is due: a tenth of the interval, 0.2 to
    15 s, so a copy starts at most that late."""
    return max(0.2, min(interval.total_seconds() / 10, 15.0))


def start(app, clock: Callable[[], datetime], utc_clock: Callable[[], datetime] = utc_now):
    """Start the loop when copies are configured (else None)."""
    plan = Plan.of(app.config)
    if plan is None:
        return None
    loop = Loop(app, clock, utc_clock, check_every(plan.interval))
    loop.thread.start()
    return loop
