"""FHIR R4 out of the app: the Questionnaire generated from the definition (each version a
stored response names), one QuestionnaireResponse per visit, and beside it what a record
looks for in standard places: one Observation per saved safety value and one per
standard measure's total (PHQ-9, GAD-7), a Flag for the safety alert, the one-page
summary as a DocumentReference; the StructureDefinitions of the project's own
extensions. (The project's own check of a response against the Questionnaire is a test
helper: ``tests/helpers/fhir_check.py``.)

Everything is built from ``questionnaire.toml`` and the item types: a new item or choice
appears here with no change. Each item type gives its own shapes (``fhir_question``,
``fhir_answers`` in ``item_types``: a ``medlist`` is a repeating group of name + feeling,
a ``yesno_text`` a group of a yes/no choice and a text), put together from the pieces of
``Build``; the safety item keeps its whole history as an extension. Answer options are
codings of one code system per choice list (``code_systems``), keyed by the stable choice
ids, except where a standard code exists (S1: LOINC, PHQ-9 item 9).

A standard measure (``questionnaire.instruments``) is a group coded with its LOINC panel,
its published stem first; each item carries its LOINC code and the official English text,
each answer its LOINC answer code with the score as ``ordinalValue``. Its words and their
translations come only from the instrument's official texts (``wordings``), never from the
catalogs. Its items are not ``required``: they are asked only when the invitation includes
the measure, and a response leaves out the items of a measure its visit did not offer.

A visit not sent goes out with status and progress only (``full=False``); answered items
carry their text.

No Flask request is needed: the callers pass the clinic's settings and zone.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo

from flask_babel import force_locale, gettext

from patientapp.domain import visits
from patientapp.domain.records import Alert, SafetyAnswer, Status, Visit
from patientapp.i18n import LANGUAGES, SOURCE_LANGUAGE
from patientapp.questionnaire.instruments import Instrument, ScaleAnswer, Score
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
APPOINTMENT = "urn:patientapp:fhir:StructureDefinition:appointment"
PROGRESS = "urn:patientapp:fhir:StructureDefinition:progress"
ANSWER_LANGUAGE = "urn:patientapp:fhir:StructureDefinition:answer-language"
# A visit's identifier when no PATIENTAPP_BASE_URL names it: its UUID as a URI, which
# is unique without any configuration (never the address a request came in on).
URI_SYSTEM = "urn:ietf:rfc:3986"

HL7 = "http://hl7.org/fhir/StructureDefinition/"
TRANSLATION = HL7 + "translation"
# An answer's score (R4: allowed on Questionnaire.item.answerOption and on a Coding; R5
# renames it itemWeight). LHC-Forms reads it from the answerOption.
ORDINAL_VALUE = HL7 + "ordinalValue"
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

# The clinic settings the resources made from a visit read (the response, the safety
# Observations and Flag, the one page's DocumentReference, whose text names the clinic):
# changing one changes them all (admin views bump every visit's change sequence).
SETTINGS_READ = ("time_zone", "references_are_chart_numbers", "chart_number_system", "clinic_name")

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


def _official(measure: Instrument, words, languages, key: str = "text") -> dict:
    """A standard measure's words (``words(language)`` gives them in one language) with
    the translations of ``languages`` that have an official text, and no other: a
    validated instrument is never translated by the catalogs."""
    source = measure.source_language
    element = {key: words(source)}
    found = [
        {
            "url": TRANSLATION,
            "extension": [
                {"url": "lang", "valueCode": tag(code)},
                {"url": "content", "valueString": words(code)},
            ],
        }
        for code in languages
        if code != source and measure.offered_in(code)
    ]
    if found:
        element[f"_{key}"] = {"extension": found}
    return element


def code_system(item_id: str) -> str:
    """The canonical URL of one item's choice list."""
    return f"{CODE_SYSTEM_BASE}{item_id}"


def _scale_answer(measure: Instrument | None, choice_id: str) -> ScaleAnswer | None:
    if measure is None:
        return None
    return next((a for a in measure.scale if a.id == choice_id), None)


def _standard(item: Item, choice_id: str) -> str | None:
    """A choice's LOINC answer code, where it has one: S1's (the PHQ answer list), and
    every answer of a standard measure's item."""
    standard = ANSWER_CODES.get(item.id, {}).get(choice_id)
    answer = _scale_answer(item.measure, choice_id)
    return standard or (answer.code if answer else None)


def _code(item: Item, choice_id: str) -> dict:
    """A choice as system and code: the standard code where there is one, else the item's
    own code system."""
    standard = _standard(item, choice_id)
    if standard:
        return {"system": LOINC, "code": standard}
    return {"system": code_system(item.id), "code": choice_id}


def _item_code(item: Item) -> list[dict]:
    """An item's standard code: S1 (PHQ-9 item 9, the LOINC display), and each standard
    measure's item (its LOINC code, the official English text)."""
    if item.id in ITEM_CODES:
        return [dict(ITEM_CODES[item.id])]
    if item.measure is not None and item.code:
        english = item.measure.item_text(item.id, item.measure.source_language)
        return [{"system": LOINC, "code": item.code, "display": english}]
    return []


def _option(item: Item, choice, languages) -> dict:
    """One answer option; a standard measure's carries its score as ordinalValue. (S1,
    PHQ-9's item 9, keeps its options as they were: with a score, LHC-Forms would show
    "Not at all - 0" on the safety question, which the patient never sees.)"""
    if item.measure is not None:

        def words(language):
            return item.measure.answer_text(choice.id, language)

        label = _official(item.measure, words, languages, "display")
    else:
        label = _text(choice.label, languages, "display")
    option = {"valueCoding": {**_code(item, choice.id), **label}}
    extensions = []
    answer = _scale_answer(item.measure, choice.id)
    if answer is not None:
        extensions.append({"url": ORDINAL_VALUE, "valueDecimal": answer.score})
    if choice.exclusive:
        extensions.append({"url": OPTION_EXCLUSIVE, "valueBoolean": True})
    if extensions:
        option["extension"] = extensions
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
    code = _item_code(item)
    if item.measure is not None:  # the official words only
        words = _official(
            item.measure, lambda language: item.measure.item_text(item.id, language), languages
        )
    else:
        words = _text(text, languages)
    return {
        "linkId": link_id,
        **({"code": code} if code else {}),
        "type": "choice",
        **words,
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


def _measure_group(measure: Instrument, languages) -> tuple[dict, list[dict]]:
    """A standard measure's section: its LOINC panel code, and its published stem as the
    group's first item (the line the patient reads above its first question)."""
    code = {"code": [{"system": LOINC, "code": measure.code.code, "display": measure.code.display}]}
    stem = {
        "linkId": f"{measure.id}.stem",
        "type": "display",
        **_official(measure, lambda language: measure.wording(language).stem, languages),
    }
    return code, [stem]


def _enable_when(item: Item, definition: Questionnaire, asked: set[str] | None = None) -> dict:
    """An item another answer can leave unasked (M1-M5 and P1, hidden by M0 "no") is
    enabled while that question has no answer or another one: ``exists = false`` or
    ``!= no``, either being enough. (Two conditions, since a "!=" alone leaves open how
    an unanswered question reads.)"""
    hiding = [
        (decider, choice)
        for decider in definition.items.values()
        for choice in decider.choices
        if item.id in choice.hides and (asked is None or decider.id in asked)
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


def questionnaire_id(definition: Questionnaire, version: str | None = None) -> str:
    """The current version is ``reflection``; an earlier one ``reflection-<version>``."""
    if version is None or version == definition.version:
        return QUESTIONNAIRE_ID
    return versioned_questionnaire_id(version)


def versioned_questionnaire_id(version: str) -> str:
    """The id every version answers to, the current one too (a read built from a
    response's canonical ``url|version``), and keeps once a later version ships."""
    return f"{QUESTIONNAIRE_ID}-{version}"


def questionnaire_resource(
    definition: Questionnaire, languages, version: str | None = None
) -> dict:
    """The Questionnaire for this definition, translated into ``languages`` (codes).

    ``version`` an earlier version a stored response names: the same items (ids are never
    reused for another meaning: definition.toml) less those first asked in a later one
    (``since``), worded as now, with that version and status retired."""
    others = tuple(code for code in languages if code != SOURCE_LANGUAGE)
    version = version or definition.version
    key = (definition.version, version, id(definition), others)
    if key not in _cache:
        asked = definition.asked_in(version)
        sections = []
        for section in definition.sections:
            items = [
                {**_question(item, others), **_enable_when(item, definition, asked)}
                for item in section.items
                if item.id in asked
            ]
            if not items:  # a group holds at least one item (que-1)
                continue
            code, first = {}, []
            measure = definition.instrument(section.id)
            if measure is not None:
                code, first = _measure_group(measure, others)
            sections.append(
                {
                    "linkId": section.id,
                    **code,
                    "type": "group",
                    **_text(section.title, others),
                    "item": [*first, *items],
                }
            )
        _cache[key] = {
            "resourceType": "Questionnaire",
            "id": questionnaire_id(definition, version),
            "url": QUESTIONNAIRE_URL,
            "version": version,
            "name": "PreVisitReflection",
            "title": "Pre-visit reflection",
            "status": "active" if version == definition.version else "retired",
            "language": tag(SOURCE_LANGUAGE),
            "subjectType": ["Patient"],
            "item": sections,
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
            own = [c for c in item.choices if _standard(item, c.id) is None]
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
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id(visit),
        "meta": _meta(visit, zone),
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
        # Among the sections this visit asks (a measure it does not ask is no step).
        step, steps = visits.progress(visit, max(visit.furthest_step, 0), definition)
        progress = [{"url": "step", "valueInteger": step}, {"url": "of", "valueInteger": steps}]
        resource["extension"] = [*extensions, {"url": PROGRESS, "extension": progress}]
        return resource
    sections = []
    # Items the patient's own answer left unasked (M0 "no") have no answer, as their
    # enableWhen says; a page never stores one, and older data is not sent either. Nor
    # have the items of a standard measure the visit did not offer.
    not_asked = definition.not_asked(answers, visit.offered)
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
    resource["extension"] = extensions
    if sections:
        resource["item"] = _with_text(sections, _texts(definition))
    return resource


def _meta(visit: Visit, zone: tzinfo | None) -> dict:
    """Every resource made from a visit changes when the visit does: its change sequence
    and change time (the storage triggers), so one sync pages all of them alike."""
    authored = visit.submitted_at or visit.last_activity_at or visit.created_at
    meta = {
        "lastUpdated": changed_at(visit, zone) or timestamp(last_updated(visit) or authored, zone)
    }
    if visit.change_seq:
        meta = {"versionId": str(visit.change_seq), **meta}
    return meta


def _response_reference(visit: Visit) -> dict:
    return {"reference": f"QuestionnaireResponse/{resource_id(visit)}"}


# --- the safety answers as Observations (issue 22, part 7) -------------------------------

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
SAFETY_NOT_WORRYING = "not_at_all"


def _survey_observation(visit: Visit, resource_id: str, zone: tzinfo | None) -> dict:
    """What every Observation of a visit's answers begins with: id, meta, a final
    survey result."""
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": _meta(visit, zone),
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
    }


def observation_id(visit: Visit, number: int) -> str:
    """The n-th saved safety value of a visit (1 = the first): the history only grows."""
    return f"{resource_id(visit)}-safety-{number}"


def safety_observations(
    *,
    visit: Visit,
    history: list[SafetyAnswer],
    definition: Questionnaire,
    zone: tzinfo | None,
    chart_numbers: bool,
    chart_system: str = "",
) -> list[dict]:
    """One Observation per saved value of the safety question (PHQ-9 item 9, LOINC
    44260-8), oldest first: when it was saved, the LOINC answer (or "asked-declined" for a
    skip), positive or negative, derived from the visit's QuestionnaireResponse. The
    value changed later ("Not at all", or skipped) is one more Observation, so the whole
    history is there, as the summary's banner keeps it. Only for a sent visit (the
    caller's rule: anything not sent may still change)."""
    item = definition.items.get(SAFETY_ITEM)
    patient = patient_reference(visit, chart_numbers, chart_system)
    issued = timestamp(visit.submitted_at, zone) if visit.submitted_at else None
    found = []
    for number, saved in enumerate(history, start=1):
        resource = {
            **_survey_observation(visit, observation_id(visit, number), zone),
            "code": {
                "coding": [dict(ITEM_CODES[SAFETY_ITEM])],
                "text": ITEM_CODES[SAFETY_ITEM]["display"],
            },
        }
        if patient is not None:
            resource["subject"] = patient
        resource["effectiveDateTime"] = timestamp(saved.saved_at, zone)
        if issued:
            resource["issued"] = issued
        choice = item.choice(saved.value) if item is not None else None
        if choice is not None:
            coding = _coding(item, saved.value)
            resource["valueCodeableConcept"] = {"coding": [coding], "text": choice.label}
            positive = saved.value != SAFETY_NOT_WORRYING
            resource["interpretation"] = [
                {
                    "coding": [
                        {
                            "system": INTERPRETATION,
                            "code": "POS" if positive else "NEG",
                            "display": "Positive" if positive else "Negative",
                        }
                    ]
                }
            ]
        else:  # "declined": the patient skipped the question at that save
            resource["dataAbsentReason"] = {
                "coding": [
                    {
                        "system": DATA_ABSENT_SYSTEM,
                        "code": "asked-declined",
                        "display": "Asked But Declined",
                    }
                ]
            }
        resource["derivedFrom"] = [_response_reference(visit)]
        found.append(resource)
    return found


# --- the standard measures' totals as Observations ------------------------------------------


def measure_observation_id(visit: Visit, instrument_id: str) -> str:
    """A visit's total of one standard measure (``<visit UUID>-phq9-total``)."""
    return f"{resource_id(visit)}-{instrument_id}-total"


def measure_observations(
    *,
    visit: Visit,
    scores: list[Score],
    zone: tzinfo | None,
    chart_numbers: bool,
    chart_system: str = "",
) -> list[dict]:
    """One Observation per standard measure the visit offered whose answers give a total
    (``summary.measures.scores``: a held answer's value is never used, and a skipped or
    held item leaves no total unless the instrument's published rule prorates it): the
    LOINC total code (PHQ-9 44261-6, GAD-7 70274-6), the total as valueInteger, its band
    as the interpretation's text, effective when the visit was sent, derived from the
    visit's QuestionnaireResponse. Only for a sent visit (the caller's rule)."""
    patient = patient_reference(visit, chart_numbers, chart_system)
    sent = timestamp(visit.submitted_at or last_updated(visit) or visit.created_at, zone)
    found = []
    for score in scores:
        if score.total is None:
            continue
        measure = score.instrument
        resource = {
            **_survey_observation(visit, measure_observation_id(visit, measure.id), zone),
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": measure.total_code.code,
                        "display": measure.total_code.display,
                    }
                ],
                "text": f"{measure.name} total score",
            },
        }
        if patient is not None:
            resource["subject"] = patient
        resource["effectiveDateTime"] = sent
        resource["issued"] = sent
        resource["valueInteger"] = score.total
        if score.band is not None:
            resource["interpretation"] = [{"text": score.band.label}]
        if score.prorated:
            resource["note"] = [
                {
                    "text": f"Prorated from {score.answered} of {len(measure.items)} items: "
                    f"{measure.prorate_source}"
                }
            ]
        resource["derivedFrom"] = [_response_reference(visit)]
        found.append(resource)
    return found


# --- the safety alert as a Flag ------------------------------------------------------------

FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_DETAIL = HL7 + "flag-detail"
SAFETY_FLAG_TEXT = "Safety alert: thoughts of death or self-harm"


def flag_id(visit: Visit) -> str:
    return f"{resource_id(visit)}-safety-alert"


def safety_flag(
    *,
    visit: Visit,
    alert: Alert | None,
    history: list[SafetyAnswer],
    zone: tzinfo | None,
    chart_numbers: bool,
    chart_system: str = "",
) -> dict | None:
    """The visit's safety alert as a Flag (category safety): active while nobody has
    acknowledged it, inactive once someone has; its period from when it was raised to when
    it was acknowledged; ``flag-detail`` the Observation of the first worrying value. None
    when the visit raised no alert. The acknowledgement's note stays in the app."""
    if alert is None:
        return None
    patient = patient_reference(visit, chart_numbers, chart_system)
    period = {"start": timestamp(alert.created_at, zone)}
    if alert.acknowledged_at:
        period["end"] = timestamp(alert.acknowledged_at, zone)
    worrying = [
        number
        for number, saved in enumerate(history, start=1)
        if saved.value in ANSWER_CODES[SAFETY_ITEM] and saved.value != SAFETY_NOT_WORRYING
    ]
    detail = (
        {"reference": f"Observation/{observation_id(visit, worrying[0])}"}
        if worrying
        else _response_reference(visit)
    )
    return {
        "resourceType": "Flag",
        "id": flag_id(visit),
        "meta": _meta(visit, zone),
        "extension": [{"url": FLAG_DETAIL, "valueReference": detail}],
        "status": "inactive" if alert.acknowledged_at else "active",
        "category": [
            {"coding": [{"system": FLAG_CATEGORY, "code": "safety", "display": "Safety"}]}
        ],
        "code": {"text": SAFETY_FLAG_TEXT},
        # Flag.subject is required: without chart numbers the app knows no patient
        # identity, so the subject is named in words only.
        "subject": patient
        or {
            "display": "The patient who answered this pre-visit reflection "
            "(the clinic's patient references are not chart numbers)"
        },
        "period": period,
    }


# --- the one page as a DocumentReference (issue 22, part 8) ----------------------------------

# LOINC's document ontology: Mental health Consult note (the summary is read before, and
# filed with, a psychiatric consultation).
SUMMARY_TYPE = {"system": LOINC, "code": "34785-6", "display": "Mental health Consult note"}
SUMMARY_CONTENT_TYPE = "text/plain; charset=utf-8"


def document_id(visit: Visit) -> str:
    return f"{resource_id(visit)}-summary"


def summary_document(
    *,
    visit: Visit,
    text: str,
    language: str,
    zone: tzinfo | None,
    chart_numbers: bool,
    chart_system: str = "",
) -> dict:
    """The one-page summary's plain text (``summary.text.plain_text``, what staff copy into
    the record) as a DocumentReference: current, final, the text as a UTF-8 attachment
    (base64, its size and SHA-1), related to the visit's QuestionnaireResponse, its period
    the appointment. Held answers are not in it: the summary names their topics only."""
    data = text.encode("utf-8")
    made = changed_at(visit, zone) or timestamp(last_updated(visit) or visit.created_at, zone)
    resource = {
        "resourceType": "DocumentReference",
        "id": document_id(visit),
        "meta": _meta(visit, zone),
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [dict(SUMMARY_TYPE)], "text": "Pre-visit reflection summary"},
    }
    patient = patient_reference(visit, chart_numbers, chart_system)
    if patient is not None:
        resource["subject"] = patient
    resource["date"] = made
    resource["description"] = "The one-page summary of the patient's pre-visit reflection"
    resource["content"] = [
        {
            "attachment": {
                "contentType": SUMMARY_CONTENT_TYPE,
                "language": tag(language),
                "data": base64.b64encode(data).decode("ascii"),
                "size": len(data),
                "hash": base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode(
                    "ascii"
                ),  # FHIR's attachment hash is SHA-1
                "title": f"Pre-visit reflection, {visit.appointment_at.date().isoformat()}",
                "creation": made,
            }
        }
    ]
    resource["context"] = {
        "period": {"start": timestamp(visit.appointment_at, zone)},
        "related": [_response_reference(visit)],
    }
    return resource


# --- the project's own extensions, defined --------------------------------------------------


def _simple_extension(url: str, value_type: str) -> list[dict]:
    return [
        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {
            "id": "Extension.value[x]",
            "path": "Extension.value[x]",
            "min": 1,
            "type": [{"code": value_type}],
        },
    ]


def _complex_extension(url: str, parts: list[tuple[str, str, int, str]]) -> list[dict]:
    """Elements of an extension made of named parts: (name, value type, min, meaning)."""
    elements = [
        {
            "id": "Extension.extension",
            "path": "Extension.extension",
            "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "closed"},
        }
    ]
    for name, value_type, low, meaning in parts:
        elements += [
            {
                "id": f"Extension.extension:{name}",
                "path": "Extension.extension",
                "sliceName": name,
                "short": meaning,
                "definition": meaning,
                "min": low,
                "max": "1",
            },
            {
                "id": f"Extension.extension:{name}.extension",
                "path": "Extension.extension.extension",
                "max": "0",
            },
            {
                "id": f"Extension.extension:{name}.url",
                "path": "Extension.extension.url",
                "fixedUri": name,
            },
            {
                "id": f"Extension.extension:{name}.value[x]",
                "path": "Extension.extension.value[x]",
                "min": 1,
                "type": [{"code": value_type}],
            },
        ]
    return [
        *elements,
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"},
    ]


# url, context (where it may stand), how many, what it says, its elements
EXTENSIONS = (
    (
        HELD_IN_PERSON,
        "QuestionnaireResponse",
        "*",
        "An item the patient kept for talking in person: its linkId. Its answer never "
        "leaves the app. (No standard element says 'withheld by the patient to discuss "
        "in person'; data-absent-reason 'masked' means hidden by a system.)",
        _simple_extension(HELD_IN_PERSON, "string"),
    ),
    (
        APPOINTMENT,
        "QuestionnaireResponse",
        "1",
        "The appointment the reflection was answered for (R4 has no element for it "
        "without an Encounter).",
        _simple_extension(APPOINTMENT, "dateTime"),
    ),
    (
        PROGRESS,
        "QuestionnaireResponse",
        "1",
        "How far a visit not yet sent has come: the furthest step of how many.",
        _complex_extension(
            PROGRESS,
            [
                ("step", "integer", 1, "The furthest step reached"),
                ("of", "integer", 1, "How many steps there are"),
            ],
        ),
    ),
    (
        ANSWER_LANGUAGE,
        "QuestionnaireResponse.item.answer",
        "1",
        "The language a free-text answer was written in (HL7's language extension is "
        "not allowed on a string).",
        _simple_extension(ANSWER_LANGUAGE, "code"),
    ),
)


def structure_definition_id(url: str) -> str:
    return url.rsplit(":", 1)[-1]


def structure_definitions() -> list[dict]:
    """A StructureDefinition per extension of the project's own, with the context it is
    allowed in, so every extension URL the resources carry resolves and is checkable."""
    found = []
    for url, context, most, meaning, elements in EXTENSIONS:
        name = structure_definition_id(url)
        found.append(
            {
                "resourceType": "StructureDefinition",
                "id": name,
                "url": url,
                "name": "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name)),
                "title": name.replace("-", " ").capitalize(),
                "status": "active",
                "description": meaning,
                "fhirVersion": "4.0.1",
                "kind": "complex-type",
                "abstract": False,
                "context": [{"type": "element", "expression": context}],
                "type": "Extension",
                "baseDefinition": HL7 + "Extension",
                "derivation": "constraint",
                "differential": {
                    "element": [
                        {
                            "id": "Extension",
                            "path": "Extension",
                            "short": meaning.split(":")[0].split(" (")[0],
                            "definition": meaning,
                            "min": 0,
                            "max": most,
                        },
                        *elements,
                    ]
                },
            }
        )
    return found


def served_versions(definition: Questionnaire, stored: list[str]) -> list[str]:
    """The questionnaire versions served: the current one and each earlier one a stored
    response names (dotted numbers; a later or unreadable one cannot be made, so is not)."""

    def key(version: str) -> tuple[int, ...] | None:
        try:
            return tuple(int(part) for part in version.split("."))
        except ValueError:
            return None

    current = key(definition.version)
    earlier = {v for v in stored if key(v) is not None and current and key(v) < current}
    return [definition.version, *sorted(earlier, key=key, reverse=True)]
