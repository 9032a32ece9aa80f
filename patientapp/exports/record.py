"""The FHIR resources as they leave the app: the Questionnaire in the offered languages,
and one visit's QuestionnaireResponse read from the database. The API serves both
(``api``); staff download a visit's (``staff``). Built by ``fhir``.

No Flask request is needed: callers pass the database, the clinic's settings and the
address links are built on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from patientapp.db import storage
from patientapp.exports import fhir
from patientapp.questionnaire import model as questionnaire

if TYPE_CHECKING:
    from patientapp.domain.records import Visit

FHIR_JSON = "application/fhir+json"


def questionnaire_json(languages: Iterable[str]) -> dict:
    return fhir.questionnaire_resource(questionnaire.default(), list(languages))


def response_for(db, visit: Visit, *, settings: Mapping, base_url: str) -> dict:
    """The QuestionnaireResponse of one visit, from what is stored. `settings`: the
    clinic's (its time zone, whether references are chart numbers)."""
    answers, in_person = storage.answers_for(db, visit.id)
    return fhir.response_resource(
        visit=visit,
        answers=answers,
        in_person=in_person,
        languages=storage.answer_languages(db, visit.id),
        safety_history=storage.safety_answers(db, visit.id),
        definition=questionnaire.default(),
        zone=storage.zone_named(settings["time_zone"]),
        visit_system=f"{base_url}/visits",
        chart_numbers=bool(settings["references_are_chart_numbers"]),
    )
