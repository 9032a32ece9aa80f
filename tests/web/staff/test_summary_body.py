"""The summary body shows answers only: held items read "to discuss in person", items in
sections never reached read "not reached", skipped items are named once, in the footer."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

import pytest

from patientapp.db import storage
from tests.conftest import FULL_ANSWERS, Patient, finish_visit, make_invitation
from tests.web.staff.test_staff import summary_on_page


def rows(page: dict) -> dict[str, str]:
    return {label: answer for _title, block in page["blocks"] for label, answer in block}


def summary(client, visit_id) -> tuple[dict, str]:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    text = client.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    return summary_on_page(html), text


def test_held_items_read_to_discuss_in_person(app, psychiatrist):
    invitation = finish_visit(app, in_person=["M4", "H1"])
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    assert body["How much they need it to stay well"] == "to discuss in person"
    assert body["If treatment worked well"] == "to discuss in person"
    assert body["Stance"] == "to discuss in person"  # its need part is held
    assert "- How much they need it to stay well: to discuss in person" in text
    assert "Skipped" not in " ".join(body.values())


def test_skipped_items_are_left_out_of_the_body_and_named_in_the_footer(app, psychiatrist):
    invitation = finish_visit(app, {**FULL_ANSWERS, 3: {"P1": "chose_to_skip"}})
    page, text = summary(psychiatrist, invitation.visit_id)
    assert "Stopped a medicine on their own before" not in rows(page)
    assert "Last two weeks" in rows(page)
    assert text.count("Stopped a medicine on their own before") == 1
    assert "Skipped: Stopped a medicine on their own before" in text


def test_a_visit_kept_from_before_reads_not_reached_by_section(app, psychiatrist):
    """Before the furthest screen was kept (reached_item), a visit reads by section."""
    invitation = finish_visit(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute(
            "UPDATE visits SET furthest_step = 4, reached_item = NULL WHERE id = ?",
            (invitation.visit_id,),
        )
        db.execute(
            "DELETE FROM answers WHERE visit_id = ? AND item_id IN ('W1', 'W2', 'H1', 'H2')",
            (invitation.visit_id,),
        )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    assert body["What causes their difficulties"] == "not reached"
    assert body["Ease of voicing doubts"] == "not reached"
    assert body["People close to them and medicine"] != "not reached"
    assert "- What the medicine does: not reached" in text
    footer = [line for line in text.splitlines() if line.startswith("Skipped:")]
    assert not any("What causes their difficulties" in line for line in footer)


def test_questions_on_a_screen_never_shown_are_not_reached_even_in_a_begun_section(
    app, psychiatrist
):
    """v3, reached is per screen: the furthest screen shown ended with M4 (the pages keep
    its last question, visits.save_step), so M2-M4 were seen and, left empty, skipped;
    M5 and M6 share the medicines section but were never on a screen: not reached."""
    from patientapp.questionnaire import model as questionnaire

    q = questionnaire.default()
    invitation = finish_visit(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute(
            "UPDATE visits SET furthest_step = 2, reached_item = 'M4' WHERE id = ?",
            (invitation.visit_id,),
        )
        db.execute(
            "DELETE FROM answers WHERE visit_id = ? AND item_id IN ('M2', 'M3', 'M4', 'M5', 'M6')",
            (invitation.visit_id,),
        )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    assert body[q.items["M5"].short] == "not reached"
    assert body[q.items["M6"].short] == "not reached"
    skipped = next(line for line in text.splitlines() if line.startswith("Skipped:"))
    assert q.items["M2"].short in skipped and q.items["M3"].short in skipped
    assert q.items["M5"].short not in skipped and q.items["M6"].short not in skipped


def test_the_pages_keep_the_last_question_of_the_furthest_screen_shown(app, patient):
    """Each move keeps the last question of the screen it shows, never going back: the
    first screen on Start, the medicine list's after Next, still that after Back."""
    from patientapp.patient import forms as patient_forms
    from patientapp.questionnaire import model as questionnaire
    from tests.conftest import make_invitation

    q = questionnaire.default()
    invitation = make_invitation(app)

    def kept() -> str | None:
        with closing(storage.connect(app.config["DATABASE"])) as db:
            return storage.get_visit(db, invitation.visit_id).reached_item

    patient.start(invitation.token)
    assert kept() == patient_forms.pages(q.sections)[0].items[-1].id  # M0
    patient.post("/step/1", {"action": "next", "screen": "1", "M0": "yes"})
    assert kept() == "M1"
    m1 = patient_forms.page_of(q, "M1")
    patient.post(f"/step/{m1.number}", {"action": "next", "screen": str(m1.screen)})
    assert kept() == patient_forms.page_of(q, "M2").items[-1].id
    patient.post(f"/step/{m1.number}", {"action": "back", "screen": str(m1.screen)})
    assert kept() == patient_forms.page_of(q, "M2").items[-1].id  # Back never lowers it


NEW_IN_V2 = ("M6", "P3", "W3", "R4", "R5")
NEW_SHORTS = (
    "What else helps them stay well",
    "Daily life and relationships lately",
    "What bad feelings seem to be about",
    "Something about their care that was hard to say",
    "What they think their psychiatrist wants for them",
)


def test_a_visit_answered_under_2026_1_never_shows_the_new_items(app, psychiatrist):
    """Stored v2026.1 answers: the five items added in 2026.2 were never asked, so they
    are neither skipped nor not reached, on the page and in the text export."""
    invitation = finish_visit(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute(
            "UPDATE visits SET questionnaire_version = '2026.1', furthest_step = 6, "
            "reached_item = NULL WHERE id = ?",
            (invitation.visit_id,),
        )
        db.execute(
            "DELETE FROM answers WHERE visit_id = ? AND item_id IN "
            "('M6', 'P3', 'W3', 'R4', 'R5', 'T2', 'R1', 'R2', 'R3', 'S1')",
            (invitation.visit_id,),
        )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    for short in NEW_SHORTS:
        assert short not in body
        assert short not in text
    # The old items still read as before: skipped in the footer, not reached in the body.
    assert "Wants to talk about today" in " ".join(page["footer"])
    assert body["Ease of voicing doubts"] == "not reached"
    assert body["Last two weeks"] and body["Stance"].startswith("Need 8/10 · ")


def test_a_2026_2_visit_names_a_skipped_new_item(app, psychiatrist):
    invitation = finish_visit(app, {**FULL_ANSWERS, 3: {"P1": "chose_to_skip", "P2": ["cost"]}})
    _page, text = summary(psychiatrist, invitation.visit_id)
    assert "Skipped: Daily life and relationships lately" in text


def test_the_previous_visit_is_found_ignoring_case_and_spaces(app, clock):
    first = finish_visit(app, ref="rb 12")
    clock.advance(days=28)
    second = finish_visit(app, ref="RB12")
    with closing(storage.connect(app.config["DATABASE"])) as db:
        now = storage.get_visit(db, second.visit_id)
        previous = storage.previous_visit(db, now)
    assert previous is not None and previous.id == first.visit_id


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("ÉLO12", "élo12"),  # SQLite's UPPER leaves É alone: no match before v3
        ("\u03a9\u03bc\u03ad\u03b3\u03b1 7", "\u03c9\u03bc\u03ad\u03b3\u03b17"),  # Greek
        ("\uff32\uff22\uff11\uff12", "rb 12"),  # full-width RB12, from a CJK keyboard
        ("straße 1", "STRASSE1"),  # case folding, not lower-casing
    ],
)
def test_the_previous_visit_is_found_ignoring_case_in_every_script(app, clock, before, after):
    first = finish_visit(app, ref=before)
    clock.advance(days=28)
    second = finish_visit(app, ref=after)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        previous = storage.previous_visit(db, storage.get_visit(db, second.visit_id))
    assert previous is not None and previous.id == first.visit_id


def test_a_different_reference_is_not_the_previous_visit(app, clock):
    finish_visit(app, ref="ÉLO12")
    clock.advance(days=28)
    second = finish_visit(app, ref="ELO12")  # É is not E
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert storage.previous_visit(db, storage.get_visit(db, second.visit_id)) is None


def test_the_header_names_when_the_answers_came_in_as_the_visit_is_dated(app, psychiatrist, clock):
    """Sent on the visit's day: the time alone, beside the visit's date ("Visit: Nov 25,
    2026 · Completed: 9:00 AM"); sent the day before: the date written the same way."""
    same_day = finish_visit(app, ref="SAME-1")
    page, text = summary(psychiatrist, same_day.visit_id)
    assert page["meta"]["Visit"] == "Nov 25, 2026"
    assert page["meta"]["Completed"] == "9:00\u202fAM"
    assert "Visit: Nov 25, 2026 · Completed: 9:00\u202fAM" in text
    # A reminder's link, answered at home the evening before the visit.
    clock.moment = datetime(2026, 11, 24, 19, 5)
    day_before = make_invitation(app, patient_ref="EVE-1", when=datetime(2026, 11, 25, 10, 0))
    patient = Patient(app.test_client())
    patient.start(day_before.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next", **FULL_ANSWERS.get(number, {})})
    patient.post("/review", {"action": "submit"})
    page, text = summary(psychiatrist, day_before.visit_id)
    assert page["meta"]["Visit"] == "Nov 25, 2026"
    assert page["meta"]["Completed"] == "Nov 24, 2026, 7:05\u202fPM"
    assert "Completed: Nov 24, 2026, 7:05\u202fPM" in text
