"""The patient's questionnaire forms: one Flask-WTF form per section, built at run time
from the definition.

Every field is optional (each question can be skipped). Choice values are checked
against the definition by WTForms itself; lengths, "pick up to N" and "this choice goes
alone" get clear, translated messages.
"""

from __future__ import annotations

from functools import lru_cache

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional, ValidationError

from .forms import CHOICE_ERROR, MultiCheckboxField, length_limit, strip_spaces
from .questionnaire import Item, Section


class MaxChoices:
    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, form, field):
        if field.data and len(field.data) > self.limit:
            raise ValidationError(_l("Please pick no more than %(n)s.", n=self.limit))


class ExclusiveChoice:
    """A choice such as "No worries" cannot be picked together with others."""

    def __init__(self, item: Item):
        self.exclusive = {c.id: c.label for c in item.choices if c.exclusive}

    def __call__(self, form, field):
        picked = field.data or []
        lonely = [c for c in picked if c in self.exclusive]
        if lonely and len(picked) > 1:
            raise ValidationError(
                _l(
                    "“%(choice)s” can't be picked together with other answers. "
                    "Please untick one of them.",
                    choice=_l(self.exclusive[lonely[0]]),
                )
            )


def _choices(item: Item) -> list[SelectChoice]:
    return [SelectChoice(c.id, _l(c.label)) for c in item.choices]


PREFER_NOT = SelectChoice("", _l("Prefer not to say"))


def _skippable(choices: list) -> list:
    """A radio group can't be un-ticked without script, so it gets its own way out."""
    return [*choices, PREFER_NOT]


class MedicineRow(Form):
    """One row of M1; a plain Form because the section form carries the CSRF token."""

    def validate_feeling(self, field):
        # Checked on the feeling: an empty name stops its own validators (Optional).
        if field.data and not (self.name.data or "").strip():
            raise ValidationError(_l("Please write the medicine's name, or clear the choice."))


def _medlist_fields(item: Item, rows: int):
    row_class = type(
        f"{item.id}Row",
        (MedicineRow,),
        {
            "name": StringField(
                _l(item.row_label),
                filters=[strip_spaces],
                validators=[Optional(), length_limit(item.max_length)],
                render_kw={"maxlength": item.max_length, "autocomplete": "off"},
            ),
            "feeling": _radio(_l(item.choice_label), _choices(item)),
        },
    )
    return FieldList(
        FormField(row_class), label=_l(item.prompt), min_entries=rows, max_entries=item.max_rows
    )


def _radio(label, choices) -> RadioField:
    return RadioField(
        label,
        choices=choices,
        validators=[Optional()],
        invalid_choice_message=CHOICE_ERROR,
        invalid_value_message=CHOICE_ERROR,
    )


def _fields_for(item: Item, med_rows: int) -> dict[str, object]:
    label = _l(item.prompt)
    if item.type == "single":
        return {item.id: _radio(label, _skippable(_choices(item)))}
    if item.type == "multi":
        validators = [Optional(), ExclusiveChoice(item)]
        if item.max:
            validators.append(MaxChoices(item.max))
        return {
            item.id: MultiCheckboxField(
                label,
                choices=_choices(item),
                validators=validators,
                invalid_choice_message=CHOICE_ERROR,
                invalid_value_message=CHOICE_ERROR,
            )
        }
    if item.type == "scale":
        values = [SelectChoice(str(n)) for n in range(item.min, item.max + 1)]
        return {item.id: _radio(label, _skippable(values))}
    if item.type == "text":
        return {
            item.id: TextAreaField(
                label,
                filters=[strip_spaces],
                validators=[Optional(), length_limit(item.max_length)],
                render_kw={"maxlength": item.max_length, "rows": 4},
            )
        }
    if item.type == "yesno_text":
        return {
            item.id: _radio(label, _skippable(_choices(item))),
            f"{item.id}_text": TextAreaField(
                _l(item.text_prompt),
                filters=[strip_spaces],
                validators=[Optional(), length_limit(item.max_length)],
                render_kw={"maxlength": item.max_length, "rows": 4},
            ),
        }
    if item.type == "medlist":
        return {item.id: _medlist_fields(item, med_rows)}
    raise ValueError(f"no form field for item type {item.type}")


@lru_cache(maxsize=64)
def section_form_class(section: Section, med_rows: int = 2) -> type[FlaskForm]:
    """A FlaskForm class for one section (cached: classes are immutable once built)."""
    fields: dict[str, object] = {}
    for item in section.items:
        fields.update(_fields_for(item, med_rows))
    return type(f"Section_{section.id}_{med_rows}", (FlaskForm,), fields)


def medicine_rows(answers: dict, item: Item, submitted_rows: int = 0, add: bool = False) -> int:
    """How many medicine rows to show: what is filled plus one empty, at least two."""
    filled = len(answers.get(item.id) or [])
    rows = max(2, filled + 1, submitted_rows) + (1 if add else 0)
    return min(rows, item.max_rows)


def form_data(section: Section, answers: dict) -> dict[str, object]:
    """Stored answers as form data, to fill a section's form."""
    data: dict[str, object] = {}
    for item in section.items:
        value = answers.get(item.id)
        if value is None:
            continue
        if item.type == "scale":
            data[item.id] = str(value)
        elif item.type == "yesno_text":
            data[item.id] = value.get("choice")
            data[f"{item.id}_text"] = value.get("text", "")
        else:
            data[item.id] = value
    return data


def answers_from(section: Section, form: FlaskForm) -> dict[str, object]:
    """A validated form's answers by item id; None marks a skipped item."""
    answers: dict[str, object] = {}
    for item in section.items:
        field = form[item.id]
        if item.type == "multi":
            answers[item.id] = list(field.data) or None
        elif item.type == "scale":
            answers[item.id] = int(field.data) if field.data not in (None, "") else None
        elif item.type in ("single",) or item.type == "text":
            answers[item.id] = field.data or None
        elif item.type == "yesno_text":
            choice, text = field.data or None, form[f"{item.id}_text"].data or ""
            answers[item.id] = {"choice": choice, "text": text} if (choice or text) else None
        elif item.type == "medlist":
            rows = [
                {"name": row.form.name.data, "feeling": row.form.feeling.data or None}
                for row in field
                if (row.form.name.data or "").strip()
            ]
            answers[item.id] = rows or None
    return answers
