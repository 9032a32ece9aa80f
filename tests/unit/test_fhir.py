"""FHIR R4: the Questionnaire from the definition, a response per visit, both validated by
fhir.resources (R4B models) and by the project's own check against the definition."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from patientapp.api import views as api
from patientapp.cli import examples
from patientapp.db import storage
from patientapp.domain import visits
from patientapp.domain.records import Visit
from patientapp.exports import fhir
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import finish_visit, make_invitation
from tests.helpers.fhir_check import check_response

DEFINITION = questionnaire.default()


def q_json(app) -> dict:
    with app.app_context():
        return copy.deepcopy(api.questionnaire_json())


def qr_json(app, visit_id: int) -> dict:
    with app.test_request_context():
        return api.response_for(storage.get_visit(get_db(), visit_id))


def walk(items):
    for item in items or ():
        yield item
        yield from walk(item.get("item"))
        for answer in item.get("answer", ()):
            yield from walk(answer.get("item"))


def by_link(resource: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in walk(resource.get("item")):
        found.setdefault(item["linkId"], []).append(item)
    return found


def ext(element: dict, url: str):
    return [e for e in element.get("extension", ()) if e["url"] == url]


def valid(resource: dict, model) -> None:
    model.model_validate(resource)


# --- the Questionnaire -----------------------------------------------------------------------


def test_the_questionnaire_is_valid_fhir_with_one_group_per_section(app):
    resource = q_json(app)
    valid(resource, Questionnaire)
    assert resource["url"] == fhir.QUESTIONNAIRE_URL
    assert resource["version"] == DEFINITION.version
    assert [g["linkId"] for g in resource["item"]] == [s.id for s in DEFINITION.sections]
    assert all(g["type"] == "group" for g in resource["item"])
    for group, section in zip(resource["item"], DEFINITION.sections, strict=True):
        questions = [i["linkId"] for i in group["item"] if i["type"] != "display"]
        assert questions == [item.id for item in section.items]
        # Only a standard measure's group starts with a display item: its published stem.
        shown = [i["linkId"] for i in group["item"] if i["type"] == "display"]
        assert shown == ([f"{section.id}.stem"] if DEFINITION.instrument(section.id) else [])


def test_every_item_type_maps_as_the_definition_says(app):
    links = by_link(q_json(app))
    for item in DEFINITION.items.values():
        [element] = links[item.id]
        if item.type in ("single", "multi"):
            assert element["type"] == "choice"
            codes = [o["valueCoding"]["code"] for o in element["answerOption"]]
            systems = {o["valueCoding"]["system"] for o in element["answerOption"]}
            if item.id in fhir.ANSWER_CODES:  # S1: the PHQ answer list (LOINC)
                assert systems == {fhir.LOINC}
                assert codes == [fhir.ANSWER_CODES[item.id][c] for c in item.choice_ids]
            elif item.measure is not None:  # a standard measure's: its LOINC answer codes
                assert systems == {fhir.LOINC}
                assert codes == [answer.code for answer in item.measure.scale]
            else:  # one code system per choice list
                assert codes == list(item.choice_ids)
                assert systems == {fhir.code_system(item.id)}
            exclusive = [
                o["valueCoding"]["code"]
                for o in element["answerOption"]
                if ext(o, fhir.OPTION_EXCLUSIVE)
            ]
            assert exclusive == [c.id for c in item.choices if c.exclusive]
            assert element.get("repeats", False) == (item.type == "multi")
            limits = [e["valueInteger"] for e in ext(element, fhir.MAX_OCCURS)]
            assert limits == ([item.max] if item.type == "multi" and item.max else [])
        elif item.type == "scale":
            assert element["type"] == "integer"
            assert ext(element, fhir.MIN_VALUE)[0]["valueInteger"] == item.min
            assert ext(element, fhir.MAX_VALUE)[0]["valueInteger"] == item.max
            ends = {i["linkId"]: i["text"] for i in element["item"] if i["type"] == "display"}
            assert ends[f"{item.id}.lower"] == item.min_label
            assert ends[f"{item.id}.upper"] == item.max_label
        elif item.type == "text":
            assert (element["type"], element["maxLength"]) == ("text", item.max_length)
        elif item.type == "medlist":
            assert element["type"] == "group" and element["repeats"] is True
            assert ext(element, fhir.MAX_OCCURS)[0]["valueInteger"] == item.max_rows == 6
            name, feeling = element["item"]
            assert (name["type"], name["maxLength"]) == ("string", item.max_length)
            assert [o["valueCoding"]["code"] for o in feeling["answerOption"]] == list(
                item.choice_ids
            )
        elif item.type == "yesno_text":
            choice, text = element["item"][:2]
            assert choice["type"] == "choice" and text["type"] == "text"
            assert [o["valueCoding"]["code"] for o in choice["answerOption"]] == ["yes", "no"]
            assert text["maxLength"] == item.max_length
        else:  # pragma: no cover - a new type must get a mapping and a test
            pytest.fail(f"no test for type {item.type}")


def test_every_text_carries_each_shipped_language(app):
    resource = q_json(app)
    shipped = {fhir.tag(code) for code in app.config["OFFERED_LANGUAGES"]} - {"en"}
    assert len(shipped) == 6
    # A standard measure's words (its stem, items and answers) are translated only by an
    # official text, never by the catalogs: today only English has one, so they carry no
    # translation. Its group's heading is ours, and translated like every other.
    measured = {m.id + ".stem" for m in DEFINITION.instruments}
    measured |= {i.id for i in DEFINITION.items.values() if i.measure is not None}
    assert not any(m.offered_in(code) for m in DEFINITION.instruments for code in shipped)
    texts = [i for i in walk(resource["item"]) if i["linkId"] not in measured]
    options = [o["valueCoding"] for i in texts for o in i.get("answerOption", ())]
    for element, key in [(i, "text") for i in texts] + [(c, "display") for c in options]:
        translations = ext(element[f"_{key}"], fhir.TRANSLATION)
        langs = {t["extension"][0]["valueCode"] for t in translations}
        assert langs == shipped, element[key]
    official = [i for i in walk(resource["item"]) if i["linkId"] in measured]
    assert len(official) == len(measured)
    for element in official:
        assert "_text" not in element, element["linkId"]
        for option in element.get("answerOption", ()):
            assert "_display" not in option["valueCoding"], element["linkId"]
    s1 = by_link(resource)["S1"][0]
    spanish = [
        t["extension"][1]["valueString"]
        for t in ext(s1["_text"], fhir.TRANSLATION)
        if t["extension"][0]["valueCode"] == "es"
    ]
    assert spanish and spanish[0] != s1["text"]


# --- the QuestionnaireResponse ---------------------------------------------------------------


@pytest.fixture
def sent(app):
    """A sent visit with every kind of answer, M3 held for in person."""
    invitation = finish_visit(app, in_person=("M3",))
    return invitation.visit_id


def test_a_sent_visit_is_a_valid_completed_response(app, sent):
    resource = qr_json(app, sent)
    valid(resource, QuestionnaireResponse)
    assert check_response(resource, q_json(app)) == []
    assert resource["status"] == "completed"
    assert resource["questionnaire"] == f"{fhir.QUESTIONNAIRE_URL}|{DEFINITION.version}"
    with app.app_context():
        visit = storage.get_visit(get_db(), sent)
    # Issue 22: the id was visit-<row id>, reused once a backup is restored.
    assert resource["id"] == visit.uuid and len(visit.uuid) == 36
    # No PATIENTAPP_BASE_URL: the UUID as a URN, never the address of a request.
    assert resource["identifier"] == {"system": fhir.URI_SYSTEM, "value": f"urn:uuid:{visit.uuid}"}
    assert resource["meta"]["versionId"] == str(visit.change_seq)
    assert resource["authored"].endswith(("+00:00", "Z")) or resource["authored"][-6] in "+-"
    assert resource["language"] == "en"
    assert "subject" not in resource  # the reference is not a chart number by default


def test_held_items_are_left_out_and_named(app, sent):
    resource = qr_json(app, sent)
    assert "M3" not in by_link(resource)
    assert [e["valueString"] for e in ext(resource, fhir.HELD_IN_PERSON)] == ["M3"]


def test_one_response_item_per_medicine_row_and_free_text_has_its_language(app, sent):
    with app.app_context():
        answers, _ = storage.answers_for(get_db(), sent)
    resource = qr_json(app, sent)
    rows = by_link(resource)["M1"]
    assert len(rows) == len(answers["M1"]) >= 1
    assert [r["item"][0]["answer"][0]["valueString"] for r in rows] == [
        row["name"] for row in answers["M1"]
    ]
    agenda = by_link(resource)["T2"][0]["answer"][0]
    assert agenda["valueString"] == answers["T2"]
    # On the answer, not on the string: HL7's language extension is not allowed there.
    assert "_valueString" not in agenda
    assert ext(agenda, fhir.ANSWER_LANGUAGE)[0]["valueCode"] == "en"


def test_a_chart_number_clinic_gets_the_subject_identifier(app, sent):
    with app.app_context():
        storage.save_settings(get_db(), {"references_are_chart_numbers": True})
    resource = qr_json(app, sent)
    assert resource["subject"]["identifier"]["value"] == "A-1001"
    assert resource["subject"]["identifier"]["type"]["coding"][0]["code"] == "MR"
    assert "system" not in resource["subject"]["identifier"]  # none set: none given
    assert resource["subject"]["type"] == "Patient"
    assert resource["author"] == resource["source"] == resource["subject"]
    valid(resource, QuestionnaireResponse)
    with app.app_context():
        storage.save_settings(get_db(), {"chart_number_system": "urn:oid:1.2.3.4"})
    resource = qr_json(app, sent)
    assert resource["subject"]["identifier"]["system"] == "urn:oid:1.2.3.4"
    valid(resource, QuestionnaireResponse)


def test_the_appointment_time_is_carried(app, sent):
    resource = qr_json(app, sent)
    [appointment] = ext(resource, fhir.APPOINTMENT)
    assert appointment["valueDateTime"].startswith("2026-11-25T")
    assert "author" not in resource and "source" not in resource  # no patient identity


def test_a_visit_not_sent_gives_status_and_progress_only(app, clock):
    """Issue 22: an in-progress visit went out with its answers; the patient could still
    mark one "In person" before sending. Not sent: nothing the patient could hold."""
    invitation = make_invitation(app)
    with app.app_context():
        db = get_db()
        visits.start(
            db, invitation.visit_id, language="es", version=DEFINITION.version, now=clock()
        )
        visits.save_step(
            db, invitation.visit_id, {"T2": "my secret agenda"}, step=1, next_step=2, now=clock()
        )
        visits.save_step(
            db, invitation.visit_id, {"S1": "several_days"}, step=10, next_step=11, now=clock()
        )
    resource = qr_json(app, invitation.visit_id)
    valid(resource, QuestionnaireResponse)
    assert check_response(resource, q_json(app)) == []
    assert resource["status"] == "in-progress"
    assert "my secret agenda" not in json.dumps(resource)
    assert set(resource) == {
        "resourceType", "id", "meta", "identifier", "questionnaire", "status", "authored",
        "extension",
    }  # fmt: skip
    assert {e["url"] for e in resource["extension"]} == {fhir.APPOINTMENT, fhir.PROGRESS}
    [progress] = ext(resource, fhir.PROGRESS)
    # S1 was saved on the last step (the safety question's), on the way to the review:
    # the furthest step is the last one, counted among the steps this visit asks (the
    # standard measures' two steps are not, as it includes none): 8 of 8, as the board.
    assert [s.id for s in DEFINITION.sections].index("safety") + 1 == 10
    assert progress["extension"] == [
        {"url": "step", "valueInteger": 8},
        {"url": "of", "valueInteger": 8},
    ]


def test_a_declined_safety_answer_and_the_safety_history(app, clock):
    invitation = make_invitation(app)
    with app.app_context():
        db = get_db()
        visits.start(
            db, invitation.visit_id, language="es", version=DEFINITION.version, now=clock()
        )
        visits.save_step(
            db, invitation.visit_id, {"S1": "several_days"}, step=10, next_step=11, now=clock()
        )
        clock.advance(minutes=2)
        visits.save_step(db, invitation.visit_id, {"S1": None}, step=10, next_step=11, now=clock())
        assert visits.submit(db, invitation.visit_id, set(), clock())
    resource = qr_json(app, invitation.visit_id)
    valid(resource, QuestionnaireResponse)
    assert check_response(resource, q_json(app)) == []
    assert resource["status"] == "completed"
    assert resource["language"] == "es"
    [s1] = by_link(resource)["S1"]
    assert "answer" not in s1
    assert ext(s1, fhir.DATA_ABSENT)[0]["valueCode"] == "asked-declined"
    # The history (several days, then declined) is published as Observations
    # (tests/web/api/test_record_resources.py), not in an extension of the response.
    assert not any("safety-history" in e["url"] for e in resource.get("extension", []))


def test_a_cancelled_visit_is_stopped(app, clock):
    invitation = make_invitation(app)
    with app.app_context():
        db = get_db()
        visits.start(
            db, invitation.visit_id, language="en", version=DEFINITION.version, now=clock()
        )
        assert visits.cancel(db, invitation.visit_id, clock())
    assert qr_json(app, invitation.visit_id)["status"] == "stopped"


# --- the check can fail ----------------------------------------------------------------------


BREAKAGES = {
    "wrong code": lambda r: by_link(r)["M2"][0]["answer"][0]["valueCoding"].update(code="great"),
    "naive datetime": lambda r: r.update(authored="2026-11-25T09:00:00"),
    "unknown linkId": lambda r: r["item"][0]["item"].append({"linkId": "Z9"}),
    "wrong nesting": lambda r: r["item"][0]["item"].append(
        {
            "linkId": "M2",
            "answer": [{"valueCoding": {"system": fhir.code_system("M2"), "code": "mixed"}}],
        }
    ),
    "scale out of range": lambda r: by_link(r)["M4"][0]["answer"][0].update(valueInteger=11),
    "too many rows": lambda r: r["item"][1]["item"].extend(
        copy.deepcopy(by_link(r)["M1"][0]) for _ in range(6)
    ),
    "too many choices": lambda r: by_link(r)["T1"][0]["answer"].extend(
        {"valueCoding": {"system": fhir.code_system("T1"), "code": c}}
        for c in ("sad", "numb", "okay")
    ),
    "exclusive with others": lambda r: by_link(r)["M5"][0]["answer"].append(
        {"valueCoding": {"system": fhir.code_system("M5"), "code": "none"}}
    ),
    "unknown status": lambda r: r.update(status="done"),
    "old version": lambda r: r.update(questionnaire=f"{fhir.QUESTIONNAIRE_URL}|1999.1"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_check_catches_a_broken_response(app, sent, breakage):
    resource = qr_json(app, sent)
    assert check_response(resource, q_json(app)) == []
    BREAKAGES[breakage](resource)
    assert check_response(resource, q_json(app)), breakage


def test_fhir_resources_refuses_a_naive_time_but_not_a_bad_status(app, sent):
    """Both checks refuse a time without offset; only the project's own refuses a status
    outside the value set (the models do not check codes)."""
    resource = qr_json(app, sent)
    for broken in (
        {"item": [{"linkId": "T1", "answer": [{"valueFoo": 1}]}]},
        {"authored": "yesterday"},
        {"authored": "2026-11-25T09:00:00"},
        {"item": [{"answer": []}]},
    ):
        with pytest.raises(ValidationError):
            valid({**resource, **broken}, QuestionnaireResponse)
    assert check_response({**resource, "authored": "2026-11-25T09:00:00"}, q_json(app))
    valid({**resource, "status": "done"}, QuestionnaireResponse)
    assert check_response({**resource, "status": "done"}, q_json(app))


EXAMPLES = [name for name in dir(examples) if name.isupper() and not name.endswith("_FORM")]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_answer_set_is_valid(app, clock, name):
    """Each fictional answer set the demo uses gives a valid response, held items too."""
    answers = {k: v for k, v in getattr(examples, name).items() if v is not None}
    invitation = make_invitation(app, patient_ref=name)
    with app.app_context():
        db = get_db()
        visits.start(
            db, invitation.visit_id, language="en", version=DEFINITION.version, now=clock()
        )
        storage.save_answers(db, invitation.visit_id, answers, now=clock(), language="en")
        held = {"F2", "T2"} & set(answers)
        storage.set_in_person(db, invitation.visit_id, held)
        assert visits.submit(db, invitation.visit_id, held, clock())
    resource = qr_json(app, invitation.visit_id)
    valid(resource, QuestionnaireResponse)
    assert check_response(resource, q_json(app)) == []


def test_a_sample_is_json(app, sent):
    assert json.loads(json.dumps(qr_json(app, sent)))["resourceType"] == "QuestionnaireResponse"


def test_a_type_without_mapping_is_refused():
    from dataclasses import replace

    item = replace(DEFINITION.items["T2"], type="drawing")
    with pytest.raises(ValueError, match="no FHIR mapping"):
        fhir._question(item, ())
    with pytest.raises(ValueError, match="no FHIR mapping"):
        fhir._answered(item, "x", "")


def test_bundle_model_accepts_a_search(app, sent):
    with app.test_request_context():
        entry = {"resource": api.response_for(storage.get_visit(get_db(), sent))}
    Bundle.model_validate({"resourceType": "Bundle", "type": "searchset", "entry": [entry]})


def test_a_new_item_and_choice_appear_with_no_code_change(app):
    """The resources come from the definition: an item added to the TOML (as version 2
    adds P3 and F3's first_treatment) is mapped, translated and checked like the rest."""
    import tomllib

    data = tomllib.loads(questionnaire.DEFINITION_PATH.read_text(encoding="utf-8"))
    data["version"] = "2099.1"
    going = next(s for s in data["sections"] if s["id"] == "going")
    going["items"] = [i for i in going["items"] if i["id"] != "Z1"] + [
        {
            "id": "Z1",
            "type": "multi",
            "short": "New",
            "prompt": "A new question?",
            "choices": [
                {"id": "one", "label": "One"},
                {"id": "nothing_here", "label": "Nothing", "exclusive": True},
            ],
        }
    ]
    data["summary"]["blocks"][1]["items"].append("Z1")  # shown on the one page, under Patterns
    definition = questionnaire.parse(data)
    with app.app_context():
        resource = fhir.questionnaire_resource(definition, app.config["OFFERED_LANGUAGES"])
    valid(resource, Questionnaire)
    [z1] = by_link(resource)["Z1"]
    assert [o["valueCoding"]["code"] for o in z1["answerOption"]] == ["one", "nothing_here"]
    assert ext(z1["answerOption"][1], fhir.OPTION_EXCLUSIVE)
    visit = Visit(
        id=7,
        patient_ref="X",
        appointment_at=datetime(2026, 11, 25, 14, 30),
        token_hash="token",
        code_hash="code",
        expires_at=datetime(2026, 11, 25, 23, 59, 59),
        status="submitted",
        created_at=datetime(2026, 11, 25, 9, 0),
        submitted_at=datetime(2026, 11, 25, 9, 10),
        questionnaire_version="2099.1",
        answer_language="en",
        safety="not_endorsed",
    )
    response = fhir.response_resource(
        visit=visit,
        answers={"Z1": ["one"]},
        in_person=set(),
        languages={},
        definition=definition,
        zone=None,
        visit_system="urn:x",
        chart_numbers=False,
    )
    assert check_response(response, resource) == []
    response["item"][0]["item"][0]["answer"].append(
        {"valueCoding": {"system": fhir.code_system("Z1"), "code": "nothing_here"}}
    )
    assert check_response(response, resource)


# --- terminology (issue 22, part 5) ----------------------------------------------------------


def test_one_code_system_per_choice_list_each_published(app):
    """Issue 22: one code system gave the same code different meanings ("dont_know",
    "not_myself" three ways) and none was published."""
    with app.app_context():
        systems = fhir.code_systems(DEFINITION, app.config["OFFERED_LANGUAGES"])
    from fhir.resources.R4B.codesystem import CodeSystem

    urls = [cs["url"] for cs in systems]
    assert len(urls) == len(set(urls))
    for system in systems:
        valid(system, CodeSystem)
        codes = [c["code"] for c in system["concept"]]
        assert len(codes) == len(set(codes)) == system["count"]
    by_url = {cs["url"]: cs for cs in systems}
    # Every coding the Questionnaire offers is in its published system (or LOINC).
    for element in walk(q_json(app)["item"]):
        for option in element.get("answerOption", ()):
            coding = option["valueCoding"]
            if coding["system"] == fhir.LOINC:
                continue
            concepts = {c["code"]: c for c in by_url[coding["system"]]["concept"]}
            assert concepts[coding["code"]]["display"] == coding["display"]
    sharing = [item.id for item in DEFINITION.items.values() if "dont_know" in item.choice_ids]
    assert len(sharing) >= 2 and len({fhir.code_system(i) for i in sharing}) == len(sharing)


def test_the_safety_question_has_its_phq9_codes(app, clock):
    [s1] = by_link(q_json(app))["S1"]
    assert s1["code"] == [
        {
            "system": "http://loinc.org",
            "code": "44260-8",
            "display": "Thoughts that you would be better off dead, or of hurting yourself "
            "in some way",
        }
    ]
    assert [o["valueCoding"]["code"] for o in s1["answerOption"]] == [
        "LA6568-5",
        "LA6569-3",
        "LA6570-1",
        "LA6571-9",
    ]
    invitation = make_invitation(app)
    with app.app_context():
        db = get_db()
        visits.start(
            db, invitation.visit_id, language="en", version=DEFINITION.version, now=clock()
        )
        visits.save_step(
            db, invitation.visit_id, {"S1": "several_days"}, step=10, next_step=11, now=clock()
        )
        assert visits.submit(db, invitation.visit_id, set(), clock())
    resource = qr_json(app, invitation.visit_id)
    [answer] = by_link(resource)["S1"][0]["answer"]
    assert answer["valueCoding"] == {
        "system": "http://loinc.org",
        "code": "LA6569-3",
        "display": "Several days",
    }
    assert check_response(resource, q_json(app)) == []


def test_each_answered_item_carries_its_text(app, sent):
    resource = qr_json(app, sent)
    texts = {i["linkId"]: i.get("text") for i in walk(q_json(app)["item"])}
    for item in walk(resource["item"]):
        assert item["text"] == texts[item["linkId"]], item["linkId"]
    valid(resource, QuestionnaireResponse)


def test_lengths_are_counted_in_utf16_code_units(app, sent):
    """Issue 22: 300 characters with emoji were accepted (600 UTF-16 code units) and
    LHC-Forms refused the response; FHIR clients count UTF-16 code units."""
    from patientapp.questionnaire.fields import length_limit, utf16_length

    assert utf16_length("a😀é") == 4
    resource = qr_json(app, sent)
    [t2] = by_link(resource)["T2"]
    t2["answer"][0]["valueString"] = "😀" * 150  # 300 units: the limit
    assert check_response(resource, q_json(app)) == []
    t2["answer"][0]["valueString"] = "😀" * 151  # 151 characters, 302 units
    assert check_response(resource, q_json(app)) == ["T2: longer than 300 UTF-16 code units"]

    class Field:
        data = "😀" * 151

    with app.test_request_context(), pytest.raises(ValueError, match="300 characters"):
        length_limit(300)(None, Field())
    Field.data = "😀" * 150
    with app.test_request_context():
        length_limit(300)(None, Field())
