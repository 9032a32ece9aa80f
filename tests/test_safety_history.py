"""Every saved safety answer is kept: a worrying one changed or skipped keeps the banner."""

from __future__ import annotations

from contextlib import closing

import pytest
from conftest import Patient, create_user, login, make_invitation, staff_post

from patientapp import storage

NOT_AT_ALL = {"S1": "not_at_all"}
SKIPPED: dict = {}


def answer_safety(app, clock, *saves, ref="H-1"):
    """A patient who reaches the safety question and saves each value in turn, two
    minutes apart, then sends; returns the invitation."""
    invitation = make_invitation(app, patient_ref=ref)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    for data in saves:
        clock.advance(minutes=2)
        patient.post("/step/8", {"action": "next", **data})
    patient.post("/review", {"action": "submit"})
    return invitation


def history(app, visit_id):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [
            (row["value"], row["saved_at"][11:16]) for row in storage.safety_answers(db, visit_id)
        ]


def banner(client, visit_id) -> str:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    assert html.count('class="banner"') == 1, "no safety banner"
    return html.split('class="banner"')[1].split("</div>")[0]


def test_every_change_is_kept_and_a_repeat_is_not(app, clock):
    invitation = answer_safety(
        app, clock, {"S1": "several_days"}, {"S1": "several_days"}, NOT_AT_ALL, SKIPPED
    )
    assert history(app, invitation.visit_id) == [
        ("several_days", "09:02"),
        ("not_at_all", "09:06"),
        ("declined", "09:08"),
    ]


def test_worrying_then_not_at_all_keeps_the_banner_and_says_so(app, clock, psychiatrist):
    invitation = answer_safety(app, clock, {"S1": "more_than_half"}, NOT_AT_ALL)
    text = banner(psychiatrist, invitation.visit_id)
    assert "the patient answered “More than half the days”" in text
    assert "First answered “More than half the days” at 9:02" in text
    assert "Changed to “Not at all” at 9:04" in text
    assert "Safety question: not endorsed" not in text


def test_worrying_then_skipped_keeps_the_banner_and_says_so(app, clock, psychiatrist):
    invitation = answer_safety(app, clock, {"S1": "nearly_every_day"}, SKIPPED)
    text = banner(psychiatrist, invitation.visit_id)
    assert "First answered “Nearly every day” at 9:02" in text
    assert "Skipped the question at 9:04" in text


def test_worrying_then_another_degree_names_both(app, clock, psychiatrist):
    invitation = answer_safety(app, clock, {"S1": "nearly_every_day"}, {"S1": "several_days"})
    text = banner(psychiatrist, invitation.visit_id)
    assert "the patient answered “Several days”" in text
    assert "First answered “Nearly every day” at 9:02" in text
    assert "Changed to “Several days” at 9:04" in text


@pytest.mark.parametrize(
    "saves", [(NOT_AT_ALL,), (SKIPPED, NOT_AT_ALL), (NOT_AT_ALL, SKIPPED)], ids=str
)
def test_never_worrying_shows_no_banner(app, clock, psychiatrist, saves):
    invitation = answer_safety(app, clock, *saves)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    assert 'class="banner"' not in html and "First answered" not in html
    assert 'class="safety-line safety-' in html


def test_one_worrying_answer_reads_as_before(app, clock, psychiatrist):
    invitation = answer_safety(app, clock, {"S1": "several_days"})
    text = banner(psychiatrist, invitation.visit_id)
    assert "Several days" in text and "First answered" not in text


def test_visit_stored_before_the_history_renders_as_before(app, clock, psychiatrist):
    invitation = answer_safety(app, clock, {"S1": "more_than_half"})
    other = answer_safety(app, clock, NOT_AT_ALL, ref="H-2")
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute("DELETE FROM safety_answers")
        db.conn.commit()
    text = banner(psychiatrist, invitation.visit_id)
    assert "More than half the days" in text and "First answered" not in text
    html = psychiatrist.get(f"/staff/visits/{other.visit_id}/summary").get_data(as_text=True)
    assert "Safety question: not endorsed" in html and 'class="banner"' not in html


def test_retracted_answer_keeps_the_alert_until_acknowledged(app, clock, client):
    invitation = answer_safety(app, clock, {"S1": "more_than_half"}, NOT_AT_ALL, SKIPPED)
    create_user(app, "dr@example.org", "psychiatrist", name="Dr. Lee")
    assert login(client, "dr@example.org").status_code == 302
    alerts = client.get("/staff/board.json").get_json()["alerts"]
    assert [a["patient_ref"] for a in alerts] == ["H-1"]
    text = banner(client, invitation.visit_id)
    assert "Acknowledge alert" in text
    export = client.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(as_text=True)
    assert "Changed to “Not at all” at 9:04" in export
    assert "Alert not yet acknowledged." in export
    clock.advance(minutes=3)
    staff_post(client, f"/staff/visits/{invitation.visit_id}/acknowledge")
    assert client.get("/staff/board.json").get_json()["alerts"] == []
    text = banner(client, invitation.visit_id)
    assert "Alert acknowledged at 9:09" in text and "by Dr. Lee." in text
    export = client.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(as_text=True)
    assert "SAFETY:" in export and "Alert acknowledged at 9:09" in export
    assert "First answered “More than half the days” at 9:02" in export
