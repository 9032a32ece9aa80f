"""The next-screen rule (patientapp/patient/navigation.py) as a pure function: no request, no app.

Screens of the shipped definition, for reference: step 2 (medicines) is M0 | M1 | M2 M3 |
M4 M5 | M6; step 3 is P1 | P2 P3; step 8 is S1 alone."""

import pytest

from patientapp.patient.navigation import REVIEW, SAFETY, STEP, WELCOME, Move, Place, after_save
from patientapp.questionnaire import model as questionnaire

Q = questionnaire.default()
LAST = len(Q.sections)
REVIEW_AT = LAST + 1
NO_MEDICINE = frozenset(Q.not_asked({"M0": "no"}))


def go(number, screen, action="next", answers=None, hidden=frozenset(), returning=False):
    return after_save(Q, number, screen, action, answers or {}, hidden, returning)


def test_next_goes_to_the_next_screen_of_the_step_then_the_next_step():
    assert go(2, 1) == Move(Place(STEP, 2, 2), 2)
    assert go(2, 5) == Move(Place(STEP, 3, 1), 3)
    assert go(1, 1) == Move(Place(STEP, 2, 1), 2)


def test_next_on_the_last_step_and_from_the_review_goes_to_the_review():
    assert go(LAST, 1) == Move(Place(REVIEW), REVIEW_AT)
    assert go(4, 1, returning=True) == Move(Place(STEP, 4, 2, returning=True), 4)
    assert go(4, 3, returning=True) == Move(Place(REVIEW), REVIEW_AT)
    assert go(4, 1, "review", returning=True) == Move(Place(REVIEW), REVIEW_AT)


def test_back_goes_to_the_previous_screen_step_or_the_welcome():
    assert go(2, 3, "back") == Move(Place(STEP, 2, 2), 2)
    assert go(3, 1, "back") == Move(Place(STEP, 2, 5), 2)
    assert go(1, 1, "back") == Move(Place(WELCOME), 1)
    assert go(4, 1, "back", returning=True) == Move(Place(REVIEW), REVIEW_AT)


def test_a_worrying_safety_answer_goes_to_the_safety_page_unless_switching_language():
    worrying = {"S1": "several_days"}
    assert go(LAST, 1, answers=worrying) == Move(Place(SAFETY), REVIEW_AT)
    assert go(LAST, 1, "back", answers=worrying).to.page == SAFETY
    assert go(LAST, 1, "lang", answers=worrying) == Move(Place(STEP, LAST, 1), LAST)
    assert go(LAST, 1, answers={"S1": "not_at_all"}).to.page == REVIEW


def test_no_medicine_passes_over_the_medicine_screens_both_ways():
    assert go(2, 1, hidden=NO_MEDICINE) == Move(Place(STEP, 2, 5), 2)  # M6 is still asked
    assert go(2, 5, "back", hidden=NO_MEDICINE) == Move(Place(STEP, 2, 1), 2)
    # Step 3 without P1: Back from its last screen goes to M6, Next from M6 to P2 P3.
    assert go(3, 2, "back", hidden=NO_MEDICINE) == Move(Place(STEP, 2, 5), 2)
    assert go(2, 5, hidden=NO_MEDICINE) == Move(Place(STEP, 3, 2), 3)


def test_a_whole_section_post_is_its_first_screen_back_and_its_last_forward():
    assert go(3, None) == Move(Place(STEP, 4, 1), 4)
    assert go(3, None, "back") == Move(Place(STEP, 2, 5), 2)


@pytest.mark.parametrize("screen", [2, None])
def test_adding_a_medicine_row_stays_on_the_list_with_the_new_row_in_view(screen):
    answers = {"M1": [{"name": "A"}, {"name": "B"}]}
    move = go(2, screen, "add", answers=answers)
    assert move == Move(Place(STEP, 2, 2, anchor="M1-2-name"), 2)


def test_a_language_switch_stays_on_the_same_screen():
    assert go(7, 3, "lang") == Move(Place(STEP, 7, 3), 7)
    assert go(7, None, "lang", returning=True) == Move(Place(STEP, 7, 1, returning=True), 7)
