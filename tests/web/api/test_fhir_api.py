"""The FHIR API as an integration engine meets it (issue 22), over HTTP only: the
CapabilityStatement, read by id behind every fullUrl, the search parameters and their
prefixes, Prefer: handling, OperationOutcome for every error, content types, what leaves
(sent visits, never a held answer), ids that survive a backup, tokens that expire and
rotate."""

from __future__ import annotations

import json
from datetime import date, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from patientapp.db import storage
from patientapp.domain import api_tokens, visits
from patientapp.web.context import get_db
from tests.conftest import Patient, csrf_from, finish_visit, login, make_invitation
from tests.web.api.conftest import settings_form
from tests.web.api.test_integrations import bearer, new_token

FHIR_JSON_UTF8 = "application/fhir+json; charset=utf-8"
RESPONSES = "/api/fhir/QuestionnaireResponse"
SECRET = "my brother's name and what he did"


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def get(client, token, url, **headers):
    return client.get(url, headers={**bearer(token), **headers})


def search_all(client, token, url) -> list[dict]:
    """Every resource of a search, following next links as a client does."""
    resources = []
    while url:
        response = get(client, token, url)
        assert response.status_code == 200, response.get_data(as_text=True)
        bundle = response.get_json()
        Bundle.model_validate(bundle)
        resources += [entry["resource"] for entry in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = local(following[0]) if following else None
    return resources


def scoped_token(app, clock, **kwargs) -> str:
    with app.app_context():
        _id, secret = api_tokens.create_token(get_db(), "Board", None, clock(), **kwargs)
    return secret


def is_outcome(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == FHIR_JSON_UTF8
    body = response.get_json()
    OperationOutcome.model_validate(body)
    return body["issue"][0]


# --- part 1: only sent visits leave; held answers never --------------------------------------


def typing_patient(app, text=SECRET):
    """A patient in progress who typed a sensitive agenda (T2, step 1) and tapped Next."""
    invitation = make_invitation(app, patient_ref="HELD-1")
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": text})
    return invitation, patient


def test_a_visit_in_progress_does_not_leave_and_a_held_answer_never(app, admin, client, db):
    """Issue 22: the engine's poll received an agenda typed in progress; the patient then
    held it for in person and sent. Now nothing of it ever leaves."""
    token = new_token(admin)
    invitation, patient = typing_patient(app)
    assert storage.answers_for(db, invitation.visit_id)[0]["T2"] == SECRET
    seen = [get(client, token, RESPONSES).get_data(as_text=True)]
    assert "entry" not in json.loads(seen[0])  # in progress: not served by default
    with app.app_context():
        uuid = storage.get_visit(get_db(), invitation.visit_id).uuid
    seen.append(get(client, token, f"{RESPONSES}/{uuid}").get_data(as_text=True))
    assert json.loads(seen[-1])["resourceType"] == "OperationOutcome"
    for number in range(2, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/review", {"action": "submit", "in_person": ["T2"]})
    assert storage.get_visit(db, invitation.visit_id).status == "submitted"
    [row] = [r for r in db["answers"].rows if r["item_id"] == "T2"]
    assert row["in_person"] == 1  # held, as answers.in_person marks it
    seen.append(get(client, token, RESPONSES).get_data(as_text=True))
    seen.append(get(client, token, f"{RESPONSES}/{uuid}").get_data(as_text=True))
    [resource] = [e["resource"] for e in json.loads(seen[-2])["entry"]]
    assert resource["status"] == "completed" and resource["id"] == uuid
    assert all(SECRET not in body for body in seen)


def test_the_in_progress_scope_reads_status_and_progress_only(app, admin, client, clock):
    typing_patient(app)
    token = scoped_token(app, clock, in_progress=True)
    [resource] = search_all(client, token, RESPONSES)
    QuestionnaireResponse.model_validate(resource)
    assert resource["status"] == "in-progress"
    assert "item" not in resource and "language" not in resource
    assert SECRET not in json.dumps(resource)
    assert [e["url"] for e in resource["extension"]] == [
        "urn:patientapp:fhir:StructureDefinition:appointment",
        "urn:patientapp:fhir:StructureDefinition:progress",
    ]
    # The default token may not even ask for visits in progress: 403.
    default = new_token(admin)
    issue = is_outcome(get(client, default, f"{RESPONSES}?status=in-progress"), 403)
    assert issue["code"] == "forbidden"
    ok = get(client, token, f"{RESPONSES}?status=in-progress").get_json()
    assert ok["total"] == 1


# --- part 3: a UUID per visit, identifier system never from the Host -----------------------


def test_the_identifier_never_follows_the_host_header(app, admin, client):
    finish_visit(app)
    token = new_token(admin)
    for host in ("localhost", "127.0.0.1:8000", "[::1]:5000"):
        response = client.get(RESPONSES, headers={**bearer(token), "Host": host})
        [entry] = response.get_json()["entry"]
        identifier = entry["resource"]["identifier"]
        assert identifier["system"] == "urn:ietf:rfc:3986"
        assert identifier["value"] == f"urn:uuid:{entry['resource']['id']}"
    app.config["BASE_URL"] = "https://reflect.clinic.example/"
    [entry] = get(client, token, RESPONSES, Host="localhost").get_json()["entry"]
    assert entry["resource"]["identifier"] == {
        "system": "https://reflect.clinic.example/visits",
        "value": entry["resource"]["id"],
    }
    assert entry["fullUrl"] == (
        f"https://reflect.clinic.example/api/fhir/QuestionnaireResponse/{entry['resource']['id']}"
    )


def test_ids_are_not_reused_after_a_backup_is_restored(app, admin, client, db, tmp_path):
    """Issue 22: after a restore, new visits took the row ids of visits made after the
    backup, and with them their FHIR id and identifier: two patients' visits were both
    visit-22, and an engine updating by id overwrote one with the other."""
    token = new_token(admin)
    first = finish_visit(app, ref="A-1").visit_id
    copy = tmp_path / "backup.db"
    with app.app_context():
        storage.backup(get_db(), copy)
    after_backup = finish_visit(app, ref="B-2").visit_id
    engine = {r["id"]: r["identifier"] for r in search_all(client, token, RESPONSES)}
    app.config["DATABASE"] = str(copy)  # the clinic restores the backup ...
    again = finish_visit(app, ref="C-3").visit_id  # ... and patients go on
    assert again == after_backup  # the same row id, another patient's visit
    restored = search_all(client, token, RESPONSES)
    assert len(restored) == 2
    new = [r for r in restored if r["id"] not in engine]
    assert len(new) == 1, "the new visit reuses an id the engine already holds"
    assert new[0]["identifier"] not in engine.values()
    # The visit the backup holds keeps its id across backup and restore.
    assert [r["id"] for r in restored if r["id"] in engine] == [storage.get_visit(db, first).uuid]


# --- part 4: a conformant read API --------------------------------------------------------------


def test_metadata_lists_exactly_what_is_served(app, admin, client):
    token = new_token(admin)
    response = get(client, token, "/api/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == FHIR_JSON_UTF8
    statement = response.get_json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    [rest] = statement["rest"]
    served = {
        r["type"]: (
            {i["code"] for i in r["interaction"]},
            {p["name"] for p in r.get("searchParam", [])},
        )
        for r in rest["resource"]
    }
    derived = ({"read", "search-type"}, {"_lastUpdated", "_count"})
    assert served == {
        "QuestionnaireResponse": ({"read", "search-type"}, {"_lastUpdated", "status", "_count"}),
        "Observation": derived,
        "Flag": derived,
        "DocumentReference": derived,
        "Questionnaire": ({"read", "search-type"}, {"url", "version"}),
        "CodeSystem": ({"read", "search-type"}, {"url", "version"}),
        "StructureDefinition": ({"read", "search-type"}, {"url"}),
    }
    # ... and the routes are exactly those (plus metadata itself).
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert rules == {"/api/fhir/metadata"} | {
        f"/api/fhir/{kind}{tail}" for kind in served for tail in ("", "/<resource_id>")
    }
    assert "no identifier system is given" not in json.dumps(statement)
    assert "No patient link" in json.dumps(statement)


def test_every_full_url_resolves_to_the_same_resource(app, admin, client, db):
    for n in range(3):
        finish_visit(app, ref=f"R-{n}", in_person=("T2",))
    token = new_token(admin)
    bundle = get(client, token, RESPONSES).get_json()
    assert bundle["total"] == 3
    for entry in bundle["entry"]:
        read = get(client, token, local(entry["fullUrl"]))
        assert read.status_code == 200
        assert read.headers["Content-Type"] == FHIR_JSON_UTF8
        assert read.get_json() == entry["resource"]
        assert read.headers["ETag"] == f'W/"{entry["resource"]["meta"]["versionId"]}"'
    reads = [r for r in db["audit_log"].rows if r["action"] == "fhir_response_read"]
    assert len(reads) == 6  # each visit in the search, and each read
    for missing in ("not-a-visit", "0" * 36, "x" * 65):
        assert is_outcome(get(client, token, f"{RESPONSES}/{missing}"), 404)["code"] == "not-found"


def test_last_updated_prefixes_and_ranges(app, admin, client, clock):
    token = new_token(admin)
    for n in range(4):
        finish_visit(app, ref=f"T-{n}")
        clock.advance(minutes=10)
    resources = search_all(client, token, RESPONSES)
    times = [r["meta"]["lastUpdated"] for r in resources]
    ids = [r["id"] for r in resources]
    assert times == sorted(times) and len(set(times)) == 4

    def found(query):
        return [r["id"] for r in search_all(client, token, f"{RESPONSES}?{query}")]

    def q(value):
        return value.replace("+", "%2B")

    assert found(f"_lastUpdated=ge{q(times[1])}") == ids[1:]
    assert found(f"_lastUpdated=gt{q(times[1])}") == ids[2:]
    assert found(f"_lastUpdated=le{q(times[1])}") == ids[:2]
    assert found(f"_lastUpdated=lt{q(times[1])}") == ids[:1]
    assert found(f"_lastUpdated={q(times[2])}") == ids[2:3]
    assert found(f"_lastUpdated=eq{q(times[2])}") == ids[2:3]
    assert found(f"_lastUpdated=gt{q(times[0])}&_lastUpdated=lt{q(times[3])}") == ids[1:3]
    # A day is a range: the visits are all on 25 November (the clinic's zone, none set
    # here, is the server's; UTC in the tests' clock).
    assert found("_lastUpdated=ge2026-11-25T00:00:00Z") == ids
    assert found("_lastUpdated=gt2026-11-24T23:59:59Z&_lastUpdated=lt2026-11-26T00:00:00Z") == ids
    assert found("_lastUpdated=gt2026-11-25T23:00:00Z") == []
    assert found("_lastUpdated=lt2026-11-25T00:00:00Z") == []


def test_status_count_and_total(app, admin, client, clock, db):
    from tests.conftest import create_user

    user = create_user(app, "dr@example.org", "psychiatrist")
    sent = [finish_visit(app, ref=f"S-{n}").visit_id for n in range(3)]
    with app.app_context():
        assert visits.mark_reviewed(get_db(), sent[0], user, clock())
    token = new_token(admin)
    page = get(client, token, f"{RESPONSES}?status=completed&_count=2").get_json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    assert [link["relation"] for link in page["link"]] == ["self", "next"]
    assert get(client, token, f"{RESPONSES}?status=amended").get_json()["total"] == 0
    assert "entry" not in get(client, token, f"{RESPONSES}?status=amended").get_json()
    both = get(client, token, f"{RESPONSES}?status=completed&status=completed,amended")
    assert both.get_json()["total"] == 3
    # Stopped visits were never sent: only a token with the in-progress scope reads them.
    assert get(client, token, f"{RESPONSES}?status=stopped").status_code == 403


def test_unknown_parameters_follow_prefer_handling(app, admin, client, db):
    """Issue 22: `_id=2` was silently ignored: every visit returned and audited."""
    finish_visit(app)
    token = new_token(admin)
    strict = get(client, token, f"{RESPONSES}?_id=2", Prefer="handling=strict")
    issue = is_outcome(strict, 400)
    assert issue["code"] == "not-supported" and "_id" in issue["diagnostics"]
    assert not [r for r in db["audit_log"].rows if r["action"] == "fhir_response_read"]
    for prefer in ("handling=lenient", None):
        headers = {"Prefer": prefer} if prefer else {}
        lenient = get(client, token, f"{RESPONSES}?_id=2&status=completed&_count=5", **headers)
        assert lenient.status_code == 200
        [self_link] = [
            link["url"] for link in lenient.get_json()["link"] if link["relation"] == "self"
        ]
        assert dict(parse_qsl(urlsplit(self_link).query)) == {"status": "completed", "_count": "5"}


def test_every_error_under_the_prefix_is_an_operation_outcome(app, admin, client, monkeypatch):
    token = new_token(admin)
    assert is_outcome(client.get("/api/fhir/metadata"), 401)["code"] == "login"
    assert is_outcome(get(client, token, "/api/fhir/Patient"), 404)["code"] == "not-found"
    assert is_outcome(get(client, token, "/api/fhir/Questionnaire/other"), 404)
    posted = client.post(RESPONSES, headers=bearer(token), json={"resourceType": "Bundle"})
    assert is_outcome(posted, 405)["code"] == "not-supported"
    assert "GET" in posted.headers["Allow"]
    assert is_outcome(client.delete(f"{RESPONSES}/x", headers=bearer(token)), 405)
    assert is_outcome(get(client, token, f"{RESPONSES}?_count=0"), 400)["code"] == "invalid"
    assert is_outcome(get(client, token, f"{RESPONSES}?status=in-progress"), 403)
    assert is_outcome(get(client, token, f"{RESPONSES}?_format=xml"), 406)
    assert get(client, token, f"{RESPONSES}?_format=json").status_code == 200

    from patientapp.api import views as api

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    app.config["CATCH_ERRORS_IN_TESTS"] = True
    monkeypatch.setattr(api, "capability_statement", broken)
    crash = get(client, token, "/api/fhir/metadata")
    assert is_outcome(crash, 500)["code"] == "exception" and "boom" not in crash.get_data(
        as_text=True
    )
    # Outside the prefix, pages stay pages.
    assert "text/html" in client.get("/api/other").headers["Content-Type"]


# --- tokens: expiry and rotation ---------------------------------------------------------------


def token_form(admin, **data):
    page = admin.get("/staff/admin/integrations")
    return admin.post(
        "/staff/admin/integrations",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "name": "EHR", **data},
    )


def created(response) -> str:
    return response.get_data(as_text=True).split('<code id="new-token">')[1].split("</code>")[0]


def test_a_token_expires_at_the_end_of_its_day(app, admin, client, clock, db):
    today = clock().date()
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    assert "Expires on" in page and "Also read visits not yet sent" in page
    past = token_form(admin, expires_on=(today - timedelta(days=1)).isoformat())
    assert past.status_code == 422 and "Please choose today or a later day." in past.get_data(
        as_text=True
    )
    token = created(token_form(admin, expires_on=today.isoformat()))
    assert get(client, token, RESPONSES).status_code == 200
    clock.advance(hours=14, minutes=59)  # 23:59 on the same day
    assert get(client, token, RESPONSES).status_code == 200
    clock.advance(minutes=1)
    assert is_outcome(get(client, token, RESPONSES), 401)["code"] == "login"
    again = app.test_client()  # the admin's session has ended overnight
    assert login(again, "admin@example.org").status_code == 302
    assert "Expired" in again.get("/staff/admin/integrations").get_data(as_text=True)
    [row] = list(db["api_tokens"].rows)
    assert row["in_progress"] == 0  # the scope is off unless ticked
    assert isinstance(date.fromisoformat(row["expires_at"][:10]), date)


def test_the_scope_is_set_on_the_form(app, admin, client):
    typing_patient(app)
    token = created(token_form(admin, in_progress="y"))
    [resource] = search_all(client, token, RESPONSES)
    assert resource["status"] == "in-progress"
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    assert "Also visits not yet sent: status and progress only" in page


def test_rotating_gives_a_new_secret_and_stops_the_old(app, admin, client, db):
    old = created(token_form(admin))
    [row] = list(db["api_tokens"].rows)
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    assert "New secret" in page
    rotated = admin.post(
        f"/staff/admin/integrations/{row['id']}/rotate", data={"csrf_token": csrf_from(page)}
    )
    assert rotated.status_code == 200
    new = created(rotated)
    assert new != old and new.startswith("pa_")
    assert get(client, old, RESPONSES).status_code == 401
    assert get(client, new, RESPONSES).status_code == 200
    [after] = list(db["api_tokens"].rows)
    assert (after["id"], after["name"]) == (row["id"], row["name"])
    assert after["token_hash"] == api_tokens.hash_token(new)
    assert [r["detail"] for r in db["audit_log"].rows if r["action"] == "api_token_rotated"] == [
        f"token {row['id']}: EHR"
    ]
    assert get(client, new, "/api/fhir/Questionnaire/reflection").status_code == 200
    reads = [r for r in db["audit_log"].rows if r["actor"] == "api:EHR"]
    assert [r["action"] for r in reads] == ["fhir_questionnaire_read"]  # audited as before
    assert admin.post(f"/staff/admin/integrations/{row['id']}/rotate").status_code == 400
    assert (
        admin.post(
            "/staff/admin/integrations/999/rotate", data={"csrf_token": csrf_from(page)}
        ).status_code
        == 404
    )


# --- part 6: the patient link -------------------------------------------------------------------


def test_chart_numbers_and_their_system_change_the_resource_and_its_time(app, admin, client, clock):
    """Issue 22: turning chart numbers on changed every response without changing
    meta.lastUpdated, so a poll never fetched them again."""
    finish_visit(app, ref="MRN-77")
    token = new_token(admin)
    [before] = search_all(client, token, RESPONSES)
    assert "subject" not in before
    clock.advance(minutes=5)
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert "Chart number system" in page
    bad = settings_form(admin, references_are_chart_numbers="y", chart_number_system="not a uri")
    assert bad.status_code == 422
    assert (
        settings_form(
            admin,
            references_are_chart_numbers="y",
            chart_number_system="urn:oid:2.16.840.1.113883.3.1",
        ).status_code
        == 302
    )
    since = before["meta"]["lastUpdated"].replace("+", "%2B")
    [after] = search_all(client, token, f"{RESPONSES}?_lastUpdated=gt{since}")
    assert after["id"] == before["id"]
    assert after["meta"]["lastUpdated"] > before["meta"]["lastUpdated"]
    assert int(after["meta"]["versionId"]) > int(before["meta"]["versionId"])
    patient = {
        "type": "Patient",
        "identifier": {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "system": "urn:oid:2.16.840.1.113883.3.1",
            "value": "MRN-77",
        },
    }
    assert after["subject"] == after["author"] == after["source"] == patient
    QuestionnaireResponse.model_validate(after)
    statement = json.dumps(get(client, token, "/api/fhir/metadata").get_json())
    assert "system urn:oid:2.16.840.1.113883.3.1" in statement
    assert settings_form(admin, references_are_chart_numbers="y").status_code == 302
    assert "no identifier system is given" in json.dumps(
        get(client, token, "/api/fhir/metadata").get_json()
    )


@pytest.mark.parametrize("zone", ["America/Chicago"])
def test_changing_the_time_zone_is_a_change(app, admin, client, clock, zone):
    finish_visit(app)
    token = new_token(admin)
    [before] = search_all(client, token, RESPONSES)
    assert settings_form(admin, time_zone=zone).status_code == 302
    [after] = search_all(client, token, RESPONSES)
    assert after["meta"]["versionId"] != before["meta"]["versionId"]
    assert after["authored"].endswith("-06:00")


# --- part 5: every coding resolves --------------------------------------------------------------


def codings(element):
    if isinstance(element, dict):
        for key, value in element.items():
            if key in ("valueCoding", "answerCoding"):
                yield value
            else:
                yield from codings(value)
    elif isinstance(element, list):
        for value in element:
            yield from codings(value)


def test_every_coding_resolves_through_its_code_system(app, admin, client):
    """Issue 22: no CodeSystem was published. Each system of the project's own resolves
    by its canonical (CodeSystem?url=...), and the code is in it with the same display."""
    app.config["API_REQUESTS_PER_MINUTE"] = 10_000  # one look-up per coding
    finish_visit(app)
    token = new_token(admin)
    documents = [get(client, token, "/api/fhir/Questionnaire/reflection").get_json()]
    documents += search_all(client, token, RESPONSES)
    checked = set()
    for coding in codings(documents):
        if coding["system"] == "http://loinc.org":
            assert coding["code"].startswith("LA")
            continue
        found = get(client, token, f"/api/fhir/CodeSystem?url={coding['system']}").get_json()
        Bundle.model_validate(found)
        [entry] = found["entry"]
        assert get(client, token, local(entry["fullUrl"])).get_json() == entry["resource"]
        concepts = {c["code"]: c["display"] for c in entry["resource"]["concept"]}
        assert coding["code"] in concepts, coding
        if "display" in coding:
            assert concepts[coding["code"]] == coding["display"]
        checked.add(coding["system"])
    assert len(checked) > 10
    everything = get(client, token, "/api/fhir/CodeSystem").get_json()
    assert everything["total"] == len(everything["entry"]) >= len(checked)
    none = get(client, token, "/api/fhir/CodeSystem?url=urn:x&version=1").get_json()
    assert none["total"] == 0 and "entry" not in none
    strict = get(client, token, "/api/fhir/CodeSystem?name=x", Prefer="handling=strict")
    assert is_outcome(strict, 400)["code"] == "not-supported"
    assert is_outcome(get(client, token, "/api/fhir/CodeSystem/nope"), 404)


# --- part 10: lengths as FHIR counts them ------------------------------------------------------


def test_a_patient_text_is_limited_in_utf16_code_units(app, db):
    """Issue 22: 300 characters with emoji were accepted, twice the 300 UTF-16 code units
    the Questionnaire's maxLength allows; the page now refuses what FHIR would."""
    invitation = make_invitation(app)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    refused = patient.post("/step/1", {"action": "next", "T2": "😀" * 151})
    assert refused.status_code == 422
    assert "Please keep this to 300 characters or fewer." in refused.get_data(as_text=True)
    assert "T2" not in storage.answers_for(db, invitation.visit_id)[0]
    patient.post("/step/1", {"action": "next", "T2": "😀" * 150})
    assert storage.answers_for(db, invitation.visit_id)[0]["T2"] == "😀" * 150
