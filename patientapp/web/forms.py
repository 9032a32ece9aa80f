"""Form pieces every blueprint shares: a checkbox group, our words for WTForms' own
checks, a length limit that names itself, a filter that trims spaces, and the days a date
field takes. The first four live with the questionnaire's item types, which ask with
them (``questionnaire/fields.py``), and are offered here too.

Each blueprint's forms sit beside it (the patient's in ``patient_forms``).
"""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms.validators import ValidationError

from patientapp.questionnaire.fields import (
    CHOICE_ERROR,
    MultiCheckboxField,
    length_limit,
    strip_spaces,
)

__all__ = [
    "CHOICE_ERROR",
    "DATE_ERROR",
    "FIRST_DAY",
    "LAST_DAY",
    "MultiCheckboxField",
    "in_calendar",
    "length_limit",
    "strip_spaces",
    "usable_day",
]

# Our own words for WTForms' built-in date check, so every shipped language has them.
DATE_ERROR = _l("Please enter a valid date.")

# The days the app works with: far enough from the calendar's ends that a day after,
# a day before or the extra days of an invitation never leave Python's date range.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9000, 12, 31)


def usable_day(day: date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY


def in_calendar(form, field) -> None:
    """A date field's check: 9999-12-31 or 0001-01-01 is not a date anyone means."""
    if field.data is not None and not usable_day(field.data):
        raise ValidationError(DATE_ERROR)
