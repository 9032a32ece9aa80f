"""Form pieces the questionnaire's item types ask with, and every blueprint's forms share
(through ``web.forms``): a checkbox group, our words for WTForms' choice check, a length
limit that names itself (counted in UTF-16 code units, as FHIR and browsers count), and a
filter that trims spaces.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectMultipleField
from wtforms.validators import Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# Our own words for WTForms' built-in checks, so every shipped language has them.
CHOICE_ERROR = _l("Please pick one of the choices shown.")


def utf16_length(text: str) -> int:
    """A text's length as FHIR clients and a browser's maxlength count it: in UTF-16 code
    units, so an emoji outside the Basic Multilingual Plane counts twice (issue 22)."""
    return len(text.encode("utf-16-le")) // 2


class Utf16Length(Length):
    """WTForms' Length, counted in UTF-16 code units (what the FHIR maxLength means)."""

    def __call__(self, form, field):
        length = utf16_length(field.data) if isinstance(field.data, str) else 0
        too_long = self.max != -1 and length > self.max
        if too_long or length < self.min:
            raise ValidationError(self.message)


def length_limit(max_length: int) -> Length:
    """A length check whose message names the limit, in the reader's language."""
    return Utf16Length(
        max=max_length,
        message=_l("Please keep this to %(max)s characters or fewer.", max=max_length),
    )


def strip_spaces(value):
    """Trimmed, with line breaks in one form: a browser sends a text box's line break as
    CR LF but counts it as one character against maxlength, so "\r\n" read as two made
    a text the box had allowed too long by one per line."""
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()
