"""The Invitations by e-mail and text page's form: the reminder's time, the quiet hours,
and the text message gateway (by e-mail through the clinic's relay, or by HTTP). The
gateway's auth header is a secret: never shown again, kept when left empty.
"""

from __future__ import annotations

from datetime import time

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, ValidationError

from patientapp.admin.forms import WholeNumberField
from patientapp.domain import textmsg
from patientapp.web.forms import CHOICE_ERROR, length_limit, strip_spaces

# The settings keys of this page (their defaults are in web.context's SETTING_DEFAULTS).
MESSAGE_SETTINGS = (
    "message_clinic_name",
    "reminder_hours_before",
    "quiet_from",
    "quiet_until",
    *textmsg.SMS_SETTINGS,
)
SMS_MODES = {
    "none": _l("No text messages"),
    "email": _l("An e-mail-to-text gateway, through the outgoing mail relay"),
    "http": _l("A text message service's web API (HTTP POST)"),
}
CONTENT_TYPES = {
    "form": _l("Form fields (application/x-www-form-urlencoded)"),
    "json": _l("JSON (application/json)"),
}
TIME_ERROR = _l("Please enter a valid time.")


class MessagingForm(FlaskForm):
    message_clinic_name = StringField(
        _l("The clinic's name in messages"),
        filters=[strip_spaces],
        validators=[length_limit(120)],
        description=_l(
            "Messages can be read on a locked phone or by someone else. A neutral name, "
            "for example Riverside Health instead of Riverside Psychiatry, does not say "
            "what kind of care this is. Leave empty to use the clinic's name."
        ),
    )
    reminder_hours_before = WholeNumberField(
        _l("Hours before the appointment to send the reminder"),
        0,
        168,
        description=_l(
            "One reminder to patients who were sent the link. 0 sends no reminder. 24 "
            "sends it the day before."
        ),
    )
    quiet_from = TimeField(
        _l("No messages from"),
        validators=[DataRequired(message=TIME_ERROR)],
        invalid_value_message=TIME_ERROR,
    )
    quiet_until = TimeField(
        _l("Until"),
        validators=[DataRequired(message=TIME_ERROR)],
        invalid_value_message=TIME_ERROR,
        description=_l(
            "In these quiet hours nothing is sent: a message due then waits until they end. "
            "The same time twice means no quiet hours."
        ),
    )
    sms_mode = SelectField(
        _l("Text messages"),
        choices=[SelectChoice(key, label) for key, label in SMS_MODES.items()],
        invalid_choice_message=CHOICE_ERROR,
    )
    sms_email_address = StringField(
        _l("Gateway address"),
        filters=[strip_spaces],
        validators=[length_limit(200)],
        description=_l(
            "For an e-mail-to-text gateway: {number} becomes the number's digits, for "
            "example {number}@sms.example.net."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    sms_http_url = StringField(
        _l("Web API address"),
        filters=[strip_spaces],
        validators=[length_limit(500)],
        description=_l("The address messages are posted to, starting with https://."),
        render_kw={"autocomplete": "off", "spellcheck": "false", "inputmode": "url"},
    )
    sms_http_auth = PasswordField(
        _l("Authorization header"),
        validators=[length_limit(1000)],
        render_kw={"autocomplete": "new-password"},
    )
    remove_sms_http_auth = BooleanField(_l("Remove the stored header"))
    sms_http_content_type = SelectField(
        _l("Body format"),
        choices=[SelectChoice(key, label) for key, label in CONTENT_TYPES.items()],
        invalid_choice_message=CHOICE_ERROR,
    )
    sms_http_body = TextAreaField(
        _l("Body"),
        validators=[length_limit(2000)],
        description=_l(
            "{to} becomes the number with its country code, {body} the message and {from} "
            "the sender below, each escaped for the body format. For example: "
            "To={to}&From={from}&Body={body}"
        ),
        render_kw={"rows": 3, "spellcheck": "false"},
    )
    sms_from = StringField(
        _l("Sender number or name"),
        filters=[strip_spaces],
        validators=[length_limit(40)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )

    def validate_sms_email_address(self, field):
        if self.sms_mode.data == "email":
            problem = textmsg.address_problem(field.data or "")
            if problem:
                raise ValidationError(problem)

    def validate_sms_http_url(self, field):
        if self.sms_mode.data == "http":
            problem = textmsg.url_problem(field.data or "")
            if problem:
                raise ValidationError(problem)

    def validate_sms_http_body(self, field):
        if self.sms_mode.data == "http":
            problem = textmsg.template_problem(
                field.data or "", self.sms_http_content_type.data or "form"
            )
            if problem:
                raise ValidationError(problem)

    def validate_sms_http_auth(self, field):
        if field.data:
            problem = textmsg.auth_problem(field.data)
            if problem:
                raise ValidationError(problem)

    def validate_remove_sms_http_auth(self, field):
        if field.data and self.sms_http_auth.data:
            raise ValidationError(
                _l("Either type a new header or remove the stored one, not both.")
            )


def form_data(settings: dict) -> dict:
    """The stored settings as the form's starting values (never the header)."""
    data = {key: settings[key] for key in MESSAGE_SETTINGS}
    data.pop("sms_http_auth")
    for key in ("quiet_from", "quiet_until"):
        data[key] = time.fromisoformat(str(data[key]))
    return data


def typed_values(form: MessagingForm, current: dict) -> dict:
    """The settings as typed; an empty header keeps the stored one unless removed."""
    values = {key: form[key].data for key in MESSAGE_SETTINGS if key != "sms_http_auth"}
    for key in ("quiet_from", "quiet_until"):
        values[key] = values[key].strftime("%H:%M")
    values["sms_http_body"] = values["sms_http_body"] or ""
    if form.remove_sms_http_auth.data:
        values["sms_http_auth"] = ""
    else:
        values["sms_http_auth"] = (form.sms_http_auth.data or "").strip() or current.get(
            "sms_http_auth", ""
        )
    return values
