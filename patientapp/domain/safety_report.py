"""The rules of the day's safety report, without the web: which saved safety values it
lists, whether an alert was escalated and when, the order it lists alerts in (still open
first) and the day's figures (how many alerts, acknowledged, still open, escalated, and the
median and longest minutes to acknowledge). Pure functions: the time and the escalation
limit are passed in.

An alert belongs to the day it was raised (the clinic's local day). Its minutes to
acknowledge are ``alerts.minutes_to_acknowledge``; the median and the longest are of the
acknowledged alerts only, an open alert is counted as open instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from patientapp.domain.alerts import minutes_to_acknowledge
from patientapp.domain.records import Alert, BoardVisit, EarlierAcknowledgement, SafetyAnswer
from patientapp.summary.rules import is_worrying


@dataclass(frozen=True, kw_only=True, slots=True)
class DayFigures:
    """The figures at the top of a day's report (and on the board)."""

    alerts: int = 0
    acknowledged: int = 0
    open: int = 0
    escalated: int = 0
    median_minutes: float | None = None  # None while no alert of the day is acknowledged
    longest_minutes: float | None = None


def worrying_answers(history: Iterable[SafetyAnswer]) -> list[SafetyAnswer]:
    """Every worrying value the patient saved, oldest first, also those changed later."""
    return [answer for answer in history if is_worrying(answer.value)]


def changed_since(history: Sequence[SafetyAnswer]) -> SafetyAnswer | None:
    """The value saved last, when it is no longer worrying ("Not at all", or a skip) after a
    worrying one: the report says what the patient changed the answer to."""
    if not history or is_worrying(history[-1].value) or not worrying_answers(history):
        return None
    return history[-1]


def was_escalated(alert: Alert, now: datetime, minutes: int) -> bool:
    """Marked escalated by the server's loop, or left unacknowledged for `minutes` or more:
    until its acknowledgement, or until now while it is still open."""
    if alert.escalated_at is not None:
        return True
    until = alert.acknowledged_at or now
    return until - alert.created_at >= timedelta(minutes=minutes)


def escalated_time(alert: Alert, now: datetime, minutes: int) -> datetime | None:
    """When the alert was escalated: as the loop recorded it, else the moment it passed the
    limit; None when it never was."""
    if not was_escalated(alert, now, minutes):
        return None
    return alert.escalated_at or alert.created_at + timedelta(minutes=minutes)


def open_first(lines: Iterable[BoardVisit]) -> list[BoardVisit]:
    """The report's order: alerts still open first, then acknowledged ones, each group in
    the order they were raised. Lines without an alert are left out."""
    with_alert = [line for line in lines if line.alert is not None]
    return sorted(
        with_alert,
        key=lambda line: (
            line.alert.acknowledged_at is not None,
            line.alert.created_at,
            line.alert.id,
        ),
    )


def raised_on(
    day: date, alerts: Iterable[tuple[Alert, Sequence[EarlierAcknowledgement]]]
) -> list[Alert]:
    """Every time an alert was raised on `day`, for the day's figures: each alert raised
    that day as it stands, and each earlier cycle raised that day (acknowledged, then
    opened again by a worse answer, perhaps on a later day), as it was when acknowledged:
    its escalation and minutes to acknowledge still count."""
    raised = []
    for alert, earlier in alerts:
        raised += [cycle.as_alert() for cycle in earlier if cycle.raised_at.date() == day]
        if alert.created_at.date() == day:
            raised.append(alert)
    return raised


def figures(alerts: Iterable[Alert], now: datetime, minutes: int) -> DayFigures:
    """The day's figures for its alerts, `minutes` being the escalation limit."""
    alerts = list(alerts)
    taken = [m for m in (minutes_to_acknowledge(alert) for alert in alerts) if m is not None]
    return DayFigures(
        alerts=len(alerts),
        acknowledged=len(taken),
        open=len(alerts) - len(taken),
        escalated=sum(was_escalated(alert, now, minutes) for alert in alerts),
        median_minutes=statistics.median(taken) if taken else None,
        longest_minutes=max(taken) if taken else None,
    )


def minutes_text(minutes: float | None) -> str:
    """Minutes as the report writes them: whole when whole, else to one decimal ("4.5");
    "" for none. (Pages format the number for the reader's language themselves.)"""
    if minutes is None:
        return ""
    rounded = round(minutes, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"
