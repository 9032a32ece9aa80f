"""The project's own check of a FHIR QuestionnaireResponse against the Questionnaire the
app generates: what the R4B models (``fhir.resources``) do not check, since they know
nothing of this Questionnaire. Only tests use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from patientapp.exports.fhir import MAX_OCCURS, MAX_VALUE, MIN_VALUE, OPTION_EXCLUSIVE, canonical

RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
# A FHIR dateTime with a time of day must carry its offset (or Z).
OFFSET_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")


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
        # FHIR's maxLength counts UTF-16 code units, as FHIR clients do (an emoji is 2).
        if defn.get("maxLength") and len(value.encode("utf-16-le")) // 2 > defn["maxLength"]:
            return [f"{where}: longer than {defn['maxLength']} UTF-16 code units"]
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
