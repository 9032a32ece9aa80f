"""The staff account forms (sign in, a code, a new or changed password, the first admin)
and the email and password rules as form validators, which the Users page's forms share.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from patientapp.domain.accounts import MAX_EMAIL, email_problem
from patientapp.domain.passwords import password_problem
from patientapp.web.context import clinic_settings
from patientapp.web.forms import length_limit


def email_rule(_form, field) -> None:
    """The email rule as a form validator, so a page shows every problem at once."""
    if field.errors:  # the length limit before it has already said what is wrong
        return
    problem = email_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def password_rule(form, field) -> None:
    """The password rules as a form validator. The person's details come from the form's
    email and name fields, or from `form.account` (an account dict) set by the view."""
    account = getattr(form, "account", None) or {}
    details = [account.get("email", ""), account.get("display_name", "")]
    details += [form[name].data or "" for name in ("email", "display_name") if name in form]
    problem = password_problem(field.data or "", [*details, clinic_settings()["clinic_name"]])
    if problem:
        raise ValidationError(problem)


# --- forms -------------------------------------------------------------------------------

EMAIL_REQUIRED = DataRequired(message=_l("Please enter an email address."))
PASSWORD_REQUIRED = DataRequired(message=_l("Please enter a password."))


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[EMAIL_REQUIRED, length_limit(200)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[PASSWORD_REQUIRED, length_limit(500)],
        render_kw={"autocomplete": "current-password"},
    )


class NewPasswordForm(FlaskForm):
    """A new password typed twice, long enough."""

    password = PasswordField(
        _l("Password"),
        validators=[PASSWORD_REQUIRED, length_limit(500), password_rule],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Password again"),
        validators=[
            PASSWORD_REQUIRED,
            EqualTo("password", message=_l("The two passwords are not the same.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class SetupForm(NewPasswordForm):
    email = EmailField(
        _l("Email"),
        validators=[EMAIL_REQUIRED, length_limit(MAX_EMAIL)],  # create_account checks the rest
        render_kw={"autocomplete": "username"},
    )
    display_name = StringField(
        _l("Your name as colleagues see it"),
        validators=[DataRequired(message=_l("Please enter a name.")), length_limit(80)],
    )


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Please enter the code.")), length_limit(40)],
        render_kw={
            "autocomplete": "one-time-code",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(
        _l("Current password"),
        validators=[PASSWORD_REQUIRED, length_limit(500)],
        render_kw={"autocomplete": "current-password"},
    )
