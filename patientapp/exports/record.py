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
FHIR_JSON_UTF8 = "application/fhir+json; charset=utf-8"


def questionnaire_json(languages: Iterable[str]) -> dict:
    return fhir.questionnaire_resource(questionnaire.default(), list(languages))


def code_systems(languages: Iterable[str]) -> list[dict]:
    return fhir.code_systems(questionnaire.default(), list(languages))


def response_for(db, visit: Visit, *, settings: Mapping, base_url: str, full: bool = True) -> dict:
    """The QuestionnaireResponse of one visit, from what is stored. `settings`: the
    clinic's (its time zone, whether references are chart numbers and their system);
    `base_url`: the configured PATIENTAPP_BASE_URL, "" when none (never a request's Host:
    it names the visit's identifier system); `full` False: status and progress only (a
    visit not sent, see ``fhir.response_resource``)."""
    answers, in_person = storage.answers_for(db, visit.id) if full else ({}, set())
    return fhir.response_resource(
        visit=visit,
        answers=answers,
        in_person=in_person,
        languages=storage.answer_languages(db, visit.id) if full else {},
        definition=questionnaire.default(),
        zone=storage.zone_named(settings["time_zone"]),
        visit_system=f"{base_url}/visits" if base_url else None,
        chart_numbers=bool(settings["references_are_chart_numbers"]),
        chart_system=str(settings.get("chart_number_system") or ""),
        full=full,
    )
