"""FHIR R4 out of the app: the Questionnaire generated from the definition and one
QuestionnaireResponse per visit. (The project's own check of a response against the
Questionnaire is a test helper: ``tests/helpers/fhir_check.py``.)

Everything is built from ``questionnaire.toml`` and the item types: a new item or choice
appears here with no change. Each item type gives its own shapes (``fhir_question``,
``fhir_answers`` in ``item_types``: a ``medlist`` is a repeating group of name + feeling,
a ``yesno_text`` a group of a yes/no choice and a text), put together from the pieces of
``Build``; the safety item keeps its whole history as an extension. Answer options are
codings of one code system per choice list (``code_systems``), keyed by the stable choice
ids, except where a standard code exists (S1: LOINC, PHQ-9 item 9). A visit not sent goes
out with status and progress only (``full=False``); answered items carry their text.

No Flask request is needed: the callers pass the clinic's settings and zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo

from flask_babel import force_locale, gettext

from patientapp.domain.records import SafetyAnswer, Status, Visit
from patientapp.i18n import LANGUAGES, SOURCE_LANGUAGE
from patientapp.questionnaire.model import Item, Questionnaire
from patientapp.questionnaire.types import TYPES, ItemType

QUESTIONNAIRE_ID = "reflection"
QUESTIONNAIRE_URL = "urn:patientapp:fhir:Questionnaire:reflection"
# One code system per choice list (per item): the same code ("dont_know", "not_myself")
# means one thing in each. Each is a CodeSystem the API serves (``code_systems``),
# resolved by its canonical: GET /api/fhir/CodeSystem?url=<system>.
CODE_SYSTEM_BASE = "urn:patientapp:fhir:CodeSystem:"
LOINC = "http://loinc.org"
# Standard codes where an item is a standard instrument's question word for word: S1 is
# PHQ-9 item 9, its choices the PHQ answer list (LOINC LL358-3).
ITEM_CODES = {
    "S1": {
        "system": LOINC,
        "code": "44260-8",
        "display": "Thoughts that you would be better off dead, or of hurting yourself in some way",
    }
}
ANSWER_CODES = {
    "S1": {
        "not_at_all": "LA6568-5",
        "several_days": "LA6569-3",
        "more_than_half": "LA6570-1",
        "nearly_every_day": "LA6571-9",
    }
}
HELD_IN_PERSON = "urn:patientapp:fhir:StructureDefinition:held-for-in-person"
SAFETY_HISTORY = "urn:patientapp:fhir:StructureDefinition:safety-history"
APPOINTMENT = "urn:patientapp:fhir:StructureDefinition:appointment"
PROGRESS = "urn:patientapp:fhir:StructureDefinition:progress"
ANSWER_LANGUAGE = "urn:patientapp:fhir:StructureDefinition:answer-language"
# A visit's identifier when no PATIENTAPP_BASE_URL names it: its UUID as a URI, which
# is unique without any configuration (never the address a request came in on).
URI_SYSTEM = "urn:ietf:rfc:3986"

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

# The clinic settings a QuestionnaireResponse reads: changing one changes every response
# (admin views bump every visit's change sequence).
SETTINGS_READ = ("time_zone", "references_are_chart_numbers", "chart_number_system")

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


def code_system(item_id: str) -> str:
    """The canonical URL of one item's choice list."""
    return f"{CODE_SYSTEM_BASE}{item_id}"


def _code(item: Item, choice_id: str) -> dict:
    """A choice as system and code: the standard code where there is one, else the item's
    own code system."""
    standard = ANSWER_CODES.get(item.id, {}).get(choice_id)
    if standard:
        return {"system": LOINC, "code": standard}
    return {"system": code_system(item.id), "code": choice_id}


def _option(item: Item, choice, languages) -> dict:
    coding = {**_code(item, choice.id), **_text(choice.label, languages, "display")}
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
    code = {"code": [ITEM_CODES[item.id]]} if item.id in ITEM_CODES else {}
    return {
        "linkId": link_id,
        **code,
        "type": "choice",
        **_text(text, languages),
        "answerOption": [_option(item, c, languages) for c in item.choices],
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
                "answerCoding": _code(decider, choice.id),
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


def code_systems(definition: Questionnaire, languages) -> list[dict]:
    """One CodeSystem per choice list (each item with choices of its own code system),
    with every shipped language's label as a designation."""
    others = tuple(code for code in languages if code != SOURCE_LANGUAGE)
    key = ("code systems", definition.version, id(definition), others)
    if key not in _cache:
        found = []
        for item in definition.items.values():
            own = [c for c in item.choices if c.id not in ANSWER_CODES.get(item.id, {})]
            if not own:
                continue
            found.append(
                {
                    "resourceType": "CodeSystem",
                    "id": code_system_id(item.id),
                    "url": code_system(item.id),
                    "version": definition.version,
                    "name": "Reflection" + re.sub(r"[^A-Za-z0-9_]", "_", item.id),
                    "title": f"Pre-visit reflection, answers to {item.id}: {item.short}",
                    "status": "active",
                    "content": "complete",
                    "caseSensitive": True,
                    "count": len(own),
                    "concept": [_concept(choice, others) for choice in own],
                }
            )
        _cache[key] = found
    return _cache[key]


def code_system_id(item_id: str) -> str:
    return f"reflection-{item_id}"


def _concept(choice, languages) -> dict:
    concept = {"code": choice.id, "display": choice.label}
    designations = []
    for code in languages:
        with force_locale(code):
            designations.append({"language": tag(code), "value": gettext(choice.label)})
    if designations:
        concept["designation"] = designations
    return concept


def _texts(definition: Questionnaire) -> dict[str, str]:
    """Each question's and group's English text by linkId, as the Questionnaire has it."""

    def walk(items, into):
        for element in items:
            if element["type"] != "display" and "text" in element:
                into[element["linkId"]] = element["text"]
            walk(element.get("item", ()), into)
        return into

    return walk(questionnaire_resource(definition, ())["item"], {})


def _with_text(items: list[dict], texts: Mapping[str, str]) -> list[dict]:
    """Response items with their question's text after the linkId (R4 item.text)."""
    shown = []
    for element in items:
        text = {"text": texts[element["linkId"]]} if element["linkId"] in texts else {}
        rest = {k: v for k, v in element.items() if k not in ("linkId", "text")}
        if "item" in rest:
            rest["item"] = _with_text(rest["item"], texts)
        if "answer" in rest:
            rest["answer"] = [
                {**a, "item": _with_text(a["item"], texts)} if "item" in a else a
                for a in rest["answer"]
            ]
        shown.append({"linkId": element["linkId"], **text, **rest})
    return shown


# --- the QuestionnaireResponse -------------------------------------------------------------


def _coding(item: Item, choice_id: str) -> dict:
    choice = item.choice(choice_id)
    coding = _code(item, choice_id)
    if choice is not None:
        coding["display"] = choice.label
    return coding


def _string(value: str, language: str) -> dict:
    """A free-text answer, with the language it was written in on the answer: HL7's
    `language` extension is allowed only on HumanName, Address and Annotation, not on a
    string (issue 22), and R4 has no element for it, so it is the project's own."""
    answer = {"valueString": value}
    if language:
        answer = {"extension": [{"url": ANSWER_LANGUAGE, "valueCode": tag(language)}], **answer}
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


def changed_at(visit: Visit, zone: tzinfo | None) -> str | None:
    """When the visit's exported resource last changed (storage keeps it, microseconds
    since 1970 UTC, never backwards), as an instant in the clinic's zone; None when the
    row has no change time (a record built without the database)."""
    if not visit.changed_us:
        return None
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=visit.changed_us)
    local = moment.astimezone(zone) if zone else moment.astimezone()
    return local.isoformat(timespec="microseconds")


def resource_id(visit: Visit) -> str:
    return visit.uuid or f"visit-{visit.id}"


def identifier(visit: Visit, visit_system: str | None) -> dict:
    """The visit's business identifier: its UUID under the configured system, else as a
    URN (system urn:ietf:rfc:3986)."""
    if visit_system and visit.uuid:
        return {"system": visit_system, "value": visit.uuid}
    if visit.uuid:
        return {"system": URI_SYSTEM, "value": f"urn:uuid:{visit.uuid}"}
    return {"system": visit_system or URI_SYSTEM, "value": str(visit.id)}


def patient_reference(visit: Visit, chart_numbers: bool, chart_system: str) -> dict | None:
    """The patient as a logical reference by chart number (type MR, the clinic's MRN
    system when one is set), or None when references are not chart numbers."""
    if not chart_numbers:
        return None
    mrn = {"type": CHART_NUMBER_TYPE, "value": visit.patient_ref}
    if chart_system:
        mrn = {"type": CHART_NUMBER_TYPE, "system": chart_system, "value": visit.patient_ref}
    return {"type": "Patient", "identifier": mrn}


def response_resource(
    *,
    visit: Visit,
    answers: Mapping,
    in_person: set,
    languages: Mapping,
    safety_history: list[SafetyAnswer],
    definition: Questionnaire,
    zone: tzinfo | None,
    visit_system: str | None,
    chart_numbers: bool,
    chart_system: str = "",
    full: bool = True,
) -> dict:
    """A visit's answers as a QuestionnaireResponse.

    ``full`` False (a visit not sent: still in progress, or cancelled before sending)
    gives only what the patient can no longer hold back: the status, the progress, the
    times and the patient link; no answer, no held mark, no safety history, no language,
    since anything not yet sent may still be marked "In person".
    """
    authored = visit.submitted_at or visit.last_activity_at or visit.created_at
    version = visit.questionnaire_version or definition.version
    meta = {
        "lastUpdated": changed_at(visit, zone) or timestamp(last_updated(visit) or authored, zone)
    }
    if visit.change_seq:
        meta = {"versionId": str(visit.change_seq), **meta}
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id(visit),
        "meta": meta,
        "identifier": identifier(visit, visit_system),
        "questionnaire": canonical(version),
        "status": STATUS.get(visit.status, "in-progress"),
        "authored": timestamp(authored, zone),
    }
    if full and visit.answer_language:
        resource["language"] = tag(visit.answer_language)
    patient = patient_reference(visit, chart_numbers, chart_system)
    if patient is not None:
        # The patient answered on their own phone: subject, author and source at once.
        resource["subject"] = patient
        resource["author"] = patient
        resource["source"] = patient
    extensions = [{"url": APPOINTMENT, "valueDateTime": timestamp(visit.appointment_at, zone)}]
    if not full:
        steps = len(definition.sections)
        step = min(max(visit.furthest_step, 0), steps)
        progress = [{"url": "step", "valueInteger": step}, {"url": "of", "valueInteger": steps}]
        resource["extension"] = [*extensions, {"url": PROGRESS, "extension": progress}]
        return resource
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
    resource["extension"] = extensions
    if sections:
        resource["item"] = _with_text(sections, _texts(definition))
    return resource
