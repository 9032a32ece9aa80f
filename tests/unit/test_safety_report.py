"""The rules of the day's safety report (patientapp/domain/safety_report.py): figures,
escalation, order, which answers are listed. The time is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from patientapp.domain import safety_report
from patientapp.domain.records import Alert, BoardVisit, SafetyAnswer, Visit

RAISED = datetime(2026, 11, 25, 9, 0)
LIMIT = 5  # minutes before an unacknowledged alert is escalated


def alert(number: int = 1, after: float | None = None, at=RAISED, **fields) -> Alert:
    """An alert raised at `at`, acknowledged `after` minutes later (None: still open)."""
    acknowledged = at + timedelta(minutes=after) if after is not None else None
    return Alert(id=number, visit_id=number, created_at=at, acknowledged_at=acknowledged, **fields)


def line(a: Alert | None, number: int = 1) -> BoardVisit:
    visit = Visit(
        id=number,
        patient_ref=f"R-{number}",
        appointment_at=RAISED.replace(hour=14),
        token_hash="t",
        code_hash="c",
        expires_at=RAISED + timedelta(days=1),
        created_at=RAISED,
    )
    return BoardVisit(visit=visit, alert=a)


def saved(value: str, minute: int) -> SafetyAnswer:
    return SafetyAnswer(value=value, saved_at=RAISED + timedelta(minutes=minute))


# --- figures -----------------------------------------------------------------------------


def test_the_figures_of_a_day_with_two_acknowledged_and_one_open():
    now = RAISED + timedelta(minutes=30)
    day = [alert(1, after=2), alert(2, after=7), alert(3)]
    figures = safety_report.figures(day, now, LIMIT)
    assert figures == safety_report.DayFigures(
        alerts=3,
        acknowledged=2,
        open=1,
        escalated=2,  # the one after 7 minutes, and the open one past 5
        median_minutes=4.5,
        longest_minutes=7,
    )


def test_the_median_of_an_odd_number_is_the_middle_one_and_seconds_count():
    day = [alert(1, after=1), alert(2, after=10), alert(3, after=2.5)]
    figures = safety_report.figures(day, RAISED + timedelta(hours=1), LIMIT)
    assert figures.median_minutes == 2.5 and figures.longest_minutes == 10


def test_open_alerts_count_as_open_not_in_the_minutes():
    figures = safety_report.figures([alert(1), alert(2)], RAISED + timedelta(minutes=1), LIMIT)
    assert (figures.alerts, figures.open, figures.acknowledged) == (2, 2, 0)
    assert figures.median_minutes is None and figures.longest_minutes is None
    assert figures.escalated == 0  # one minute is not yet five


def test_an_empty_day_has_zero_alerts_and_no_minutes():
    assert safety_report.figures([], RAISED, LIMIT) == safety_report.DayFigures()


# --- escalation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "minutes_later", "escalated"),
    [
        (alert(after=4.9), 60, False),  # acknowledged in time
        (alert(after=5), 60, True),  # acknowledged only at the limit
        (alert(after=7), 60, True),
        (alert(), 4, False),  # open, not yet at the limit
        (alert(), 5, True),  # open past it
        # Marked by the server's loop: escalated, whatever the limit says now.
        (alert(after=3, escalated_at=RAISED + timedelta(minutes=2)), 60, True),
    ],
)
def test_was_escalated(given, minutes_later, escalated):
    now = RAISED + timedelta(minutes=minutes_later)
    assert safety_report.was_escalated(given, now, LIMIT) is escalated


def test_the_escalation_time_is_the_loops_else_the_limit():
    later = RAISED + timedelta(hours=1)
    marked = RAISED + timedelta(minutes=5, seconds=4)
    assert safety_report.escalated_time(alert(escalated_at=marked), later, LIMIT) == marked
    assert safety_report.escalated_time(alert(after=7), later, LIMIT) == RAISED + timedelta(
        minutes=5
    )
    assert safety_report.escalated_time(alert(after=2), later, LIMIT) is None


# --- what is listed, in which order ------------------------------------------------------------


def test_open_alerts_come_first_then_by_the_time_raised():
    early_done = line(alert(1, after=2), 1)
    late_open = line(alert(2, at=RAISED + timedelta(hours=2)), 2)
    early_open = line(alert(3, at=RAISED + timedelta(hours=1)), 3)
    no_alert = line(None, 4)
    ordered = safety_report.open_first([early_done, late_open, no_alert, early_open])
    assert [o.visit.id for o in ordered] == [3, 2, 1]


def test_every_worrying_answer_is_listed_even_one_changed_later():
    history = [saved("several_days", 0), saved("not_at_all", 3), saved("nearly_every_day", 5)]
    assert [a.value for a in safety_report.worrying_answers(history)] == [
        "several_days",
        "nearly_every_day",
    ]
    assert safety_report.changed_since(history) is None  # the last one still worries


def test_an_answer_changed_to_not_at_all_or_skipped_is_named():
    changed = [saved("more_than_half", 0), saved("not_at_all", 4)]
    assert safety_report.worrying_answers(changed) == [changed[0]]
    assert safety_report.changed_since(changed) == changed[1]
    skipped = [saved("several_days", 0), saved("declined", 1)]
    assert safety_report.changed_since(skipped) == skipped[1]
    assert safety_report.changed_since([saved("not_at_all", 0)]) is None  # never worrying
    assert safety_report.changed_since([]) is None


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(None, ""), (2.0, "2"), (4.5, "4.5"), (7, "7"), (2.04, "2"), (0.25, "0.2")],
)
def test_minutes_text(minutes, text):
    assert safety_report.minutes_text(minutes) == text
