"""The next-screen rule (patientapp/patient/navigation.py) as a pure function: no request, no app.

Screens are read from the shipped definition (patient_forms.pages), not written down here:
a screen is named by the question it asks (``at("M1")``: the step and screen M1 is on), so
the tests hold however the questions are shared out over screens. What they rely on is the
definition's rules: M0 ends its screen, the medicine list (M1) and the safety question (S1)
each stand alone, and a screen may end one section and begin the next."""

import pytest

from patientapp.patient import forms as patient_forms
from patientapp.patient.navigation import REVIEW, SAFETY, STEP, WELCOME, Move, Place, after_save
from patientapp.questionnaire import model as questionnaire

Q = questionnaire.default()
LAST = len(Q.sections)
REVIEW_AT = LAST + 1
NO_MEDICINE = frozenset(Q.not_asked({"M0": "no"}))
NO_MEASURES = frozenset(Q.not_asked({}))  # a visit that asks no standard measure
BOTH_MEASURES = frozenset(Q.not_asked({}, ("gad7", "phq9")))
PAGES = patient_forms.pages(Q.sections)


def at(item_id):
    """(step, screen) of the screen that asks this question."""
    page = patient_forms.page_of(Q, item_id)
    return page.number, page.screen


def place(item_id, returning=False, anchor=None):
    number, screen = at(item_id)
    return Move(Place(STEP, number, screen, returning, anchor), number)


def following(item_id, hidden=frozenset()):
    """The first question of the screen after this question's, for this visit."""
    shown = patient_forms.shown_pages(Q, hidden)
    page = patient_forms.page_of(Q, item_id)
    later = shown[shown.index(page) + 1]
    return next(i.id for i in later.items if i.id not in hidden)


def go(number, screen, action="next", answers=None, hidden=NO_MEASURES, returning=False):
    return after_save(Q, number, screen, action, answers or {}, hidden, returning)


def test_the_definition_rules_shape_the_screens():
    ids = [[item.id for item in page.items] for page in PAGES]
    assert ["M1"] in ids and ["S1"] in ids  # each alone
    assert next(page for page in ids if "M0" in page)[-1] == "M0"  # M0 ends its screen
    assert sum(len(page) for page in ids) == len(Q.items)  # every question once, in order
    assert [i for page in ids for i in page] == Q.item_ids
    # A screen is addressed by the step it starts in, numbered from 1 within that step.
    for number in {page.number for page in PAGES}:
        screens = [page.screen for page in PAGES if page.number == number]
        assert screens == list(range(1, len(screens) + 1))


def test_next_goes_to_the_next_screen_whatever_section_it_starts_in():
    assert go(*at("M0")) == place("M1")
    assert go(*at("M1")) == place("M2")
    assert go(*at("R5")) == place("S1")
    # A screen that ends one section and begins the next goes on past both.
    crossing = next(p for p in PAGES if len({Q.items[i.id].section_id for i in p.items}) > 1)
    after = PAGES[PAGES.index(crossing) + 1]
    assert go(crossing.number, crossing.screen) == Move(
        Place(STEP, after.number, after.screen), after.number
    )


def test_next_on_the_last_step_and_from_the_review_goes_to_the_review():
    assert go(*at("S1")) == Move(Place(REVIEW), REVIEW_AT)
    # From the review, Next goes through the step's own screens, then back to the review.
    number = at("F3")[0]
    own = [p for p in PAGES if p.number == number]
    if len(own) > 1:
        assert go(number, own[0].screen, returning=True) == Move(
            Place(STEP, number, own[1].screen, returning=True), number
        )
    assert go(number, own[-1].screen, returning=True) == Move(Place(REVIEW), REVIEW_AT)
    assert go(number, own[0].screen, "review", returning=True) == Move(Place(REVIEW), REVIEW_AT)


def test_back_goes_to_the_previous_screen_or_the_welcome():
    assert go(*at("M1"), "back") == place("M0")
    assert go(*at("S1"), "back") == place("R5")
    assert go(*at("T1"), "back") == Move(Place(WELCOME), 1)
    # From the review, Back goes on while the section being changed goes on (F1 sits on
    # the screen before F2's), then returns to the review.
    assert go(*at("F2"), "back", returning=True) == place("F1", returning=True)
    assert go(*at("T1"), "back", returning=True) == Move(Place(REVIEW), REVIEW_AT)


def test_the_standard_measures_come_just_before_the_safety_question_when_offered():
    # GAD-7, then PHQ-9's items 1-8, then S1: PHQ-9's item 9, asked once.
    assert go(*at("R5"), hidden=BOTH_MEASURES) == place("GAD7_1")
    assert go(*at("GAD7_7"), hidden=BOTH_MEASURES) == place("PHQ9_1")
    assert go(*at("PHQ9_8"), hidden=BOTH_MEASURES) == place("S1")
    assert go(*at("S1"), "back", hidden=BOTH_MEASURES) == place("PHQ9_8")
    assert go(*at("PHQ9_1"), "back", hidden=BOTH_MEASURES) == place("GAD7_7")
    # Only PHQ-9: GAD-7's screens are passed over both ways.
    only_phq9 = frozenset(Q.not_asked({}, ("phq9",)))
    assert go(*at("R5"), hidden=only_phq9) == place("PHQ9_1")
    assert go(*at("PHQ9_1"), "back", hidden=only_phq9) == place("R5")
    # Each measure begins a screen of its own, under its stem.
    for first in ("GAD7_1", "PHQ9_1"):
        page = patient_forms.page_of(Q, first)
        assert page.items[0].id == first and page.items[0].intro


def test_a_worrying_safety_answer_goes_to_the_safety_page_unless_switching_language():
    worrying = {"S1": "several_days"}
    number, screen = at("S1")
    assert go(number, screen, answers=worrying) == Move(Place(SAFETY), REVIEW_AT)
    assert go(number, screen, "back", answers=worrying).to.page == SAFETY
    assert go(number, screen, "lang", answers=worrying) == Move(Place(STEP, number, screen), number)
    assert go(number, screen, answers={"S1": "not_at_all"}).to.page == REVIEW


def test_no_medicine_passes_over_the_medicine_screens_both_ways():
    # M1-M5 and P1 are not asked: Next from M0 goes to the first screen asking anything.
    nxt = following("M0", NO_MEDICINE)
    assert nxt not in NO_MEDICINE
    assert go(*at("M0"), hidden=NO_MEDICINE) == place(nxt)
    assert go(*at(nxt), "back", hidden=NO_MEDICINE) == place("M0")
    # Every screen in between holds only questions that are not asked.
    between = PAGES[
        PAGES.index(patient_forms.page_of(Q, "M0")) + 1 : PAGES.index(patient_forms.page_of(Q, nxt))
    ]
    assert between and all(i.id in NO_MEDICINE for p in between for i in p.items)


def test_a_whole_section_post_is_its_first_screen_back_and_its_last_forward():
    # Step 3 (P1-P3) posted whole: Next goes after the last screen holding P3.
    last = patient_forms.page_of(Q, "P3")
    after = PAGES[PAGES.index(last) + 1]
    assert go(3, None) == Move(Place(STEP, after.number, after.screen), after.number)
    first = patient_forms.page_of(Q, "P1")
    before = PAGES[PAGES.index(first) - 1]
    assert go(3, None, "back") == Move(Place(STEP, before.number, before.screen), before.number)


@pytest.mark.parametrize("whole", [False, True])
def test_adding_a_medicine_row_stays_on_the_list_with_the_new_row_in_view(whole):
    answers = {"M1": [{"name": "A"}, {"name": "B"}]}
    number, screen = at("M1")
    move = go(number, None if whole else screen, "add", answers=answers)
    assert move == place("M1", anchor="M1-2-name")


def test_a_language_switch_stays_on_the_same_screen():
    number, screen = at("R5")
    assert go(number, screen, "lang") == Move(Place(STEP, number, screen), number)
    assert go(7, None, "lang", returning=True) == Move(Place(STEP, 7, 1, returning=True), 7)
