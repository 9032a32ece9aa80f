"""FHIR R4 out of the app: the Questionnaire generated from the definition, one
QuestionnaireResponse per visit, and the project's own check of a response against it.

Everything is built from ``questionnaire.toml`` and the item types: a new item or choice
appears here with no change. Only the shapes named by type differ: a ``medlist`` is a
repeating group of name + feeling, a ``yesno_text`` a group of a yes/no choice and a
text, and the safety item keeps its whole history as an extension. Answer options are
codings of the project's own code system, keyed by the stable choice ids.

No Flask request is needed: the callers pass the clinic's settings and zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo

from flask_babel import force_locale, gettext

from .i18n import LANGUAGES, SOURCE_LANGUAGE
from .questionnaire import Item, Questionnaire

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
    "in_progress": "in-progress",
    "submitted": "completed",
    "reviewed": "completed",
    "cancelled": "stopped",
}
RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
# A FHIR dateTime with a time of day must carry its offset (or Z).
OFFSET_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")

_cache: dict[tuple, dict] = {}


def canonical(version: str) -> str:
    return f"{QUESTIONNAIRE_URL}|{version}"


def tag(code: str) -> str:
    return LANGUAGES[code].tag if code in LANGUAGES else code.replace("_", "-")


def timestamp(stored: str | None, zone: tzinfo | None) -> str | None:
    """A time as read from storage (the clinic's local time) as a FHIR dateTime with its
    offset; ``zone`` None is the server's local zone. A time with an offset keeps it."""
    if not stored:
        return None
    moment = datetime.fromisoformat(stored)
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


def _question(item: Item, languages) -> dict:
    """One definition item as a Questionnaire item, by its type."""
    kind = item.type
    if kind in ("single", "multi"):
        element = _choice_item(item.id, item, item.prompt, languages)
        if kind == "multi":
            element["repeats"] = True
            if item.max:
                element["extension"] = [{"url": MAX_OCCURS, "valueInteger": item.max}]
    elif kind == "scale":
        element = {
            "linkId": item.id,
            "type": "integer",
            **_text(item.prompt, languages),
            "extension": [
                {"url": MIN_VALUE, "valueInteger": item.min},
                {"url": MAX_VALUE, "valueInteger": item.max},
            ],
            "item": [
                _display(f"{item.id}.lower", item.min_label, "lower", languages),
                _display(f"{item.id}.upper", item.max_label, "upper", languages),
            ],
        }
    elif kind == "text":
        element = {
            "linkId": item.id,
            "type": "text",
            **_text(item.prompt, languages),
            "maxLength": item.max_length,
        }
    elif kind == "medlist":
        element = {
            "linkId": item.id,
            "type": "group",
            **_text(item.prompt, languages),
            "repeats": True,
            "extension": [{"url": MAX_OCCURS, "valueInteger": item.max_rows}],
            "item": [
                {
                    "linkId": f"{item.id}.name",
                    "type": "string",
                    **_text(item.row_label, languages),
                    "maxLength": item.max_length,
                },
                _choice_item(f"{item.id}.feeling", item, item.choice_label, languages),
            ],
        }
    elif kind == "yesno_text":
        element = {
            "linkId": item.id,
            "type": "group",
            **_text(item.prompt, languages),
            "item": [
                _choice_item(f"{item.id}.choice", item, item.prompt, languages),
                {
                    "linkId": f"{item.id}.text",
                    "type": "text",
                    **_text(item.text_prompt, languages),
                    "maxLength": item.max_length,
                },
            ],
        }
    else:  # a new item type must say how it maps before it ships
        raise ValueError(f"item {item.id}: no FHIR mapping for type '{kind}'")
    if item.help and kind != "medlist":
        element.setdefault("item", []).append(
            _display(f"{item.id}.help", item.help, "help", languages)
        )
    return element


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


def _answered(item: Item, value, language: str) -> list[dict]:
    """The response items for one stored answer (a medicine list gives one per row)."""
    kind = item.type
    if kind == "single":
        return [{"linkId": item.id, "answer": [{"valueCoding": _coding(item, value)}]}]
    if kind == "multi":
        answers = [{"valueCoding": _coding(item, v)} for v in value]
        return [{"linkId": item.id, "answer": answers}]
    if kind == "scale":
        return [{"linkId": item.id, "answer": [{"valueInteger": int(value)}]}]
    if kind == "text":
        return [{"linkId": item.id, "answer": [_string(value, language)]}]
    if kind == "medlist":
        rows = []
        for row in value:
            parts = [{"linkId": f"{item.id}.name", "answer": [_string(row["name"], language)]}]
            if row.get("feeling"):
                answer = {"valueCoding": _coding(item, row["feeling"])}
                parts.append({"linkId": f"{item.id}.feeling", "answer": [answer]})
            rows.append({"linkId": item.id, "item": parts})
        return rows
    if kind == "yesno_text":
        parts = []
        if value.get("choice"):
            answer = {"valueCoding": _coding(item, value["choice"])}
            parts.append({"linkId": f"{item.id}.choice", "answer": [answer]})
        if value.get("text"):
            parts.append(
                {"linkId": f"{item.id}.text", "answer": [_string(value["text"], language)]}
            )
        return [{"linkId": item.id, "item": parts}] if parts else []
    raise ValueError(f"item {item.id}: no FHIR mapping for type '{kind}'")


def _safety_history(history, item: Item | None, zone) -> list[dict]:
    entries = []
    for saved in history:
        if item is not None and item.choice(saved["value"]) is not None:
            value = {"url": "value", "valueCoding": _coding(item, saved["value"])}
        else:  # "declined": the patient skipped the question at that save
            value = {"url": "declined", "valueBoolean": True}
        when = {"url": "savedAt", "valueDateTime": timestamp(saved["saved_at"], zone)}
        entries.append({"url": SAFETY_HISTORY, "extension": [value, when]})
    return entries


def last_updated(visit: Mapping) -> str | None:
    """The latest stored time of a visit's own changes."""
    times = [
        visit.get(k)
        for k in ("last_activity_at", "submitted_at", "reviewed_at", "cancelled_at", "started_at")
    ]
    times = [t for t in times if t]
    return max(times) if times else None


def response_resource(
    *,
    visit: Mapping,
    answers: Mapping,
    in_person: set,
    languages: Mapping,
    safety_history,
    definition: Questionnaire,
    zone: tzinfo | None,
    visit_system: str,
    chart_numbers: bool,
) -> dict:
    """A visit's answers as a QuestionnaireResponse."""
    authored = visit.get("submitted_at") or visit.get("last_activity_at") or visit["created_at"]
    version = visit.get("questionnaire_version") or definition.version
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": f"visit-{visit['id']}",
        "meta": {"lastUpdated": _instant(last_updated(visit) or authored, zone)},
        "identifier": {"system": visit_system, "value": str(visit["id"])},
        "questionnaire": canonical(version),
        "status": STATUS.get(visit["status"], "in-progress"),
        "authored": timestamp(authored, zone),
    }
    if visit.get("answer_language"):
        resource["language"] = tag(visit["answer_language"])
    if chart_numbers:
        resource["subject"] = {
            "identifier": {"type": CHART_NUMBER_TYPE, "value": visit["patient_ref"]}
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
            elif item.id == SAFETY_ITEM and visit.get("safety") == "declined":
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


def _instant(stored: str, zone) -> str:
    return timestamp(stored, zone)


# --- the project's own check ---------------------------------------------------------------


def _extension(element: Mapping, url: str):
    for ext in element.get("extension", ()):
        if ext.get("url") == url:
            return next((v for k, v in ext.items() if k.startswith("value")), None)
    return None


def _index(items, parent: str | None, into: dict) -> dict:
    for item in items or ():
        into[item["linkId"]] = (item, parent)
        _index(item.get("item"), item["linkId"], into)
    return into


def _check_answer(defn: Mapping, answer: Mapping, where: str) -> list[str]:
    kind = defn["type"]
    if kind == "choice":
        coding = answer.get("valueCoding")
        codes = {
            (o["valueCoding"]["system"], o["valueCoding"]["code"])
            for o in defn.get("answerOption", ())
        }
        if not coding or (coding.get("system"), coding.get("code")) not in codes:
            return [f"{where}: {coding and coding.get('code')!r} is not one of its options"]
    elif kind == "integer":
        value = answer.get("valueInteger")
        low, high = _extension(defn, MIN_VALUE), _extension(defn, MAX_VALUE)
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: needs a whole number"]
        if (low is not None and value < low) or (high is not None and value > high):
            return [f"{where}: {value} is outside {low}-{high}"]
    elif kind in ("string", "text"):
        value = answer.get("valueString")
        if not isinstance(value, str):
            return [f"{where}: needs text"]
        if defn.get("maxLength") and len(value) > defn["maxLength"]:
            return [f"{where}: longer than {defn['maxLength']} characters"]
    else:
        return [f"{where}: a {kind} item takes no answer"]
    return []


def _given(items, into: dict) -> dict:
    """Every answer in a response by linkId, however deep."""
    for item in items or ():
        into.setdefault(item.get("linkId"), []).extend(item.get("answer", ()))
        _given(item.get("item"), into)
    return into


def _enabled(defn: Mapping, given: Mapping) -> bool:
    """Whether a Questionnaire item's enableWhen holds for the response's answers (the
    operators the generated Questionnaire uses: exists, = and != on a coding)."""
    results = []
    for condition in defn.get("enableWhen", ()):
        answers = given.get(condition.get("question"), [])
        operator = condition.get("operator")
        if operator == "exists":
            results.append(bool(answers) == condition.get("answerBoolean"))
            continue
        wanted = condition.get("answerCoding") or {}
        codes = {
            (a.get("valueCoding", {}).get("system"), a.get("valueCoding", {}).get("code"))
            for a in answers
        }
        matched = (wanted.get("system"), wanted.get("code")) in codes
        results.append(matched if operator == "=" else bool(answers) and not matched)
    if not results:
        return True
    return any(results) if defn.get("enableBehavior") == "any" else all(results)


def _check_items(
    items, parent: str | None, index: dict, problems: list, given: Mapping | None = None
) -> None:
    counts: dict[str, int] = {}
    for item in items or ():
        link = item.get("linkId")
        if link not in index:
            problems.append(f"{link}: no such item in the Questionnaire")
            continue
        defn, defn_parent = index[link]
        if defn_parent != parent:
            problems.append(f"{link}: belongs under {defn_parent}, found under {parent}")
        if given is not None and not _enabled(defn, given):
            problems.append(f"{link}: answered, but its enableWhen leaves it unasked")
        counts[link] = counts.get(link, 0) + 1
        answers = item.get("answer", ())
        if defn["type"] == "group" and answers:
            problems.append(f"{link}: a group takes no answer")
        if len(answers) > 1 and not defn.get("repeats"):
            problems.append(f"{link}: more than one answer to a single-answer item")
        limit = _extension(defn, MAX_OCCURS)
        if defn["type"] != "group" and limit is not None and len(answers) > limit:
            problems.append(f"{link}: more than {limit} answers")
        exclusive = {
            o["valueCoding"]["code"]
            for o in defn.get("answerOption", ())
            if _extension(o, OPTION_EXCLUSIVE)
        }
        picked = [a.get("valueCoding", {}).get("code") for a in answers]
        if len(picked) > 1 and exclusive & set(picked):
            problems.append(f"{link}: an exclusive answer is picked with others")
        for answer in answers:
            problems += _check_answer(defn, answer, link)
        _check_items(item.get("item"), link, index, problems, given)
    for link, count in counts.items():
        defn = index[link][0]
        limit = _extension(defn, MAX_OCCURS) if defn["type"] == "group" else None
        if count > 1 and not (defn["type"] == "group" and defn.get("repeats")):
            problems.append(f"{link}: appears {count} times")
        elif limit is not None and count > limit:
            problems.append(f"{link}: {count} rows, at most {limit}")


def _datetimes(element, path: str = ""):
    """Every dateTime value in a resource: authored, lastUpdated, valueDateTime."""
    if isinstance(element, dict):
        for key, value in element.items():
            if key in ("authored", "lastUpdated", "valueDateTime"):
                yield f"{path}{key}", value
            else:
                yield from _datetimes(value, f"{path}{key}.")
    elif isinstance(element, list):
        for value in element:
            yield from _datetimes(value, path)


def check_response(response: Mapping, questionnaire: Mapping) -> list[str]:
    """What is wrong with a response measured against its Questionnaire (empty: nothing).

    Every linkId exists and nests as in the Questionnaire, every code is one of its
    item's options, numbers are within range, text within length, rows within their
    limit, no item answered that its enableWhen leaves unasked (M1-M5, P1 after M0
    "no"), the canonical names this Questionnaire's version, every time has its offset.
    """
    problems = []
    if response.get("status") not in RESPONSE_STATUSES:
        problems.append(f"status: {response.get('status')!r} is not a response status")
    expected = canonical(questionnaire["version"])
    if response.get("questionnaire") != f"{questionnaire['url']}|{questionnaire['version']}":
        problems.append(f"questionnaire: {response.get('questionnaire')!r}, not {expected!r}")
    for where, value in _datetimes(response):
        if not (isinstance(value, str) and OFFSET_DATETIME.match(value)):
            problems.append(f"{where}: {value!r} has no time-zone offset")
    index = _index(questionnaire["item"], None, {})
    _check_items(response.get("item"), None, index, problems, _given(response.get("item"), {}))
    return problems
