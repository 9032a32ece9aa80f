"""Re-issue from the patient's side: old secrets lose the visit, new ones are guarded."""

from __future__ import annotations

from conftest import FULL_ANSWERS, Patient, csrf_from

from patientapp import storage, visits
from patientapp.web import get_db


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
