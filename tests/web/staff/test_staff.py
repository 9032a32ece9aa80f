"""The staff side as staff use it: sign in, invite, watch the board, read the summary."""

from __future__ import annotations

import html as html_lib
import re
from contextlib import closing
from datetime import date, datetime

import pytest
from babel.dates import format_date

from patientapp.db import storage
from patientapp.questionnaire import model as questionnaire
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
    post_setup,
    progress_of,
    setup_link,
    staff_post,
)


def audit_actions(app):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [
            (row["action"], row["visit_id"])
            for row in db.query("SELECT action, visit_id FROM audit_log ORDER BY id")
        ]


# --- accounts ------------------------------------------------------------------------------


def test_login_renews_the_session_and_logout_kills_a_copied_cookie(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    client.get("/staff/login")
    before = client.get_cookie("patientapp_session").value
    assert login(client, "desk@example.org").status_code == 302
    after = client.get_cookie("patientapp_session").value
    assert before != after
    copy = app.test_client()
    copy.set_cookie("patientapp_session", after)
    assert copy.get("/staff/").status_code == 200
    staff_post(client, "/staff/logout")
    assert client.get("/staff/").status_code == 302
    assert copy.get("/staff/").status_code == 302  # the copied cookie stopped working


def test_one_generic_message_and_lockout(app, client):
    create_user(app, "dr@example.org", "psychiatrist")
    wrong_password = login(client, "dr@example.org", "nope nope nope")
    unknown = login(app.test_client(), "nobody@example.org", "nope nope nope")
    message = "match an active account"
    assert wrong_password.status_code == unknown.status_code == 401
    assert message in wrong_password.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)
    for _ in range(4):
        login(app.test_client(), "dr@example.org", "still wrong!!")
    locked = login(app.test_client(), "dr@example.org")  # right password, locked account
    assert locked.status_code == 401 and message in locked.get_data(as_text=True)
    app.config["CLOCK"].advance(minutes=16)
    assert login(app.test_client(), "dr@example.org").status_code == 302
    actions = [a for a, _ in audit_actions(app)]
    assert actions.count("login_failed") == 7 and actions[-1] == "login"


def test_lockout_per_client(app):
    app.config["LOGIN_FAILURES_PER_CLIENT"] = 3
    create_user(app, "dr@example.org", "psychiatrist")
    for n in range(3):
        login(app.test_client(), f"guess{n}@example.org", "whatever123")
    assert login(app.test_client(), "dr@example.org").status_code == 401


def test_an_ipv6_64_is_one_client_for_the_sign_in_limit(app):
    """Found by a second reader: each of a /64's 2^64 addresses counted as a client of
    its own, so one home or phone could spray passwords across accounts unthrottled."""
    app.config["LOGIN_FAILURES_PER_CLIENT"] = 3
    create_user(app, "dr@example.org", "psychiatrist")
    for n in range(3):
        browser = app.test_client()
        browser.environ_base["REMOTE_ADDR"] = f"2001:db8:1:2::{n + 1:x}"
        login(browser, f"guess{n}@example.org", "whatever123")
    same_home = app.test_client()
    same_home.environ_base["REMOTE_ADDR"] = "2001:db8:1:2:abcd::9"
    assert login(same_home, "dr@example.org").status_code == 401
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "2001:db8:1:3::1"
    assert login(elsewhere, "dr@example.org").status_code == 302


def test_a_failed_sign_in_never_logs_what_was_typed_as_the_email(app, db):
    create_user(app, "dr@example.org", "psychiatrist")
    login(app.test_client(), "my secret passphrase", "oops")  # typed into the wrong box
    login(app.test_client(), "dr@example.org", "wrong password")
    rows = db.query("SELECT actor, detail FROM audit_log WHERE action = 'login_failed'")
    assert [(r["actor"], r["detail"]) for r in rows] == [
        ("", "unknown account"),
        ("dr@example.org", ""),
    ]
    keys = [row["key"] for row in db.query("SELECT key FROM failures")]
    assert not any("secret" in key for key in keys)


def test_slow_guessing_cannot_keep_an_account_locked(app, clock):
    create_user(app, "dr@example.org", "psychiatrist")
    for _ in range(5):  # one wrong password every three minutes, locked at 09:12
        login(app.test_client(), "dr@example.org", "still wrong!!")
        clock.advance(minutes=3)
    for _ in range(4):  # still guessing, slowly, while locked
        assert login(app.test_client(), "dr@example.org").status_code == 401
        login(app.test_client(), "dr@example.org", "still wrong!!")
        clock.advance(minutes=3)
    # 15 minutes after the lock began, the owner signs in despite the guessing.
    assert login(app.test_client(), "dr@example.org").status_code == 302


def test_the_current_password_check_is_throttled(app, client):
    create_user(app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")

    def change(current):
        return staff_post(
            client,
            "/staff/account",
            {
                "current": current,
                "password": "a brand new passphrase",
                "confirm": "a brand new passphrase",
            },
            page="/staff/account",
        )

    for _ in range(5):
        assert change("a wrong guess").status_code == 422
    locked = change("correct horse battery")
    assert locked.status_code == 422 and "match an active account" in locked.get_data(as_text=True)
    # Counted against this session: the owner's typos lock no other browser out, and a
    # stranger's wrong sign-ins never lock this check (tests/web/auth/test_login_guessing.py).
    assert login(app.test_client(), "dr@example.org").status_code == 302
    app.config["CLOCK"].advance(minutes=14)
    assert client.get("/staff/account").status_code == 200
    app.config["CLOCK"].advance(minutes=2)
    login(client, "dr@example.org")
    assert change("correct horse battery").status_code == 302


def test_idle_and_absolute_timeouts(app, client, clock):
    create_user(app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    clock.advance(minutes=14)
    assert client.get("/staff/").status_code == 200
    clock.advance(minutes=16)
    assert client.get("/staff/").status_code == 302
    login(client, "dr@example.org")
    for _ in range(12 * 4 + 1):  # busy all day: active every 15 minutes for 12 hours
        clock.advance(minutes=15)
        response = client.get("/staff/")
    assert response.status_code == 302


def test_polling_does_not_keep_a_session_alive(app, client, clock):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    for _ in range(15):
        clock.advance(minutes=1)
        assert client.get("/staff/board.json").status_code == 200
    clock.advance(minutes=1)
    assert client.get("/staff/board.json").status_code == 401


def test_setup_link_creates_the_first_admin_once(app, client):
    link = setup_link(app)
    response = post_setup(client, link)
    assert response.status_code == 302
    assert client.get("/staff/").status_code == 200
    assert app.test_client().get(link).status_code == 404


def test_setup_rejects_short_password(app, client):
    response = post_setup(client, setup_link(app), password="short")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "at least 10 characters" in html
    assert 'value="boss@example.org"' in html


# --- invitations ---------------------------------------------------------------------------


def new_invitation(client, **fields):
    page = client.get("/staff/invitations/new")
    data = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "patient_ref": "MRN 44817",
        "day": "2026-11-25",
        "time": "14:30",
        "psychiatrist": "0",
        "language": "",
    }
    data.update(fields)
    return client.post("/staff/invitations/new", data=data, follow_redirects=True)


def test_front_desk_invites_and_the_patient_gets_in(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    page = new_invitation(client)
    html = page.get_data(as_text=True)
    assert "Invitation for MRN 44817" in html
    assert "<svg" in html and "segno" in html
    code = re.search(r'<p class="code" lang="en">([0-9A-Z]{5}-[0-9A-Z]{5})</p>', html).group(1)
    link = re.search(r'href="(http://localhost/v/[^"]+)"', html).group(1)
    slip = client.get(re.search(r'href="(/staff/visits/\d+/slip)"', html).group(1))
    assert code in slip.get_data(as_text=True)
    patient = app.test_client()
    assert "Before your visit" in patient.get(
        link.replace("http://localhost", ""), follow_redirects=True
    ).get_data(as_text=True)
    # Only right after creation: a later visit to the page shows no secrets.
    new_invitation(client, patient_ref="AB")
    first_page = (
        re.search(r'href="(/staff/visits/\d+/slip)"', html).group(1).replace("slip", "invitation")
    )
    again = client.get(first_page)
    assert code not in again.get_data(as_text=True)
    assert "invitation_created" in [a for a, _ in audit_actions(app)]


def test_invitation_form_refuses_full_names_and_keeps_input(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    page = new_invitation(client, patient_ref="Maria Gonzalez", time="09:15")
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "This looks like a name" in html
    assert 'value="09:15"' in html and 'value="Maria Gonzalez"' in html
    assert "A chart number or initials, not a full name." in html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patient_ref", "", "Please enter a chart number or initials."),
        ("patient_ref", "x" * 41, "40 characters or fewer"),
        ("day", "2026-13-40", "Please enter a valid date."),
        ("time", "25:99", "Please enter a valid time."),
        ("psychiatrist", "999", "Please pick one of the choices shown."),
        ("language", "xx", "Please pick one of the choices shown."),
    ],
)
def test_invitation_form_errors(app, client, field, value, message):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    page = new_invitation(client, **{field: value})
    assert page.status_code == 422
    assert message in page.get_data(as_text=True)


def test_an_invitation_for_a_day_gone_is_refused(app, client, db):
    """Found on a walk: a mistyped date made an invitation that was "Expired" at once.
    A day before today is refused, even when the clinic's extra days would keep its
    link open (its messages would ask for answers "before your visit" on a day gone);
    everything typed stays on the refused form. A far date is refused once, not a 500."""
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    storage.save_settings(db, {"invite_extra_days": 2})
    page = new_invitation(client, day="2026-11-24", patient_ref="MRN 5")
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "This date has passed. Please check the date." in html
    assert 'value="MRN 5"' in html and 'value="2026-11-24"' in html and 'value="14:30"' in html
    assert db.execute("SELECT COUNT(*) FROM visits WHERE patient_ref = 'MRN 5'").fetchone()[0] == 0
    far = new_invitation(client, day="9999-12-31")
    assert far.status_code == 422 and "Please enter a valid date." in far.get_data(as_text=True)
    made = new_invitation(client, day="2026-11-25", patient_ref="MRN 5")  # today
    assert made.status_code == 200 and "Expired" not in made.get_data(as_text=True)


def test_cancel_and_reissue(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    invitation = make_invitation(app)
    staff_post(client, f"/staff/visits/{invitation.visit_id}/reissue")
    assert app.test_client().get(f"/v/{invitation.token}").status_code == 404
    html = client.get(f"/staff/visits/{invitation.visit_id}/invitation").get_data(as_text=True)
    new_link = re.search(r'href="http://localhost(/v/[^"]+)"', html).group(1)
    assert app.test_client().get(new_link).status_code == 302
    staff_post(client, f"/staff/visits/{invitation.visit_id}/cancel")
    assert app.test_client().get(new_link).status_code == 404
    actions = [a for a, _ in audit_actions(app)]
    assert "invitation_reissued" in actions and "invitation_cancelled" in actions


# --- board and alerts ----------------------------------------------------------------------


def test_board_shows_progress_and_status(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    invited = make_invitation(app, patient_ref="INV-1")
    started = make_invitation(app, patient_ref="RUN-2")
    patient = Patient(app.test_client())
    patient.start(started.token)
    page = patient.post("/step/1", {"action": "next"}).get_data(as_text=True)
    finish_visit(app, ref="DONE-3")
    html = client.get("/staff/").get_data(as_text=True)
    assert "INV-1" in html and "RUN-2" in html and "DONE-3" in html
    # The phone counts screens ("Step 2 of 12"); the board the questionnaire's parts,
    # which no answer changes (test_board_progress.py).
    assert f'id="progress-label">{progress_of("M1")}<' in page
    assert "Invited" in html and "In progress" in html
    assert "(part 2 of 8)" in html
    assert "Submitted" in html
    data = client.get("/staff/board.json").get_json()
    statuses = {v["patient_ref"]: v["status"] for v in data["visits"]}
    assert statuses == {"INV-1": "invited", "RUN-2": "in_progress", "DONE-3": "submitted"}
    assert invited.visit_id in [v["id"] for v in data["visits"]]


def test_board_json_never_carries_answers(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    finish_visit(app)
    body = client.get("/staff/board.json").get_data(as_text=True)
    assert "lower the dose" not in body and "weakness" not in body


def test_safety_alert_reaches_the_board_and_is_acknowledged(app, client, clock):
    create_user(app, "desk@example.org", "frontdesk", name="Sam at the desk")
    login(client, "desk@example.org")
    assert client.get("/staff/board.json").get_json()["alerts"] == []
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "more_than_half"}
    invitation = finish_visit(app, answers, ref="ALERT-9")
    alerts = client.get("/staff/board.json").get_json()["alerts"]
    assert [a["patient_ref"] for a in alerts] == ["ALERT-9"]
    html = client.get("/staff/").get_data(as_text=True)
    assert "Safety alerts" in html and "ALERT-9" in html
    clock.advance(minutes=2)
    staff_post(client, f"/staff/visits/{invitation.visit_id}/acknowledge")
    assert client.get("/staff/board.json").get_json()["alerts"] == []
    with closing(storage.connect(app.config["DATABASE"])) as db:
        alert = storage.alert_for(db, invitation.visit_id)
    assert alert.acknowledged_at == datetime(2026, 11, 25, 9, 2) and alert.acknowledged_by
    assert "Alert acknowledged by Sam at the desk" in client.get("/staff/").get_data(as_text=True)
    assert ("alert_acknowledged", invitation.visit_id) in audit_actions(app)


def test_board_has_a_no_script_fallback(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    html = client.get("/staff/").get_data(as_text=True)
    assert (
        '<noscript><meta http-equiv="refresh" content="30;url=/staff/?day=2026-11-25&amp;auto=1">'
        in html
    )


# --- the summary ---------------------------------------------------------------------------


def test_psychiatrist_reads_the_summary_of_a_real_journey(app, psychiatrist):
    invitation = finish_visit(app, ref="RJ-77")
    response = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    order = [
        "RJ-77",
        "Safety question: not endorsed",
        "Whether I can lower the dose before summer.",
        "Flags and openers",
        "Hard to say",
        "Ambivalence",
        "Self-adjusting",
        "Also noted",
        "Stops at recovery",
        "<h2>Medicines</h2>",
        "<h2>Patterns</h2>",
        "<h2>Family, culture, past treatment</h2>",
        "<h2>Meaning and hopes</h2>",
        "<h2>Relationship</h2>",
        "<h2>Since last visit",
        "Patient-reported; not a diagnosis.",
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    flags = html.split("Flags and openers")[1].split("<h2>Medicines")[0]
    assert flags.split("</ol>")[0].count("<li><strong>") == 3  # at most three flags
    also = flags.split('class="also-noted">')[1].split("</p>")[0]
    # Every flag beyond the three is named in page order, and on screen each keeps a
    # one-line opener (v3); on paper the names alone (the list is no-print).
    assert plain(also) == (
        "Also noted: Stops at recovery, Family / culture, Past treatment hurt, Biology only, "
        "Worries about getting better, Feelings as signals"
    )
    openers = flags.split('<ul class="also-openers no-print">')[1].split("</ul>")[0]
    assert openers.count("<li><strong>") == 6
    assert "<strong>Biology only</strong>: You said your difficulties come from" in openers
    assert "Control" not in flags
    assert "(The therapeutic relationship)" in flags and "(1" not in flags
    assert "Need 8/10 · worries: side effects, becoming dependent · both high (ambivalent)" in html
    assert "Side effects, Becoming dependent on it" in html
    assert "Sertraline</span> — Mixed" in html
    assert "First reflection with this patient reference." in html
    assert ("summary_viewed", invitation.visit_id) in audit_actions(app)


def test_in_person_items_show_only_their_topic(app, psychiatrist):
    invitation = finish_visit(app, in_person=["F2", "T2"])
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    assert "pills are weakness" not in html
    assert "lower the dose" not in html
    # Named beside the agenda, at the top of the page, and nowhere else.
    held = html.split('class="held-line"')[1].split("</p>")[0]
    assert "Background, culture or faith to understand" in held
    assert "Wants to talk about today" in held
    assert "Held for in person" in held
    assert (
        "Wants to talk about today" not in html.split('class="sum-foot"')[1].split("</footer>")[0]
    )
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(
        as_text=True
    )
    assert "pills are weakness" not in text and "Held for in person" in text


def test_safety_banner_and_acknowledge_from_summary(app, psychiatrist):
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    invitation = finish_visit(app, answers)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    banner = html.split('class="banner"')[1].split("</div>")[0]
    assert "Nearly every day" in banner and "Acknowledge alert" in banner
    assert html.index('class="banner"') < html.index("Flags and openers")


def _alerted(app, ref="ALERT-1"):
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    return finish_visit(app, answers, ref=ref)


def _alert_row(app, visit_id):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.alert_for(db, visit_id)


def _audit_details(app, action):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [
            row["detail"]
            for row in db.query("SELECT detail FROM audit_log WHERE action = ?", [action])
        ]


def test_acknowledge_from_the_summary_stays_there_with_a_note(app, psychiatrist):
    visit_id = _alerted(app).visit_id
    summary = f"/staff/visits/{visit_id}/summary"
    note = "  spoke with the patient at the desk <b>calm</b>  "
    response = staff_post(
        psychiatrist,
        f"/staff/visits/{visit_id}/acknowledge",
        {"note": note, "return_to": "summary"},
        page=summary,
    )
    assert response.status_code == 302 and response.location == summary
    assert _alert_row(app, visit_id).acknowledged_note == note.strip()
    banner = psychiatrist.get(summary).get_data(as_text=True).split('class="banner"')[1]
    banner = banner.split("</div>")[0]
    assert "Alert acknowledged at" in banner and "by Dr. Lee." in banner
    assert "Note: spoke with the patient at the desk &lt;b&gt;calm&lt;/b&gt;" in banner
    assert "<b>" not in banner and "Acknowledge alert" not in banner
    board = psychiatrist.get("/staff/").get_data(as_text=True)
    assert "Alert acknowledged by Dr. Lee" in board
    assert "Note: spoke with the patient at the desk &lt;b&gt;calm&lt;/b&gt;" in board
    visit = next(v for v in psychiatrist.get("/staff/board.json").get_json()["visits"])
    assert visit["acknowledged_note"] == note.strip()
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    assert "Note: spoke with the patient at the desk <b>calm</b>" in text  # plain text
    assert ("alert_acknowledged", visit_id) in audit_actions(app)
    # The audit log says a note was left, never what it says.
    assert _audit_details(app, "alert_acknowledged") == ["with note"]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("x" * 201, "Please keep this to 200 characters or fewer."),
        ("spoke with\nthe patient", "Please keep the note on one line."),
        ("spoke with\u2028the patient", "Please keep the note on one line."),
    ],
)
@pytest.mark.parametrize("where", ["summary", "board"])
def test_a_bad_note_acknowledges_nothing_and_keeps_what_was_typed(
    app, psychiatrist, note, message, where
):
    visit_id = _alerted(app).visit_id
    response = staff_post(
        psychiatrist,
        f"/staff/visits/{visit_id}/acknowledge",
        {"note": note, "return_to": where},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true"' in page
    assert html_lib.escape(note.split("\n")[0]) in page  # what was typed, shown again
    assert ("Acknowledge alert" if where == "summary" else "Safety alerts") in page
    assert _alert_row(app, visit_id).acknowledged_at is None
    assert "alert_acknowledged" not in [action for action, _ in audit_actions(app)]


def test_two_hundred_characters_are_enough(app, psychiatrist):
    visit_id = _alerted(app).visit_id
    response = staff_post(
        psychiatrist, f"/staff/visits/{visit_id}/acknowledge", {"note": "y" * 200 + "  "}
    )
    assert response.status_code == 302
    assert _alert_row(app, visit_id).acknowledged_note == "y" * 200


@pytest.mark.parametrize(
    "return_to", ["board", "", "https://evil.example/", "//evil.example", "/staff/admin"]
)
def test_acknowledge_otherwise_returns_to_the_board(app, psychiatrist, return_to):
    visit_id = _alerted(app).visit_id
    response = staff_post(
        psychiatrist, f"/staff/visits/{visit_id}/acknowledge", {"return_to": return_to}
    )
    assert response.status_code == 302 and response.location == "/staff/?day=2026-11-25"
    alert = _alert_row(app, visit_id)
    assert alert.acknowledged_at and alert.acknowledged_note == ""
    assert _audit_details(app, "alert_acknowledged") == [""]


def test_acknowledging_on_another_days_board_goes_back_to_that_board(app, psychiatrist):
    """Found on a walk: acknowledged on one day's board (alerts show on every day's), an
    alert of a visit on another day sent the desk to that visit's day instead."""
    visit_id = _alerted(app).visit_id  # a visit on Nov 25
    page = psychiatrist.get("/staff/?day=2026-11-27").get_data(as_text=True)
    action = html_lib.unescape(
        re.search(rf'action="([^"]*/visits/{visit_id}/acknowledge[^"]*)"', page).group(1)
    )
    board = re.search(r'data-ack="([^"]*)"', page).group(1)  # the forms board.js adds
    assert html_lib.unescape(board).replace("/0/", f"/{visit_id}/") == action
    token = csrf_from(page)
    refused = psychiatrist.post(action, data={"csrf_token": token, "note": "a\nb"})
    assert refused.status_code == 422
    assert "Friday, November 27, 2026" in refused.get_data(as_text=True)  # that board again
    response = psychiatrist.post(action, data={"csrf_token": token, "return_to": "board"})
    assert response.status_code == 302 and response.location == "/staff/?day=2026-11-27"
    assert _alert_row(app, visit_id).acknowledged_at


def test_front_desk_asking_for_the_summary_goes_to_the_board(app, client):
    create_user(app, "desk@example.org", "frontdesk", name="Sam at the desk")
    login(client, "desk@example.org")
    visit_id = _alerted(app).visit_id
    response = staff_post(
        client,
        f"/staff/visits/{visit_id}/acknowledge",
        {"return_to": "summary", "note": "spoke with the patient at the desk"},
    )
    assert response.status_code == 302 and response.location == "/staff/?day=2026-11-25"
    board = client.get("/staff/").get_data(as_text=True)
    assert "Alert acknowledged by Sam at the desk" in board
    assert "Note: spoke with the patient at the desk" in board
    refused = staff_post(
        client,
        f"/staff/visits/{_alerted(app, 'ALERT-2').visit_id}/acknowledge",
        {"return_to": "summary", "note": "z" * 300},
    )
    assert refused.status_code == 422  # the board, with the message: never the summary
    assert "Please keep this to 200 characters or fewer." in refused.get_data(as_text=True)
    assert "Acknowledge alert" not in refused.get_data(as_text=True)


def test_declined_safety_is_named_declined(app, psychiatrist):
    answers = dict(FULL_ANSWERS)
    answers[10] = {}
    invitation = finish_visit(app, answers)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    assert "Safety question: declined" in html
    assert 'class="safety-line safety-declined"' in html  # amber on screen and paper


def test_changes_since_last_visit(app, psychiatrist, clock):
    earlier = dict(FULL_ANSWERS)
    earlier[2] = {**FULL_ANSWERS[2], "M4": "3", "M5": ["side_effects"], "M2": "positive"}
    finish_visit(app, earlier, ref="CH-1")
    clock.advance(days=28)
    invitation = finish_visit(app, ref="CH-1")
    login(psychiatrist, "dr@example.org")  # a month later: a new sign-in
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    changes = html.split("Since last visit")[1].split("</section>")[0]
    # The date as this Babel's CLDR data writes it in English, not as it did one year.
    shown = format_date(date(2026, 11, 25), "medium", locale="en")
    assert f"({shown})" in html.split("Since last visit")[1][:40]
    assert "3 out of 10 → 8 out of 10" in changes
    assert "Good about it → Mixed" in changes
    assert "New worries: Becoming dependent on it" in changes
    assert "Stance: low need, few worries → both high (ambivalent)" in changes
    assert "No changes" not in changes
    assert "Last visit, if treatment worked well</strong>: " in changes
    assert "I would go back to work and see my friends." in changes


def test_a_summary_read_is_audited_for_the_earlier_visit_it_shows(app, psychiatrist, clock):
    first = finish_visit(app, ref="CH-2")
    clock.advance(days=28)
    second = finish_visit(app, ref="CH-2")
    other = finish_visit(app, ref="CH-3")  # another patient's: never named
    login(psychiatrist, "dr@example.org")
    base = f"/staff/visits/{second.visit_id}"
    page = psychiatrist.get(f"{base}/summary").get_data(as_text=True)
    assert "I would go back to work and see my friends." in page.split("Since last visit")[1]
    psychiatrist.get(f"{base}/print")
    psychiatrist.get(f"{base}/summary.txt")
    psychiatrist.post(f"{base}/copied", data={"csrf_token": csrf_from(page)})
    with closing(storage.connect(app.config["DATABASE"])) as db:
        shown = storage.audit_entries(db, action="earlier_visit_shown")
        read = storage.audit_entries(db, visit_id=second.visit_id)
        me = storage.user_by_email(db, "dr@example.org")["id"]
    assert {entry["visit_id"] for entry in shown} == {first.visit_id}
    assert sorted(entry["detail"] for entry in shown) == sorted(
        f"{action} of visit {second.visit_id}"
        for action in ("summary_viewed", "summary_printed", "summary_exported", "summary_exported")
    )
    assert {entry["user_id"] for entry in shown} == {me}
    assert len(read) == 4  # the reads themselves, as before
    assert other.visit_id not in {entry["visit_id"] for entry in shown}
    # The first visit's own summary shows no other visit.
    psychiatrist.get(f"/staff/visits/{first.visit_id}/summary")
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert len(storage.audit_entries(db, action="earlier_visit_shown")) == 4


def plain(fragment: str) -> str:
    """Page HTML as a reader sees it: quotes in their marks, print-only markers left out."""
    fragment = re.sub(r"</li>\s*<li", "</li> · <li", fragment)
    fragment = re.sub(r"<q\b[^>]*>(.*?)</q>", r"“\1”", fragment, flags=re.S)
    # Only the template's own line breaks and indents: Babel's no-break spaces stay.
    words = re.sub(r"[ \t\n]+", " ", re.sub(r"<[^>]+>", "", fragment))
    return html_lib.unescape(words).strip()


def labelled(line: str) -> tuple[str, str]:
    label, value = line.split(": ", 1)
    return label, value


def summary_on_page(html: str) -> dict:
    """Every answer and label of the summary page, in page order."""
    article = html.split("<article", 1)[1].split("</article>", 1)[0]
    meta = re.search(r'<p class="meta">(.*?)</p>', article, re.S).group(1)
    previous_hopes = re.findall(r'<p class="previous-hopes">(.*?)</p>', article, re.S)
    also_noted = re.findall(r'<p class="also-noted">(.*?)</p>', article, re.S)
    today = re.search(r'<section class="agenda">(.*?)</section>', article, re.S).group(1)
    flags = re.search(r'<section class="flags">(.*?)</section>', article, re.S).group(1)
    blocks = article.split('<div class="blocks">', 1)[1].split('<section class="changes">', 1)
    changes, footer = blocks[1].split('<footer class="sum-foot">', 1)
    return {
        "patient": plain(re.search(r'<span class="ref">(.*?)</span>', article).group(1)),
        "meta": dict(labelled(plain(s)) for s in re.findall(r"<span[^>]*>(.*?)</span>", meta)[1:]),
        "safety": plain(
            (
                re.search(r'<p class="safety-line[^"]*">(.*?)</p>', article)
                or re.search(
                    r'<div class="banner" role="alert">(.*?)(?:<p |<form|</div>)', article, re.S
                )
            ).group(1)
        ),
        "today": [labelled(plain(p))[1] for p in re.findall(r"<p[^>]*>(.*?)</p>", today, re.S)],
        "also_noted": [plain(p) for p in also_noted],
        "flags": [
            (plain(title), plain(practices), plain(evidence), plain(opener))
            for title, practices, evidence, opener in re.findall(
                r'<li><strong>(.*?)</strong> <span class="practice">\((.*?)\)</span>'
                r'(?: <span class="evidence">(.*?)</span>)? <br>(.*?)</li>',
                flags.split("</ol>")[0],
                re.S,
            )
        ],
        "also_openers": [
            plain(li)
            for li in re.findall(
                r"<li>(.*?)</li>", ([*flags.split('class="also-openers no-print">'), ""])[1], re.S
            )
        ],
        "blocks": [
            (
                plain(re.search(r"<h2>(.*?)</h2>", section).group(1)),
                [
                    (plain(dt), plain(dd))
                    for dt, dd in re.findall(r"<dt[^>]*>(.*?)</dt><dd>(.*?)</dd>", section, re.S)
                ],
            )
            for section in re.findall(r"<section>(.*?)</section>", blocks[0], re.S)
        ],
        "changes": [
            plain(li)
            for li in re.findall(
                r'<(?:li|p class="muted")[^>]*>(.*?)</(?:li|p)>', changes.split("</h2>", 1)[1], re.S
            )
        ]
        + [plain(p) for p in previous_hopes],
        "footer": [plain(p) for p in re.findall(r"<p[^>]*>(.*?)</p>", footer, re.S)],
    }


def _text_rows(lines: list[str]) -> list[tuple[str, str]]:
    """A block's rows read back from the export: medicines come one per line ("  - "
    or "  ! " for one not helping) under their label, read here as the page lists them."""
    rows: list[tuple[str, str]] = []
    medicines: list[str] = []
    for line in [*lines, "- end: of block"]:
        if line.startswith(("  - ", "  ! ")):
            medicines.append(line[4:])
            continue
        if medicines:
            label, tag = rows.pop()
            rows.append((label, " · ".join(medicines) + (f" {tag}" if tag else "")))
            medicines = []
        label, _, value = line.removeprefix("- ").partition(":")
        rows.append((label, value.strip()))
    return rows[:-1]


# What the plain text adds around a quote of the other direction (summary/bidi.py) and
# the page does with dir="auto": embeddings, and marks beside quotation marks (a mark
# elsewhere, as inside an Arabic date, is the locale's own and stays).
QUOTE_DIRECTION = re.compile(
    "[\u202a-\u202c]|[\u200e\u200f](?=[“«「])|(?<=[“”«»「」])[\u200e\u200f]"
    "|[\u200e\u200f](?=\u202a|\u202b)"
)


def summary_in_text(text: str) -> dict:
    """The same parts read back from the plain-text export."""
    text = QUOTE_DIRECTION.sub("", text)
    head, safety, today, flags, *blocks, changes, footer = [
        part.splitlines() for part in text.strip().split("\n\n")
    ]
    meta = dict(labelled(piece) for line in head[1:] for piece in line.split(" · "))
    assert flags[0] and changes[0]  # the parts' headings, in the reader's language
    return {
        "patient": meta.pop(next(iter(meta))),  # the first label, in the reader's language
        "meta": meta,
        "safety": safety[0],
        "today": [labelled(line)[1] for line in today[1:]],
        "also_noted": [
            line for line in flags[1:] if not line.startswith(("- ", "  ")) and ": " in line
        ],
        "flags": [
            tuple(
                part or ""
                for part in re.fullmatch(r"- (.*?) \((.*?)\)(?: \[(.*?)\])?: (.*)", line).groups()
            )
            for line in flags[1:]
            if line.startswith("- ")
        ],
        "also_openers": [
            line.removeprefix("  - ") for line in flags[1:] if line.startswith("  - ")
        ],
        "blocks": [(block[0], _text_rows(block[1:])) for block in blocks],
        "changes": [line.removeprefix("- ") for line in changes[1:]],
        "footer": footer,
    }


def test_plain_text_export_matches_the_page(app, psychiatrist, clock):
    earlier = dict(FULL_ANSWERS)
    earlier[2] = {**FULL_ANSWERS[2], "M4": "3", "M5": ["side_effects"], "M2": "positive"}
    finish_visit(app, earlier, ref="TX-1")
    clock.advance(days=28)
    invitation = finish_visit(
        app,
        {**FULL_ANSWERS, 3: {"P1": "chose_to_skip", "P3": "same"}},
        ref="TX-1",
        in_person=["H1"],
    )
    login(psychiatrist, "dr@example.org")  # a month later: a new sign-in
    page = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(
        as_text=True
    )
    on_page = summary_on_page(page)
    assert summary_in_text(text) == on_page
    # The comparison covers a whole page: every block, flags, changes and the footer.
    assert [title for title, _rows in on_page["blocks"]] == [
        "Medicines",
        "Patterns",
        "Family, culture, past treatment",
        "Meaning and hopes",
        "Relationship",
    ]
    # The items of the blocks less P2, skipped here (listed in the footer), and less M4,
    # which the stance names; R3 is in Today. H1 held reads "to discuss in person".
    shown = sum(len(rows) for _title, rows in on_page["blocks"])
    in_blocks = ("M0", "M1", "M2", "M3", "M5", "M6", "P1", "F1", "F2", "F3", "W1", "W2")
    in_blocks += ("W3",)
    in_blocks += ("H1", "H2", "R1", "R2", "R4", "R5")
    assert shown == 1 + sum(1 for i in in_blocks if i in questionnaire.default().items)
    assert len(on_page["flags"]) == 3 and len(on_page["also_noted"]) == 1
    # Four changes, then last visit's H1 quoted (today's is held, last visit's is not).
    assert len(on_page["changes"]) == 5
    assert (  # no "[English]": the reader reads the language it was written in (v3)
        "Background, culture or faith to understand",
        "Yes — “My mother says pills are weakness.”",
    ) in on_page["blocks"][2][1]
    assert on_page["footer"][-1] == "Patient-reported; not a diagnosis."
    # The copy box holds the very text that is downloaded.
    copy_box = page.split('<textarea id="record-text"', 1)[1].split(">", 1)[1]
    assert html_lib.unescape(copy_box.split("</textarea>", 1)[0]) == text


def test_plain_text_export_is_an_audited_download(app, psychiatrist):
    invitation = finish_visit(app)
    response = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt")
    text = response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "A-1001" not in response.headers["Content-Disposition"]
    assert "<" not in text
    page = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    assert "Plain text for the medical record" in page and "Copy as text" in page
    staff_post(
        psychiatrist,
        f"/staff/visits/{invitation.visit_id}/copied",
        page=f"/staff/visits/{invitation.visit_id}/summary",
    )
    exports = [a for a in audit_actions(app) if a[0] == "summary_exported"]
    assert len(exports) == 2


def test_print_view_is_audited(app, psychiatrist):
    invitation = finish_visit(app)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/print").get_data(as_text=True)
    assert "data-autoprint" in html
    assert ("summary_printed", invitation.visit_id) in audit_actions(app)


def test_mark_reviewed_shows_on_the_board(app, psychiatrist):
    invitation = finish_visit(app, ref="REV-5")
    staff_post(psychiatrist, f"/staff/visits/{invitation.visit_id}/reviewed")
    data = psychiatrist.get("/staff/board.json").get_json()
    assert [v["status"] for v in data["visits"]] == ["reviewed"]
    assert "Reviewed" in psychiatrist.get("/staff/").get_data(as_text=True)
    assert ("visit_reviewed", invitation.visit_id) in audit_actions(app)


MAX_ANSWERS = {
    1: {"T1": ["worried", "frustrated", "tired"], "T2": "W" * 300},
    2: {
        **{f"M1-{i}-name": f"Medicine-{i}-" + "x" * 48 for i in range(6)},
        **{f"M1-{i}-feeling": "not_helping" for i in range(6)},
        "M2": "mixed",
        "M3": [
            "helper",
            "safety_net",
            "crutch",
            "reminder",
            "controls_me",
            "punishment",
            "nothing_much",
        ],
        "M4": "10",
        "M5": [
            "side_effects",
            "long_term_harm",
            "dependent",
            "not_myself",
            "others_think",
            "being_controlled",
            "cost_access",
        ],
    },
    3: {
        "P1": "chose_to_skip",
        "P2": ["felt_better", "side_effects", "someone_told_me", "cost", "not_myself", "test_need"],
    },
    4: {
        "F1": [
            "supportive",
            "against",
            "dont_know",
            "good_experience",
            "bad_experience",
            "prefer_other",
        ],
        "F2": "yes",
        "F2_text": "F" * 300,
        "F3": ["helped_a_lot", "bad_side_effects", "not_listened", "pressured", "other_healers"],
    },
    5: {
        "W1": [
            "body_chemistry",
            "stress",
            "relationships",
            "past_experiences",
            "spiritual",
            "who_i_am",
            "dont_know",
        ],
        "W2": "something_else",
    },
    6: {
        "H1": "H" * 300,
        "H2": ["more_expected", "losing_support", "relationships_change", "not_myself"],
    },
    7: {
        "R1": "0",
        "R2": "mostly_me",
        "R3": ["lowering", "changing", "side_effects", "how_long", "other_help"],
    },
    10: {"S1": "nearly_every_day"},
}


def test_maximal_visit_summary(app, psychiatrist):
    invitation = finish_visit(app, MAX_ANSWERS, ref="MAX-1")
    page = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    html = page.split('<div class="summary-actions')[0]
    # Whole on the page; shortened on paper only if it would not fit (static/summary.js).
    assert "W" * 300 in html and 'data-fit-more="(continued on screen)"' in html
    assert html.count("data-fit>") >= 3 + 6  # three quotes and six medicine names
    shown = html.split('<section class="flags">')[1].split("</ol>")[0]
    assert shown.count("<li><strong>") == 3
    assert "Medicine-5-" in html and "Something else" in html


# --- access control ------------------------------------------------------------------------
# Every route, logged out and with each role: tests/web/test_access.py.

VISIT_ROUTES = [
    ("get", "/staff/visits/{id}/summary"),
    ("get", "/staff/visits/{id}/print"),
    ("get", "/staff/visits/{id}/summary.txt"),
    ("post", "/staff/visits/{id}/copied"),
    ("post", "/staff/visits/{id}/reviewed"),
]


@pytest.mark.parametrize(("method", "route"), VISIT_ROUTES)
def test_front_desk_never_sees_answers_nor_learns_a_visit_exists(app, client, method, route):
    invitation = finish_visit(app)
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    existing = getattr(client, method)(
        route.format(id=invitation.visit_id), data={"csrf_token": token}
    )
    missing = getattr(client, method)(route.format(id=9999), data={"csrf_token": token})
    assert existing.status_code == missing.status_code == 404
    assert existing.get_data() == missing.get_data()


@pytest.mark.parametrize("role", ["frontdesk", "psychiatrist", "admin"])
def test_every_role_uses_the_board_and_invitations(app, client, role):
    create_user(app, "someone@example.org", role)
    login(client, "someone@example.org")
    assert client.get("/staff/").status_code == 200
    assert client.get("/staff/invitations/new").status_code == 200
    page = new_invitation(client)  # followed to wherever it leads, the login page included
    assert page.status_code == 200
    assert re.fullmatch(r"/staff/visits/\d+/invitation", page.request.path), page.request.path
    assert "Invitation for MRN 44817" in page.get_data(as_text=True)


def test_summary_of_unsent_visit_is_not_found(app, psychiatrist):
    invitation = make_invitation(app)
    assert psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").status_code == 404


def test_staff_change_their_own_password(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    other = app.test_client()
    login(other, "desk@example.org")
    page = client.get("/staff/account")
    assert page.status_code == 200 and "Change my password" in page.get_data(as_text=True)
    wrong = client.post(
        "/staff/account",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "current": "not it at all",
            "password": "a brand new secret",
            "confirm": "a brand new secret",
        },
    )
    assert wrong.status_code == 422
    assert "That is not your current password." in wrong.get_data(as_text=True)
    short = client.post(
        "/staff/account",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "current": "correct horse battery",
            "password": "short",
            "confirm": "short",
        },
    )
    assert "at least 10 characters" in short.get_data(as_text=True)
    done = client.post(
        "/staff/account",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "current": "correct horse battery",
            "password": "a brand new secret",
            "confirm": "a brand new secret",
        },
        follow_redirects=True,
    )
    assert "Your password was changed" in done.get_data(as_text=True)
    assert client.get("/staff/").status_code == 200  # this sign-in goes on
    assert other.get("/staff/").status_code == 302  # the other one has ended
    assert login(app.test_client(), "desk@example.org").status_code == 401
    assert login(app.test_client(), "desk@example.org", "a brand new secret").status_code == 302
    assert "password_changed" in [a for a, _ in audit_actions(app)]


def test_since_last_visit_says_no_changes_only_when_answered_both_times(app, psychiatrist, clock):
    earlier = {**FULL_ANSWERS, 3: {"P1": "chose_to_skip", "P2": ["felt_better", "side_effects"]}}
    finish_visit(app, earlier, ref="NC-1")  # P3 skipped last time
    clock.advance(days=28)
    invitation = finish_visit(app, ref="nc -1")  # the same reference, typed differently
    login(psychiatrist, "dr@example.org")
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    changes = plain(html.split('class="changes"')[1].split("</section>")[0])
    assert "No changes" not in changes
    assert "Not compared, not answered last time: Daily life and relationships lately" in changes
    assert "Last visit, if treatment worked well: “I would go back to work" in changes
    # The same answers both times: now, and only now, "no changes".
    clock.advance(days=28)
    same = finish_visit(app, ref="NC-1")
    login(psychiatrist, "dr@example.org")
    html = psychiatrist.get(f"/staff/visits/{same.visit_id}/summary").get_data(as_text=True)
    changes = plain(html.split('class="changes"')[1].split("</section>")[0])
    assert "No changes in these answers since then." in changes
    assert "Not compared" not in changes
    text = psychiatrist.get(f"/staff/visits/{same.visit_id}/summary.txt").get_data(as_text=True)
    assert "Also noted: Stops at recovery, Family / culture" in text


def test_an_item_held_for_in_person_fires_no_flag_on_the_page(app, psychiatrist):
    # R1 = 1 fires "Hard to say"; held for in person, the flag is neither shown nor noted.
    shown = finish_visit(app, ref="HF-1")
    held = finish_visit(app, ref="HF-2", in_person=["R1", "M4"])
    page = psychiatrist.get(f"/staff/visits/{shown.visit_id}/summary").get_data(as_text=True)
    assert "Hard to say" in page and "Ambivalence" in page
    html = psychiatrist.get(f"/staff/visits/{held.visit_id}/summary").get_data(as_text=True)
    flags = html.split("Flags and openers")[1].split("<h2>Medicines")[0]
    assert "Hard to say" not in flags and "Ambivalence" not in flags
    assert "Self-adjusting" in flags


def test_since_last_visit_names_what_was_not_answered_this_time(app, psychiatrist, clock):
    finish_visit(app, ref="NT-1")
    clock.advance(days=28)
    today = {
        **FULL_ANSWERS,
        2: {**FULL_ANSWERS[2], "M4": "3", "M5": ["none"]},
        3: {"P1": "chose_to_skip"},
    }
    invitation = finish_visit(app, today, ref="NT-1")
    login(psychiatrist, "dr@example.org")
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    changes = plain(html.split('class="changes"')[1].split("</section>")[0])
    assert "Not compared, not answered this time: Daily life and relationships lately" in changes
    assert "Not compared, not answered last time" not in changes
    assert "Need 3/10 · worries: none · low need, few worries" in plain(html)
