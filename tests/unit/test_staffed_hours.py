"""The clinic's staffed hours (domain/staffed_hours.py): when someone is at the front desk,
and when the clinic next opens (2026-11-23 is a Monday); and the S1 closed-hours help the
definition holds for those times."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from patientapp.domain.staffed_hours import (
    Schedule,
    closed_until,
    is_staffed,
    next_opening,
    schedule_from,
    to_setting,
)
from patientapp.questionnaire import model as questionnaire

WEEKDAYS_9_TO_5 = [["09:00", "17:00"]] * 5 + [None, None]  # Monday to Friday
MONDAY, FRIDAY, SATURDAY = 23, 27, 28  # days of November 2026


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second)


def schedule(days=WEEKDAYS_9_TO_5) -> Schedule:
    return schedule_from({"staffed_hours": days})


@pytest.mark.parametrize(
    ("moment", "staffed"),
    [
        (at(MONDAY, 8, 59, 59), False),
        (at(MONDAY, 9, 0), True),  # the opening minute is staffed
        (at(MONDAY, 12, 30), True),
        (at(MONDAY, 16, 59, 59), True),
        (at(MONDAY, 17, 0), False),  # the closing minute is not
        (at(MONDAY, 23, 0), False),
        (at(SATURDAY, 12, 0), False),  # a closed day
    ],
)
def test_staffed_inside_the_span_only(moment, staffed):
    assert is_staffed(schedule(), moment) is staffed
    assert (closed_until(schedule(), moment) is None) is staffed


def test_next_opening_over_the_weekend():
    assert next_opening(schedule(), at(FRIDAY, 17, 0)) == at(30, 9, 0)  # Monday the 30th
    assert next_opening(schedule(), at(SATURDAY, 10, 0)) == at(30, 9, 0)
    assert closed_until(schedule(), at(FRIDAY, 23, 0)) == at(30, 9, 0)


def test_next_opening_later_the_same_day_and_the_next_morning():
    assert next_opening(schedule(), at(MONDAY, 6, 30)) == at(MONDAY, 9, 0)
    assert next_opening(schedule(), at(MONDAY, 23, 0)) == at(MONDAY + 1, 9, 0)


def test_a_schedule_open_one_day_a_week_opens_within_seven_days():
    only_monday = [["09:00", "12:00"], None, None, None, None, None, None]
    assert next_opening(schedule(only_monday), at(MONDAY, 12, 0)) == at(30, 9, 0)
    assert next_opening(schedule(only_monday), at(MONDAY, 9, 0)) == at(30, 9, 0)


@pytest.mark.parametrize(
    "stored",
    [None, [], [None] * 7, "09:00-17:00", [["09:00", "17:00"]] * 6],
    ids=["absent", "empty", "every-day-closed", "not-a-list", "six-days"],
)
def test_no_schedule_means_always_staffed(stored):
    settings = {} if stored is None else {"staffed_hours": stored}
    found = schedule_from(settings)
    assert not found.is_set
    for moment in (at(MONDAY, 3, 0), at(SATURDAY, 23, 59)):
        assert is_staffed(found, moment)
        assert closed_until(found, moment) is None
    assert next_opening(found, at(MONDAY, 3, 0)) is None
    assert to_setting(found) == []


def test_a_closed_day_in_the_week():
    days = [*WEEKDAYS_9_TO_5]
    days[2] = None  # Wednesday closed
    assert not is_staffed(schedule(days), at(25, 10, 0))
    assert closed_until(schedule(days), at(MONDAY + 1, 18, 0)) == at(26, 9, 0)  # Thursday


@pytest.mark.parametrize(
    "entry",
    [["17:00", "09:00"], ["09:00", "09:00"], ["9am", "5pm"], ["09:00"], "09:00", 9],
)
def test_an_unreadable_day_counts_as_closed_never_as_staffed(entry):
    days = [*WEEKDAYS_9_TO_5]
    days[0] = entry
    assert schedule(days).days[0] is None
    assert not is_staffed(schedule(days), at(MONDAY, 10, 0))
    assert closed_until(schedule(days), at(MONDAY, 10, 0)) == at(MONDAY + 1, 9, 0)


def test_the_stored_form_round_trips():
    found = schedule()
    assert found.days[0] == (time(9, 0), time(17, 0))
    assert to_setting(found) == WEEKDAYS_9_TO_5
    assert schedule_from({"staffed_hours": to_setting(found)}) == found


# --- the closed-hours help in the questionnaire definition ---------------------------------


def definition(help_closed) -> dict:
    item = {"id": "S1", "type": "single", "prompt": "p", "short": "s", "help": "Told now."}
    item |= {"choices": [{"id": "no", "label": "No"}], "help_closed": help_closed}
    return {
        "version": "1",
        "sections": [{"id": "safety", "title": "Safety", "items": [item]}],
        "summary": {"safety": "S1"},
    }


def test_the_s1_definition_has_a_closed_hours_help_naming_day_and_time():
    s1 = questionnaire.default().items["S1"]
    assert "front desk is told right away" in s1.help
    assert "front desk" not in s1.help_closed
    assert "when the clinic opens on %(day)s at %(time)s." in s1.help_closed
    assert s1.help_closed % {"day": "Monday", "time": "8:00"}  # fills in as the page does


@pytest.mark.parametrize(
    ("help_closed", "message"),
    [
        ("Seen on %(weekday)s.", "may name only"),
        ("We are 100%", "may name only"),
        (["a list"], "expected text"),
    ],
)
def test_a_closed_hours_help_the_page_cannot_fill_stops_the_app(help_closed, message):
    assert questionnaire.parse(definition("Seen on %(day)s at %(time)s.")).items["S1"].help_closed
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.parse(definition(help_closed))
