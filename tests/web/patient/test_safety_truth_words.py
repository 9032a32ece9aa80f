"""What the page after a worrying safety answer says, and that it says it once.

Inside staffed hours the S1 screen promised that "the front desk is told right away so
someone can check on you": the page after the answer says that this has happened, and
where to turn if the patient cannot wait. In every case (staffed, at home, the clinic
closed; the default crisis text or the clinic's own) the crisis text is the one place
that says what to do when unsafe: no sentence of ours repeats it (templates/patient/
safety.html and _next.html), neither on the safety page nor after sending.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime

import pytest

from patientapp.db import storage
from tests.conftest import Patient, make_invitation

# Wednesday 25 November 2026 (the conftest clock's day): 09:00 is staffed, 23:00 is not.
EIGHT_TO_FIVE = [["08:00", "17:00"]] * 5 + [None, None]
WEDNESDAY_NIGHT = datetime(2026, 11, 25, 23, 0)
THURSDAY_VISIT = datetime(2026, 11, 26, 10, 0)

OWN_TEXT = "Call the Riverside crisis line: 555-0100"
# The default crisis text's own words, by day and outside the staffed hours.
DEFAULT_DAY = (
    "If you feel unsafe right now, or you might hurt yourself, tell the front desk right away "
    "or call your local emergency number."
)
DEFAULT_CLOSED = (
    "If you feel unsafe right now, or you might hurt yourself, call your local emergency "
    "number or a crisis line now."
)

TOLD = "The front desk has been told"
CLOSED_HEADING = "Nobody is at the front desk right now"
AWAY_HEADING = "The clinic has been told"
CHECK_ON_YOU = "Someone will come to check on you soon."
POINTER = "If you need help now, please do not wait: use the crisis help below."
POINTER_DESK = (
    "If you need help now, please do not wait: go to the front desk or use the crisis help below."
)
OLD_STAFFED = (
    "Please tell the front desk now",
    "Let the front desk know you would like to speak with someone soon.",
)
OLD_REPEAT = "If you are in danger, call your local emergency number now."
TAGS = re.compile(r"<[^>]+>")


def main_text(response) -> str:
    """The main part's text as read: no tags, entities decoded, one space between words."""
    assert response.status_code == 200, response.status_code
    page = response.get_data(as_text=True)
    main = page[page.index("<main") : page.index("</main>")]
    return " ".join(html_lib.unescape(TAGS.sub(" ", main)).split())


def answer_worrying(app, when=None) -> tuple[Patient, str]:
    """A patient at the safety question who answers "Several days": the safety page."""
    invitation = make_invitation(app, when=when)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/step/10", {"action": "next", "S1": "several_days"})
    assert page.request.path == "/safety"
    return patient, main_text(page)


def use_crisis_text(db, own: bool) -> None:
    if own:
        storage.save_settings(db, {"crisis_texts": {"en": OWN_TEXT}})


# --- 6: inside staffed hours the page says the front desk was told -----------------------


@pytest.mark.parametrize("own", [False, True], ids=["default-crisis-text", "own-crisis-text"])
def test_in_staffed_hours_the_page_says_the_front_desk_was_told(app, db, own):
    storage.save_settings(db, {"staffed_hours": EIGHT_TO_FIVE})
    use_crisis_text(db, own)
    _, page = answer_worrying(app)
    assert "help is here today" in page
    assert TOLD in page and CHECK_ON_YOU in page
    for old in OLD_STAFFED:
        assert old not in page
    assert CLOSED_HEADING not in page
    if own:
        # The clinic's own text may not name the desk: our sentence does, once.
        assert POINTER_DESK in page and page.count(OWN_TEXT) == 1
        assert "emergency number" not in page
    else:
        # The default text already sends an unsafe patient to the desk: ours only points.
        assert POINTER in page and POINTER_DESK not in page
        assert page.count(DEFAULT_DAY) == 1
        assert page.count("front desk right away") == 1
        assert page.count("emergency number") == 1
    assert page.index(TOLD) < page.index(CHECK_ON_YOU) < page.index("If you need help now")


# --- 7a: no sentence of ours repeats the crisis text -------------------------------------


BRANCHES = {
    # branch: (staffed hours, clock, appointment, heading, default crisis text)
    "closed": (EIGHT_TO_FIVE, WEDNESDAY_NIGHT, THURSDAY_VISIT, CLOSED_HEADING, DEFAULT_CLOSED),
    "away": ([], datetime(2026, 11, 25, 9, 0), THURSDAY_VISIT, AWAY_HEADING, DEFAULT_CLOSED),
}


@pytest.mark.parametrize("own", [False, True], ids=["default-crisis-text", "own-crisis-text"])
@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_no_sentence_of_ours_repeats_the_crisis_text(app, db, clock, branch, own):
    hours, moment, appointment, heading, default = BRANCHES[branch]
    storage.save_settings(db, {"staffed_hours": hours})
    use_crisis_text(db, own)
    clock.moment = moment
    patient, page = answer_worrying(app, when=appointment)
    assert heading in page
    assert OLD_REPEAT not in page
    assert "If you are in danger" not in page
    assert page.count(POINTER) == 1
    crisis = OWN_TEXT if own else default
    assert page.count(crisis) == 1
    # Only the crisis text names the emergency number, a crisis line or the desk.
    assert page.count("emergency number") == (0 if own else 1)
    assert page.count("crisis line") == 1  # the default's "a crisis line", or the own text's
    assert "tell the front desk" not in page and "go to the front desk" not in page

    # After sending (templates/patient/_next.html): the crisis text once, nothing of ours
    # that says it again.
    thanks = main_text(patient.send())
    assert "You do not need to do anything else." in thanks
    assert thanks.count(crisis) == 1
    assert thanks.count("emergency number") == (0 if own else 1)
    assert "If you are in danger" not in thanks and "front desk" not in thanks


@pytest.mark.parametrize("own", [False, True], ids=["default-crisis-text", "own-crisis-text"])
def test_after_sending_in_staffed_hours_the_crisis_text_is_said_once(app, db, own):
    use_crisis_text(db, own)
    patient, _ = answer_worrying(app)
    thanks = main_text(patient.send())
    assert "Please wait here. Someone will call you for your visit." in thanks
    assert thanks.count(OWN_TEXT if own else DEFAULT_DAY) == 1
    assert thanks.count("emergency number") == (0 if own else 1)
    assert thanks.count("front desk") == (0 if own else 1)


def test_the_page_is_not_shown_without_an_alert(app):
    """It says the front desk has been told: a typed /safety before any worrying answer
    (or after "Not at all") goes back to where the patient was."""
    invitation = make_invitation(app)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next"})
    response = patient.client.get("/safety")
    assert response.status_code == 302 and response.headers["Location"] == "/step/2"
    page = patient.client.get("/safety", follow_redirects=True).get_data(as_text=True)
    assert TOLD not in page
