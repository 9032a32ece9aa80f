"""The board's progress never tells the front desk an answer. The phone counts its
screens ("Step 2 of 12"), and a visit's answers change how many it meets (M0 "No" leaves
the medicine screens out); the board counts the questionnaire's parts (its sections:
"part 2 of 8"), the same for every visit asked the same measures, and names the part the
patient's furthest screen is in."""

from __future__ import annotations

import re

from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from tests.conftest import Patient, create_user, login, make_invitation

Q = questionnaire.default()
PART = re.compile(r"\(part (\d+) of (\d+)\)")


def board_progress(client, patient_ref: str) -> str:
    """The progress text of this patient's row on the board, as the front desk reads it;
    the board's JSON (which refreshes the page) must say the same."""
    html = client.get("/staff/").get_data(as_text=True)
    row = next(r for r in html.split("<tr ")[1:] if f'data-field="patient">{patient_ref}' in r)
    text = row.split('data-field="progress">', 1)[1].split("</span>", 1)[0]
    rows = client.get("/staff/board.json").get_json()["visits"]
    [seen] = [r for r in rows if r["patient_ref"] == patient_ref]
    assert text == (f"({seen['progress']})" if seen["progress"] else "")
    return text


def next_screen(phone: Patient, page, data: dict | None = None):
    """Next on the screen shown, with `data` as its answers."""
    screen = page.request.args.get("screen", "1")
    return phone.post(page.request.full_path, {"action": "next", "screen": screen, **(data or {})})


def walk_to(phone: Patient, page, item_id: str):
    """On, screen by screen, to the one that asks `item_id`."""
    for _ in range(40):
        if f'name="{item_id}"' in page.get_data(as_text=True):
            return page
        page = next_screen(phone, page)
    raise AssertionError(f"{item_id} never shown")


def started(app, ref: str, measures=()) -> tuple[Patient, object]:
    """A patient who has pressed Start, and the first screen their phone shows."""
    invitation = make_invitation(app, patient_ref=ref, measures=measures)
    phone = Patient(app.test_client())
    return phone, phone.start(invitation.token)


def test_the_board_shows_the_same_part_whatever_the_patient_answered(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    yes_phone, yes_page = started(app, "YES-1")
    no_phone, no_page = started(app, "NO-2")
    assert board_progress(client, "YES-1") == board_progress(client, "NO-2") == "(part 1 of 8)"
    yes_page = next_screen(yes_phone, yes_page, {"M0": "yes"})
    no_page = next_screen(no_phone, no_page, {"M0": "no"})
    # The phones now count differently ("Step 2 of 12", "Step 2 of 10")...
    assert "Step 2 of 12" in yes_page.get_data(as_text=True)
    assert "Step 2 of 10" in no_page.get_data(as_text=True)
    # ...and on the same question, the board reads the same for both: no answer shows.
    for item_id in ("M6", "P2", "F1"):
        yes_page = walk_to(yes_phone, yes_page, item_id)
        no_page = walk_to(no_phone, no_page, item_id)
        part = patient_forms.page_of(Q, item_id).number
        assert board_progress(client, "YES-1") == f"(part {part} of 8)"
        assert board_progress(client, "NO-2") == f"(part {part} of 8)"


def test_a_measure_counts_as_a_part_only_where_it_is_offered(app, client):
    """The front desk chose the measures when inviting: counting them tells nothing."""
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    started(app, "PHQ-1", measures=("phq9",))
    started(app, "NONE-2")
    assert PART.fullmatch(board_progress(client, "PHQ-1")).groups() == ("1", "9")
    assert PART.fullmatch(board_progress(client, "NONE-2")).groups() == ("1", "8")


def test_the_review_reads_checking_answers(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    phone, page = started(app, "DONE-1")
    for _ in range(40):
        if page.request.path == "/review":
            break
        page = next_screen(phone, page)
    assert page.request.path == "/review"
    assert board_progress(client, "DONE-1") == "(checking answers)"
