"""A section on several phone screens: how the definition is shared out, and how Next,
Back, "Add another medicine" and the return to review move between the screens."""

from __future__ import annotations

import pytest

from patientapp.db import storage
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire.model import parse
from tests.conftest import checked


def stored_answers(app, visit_id):
    db = storage.connect(app.config["DATABASE"])
    try:
        return storage.answers_for(db, visit_id)[0]
    finally:
        db.close()


def test_the_medicine_list_stands_on_a_screen_of_its_own():
    medicines = questionnaire.default().sections[1]
    screens = patient_forms.screens(medicines)
    # M0 decides whether the rest is asked, so it ends its screen: saved before they show.
    assert [item.id for item in screens[0]] == ["M0"]
    assert [item.id for item in screens[1]] == ["M1"]
    assert [i.id for s in screens[2:] for i in s] == [i.id for i in medicines.items[2:]]


def test_every_screen_of_the_shipped_questionnaire_fits_its_share():
    for section in questionnaire.default().sections:
        screens = patient_forms.screens(section)
        assert [i for s in screens for i in s] == list(section.items)  # order kept
        for screen in screens:
            rows = sum(patient_forms.screen_rows(item) for item in screen)
            assert rows <= patient_forms.SCREEN_ROWS or len(screen) == 1, (section.id, rows)


def _definition(items):
    sections = [{"id": "s", "title": "S", "items": items}]
    summary = {"today": [item["id"] for item in items]}  # each item shown once on the page
    return parse({"version": "t", "sections": sections, "summary": summary})


def test_a_long_section_is_shared_out_evenly_in_order(monkeypatch):
    monkeypatch.setattr(patient_forms, "SCREEN_ROWS", 22.0)
    choices = [{"id": f"c{n}", "label": f"A choice of some length {n}"} for n in range(8)]
    items = [
        {"id": f"Q{n}", "type": "multi", "prompt": "?", "short": "q", "choices": choices}
        for n in range(4)
    ]
    items.append({"id": "T", "type": "text", "prompt": "?", "short": "t", "max_length": 300})
    items.append(
        {
            "id": "Y",
            "type": "yesno_text",
            "prompt": "?",
            "short": "y",
            "max_length": 40,
            "text_prompt": "?",
            "choices": [{"id": "yes", "label": "Yes"}],
        }
    )
    items.append(
        {
            "id": "S",
            "type": "scale",
            "prompt": "?",
            "short": "s",
            "min": 0,
            "max": 4,
            "intro": "Hello.",
        }
    )
    section = _definition(items).sections[0]
    screens = patient_forms.screens(section)
    assert len(screens) == 3
    assert [i.id for s in screens for i in s] == [i["id"] for i in items]
    loads = [sum(patient_forms.screen_rows(i) for i in s) for s in screens]
    assert max(loads) <= patient_forms.SCREEN_ROWS


def test_an_empty_section_is_one_empty_screen():
    assert patient_forms.screens(_definition([]).sections[0]) == ((),)


def _to_step_2(patient, invitation):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})


def test_next_and_back_move_screen_by_screen(app, patient, invitation):
    _to_step_2(patient, invitation)
    last = len(patient_forms.screens(questionnaire.default().sections[1]))
    assert last >= 4
    page = patient.post("/step/2", {"action": "next", "screen": "1", "M0": "yes"})
    assert page.request.full_path == "/step/2?screen=2"
    page = patient.post(
        "/step/2?screen=2", {"action": "next", "screen": "2", "M1-0-name": "Lithium"}
    )
    assert page.request.full_path == "/step/2?screen=3"
    html = page.get_data(as_text=True)
    assert 'name="M2"' in html and 'name="M1-0-name"' not in html
    assert 'name="screen" value="3"' in html
    page = patient.post("/step/2?screen=3", {"action": "next", "screen": "3", "M2": "mixed"})
    assert page.request.full_path == "/step/2?screen=4"
    for screen in range(4, last + 1):
        page = patient.post(f"/step/2?screen={screen}", {"action": "next", "screen": screen})
    assert page.request.path == "/step/3"
    # Back from step 3 lands on the last screen of step 2, then screen by screen.
    page = patient.post("/step/3", {"action": "back"})
    assert page.request.full_path == f"/step/2?screen={last}"
    for screen in range(last, 3, -1):
        page = patient.post(f"/step/2?screen={screen}", {"action": "back", "screen": screen})
        assert page.request.full_path == f"/step/2?screen={screen - 1}"
    assert checked(page.get_data(as_text=True), "M2") == ["mixed"]
    answers = stored_answers(app, invitation.visit_id)
    # Each screen saved only its own questions.
    assert answers["M1"] == [{"name": "Lithium", "feeling": None}] and answers["M2"] == "mixed"


def test_a_screen_saves_only_its_own_questions(app, patient, invitation):
    _to_step_2(patient, invitation)
    patient.post("/step/2?screen=3", {"action": "next", "screen": "3", "M2": "mixed"})
    patient.post("/step/2?screen=2", {"action": "next", "screen": "2", "M1-0-name": "Lithium"})
    assert stored_answers(app, invitation.visit_id)["M2"] == "mixed"


@pytest.mark.parametrize("asked", ["0", "9", "x"])
def test_a_screen_that_does_not_exist_shows_the_first(patient, invitation, asked):
    _to_step_2(patient, invitation)
    html = patient.client.get(f"/step/2?screen={asked}").get_data(as_text=True)
    assert 'name="screen" value="1"' in html and 'name="M0"' in html


def test_add_another_medicine_stays_on_its_screen_and_adds_one_row(patient, invitation):
    _to_step_2(patient, invitation)
    page = patient.post(
        "/step/2?screen=2", {"action": "add", "screen": "2", "M1-0-name": "Lithium"}
    )
    assert page.request.path == "/step/2" and page.request.args["screen"] == "2"
    html = page.get_data(as_text=True)
    assert 'name="M1-1-name"' in html and 'name="M1-2-name"' not in html


def test_from_review_each_screen_offers_the_way_back(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 9):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/review", {"action": "edit-2", "in_person": []})
    html = page.get_data(as_text=True)
    assert 'name="screen" value="1"' in html and 'value="review"' in html
    page = patient.post(
        "/step/2?return=review", {"action": "next", "screen": "1", "return": "review"}
    )
    assert page.request.full_path == "/step/2?screen=2&return=review"
    page = patient.post(
        "/step/2?screen=2&return=review",
        {"action": "review", "screen": "2", "return": "review"},
    )
    assert page.request.path == "/review"
    # Back on a later screen goes to the screen before, keeping the way back to review.
    page = patient.post(
        "/step/2?screen=2&return=review", {"action": "back", "screen": "2", "return": "review"}
    )
    assert page.request.full_path == "/step/2?return=review"
