"""Rate limits and lockouts: one vocabulary over one table of timed rows.

Every row is (scope, key, at): a try under a scope ("code-client", "login-account", ...)
for a key (a browser, an address, an account), at a moment. A `Window` says how many rows
a key may have within how long. The table is called ``failures`` for history; what its
rows mean depends on how they are written here:

- tries, counted before they are checked (`claim`), in the caller's write transaction
  with the check, so concurrent tries (any thread or server process) see each other and
  no limit lets more through than it says. A right try is no failure: `release` takes its
  rows back; a wrong one's stay, as failures;
- marks (`note`): something that happened, not a failure, e.g. that a lock began or that
  a visit was opened from an address;
- requests (`count_request`): the API counts every request it lets through, right or
  wrong, in a sliding window per token; a refused request is not counted.

Old rows go by age: retention's purge prunes the whole table (storage.delete_before).
The SQL is in storage.py; nothing else writes or counts these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from patientapp.db import storage

LONG_AGO = datetime(2000, 1, 1)  # the start of a window without end: every row counts


@dataclass(frozen=True)
class Window:
    """At most `limit` rows under `scope` per key within `span` before now (None: ever)."""

    scope: str
    limit: int
    span: timedelta | None = None

    def since(self, now: datetime) -> datetime:
        return LONG_AGO if self.span is None else now - self.span


@dataclass(frozen=True)
class Claim:
    """A try counted before it is checked: its rows, taken back if it turns out right."""

    ids: tuple[int, ...]


def count(db, window: Window, key: str, now: datetime, not_before: datetime | None = None) -> int:
    """The rows of `key` in the window, only those at or after `not_before` if given."""
    since = window.since(now)
    if not_before is not None:
        since = max(since, not_before)
    return storage.count_failures(db, window.scope, key, since)


def is_full(db, window: Window, key: str, now: datetime) -> bool:
    """Whether `key` has used up its window: one more try would be one too many."""
    return count(db, window, key, now) >= window.limit


def lock_start(db, window: Window, key: str, now: datetime) -> datetime | None:
    """When the lock on `key` began, if it still holds.

    A lock begins at the failure that makes `limit` within the window's span and ends
    the span's length later. Tries while locked are to be refused uncounted, so one wrong
    try every few minutes cannot keep a key locked for good.
    """
    span = window.span
    times = storage.failure_times(db, window.scope, key, now - 2 * span)
    for index, at in enumerate(times):
        recent = [earlier for earlier in times[: index + 1] if earlier > at - span]
        if at > now - span and len(recent) >= window.limit:
            return at
    return None


def claim(db, pairs: list[tuple[str, str]], now: datetime) -> Claim:
    """Count one try under each (scope, key) before it is checked. Call it in the write
    transaction that checked the windows, so the check and the count are one."""
    with storage.write(db):
        return Claim(tuple(storage.record_attempts(db, pairs, now)))


def release(db, claim: Claim) -> None:
    """In the caller's transaction: the claimed try was right, so it was no failure."""
    storage.delete_failure_rows(db, list(claim.ids))


def count_request(db, window: Window, key: str, now: datetime) -> bool:
    """Count a request under `key`, or refuse it (False) when the window is full. Every
    request let through counts, whatever comes of it; a refused one does not."""
    with storage.write(db):
        if is_full(db, window, key, now):
            return False
        storage.record_attempts(db, [(window.scope, key)], now)
        return True


def note(db, scope: str, key: str, now: datetime) -> None:
    """Mark that something happened to `key` now (a lock began, a visit was opened)."""
    storage.record_attempts(db, [(scope, key)], now)


def noted(db, scope: str, key: str, since: datetime = LONG_AGO) -> list[datetime]:
    """When each row of `key` under `scope` since `since` was written, oldest first."""
    return storage.failure_times(db, scope, key, since)


def forget(db, scope: str, key: str) -> None:
    """Drop every row of `key` under `scope`: its count starts again."""
    storage.clear_failures(db, scope, key)


def forget_before(db, scope: str, before: datetime) -> None:
    """Drop the scope's rows older than `before`."""
    storage.prune_scope(db, scope, before)
