"""Waiting-room tablet mode: turned on by staff, patient-only, clean between patients,
turned off only by a staff sign-in; both audited."""

from __future__ import annotations

from patientapp.web import tablet
from tests.conftest import Patient, create_user, login, make_invitation, staff_post


def tablet_client(app):
    create_user(app, "desk@example.org", "frontdesk")
    client = app.test_client()
    assert login(client, "desk@example.org").status_code == 302
    response = staff_post(client, "/staff/tablet")
    assert response.status_code == 302 and response.headers["Location"] == "/start"
    return client


def actions(db):
    return [row["action"] for row in db["audit_log"].rows]


def test_turning_on_signs_staff_out_and_is_audited(app, db):
    client = tablet_client(app)
    assert client.get_cookie(tablet.COOKIE).value == "1"
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    assert "tablet_mode_entered" in actions(db)
    assert client.get("/").headers["Location"] == "/start"


def test_without_the_form_token_nothing_changes(app, db):
    create_user(app, "desk@example.org", "frontdesk")
    client = app.test_client()
    login(client, "desk@example.org")
    assert client.post("/staff/tablet").status_code == 400
    assert client.get_cookie(tablet.COOKIE) is None
    assert client.get("/staff/").status_code == 200


def test_after_sending_the_session_cookie_goes_and_back_lands_on_code_entry(app, db):
    client = tablet_client(app)
    invitation = make_invitation(app, "T-1")
    patient = Patient(client)
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "First patient words"})
    html = patient.send().get_data(as_text=True)
    assert "Thank you" in html and 'content="60;url=/start"' in html
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    for url in ("/thanks", "/review", "/step/1", "/ended"):
        page = client.get(url, follow_redirects=True)
        assert page.request.path == "/start", url
        assert "First patient words" not in page.get_data(as_text=True)


def test_an_idle_end_shows_the_closed_page_once_then_code_entry(app, db, clock):
    client = tablet_client(app)
    invitation = make_invitation(app, "T-2")
    patient = Patient(client)
    patient.start(invitation.token)
    clock.advance(minutes=15)
    html = client.get("/ended").get_data(as_text=True)
    assert "closed for your privacy" in html and 'content="60;url=/start"' in html
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    assert client.get("/ended").headers["Location"] == "/start"


def test_a_staff_sign_in_turns_tablet_mode_off_and_is_audited(app, db):
    client = tablet_client(app)
    assert "This device is a waiting-room tablet" in client.get("/staff/login").get_data(
        as_text=True
    )
    assert login(client, "desk@example.org").status_code == 302
    assert client.get_cookie(tablet.COOKIE) is None
    assert "tablet_mode_left" in actions(db)
    assert client.get("/staff/").status_code == 200


def test_a_wrong_password_keeps_tablet_mode(app, db):
    client = tablet_client(app)
    assert login(client, "desk@example.org", "wrong password!").status_code == 401
    assert client.get_cookie(tablet.COOKIE).value == "1"
    assert "tablet_mode_left" not in actions(db)


def test_outside_tablet_mode_the_end_pages_are_unchanged(app, patient, invitation):
    patient.start(invitation.token)
    html = patient.send().get_data(as_text=True)
    assert "http-equiv" not in html and ">Done<" not in html
    assert patient.client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is not None


def test_the_next_person_does_not_start_in_the_last_patients_language(app, db, clock):
    """From a patient walk: an Arabic patient's page closed when idle (its refresh goes to
    /ended?lang=ar), and the next person's code page was in Arabic."""
    client = tablet_client(app)
    invitation = make_invitation(app, "T-3")
    patient = Patient(client)
    patient.start(invitation.token)
    client.post("/language", data={"lang": "ar", "next": "/step/1"})
    clock.advance(minutes=15)
    closed = client.get("/ended?lang=ar").get_data(as_text=True)  # the idle refresh
    assert 'lang="ar"' in closed  # the closed page itself is in the patient's language
    for url in ("/start", "/ended"):
        page = client.get(url, follow_redirects=True)
        assert page.request.path == "/start"
        assert '<html lang="en"' in page.get_data(as_text=True), url
