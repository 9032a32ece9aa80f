"""The CSV export for a clinic's quality review: one row per visit, columns generated from
the questionnaire definition, each item's columns and cells as its type gives them
(``ItemType.csv_columns``, ``csv_cells``), each standard measure's total and band after
the last of its items, then one status column per item.

Made for Excel and pandas alike:

- UTF-8 with a byte order mark, so Excel on Windows reads Arabic, Chinese and accents
  right; ``pandas.read_csv(path, encoding="utf-8-sig")`` and Python's
  ``open(path, encoding="utf-8-sig")`` drop the mark.
- Every time is ISO 8601 with its UTC offset, in the clinic's zone
  (``2026-11-25T14:00:00-06:00``).
- Choice ids stay as they are; their labels are in the language asked for, as the
  summary translates them.
- A cell holding several choices joins them with ``|`` (CSV_JOIN): choice ids never hold
  it and a label's own ``|`` becomes ``/``, so ``cell.split("|")`` (or pandas'
  ``Series.str.get_dummies()``, whose separator it is) gives them back exactly. Free text
  is never joined with anything: a medicine list has columns per row.
- ``<item> status`` says what the item's cells mean: ``answered``; ``held`` (the patient
  kept it for talking in person: its cells are empty, as the answer stays with the
  psychiatrist); ``skipped``; ``not_asked`` (an earlier answer left it unasked); or
  ``not_sent`` (the visit is not sent, and answers leave only once sent, since the
  patient can still change them or keep them for in person). A patient who typed
  "in_person" is ``answered``. The items of a standard measure the visit did not offer
  are ``not_asked``.
- ``<measure> total`` and ``<measure> band`` (``phq9 total``, ``phq9 band``; GAD-7 alike,
  after the last of the measure's items: PHQ-9's is S1, its item 9): the total as a whole
  number and its band in English (``minimal`` ... ``severe``), scored as the one page
  scores it (``summary.measures``). Empty when there is no total: the measure was not
  offered, an item was skipped or held (a held answer's value is never used), or the
  visit is not sent.

A cell a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a carriage
return) is prefixed with an apostrophe, so a patient's text can never become a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo

from flask_babel import force_locale

from patientapp.domain import visits as visit_rules
from patientapp.domain.records import Visit
from patientapp.questionnaire.display import label as choice_label
from patientapp.questionnaire.instruments import Instrument
from patientapp.questionnaire.model import Item, Questionnaire
from patientapp.questionnaire.types import CSV_JOIN
from patientapp.summary import measures

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What an item's status column says.
ANSWERED, HELD, SKIPPED, NOT_ASKED, NOT_SENT = (
    "answered",
    "held",
    "skipped",
    "not_asked",
    "not_sent",
)
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
STATUS_SUFFIX = " status"
TOTAL_SUFFIX, BAND_SUFFIX = " total", " band"


def neutralise(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _label(item: Item, choice_id: str | None) -> str:
    """A choice's label in the current language, as the summary shows it; never holding
    CSV_JOIN, so a joined cell splits back exactly. An unknown id stays as it is."""
    if not choice_id:
        return ""
    if item.choice(choice_id) is None:
        return choice_id
    return choice_label(item, choice_id).replace(CSV_JOIN, "/")


def columns(item: Item) -> list[str]:
    """The column names of one item, as its type gives them."""
    return item.item_type.csv_columns(item)


def cells(item: Item, value) -> list:
    """One item's stored answer as its cells (empty when skipped)."""
    if value is None:
        return [""] * len(columns(item))
    return item.item_type.csv_cells(item, value, _label)


def _items(definition: Questionnaire) -> list[Item]:
    return [item for section in definition.sections for item in section.items]


def _measures_after(definition: Questionnaire) -> dict[str, list[Instrument]]:
    """Each standard measure by the last of its items in questionnaire order, where its
    total and band columns follow (PHQ-9's last is S1, asked as its item 9)."""
    order = [item.id for item in _items(definition)]
    after: dict[str, list[Instrument]] = {}
    for instrument in definition.instruments:
        members = {member.id for member in instrument.items}
        last = [item_id for item_id in order if item_id in members][-1]
        after.setdefault(last, []).append(instrument)
    return after


def measure_columns(instrument: Instrument) -> list[str]:
    return [instrument.id + TOTAL_SUFFIX, instrument.id + BAND_SUFFIX]


def header(definition: Questionnaire) -> list[str]:
    names = list(VISIT_COLUMNS)
    after = _measures_after(definition)
    for item in _items(definition):
        names += columns(item)
        for instrument in after.get(item.id, ()):
            names += measure_columns(instrument)
    return names + [item.id + STATUS_SUFFIX for item in _items(definition)]


def timestamp(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """A stored local time as ISO 8601 with its offset, in ``zone`` (None: the server's
    own zone), to the second."""
    if moment is None:
        return ""
    aware = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    return aware.isoformat(timespec="seconds")


def _visit_cell(visit: Visit, name: str, zone: tzinfo | None):
    value = getattr(visit, VISIT_KEYS.get(name, name))
    return timestamp(value, zone) if isinstance(value, datetime) else value


def status(visit: Visit, item: Item, answers: Mapping, in_person: set, unasked) -> str:
    """What one item's cells mean for this visit (the module's docstring)."""
    if not visit_rules.is_sent(visit):
        return NOT_SENT
    if item.id in unasked:
        return NOT_ASKED
    if answers.get(item.id) is None:
        return SKIPPED
    return HELD if item.id in in_person else ANSWERED


def row(
    definition: Questionnaire,
    visit: Visit,
    answers: Mapping,
    in_person: set,
    zone: tzinfo | None = None,
) -> list:
    """One visit's cells, in header order; only what an item's status allows leaves."""
    values = [_visit_cell(visit, name, zone) or "" for name in VISIT_COLUMNS]
    unasked = definition.not_asked(answers, visit.offered)
    statuses = [status(visit, item, answers, in_person, unasked) for item in _items(definition)]
    sent = visit_rules.is_sent(visit)
    scores = {
        score.instrument.id: score
        for score in (
            measures.scores(definition, visit.offered, answers, in_person) if sent else ()
        )
    }
    after = _measures_after(definition)
    for item, said in zip(_items(definition), statuses, strict=True):
        values += cells(item, answers.get(item.id) if said == ANSWERED else None)
        for instrument in after.get(item.id, ()):
            score = scores.get(instrument.id)
            total = score.total if score is not None else None
            band = score.band.label if score is not None and score.band is not None else ""
            values += ["", ""] if total is None else [total, band]
    return values + statuses


def to_csv(
    definition: Questionnaire,
    visits: Iterable[tuple[Visit, Mapping, set]],
    language: str = "en",
    zone: tzinfo | None = None,
) -> str:
    """The whole export, from its byte order mark: a header, then one row per (visit,
    answers, held items), labels in ``language``, times in ``zone``."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(header(definition))
    with force_locale(language):
        for visit, answers, in_person in visits:
            values = row(definition, visit, answers, in_person, zone)
            writer.writerow([neutralise(value) for value in values])
    return out.getvalue()
