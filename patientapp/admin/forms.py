"""Forms of the admin blueprint (admin.py): accounts, clinic settings, the audit log filter.

Choices read from the database or the configuration (offered languages, audit actions,
people) are filled in by the views.
"""

from __future__ import annotations

import re
from functools import cache

from babel.dates import get_day_names
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, NumberRange, Optional, ValidationError

from patientapp.auth.forms import email_rule, password_rule
from patientapp.db.storage import ZONE_NAME_MAX
from patientapp.domain import backups, mail
from patientapp.domain.accounts import MAX_EMAIL, ROLE_LABELS, ROLES
from patientapp.web.context import now, zone_named
from patientapp.web.forms import (
    CHOICE_ERROR,
    MultiCheckboxField,
    in_calendar,
    length_limit,
    strip_spaces,
)

VISIT_ID = re.compile(r"^[0-9]{1,9}$")
# An identifier system: an absolute URI without spaces (urn:oid:, urn:uuid:, http(s)://).
SYSTEM_URI = re.compile(r"^(urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[^\s]+|https?://[^\s/]+[^\s]*)$")


def _role_choices() -> list[SelectChoice]:
    return [SelectChoice(role, ROLE_LABELS[role]) for role in ROLES]


class NewUserForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        filters=[strip_spaces],
        validators=[
            DataRequired(message=_l("Please enter an email address.")),
            length_limit(MAX_EMAIL),
            email_rule,
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    display_name = StringField(
        _l("Name as colleagues see it"),
        filters=[strip_spaces],
        validators=[DataRequired(message=_l("Please enter a name.")), length_limit(80)],
        render_kw={"autocomplete": "off"},
    )
    # The least privilege unless the admin chooses more.
    role = SelectField(_l("Role"), choices=_role_choices(), default="frontdesk")
    password = PasswordField(
        _l("Initial password"),
        description=_l(
            "At least 10 characters. Give it to them in person; they can change it under "
            "My account once they have signed in."
        ),
        validators=[
            DataRequired(message=_l("Please enter a password.")),
            length_limit(500),
            password_rule,
        ],
        render_kw={"autocomplete": "new-password"},
    )


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=_role_choices())


class PasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        description=_l("At least 10 characters."),
        validators=[
            DataRequired(message=_l("Please enter a password.")),
            length_limit(500),
            password_rule,
        ],
        render_kw={"autocomplete": "new-password"},
    )


class WholeNumberField(IntegerField):
    """A whole number within a range, with one clear message for any bad input."""

    def __init__(self, label, low: int, high: int, **kwargs):
        self.range_message = _l(
            "Please enter a whole number from %(low)s to %(high)s.", low=low, high=high
        )
        super().__init__(
            label,
            validators=[NumberRange(low, high, self.range_message)],
            render_kw={"min": low, "max": high, "inputmode": "numeric"},
            **kwargs,
        )

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            # WTForms' own "Not a valid integer value." says less than the range does.
            raise ValueError(str(self.range_message)) from exc


def _normalise_lines(value):
    """Keep the admin's line breaks, in one form, without trailing blank space."""
    return (
        value.replace("\r\n", "\n").replace("\r", "\n").strip() if isinstance(value, str) else value
    )


class SettingsForm(FlaskForm):
    clinic_name = StringField(
        _l("Clinic name"),
        filters=[strip_spaces],
        validators=[length_limit(120)],
        description=_l("Shown at the top of every page. Leave empty to show “Your clinic”."),
    )
    crisis_phone_numbers = TextAreaField(
        _l("Crisis phone numbers"),
        default="",
        filters=[_normalise_lines],
        validators=[length_limit(300)],
        description=_l(
            "Shown under the general message in every language that has no text of its "
            "own. Numbers and names only, so they read the same in any language."
        ),
        render_kw={"rows": 3, "dir": "auto"},
    )
    languages = MultiCheckboxField(_l("Languages offered to patients"))
    measures = MultiCheckboxField(
        _l("Standard measures on new invitations"),
        description=_l(
            "Ticked here, they are ticked on every new invitation; staff can untick them "
            "for one patient. Each is asked only in languages with an official translation."
        ),
    )
    invite_extra_days = WholeNumberField(
        _l("Extra days an invitation works after the appointment day"),
        0,
        14,
        description=_l("0 means until the end of the appointment day."),
    )
    patient_idle_minutes = WholeNumberField(
        _l("Minutes before an idle patient's page closes"), 5, 120
    )
    retention_days = WholeNumberField(
        _l("Days to keep visits and answers"),
        30,
        3650,
        description=_l("Older visits are deleted automatically once a day."),
    )
    # The default stands in for a field a script leaves out (a browser always sends it).
    backup_overdue_days = WholeNumberField(
        _l("Days before a backup or restore check is overdue"),
        *backups.OVERDUE_RANGE,
        default=backups.DEFAULT_OVERDUE_DAYS,
        description=_l(
            "This page warns when the last backup, or the last copy checked with "
            "verify-backup, is older than this."
        ),
    )
    mfa_frontdesk = BooleanField(
        _l("Front desk also signs in with a code from an authenticator app"),
        description=_l(
            "Admins and psychiatrists always do. Each person sets it up at their next sign-in."
        ),
    )
    # Sign-in with the clinic's OpenID Provider (auth/provider.py).
    local_sign_in = SelectField(
        _l("Who may sign in with a password"),
        choices=[
            SelectChoice("everyone", _l("Everyone")),
            SelectChoice("admins", _l("Admins only")),
        ],
        default="everyone",
        invalid_choice_message=CHOICE_ERROR,
        description=_l(
            "With Admins only, everyone else signs in with the clinic's sign-in service. "
            "An admin's password stays the way in when that service is down."
        ),
    )
    provider_link_by_email = BooleanField(
        _l("Link an account by its e-mail the first time someone signs in"),
        description=_l(
            "Only when the sign-in service says it checked the e-mail address. Otherwise "
            "each person needs a link from an admin, made on their page under Users."
        ),
    )
    provider_trust_mfa = BooleanField(
        _l("Accept the sign-in service's second factor"),
        description=_l(
            "When the service says the person used a second factor, they are not asked "
            "for a code from their authenticator app here."
        ),
    )

    time_zone = StringField(
        _l("Clinic time zone"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(ZONE_NAME_MAX)],
        description=_l(
            "A time zone name such as America/Chicago or Europe/Paris. Pages show times "
            "in it. Leave empty to use the server's time zone."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    references_are_chart_numbers = BooleanField(
        _l("Patient references are chart numbers"),
        description=_l(
            "Tick this only if the reference typed on each invitation is the patient's chart "
            "number: FHIR exports then name the patient by it."
        ),
    )
    chart_number_system = StringField(
        _l("Chart number system"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(200)],
        description=_l(
            "The URI your medical record uses for chart numbers (for example "
            "urn:oid:1.2.3.4 or https://hospital.example/mrn). FHIR exports name the patient "
            "under it. Leave empty if you do not know it: the number is then sent without "
            "a system."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )

    escalate_after_minutes = WholeNumberField(
        _l("Minutes before an unacknowledged safety alert is escalated"),
        1,
        120,
        description=_l(
            "Then every staff page shows it as escalated, and one e-mail goes to the on-call "
            "address when outgoing mail is set up."
        ),
    )
    alert_sound = BooleanField(
        _l("Play a sound on staff pages when a safety alert arrives"),
        description=_l(
            "A short tone from each open staff page when a new alert comes in, besides the "
            "red bar and the count in the tab's title. The browser plays it once someone "
            "has clicked on the page."
        ),
    )

    def validate_languages(self, field):
        if not field.data:
            raise ValidationError(_l("Please offer at least one language."))

    def validate_chart_number_system(self, field):
        if field.data and not SYSTEM_URI.match(field.data):
            raise ValidationError(
                _l("Please enter a URI such as urn:oid:1.2.3.4 or https://hospital.example/mrn.")
            )

    def validate_time_zone(self, field):
        if field.data and zone_named(field.data) is None:
            # gettext, not _l: a lazy string counts as safe HTML in Jinja (its __html__
            # returns it as is), so the name typed would reach the page unescaped.
            raise ValidationError(
                gettext(
                    "There is no time zone called “%(name)s”. Use a name like America/Chicago.",
                    name=field.data,
                )
            )

    def validate(self, extra_validators=None) -> bool:
        """Each field's own checks, then each weekday's two times together (the boxes
        come from settings_form_class)."""
        valid = super().validate(extra_validators)
        for day, name in zip(WEEKDAYS, weekday_names(), strict=True):
            valid = self._check_day(day, name) and valid
        return valid

    def _check_day(self, day: str, name: str) -> bool:
        """Both times or neither (closed), and "until" later than "from"."""
        start, end = (self[field] for field in staffed_field_names(day))
        if start.errors or end.errors:
            return False  # a time that is no time, marked already
        if start.data is None and end.data is None:
            return True  # closed that day
        if start.data is None or end.data is None:
            (start if start.data is None else end).errors.append(
                gettext(
                    "Please fill in both times for %(day)s, or leave both empty if the "
                    "clinic is closed that day.",
                    day=name,
                )
            )
            return False
        if end.data.replace(second=0) <= start.data.replace(second=0):
            end.errors.append(gettext("On %(day)s, “Until” must be later than “From”.", day=name))
            return False
        return True


# --- staffed hours: a "from" and an "until" box per weekday --------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # the staffed_hours order
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]  # what a browser's time box sends


def staffed_field_names(day: str) -> tuple[str, str]:
    """The names of one weekday's "from" and "until" boxes."""
    return f"staffed_{day}_from", f"staffed_{day}_until"


def weekday_names() -> list[str]:
    """Monday to Sunday in the reader's language, from Babel's locale data."""
    names = get_day_names("wide", context="stand-alone", locale=get_locale())
    return [names[index] for index in range(len(WEEKDAYS))]


_TIME_BOX = {
    "validators": [Optional()],
    "format": TIME_FORMATS,
    "invalid_value_message": _l("Please enter a time like 08:30, or leave it empty."),
}


def _staffed_fields() -> dict[str, TimeField]:
    fields = {}
    for day in WEEKDAYS:
        start, end = staffed_field_names(day)
        # Translators: the time the front desk is staffed from, on one weekday.
        fields[start] = TimeField(_l("From"), **_TIME_BOX)
        # Translators: the time the front desk is staffed until, on one weekday.
        fields[end] = TimeField(_l("Until"), **_TIME_BOX)
    return fields


def crisis_field_name(code: str) -> str:
    return f"crisis_text_{code}"


@cache
def settings_form_class(languages: tuple[tuple[str, str, str], ...]) -> type[SettingsForm]:
    """SettingsForm with one crisis text per language, given as (code, name, tag), and
    the staffed hours' two boxes per weekday."""
    fields = {
        crisis_field_name(code): TextAreaField(
            _l("What to do in a crisis, in %(language)s", language=name),
            filters=[_normalise_lines],
            validators=[length_limit(1000)],
            render_kw={"rows": 4, "dir": "auto", "lang": tag},
        )
        for code, name, tag in languages
    }
    return type("LanguageSettingsForm", (SettingsForm,), {**fields, **_staffed_fields()})


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form: nothing changes, and the URL must be shareable

    action = SelectField(_l("Action"), default="", invalid_choice_message=CHOICE_ERROR)
    user = SelectField(_l("Person"), default="", invalid_choice_message=CHOICE_ERROR)
    visit = StringField(_l("Visit ID"), filters=[strip_spaces], render_kw={"inputmode": "numeric"})
    since = DateField(
        _l("From date"),
        validators=[Optional(), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
    )
    until = DateField(
        _l("To date"),
        validators=[Optional(), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
    )

    def validate_visit(self, field):
        if field.data and not VISIT_ID.match(field.data):
            raise ValidationError(_l("Please enter a visit number, like 42."))


class TokenForm(FlaskForm):
    name = StringField(
        _l("Name of the integration"),
        filters=[strip_spaces],
        validators=[DataRequired(message=_l("Please enter a name.")), length_limit(80)],
        description=_l("For example: EHR interface, research register."),
        render_kw={"autocomplete": "off"},
    )
    expires_on = DateField(
        _l("Expires on"),
        validators=[Optional(), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
        description=_l("Optional. The token stops working at the end of this day."),
    )
    in_progress = BooleanField(
        _l("Also read visits not yet sent (status and progress only)"),
        description=_l(
            "Off unless ticked. No answer leaves before the patient sends it: until then "
            "the patient may still keep any answer for talking in person."
        ),
    )

    def validate_expires_on(self, field):
        if field.data and field.data < now().date():
            raise ValidationError(_l("Please choose today or a later day."))


class ExportForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form: it only reads, and its link can be bookmarked

    since = DateField(
        _l("From date"),
        validators=[DataRequired(message=_l("Please enter a valid date.")), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
    )
    until = DateField(
        _l("To date"),
        validators=[DataRequired(message=_l("Please enter a valid date.")), in_calendar],
        invalid_value_message=_l("Please enter a valid date."),
    )
    # The shipped languages, filled in by the view; the clinic's default when not given.
    language = SelectField(_l("Language of the labels"), invalid_choice_message=CHOICE_ERROR)

    def validate_until(self, field):
        if self.since.data and field.data and field.data < self.since.data:
            raise ValidationError(_l("The end date must not be before the start date."))
        if self.since.data and field.data and (field.data - self.since.data).days > 366:
            raise ValidationError(_l("Please choose at most one year."))


# --- outgoing mail -----------------------------------------------------------------------

# A host name (letters, digits, dots and dashes) or an IP address (IPv6 in brackets or not).
SMTP_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?)$"
)


def _optional_email(form, field) -> None:
    """The one email rule, for an address that may be left empty."""
    if field.data:
        email_rule(form, field)


class MailForm(FlaskForm):
    """The clinic's relay for escalation e-mails. The password is never shown again: left
    empty it keeps the stored one."""

    smtp_host = StringField(
        _l("Mail relay (SMTP host)"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(253)],
        description=_l(
            "For example smtp.clinic.example, or localhost for a relay on this server. "
            "Leave empty to send no e-mail."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    smtp_port = WholeNumberField(_l("Port"), 1, 65535, default=mail.DEFAULT_PORT)
    smtp_security = SelectField(
        _l("Connection security"),
        choices=[SelectChoice(key, label) for key, label in mail.SECURITY_LABELS.items()],
        default=mail.DEFAULT_SECURITY,
        invalid_choice_message=CHOICE_ERROR,
    )
    smtp_user = StringField(
        _l("User name at the relay"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(200)],
        description=_l("Leave empty if the relay takes mail without signing in."),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    smtp_password = PasswordField(
        _l("Password at the relay"),
        validators=[length_limit(500)],
        render_kw={"autocomplete": "new-password"},
    )
    remove_password = BooleanField(_l("Remove the stored password"))
    mail_from = EmailField(
        _l("Sender address"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(MAX_EMAIL), _optional_email],
        description=_l("The address the e-mails come from, one the relay may send as."),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    oncall_address = EmailField(
        _l("On-call address"),
        default="",
        filters=[strip_spaces],
        validators=[length_limit(MAX_EMAIL), _optional_email],
        description=_l(
            "Who is told when a safety alert stays unacknowledged: a person or a group "
            "that someone reads at all clinic hours."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )

    def validate_smtp_host(self, field):
        if field.data and not SMTP_HOST.match(field.data):
            raise ValidationError(
                _l(
                    "A host name has no spaces or other signs: letters, digits, dots and "
                    "dashes, like smtp.clinic.example."
                )
            )

    def validate_mail_from(self, field):
        if self.smtp_host.data and not field.data:
            raise ValidationError(
                _l("Please enter the sender address: no e-mail leaves without it.")
            )

    def validate_oncall_address(self, field):
        if self.smtp_host.data and not field.data:
            raise ValidationError(
                _l("Please enter the on-call address: it is who gets the e-mail.")
            )

    def validate_remove_password(self, field):
        if field.data and self.smtp_password.data:
            raise ValidationError(
                _l("Either type a new password or remove the stored one, not both.")
            )
