"""The rules of a raised safety alert (patientapp/domain/alerts.py), the time passed in."""

from datetime import datetime, timedelta

from patientapp.domain import alerts
from patientapp.domain.records import Alert

RAISED = datetime(2026, 11, 25, 9, 0)


def alert(**fields) -> Alert:
    return Alert(id=1, visit_id=1, created_at=RAISED, **fields)


def test_an_open_alert_is_escalated_once_its_minutes_are_up():
    assert not alerts.is_escalated(alert(), RAISED + timedelta(minutes=4, seconds=59), 5)
    assert alerts.is_escalated(alert(), RAISED + timedelta(minutes=5), 5)
    assert alerts.escalates_at(alert(), 5) == RAISED + timedelta(minutes=5)


def test_an_acknowledged_alert_is_never_escalated_and_none_is_none():
    done = alert(acknowledged_at=RAISED + timedelta(minutes=9), escalated_at=RAISED)
    assert not alerts.is_escalated(done, RAISED + timedelta(hours=1), 5)
    assert not alerts.is_escalated(None, RAISED, 5)


def test_one_marked_escalated_stays_so_when_the_limit_is_raised():
    marked = alert(escalated_at=RAISED + timedelta(minutes=5))
    assert alerts.is_escalated(marked, RAISED + timedelta(minutes=6), 30)


def test_minutes_to_acknowledge():
    assert alerts.minutes_to_acknowledge(alert()) is None
    done = alert(acknowledged_at=RAISED + timedelta(minutes=2, seconds=30))
    assert alerts.minutes_to_acknowledge(done) == 2.5


def test_mail_backoff_grows_then_stays_at_fifteen_minutes():
    waits = [(alerts.next_mail_try(n, RAISED) - RAISED).total_seconds() for n in range(9)]
    assert waits == [60, 60, 120, 300, 600, 900, 900, 900, 900]
