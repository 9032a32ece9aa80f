"""Forms of the staff blueprint (staff.py): the new invitation.

Choices read from the database (psychiatrists, offered languages) are filled in by the view.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, ValidationError

from .forms import CHOICE_ERROR, in_calendar, length_limit

FULL_NAME = re.compile(r"[^\W\d_]{3,}\s+[^\W\d_]{3,}", re.UNICODE)


class InvitationForm(FlaskForm):
    """One appointment; the patient is named by a chart number or initials, never a full name."""

    patient_ref = StringField(
        _l("Patient reference"),
        description=_l("A chart number or initials, not a full name."),
        validators=[
            DataRequired(message=_l("Please enter a chart number or initials.")),
            length_limit(40),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    day = DateField(
        _l("Appointment date"),
        validators=[DataRequired(message=_l("Please enter a valid date.")), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
    )
    time = TimeField(
        _l("Appointment time"),
        validators=[DataRequired(message=_l("Please enter a valid time."))],
        invalid_value_message=_l("Please enter a valid time."),
    )
    psychiatrist = SelectField(
        _l("Psychiatrist"),
        coerce=int,
        invalid_choice_message=CHOICE_ERROR,
        invalid_value_message=CHOICE_ERROR,
    )
    language = SelectField(_l("Suggested language"), invalid_choice_message=CHOICE_ERROR)

    def validate_patient_ref(self, field):
        if any(mark in (field.data or "") for mark in "\r\n\x0b\x0c\x85\u2028\u2029"):
            raise ValidationError(_l("Please keep the patient reference on one line."))
        if FULL_NAME.search(field.data or ""):
            raise ValidationError(
                _l(
                    "This looks like a name. Please use a chart number or "
                    "initials instead, to keep the patient private."
                )
            )
