"""Ways out: the FHIR API with integration tokens, the FHIR download on the summary, the
CSV export, and the clinic time zone they carry."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from patientapp.api import views as api
from patientapp.db import storage
from patientapp.domain import api_tokens, visits
from patientapp.web.context import get_db
from tests.conftest import create_user, csrf_from, finish_visit, login, make_invitation
from tests.helpers.fhir_check import check_response
from tests.web.api.conftest import settings_form

SEARCH = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T00:00:00Z"


@pytest.fixture
def admin(app):
    create_user(app, "admin@example.org", "admin")
    client = app.test_client()
    assert login(client, "admin@example.org").status_code == 302
    return client


def new_token(admin, name="EHR interface") -> str:
    page = admin.get("/staff/admin/integrations")
    response = admin.post(
        "/staff/admin/integrations",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "name": name},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return html.split('<code id="new-token">')[1].split("</code>")[0]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(db, action):
    return [row for row in db["audit_log"].rows if row["action"] == action]


# --- tokens ---------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_only_as_its_hash(app, admin, db):
    token = new_token(admin)
    assert token.startswith("pa_") and len(token) > 40
    [row] = list(db["api_tokens"].rows)
    assert row["token_hash"] == api_tokens.hash_token(token) and token not in json.dumps(row)
    assert row["scope"] == "read"
    again = admin.get("/staff/admin/integrations").get_data(as_text=True)
    assert "EHR interface" in again and token not in again
    assert [r["detail"] for r in audit_rows(db, "api_token_created")] == [
        f"token {row['id']}: EHR interface"
    ]


def test_a_token_needs_a_name(admin, db):
    page = admin.get("/staff/admin/integrations")
    response = admin.post(
        "/staff/admin/integrations",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "name": "  "},
    )
    assert response.status_code == 422
    assert "Please enter a name." in response.get_data(as_text=True)
    assert list(db["api_tokens"].rows) == []


def test_a_revoked_token_stops_working_at_once(app, admin, client, db):
    token = new_token(admin)
    assert client.get(SEARCH, headers=bearer(token)).status_code == 200
    [row] = list(db["api_tokens"].rows)
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    response = admin.post(
        f"/staff/admin/integrations/{row['id']}/revoke", data={"csrf_token": csrf_from(page)}
    )
    assert response.status_code == 302
    assert client.get(SEARCH, headers=bearer(token)).status_code == 401
    assert audit_rows(db, "api_token_revoked")
    missing = admin.post(
        "/staff/admin/integrations/999/revoke", data={"csrf_token": csrf_from(page)}
    )
    assert missing.status_code == 404
    no_csrf = admin.post(f"/staff/admin/integrations/{row['id']}/revoke")
    assert no_csrf.status_code == 400


def test_a_token_refused_after_revoking_or_beyond_its_scope_is_audited(app, admin, client, db):
    token = new_token(admin, name="Old feed")
    [row] = list(db["api_tokens"].rows)
    refused = "/api/fhir/QuestionnaireResponse?status=in-progress"
    assert client.get(refused, headers=bearer(token)).status_code == 403
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    admin.post(
        f"/staff/admin/integrations/{row['id']}/revoke", data={"csrf_token": csrf_from(page)}
    )
    assert client.get(SEARCH, headers=bearer(token)).status_code == 401
    assert client.get(SEARCH, headers=bearer("not-a-token-of-ours")).status_code == 401
    entries = audit_rows(db, "access_refused")
    assert [(e["actor"], e["detail"]) for e in entries] == [
        ("api:Old feed", f"token {row['id']}: QuestionnaireResponse beyond its scope"),
        ("api:Old feed", f"token {row['id']}: revoked"),
    ]  # a token nobody issued leaves nothing: anyone can send one
    # A revoked token kept in a script cannot fill the log: 30 in 15 minutes.
    for _ in range(40):
        assert client.get(SEARCH, headers=bearer(token)).status_code == 401
    assert len(audit_rows(db, "access_refused")) == app.config["UNSIGNED_AUDIT_PER_CLIENT"]


# --- the API ----------------------------------------------------------------------------------


def test_the_search_is_a_valid_bundle_and_every_read_is_audited(app, admin, client, db, clock):
    first = finish_visit(app, ref="A-1").visit_id
    second = finish_visit(app, ref="A-2").visit_id
    make_invitation(app, patient_ref="NOT-STARTED")
    token = new_token(admin)
    response = client.get(SEARCH, headers=bearer(token))
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    bundle = response.get_json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert ids == [storage.get_visit(db, first).uuid, storage.get_visit(db, second).uuid]
    questionnaire = client.get("/api/fhir/Questionnaire/reflection", headers=bearer(token))
    Questionnaire.model_validate(questionnaire.get_json())
    for entry in bundle["entry"]:
        QuestionnaireResponse.model_validate(entry["resource"])
        assert check_response(entry["resource"], questionnaire.get_json()) == []
    reads = audit_rows(db, "fhir_response_read")
    assert sorted(r["visit_id"] for r in reads) == [first, second]
    assert {r["actor"] for r in reads} == {"api:EHR interface"}
    assert audit_rows(db, "fhir_questionnaire_read")
    [row] = list(db["api_tokens"].rows)
    assert row["last_used_at"]


def test_last_updated_filters_and_pages(app, admin, client, clock, db):
    token = new_token(admin)
    early = finish_visit(app, ref="A-1").visit_id
    clock.advance(hours=2)
    later = [storage.get_visit(db, finish_visit(app, ref=f"B-{n}").visit_id).uuid for n in range(3)]
    # 09:00 is when the first visit was sent; ask for 10:00 onwards (the clock is UTC here).
    url = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T10:00:00%2B00:00&_count=2"
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": "UTC"})
    page = client.get(url, headers=bearer(token)).get_json()
    assert [e["resource"]["id"] for e in page["entry"]] == later[:2]
    [following] = [link["url"] for link in page["link"] if link["relation"] == "next"]
    rest = client.get(following.split("localhost", 1)[1], headers=bearer(token)).get_json()
    assert [e["resource"]["id"] for e in rest["entry"]] == [later[2]]
    assert not [link for link in rest["link"] if link["relation"] == "next"]
    assert early not in later


@pytest.mark.parametrize(
    "query",
    [
        "_lastUpdated=geyesterday",
        "_lastUpdated=ne2026-11-25",
        "_lastUpdated=ge2026-13-25",
        "_lastUpdated=ge2026-11-25T10:00:00%2B99:00",
        "_lastUpdated=ge2026-11-25&_count=0",
        "_lastUpdated=ge2026-11-25&_count=x",
        "_lastUpdated=ge2026-11-25&_count=501",
        "status=done",
        "_cursor=-1",
        # Issue 19: each of these was a 500.
        "_lastUpdated=ge2026-11-25&_count=%C2%B2",
        "_lastUpdated=ge2026-11-25&_cursor=%C2%B2",
        f"_lastUpdated=ge2026-11-25&_count={'9' * 5000}",
        "_lastUpdated=ge9999-12-31",
    ],
)
def test_a_bad_search_gets_an_operation_outcome(admin, client, query):
    token = new_token(admin)
    response = client.get(f"/api/fhir/QuestionnaireResponse?{query}", headers=bearer(token))
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert response.get_json()["resourceType"] == "OperationOutcome"
    [issue] = response.get_json()["issue"]
    assert issue["code"] == "invalid" and issue["diagnostics"]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_the_last_instants_of_the_calendar_are_a_bad_search_in_any_zone(app, admin, client, zone):
    """ge9999-12-31T23:59:59-14:00 is after year 9999 in UTC, ge0001-01-01T00:00:00+14:00
    before year 1: in any clinic zone, a search (they are instants, compared as such)
    or a 400, never a 500 (issue 19)."""
    token = new_token(admin)
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": zone})
    for instant in (
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00%2B14:00",
        "0001-01-01",
        "9999-12-31",
        "9999-12-31T23:59:59",
    ):
        for prefix in ("ge", "gt", "le", "lt", ""):
            url = f"/api/fhir/QuestionnaireResponse?_lastUpdated={prefix}{instant}"
            assert client.get(url, headers=bearer(token)).status_code in (200, 400), instant
    url = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T00:00:00Z&_count=1"
    assert client.get(url, headers=bearer(token)).status_code == 200


def test_an_unknown_questionnaire_is_not_found(admin, client):
    token = new_token(admin)
    response = client.get("/api/fhir/Questionnaire/other", headers=bearer(token))
    assert response.status_code == 404


def test_each_token_is_rate_limited(app, admin, client):
    app.config["API_REQUESTS_PER_MINUTE"] = 3
    token, other = new_token(admin), new_token(admin, "Register")
    statuses = [client.get(SEARCH, headers=bearer(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get(SEARCH, headers=bearer(token)).headers["Retry-After"] == "60"
    assert client.get(SEARCH, headers=bearer(other)).status_code == 200


def test_the_api_needs_no_csrf_token_and_ignores_cookies(app, admin):
    """A signed-in admin's browser cannot read through the API by its cookie."""
    assert admin.get(SEARCH).status_code == 401


# --- the FHIR download on the summary -----------------------------------------------------


def test_the_summary_offers_the_fhir_download_and_audits_it(app, psychiatrist, db):
    visit_id = finish_visit(app).visit_id
    page = psychiatrist.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    assert f"/staff/visits/{visit_id}/fhir.json" in page and "FHIR (JSON)" in page
    response = psychiatrist.get(f"/staff/visits/{visit_id}/fhir.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    resource = json.loads(response.get_data(as_text=True))
    QuestionnaireResponse.model_validate(resource)
    details = [r["detail"] for r in audit_rows(db, "summary_exported")]
    assert "fhir json download" in details


# --- the CSV export ---------------------------------------------------------------------------


def test_the_csv_has_one_row_per_visit_with_ids_and_labels(app, admin, db):
    finish_visit(app, ref="A-1")
    make_invitation(app, patient_ref="=HYPERLINK(1)")
    response = admin.get("/staff/admin/export.csv?since=2026-11-25&until=2026-11-25")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 2
    assert rows[0]["M2"] == "mixed" and rows[0]["M2 label"] == "Mixed"
    assert rows[0]["T1"] == "worried|tired" and rows[0]["M4"] == "8"  # | splits back
    assert rows[1]["patient_ref"] == "'=HYPERLINK(1)"
    assert rows[1]["status"] == "invited" and rows[1]["T2"] == ""
    assert len(audit_rows(db, "csv_exported")) == 3  # each visit, and the export itself


def test_the_csv_visit_id_column_holds_each_visits_id(app, admin):
    """Issue 19: the column read a key the visit record does not have, so it was empty,
    and the header said charset=utf-8 twice."""
    first = finish_visit(app, ref="A-1").visit_id
    second = make_invitation(app, patient_ref="B-2").visit_id
    response = admin.get("/staff/admin/export.csv?since=2026-11-25&until=2026-11-25")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["visit_id"] for row in rows] == [str(first), str(second)]
    assert [row["patient_ref"] for row in rows] == ["A-1", "B-2"]


def test_the_csv_neutralises_formulas_in_patient_text(app, admin):
    answers = {1: {"T2": "=cmd|'/c calc'!A1"}, 4: {"F2": "yes", "F2_text": "@SUM(1)"}}
    finish_visit(app, answers=answers, in_person=("T1",))
    text = admin.get("/staff/admin/export.csv").get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert row["T2"] == "'=cmd|'/c calc'!A1"
    assert row["F2 text"] == "'@SUM(1)"
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@")), value


def test_held_answers_are_marked_not_exported(app, admin):
    finish_visit(app, in_person=("M3",))
    [row] = list(
        csv.DictReader(
            io.StringIO(
                admin.get("/staff/admin/export.csv").get_data(as_text=True).lstrip("\ufeff")
            )
        )
    )
    # The CSV's own tests (tests/web/admin/test_csv_export.py) say the rest.
    assert row["M3"] == row["M3 label"] == "" and row["M3 status"] == "held"


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-11-26&until=2026-11-25",
        "since=x&until=2026-11-25",
        "since=2024-01-01&until=2026-01-01",
    ],
)
def test_a_bad_range_is_explained_on_the_page(admin, db, query):
    response = admin.get(f"/staff/admin/export.csv?{query}")
    assert response.status_code == 422
    assert 'class="error"' in response.get_data(as_text=True)
    assert audit_rows(db, "csv_exported") == []


# --- the clinic time zone ------------------------------------------------------------------------


def test_the_time_zone_is_validated_and_saved(app, admin, db):
    bad = settings_form(admin, time_zone="Mars/Olympus", clinic_name="Riverside")
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "There is no time zone called" in html and "Riverside" in html
    for name in ("../../etc/passwd", "/etc/localtime"):
        assert settings_form(admin, time_zone=name).status_code == 422
    assert settings_form(admin, time_zone="America/Chicago").status_code == 302
    with app.app_context():
        assert storage.get_settings(get_db())["time_zone"] == "America/Chicago"


@pytest.mark.parametrize(
    "name",
    ["Europe", "Etc", "America/", "America/Argentina", "z" * 300, "Europe/" * 40, "UTC\x00"],
)
def test_a_folder_or_overlong_zone_name_is_no_zone(app, name):
    """Issue 19: ZoneInfo raises IsADirectoryError for a folder and OSError for a name too
    long for a file name; a stored one would break every page, a typed one gave a 500."""
    assert storage.zone_named(name) is None
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": name})
    page = app.test_client().get("/staff/login")
    assert page.status_code == 200


def test_exports_carry_the_clinic_offset(app, admin):
    settings_form(admin, time_zone="America/Chicago", references_are_chart_numbers="y")
    visit_id = finish_visit(app).visit_id
    with app.test_request_context():
        resource = api.response_for(storage.get_visit(get_db(), visit_id))
    # The test clock reads 09:00 clinic time on 25 November: Chicago is UTC-6 then.
    assert resource["authored"] == "2026-11-25T09:00:00-06:00"
    assert resource["subject"]["identifier"]["value"] == "A-1001"


def test_the_real_clock_reads_the_clinic_zone(app):
    from datetime import UTC, datetime

    from patientapp.web import context as web

    app.config["CLOCK"] = None
    with app.test_request_context():
        storage.save_settings(get_db(), {"time_zone": "Asia/Tokyo"})
    with app.test_request_context():
        get_db()
        moment = web.now()
    tokyo = datetime.now(UTC).astimezone(web.zone_named("Asia/Tokyo")).replace(tzinfo=None)
    assert abs((tokyo - moment).total_seconds()) < 120
    assert moment.tzinfo is None


def test_a_visit_cancelled_midway_reads_as_stopped_in_the_api(app, admin, client, clock):
    invitation = make_invitation(app)
    with app.app_context():
        db = get_db()
        visits.start(db, invitation.visit_id, language="en", version="2026.1", now=clock())
        visits.cancel(db, invitation.visit_id, clock())
    # Never sent: not read by default; a token with the in-progress scope reads it, with
    # its status and progress only.
    assert "entry" not in client.get(SEARCH, headers=bearer(new_token(admin))).get_json()
    with app.app_context():
        _id, scoped = api_tokens.create_token(get_db(), "Board", None, clock(), in_progress=True)
    bundle = client.get(SEARCH, headers=bearer(scoped)).get_json()
    assert [e["resource"]["status"] for e in bundle["entry"]] == ["stopped"]
    assert "item" not in bundle["entry"][0]["resource"]
