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


@dataclass(frozen=True)
class _Post:
    """One valid POST of a step: what the rule reads."""

    q: Questionnaire
    number: int
    screen: int | None
    new_answers: Mapping
    hidden: frozenset[str]
    returning: bool

    @property
    def section(self):
        return self.q.sections[self.number - 1]

    @property
    def shown(self) -> list[int]:
        return patient_forms.shown_screens(self.section, self.hidden)

    def review(self) -> Move:
        return Move(Place(REVIEW), visits.review_step(self.q))

    def here(self, screen: int, anchor: str | None = None) -> Move:
        return Move(Place(STEP, self.number, screen, self.returning, anchor), self.number)


def _back(post: _Post) -> Move:
    earlier = [n for n in post.shown if post.screen is not None and n < post.screen]
    if earlier:
        return post.here(earlier[-1])
    if post.returning:
        return post.review()
    if post.number == 1:
        return Move(Place(WELCOME), 1)
    before = patient_forms.shown_screens(post.q.sections[post.number - 2], post.hidden)[-1]
    return Move(Place(STEP, post.number - 1, before), post.number - 1)


def _add_row(post: _Post) -> Move:
    med = next((item for item in post.section.items if item.item_type.has_rows), None)
    anchor = f"{med.id}-{len(post.new_answers.get(med.id) or [])}-name" if med else None
    # A POST of the whole section adds its row on the medicine list's own screen.
    at = post.screen or next(
        (n for n, items in enumerate(patient_forms.screens(post.section), 1) if med in items), 1
    )
    return post.here(at, anchor)


def _forward(post: _Post) -> Move:
    later = [n for n in post.shown if post.screen is not None and n > post.screen]
    if later:
        return post.here(later[0])
    if post.returning or post.number >= len(post.q.sections):
        return post.review()
    first = patient_forms.shown_screens(post.q.sections[post.number], post.hidden)[0]
    return Move(Place(STEP, post.number + 1, first), post.number + 1)


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
    A worrying safety answer goes to the safety page (unless the language was switched).
    """
    post = _Post(q, number, screen, new_answers, hidden, returning)
    if visits.endorses_safety(new_answers) and action != "lang":
        return Move(Place(SAFETY), visits.review_step(q))
    if action == "review" and returning:
        return post.review()
    if action == "back":
        return _back(post)
    if action == "add":
        return _add_row(post)
    if action == "lang":
        return post.here(screen or 1)
    return _forward(post)
