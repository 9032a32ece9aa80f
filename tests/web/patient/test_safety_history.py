"""Every saved safety answer is kept: a worrying one changed or skipped keeps the banner."""

from __future__ import annotations

import re
from contextlib import closing

import pytest

from patientapp.db import storage
from tests.conftest import Patient, create_user, login, make_invitation, staff_post

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
        patient.post("/step/10", {"action": "next", **data})
    patient.post("/review", {"action": "submit"})
    return invitation


def history(app, visit_id):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [
            (row.value, row.saved_at.strftime("%H:%M"))
            for row in storage.safety_answers(db, visit_id)
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
    assert "the patient answered “Nearly every day”" in text  # the most severe, not the last
    assert "the patient answered “Several days”" not in text
    assert "First answered “Nearly every day” at 9:02" in text
    assert "Changed to “Several days” at 9:04" in text


@pytest.mark.parametrize(
    ("saves", "named", "at"),
    [
        (("nearly_every_day", "several_days"), "Nearly every day", "9:02"),
        (("several_days", "more_than_half", "not_at_all"), "More than half the days", "9:04"),
        (("several_days", "nearly_every_day", "several_days"), "Nearly every day", "9:04"),
        (("more_than_half", "several_days", "more_than_half"), "More than half the days", "9:02"),
    ],
)
def test_headline_names_the_most_severe_value_with_its_time(
    app, clock, psychiatrist, saves, named, at
):
    invitation = answer_safety(app, clock, *({"S1": value} for value in saves))
    export = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt")
    text = export.get_data(as_text=True)
    assert re.search(f"SAFETY: the patient answered “{named}” at {at}\\W+AM to thoughts", text)
    with app.test_request_context():
        view = summary_view(app, invitation.visit_id)
    assert (view.safety_answer, view.safety_answer_time) == (named, f"{at}\u202fAM")
    assert view.safety_headline.startswith(f"the patient answered “{named}” at {at}\u202fAM to ")
    page = banner(psychiatrist, invitation.visit_id)  # the page: the headline, then the history
    headline = page.index(f"the patient answered “{named}” at {at}")
    assert headline < page.index("First answered")


def summary_view(app, visit_id):
    from patientapp.questionnaire import model as questionnaire
    from patientapp.summary import view as summary_view

    with closing(storage.connect(app.config["DATABASE"])) as db:
        visit = storage.get_visit(db, visit_id)
        answers = storage.answers_for(db, visit_id)[0]
        return summary_view.build(
            visit=visit,
            answers=answers,
            in_person=set(),
            previous=None,
            previous_answers=None,
            previous_in_person=None,
            alert=None,
            clinic="Clinic",
            questionnaire=questionnaire.default(),
            reader_language="en",
            safety_history=storage.safety_answers(db, visit_id),
        )


def on_safety_screen(app, clock, ref="H-1"):
    invitation = make_invitation(app, patient_ref=ref)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    clock.advance(minutes=2)
    return invitation, patient


def test_back_with_nothing_ticked_records_nothing(app, clock):
    invitation, patient = on_safety_screen(app, clock)
    page = patient.post("/step/10", {"action": "back"})
    assert "/step/7" in page.request.path
    assert history(app, invitation.visit_id) == []


def test_back_after_an_answer_with_nothing_ticked_adds_no_skip(app, clock):
    invitation, patient = on_safety_screen(app, clock)
    patient.post("/step/10", {"action": "next", "S1": "several_days"})
    clock.advance(minutes=2)
    patient.post("/step/10", {"action": "back"})
    assert history(app, invitation.visit_id) == [("several_days", "09:02")]


def test_language_switch_with_nothing_ticked_records_nothing(app, clock):
    if "es" not in app.config["OFFERED_LANGUAGES"]:
        pytest.skip("needs the Spanish catalog")
    invitation, patient = on_safety_screen(app, clock)
    page = patient.post("/step/10", {"lang": "es"})
    assert page.request.path == "/step/10" and 'lang="es"' in page.get_data(as_text=True)
    assert history(app, invitation.visit_id) == []


def test_next_with_nothing_ticked_records_declined_once(app, clock):
    invitation, patient = on_safety_screen(app, clock)
    patient.post("/step/10", {"action": "next"})
    assert history(app, invitation.visit_id) == [("declined", "09:02")]
    clock.advance(minutes=2)
    patient.post("/step/10", {"action": "next"})
    assert history(app, invitation.visit_id) == [("declined", "09:02")]


def test_prefer_not_to_say_then_back_is_declined(app, clock):
    invitation, patient = on_safety_screen(app, clock)
    patient.post("/step/10", {"action": "back", "S1": ""})
    assert history(app, invitation.visit_id) == [("declined", "09:02")]


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
