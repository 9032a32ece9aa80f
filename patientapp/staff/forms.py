"""Forms of the staff blueprint (staff.py): the new invitation, acknowledging an alert.

Choices read from the database (psychiatrists, offered languages) are filled in by the view.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    SelectField,
    StringField,
    TelField,
    TimeField,
)
from wtforms.validators import DataRequired, ValidationError

from patientapp.auth.forms import email_rule
from patientapp.domain import textmsg
from patientapp.domain.accounts import MAX_EMAIL
from patientapp.questionnaire.fields import MultiCheckboxField
from patientapp.web.context import now
from patientapp.web.forms import CHOICE_ERROR, in_calendar, length_limit, strip_spaces

FULL_NAME = re.compile(r"[^\W\d_]{3,}\s+[^\W\d_]{3,}", re.UNICODE)
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
ACK_NOTE_MAX = 200
# Where an acknowledgement returns: a fixed name, never a URL from the client.
ACK_RETURNS = ("board", "summary")


class ContactFields:
    """Where to send the patient's link: an e-mail address, a mobile number, or both;
    both optional. The view drops a field the clinic cannot send through (no relay, no
    text gateway); `normalised_phone` is the number as the gateway gets it."""

    email = EmailField(
        _l("Patient's e-mail address (optional)"),
        description=_l(
            "The link is sent now and one reminder before the appointment. The address "
            "is erased once the answers are sent or the invitation ends."
        ),
        filters=[strip_spaces],
        validators=[length_limit(MAX_EMAIL)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "dir": "ltr"},
    )
    phone = TelField(
        _l("Patient's mobile number for a text (optional)"),
        description=_l("With the country code, like +1 555 123 4567. Erased like the address."),
        filters=[strip_spaces],
        validators=[length_limit(40)],
        render_kw={"autocomplete": "off", "inputmode": "tel", "dir": "ltr"},
    )

    def validate_email(self, field):
        if field.data:
            email_rule(self, field)

    def validate_phone(self, field):
        if field.data and textmsg.normalise_phone(field.data) is None:
            raise ValidationError(textmsg.PHONE_FORMAT_ERROR)

    @property
    def normalised_phone(self) -> str:
        phone = getattr(self, "phone", None)
        return (textmsg.normalise_phone(phone.data) or "") if phone and phone.data else ""

    @property
    def address(self) -> str:
        email = getattr(self, "email", None)
        return (email.data or "") if email else ""


class InvitationForm(ContactFields, FlaskForm):
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
    measures = MultiCheckboxField(
        _l("Standard measures"),
        description=_l(
            "Asked before the last question, word for word, only in languages with an "
            "official translation. Their scores and trend show on the summary."
        ),
        invalid_choice_message=CHOICE_ERROR,
    )

    def validate_day(self, field):
        """A day before today: a mistyped date, most likely (its link could already be
        closed, and its messages would ask for answers "before your visit" on a day
        gone). Not checked on a date already refused (9999-12-31)."""
        if field.data and not field.errors and field.data < now().date():
            raise ValidationError(_l("This date has passed. Please check the date."))

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


class SendLinkForm(ContactFields, FlaskForm):
    """Send the link of an invitation already made, by e-mail or text."""

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and not self.address and not self.normalised_phone:
            target = self.email if "email" in self._fields else self.phone
            target.errors.append(_l("Please enter an e-mail address or a mobile number."))
            return False
        return valid


class AcknowledgeForm(FlaskForm):
    """Acknowledging a safety alert, with an optional one-line note by the staff member.
    return_to names the page it was pressed on; an unknown value means the board."""

    note = StringField(
        _l("Note (optional)"),
        description=_l("One line, for example: spoke with the patient at the desk."),
        filters=[strip_spaces],
        validators=[length_limit(ACK_NOTE_MAX)],
        render_kw={"maxlength": ACK_NOTE_MAX, "autocomplete": "off"},
    )
    return_to = HiddenField()
    # When the alert on the page was raised (its `created_at`): a button from before a
    # worse answer opened the alert again must not acknowledge what its reader never saw.
    raised = HiddenField()

    def validate_note(self, field):
        if any(mark in (field.data or "") for mark in LINE_BREAKS):
            raise ValidationError(_l("Please keep the note on one line."))

    def destination(self) -> str:
        return self.return_to.data if self.return_to.data in ACK_RETURNS else "board"
