"""Retention: visits older than the clinic's retention period are removed, by `flask purge`
and by the server itself once a day. Several server processes may share the database:
the last run is recorded in the settings table and claimed under BEGIN IMMEDIATE, so only
one of them purges."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, time, timedelta

from patientapp.db import storage

log = logging.getLogger(__name__)

LAST_RUN = "retention_last_run"
INTERVAL = timedelta(days=1)
CHECK_SECONDS = 3600
ACTOR = "retention"
DEFAULT_DAYS = 365  # until the clinic sets its own period under Settings


def cutoff(retention_days: int, now: datetime) -> datetime:
    """Midnight starting the oldest day still kept: a visit stays retention_days full days."""
    return datetime.combine(now.date() - timedelta(days=retention_days), time.min)


def _retention_days(db) -> int:
    stored = storage.get_settings(db).get("retention_days")
    return int(stored if stored is not None else DEFAULT_DAYS)


def last_run(db) -> dict | None:
    """When retention last ran and what it removed: {"at": stored time, "visits"}."""
    return storage.get_settings(db).get(LAST_RUN)


def last_run_at(last: dict) -> datetime:
    """When a run recorded by last_run() happened, in the clinic's local time."""
    return datetime.fromisoformat(storage.local_text(last["at"]))


def _purge(db, now: datetime, actor: str) -> dict:
    """Inside the caller's transaction: delete, audit, record the run."""
    before = cutoff(_retention_days(db), now)
    counts = storage.delete_before(db, before)
    storage.audit(
        db,
        "purge",
        now=now,
        actor=actor,
        detail=f"visits={counts['visits']} answers={counts['answers']} "
        f"alerts={counts['alerts']} before={before:%Y-%m-%d}",
    )
    storage.put_setting(db, LAST_RUN, {"at": storage.stamp(now), "visits": counts["visits"]})
    return {**counts, "before": before}


def run(db, now: datetime, actor: str = ACTOR) -> dict:
    """Remove visits past the retention period now; the counts and the cutoff."""
    with storage.write(db):
        result = _purge(db, now, actor)
    storage.checkpoint(db)
    return result


def run_if_due(db, now: datetime) -> dict | None:
    """Run retention unless it ran less than a day ago (in this process or another)."""
    with storage.write(db):
        previous = last_run(db)
        if previous and now - last_run_at(previous) < INTERVAL:
            return None
        result = _purge(db, now, ACTOR)
    storage.checkpoint(db)
    return result


def check(app, clock: Callable[[], datetime]) -> dict | None:
    """One pass of the server's retention thread, on a connection of its own; `clock`
    gives the clinic's current local time (the web's ``now``, called in the app context)."""
    with app.app_context():
        db = storage.connect(app.config["DATABASE"], key=app.config.get("DATABASE_KEY"))
        storage.use_zone(storage.zone_setting(db))
        try:
            with storage.write(db):  # hourly: sessions left open keep no ID token
                storage.forget_stale_id_tokens(db, clock(), app.config)
            return run_if_due(db, clock())
        finally:
            db.close()


def _check_logged(app, clock: Callable[[], datetime]) -> None:
    try:
        check(app, clock)
    except Exception:
        log.exception("retention run failed; trying again in an hour")


def _watch(app, clock: Callable[[], datetime], stop: threading.Event) -> None:
    while not stop.wait(CHECK_SECONDS):
        _check_logged(app, clock)


def start(app, clock: Callable[[], datetime]) -> threading.Event:
    """Run retention now, before serving, then start the daemon thread that checks every
    hour and runs it once a day has passed; set the returned event to stop the thread."""
    _check_logged(app, clock)
    stop = threading.Event()
    threading.Thread(target=_watch, args=(app, clock, stop), name="retention", daemon=True).start()
    return stop
