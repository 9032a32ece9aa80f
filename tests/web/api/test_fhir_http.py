"""The FHIR API's HTTP as an integration engine's client library meets it (the EHR
integration walk, defects 4 to 7): the current questionnaire read by the versioned id its
canonical names, OPTIONS, content negotiation by Accept as by _format, and conditional
reads by If-None-Match."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from patientapp.exports import fhir
from patientapp.questionnaire import model as questionnaire
from tests.conftest import finish_visit
from tests.web.api.test_fhir_api import RESPONSES, get, is_outcome, local
from tests.web.api.test_integrations import audit_rows, bearer, new_token

METADATA = "/api/fhir/metadata"


def resource_named(statement: dict, kind: str) -> dict:
    [found] = [r for r in statement["rest"][0]["resource"] if r["type"] == kind]
    return found


# --- defect 4: the versioned id of the current questionnaire ---------------------------------


def test_the_current_questionnaire_reads_by_the_id_its_canonical_names(app, admin, client, db):
    """A stored response names url|<current version>; an engine builds the read as
    Questionnaire/reflection-<version> and must find it, as for an earlier version."""
    finish_visit(app)
    token = new_token(admin)
    [response] = get(client, token, RESPONSES).get_json()["entry"]
    _url, _, version = response["resource"]["questionnaire"].partition("|")
    assert version == questionnaire.default().version
    read = get(client, token, f"/api/fhir/Questionnaire/reflection-{version}")
    assert read.status_code == 200, read.get_data(as_text=True)
    found = read.get_json()
    assert found["id"] == f"reflection-{version}"  # a read's id is the one asked for
    assert (found["url"], found["version"], found["status"]) == (
        fhir.QUESTIONNAIRE_URL,
        version,
        "active",
    )
    current = get(client, token, "/api/fhir/Questionnaire/reflection").get_json()
    assert current["id"] == "reflection"
    assert {**found, "id": "reflection"} == current
    # The search by canonical still gives the one current resource, id reflection.
    search = get(client, token, f"/api/fhir/Questionnaire?url={fhir.QUESTIONNAIRE_URL}")
    assert [e["resource"]["id"] for e in search.get_json()["entry"]] == ["reflection"]
    assert len(audit_rows(db, "fhir_questionnaire_read")) == 3
    statement = get(client, token, METADATA).get_json()
    said = resource_named(statement, "Questionnaire")["documentation"]
    assert "reflection-<version>" in said and "earlier version" in said
    assert "the current one too" in said


# --- defect 5: OPTIONS -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [METADATA, RESPONSES, f"{RESPONSES}/x", "/api/fhir/Flag"])
@pytest.mark.parametrize("signed", [True, False])
def test_options_is_a_method_not_allowed_like_any_other(app, admin, client, path, signed):
    """FHIR R4 has no OPTIONS interaction (the capabilities interaction is GET metadata):
    OPTIONS is answered as POST is, a 405 OperationOutcome naming what is allowed, with
    or without a token; never Flask's empty text/html 200."""
    headers = bearer(new_token(admin)) if signed else {}
    answer = client.options(path, headers=headers)
    assert is_outcome(answer, 405)["code"] == "not-supported"
    assert answer.headers["Allow"] == "GET, HEAD"
    posted = client.post(path, headers=headers)
    assert is_outcome(posted, 405) and posted.headers["Allow"] == "GET, HEAD"


# --- defect 6: content negotiation -------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "*",
        "application/json",
        "application/fhir+json",
        "application/json+fhir",
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=4.0.1",
        "application/fhir+json; charset=UTF-8; fhirVersion=4.0",
        "application/json; charset=UTF-8",
        "application/*",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "application/fhir+xml, application/fhir+json;q=0.5",
    ],
)
def test_an_accept_the_server_can_serve_gets_fhir_json(app, admin, client, accept):
    token = new_token(admin)
    headers = {} if accept is None else {"Accept": accept}
    answer = get(client, token, METADATA, **headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert answer.get_json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+xml",
        "application/xml",
        "text/html",
        "text/turtle",
        "application/fhir+json;q=0",
        "application/fhir+json; fhirVersion=3.0",  # STU3: FHIR asks for a 406
        "application/fhir+xml, */*;q=0",
    ],
)
def test_an_accept_the_server_cannot_serve_is_a_406_as_format_is(app, admin, client, db, accept):
    finish_visit(app)
    token = new_token(admin)
    for path in (METADATA, RESPONSES):
        answer = get(client, token, path, Accept=accept)
        assert is_outcome(answer, 406)["code"] == "not-supported"
    assert is_outcome(get(client, token, f"{METADATA}?_format=xml"), 406)
    assert not audit_rows(db, "fhir_response_read")  # refused before anything is read
    # _format overrides Accept (FHIR: for clients that cannot set the header).
    assert get(client, token, f"{METADATA}?_format=json", Accept=accept).status_code == 200
    overridden = get(client, token, f"{METADATA}?_format=xml", Accept="application/fhir+json")
    assert is_outcome(overridden, 406)


def test_the_capability_statement_names_the_formats_negotiated(app, admin, client):
    token = new_token(admin)
    statement = get(client, token, METADATA, Accept="application/json+fhir").get_json()
    CapabilityStatement.model_validate(statement)
    assert statement["format"] == ["application/fhir+json", "json"]


# --- defect 7: If-None-Match --------------------------------------------------------------------


def reads(app, admin, client) -> tuple[str, list[str]]:
    """A token and the local URL of every resource of one sent visit with a safety answer."""
    finish_visit(app)
    token = new_token(admin)
    urls = [local(e["fullUrl"]) for e in get(client, token, RESPONSES).get_json()["entry"]]
    for kind in ("Observation", "Flag", "DocumentReference"):
        bundle = get(client, token, f"/api/fhir/{kind}").get_json()
        urls += [local(e["fullUrl"]) for e in bundle.get("entry", [])]
    return token, urls


@pytest.mark.parametrize("weak", [True, False])
def test_a_read_with_the_current_etag_is_not_modified(app, admin, client, db, weak):
    token, urls = reads(app, admin, client)
    assert {url.split("/")[3] for url in urls} >= {"QuestionnaireResponse", "DocumentReference"}
    for url in urls:
        first = get(client, token, url)
        etag = first.headers["ETag"]
        *_, read = api_audit(db)
        sent = etag if weak else etag.removeprefix("W/")  # weak comparison: both match
        again = get(client, token, url, **{"If-None-Match": f'W/"0", {sent}'})
        assert again.status_code == 304, url
        assert again.get_data() == b""
        assert again.headers["ETag"] == etag
        assert "Content-Type" not in again.headers
        # A 304 is still a read of that visit by that token: audited as the 200 was.
        *_, previous, not_modified = api_audit(db)  # one entry more, and only one
        assert previous == read
        assert same_entry(not_modified) == same_entry(read)
        assert get(client, token, url, **{"If-None-Match": "*"}).status_code == 304


def api_audit(db) -> list[dict]:
    return list(db["audit_log"].rows_where("actor LIKE 'api:%'", order_by="id"))


def same_entry(row: dict) -> tuple:
    return row["action"], row["actor"], row["visit_id"], row["detail"]


def test_a_read_with_another_etag_gets_the_resource(app, admin, client, db):
    token, urls = reads(app, admin, client)
    url = urls[0]
    first = get(client, token, url)
    stale = get(client, token, url, **{"If-None-Match": 'W/"0"'})
    assert stale.status_code == 200 and stale.get_json() == first.get_json()
    # The visit changes (its alert acknowledged, a Settings change...): the old ETag no
    # longer matches, and the new one does.
    db.execute("UPDATE visits SET change_seq = change_seq + 1000")
    db.conn.commit()
    changed = get(client, token, url, **{"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
    # Without the token's access, no 304 either: a 404, as for a visit that is not there.
    missing = get(client, token, f"{RESPONSES}/nothing-here", **{"If-None-Match": "*"})
    assert is_outcome(missing, 404)
    assert client.get(url, headers={"If-None-Match": "*"}).status_code == 401


def test_the_capability_statement_says_which_reads_are_conditional(app, admin, client):
    statement = get(client, new_token(admin), METADATA).get_json()
    CapabilityStatement.model_validate(statement)
    for kind in ("QuestionnaireResponse", "Observation", "Flag", "DocumentReference"):
        assert resource_named(statement, kind)["conditionalRead"] == "not-match"
    for kind in ("Questionnaire", "CodeSystem", "StructureDefinition"):
        assert resource_named(statement, kind)["conditionalRead"] == "not-supported"


def test_every_read_is_audited_once_whether_200_or_304(app, admin, client, db):
    token, urls = reads(app, admin, client)
    url = urls[0]
    etag = get(client, token, url).headers["ETag"]
    get(client, token, url, **{"If-None-Match": etag})
    get(client, token, url, **{"If-None-Match": 'W/"0"'})
    rows = audit_rows(db, "fhir_response_read")
    # One for the search in reads(), then the 200, the 304 and the 200 again.
    assert len(rows) == 4
    assert len({(r["actor"], r["visit_id"], r["detail"]) for r in rows}) == 1
