"""The patient's questionnaire forms: one Flask-WTF form per section, built at run time
from the definition.

Every field is optional (each question can be skipped). What each item type asks,
checks and stores is its own (``item_types``); this module puts a section's items
together, fills them from stored answers and reads them back.
"""

from __future__ import annotations

from functools import lru_cache

from flask_wtf import FlaskForm

from .questionnaire import Item, Section


@lru_cache(maxsize=64)
def section_form_class(section: Section, med_rows: int = 2) -> type[FlaskForm]:
    """A FlaskForm class for one section (cached: classes are immutable once built)."""
    fields: dict[str, object] = {}
    for item in section.items:
        fields.update(item.item_type.fields(item, med_rows))
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
        if value is not None:
            data.update(item.item_type.form_data(item, value))
    return data


def answers_from(section: Section, form: FlaskForm) -> dict[str, object]:
    """A validated form's answers by item id; None marks a skipped item."""
    return {item.id: item.item_type.answer(item, form) for item in section.items}
