"""The clinic's staffed hours: when someone is at the front desk to see a safety alert.

Settings keeps them as one key, ``staffed_hours``: a JSON list of seven entries, Monday
to Sunday, each null (closed that day) or ``["HH:MM", "HH:MM"]`` (from, until) in the
clinic's local time. A day is staffed from its "from" minute up to, not including, its
"until" minute: with ``["09:00", "17:00"]``, 09:00 and 16:59 are staffed, 17:00 is not.

A schedule with no staffed day at all (absent, empty, or every day closed) is not set:
the clinic is then treated as always staffed, as it was before the setting existed. An
entry that cannot be read (by hand in the database) counts as a closed day, so a broken
setting never claims someone is at the desk.

Pure: the caller passes the settings and the clinic's local time (naive, as
``web.context.now()`` gives it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

SETTING = "staffed_hours"
DAYS = 7  # Monday first, as datetime.weekday() counts
TIME_FORMAT = "%H:%M"

Span = tuple[time, time]  # from, until


@dataclass(frozen=True)
class Schedule:
    """Staffed hours per weekday, Monday first; None for a day the clinic is closed."""

    days: tuple[Span | None, ...] = (None,) * DAYS

    @property
    def is_set(self) -> bool:
        """Whether any day has hours; a schedule that is not set means always staffed."""
        return any(self.days)


def _time(text: object) -> time | None:
    try:
        return datetime.strptime(text, TIME_FORMAT).time() if isinstance(text, str) else None
    except ValueError:
        return None


def _span(entry: object) -> Span | None:
    """One stored day as (from, until); None when closed or unreadable."""
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        return None
    start, end = _time(entry[0]), _time(entry[1])
    return (start, end) if start is not None and end is not None and start < end else None


def schedule_from(settings: Mapping) -> Schedule:
    """The schedule stored in the clinic's settings (not set when absent or malformed)."""
    value = settings.get(SETTING)
    if not isinstance(value, list) or len(value) != DAYS:
        return Schedule()
    return Schedule(tuple(_span(entry) for entry in value))


def to_setting(schedule: Schedule) -> list:
    """The schedule as it is stored: seven entries, or an empty list when not set."""
    if not schedule.is_set:
        return []
    return [
        None if span is None else [f"{span[0]:{TIME_FORMAT}}", f"{span[1]:{TIME_FORMAT}}"]
        for span in schedule.days
    ]


def is_staffed(schedule: Schedule, local_moment: datetime) -> bool:
    """Whether someone is at the front desk at this clinic-local moment. Always true when
    no hours are set."""
    if not schedule.is_set:
        return True
    span = schedule.days[local_moment.weekday()]
    return span is not None and span[0] <= local_moment.time() < span[1]


def next_opening(schedule: Schedule, local_moment: datetime) -> datetime | None:
    """The start of the next staffed span after this moment, looking up to seven days
    ahead (a set schedule always opens within a week); None when no hours are set."""
    for ahead in range(DAYS + 1):
        day = local_moment.date() + timedelta(days=ahead)
        span = schedule.days[day.weekday()]
        if span is not None:
            opening = datetime.combine(day, span[0], tzinfo=local_moment.tzinfo)
            if opening > local_moment:
                return opening
    return None


def closed_until(schedule: Schedule, local_moment: datetime) -> datetime | None:
    """When a safety answer given now is next seen at the front desk: the next opening
    while the clinic is outside its staffed hours; None while it is staffed, or when no
    hours are set (then the front desk is told right away, as always)."""
    if is_staffed(schedule, local_moment):
        return None
    return next_opening(schedule, local_moment)
