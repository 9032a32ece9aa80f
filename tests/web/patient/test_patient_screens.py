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


def test_the_medicine_list_stands_on_a_screen_of_its_own_after_m0():
    q = questionnaire.default()
    pages = patient_forms.pages(q.sections)
    ids = [[item.id for item in page.items] for page in pages]
    # M0 decides whether the medicine questions are asked, so it ends its screen (saved
    # before they show); the list stands alone; the safety question too.
    m0 = next(n for n, page in enumerate(ids) if "M0" in page)
    assert ids[m0][-1] == "M0" and ids[m0 + 1] == ["M1"]
    assert ["S1"] in ids


def test_screens_cross_sections_and_fit_their_share():
    q = questionnaire.default()
    pages = patient_forms.pages(q.sections)
    assert [i.id for p in pages for i in p.items] == q.item_ids  # every question, in order
    assert len(pages) < sum(len(patient_forms.screens(s)) or 1 for s in q.sections) + 1
    crossing = [p for p in pages if len({q.items[i.id].section_id for i in p.items}) > 1]
    assert crossing  # fewer, fuller screens: a screen may end a section and begin the next
    for page in pages:
        rows = sum(patient_forms.screen_rows(item) for item in page.items)
        rows += patient_forms.HEADING_ROWS * (
            len({q.items[i.id].section_id for i in page.items}) - 1
        )
        assert rows <= patient_forms.SCREEN_ROWS or len(page.items) == 1, (page, rows)


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


def _url(item_id: str, returning: bool = False) -> str:
    page = patient_forms.page_of(questionnaire.default(), item_id)
    query = ([f"screen={page.screen}"] if page.screen > 1 else []) + (
        ["return=review"] if returning else []
    )
    return f"/step/{page.number}" + ("?" + "&".join(query) if query else "")


def _screen(item_id: str) -> str:
    return str(patient_forms.page_of(questionnaire.default(), item_id).screen)


def test_next_and_back_move_screen_by_screen(app, patient, invitation):
    patient.start(invitation.token)
    page = patient.post("/step/1", {"action": "next", "screen": _screen("M0"), "M0": "yes"})
    assert page.request.full_path.rstrip("?") == _url("M1")
    page = patient.post(
        _url("M1"), {"action": "next", "screen": _screen("M1"), "M1-0-name": "Lithium"}
    )
    assert page.request.full_path.rstrip("?") == _url("M2")
    html = page.get_data(as_text=True)
    assert 'name="M2"' in html and 'name="M1-0-name"' not in html
    assert f'name="screen" value="{_screen("M2")}"' in html
    page = patient.post(_url("M2"), {"action": "next", "screen": _screen("M2"), "M2": "mixed"})
    assert page.request.full_path.rstrip("?") == _url("M5")
    # Back, screen by screen, to the medicine list.
    page = patient.post(_url("M5"), {"action": "back", "screen": _screen("M5")})
    assert page.request.full_path.rstrip("?") == _url("M2")
    assert checked(page.get_data(as_text=True), "M2") == ["mixed"]
    page = patient.post(_url("M2"), {"action": "back", "screen": _screen("M2"), "M2": "mixed"})
    assert page.request.full_path.rstrip("?") == _url("M1")
    answers = stored_answers(app, invitation.visit_id)
    # Each screen saved only its own questions.
    assert answers["M1"] == [{"name": "Lithium", "feeling": None}] and answers["M2"] == "mixed"


def test_a_screen_saves_only_its_own_questions(app, patient, invitation):
    _to_step_2(patient, invitation)
    patient.post(_url("M2"), {"action": "next", "screen": _screen("M2"), "M2": "mixed"})
    patient.post(_url("M1"), {"action": "next", "screen": _screen("M1"), "M1-0-name": "Lithium"})
    assert stored_answers(app, invitation.visit_id)["M2"] == "mixed"


@pytest.mark.parametrize("asked", ["0", "9", "x"])
def test_a_screen_that_does_not_exist_shows_the_first(patient, invitation, asked):
    _to_step_2(patient, invitation)
    html = patient.client.get(f"/step/2?screen={asked}").get_data(as_text=True)
    assert 'name="screen" value="1"' in html and 'name="M1-0-name"' in html


def test_a_step_whose_questions_sit_on_an_earlier_screen_opens_that_screen(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    q = questionnaire.default()
    for number, section in enumerate(q.sections, start=1):
        if patient_forms.screens(section):
            continue
        page = patient.client.get(f"/step/{number}", follow_redirects=True)
        assert page.request.full_path.rstrip("?") == _url(section.items[0].id)
        assert f'name="{section.items[0].id}"' in page.get_data(as_text=True)


def test_add_another_medicine_stays_on_its_screen_and_adds_one_row(patient, invitation):
    _to_step_2(patient, invitation)
    page = patient.post(
        _url("M1"), {"action": "add", "screen": _screen("M1"), "M1-0-name": "Lithium"}
    )
    assert page.request.full_path.split("#")[0].rstrip("?") == _url("M1")
    html = page.get_data(as_text=True)
    assert 'name="M1-1-name"' in html and 'name="M1-2-name"' not in html


def test_from_review_each_screen_offers_the_way_back(patient, invitation):
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    # "Change" on the medicines: the screen of their first question, M0 (step 1's).
    page = patient.post("/review", {"action": "edit-2", "in_person": []})
    html = page.get_data(as_text=True)
    assert page.request.full_path == _url("M0", returning=True)
    assert 'name="M0"' in html and 'value="review"' in html
    assert ">Next</button>" in html  # the medicines go on after this screen
    page = patient.post(
        _url("M0", True), {"action": "next", "screen": _screen("M0"), "return": "review"}
    )
    assert page.request.full_path == _url("M1", returning=True)
    page = patient.post(
        _url("M1", True), {"action": "review", "screen": _screen("M1"), "return": "review"}
    )
    assert page.request.path == "/review"
    # Back on a later screen goes to the screen before, keeping the way back to review.
    page = patient.post(
        _url("M1", True), {"action": "back", "screen": _screen("M1"), "return": "review"}
    )
    assert page.request.full_path == _url("M0", returning=True)
    # The last screen holding the medicines goes back to the review.
    page = patient.client.get(_url("M6", returning=True))
    assert 'class="primary">Back to review<' in page.get_data(as_text=True)


def test_a_section_that_begins_part_way_down_a_screen_shows_its_title_there(patient, invitation):
    """A screen may end one section and begin the next: the next one's title stands just
    before its first question, and the page's own heading is the section it starts in."""
    q = questionnaire.default()
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    crossing = [
        page
        for page in patient_forms.pages(q.sections)
        if len({q.items[i.id].section_id for i in page.items}) > 1
    ]
    assert crossing
    for page in crossing:
        url = f"/step/{page.number}" + (f"?screen={page.screen}" if page.screen > 1 else "")
        html = patient.client.get(url).get_data(as_text=True)
        first = next(i for i in page.items if q.items[i.id].section_id != page.items[0].section_id)
        title = next(s.title for s in q.sections if s.id == first.section_id)
        heading = f'<h2 class="section-start">{title}</h2>'
        assert heading in html, url
        assert html.index(heading) < html.index(f'name="{first.id}'), url
        assert f"<h1>{q.sections[page.number - 1].title}</h1>" in html
