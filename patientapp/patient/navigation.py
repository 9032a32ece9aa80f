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
    from collections.abc import Collection, Mapping

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
    # From the review: questions an answer asked again that were never answered (M0 "no"
    # turned "yes" asks P1 in a later step), shown before going back there.
    asking: tuple[str, ...] = ()


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
    asking: tuple[str, ...] = ()

    @property
    def section(self):
        return self.q.sections[self.number - 1]

    @property
    def shown(self) -> list[patient_forms.Page]:
        """The screens of the whole questionnaire this visit sees, in order."""
        return patient_forms.shown_pages(self.q, self.hidden)

    def _index(self, page: patient_forms.Page) -> int:
        return patient_forms.pages(self.q.sections).index(page)

    def _section_pages(self) -> list[patient_forms.Page]:
        """The screens holding this step's questions (a POST of the whole section)."""
        ids = {item.id for item in self.section.items}
        return [
            page
            for page in patient_forms.pages(self.q.sections)
            if page.number == self.number or any(item.id in ids for item in page.items)
        ]

    def posted(self, going_on: bool) -> int:
        """Where the posted screen stands among all screens: a POST of the whole section
        stands at its first screen going back and at its last going on."""
        if self.screen is not None:
            for page in patient_forms.pages(self.q.sections):
                if (page.number, page.screen) == (self.number, self.screen):
                    return self._index(page)
        held = self._section_pages()
        return self._index(held[-1] if going_on else held[0])

    def continues(self, page: patient_forms.Page) -> bool:
        """Whether that screen goes on with a section the posted screen holds (from the
        review, Next and Back stay within what is being changed)."""
        posted = patient_forms.pages(self.q.sections)[self.posted(going_on=True)]
        here = {self.q.items[item.id].section_id for item in posted.items}
        return any(self.q.items[item.id].section_id in here for item in page.items)

    def review(self) -> Move:
        return Move(Place(REVIEW), visits.review_step(self.q))

    def to(self, page: patient_forms.Page, anchor: str | None = None) -> Move:
        place = Place(STEP, page.number, page.screen, self.returning, anchor, self.asking)
        return Move(place, page.number)

    def here(self, screen: int, anchor: str | None = None) -> Move:
        place = Place(STEP, self.number, screen, self.returning, anchor, self.asking)
        return Move(place, self.number)

    def back_to_review(self, later: list[patient_forms.Page]) -> Move:
        """From the review, going back there: first any later screen asking a question
        an answer asked again and never answered (no "Skipped" for a question never
        shown), then the review."""
        asking = next((p for p in later if any(i.id in self.asking for i in p.items)), None)
        return self.to(asking) if asking is not None else self.review()


def _back(post: _Post) -> Move:
    at = post.posted(going_on=False)
    earlier = [page for page in post.shown if post._index(page) < at]
    if post.returning and earlier and not post.continues(earlier[-1]):
        return post.review()  # from the review: back while the section goes on, then back
    if earlier:
        return post.to(earlier[-1])
    if post.returning:
        return post.review()
    return Move(Place(WELCOME), 1)


def _add_row(post: _Post) -> Move:
    med = next((item for item in post.section.items if item.item_type.has_rows), None)
    anchor = f"{med.id}-{len(post.new_answers.get(med.id) or [])}-name" if med else None
    # A POST of the whole section adds its row on the medicine list's own screen.
    if post.screen is None and med is not None:
        return post.to(patient_forms.page_of(post.q, med.id), anchor)
    return post.here(post.screen or 1, anchor)


def _forward(post: _Post) -> Move:
    at = post.posted(going_on=True)
    later = [page for page in post.shown if post._index(page) > at]
    if post.returning and later and not post.continues(later[0]):
        return post.back_to_review(later)  # from the review: on while the section goes on
    if later:
        return post.to(later[0])
    return post.review()


def asking_from(text: str, q: Questionnaire) -> tuple[str, ...]:
    """A place's `asking` from its address (``ask=P1,M4``): known question ids only."""
    ids = set(text.split(",")) if text else set()
    return tuple(i for i in q.item_ids if i in ids)


def after_save(
    q: Questionnaire,
    number: int,
    screen: int | None,
    action: str,
    new_answers: Mapping,
    hidden: frozenset[str] = frozenset(),
    returning: bool = False,
    *,
    hidden_before: frozenset[str] | None = None,
    answered: Collection[str] = (),
    asking: Collection[str] = (),
) -> Move:
    """Where a valid POST of step `number` goes, and the step to resume at.

    `screen` is the screen posted (None: the whole section, its first screen going back
    and its last going on); `action` is the button (next, back, review, add, lang);
    `hidden` the items the answers as saved by this POST leave unasked (M0 "no" passes
    over the medicine list): screens with nothing left to ask are passed over both ways.
    A worrying safety answer goes to the safety page (unless the language was switched).

    From the review (`returning`), questions this save asks again that were never
    answered (`hidden_before` less `hidden`, less the stored answers `answered`), with
    those still `asking` from an earlier save, are shown before going back there: their
    screens are named in each place until answered (or passed over).
    """
    pending: tuple[str, ...] = ()
    if returning:
        again = set(asking) | (set(hidden_before or ()) - hidden)
        pending = tuple(i for i in q.item_ids if i in again - hidden - set(answered))
    post = _Post(q, number, screen, new_answers, hidden, returning, pending)
    if visits.endorses_safety(new_answers) and action != "lang":
        return Move(Place(SAFETY), visits.review_step(q))
    if action == "review" and returning:
        return post.review()  # the patient's own choice: back now
    if action == "back":
        return _back(post)
    if action == "add":
        return _add_row(post)
    if action == "lang":
        return post.here(screen or 1)
    return _forward(post)
