"""What a record looks for beside a visit's QuestionnaireResponse, read from the database
(issue 22, parts 7 and 8): one Observation per saved safety value and one per standard
measure's total (PHQ-9, GAD-7; CONTENT.md v3), the safety alert as a Flag, and the
one-page summary as a DocumentReference. Built by ``fhir``.

Only for a sent visit: the callers check (``api``), as for a response's answers. The
summary is built exactly as the staff summary page builds it (``one_page``)
and rendered by ``summary.text.plain_text``, the text staff download or copy for the
medical record, in the language the caller names; held answers are never in it (the
summary names their topics only). No Flask request is needed, only an app context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from patientapp.db import storage
from patientapp.exports import fhir
from patientapp.questionnaire import model as questionnaire
from patientapp.summary import measures
from patientapp.summary import view as summary_view
from patientapp.summary.text import plain_text

if TYPE_CHECKING:
    from patientapp.domain.records import Visit

DEFAULT_CLINIC_NAME = _l("Your clinic")  # as the staff pages name a clinic with no name


def _patient(settings: Mapping) -> dict:
    return {
        "chart_numbers": bool(settings["references_are_chart_numbers"]),
        "chart_system": str(settings.get("chart_number_system") or ""),
    }


def _scores(db, visit: Visit) -> list:
    """The visit's standard measures, scored as the one page scores them: only those it
    offered, and never with a held answer's value."""
    if not visit.offered:
        return []
    answers, in_person = storage.answers_for(db, visit.id)
    return measures.scores(questionnaire.default(), visit.offered, answers, in_person)


def observations(db, visit: Visit, *, settings: Mapping) -> list[dict]:
    """The visit's saved safety values, one Observation each, oldest first; then the
    total of each standard measure it offered that has one."""
    zone = storage.zone_named(settings["time_zone"])
    return fhir.safety_observations(
        visit=visit,
        history=storage.safety_answers(db, visit.id),
        definition=questionnaire.default(),
        zone=zone,
        **_patient(settings),
    ) + fhir.measure_observations(
        visit=visit, scores=_scores(db, visit), zone=zone, **_patient(settings)
    )


def flags(db, visit: Visit, *, settings: Mapping) -> list[dict]:
    """The visit's safety alert as a Flag: one, or none when no alert was raised."""
    flag = fhir.safety_flag(
        visit=visit,
        alert=storage.alert_for(db, visit.id),
        history=storage.safety_answers(db, visit.id),
        zone=storage.zone_named(settings["time_zone"]),
        **_patient(settings),
    )
    return [flag] if flag else []


def one_page(db, visit: Visit, *, clinic: str, language: str) -> summary_view.SummaryView:
    """The one page of a sent visit, in the current locale, for a reader of ``language``:
    what the staff summary page, its print and text, and the API's DocumentReference
    show; besides the visit's own, the answers of the earlier visits it names in
    ``earlier_shown``."""
    answers, in_person = storage.answers_for(db, visit.id)
    previous = storage.previous_visit(db, visit)
    previous_answers = previous_in_person = None
    if previous:
        previous_answers, previous_in_person = storage.answers_for(db, previous.id)
    return summary_view.build(
        earlier=summary_view.earlier_answers(db, visit),
        visit=visit,
        answers=answers,
        in_person=in_person,
        previous=previous,
        previous_answers=previous_answers,
        previous_in_person=previous_in_person,
        alert=storage.alert_for(db, visit.id),
        clinic=clinic,
        questionnaire=questionnaire.default(),
        reader_language=language,
        answer_languages=storage.answer_languages(db, visit.id),
        safety_history=storage.safety_answers(db, visit.id),
        earlier_acknowledgements=storage.earlier_acknowledgements(db, visit.id),
    )


def _one_page_text(db, visit: Visit, settings: Mapping, language: str):
    """The one page's text and the earlier visits it shows (``earlier_shown``)."""
    clinic = str(settings.get("clinic_name") or DEFAULT_CLINIC_NAME)
    with force_locale(language):
        view = one_page(db, visit, clinic=clinic, language=language)
        return plain_text(view), view.earlier_shown


def documents_shown(
    db, visit: Visit, *, settings: Mapping, language: str
) -> tuple[list[dict], tuple[int, ...]]:
    """The one page as a DocumentReference (its plain text in ``language``, as staff
    download it), and the earlier visits whose answers its text shows: a read of it is
    audited for them too."""
    text, shown = _one_page_text(db, visit, settings, language)
    document = fhir.summary_document(
        visit=visit,
        text=text,
        language=language,
        zone=storage.zone_named(settings["time_zone"]),
        **_patient(settings),
    )
    return [document], shown
