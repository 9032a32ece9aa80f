"""The next-screen rule, as a pure function: where a saved step goes next.

No request, no URL, no database: the step view reads the request, saves, asks here, and
turns the answer into an address. The tests call it directly (tests/unit/test_navigation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from patientapp.domain import visits
from patientapp.patient import forms as patient_forms

if TYPE_CHECKING:
    from collections.abc import Mapping

    from patientapp.questionnaire.model import Questionnaire

WELCOME, STEP, REVIEW, SAFETY = "welcome", "step", "review", "safety"


@dataclass(frozen=True)
class Place:
    """A patient page: the welcome, a screen of a step, the review, or the safety page."""

    page: str
    number: int = 0
    screen: int = 1
    returning: bool = False  # came from the review: Next goes back there
    anchor: str | None = None  # the field to scroll to (a new medicine row)


@dataclass(frozen=True)
class Move:
    to: Place
    resume_at: int  # the step a patient who comes back later resumes at


def after_save(
    q: Questionnaire,
    number: int,
    screen: int | None,
    action: str,
    new_answers: Mapping,
    hidden: frozenset[str] = frozenset(),
    returning: bool = False,
) -> Move:
    """Where a valid POST of step `number` goes, and the step to resume at.

    `screen` is the screen posted (None: the whole section, its first screen going back
    and its last going on); `action` is the button (next, back, review, add, lang);
    `hidden` the items the answers as saved by this POST leave unasked (M0 "no" passes
    over the medicine list): screens with nothing left to ask are passed over both ways.
    """
    review = Move(Place(REVIEW), visits.review_step(q))
    if visits.endorses_safety(new_answers) and action != "lang":
        return Move(Place(SAFETY), review.resume_at)
    if action == "review" and returning:
        return review
    section = q.sections[number - 1]
    shown = patient_forms.shown_screens(section, hidden)
    earlier = [n for n in shown if screen is not None and n < screen]
    later = [n for n in shown if screen is not None and n > screen]
    if action == "back":
        if earlier:
            return Move(Place(STEP, number, earlier[-1], returning), number)
        if returning:
            return review
        if number == 1:
            return Move(Place(WELCOME), number)
        before = patient_forms.shown_screens(q.sections[number - 2], hidden)[-1]
        return Move(Place(STEP, number - 1, before), number - 1)
    if action == "add":
        med = next((item for item in section.items if item.item_type.has_rows), None)
        anchor = f"{med.id}-{len(new_answers.get(med.id) or [])}-name" if med else None
        # A POST of the whole section adds its row on the medicine list's own screen.
        at = screen or next(
            (n for n, items in enumerate(patient_forms.screens(section), 1) if med in items), 1
        )
        return Move(Place(STEP, number, at, returning, anchor), number)
    if action == "lang":
        return Move(Place(STEP, number, screen or 1, returning), number)
    if later:
        return Move(Place(STEP, number, later[0], returning), number)
    if returning or number >= len(q.sections):
        return review
    first = patient_forms.shown_screens(q.sections[number], hidden)[0]
    return Move(Place(STEP, number + 1, first), number + 1)
