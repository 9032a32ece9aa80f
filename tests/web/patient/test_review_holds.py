"""The review's "In person" ticks kept as each one changes (POST /review/holds, sent by
static/draft.js), so a reload, Back or the link opened again shows them as last set."""

from __future__ import annotations

from patientapp.db import storage
from tests.conftest import Patient, checked, csrf_from

HOLDS = "/review/holds"


def held(db, visit_id) -> set[str]:
    return storage.answers_for(db, visit_id)[1]


def at_review(patient, invitation, **answers) -> str:
    """Answers saved up to the review; the review's CSRF token."""
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", **answers})
    return csrf_from(patient.to_review().get_data(as_text=True))


def post_holds(patient, token, ids):
    return patient.client.post(HOLDS, data={"csrf_token": token, "in_person": ids})


def test_each_change_of_the_ticks_is_kept_and_shown_on_the_next_load(patient, invitation, db):
    token = at_review(patient, invitation, T2="My sister", T1=["worried"])
    response = post_holds(patient, token, ["T2"])
    assert response.status_code == 200
    assert response.get_json()["idle_seconds"] == 900  # draft.js restarts its countdown
    assert held(db, invitation.visit_id) == {"T2"}
    html = patient.client.get("/review").get_data(as_text=True)
    assert checked(html, "in_person") == ["T2"]
    # Changed again: the last state, not a sum of them.
    assert post_holds(patient, token, ["T1"]).status_code == 200
    assert held(db, invitation.visit_id) == {"T1"}
    assert post_holds(patient, token, []).status_code == 200
    assert held(db, invitation.visit_id) == set()
    # Nothing was sent by it.
    assert storage.get_visit(db, invitation.visit_id).status == "in_progress"


def test_unknown_unanswered_and_safety_ids_are_never_held(patient, invitation, db):
    token = at_review(patient, invitation, T2="My sister")
    ids = ["T2", "ZZ", "F2", "S1", "", "T2"]  # F2 and S1 not answered; S1 never held
    assert post_holds(patient, token, ids).status_code == 200
    assert held(db, invitation.visit_id) == {"T2"}


def test_the_safety_answer_is_never_held(patient, invitation, db):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "My sister"})
    page = patient.to_review()
    token = csrf_from(page.get_data(as_text=True))
    # Answer S1 from the review's "Change", then come back.
    patient.post("/step/10", {"action": "next", "S1": "not_at_all"})
    assert storage.answers_for(db, invitation.visit_id)[0]["S1"] == "not_at_all"
    assert post_holds(patient, token, ["S1", "T2"]).status_code == 200
    assert held(db, invitation.visit_id) == {"T2"}


def test_without_the_csrf_token_nothing_is_kept(patient, invitation, db):
    at_review(patient, invitation, T2="My sister")
    assert patient.client.post(HOLDS, data={"in_person": ["T2"]}).status_code == 400
    assert post_holds(patient, "not-a-token", ["T2"]).status_code == 400
    assert held(db, invitation.visit_id) == set()


def test_without_the_patient_session_it_answers_401(app, patient, invitation, db):
    at_review(patient, invitation, T2="My sister")
    stranger = Patient(app.test_client())
    token = csrf_from(stranger.client.get("/start").get_data(as_text=True))
    response = post_holds(stranger, token, ["T2"])
    assert response.status_code == 401 and response.get_json() == {"error": "session"}
    assert held(db, invitation.visit_id) == set()


def test_after_the_idle_limit_it_answers_401(patient, invitation, db, clock):
    token = at_review(patient, invitation, T2="My sister")
    clock.advance(minutes=16)
    assert post_holds(patient, token, ["T2"]).status_code == 401
    assert held(db, invitation.visit_id) == set()


def test_after_sending_it_answers_401_and_changes_nothing(patient, invitation, db):
    token = at_review(patient, invitation, T2="My sister")
    patient.post("/review", {"action": "submit", "in_person": ["T2"]})
    assert post_holds(patient, token, []).status_code == 401
    assert held(db, invitation.visit_id) == {"T2"}


def test_before_the_review_is_reached_it_is_refused(patient, invitation, db):
    patient.start(invitation.token)
    page = patient.post("/step/1", {"action": "next", "T2": "My sister"})
    token = csrf_from(page.get_data(as_text=True))
    assert post_holds(patient, token, ["T2"]).status_code == 404
    assert held(db, invitation.visit_id) == set()


def test_the_review_form_posts_its_ticks_here(patient, invitation):
    at_review(patient, invitation, T2="My sister")
    html = patient.client.get("/review").get_data(as_text=True)
    assert f'data-draft="{HOLDS}" data-wait="0"' in html
    assert 'src="/static/draft.js' in html
    assert 'role="status" data-offline="No connection right now.' in html
