"""Drafts: what a patient typed on a step without tapping Next is kept on the server,
comes back on a reload or another device, and is never an answer until saved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from patientapp.db import storage
from patientapp.domain import retention, visits
from tests.conftest import Patient, csrf_from, input_value, make_invitation


def draft(patient, number, data, token=True):
    page = patient.client.get(f"/step/{number}")
    payload = {"csrf_token": csrf_from(page.get_data(as_text=True))} if token else {}
    return patient.client.post(f"/step/{number}/draft", data={**payload, **data})


def summary_sources(app, visit_id):
    db = storage.connect(app.config["DATABASE"])
    try:
        return storage.answers_for(db, visit_id)[0], storage.alert_for(db, visit_id)
    finally:
        db.close()


def test_a_draft_comes_back_in_the_boxes_on_a_reload(patient, invitation):
    patient.start(invitation.token)
    response = draft(patient, 1, {"T2": "Half a thought"})
    assert response.status_code == 200 and response.get_json()["idle_seconds"] == 900
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Half a thought" in html
    assert "What you typed here last time is back." in html


def test_a_draft_shows_on_another_device_with_the_same_link(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    # The medicine list stands alone, the first screen of step 2 (M0 ends step 1's).
    draft(
        patient,
        2,
        {"M1-0-name": "Sertraline", "M1-2-name": "Lithium", "M2": "mixed", "screen": "1"},
    )
    other = Patient(app.test_client())
    other.open(invitation.token)
    html = other.client.get("/step/2").get_data(as_text=True)
    assert input_value(html, "M1-0-name") == "Sertraline"
    assert input_value(html, "M1-2-name") == "Lithium"  # its row is shown too


def test_a_draft_without_the_csrf_token_is_refused(app, patient, invitation, db):
    patient.start(invitation.token)
    assert draft(patient, 1, {"T2": "Forged"}, token=False).status_code == 400
    assert storage.draft_for(db, invitation.visit_id, 1, 0) is None


def test_a_draft_needs_the_patient_session(app, patient, invitation, db):
    stranger = Patient(app.test_client())
    page = stranger.client.get("/start").get_data(as_text=True)
    response = stranger.client.post(
        "/step/1/draft", data={"csrf_token": csrf_from(page), "T2": "Someone else"}
    )
    assert response.status_code == 401
    assert storage.draft_for(db, invitation.visit_id, 1, 0) is None


def test_a_draft_for_a_step_not_reached_is_refused(patient, invitation):
    patient.start(invitation.token)
    assert draft(patient, 1, {"T2": "x"}).status_code == 200
    page = patient.client.get("/step/1").get_data(as_text=True)
    response = patient.client.post("/step/5/draft", data={"csrf_token": csrf_from(page), "F1": "x"})
    assert response.status_code == 404


def test_a_draft_keeps_only_the_steps_own_fields_and_refuses_a_flood(patient, invitation, db):
    patient.start(invitation.token)
    draft(patient, 1, {"T2": "mine", "S1": "nearly_every_day", "junk": "x"})
    assert storage.draft_for(db, invitation.visit_id, 1, 0) == {"T2": ["mine"], "screen": ["1"]}
    assert draft(patient, 1, {"T2": "x" * 60_000}).status_code == 413


def test_a_safety_choice_in_a_draft_raises_no_alert_until_saved(app, patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    draft(patient, 10, {"S1": "nearly_every_day"})
    answers, alert = summary_sources(app, invitation.visit_id)
    assert "S1" not in answers and alert is None
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})
    answers, alert = summary_sources(app, invitation.visit_id)
    assert answers["S1"] == "nearly_every_day" and alert is not None


def test_a_draft_is_not_an_answer_and_goes_when_the_step_is_saved(app, patient, invitation, db):
    patient.start(invitation.token)
    patient.to_review()
    draft(patient, 1, {"T2": "Draft words"})  # "Change" from the review, then typing
    review = patient.client.get("/review").get_data(as_text=True)
    assert "Check your answers" in review and "Draft words" not in review
    assert "T2" not in summary_sources(app, invitation.visit_id)[0]
    patient.post("/step/1", {"action": "next", "T2": "Saved words"})
    assert storage.draft_for(db, invitation.visit_id, 1, 0) is None
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Saved words" in html and "last time is back" not in html


def test_sending_deletes_every_draft(app, patient, invitation, db):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    patient.to_review()
    draft(patient, 2, {"M2": "mixed"})  # Change, typing, then back to send
    patient.post("/review", {"action": "submit"})
    assert not storage.has_draft(db, invitation.visit_id, 0)


def test_a_reissue_hides_drafts_typed_under_the_old_link(app, patient, invitation, db, clock):
    patient.start(invitation.token)
    draft(patient, 1, {"T2": "Old link words"})
    new = visits.reissue(db, invitation.visit_id, extra_days=0, now=clock())
    other = Patient(app.test_client())
    other.open(new.token)
    assert "Old link words" not in other.client.get("/step/1").get_data(as_text=True)
    assert not visits.has_draft(db, storage.get_visit(db, invitation.visit_id))


def test_the_closed_page_says_a_draft_is_kept(patient, invitation, clock):
    patient.start(invitation.token)
    draft(patient, 1, {"T2": "Unfinished"})
    clock.advance(minutes=15)
    html = patient.client.get("/ended").get_data(as_text=True)
    assert "What you were typing on your last screen is kept too" in html
    assert "Unfinished" not in html
    clock.advance(minutes=1)
    patient.open(invitation.token)
    assert "Unfinished" in patient.client.get("/step/1").get_data(as_text=True)


def test_the_closed_page_says_nothing_unsaved_was_kept_without_a_draft(patient, invitation, clock):
    patient.start(invitation.token)
    clock.advance(minutes=15)
    html = patient.client.get("/ended").get_data(as_text=True)
    assert "did not tap Next, it was not kept" in html
    assert "kept too" not in html


def test_the_closed_page_reached_early_closes_the_session(patient, invitation):
    patient.start(invitation.token)
    draft(patient, 1, {"T2": "Typed"})
    assert "kept too" in patient.client.get("/ended").get_data(as_text=True)
    assert patient.client.get("/step/1").headers["Location"] == "/ended"


def test_a_draft_keeps_the_session_alive_and_the_idle_refresh_counts_from_it(
    patient, invitation, clock
):
    patient.start(invitation.token)
    clock.advance(minutes=10)
    assert draft(patient, 1, {"T2": "Still typing"}).get_json()["idle_seconds"] == 900
    clock.advance(minutes=10)  # 20 minutes after the page opened, 10 after the draft
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Still typing" in html and 'content="900;url=/ended?lang=en"' in html


def test_the_idle_refresh_counts_from_the_last_request(patient, invitation, clock):
    patient.start(invitation.token)
    clock.advance(seconds=50)  # within the minute the session's time is not rewritten
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert 'content="850;url=/ended?lang=en"' in html


def test_retention_purges_drafts_with_their_visit(app, db, clock):
    old = make_invitation(app, "OLD-1")
    patient = Patient(app.test_client())
    patient.start(old.token)
    draft(patient, 1, {"T2": "Old draft"})
    assert storage.has_draft(db, old.visit_id, 0)
    retention.run(db, clock() + timedelta(days=400))
    assert db.execute("SELECT COUNT(*) FROM drafts").fetchone()[0] == 0


@pytest.mark.parametrize("number", [1, 2])
def test_the_step_form_has_autocomplete_off_and_the_draft_script(patient, invitation, number):
    patient.start(invitation.token)
    if number == 2:
        patient.post("/step/1", {"action": "next"})
    html = patient.client.get(f"/step/{number}").get_data(as_text=True)
    assert f'autocomplete="off" data-draft="/step/{number}/draft"' in html
    assert 'src="/static/draft.js' in html


def test_a_draft_after_the_visit_was_sent_elsewhere_is_refused(app, patient, invitation, db):
    patient.start(invitation.token)
    page = patient.client.get("/step/1").get_data(as_text=True)
    other = Patient(app.test_client())
    other.open(invitation.token)
    other.send()
    response = patient.client.post(
        "/step/1/draft", data={"csrf_token": csrf_from(page), "T2": "Too late"}
    )
    assert response.status_code == 401
    assert not storage.has_draft(db, invitation.visit_id, 0)


def test_a_draft_for_a_visit_not_taking_answers_is_not_stored(db, invitation, clock):
    visit = storage.get_visit(db, invitation.visit_id)  # not started yet
    assert not visits.save_draft(db, visit, 1, {"T2": ["x"]}, clock())
    assert not storage.has_draft(db, invitation.visit_id, 0)


def late_next(patient, clock, data, lang=None):
    """Next tapped on step 1 after the phone slept past the idle limit (the page's own
    timer never ran: the phone was asleep)."""
    token = csrf_from(patient.client.get("/step/1").get_data(as_text=True))
    clock.advance(minutes=16)
    return patient.client.post("/step/1", data={"csrf_token": token, "action": "next", **data})


def test_next_tapped_after_the_idle_limit_keeps_what_it_carried(patient, invitation, clock, db):
    """From a patient walk: the post carried "Second half typed while offline", the server
    kept only an older draft, yet the closed page said what was typed was kept."""
    patient.start(invitation.token)
    draft(patient, 1, {"T2": "First half, drafted."})
    response = late_next(patient, clock, {"T2": "First half, drafted. Second half, late."})
    assert response.status_code == 302 and response.headers["Location"].startswith("/ended")
    html = patient.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "What you were typing on your last screen is kept too" in html
    assert "Second half" not in html
    assert "T2" not in storage.answers_for(db, invitation.visit_id)[0]  # a draft, not an answer
    patient.open(invitation.token)
    page = patient.client.get("/step/1").get_data(as_text=True)
    assert "First half, drafted. Second half, late." in page


def test_next_tapped_after_the_idle_limit_without_a_word_keeps_nothing(patient, invitation, clock):
    patient.start(invitation.token)
    response = late_next(patient, clock, {"T2": ""})
    html = patient.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "did not tap Next, it was not kept" in html


def test_the_closed_page_after_a_late_tap_speaks_the_patients_language(patient, invitation, clock):
    """From a patient walk: an Arabic patient's late Next ended on an English page."""
    patient.start(invitation.token)
    patient.client.post(
        "/language",
        data={
            "csrf_token": csrf_from(patient.client.get("/step/1").get_data(as_text=True)),
            "lang": "ar",
            "next": "/step/1",
        },
    )
    response = late_next(patient, clock, {"T2": "كلمات"})
    assert response.headers["Location"] == "/ended?lang=ar"
    html = patient.client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html


@pytest.mark.parametrize("how", ["cancelled", "reissued", "expired"])
def test_a_visit_ended_under_an_open_page_says_its_link_no_longer_works(
    app, patient, invitation, clock, db, how
):
    """From a patient walk: Next after the visit was cancelled, re-issued or expired gave
    the idle page ("They are saved each time you tap Next... open your link again"):
    the Next just tapped saved nothing, and the link no longer opens the visit."""
    patient.start(invitation.token)
    token = csrf_from(patient.client.get("/step/1").get_data(as_text=True))
    if how == "cancelled":
        visits.cancel(db, invitation.visit_id, clock())
    elif how == "reissued":
        visits.reissue(db, invitation.visit_id, extra_days=0, now=clock())
    else:
        clock.advance(days=40)
    response = patient.client.post(
        "/step/1", data={"csrf_token": token, "action": "next", "T2": "x"}
    )
    html = patient.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<h1>This link does not work</h1>" in html
    assert "Please ask the front desk for a new one." in html
    assert "open your link again" not in html and "saved each time" not in html


def test_a_worrying_safety_answer_tapped_after_the_idle_limit_raises_the_alert(
    app, patient, invitation, clock, db
):
    """From a second reading: "Nearly every day" tapped after the phone slept past the
    limit was kept only as a draft: no alert, no crisis text."""
    patient.start(invitation.token)
    for number in range(1, 10):
        patient.post(f"/step/{number}", {"action": "next"})
    token = csrf_from(patient.client.get("/step/10").get_data(as_text=True))
    clock.advance(minutes=16)
    response = patient.client.post(
        "/step/10", data={"csrf_token": token, "action": "next", "S1": "nearly_every_day"}
    )
    html = patient.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "closed for your privacy" in html
    assert 'class="crisis"' in html  # what to do when unsafe, right there
    alert = storage.alert_for(db, invitation.visit_id)
    assert alert is not None and alert.acknowledged_at is None
    assert storage.answers_for(db, invitation.visit_id)[0]["S1"] == "nearly_every_day"
    again = patient.client.get("/ended").get_data(as_text=True)
    assert 'class="crisis"' not in again  # said once, with the answer
