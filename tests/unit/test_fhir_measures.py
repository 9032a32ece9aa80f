"""The standard measures (PHQ-9, GAD-7; CONTENT.md v3, "Optional validated measures") in
FHIR: the Questionnaire codes them with LOINC and words them only from their official
texts, a response carries their answers only when the visit offered them (never a held
one), and each total that can be scored is an Observation beside the response."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from patientapp.api import views as api
from patientapp.db import storage
from patientapp.domain import visits
from patientapp.domain.records import Visit
from patientapp.exports import fhir
from patientapp.questionnaire import instruments
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.helpers.fhir_check import check_response
from tests.unit.test_fhir import by_link, ext, q_json, qr_json, walk

DEFINITION = questionnaire.default()
PHQ9, GAD7 = DEFINITION.instrument("phq9"), DEFINITION.instrument("gad7")
SCORES = {"not_at_all": 0, "several_days": 1, "more_than_half": 2, "nearly_every_day": 3}
# PHQ-9 items 1-8, then S1 (its item 9): 2+1+1+3+0+1+0+0 + 0 = 8, "mild".
PHQ9_ANSWERS = {
    **{
        f"PHQ9_{n}": value
        for n, value in enumerate(
            [
                "more_than_half",
                "several_days",
                "several_days",
                "nearly_every_day",
                "not_at_all",
                "several_days",
                "not_at_all",
                "not_at_all",
            ],
            start=1,
        )
    },
    "S1": "not_at_all",
}
# GAD-7: 3+3+2+2+3+3+0 = 16, "severe".
GAD7_ANSWERS = {
    f"GAD7_{n}": value
    for n, value in enumerate(
        [
            "nearly_every_day",
            "nearly_every_day",
            "more_than_half",
            "more_than_half",
            "nearly_every_day",
            "nearly_every_day",
            "not_at_all",
        ],
        start=1,
    )
}
REFLECTION = {"T1": ["worried"], "T2": "Sleep, mostly.", "M0": "yes", "M2": "mixed"}
ANSWERS = {**REFLECTION, **PHQ9_ANSWERS, **GAD7_ANSWERS}
LOINC = "http://loinc.org"


def answered_visit(app, clock, answers=ANSWERS, *, measures=("phq9", "gad7"), held=(), ref="M-1"):
    """A visit inviting ``measures``, started in English and answered step by step as
    the patient pages save them (each section's values, None for an item not answered),
    then sent with ``held`` kept for in person."""
    with app.app_context():
        db = get_db()
        invitation = visits.create(
            db,
            patient_ref=ref,
            appointment_at=clock().replace(hour=14),
            psychiatrist_id=None,
            suggested_language="",
            extra_days=0,
            created_by=None,
            now=clock(),
            measures=measures,
        )
        visit_id = invitation.visit_id
        visits.start(db, visit_id, language="en", version=DEFINITION.version, now=clock())
        for number, section in enumerate(DEFINITION.sections, start=1):
            values = {item.id: answers.get(item.id) for item in section.items}
            visits.save_step(
                db, visit_id, values, step=number, next_step=number + 1, now=clock(), language="en"
            )
        clock.advance(minutes=5)
        assert visits.submit(db, visit_id, set(held), clock())
    return visit_id


def observations(app, visit_id: int) -> list[dict]:
    with app.test_request_context():
        return api.DERIVED["Observation"].make(storage.get_visit(get_db(), visit_id))


def totals(found: list[dict]) -> dict[str, dict]:
    return {o["code"]["coding"][0]["code"]: o for o in found if o["id"].endswith("-total")}


# --- the Questionnaire -------------------------------------------------------------------------


def test_each_measure_is_a_loinc_coded_group_with_its_published_stem(app):
    resource = q_json(app)
    Questionnaire.model_validate(resource)
    groups = {group["linkId"]: group for group in resource["item"]}
    for measure, panel in ((PHQ9, "44249-1"), (GAD7, "69737-5")):
        group = groups[measure.id]
        assert group["code"] == [{"system": LOINC, "code": panel, "display": measure.code.display}]
        stem, *questions = group["item"]
        assert stem == {
            "linkId": f"{measure.id}.stem",
            "type": "display",
            "text": measure.wordings["en"].stem,
        }
        assert stem["text"].startswith("Over the last 2 weeks, how often have you been bothered")
        own = [member for member in measure.items if not member.asked_as]
        assert [q["linkId"] for q in questions] == [member.id for member in own]
        for question, member in zip(questions, own, strict=True):
            english = measure.wordings["en"].items[member.number - 1]
            assert question["code"] == [{"system": LOINC, "code": member.code, "display": english}]
            assert question["text"] == english
            assert question["type"] == "choice"
            # Asked only when the invitation includes the measure: never required.
            assert "required" not in question and "enableWhen" not in question
            options = question["answerOption"]
            assert [o["valueCoding"] for o in options] == [
                {"system": LOINC, "code": answer.code, "display": text}
                for answer, text in zip(measure.scale, measure.wordings["en"].scale, strict=True)
            ]
            assert [ext(o, fhir.ORDINAL_VALUE) for o in options] == [
                [{"url": fhir.ORDINAL_VALUE, "valueDecimal": answer.score}]
                for answer in measure.scale
            ]
    assert [o["valueCoding"]["code"] for o in by_link(resource)["GAD7_1"][0]["answerOption"]] == [
        "LA6568-5",
        "LA6569-3",
        "LA6570-1",
        "LA6571-9",
    ]
    assert not [i["linkId"] for i in walk(resource["item"]) if i.get("required")]


def test_s1_is_phq9_item_9_with_its_own_loinc_codes(app):
    """S1 is asked once, in the safety step, and counts as PHQ-9's item 9: it keeps its
    code and LOINC answers (no ordinalValue: LHC-Forms would show "Not at all - 0" on the
    safety question)."""
    [s1] = by_link(q_json(app))["S1"]
    [member] = [m for m in PHQ9.items if m.asked_as]
    assert (member.id, member.code) == ("S1", "44260-8")
    assert [c["code"] for c in s1["code"]] == [member.code]
    assert [o["valueCoding"]["code"] for o in s1["answerOption"]] == [a.code for a in PHQ9.scale]
    assert not any(ext(o, fhir.ORDINAL_VALUE) for o in s1["answerOption"])
    groups = {g["linkId"]: [i["linkId"] for i in g["item"]] for g in q_json(app)["item"]}
    assert "S1" in groups["safety"] and "S1" not in groups["phq9"]


def test_no_code_system_is_made_for_a_measures_answers(app):
    with app.app_context():
        systems = fhir.code_systems(DEFINITION, app.config["OFFERED_LANGUAGES"])
    urls = {cs["url"] for cs in systems}
    measured = [i.id for i in DEFINITION.items.values() if i.measure is not None]
    assert len(measured) == 15
    assert not urls & {fhir.code_system(item_id) for item_id in measured}


def _with_official_spanish(tmp_path) -> questionnaire.Questionnaire:
    """The definition, its PHQ-9 given a (made-up, for the test) official Spanish text."""
    for name in ("phq9", "gad7"):
        shutil.copy(instruments.INSTRUMENTS_DIR / f"{name}.toml", tmp_path / f"{name}.toml")
    items = ", ".join(f'"ES item {n}"' for n in range(1, 10))
    with (tmp_path / "phq9.toml").open("a", encoding="utf-8") as toml:
        toml.write(
            "\n[languages.es]\n"
            'source = "A made-up source, for the test"\n'
            'stem = "ES stem"\n'
            f"items = [{items}]\n"
            'scale = ["ES 0", "ES 1", "ES 2", "ES 3"]\n'
        )
    return questionnaire.load(questionnaire.DEFINITION_PATH, tmp_path)


def test_a_measure_is_translated_only_by_an_official_text(app, tmp_path, monkeypatch):
    """Never by the catalogs: whatever gettext says, a measure's words are its official
    text's, in the languages it has one (here PHQ-9 in a made-up Spanish, GAD-7 in none)."""
    definition = _with_official_spanish(tmp_path)
    monkeypatch.setattr(fhir, "gettext", lambda text: f"CATALOG {text}")
    with app.app_context():
        resource = fhir.questionnaire_resource(definition, ["en", "es", "fr"])
    Questionnaire.model_validate(resource)
    links = by_link(resource)

    def translations(element, key="text"):
        return {
            t["extension"][0]["valueCode"]: t["extension"][1]["valueString"]
            for t in ext(element.get(f"_{key}", {}), fhir.TRANSLATION)
        }

    assert translations(links["phq9.stem"][0]) == {"es": "ES stem"}
    [phq9_3] = links["PHQ9_3"]
    assert translations(phq9_3) == {"es": "ES item 3"}
    assert [translations(o["valueCoding"], "display") for o in phq9_3["answerOption"]] == [
        {"es": f"ES {n}"} for n in range(4)
    ]
    for link in ("gad7.stem", "GAD7_1"):
        assert translations(links[link][0]) == {}
    assert "CATALOG" not in str(
        [links[i.id] for i in definition.items.values() if i.measure is not None]
    )
    assert "CATALOG" not in str(links["phq9.stem"] + links["gad7.stem"])
    # Our own words still go through the catalogs: the measure's heading among them.
    group = next(g for g in resource["item"] if g["linkId"] == "phq9")
    assert translations(group) == {"es": f"CATALOG {PHQ9.title}", "fr": f"CATALOG {PHQ9.title}"}


def test_earlier_versions_never_held_a_measure(app):
    """The measures came in with 2026.4: a response of an earlier version resolves to a
    Questionnaire without them, served at its canonical."""
    assert DEFINITION.version == "2026.4"
    assert fhir.served_versions(DEFINITION, ["2026.2", "2026.3", "2026.4", "2099.1"]) == [
        "2026.4",
        "2026.3",
        "2026.2",
    ]
    with app.app_context():
        current = fhir.questionnaire_resource(DEFINITION, ())
        earlier = fhir.questionnaire_resource(DEFINITION, (), "2026.3")
    assert (current["version"], current["status"], current["id"]) == (
        "2026.4",
        "active",
        "reflection",
    )
    assert (earlier["version"], earlier["status"], earlier["id"]) == (
        "2026.3",
        "retired",
        "reflection-2026.3",
    )
    assert {"gad7", "phq9"} <= {g["linkId"] for g in current["item"]}
    assert not {"gad7", "phq9"} & {g["linkId"] for g in earlier["item"]}
    assert fhir.canonical("2026.4") == f"{fhir.QUESTIONNAIRE_URL}|2026.4"
    Questionnaire.model_validate(earlier)


# --- the QuestionnaireResponse and the totals ---------------------------------------------------


def test_offered_and_answered_measures_are_loinc_answers_and_two_totals(app, clock):
    visit_id = answered_visit(app, clock)
    resource = qr_json(app, visit_id)
    QuestionnaireResponse.model_validate(resource)
    assert check_response(resource, q_json(app)) == []
    links = by_link(resource)
    for item_id, value in {**PHQ9_ANSWERS, **GAD7_ANSWERS}.items():
        [element] = links[item_id]
        [answer] = element["answer"]
        item = DEFINITION.items[item_id]
        code = fhir.ANSWER_CODES["S1"][value]
        assert answer["valueCoding"] == {
            "system": LOINC,
            "code": code,
            "display": item.choice(value).label,
        }, item_id
    assert links["PHQ9_1"][0]["text"] == "Little interest or pleasure in doing things"
    sections = [group["linkId"] for group in resource["item"]]
    assert sections.index("gad7") < sections.index("phq9") < sections.index("safety")

    found = observations(app, visit_id)
    with app.app_context():
        visit = storage.get_visit(get_db(), visit_id)
    assert [o["id"] for o in found] == [
        f"{visit.uuid}-safety-1",
        f"{visit.uuid}-gad7-total",
        f"{visit.uuid}-phq9-total",
    ]
    by_code = totals(found)
    assert set(by_code) == {"44261-6", "70274-6"}
    phq9, gad7 = by_code["44261-6"], by_code["70274-6"]
    assert (phq9["valueInteger"], phq9["interpretation"]) == (8, [{"text": "mild"}])
    assert (gad7["valueInteger"], gad7["interpretation"]) == (16, [{"text": "severe"}])
    assert sum(SCORES[v] for v in PHQ9_ANSWERS.values()) == 8
    assert sum(SCORES[v] for v in GAD7_ANSWERS.values()) == 16
    for observation, measure in ((phq9, PHQ9), (gad7, GAD7)):
        Observation.model_validate(observation)
        assert observation["status"] == "final"
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        assert observation["code"]["coding"] == [
            {
                "system": LOINC,
                "code": measure.total_code.code,
                "display": measure.total_code.display,
            }
        ]
        assert observation["effectiveDateTime"] == fhir.timestamp(visit.submitted_at, None)
        assert observation["effectiveDateTime"] == "2026-11-25T09:05:00+00:00"
        assert observation["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{visit.uuid}"}]
        assert observation["meta"] == resource["meta"]
        assert "subject" not in observation  # references are not chart numbers by default
        assert api.RESOURCE_ID.fullmatch(observation["id"])
        assert observation["id"][api.UUID_LENGTH] == "-"


def test_a_held_item_never_leaves_and_leaves_no_total(app, clock):
    """PHQ9_3 kept for in person: its answer is not in the response (only its linkId, as
    every held item's), and PHQ-9 has no total, since a held value is never used; GAD-7's
    total still goes."""
    visit_id = answered_visit(app, clock, held=("PHQ9_3",))
    resource = qr_json(app, visit_id)
    assert check_response(resource, q_json(app)) == []
    assert "PHQ9_3" not in by_link(resource)
    assert [e["valueString"] for e in ext(resource, fhir.HELD_IN_PERSON)] == ["PHQ9_3"]
    assert "PHQ9_2" in by_link(resource) and "PHQ9_4" in by_link(resource)
    assert set(totals(observations(app, visit_id))) == {"70274-6"}


def test_a_skipped_item_leaves_no_total(app, clock):
    visit_id = answered_visit(app, clock, {**ANSWERS, "GAD7_5": None})
    assert set(totals(observations(app, visit_id))) == {"44261-6"}
    assert "GAD7_5" not in by_link(qr_json(app, visit_id))


def test_a_visit_without_measures_has_no_measure_answers_nor_totals(app, clock):
    """Whatever was posted for a measure the visit did not offer is dropped as it is
    saved, and were an answer stored (older data), it still would not leave."""
    visit_id = answered_visit(app, clock, measures=())
    with app.app_context():
        db = get_db()
        assert storage.get_visit(db, visit_id).offered == ()
        answers, _held = storage.answers_for(db, visit_id)
        assert not any(item_id.startswith(("PHQ9_", "GAD7_")) for item_id in answers)
        storage.save_answers(db, visit_id, GAD7_ANSWERS, now=clock(), language="en")
    resource = qr_json(app, visit_id)
    assert check_response(resource, q_json(app)) == []
    links = by_link(resource)
    assert not {"gad7", "phq9"} & set(links)
    assert not any(link.startswith(("PHQ9_", "GAD7_")) for link in links)
    assert links["S1"][0]["answer"][0]["valueCoding"]["code"] == "LA6568-5"  # still asked
    found = observations(app, visit_id)
    assert [o["id"].rsplit("-", 2)[-2:] for o in found] == [["safety", "1"]]


def test_only_the_offered_measure_is_answered_and_scored(app, clock):
    visit_id = answered_visit(app, clock, measures=("gad7",))
    links = by_link(qr_json(app, visit_id))
    assert "GAD7_1" in links and "PHQ9_1" not in links
    assert set(totals(observations(app, visit_id))) == {"70274-6"}


def test_a_chart_number_clinic_names_the_patient_on_the_totals(app, clock):
    visit_id = answered_visit(app, clock)
    with app.app_context():
        storage.save_settings(
            get_db(), {"references_are_chart_numbers": True, "chart_number_system": "urn:oid:1.2"}
        )
    found = observations(app, visit_id)
    safety, *measured = found
    assert len(measured) == 2
    for observation in measured:
        assert observation["subject"] == safety["subject"]
        assert observation["subject"]["identifier"]["value"] == "M-1"
        Observation.model_validate(observation)


def test_a_prorated_total_says_so():
    """No shipped instrument prorates (their published rules give none); one that does
    says so on its total."""
    measure = replace(GAD7, prorate_max_missing=1, prorate_source="A published rule")
    score = measure.score({**GAD7_ANSWERS, "GAD7_7": None})
    assert score.prorated and score.total is not None
    visit = Visit(
        id=3,
        patient_ref="P",
        appointment_at=datetime(2026, 11, 25, 14, 0),
        token_hash="t",
        code_hash="c",
        expires_at=datetime(2026, 11, 25, 23, 59),
        status="submitted",
        created_at=datetime(2026, 11, 25, 9, 0),
        submitted_at=datetime(2026, 11, 25, 9, 10),
        uuid="00000000-0000-4000-8000-000000000003",
        measures_offered="gad7",
    )
    [observation] = fhir.measure_observations(
        visit=visit, scores=[score], zone=None, chart_numbers=False
    )
    assert observation["note"] == [{"text": "Prorated from 6 of 7 items: A published rule"}]
    assert observation["valueInteger"] == score.total
    Observation.model_validate(observation)
    assert (
        fhir.measure_observations(
            visit=visit, scores=[GAD7.score({})], zone=None, chart_numbers=False
        )
        == []
    )


@pytest.mark.parametrize("language", ["es", "ar"])
def test_a_language_without_an_official_text_is_asked_no_measure(app, clock, language):
    """An invitation with both measures, started in a language neither has an official
    text in: neither is offered, so nothing of them leaves."""
    with app.app_context():
        db = get_db()
        invitation = visits.create(
            db,
            patient_ref="L-1",
            appointment_at=clock().replace(hour=14),
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=0,
            created_by=None,
            now=clock(),
            measures=("phq9", "gad7"),
        )
        visits.start(db, invitation.visit_id, language=language, version="2026.4", now=clock())
        storage.save_answers(db, invitation.visit_id, ANSWERS, now=clock(), language=language)
        assert visits.submit(db, invitation.visit_id, set(), clock())
        assert storage.get_visit(db, invitation.visit_id).offered == ()
    assert not any(
        link.startswith(("PHQ9_", "GAD7_")) for link in by_link(qr_json(app, invitation.visit_id))
    )
    assert totals(observations(app, invitation.visit_id)) == {}
