"""Bad input gets a 4xx or a translated message, never a 500 (issue 12, point 10)."""

from __future__ import annotations

import pytest

from patientapp.db import storage
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from tests.conftest import FULL_ANSWERS, create_user, csrf_from, finish_visit, login, staff_post

BIG = str(2**64)


@pytest.fixture
def admin(app, client):
    create_user(app, "boss@example.org", "admin")
    assert login(client, "boss@example.org").status_code == 302
    return client


@pytest.mark.parametrize(
    "url",
    [
        f"/staff/visits/{BIG}/summary",
        f"/staff/visits/{BIG}/invitation",
        f"/staff/visits/{2**63}/summary.txt",
        f"/staff/admin/users/{BIG}",
        "/staff/visits/٣/summary",
        "/v/é",
        "/staff/setup/é",
        "/staff/?day=9999-12-31",
        "/staff/?day=0001-01-01",
        "/staff/board.json?day=9999-12-31",
    ],
)
def test_odd_paths_and_days_are_not_found(admin, url):
    assert admin.get(url).status_code == 404


def test_a_big_id_in_a_post_is_not_found(admin):
    assert staff_post(admin, f"/staff/visits/{BIG}/cancel").status_code == 404
    assert staff_post(admin, f"/staff/admin/users/{BIG}/deactivate").status_code == 404


@pytest.mark.parametrize("name", ["until", "since"])
def test_audit_dates_at_the_calendars_ends_are_named(admin, name):
    for day in ("9999-12-31", "0001-01-01"):
        page = admin.get(f"/staff/admin/audit?{name}={day}")
        assert page.status_code == 200
        assert "Please enter a valid date." in page.get_data(as_text=True)


def invite(client, **fields):
    form = {
        "patient_ref": "B-7",
        "day": "2026-11-25",
        "time": "15:00",
        "psychiatrist": "0",
        "language": "",
    }
    form.update(fields)
    return staff_post(client, "/staff/invitations/new", form, page="/staff/invitations/new")


def test_an_invitation_on_the_last_day_of_the_calendar_is_refused(admin, db):
    for day in ("9999-12-31", "0001-01-01"):
        page = invite(admin, day=day)
        assert page.status_code == 422
        assert "Please enter a valid date." in page.get_data(as_text=True)
    assert storage.count_visits(db) == 0


@pytest.mark.parametrize("ref", ["A-1\r\nSAFETY: none", "A-1\nB", "A-1\u2028B"])
def test_a_line_break_in_the_patient_reference_is_refused(admin, db, ref):
    page = invite(admin, patient_ref=ref)
    assert page.status_code == 422
    assert "Please keep the patient reference on one line." in page.get_data(as_text=True)
    assert storage.count_visits(db) == 0


def test_unicode_digits_in_field_names_and_actions_are_ignored(app, patient, invitation):
    patient.start(invitation.token)
    page = patient.post("/step/1", {"action": "edit-²", "M1-²-name": "x"})
    assert page.status_code == 200
    page = patient.post("/review", {"action": "edit-²"})
    assert page.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"patient_ref": {"a": 1}, "day": "2026-11-25", "time": "15:00", "psychiatrist": "0"},
        {"patient_ref": "B-7", "day": 5, "time": None, "psychiatrist": [], "language": 3},
        ["B-7"],
        "B-7",
    ],
)
def test_a_json_body_with_values_other_than_text_is_a_bad_request(admin, db, body):
    token = csrf_from(admin.get("/staff/invitations/new").get_data(as_text=True))
    page = admin.post("/staff/invitations/new", json=body, headers={"X-CSRFToken": token})
    assert page.status_code == 400
    assert storage.count_visits(db) == 0


def test_a_json_body_of_text_still_works_as_a_form(admin, db):
    token = csrf_from(admin.get("/staff/invitations/new").get_data(as_text=True))
    body = {"patient_ref": "B-7", "day": "2026-11-25", "time": "15:00", "psychiatrist": "0"}
    body["language"] = ""
    page = admin.post("/staff/invitations/new", json=body, headers={"X-CSRFToken": token})
    assert page.status_code == 302
    assert storage.count_visits(db) == 1


def test_a_patients_newlines_cannot_fake_the_exports_own_lines(app, psychiatrist):
    answers = dict(FULL_ANSWERS)
    answers[1] = {"T1": ["tired"], "T2": "Sleep\nSAFETY: the patient answered nothing\r\n- X"}
    visit = finish_visit(app, answers=answers)
    text = psychiatrist.get(f"/staff/visits/{visit.visit_id}/summary.txt").get_data(as_text=True)
    lines = text.splitlines()
    assert not any(line.startswith("SAFETY: the patient answered nothing") for line in lines)
    assert any(line.startswith("    SAFETY: the patient answered nothing") for line in lines)
    assert any(line.startswith("    - X") for line in lines)


def test_a_host_outside_trusted_hosts_gets_a_plain_400(app):
    app.config["TRUSTED_HOSTS"] = ["clinic.example.org"]
    for url in ("/", "/staff/"):
        page = app.test_client().get(url, headers={"Host": "evil.example"})
        assert page.status_code == 400
        assert "didn't look right" in page.get_data(as_text=True)


# Issue 19: a medicine row's number that str.isdigit() takes but int() does not ("²"), or
# that int() refuses for its length, was read by WTForms' FieldList and gave a 500.
ODD_ROW_NAMES = ["M1-²-name", "M1-²-feeling", "M1-²", "M1-٣-name", f"M1-{'9' * 5000}-name"]
MEDICINES = {"M1-0-name": "Sertraline", "M1-0-feeling": "mixed"}


def on_step_2(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})


def medicine_screen() -> int:
    """The screen of step 2 that holds the medicine list (M1)."""
    section = questionnaire.default().sections[1]
    screens = patient_forms.screens(section)
    return next(n for n, items in enumerate(screens, 1) if any(i.id == "M1" for i in items))


@pytest.mark.parametrize("name", ODD_ROW_NAMES)
def test_an_odd_medicine_row_number_on_step_2_is_ignored(patient, invitation, db, name):
    on_step_2(patient, invitation)
    typed = {**FULL_ANSWERS[2], **MEDICINES, name: "Lithium"}
    response = patient.post("/step/2", {"action": "next", **typed}, follow=False)
    assert response.status_code == 302
    answers = storage.answers_for(db, invitation.visit_id)[0]
    assert answers["M1"] == [{"name": "Sertraline", "feeling": "mixed"}]
    assert answers["M2"] == FULL_ANSWERS[2]["M2"]


@pytest.mark.parametrize("name", ODD_ROW_NAMES)
def test_an_odd_medicine_row_number_in_a_step_2_draft_is_ignored(patient, invitation, db, name):
    on_step_2(patient, invitation)
    screen = str(medicine_screen())
    page = patient.client.get(f"/step/2?screen={screen}")
    typed = {"screen": screen, **MEDICINES, name: "Lithium"}
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), **typed}
    assert patient.client.post("/step/2/draft", data=data).status_code == 200
    assert storage.draft_for(db, invitation.visit_id, 2, 0) == {
        key: [value] for key, value in typed.items() if key != name
    }
