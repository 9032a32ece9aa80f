"""The CSV export for a clinic's quality review: one row per visit, columns generated from
the questionnaire definition (choice ids and their labels side by side), each item's
columns and cells as its type gives them (``ItemType.csv_columns``, ``csv_cells``).

A cell a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a carriage
return) is prefixed with an apostrophe, so a patient's text can never become a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime

from flask_babel import gettext

from patientapp.domain.records import Visit, time_text
from patientapp.questionnaire.model import Item, Questionnaire

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HELD = "in_person"  # the cell of an item the patient kept for talking in person
VISIT_COLUMNS = (
    "visit_id",
    "patient_ref",
    "appointment_at",
    "status",
    "answer_language",
    "questionnaire_version",
    "started_at",
    "submitted_at",
    "safety",
)
# A column named apart from the Visit record's own attribute (the record's "id").
VISIT_KEYS = {"visit_id": "id"}


def neutralise(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _label(item: Item, choice_id: str | None) -> str:
    choice = item.choice(choice_id) if choice_id else None
    return gettext(choice.label) if choice else (choice_id or "")


def columns(item: Item) -> list[str]:
    """The column names of one item, as its type gives them."""
    return item.item_type.csv_columns(item)


def cells(item: Item, value) -> list[str]:
    """One item's stored answer as its cells (empty when skipped)."""
    if value is None:
        return [""] * len(columns(item))
    return item.item_type.csv_cells(item, value, _label)


def header(definition: Questionnaire) -> list[str]:
    names = list(VISIT_COLUMNS)
    for section in definition.sections:
        for item in section.items:
            names += columns(item)
    return names


def _visit_cell(visit: Visit, name: str):
    value = getattr(visit, VISIT_KEYS.get(name, name))
    # Times as the stored times always read: "2026-11-25 14:00:00" in the clinic's zone.
    return time_text(value) if isinstance(value, datetime) else value


def row(definition: Questionnaire, visit: Visit, answers: Mapping, in_person: set) -> list:
    values = [_visit_cell(visit, name) or "" for name in VISIT_COLUMNS]
    for section in definition.sections:
        for item in section.items:
            if item.id in in_person and item.id in answers:
                values += [HELD] * len(columns(item))
            else:
                values += cells(item, answers.get(item.id))
    return values


def to_csv(definition: Questionnaire, visits: Iterable[tuple[Visit, Mapping, set]]) -> str:
    """The whole export: a header, then one row per (visit, answers, held items)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header(definition))
    for visit, answers, in_person in visits:
        writer.writerow([neutralise(v) for v in row(definition, visit, answers, in_person)])
    return out.getvalue()
