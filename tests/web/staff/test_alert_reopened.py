"""A safety alert is answered for what it said: an answer worse than the one an
acknowledgement covered opens the alert again for the front desk; a cancelled visit never
takes an open alert off the board (from a clinic safety officer's walk, 2026-12-07)."""

from __future__ import annotations

import csv
import io
import re
from contextlib import closing
from datetime import datetime

from patientapp.db import storage
from patientapp.domain import escalation
from tests.conftest import Patient, create_user, login, make_invitation, staff_post

NOTE = "Asked at the desk: says she is fine"


def desk(app):
    create_user(app, "fran.desk@example.org", "frontdesk", name="Fran Desk")
    client = app.test_client()
    assert login(client, "fran.desk@example.org").status_code == 302
    return client


def at_safety(app, ref="RE-1", when=None):
    """A patient on the safety question (step 10), not yet sent."""
    invitation = make_invitation(app, patient_ref=ref, when=when)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 10):
        patient.post(f"/step/{number}", {"action": "next"})
    return invitation, patient


def alert_of(app, visit_id):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.alert_for(db, visit_id)


def audited(app, action):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.audit_entries(db, action=action)


def test_a_worse_answer_after_an_acknowledgement_opens_the_alert_again(app, clock, psychiatrist):
    """As the walk found it: "Several days" acknowledged with a note, then "Nearly every
    day" by the review's Change: the patient was told the desk knows, the board showed no
    alert, nothing escalated, and the summary read as if the acknowledgement covered it."""
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    assert front.get("/staff/alerts.json").get_json()["open"] == 1
    clock.advance(minutes=2)
    staff_post(front, f"/staff/visits/{visit}/acknowledge", {"note": NOTE})
    assert front.get("/staff/alerts.json").get_json()["open"] == 0

    clock.advance(minutes=1)
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})

    assert front.get("/staff/alerts.json").get_json()["open"] == 1  # the board hears of it
    alert = alert_of(app, visit)
    assert alert.acknowledged_at is None and alert.escalated_at is None
    assert alert.created_at.strftime("%H:%M") == "09:03"  # raised anew: escalation counts
    [entry] = audited(app, "alert_reopened")
    assert entry["visit_id"] == visit and entry["actor"] == "patient"

    patient.post("/review", {"action": "submit"})
    html = psychiatrist.get(f"/staff/visits/{visit}/summary").get_data(as_text=True)
    banner = html.split('class="banner"')[1].split("</div>")[0]
    assert "the patient answered “Nearly every day”" in banner
    assert (
        "An earlier alert was acknowledged at 9:02\u202fAM by Fran Desk, before a worse answer "
        "opened it again." in banner
    )
    assert f"Note: {NOTE}" in banner
    assert "Alert not yet acknowledged." in banner  # the worse answer is nobody's yet
    text = psychiatrist.get(f"/staff/visits/{visit}/summary.txt").get_data(as_text=True)
    assert "An earlier alert was acknowledged at" in text and "Alert not yet acknowledged." in text

    report = psychiatrist.get("/staff/safety-report?day=2026-11-25").get_data(as_text=True)
    assert "Before a worse answer: 9:02\u202fAM by Fran Desk" in report
    assert "Not acknowledged" in report
    rows = list(
        csv.DictReader(
            io.StringIO(
                psychiatrist.get("/staff/safety-report.csv?day=2026-11-25").get_data(as_text=True)
            )
        )
    )
    # Each worrying answer with the acknowledgement that answered it: the first was seen
    # at the desk, the worse one after it by nobody yet (it was "acknowledged" before).
    assert [(r["answer"], r["still_open"], r["acknowledged_by"]) for r in rows] == [
        ("several_days", "no", "Fran Desk"),
        ("nearly_every_day", "yes", ""),
    ]

    staff_post(psychiatrist, f"/staff/visits/{visit}/acknowledge", {"note": "Seen now"})
    banner = (
        psychiatrist.get(f"/staff/visits/{visit}/summary")
        .get_data(as_text=True)
        .split('class="banner"')[1]
        .split("</div>")[0]
    )
    assert "An earlier alert was acknowledged at 9:02" in banner
    assert "Alert acknowledged at 9:03\u202fAM by Dr. Lee." in banner


def test_the_same_or_a_milder_answer_again_keeps_the_acknowledgement(app, clock):
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "more_than_half"})
    staff_post(front, f"/staff/visits/{visit}/acknowledge")
    for value in ("not_at_all", "several_days", "more_than_half"):
        clock.advance(minutes=1)
        patient.post("/step/10", {"action": "next", "S1": value})
    assert alert_of(app, visit).acknowledged_at is not None
    assert front.get("/staff/alerts.json").get_json()["open"] == 0
    assert audited(app, "alert_reopened") == []


def test_the_same_answer_passed_again_keeps_the_acknowledgement(app, clock):
    """From a second reading: "Several days" acknowledged, then the safety screen passed
    again with the same answer (the review's Change, Back, a language switch) reopened
    the alert, as if a worse answer had come."""
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    clock.advance(minutes=1)
    staff_post(front, f"/staff/visits/{visit}/acknowledge")
    for action in ("next", "back", "lang"):
        clock.advance(minutes=1)
        patient.post("/step/10", {"action": action, "S1": "several_days", "lang": "es"})
    assert alert_of(app, visit).acknowledged_at is not None
    assert front.get("/staff/alerts.json").get_json()["open"] == 0
    assert audited(app, "alert_reopened") == []


def test_a_button_from_before_the_alert_opened_again_acknowledges_nothing(app, clock):
    """From a second reading: B's board showed the first alert; A acknowledged it; a worse
    answer opened it again; B's old button then acknowledged the new alert unseen."""
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    stale = front.get("/staff/").get_data(as_text=True)  # B's board, the first alert
    raised = re.search(r'name="raised" value="([^"]+)"', stale).group(1)
    staff_post(front, f"/staff/visits/{visit}/acknowledge")  # A acknowledges
    clock.advance(minutes=1)
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})  # opened again
    staff_post(front, f"/staff/visits/{visit}/acknowledge", {"raised": raised})  # B's button
    assert alert_of(app, visit).acknowledged_at is None
    board = front.get("/staff/").get_data(as_text=True)
    assert "Not acknowledged: a worse answer opened this alert again" in board
    fresh = re.search(r'name="raised" value="([^"]+)"', board).group(1)
    assert fresh != raised
    # The board script builds the same form from board.json.
    [listed] = front.get("/staff/board.json").get_json()["alerts"]
    assert listed["raised"] == fresh
    staff_post(front, f"/staff/visits/{visit}/acknowledge", {"raised": fresh})
    assert alert_of(app, visit).acknowledged_at is not None


def test_an_email_on_its_way_when_the_alert_opened_again_is_not_counted_for_it(app, clock):
    """From a second reading: the on-call e-mail of the first alert was claimed and sent
    while the desk acknowledged and a worse answer opened the alert again; the send was
    recorded on the reopened alert, which then never got an e-mail of its own."""
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    clock.advance(minutes=10)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        with storage.write(db):
            storage.mark_escalated(db, alert_of(app, visit).id, clock())
        claimed, attempt = escalation.claim_mail(db, clock())  # the loop starts sending
        assert claimed.visit_id == visit and attempt == 1
    staff_post(front, f"/staff/visits/{visit}/acknowledge")  # meanwhile: acknowledged,
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})  # opened again
    with closing(storage.connect(app.config["DATABASE"])) as db, storage.write(db):
        storage.escalation_mail_sent(db, claimed.id, clock())  # the old send finishes
    reopened = alert_of(app, visit)
    assert reopened.acknowledged_at is None and reopened.mail_sent_at is None
    assert reopened.mail_attempts == 0  # its own e-mail, from its first try, when escalated


def figures(client, day) -> dict[str, str]:
    page = client.get(f"/staff/safety-report?day={day}").get_data(as_text=True)
    return dict(re.findall(r'<dd data-figure="(\w+)">([^<]*)</dd>', page))


def test_the_report_keeps_counting_the_alert_before_it_opened_again(app, clock, psychiatrist):
    """From a second reading: an alert raised at 22:50, escalated and acknowledged at
    23:30 (40 minutes), then opened again at midnight by a worse answer, vanished from the
    report of its own day (no alert, nothing escalated), and on one day the first cycle's
    minutes to acknowledge were no longer counted."""
    clock.advance(hours=13, minutes=50)  # 22:50
    front = desk(app)
    invitation, patient = at_safety(app, when=datetime(2026, 11, 26, 10, 0))
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    clock.advance(minutes=20)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert escalation.escalate_due(db, clock(), {"escalate_after_minutes": 5}) == [visit]
    clock.advance(minutes=20)  # 23:30
    assert login(front, "fran.desk@example.org").status_code == 302  # past the idle limit
    staff_post(front, f"/staff/visits/{visit}/acknowledge")
    clock.advance(minutes=30)  # midnight: the 26th
    patient.open(invitation.token)  # back after a while
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})
    assert alert_of(app, visit).acknowledged_at is None
    assert login(psychiatrist, "dr@example.org").status_code == 302

    before = figures(psychiatrist, "2026-11-25")
    assert before == {
        "alerts": "1",
        "acknowledged": "1",
        "open": "0",
        "escalated": "1",
        "median": "40",
        "longest": "40",
    }
    day = psychiatrist.get("/staff/safety-report?day=2026-11-25").get_data(as_text=True)
    assert "RE-1" in day and "Before a worse answer: 11:30\u202fPM by Fran Desk" in day
    after = figures(psychiatrist, "2026-11-26")
    assert (after["alerts"], after["open"], after["acknowledged"]) == ("1", "1", "0")

    clock.advance(minutes=10)  # the same day: both cycles count
    assert login(front, "fran.desk@example.org").status_code == 302
    staff_post(front, f"/staff/visits/{visit}/acknowledge")
    invitation2, patient2 = at_safety(app, ref="RE-2", when=datetime(2026, 11, 26, 10, 0))
    patient2.post("/step/10", {"action": "next", "S1": "several_days"})
    clock.advance(minutes=4)
    staff_post(front, f"/staff/visits/{invitation2.visit_id}/acknowledge")
    clock.advance(minutes=1)
    patient2.post("/step/10", {"action": "next", "S1": "more_than_half"})
    clock.advance(minutes=2)
    staff_post(front, f"/staff/visits/{invitation2.visit_id}/acknowledge")
    assert login(psychiatrist, "dr@example.org").status_code == 302
    same_day = figures(psychiatrist, "2026-11-26")
    # RE-1's second cycle (10 min), RE-2's two (4 and 2 min).
    assert (same_day["alerts"], same_day["acknowledged"]) == ("3", "3")
    assert (same_day["median"], same_day["longest"]) == ("4", "10")
    line = psychiatrist.get("/staff/board.json?day=2026-11-26").get_json()["figures"]
    assert line.startswith("Today's alerts: 3 · acknowledged in 4 min (median), longest 10")


def test_a_visit_with_an_open_alert_cannot_be_cancelled(app, clock):
    """As the walk found it: cancelling took the visit's open alert off the board and out
    of escalation, and nobody could acknowledge it any more."""
    front = desk(app)
    invitation, patient = at_safety(app)
    visit = invitation.visit_id
    patient.post("/step/10", {"action": "next", "S1": "nearly_every_day"})
    page = front.get(f"/staff/visits/{visit}/invitation").get_data(as_text=True)
    assert "Cancel invitation" not in page
    assert "This visit has a safety alert nobody has acknowledged yet" in page

    response = staff_post(front, f"/staff/visits/{visit}/cancel")  # an old page's button
    assert response.status_code == 302
    page = front.get(f"/staff/visits/{visit}/invitation").get_data(as_text=True)
    assert 'class="error-summary" role="alert">This visit has a safety alert' in page
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert storage.get_visit(db, visit).status != "cancelled"
    assert front.get("/staff/alerts.json").get_json()["open"] == 1
    assert audited(app, "invitation_cancelled") == []

    staff_post(front, f"/staff/visits/{visit}/acknowledge", {"note": "Spoke with him"})
    staff_post(front, f"/staff/visits/{visit}/cancel")
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert storage.get_visit(db, visit).status == "cancelled"
