"""The safety question: an endorsed answer shows help at once and opens an alert."""

from __future__ import annotations

from datetime import datetime

import pytest

from patientapp.db import storage


def reach_safety(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})


def visit_and_alert(app, visit_id):
    db = storage.connect(app.config["DATABASE"])
    try:
        return storage.get_visit(db, visit_id), storage.alert_for(db, visit_id)
    finally:
        db.close()


@pytest.mark.parametrize("answer", ["several_days", "more_than_half", "nearly_every_day"])
def test_endorsed_shows_support_and_raises_alert(app, patient, invitation, answer):
    app.config["CLOCK"].advance(minutes=5)
    reach_safety(patient, invitation)
    page = patient.post("/step/10", {"action": "next", "S1": answer})
    html = page.get_data(as_text=True)
    assert "Thank you for telling us" in html
    assert "The front desk has been told" in html
    assert "Someone will come to check on you soon." in html
    assert "call your local emergency number" in html  # the default crisis text
    visit, alert = visit_and_alert(app, invitation.visit_id)
    assert visit.safety == "endorsed"
    assert alert is not None and alert.acknowledged_at is None
    assert alert.created_at == datetime(2026, 11, 25, 9, 5)
    # From the supportive screen the patient can still check and send.
    assert "Check your answers" in patient.client.get("/review").get_data(as_text=True)


def test_configured_crisis_text_is_shown(db, patient, invitation):
    storage.save_settings(db, {"crisis_text": "Call the Riverside crisis line: 555-0100"})
    reach_safety(patient, invitation)
    html = patient.post("/step/10", {"action": "next", "S1": "several_days"}).get_data(as_text=True)
    link = '<a class="tel" href="tel:5550100" dir="ltr">555-0100</a>'
    shown = f"Call the Riverside crisis line: {link}"
    assert shown in html
    welcome = patient.client.get("/welcome").get_data(as_text=True)
    assert shown in welcome


def test_endorsed_even_when_going_back(app, patient, invitation):
    reach_safety(patient, invitation)
    html = patient.post("/step/10", {"action": "back", "S1": "nearly_every_day"}).get_data(
        as_text=True
    )
    assert "Thank you for telling us" in html
    assert visit_and_alert(app, invitation.visit_id)[1] is not None


def test_not_at_all_raises_nothing(app, patient, invitation):
    reach_safety(patient, invitation)
    html = patient.post("/step/10", {"action": "next", "S1": "not_at_all"}).get_data(as_text=True)
    assert "Check your answers" in html
    visit, alert = visit_and_alert(app, invitation.visit_id)
    assert visit.safety == "not_endorsed" and alert is None


@pytest.mark.parametrize("data", [{}, {"S1": ""}])
def test_skipped_is_stored_as_declined_never_no(app, db, patient, invitation, data):
    reach_safety(patient, invitation)
    patient.post("/step/10", {"action": "next", **data})
    visit, alert = visit_and_alert(app, invitation.visit_id)
    assert visit.safety == "declined"
    assert alert is None
    answers, _ = storage.answers_for(db, invitation.visit_id)
    assert "S1" not in answers


def test_a_second_endorsement_keeps_one_alert(db, patient, invitation):
    reach_safety(patient, invitation)
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})
    assert db["alerts"].count == 1


def test_safety_answer_cannot_be_held_back(db, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Sleep"})
    for number in range(2, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    html = patient.client.get("/review").get_data(as_text=True)
    assert 'id="hold-T2"' in html  # other answers offer the choice...
    assert 'id="hold-S1"' not in html  # ...the safety answer does not
    # Nor does the server take it from a hand-made form.
    patient.post("/review", {"action": "submit", "in_person": ["S1", "T2"]})
    answers, in_person = storage.answers_for(db, invitation.visit_id)
    assert in_person == {"T2"} and answers["S1"] == "several_days"
