"""Re-issue from the patient's side: old secrets lose the visit, new ones are guarded."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from patientapp.db import storage
from patientapp.domain import visits
from patientapp.domain.records import Visit
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
    staff_post,
)


def reissue(app, visit_id):
    with app.app_context():
        return visits.reissue(get_db(), visit_id, extra_days=0, now=app.config["CLOCK"]())


def test_reissue_ends_the_session_of_the_old_link(app, db, invitation):
    intruder = Patient(app.test_client())
    intruder.start(invitation.token)
    token = csrf_from(intruder.client.get("/step/1").get_data(as_text=True))
    fresh = reissue(app, invitation.visit_id)
    real = Patient(app.test_client())
    real.start(fresh.token)
    real.post("/step/1", {"action": "next", **FULL_ANSWERS[1]})
    review = intruder.client.get("/review", follow_redirects=True)
    assert "Whether I can lower the dose" not in review.get_data(as_text=True)
    assert review.request.path == "/ended"
    overwrite = intruder.client.post(
        "/step/1", data={"csrf_token": token, "action": "next", "T2": "overwritten"}
    )
    assert overwrite.headers["Location"].endswith("/ended")
    assert storage.answers_for(db, invitation.visit_id)[0]["T2"] != "overwritten"
    assert real.client.get("/step/2").status_code == 200


def audit_rows(db, action):
    return list(db.query("SELECT * FROM audit_log WHERE action = ?", [action]))


def test_front_desk_cannot_reissue_a_visit_in_progress(app, db, invitation):
    Patient(app.test_client()).start(invitation.token)
    desk = app.test_client()
    create_user(app, "desk@example.org", "frontdesk")
    login(desk, "desk@example.org")
    page = f"/staff/visits/{invitation.visit_id}/invitation"
    assert "Please ask a psychiatrist" in desk.get(page).get_data(as_text=True)
    refused = staff_post(desk, f"/staff/visits/{invitation.visit_id}/reissue", page=page)
    assert refused.status_code == 403
    assert "Please ask a psychiatrist" in refused.get_data(as_text=True)
    assert storage.get_visit(db, invitation.visit_id).secret_generation == 0
    assert audit_rows(db, "invitation_reissued") == []
    [refusal] = audit_rows(db, "access_refused")  # a role refused, as on any page
    assert refusal["visit_id"] == invitation.visit_id
    assert refusal["detail"] == "POST /staff/visits/<int:visit_id>/reissue as frontdesk"


def test_front_desk_may_reissue_a_visit_not_started(app, db, invitation):
    desk = app.test_client()
    create_user(app, "desk@example.org", "frontdesk")
    login(desk, "desk@example.org")
    staff_post(desk, f"/staff/visits/{invitation.visit_id}/reissue")
    assert storage.get_visit(db, invitation.visit_id).secret_generation == 1


def test_a_psychiatrist_reissues_a_visit_in_progress_and_entry_is_audited(
    app, db, invitation, psychiatrist
):
    Patient(app.test_client()).start(invitation.token)
    assert audit_rows(db, "patient_entry_reissued") == []
    staff_post(psychiatrist, f"/staff/visits/{invitation.visit_id}/reissue")
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/invitation")
    link = re.search(r'href="http://localhost(/v/[^"]+)"', html.get_data(as_text=True)).group(1)
    assert app.test_client().get(link).status_code == 302
    [entry] = audit_rows(db, "patient_entry_reissued")
    assert entry["visit_id"] == invitation.visit_id and entry["detail"] == ""


def test_a_link_to_another_visit_asks_before_switching(app, patient, invitation):
    other = make_invitation(app, patient_ref="B-2002")
    patient.start(invitation.token)
    asked = patient.client.get(f"/v/{other.token}")
    text = asked.get_data(as_text=True)
    assert "You are in the middle of another visit on this device" in text
    assert patient.client.get("/welcome").status_code == 200  # still the first visit
    with patient.client.session_transaction() as cookie:
        assert cookie["patient"]["visit"] == invitation.visit_id
    # A cross-site form cannot switch: without the token nothing changes.
    patient.client.post(f"/v/{other.token}/switch")
    with patient.client.session_transaction() as cookie:
        assert cookie["patient"]["visit"] == invitation.visit_id
    patient.client.post(f"/v/{other.token}/switch", data={"csrf_token": csrf_from(text)})
    with patient.client.session_transaction() as cookie:
        assert cookie["patient"]["visit"] == other.visit_id


@pytest.mark.parametrize(
    ("status", "role", "allowed"),
    [
        (visits.INVITED, "frontdesk", True),
        (visits.IN_PROGRESS, "frontdesk", False),
        (visits.IN_PROGRESS, "psychiatrist", True),
        (visits.IN_PROGRESS, "admin", True),
        (visits.SUBMITTED, "admin", False),
    ],
)
def test_who_may_reissue(status, role, allowed):
    visit = Visit(
        id=1,
        patient_ref="R-1",
        appointment_at=datetime(2026, 11, 25, 14, 30),
        token_hash="token",
        code_hash="code",
        expires_at=datetime(2026, 11, 25, 23, 59, 59),
        created_at=datetime(2026, 11, 25, 9, 0),
        status=status,
    )
    assert visits.may_reissue(visit, role) is allowed


def test_a_link_to_a_sent_visit_leaves_the_open_one_alone(app, patient, invitation):
    sent = finish_visit(app, ref="B-2002")
    patient.start(invitation.token)
    assert patient.client.get(f"/v/{sent.token}").status_code == 200
    with patient.client.session_transaction() as cookie:
        assert cookie["patient"]["visit"] == invitation.visit_id
