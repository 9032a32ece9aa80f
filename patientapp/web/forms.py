"""Form pieces every blueprint shares: a checkbox group, our words for WTForms' own
checks, a length limit that names itself, and a filter that trims spaces.

Each blueprint's forms sit beside it (the patient's in ``patient_forms``).
"""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import SelectMultipleField
from wtforms.validators import Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# Our own words for WTForms' built-in checks, so every shipped language has them.
CHOICE_ERROR = _l("Please pick one of the choices shown.")
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


def length_limit(max_length: int) -> Length:
    """A length check whose message names the limit, in the reader's language."""
    return Length(
        max=max_length,
        message=_l("Please keep this to %(max)s characters or fewer.", max=max_length),
    )


def strip_spaces(value):
    return value.strip() if isinstance(value, str) else value
