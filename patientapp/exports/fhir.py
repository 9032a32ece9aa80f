"""FHIR R4 out of the app: the Questionnaire generated from the definition and one
QuestionnaireResponse per visit. (The project's own check of a response against the
Questionnaire is a test helper: ``tests/helpers/fhir_check.py``.)

Everything is built from ``questionnaire.toml`` and the item types: a new item or choice
appears here with no change. Each item type gives its own shapes (``fhir_question``,
``fhir_answers`` in ``item_types``: a ``medlist`` is a repeating group of name + feeling,
a ``yesno_text`` a group of a yes/no choice and a text), put together from the pieces of
``Build``; the safety item keeps its whole history as an extension. Answer options are
codings of the project's own code system, keyed by the stable choice ids.

No Flask request is needed: the callers pass the clinic's settings and zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo

from flask_babel import force_locale, gettext

from patientapp.domain.records import SafetyAnswer, Status, Visit
from patientapp.i18n import LANGUAGES, SOURCE_LANGUAGE
from patientapp.questionnaire.model import Item, Questionnaire
from patientapp.questionnaire.types import TYPES, ItemType

QUESTIONNAIRE_ID = "reflection"
QUESTIONNAIRE_URL = "urn:patientapp:fhir:Questionnaire:reflection"
CODE_SYSTEM = "urn:patientapp:fhir:CodeSystem:choice"
HELD_IN_PERSON = "urn:patientapp:fhir:StructureDefinition:held-for-in-person"
SAFETY_HISTORY = "urn:patientapp:fhir:StructureDefinition:safety-history"

HL7 = "http://hl7.org/fhir/StructureDefinition/"
TRANSLATION = HL7 + "translation"
LANGUAGE = HL7 + "language"
MAX_OCCURS = HL7 + "questionnaire-maxOccurs"
OPTION_EXCLUSIVE = HL7 + "questionnaire-optionExclusive"
MIN_VALUE = HL7 + "minValue"
MAX_VALUE = HL7 + "maxValue"
ITEM_CONTROL = HL7 + "questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
DATA_ABSENT = HL7 + "data-absent-reason"
CHART_NUMBER_TYPE = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
}

SAFETY_ITEM = "S1"
STATUS = {
    Status.IN_PROGRESS: "in-progress",
    Status.SUBMITTED: "completed",
    Status.REVIEWED: "completed",
    Status.CANCELLED: "stopped",
}

_cache: dict[tuple, dict] = {}


def canonical(version: str) -> str:
    return f"{QUESTIONNAIRE_URL}|{version}"


def tag(code: str) -> str:
    return LANGUAGES[code].tag if code in LANGUAGES else code.replace("_", "-")


def timestamp(moment: datetime | None, zone: tzinfo | None) -> str | None:
    """A time as read from storage (the clinic's local time) as a FHIR dateTime with its
    offset; ``zone`` None is the server's local zone. A time with an offset keeps it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    return moment.isoformat(timespec="seconds")


# --- the Questionnaire ---------------------------------------------------------------------


def _translated(english: str, languages: tuple[str, ...]) -> dict:
    """The ``_text``-style element carrying each shipped language's translation."""
    found = []
    for code in languages:
        with force_locale(code):
            text = gettext(english)
        found.append(
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": tag(code)},
                    {"url": "content", "valueString": text},
                ],
            }
        )
    return {"extension": found} if found else {}


def _text(english: str, languages, key: str = "text") -> dict:
    element = {key: english}
    translations = _translated(english, languages)
    if translations:
        element[f"_{key}"] = translations
    return element


def _option(choice, languages) -> dict:
    coding = {"system": CODE_SYSTEM, "code": choice.id, **_text(choice.label, languages, "display")}
    option = {"valueCoding": coding}
    if choice.exclusive:
        option["extension"] = [{"url": OPTION_EXCLUSIVE, "valueBoolean": True}]
    return option


def _display(link_id: str, english: str, control: str, languages) -> dict:
    return {
        "linkId": link_id,
        "type": "display",
        **_text(english, languages),
        "extension": [
            {
                "url": ITEM_CONTROL,
                "valueCodeableConcept": {
                    "coding": [{"system": ITEM_CONTROL_SYSTEM, "code": control}]
                },
            }
        ],
    }


def _choice_item(link_id: str, item: Item, text: str, languages) -> dict:
    return {
        "linkId": link_id,
        "type": "choice",
        **_text(text, languages),
        "answerOption": [_option(c, languages) for c in item.choices],
    }


def _item_type(item: Item) -> ItemType:
    """The item's type; one this module has never heard of is refused, not guessed at."""
    item_type = TYPES.get(item.type)
    if item_type is None:  # a new item type must say how it maps before it ships
        raise ValueError(f"item {item.id}: no FHIR mapping for type '{item.type}'")
    return item_type


def _question(item: Item, languages) -> dict:
    """One definition item as a Questionnaire item, in its type's shape."""
    return _item_type(item).fhir_question(item, Build(languages))


def _enable_when(item: Item, definition: Questionnaire) -> dict:
    """An item another answer can leave unasked (M1-M5 and P1, hidden by M0 "no") is
    enabled while that question has no answer or another one: ``exists = false`` or
    ``!= no``, either being enough. (Two conditions, since a "!=" alone leaves open how
    an unanswered question reads.)"""
    hiding = [
        (decider, choice)
        for decider in definition.items.values()
        for choice in decider.choices
        if item.id in choice.hides
    ]
    if not hiding:
        return {}
    if len(hiding) > 1:  # a new kind of branching must say how it maps before it ships
        raise ValueError(f"item {item.id}: no FHIR mapping for more than one hiding answer")
    [(decider, choice)] = hiding
    return {
        "enableWhen": [
            {"question": decider.id, "operator": "exists", "answerBoolean": False},
            {
                "question": decider.id,
                "operator": "!=",
                "answerCoding": {"system": CODE_SYSTEM, "code": choice.id},
            },
        ],
        "enableBehavior": "any",
    }


def questionnaire_resource(definition: Questionnaire, languages) -> dict:
    """The Questionnaire for this definition, translated into ``languages`` (codes)."""
    others = tuple(code for code in languages if code != SOURCE_LANGUAGE)
    key = (definition.version, id(definition), others)
    if key not in _cache:
        _cache[key] = {
            "resourceType": "Questionnaire",
            "id": QUESTIONNAIRE_ID,
            "url": QUESTIONNAIRE_URL,
            "version": definition.version,
            "name": "PreVisitReflection",
            "title": "Pre-visit reflection",
            "status": "active",
            "language": tag(SOURCE_LANGUAGE),
            "subjectType": ["Patient"],
            "item": [
                {
                    "linkId": section.id,
                    "type": "group",
                    **_text(section.title, others),
                    "item": [
                        {**_question(item, others), **_enable_when(item, definition)}
                        for item in section.items
                    ],
                }
                for section in definition.sections
            ],
        }
    return _cache[key]


# --- the QuestionnaireResponse -------------------------------------------------------------


def _coding(item: Item, choice_id: str) -> dict:
    choice = item.choice(choice_id)
    coding = {"system": CODE_SYSTEM, "code": choice_id}
    if choice is not None:
        coding["display"] = choice.label
    return coding


def _string(value: str, language: str) -> dict:
    answer = {"valueString": value}
    if language:
        answer["_valueString"] = {"extension": [{"url": LANGUAGE, "valueCode": tag(language)}]}
    return answer


class Build:
    """The FHIR pieces an item type puts its shapes together from (``ItemType.
    fhir_question`` and ``fhir_answers``); texts carry the translations of ``languages``."""

    def __init__(self, languages: tuple[str, ...] = ()):
        self.languages = languages

    def text(self, english: str, key: str = "text") -> dict:
        return _text(english, self.languages, key)

    def display(self, link_id: str, english: str, control: str) -> dict:
        return _display(link_id, english, control, self.languages)

    def choice_item(self, link_id: str, item: Item, text: str) -> dict:
        return _choice_item(link_id, item, text, self.languages)

    @staticmethod
    def max_occurs(limit: int) -> dict:
        return {"url": MAX_OCCURS, "valueInteger": limit}

    @staticmethod
    def min_value(low: int) -> dict:
        return {"url": MIN_VALUE, "valueInteger": low}

    @staticmethod
    def max_value(high: int) -> dict:
        return {"url": MAX_VALUE, "valueInteger": high}

    coding = staticmethod(_coding)
    string = staticmethod(_string)


def _answered(item: Item, value, language: str) -> list[dict]:
    """The response items for one stored answer (a medicine list gives one per row)."""
    return _item_type(item).fhir_answers(item, value, language, Build())


def _safety_history(history: list[SafetyAnswer], item: Item | None, zone) -> list[dict]:
    entries = []
    for saved in history:
        if item is not None and item.choice(saved.value) is not None:
            value = {"url": "value", "valueCoding": _coding(item, saved.value)}
        else:  # "declined": the patient skipped the question at that save
            value = {"url": "declined", "valueBoolean": True}
        when = {"url": "savedAt", "valueDateTime": timestamp(saved.saved_at, zone)}
        entries.append({"url": SAFETY_HISTORY, "extension": [value, when]})
    return entries


def last_updated(visit: Visit) -> datetime | None:
    """The latest stored time of a visit's own changes."""
    times = [
        visit.last_activity_at,
        visit.submitted_at,
        visit.reviewed_at,
        visit.cancelled_at,
        visit.started_at,
    ]
    times = [t for t in times if t]
    return max(times) if times else None


def response_resource(
    *,
    visit: Visit,
    answers: Mapping,
    in_person: set,
    languages: Mapping,
    safety_history: list[SafetyAnswer],
    definition: Questionnaire,
    zone: tzinfo | None,
    visit_system: str,
    chart_numbers: bool,
) -> dict:
    """A visit's answers as a QuestionnaireResponse."""
    authored = visit.submitted_at or visit.last_activity_at or visit.created_at
    version = visit.questionnaire_version or definition.version
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": f"visit-{visit.id}",
        "meta": {"lastUpdated": _instant(last_updated(visit) or authored, zone)},
        "identifier": {"system": visit_system, "value": str(visit.id)},
        "questionnaire": canonical(version),
        "status": STATUS.get(visit.status, "in-progress"),
        "authored": timestamp(authored, zone),
    }
    if visit.answer_language:
        resource["language"] = tag(visit.answer_language)
    if chart_numbers:
        resource["subject"] = {
            "identifier": {"type": CHART_NUMBER_TYPE, "value": visit.patient_ref}
        }
    extensions = []
    sections = []
    # Items the patient's own answer left unasked (M0 "no") have no answer, as their
    # enableWhen says; a page never stores one, and older data is not sent either.
    not_asked = definition.not_asked(answers)
    for section in definition.sections:
        items = []
        for item in section.items:
            if item.id in not_asked:
                continue
            if item.id in in_person and item.id in answers:
                extensions.append({"url": HELD_IN_PERSON, "valueString": item.id})
                continue
            if item.id in answers:
                items += _answered(item, answers[item.id], languages.get(item.id, ""))
            elif item.id == SAFETY_ITEM and visit.safety == "declined":
                absent = {"url": DATA_ABSENT, "valueCode": "asked-declined"}
                items.append({"linkId": item.id, "extension": [absent]})
        if items:
            sections.append({"linkId": section.id, "item": items})
    extensions += _safety_history(safety_history, definition.items.get(SAFETY_ITEM), zone)
    if extensions:
        resource["extension"] = extensions
    if sections:
        resource["item"] = sections
    return resource


def _instant(moment: datetime, zone) -> str:
    return timestamp(moment, zone)
