"""The patient journey through the test client, as a person with a phone would take it."""

from __future__ import annotations

import json

import pytest

from patientapp.db import storage
from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire import timing
from tests.conftest import FULL_ANSWERS, Patient, csrf_from, make_invitation, progress_of


def stored(app, visit_id):
    db = storage.connect(app.config["DATABASE"])
    try:
        return storage.get_visit(db, visit_id), storage.answers_for(db, visit_id)
    finally:
        db.close()


def test_complete_journey(app, patient, invitation):
    page = patient.open(invitation.token)
    text = page.get_data(as_text=True)
    assert "Before your visit" in text
    assert f"It takes about {timing.promised_minutes('en')} minutes." in text  # minutes.json
    assert "Who reads your answers" in text and "the front desk is told right away" in text
    assert "You can skip any question" in text
    page = patient.post("/welcome", {})
    assert progress_of("T1") in page.get_data(as_text=True)
    for number, answers in FULL_ANSWERS.items():
        page = patient.post(f"/step/{number}", {"action": "next", **answers})
        assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Check your answers" in text
    assert "Whether I can lower the dose before summer." in text
    assert "Sertraline — Mixed" in text
    assert "8 out of 10" in text
    page = patient.post("/review", {"action": "submit", "in_person": ["F2"]})
    assert "Your answers were sent to your psychiatrist" in page.get_data(as_text=True)
    visit, (answers, in_person) = stored(app, invitation.visit_id)
    assert visit.status == "submitted"
    assert visit.questionnaire_version == "2026.4"
    assert answers["M4"] == 8 and answers["T1"] == ["worried", "tired"]
    assert answers["M1"] == [{"name": "Sertraline", "feeling": "mixed"}]
    assert answers["F2"] == {"choice": "yes", "text": "My mother says pills are weakness."}
    assert in_person == {"F2"}


def test_resume_after_reload_and_on_another_device(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", **FULL_ANSWERS[1]})
    # A reload of the current page shows where they were, answers filled in.
    page = patient.client.get("/step/2")
    assert progress_of("M1") in page.get_data(as_text=True)
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert '<input checked id="T1-2" name="T1" type="checkbox" value="worried">' in html
    # Opening the link on a second phone resumes at step 2.
    other = app.test_client()
    page = other.get(f"/v/{invitation.token}", follow_redirects=True)
    assert progress_of("M1") in page.get_data(as_text=True)


def test_reload_shows_saved_answers(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Sleep, mostly"})
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Sleep, mostly</textarea>" in html


@pytest.mark.parametrize("measures", [(), ("gad7", "phq9")])
def test_a_typed_review_before_the_safety_question_sends_nothing(app, patient, db, measures):
    """Found on an EHR walk: /review typed before the last screen showed "Send" and sent
    a visit whose safety question was never asked (the page then read "declined"). The
    review now sends the patient back to the furthest screen, and a send from before it
    changes nothing."""
    invitation = make_invitation(app, measures=measures)
    patient.start(invitation.token)
    last = len(questionnaire.default().sections)  # the safety question's step
    for number in range(1, last):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.client.get("/review")
    assert page.status_code == 302 and page.headers["Location"] == f"/step/{last}"
    html = patient.client.get(f"/step/{last}").get_data(as_text=True)
    sent = patient.client.post("/review", data={"csrf_token": csrf_from(html), "action": "submit"})
    assert sent.status_code == 302 and sent.headers["Location"] == f"/step/{last}"
    visit = storage.get_visit(db, invitation.visit_id)
    assert visit.status == "in_progress" and visit.safety is None
    # Next on the safety screen (nothing ticked: "declined"), then the review sends.
    patient.post(f"/step/{last}", {"action": "next"})
    assert "Thank you" in patient.post("/review", {"action": "submit"}).get_data(as_text=True)
    assert storage.get_visit(db, invitation.visit_id).safety == "declined"


def test_link_after_submit_shows_already_sent(app, patient, invitation):
    patient.start(invitation.token)
    patient.send()
    page = app.test_client().get(f"/v/{invitation.token}")
    assert "Your answers are already sent" in page.get_data(as_text=True)
    # The same browser no longer sees any answers, Back included.
    page = patient.client.get("/review", follow_redirects=True)
    assert "Your answers were sent" in page.get_data(as_text=True)


def test_a_sent_link_opened_elsewhere_speaks_the_patients_language(app, patient, invitation):
    patient.start(invitation.token)
    patient.to_review()
    patient.post("/review", {"action": "language", "lang": "es"})  # the review's switcher
    patient.post("/review", {"action": "submit"})
    other = app.test_client()  # another device, its browser in English
    page = other.get(f"/v/{invitation.token}", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert 'lang="es"' in html and "Your answers are already sent" not in html


def test_back_after_submit_says_the_answers_were_sent(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Something private"})
    patient.send()
    for url in ("/step/1", "/review", "/welcome", "/safety", "/ended"):
        html = patient.client.get(url, follow_redirects=True).get_data(as_text=True)
        assert "Something private" not in html
        assert "Your answers were sent" in html, url
        assert "closed" not in html and "Enter my code" not in html
        assert "If you were not finished" not in html


def test_sent_on_another_device_says_sent_here_too(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Something private"})
    other = Patient(app.test_client())
    other.open(invitation.token)
    other.send()
    html = patient.client.get("/step/1", follow_redirects=True).get_data(as_text=True)
    assert "Your answers were sent" in html and "Something private" not in html


def test_thanks_says_what_happens_next(patient, invitation):
    patient.start(invitation.token)
    html = patient.send().get_data(as_text=True)
    assert "Please wait here. Someone will call you for your visit." in html
    # The crisis text says what to do when unsafe, once: no sentence of ours repeats it.
    assert html.count("If you feel unsafe") == 1
    assert "call your local emergency number" in html  # the clinic's crisis text


def test_thanks_shows_the_clinics_own_crisis_text(app, db, patient, invitation):
    storage.save_settings(db, {"crisis_text": "Call the Riverside line: 555-0100."})
    patient.start(invitation.token)
    html = patient.send().get_data(as_text=True)
    link = '<a class="tel" href="tel:5550100" dir="ltr">555-0100</a>'
    assert f"Call the Riverside line: {link}." in html


def test_idle_timeout_ends_the_session(patient, invitation, clock):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Private words"})
    clock.advance(minutes=16)
    html = patient.client.get("/step/1", follow_redirects=True).get_data(as_text=True)
    assert "Private words" not in html
    assert "closed for your privacy" in html
    assert "Your answers up to the last screen you moved on from are saved." in html
    assert "Your answers were sent" not in html


def test_a_new_patient_after_a_sent_one_is_told_the_truth_when_idle(app, client, clock):
    first, second = make_invitation(app, "A-1"), make_invitation(app, "A-2")
    patient = Patient(client)
    patient.start(first.token)
    patient.post("/review", {"action": "submit"})
    patient.start(second.token)
    clock.advance(minutes=16)
    html = client.get("/step/1", follow_redirects=True).get_data(as_text=True)
    assert "closed for your privacy" in html and "Your answers were sent" not in html


def to_safety_page(patient) -> None:
    """On to the page after a worrying safety answer (it says the front desk was told,
    so it shows only after one)."""
    for number in range(1, 10):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/step/10", {"action": "next", "S1": "several_days"})


@pytest.mark.parametrize("url", ["/welcome", "/step/1", "/review", "/safety"])
def test_pages_with_answers_refresh_to_the_closed_page_when_idle(patient, invitation, url):
    patient.start(invitation.token)
    if url == "/review":
        patient.to_review()
    if url == "/safety":
        to_safety_page(patient)
    html = patient.client.get(url).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="900;url=/ended?lang=en">' in html


def test_idle_refresh_follows_the_clinic_setting(db, patient, invitation):
    storage.save_settings(db, {"patient_idle_minutes": 20})
    patient.start(invitation.token)
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert 'content="1200;url=/ended?lang=en"' in html


def test_the_idle_closed_page_speaks_the_patients_language(patient, invitation, clock):
    patient.start(invitation.token)
    html = patient.client.get("/step/1?lang=es").get_data(as_text=True)
    assert 'content="900;url=/ended?lang=es"' in html
    clock.advance(minutes=15)  # the session ends, and forgets its language with it
    html = patient.client.get("/ended?lang=es").get_data(as_text=True)
    assert '<html lang="es"' in html and "Esta página se cerró por su privacidad" in html


def test_pages_without_answers_do_not_refresh(patient, invitation):
    for url in ("/start", "/ended"):
        assert "http-equiv" not in patient.client.get(url).get_data(as_text=True)
    patient.start(invitation.token)
    html = patient.send().get_data(as_text=True)
    assert "http-equiv" not in html


def test_the_idle_refresh_closes_the_session(patient, invitation, clock):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Private words"})
    clock.advance(minutes=15)  # the moment the page refreshes itself
    assert "closed for your privacy" in patient.client.get("/ended").get_data(as_text=True)
    html = patient.client.get("/step/1", follow_redirects=True).get_data(as_text=True)
    assert "Private words" not in html and "closed for your privacy" in html


@pytest.mark.parametrize(
    "url", ["/start", "/ended", "/thanks", "/welcome", "/step/1", "/review", "/safety"]
)
def test_language_link_at_the_top_jumps_to_the_list(patient, invitation, url):
    if url not in ("/start", "/ended", "/thanks"):
        patient.start(invitation.token)
    if url == "/review":
        patient.to_review()
    if url == "/safety":
        to_safety_page(patient)
    html = patient.client.get(url).get_data(as_text=True)
    header = html.split("<main", 1)[0]
    assert '<a href="#language">Language</a>' in header
    assert '<div class="languages" id="language">' in html.split("<main", 1)[1]


def test_activity_keeps_the_session_alive(patient, invitation, clock):
    patient.start(invitation.token)
    for _ in range(3):
        clock.advance(minutes=10)
        assert progress_of("T1") in patient.client.get("/step/1").get_data(as_text=True)


def test_every_answer_page_is_no_store(patient, invitation):
    patient.start(invitation.token)
    for url in ("/welcome", "/step/1", "/step/2", "/review", "/start", "/thanks"):
        response = patient.client.get(url)
        assert response.headers["Cache-Control"] == "no-store", url


def test_no_answers_in_urls(patient, invitation):
    patient.start(invitation.token)
    response = patient.post("/step/1", {"action": "next", "T2": "secret words"}, follow=False)
    assert response.status_code == 302
    assert "secret" not in response.headers["Location"]


def test_back_saves_and_goes_back(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    page = patient.post("/step/2?screen=2", {"action": "back", "screen": "2", "M2": "positive"})
    assert progress_of("M1") in page.get_data(as_text=True)
    _, (answers, _) = stored(app, invitation.visit_id)
    assert answers["M2"] == "positive"


def test_skipping_everything_is_allowed(app, patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 11):
        page = patient.post(f"/step/{number}", {"action": "next"})
    assert "Check your answers" in page.get_data(as_text=True)
    assert page.get_data(as_text=True).count("Skipped") == 26
    _, (answers, _) = stored(app, invitation.visit_id)
    assert answers == {}


def test_prefer_not_to_say_clears_a_single_choice(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    patient.post("/step/2", {"action": "next", "M2": "negative"})
    patient.post("/step/2", {"action": "next", "M2": ""})
    _, (answers, _) = stored(app, invitation.visit_id)
    assert "M2" not in answers


def test_medicine_rows_grow(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    page = patient.post(
        "/step/2",
        {
            "action": "add",
            "M1-0-name": "Lithium",
            "M1-0-feeling": "helping",
            "M1-1-name": "Quetiapine",
        },
    )
    html = page.get_data(as_text=True)
    assert 'value="Lithium"' in html and 'value="Quetiapine"' in html
    assert 'name="M1-2-name"' in html and 'name="M1-3-name"' not in html


def test_add_another_medicine_with_one_typed(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    page = patient.post("/step/2", {"action": "add", "M1-0-name": "Lithium"})
    html = page.get_data(as_text=True)
    assert 'value="Lithium"' in html
    # One new empty row, however many were shown: also without JavaScript.
    assert 'name="M1-1-name"' in html and 'name="M1-2-name"' not in html


def test_back_from_a_step_opened_from_review_returns_to_review(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/step/4?return=review", {"action": "back", "return": "review"})
    assert "Check your answers" in page.get_data(as_text=True)


def test_cannot_jump_ahead(patient, invitation):
    patient.start(invitation.token)
    response = patient.client.get("/step/6")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/step/1")


def test_edit_from_review_returns_to_review(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/review", {"action": "edit-2", "in_person": []})
    html = page.get_data(as_text=True)
    # Step 2 begins with M0, the last question of the first screen: "Change" goes there.
    assert progress_of("M0") in html and "Back to review" in html
    page = patient.post(
        "/step/2?return=review", {"action": "next", "return": "review", "M2": "positive"}
    )
    html = page.get_data(as_text=True)
    assert "Check your answers" in html and "Good about it" in html


def test_in_person_toggle_survives_edit(app, patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "My sister"})
    for number in range(2, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/review", {"action": "edit-3", "in_person": ["T2"]})
    _, (_, in_person) = stored(app, invitation.visit_id)
    assert in_person == {"T2"}
    html = patient.client.get("/review").get_data(as_text=True)
    assert 'value="T2" id="hold-T2" checked' in html


def test_gets_change_nothing(app, client, invitation):
    client.get(f"/v/{invitation.token}")
    for url in ("/welcome", "/step/1", "/review", "/safety", "/thanks"):
        client.get(url)
    visit, (answers, _) = stored(app, invitation.visit_id)
    assert visit.status == "invited" and answers == {}


def test_stored_json_keeps_text_exactly(db, patient, invitation):
    patient.start(invitation.token)
    text = "Ça m'aide — 但是我担心 «副作用» <b>&amp;"
    patient.post("/step/1", {"action": "next", "T2": text})
    raw = next(db.query("SELECT value FROM answers WHERE item_id = 'T2'"))["value"]
    assert json.loads(raw) == text
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "&lt;b&gt;&amp;amp;" in html and "<b>" not in html


JUDGING_WORDS = (
    "non-compliant",
    "noncompliant",
    "compliance",
    "denial",
    "secondary gain",
    "adherence",
    "refus",
)


def test_patient_wording_never_judges(app, patient, invitation):
    from pathlib import Path

    from patientapp.questionnaire import model as questionnaire

    seen = [questionnaire.DEFINITION_PATH.read_text(encoding="utf-8")]
    seen += [
        p.read_text(encoding="utf-8")
        for p in (Path(__file__).parents[3] / "templates" / "patient").glob("*.html")
    ]
    seen.append(patient.open(invitation.token).get_data(as_text=True))
    patient.post("/welcome", {})
    for number, answers in FULL_ANSWERS.items():
        seen.append(
            patient.post(f"/step/{number}", {"action": "next", **answers}).get_data(as_text=True)
        )
    seen.append(patient.post("/review", {"action": "submit"}).get_data(as_text=True))
    text = "\n".join(seen).lower()
    assert [word for word in JUDGING_WORDS if word in text] == []
