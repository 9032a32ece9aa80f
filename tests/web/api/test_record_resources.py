"""What a record looks for beside the QuestionnaireResponse (issue 22, parts 7, 8 and 5),
over HTTP as an integration engine gets it: the safety history as Observations, the
safety alert as a Flag, the one page as a DocumentReference, every questionnaire
version a stored response names at its canonical, and the StructureDefinitions of the
project's own extensions. Searches are followed by their next links and every fullUrl
is read back."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import quote

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.structuredefinition import StructureDefinition

from patientapp.db import storage
from patientapp.domain import visits
from patientapp.exports import fhir
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
)
from tests.web.api.test_fhir_api import get, is_outcome, local, scoped_token, settings_form
from tests.web.api.test_integrations import new_token

SECRET = "the thing my brother did that summer"
MODELS = {"Observation": Observation, "Flag": Flag, "DocumentReference": DocumentReference}
LOINC = "http://loinc.org"


def follow(client, token, url, between=None) -> list[dict]:
    """Every entry of a search, following next links; each fullUrl read back and equal.
    `between(n)` runs after page n."""
    entries, pages = [], 0
    while url:
        response = get(client, token, url)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
        bundle = response.get_json()
        Bundle.model_validate(bundle)
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] in MODELS:
                MODELS[resource["resourceType"]].model_validate(resource)
            read = get(client, token, local(entry["fullUrl"]))
            assert read.status_code == 200, entry["fullUrl"]
            assert read.get_json() == resource
            if "meta" in resource:  # a visit's: versioned by its change sequence
                assert read.headers["ETag"] == f'W/"{resource["meta"]["versionId"]}"'
        entries += bundle.get("entry", [])
        pages += 1
        if between:
            between(pages)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = local(following[0]) if following else None
    return entries


def resources(client, token, url, between=None) -> list[dict]:
    return [entry["resource"] for entry in follow(client, token, url, between)]


def safety_saves(app, clock, values, *, ref="S-1", send=True, in_person=()) -> int:
    """A visit whose safety question was saved once per value (None: skipped), a minute
    apart, every other step answered; then sent (or left in progress)."""
    invitation = make_invitation(app, patient_ref=ref)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next", **FULL_ANSWERS.get(number, {})})
    with app.app_context():
        db = get_db()
        for value in values:
            clock.advance(minutes=1)
            visits.save_step(
                db, invitation.visit_id, {"S1": value}, step=10, next_step=11, now=clock()
            )
        if send:
            clock.advance(minutes=1)
            assert visits.submit(db, invitation.visit_id, set(in_person), clock())
    return invitation.visit_id


def uuid_of(db, visit_id: int) -> str:
    return storage.get_visit(db, visit_id).uuid


# --- part 7: the safety history as Observations ------------------------------------------------


def test_every_saved_safety_value_is_an_observation(app, admin, client, clock, db):
    visit_id = safety_saves(app, clock, ["several_days", "not_at_all", None])
    token = new_token(admin)
    found = resources(client, token, "/api/fhir/Observation")
    uuid = uuid_of(db, visit_id)
    assert [o["id"] for o in found] == [f"{uuid}-safety-{n}" for n in (1, 2, 3)]
    for observation in found:
        assert observation["status"] == "final"
        assert observation["code"]["coding"] == [
            {"system": LOINC, "code": "44260-8", "display": fhir.ITEM_CODES["S1"]["display"]}
        ]
        assert observation["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{uuid}"}]
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        assert "subject" not in observation  # no chart numbers: no patient identity
    several, none, declined = found
    assert several["valueCodeableConcept"]["coding"][0]["code"] == "LA6569-3"
    assert several["interpretation"][0]["coding"][0]["code"] == "POS"
    assert none["valueCodeableConcept"]["coding"][0]["code"] == "LA6568-5"
    assert none["interpretation"][0]["coding"][0]["code"] == "NEG"
    assert "valueCodeableConcept" not in declined
    assert declined["dataAbsentReason"]["coding"][0]["code"] == "asked-declined"
    times = [o["effectiveDateTime"] for o in found]
    assert times == sorted(times) and len(set(times)) == 3  # each when it was saved
    assert times[0] == "2026-11-25T09:01:00+00:00"
    # The QuestionnaireResponse they derive from is the one the API serves.
    [response] = resources(client, token, "/api/fhir/QuestionnaireResponse")
    assert response["id"] == uuid
    reads = [r for r in db["audit_log"].rows if r["action"] == "fhir_observation_read"]
    assert len(reads) == 1 + 3  # the search's one visit, then each read by id
    assert {r["visit_id"] for r in reads} == {visit_id}


def test_a_visit_with_no_safety_answer_has_no_observation(app, admin, client, clock):
    safety_saves(app, clock, [])
    token = new_token(admin)
    bundle = get(client, token, "/api/fhir/Observation").get_json()
    assert bundle["total"] == 0 and "entry" not in bundle


# --- the safety alert as a Flag ---------------------------------------------------------------


def test_the_alert_is_an_active_flag_until_acknowledged(app, admin, client, clock, db):
    visit_id = safety_saves(app, clock, ["not_at_all", "more_than_half", "not_at_all"])
    uuid = uuid_of(db, visit_id)
    token = new_token(admin)
    [flag] = resources(client, token, "/api/fhir/Flag")
    assert flag["id"] == f"{uuid}-safety-alert"
    assert flag["status"] == "active"
    assert flag["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
        "code": "safety",
        "display": "Safety",
    }
    assert flag["code"]["text"] == "Safety alert: thoughts of death or self-harm"
    assert flag["period"] == {"start": "2026-11-25T09:02:00+00:00"}  # raised at the 2nd save
    # flag-detail: the Observation of the worrying value that raised it, which resolves.
    [detail] = flag["extension"]
    assert detail["url"] == "http://hl7.org/fhir/StructureDefinition/flag-detail"
    assert detail["valueReference"]["reference"] == f"Observation/{uuid}-safety-2"
    observation = get(client, token, f"/api/fhir/{detail['valueReference']['reference']}")
    assert observation.get_json()["valueCodeableConcept"]["coding"][0]["code"] == "LA6570-1"
    newest = flag["meta"]["lastUpdated"]

    # Someone acknowledges it: a change, read by the next poll, with the period's end.
    psychiatrist = create_user(app, "dr@example.org", "psychiatrist")
    staff = app.test_client()
    assert login(staff, "dr@example.org").status_code == 302
    clock.advance(minutes=4)
    page = staff.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    staff.post(f"/staff/visits/{visit_id}/acknowledge", data={"csrf_token": csrf_from(page)})
    assert storage.alert_for(db, visit_id).acknowledged_by == psychiatrist
    poll = f"/api/fhir/Flag?_lastUpdated=gt{quote(newest)}"
    [after] = resources(client, token, poll)
    assert after["status"] == "inactive"
    assert after["period"] == {
        "start": "2026-11-25T09:02:00+00:00",
        "end": "2026-11-25T09:08:00+00:00",
    }
    assert int(after["meta"]["versionId"]) > int(flag["meta"]["versionId"])
    # The one page says who acknowledged it, so it changed too.
    [document] = resources(
        client, token, f"/api/fhir/DocumentReference?_lastUpdated=gt{quote(newest)}"
    )
    assert "Alert acknowledged at" in text_of(document)
    assert (
        resources(
            client, token, f"/api/fhir/Flag?_lastUpdated=gt{quote(after['meta']['lastUpdated'])}"
        )
        == []
    )


def test_no_alert_no_flag(app, admin, client):
    finish_visit(app)  # "Not at all"
    token = new_token(admin)
    assert get(client, token, "/api/fhir/Flag").get_json()["total"] == 0


# --- only sent visits: never one in progress, whatever the scope --------------------------------


def test_nothing_of_a_visit_not_sent_leaves(app, admin, client, clock, db):
    """A patient in progress answered the safety question (an alert is raised at once for
    the front desk) and typed an agenda: no Observation, Flag or DocumentReference of the
    visit leaves, not even with the in-progress scope, until it is sent."""
    invitation = make_invitation(app, patient_ref="P-9")
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": SECRET})
    with app.app_context():
        visits.save_step(
            get_db(),
            invitation.visit_id,
            {"S1": "nearly_every_day"},
            step=10,
            next_step=11,
            now=clock(),
        )
    assert storage.alert_for(db, invitation.visit_id) is not None
    uuid = uuid_of(db, invitation.visit_id)
    ids = {
        "Observation": f"{uuid}-safety-1",
        "Flag": f"{uuid}-safety-alert",
        "DocumentReference": f"{uuid}-summary",
    }
    for token in (new_token(admin), scoped_token(app, clock, in_progress=True)):
        for kind, resource_id in ids.items():
            bundle = get(client, token, f"/api/fhir/{kind}").get_json()
            assert bundle["total"] == 0 and "entry" not in bundle, kind
            assert is_outcome(get(client, token, f"/api/fhir/{kind}/{resource_id}"), 404)
            strict = get(
                client, token, f"/api/fhir/{kind}?status=in-progress", Prefer="handling=strict"
            )
            assert is_outcome(strict, 400)["code"] == "not-supported"
    assert not [
        r for r in db["audit_log"].rows if r["action"].startswith("fhir_") and r["visit_id"]
    ]
    # Sent: now they leave, and the held agenda is not in the one page.
    for number in range(2, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/review", {"action": "submit", "in_person": ["T2"]})
    token = new_token(admin, name="After")
    for kind, resource_id in ids.items():
        read = get(client, token, f"/api/fhir/{kind}/{resource_id}")
        assert read.status_code == 200, kind
        assert SECRET not in read.get_data(as_text=True)
        if kind == "DocumentReference":
            assert SECRET not in text_of(read.get_json())


# --- part 8: the one page as a DocumentReference -------------------------------------------------


def text_of(document: dict) -> str:
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode("utf-8")


def test_the_one_page_is_the_staff_text_and_holds_no_held_answer(app, admin, client, db):
    answers = {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": SECRET}}
    visit_id = finish_visit(app, answers=answers, in_person=("T2",)).visit_id
    assert storage.answers_for(db, visit_id)[0]["T2"] == SECRET  # stored, but held
    token = new_token(admin)
    [document] = resources(client, token, "/api/fhir/DocumentReference")
    uuid = uuid_of(db, visit_id)
    assert document["id"] == f"{uuid}-summary"
    assert (document["status"], document["docStatus"]) == ("current", "final")
    assert document["type"]["coding"] == [
        {"system": LOINC, "code": "34785-6", "display": "Mental health Consult note"}
    ]
    assert document["context"]["related"] == [{"reference": f"QuestionnaireResponse/{uuid}"}]
    assert document["context"]["period"]["start"].startswith("2026-11-25T")
    assert "relatesTo" not in document and "subject" not in document
    [content] = document["content"]
    attachment = content["attachment"]
    assert attachment["contentType"] == "text/plain; charset=utf-8"
    assert attachment["language"] == "en"
    assert attachment["title"] and attachment["creation"] == document["date"]
    data = base64.b64decode(attachment["data"])
    assert attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324
    text = data.decode("utf-8")
    # The same text the psychiatrist downloads as plain text for the medical record.
    create_user(app, "dr@example.org", "psychiatrist")
    staff = app.test_client()
    assert login(staff, "dr@example.org").status_code == 302
    download = staff.get(f"/staff/visits/{visit_id}/summary.txt")
    assert download.status_code == 200
    assert text == download.get_data(as_text=True)
    # Held: named as a topic, never quoted.
    assert SECRET not in text and SECRET not in json.dumps(document)
    assert "Held for in person: " in text
    reads = [r for r in db["audit_log"].rows if r["action"] == "fhir_document_read"]
    assert [r["visit_id"] for r in reads] == [visit_id, visit_id]  # the search, the read


def test_the_one_page_follows_the_clinic_settings(app, admin, client, clock):
    finish_visit(app, ref="MRN-5")
    token = new_token(admin)
    [before] = resources(client, token, "/api/fhir/DocumentReference")
    clock.advance(minutes=1)
    assert settings_form(admin, clinic_name="Lakeside Clinic").status_code == 302
    since = quote(before["meta"]["lastUpdated"])
    [renamed] = resources(client, token, f"/api/fhir/DocumentReference?_lastUpdated=gt{since}")
    assert "Lakeside Clinic" in text_of(renamed) and "Lakeside Clinic" not in text_of(before)
    clock.advance(minutes=1)
    assert (
        settings_form(
            admin,
            clinic_name="Lakeside Clinic",
            references_are_chart_numbers="y",
            chart_number_system="urn:oid:1.2.3.4",
        ).status_code
        == 302
    )
    since = quote(renamed["meta"]["lastUpdated"])
    [after] = resources(client, token, f"/api/fhir/DocumentReference?_lastUpdated=gt{since}")
    assert after["subject"]["identifier"]["value"] == "MRN-5"
    assert after["subject"]["identifier"]["system"] == "urn:oid:1.2.3.4"
    [observation] = resources(client, token, "/api/fhir/Observation")
    assert observation["subject"] == after["subject"]


# --- paging: the same change sequence, a visit's resources never split -----------------------


def test_paging_follows_the_change_sequence_while_visits_change(app, admin, client, clock, db):
    user = create_user(app, "dr@example.org", "psychiatrist")
    sent = []
    for n in range(4):
        sent.append(safety_saves(app, clock, ["several_days", "not_at_all"], ref=f"Q-{n}"))
    token = new_token(admin)

    def review_first(page):
        if page == 1:
            with app.app_context():
                assert visits.mark_reviewed(get_db(), sent[0], user, clock())
            clock.advance(minutes=1)

    url = "/api/fhir/Observation?_lastUpdated=ge2026-11-25T00:00:00Z&_count=3"
    first = get(client, token, url).get_json()
    assert first["total"] == 8 and len(first["entry"]) == 2  # one visit's two: never split
    found = resources(client, token, url, review_first)
    ids = [o["id"] for o in found]
    expected = {f"{uuid_of(db, v)}-safety-{n}" for v in sent for n in (1, 2)}
    assert set(ids) == expected  # none lost
    # The reviewed visit's two come again, at the end, as a new version; nothing else twice.
    assert len(ids) == 10 and ids[-2:] == ids[:2]
    assert found[-1]["meta"]["versionId"] != found[1]["meta"]["versionId"]
    documents = resources(client, token, "/api/fhir/DocumentReference?_count=1")
    assert len(documents) == 4
    # A page always holds a whole visit, even one with more values than _count.
    [page] = [get(client, token, "/api/fhir/Observation?_count=1").get_json()]
    assert len(page["entry"]) == 2


# --- part 5: every questionnaire version at its canonical -----------------------------------------


def test_every_version_a_response_names_resolves(app, admin, client, db):
    old = finish_visit(app, ref="OLD").visit_id
    finish_visit(app, ref="NEW")
    db.execute("UPDATE visits SET questionnaire_version = '2026.2' WHERE id = ?", (old,))
    db.conn.commit()
    token = new_token(admin)
    current = questionnaire.default()
    canonicals = {
        r["questionnaire"] for r in resources(client, token, "/api/fhir/QuestionnaireResponse")
    }
    assert canonicals == {fhir.canonical("2026.2"), fhir.canonical(current.version)}
    for canonical in canonicals:
        url, _, version = canonical.partition("|")
        bundle = get(
            client, token, f"/api/fhir/Questionnaire?url={url}&version={version}"
        ).get_json()
        [entry] = bundle["entry"]
        found = entry["resource"]
        assert (found["url"], found["version"]) == (url, version)
        assert get(client, token, local(entry["fullUrl"])).get_json() == found
    older = get(client, token, "/api/fhir/Questionnaire/reflection-2026.2").get_json()
    assert older["status"] == "retired"
    link_ids = {i["linkId"] for group in older["item"] for i in group["item"]}
    later = {i for i, item in current.items.items() if item.since == current.version}
    assert later and not later & link_ids  # what 2026.3 first asked is not in 2026.2
    assert get(client, token, "/api/fhir/Questionnaire/reflection").get_json()["status"] == "active"
    everything = get(
        client, token, f"/api/fhir/Questionnaire?url={fhir.QUESTIONNAIRE_URL}"
    ).get_json()
    assert [e["resource"]["version"] for e in everything["entry"]] == [current.version, "2026.2"]
    # A version no response names: none, and a read of it is a 404 OperationOutcome.
    none = get(
        client, token, f"/api/fhir/Questionnaire?url={fhir.QUESTIONNAIRE_URL}&version=2026.1"
    )
    assert none.get_json()["total"] == 0
    assert is_outcome(get(client, token, "/api/fhir/Questionnaire/reflection-2026.1"), 404)
    strict = get(client, token, "/api/fhir/Questionnaire?name=x", Prefer="handling=strict")
    assert is_outcome(strict, 400)["code"] == "not-supported"


# --- the project's own extensions: each defined, with its context ------------------------------


def extension_urls(element, parent=None):
    """(url, where) of every extension: where is the element holding it."""
    if isinstance(element, dict):
        for extension in element.get("extension", []):
            yield extension["url"], parent
        for key, value in element.items():
            if key != "extension":
                yield from extension_urls(value, key)
    elif isinstance(element, list):
        for value in element:
            yield from extension_urls(value, parent)


@pytest.mark.parametrize("held", [("T2",)])
def test_every_own_extension_resolves_to_its_definition(app, admin, client, held):
    finish_visit(app, in_person=held)
    token = new_token(admin)
    [response] = resources(client, token, "/api/fhir/QuestionnaireResponse")
    definitions = resources(client, token, "/api/fhir/StructureDefinition")
    assert len(definitions) == len(fhir.EXTENSIONS)
    used = {url for url, _ in extension_urls(response) if url.startswith("urn:patientapp:")}
    assert fhir.HELD_IN_PERSON in used and fhir.ANSWER_LANGUAGE in used
    for url in used:
        [entry] = get(client, token, f"/api/fhir/StructureDefinition?url={url}").get_json()["entry"]
        definition = entry["resource"]
        StructureDefinition.model_validate(definition)
        assert definition["type"] == "Extension" and definition["url"] == url
        [context] = definition["context"]
        assert context["type"] == "element"
    contexts = {d["url"]: d["context"][0]["expression"] for d in definitions}
    assert contexts[fhir.ANSWER_LANGUAGE] == "QuestionnaireResponse.item.answer"
    assert contexts[fhir.HELD_IN_PERSON] == "QuestionnaireResponse"
    # ... and each stands where its context says: on the response, or on an answer.
    for url, where in extension_urls(response):
        if url == fhir.ANSWER_LANGUAGE:
            assert where == "answer"
        elif url in contexts:
            assert where is None, url


def test_the_one_page_read_by_the_api_is_audited_for_the_earlier_visit_it_holds(
    app, admin, client, clock, db
):
    token = new_token(admin, name="Record feed")
    first = finish_visit(app, ref="DOC-EARLIER")
    clock.advance(days=28)
    second = finish_visit(app, ref="DOC-EARLIER")
    uuid = uuid_of(db, second.visit_id)
    document = get(client, token, f"/api/fhir/DocumentReference/{uuid}-summary").get_json()
    assert "I would go back to work and see my friends." in text_of(document)  # visit 1's
    # A search reads it again, and `resources` reads each entry it finds once more.
    resources(client, token, "/api/fhir/DocumentReference")
    get(client, token, f"/api/fhir/QuestionnaireResponse/{uuid}")  # its own answers only
    get(client, token, "/api/fhir/Observation")
    shown = storage.audit_entries(db, action="earlier_visit_shown")
    assert [entry["visit_id"] for entry in shown] == [first.visit_id] * 3
    assert {entry["actor"] for entry in shown} == {"api:Record feed"}
    assert all(
        entry["detail"].endswith(f"fhir_document_read of visit {second.visit_id}")
        for entry in shown
    )
