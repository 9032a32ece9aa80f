"""Form pieces the questionnaire's item types ask with, and every blueprint's forms share
(through ``web.forms``): a checkbox group, our words for WTForms' choice check, a length
limit that names itself, and a filter that trims spaces.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectMultipleField
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# Our own words for WTForms' built-in checks, so every shipped language has them.
CHOICE_ERROR = _l("Please pick one of the choices shown.")


def length_limit(max_length: int) -> Length:
    """A length check whose message names the limit, in the reader's language."""
    return Length(
        max=max_length,
        message=_l("Please keep this to %(max)s characters or fewer.", max=max_length),
    )


def strip_spaces(value):
    return value.strip() if isinstance(value, str) else value
