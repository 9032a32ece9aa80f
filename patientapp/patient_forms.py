"""The patient's questionnaire forms: one Flask-WTF form per screen, built at run time
from the definition.

Every field is optional (each question can be skipped). What each item type asks,
checks and stores is its own (``item_types``); this module splits a section into the
screens a phone shows, puts a screen's items together, fills them from stored answers and
reads them back.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

from flask_wtf import FlaskForm

from .questionnaire import Item, Section

# How much of a phone screen a question takes, in rows of about 54 CSS px at 360 px (one
# choice, a little less when its label is short enough to share a row). A screen holds
# about 25 rows below its heading and above its buttons; SCREEN_ROWS leaves room for
# longer translations and the 320 px phone.
SCREEN_ROWS = 19.0
QUESTION_ROWS = 2.0  # the question's own words, its help line and its box
SKIP_ROWS = 1.2  # "Prefer not to say", set apart
TEXT_ROWS = {"short": 2.0, "long": 5.0}  # a text box, empty or full of its longest text
LONG_TEXT = 100  # characters: a box for more grows to about five rows


def _choice_rows(label: str) -> float:
    return 0.6 if len(label) <= 14 else 1.0 if len(label) <= 30 else 1.5


def _text_rows(item: Item) -> float:
    return TEXT_ROWS["long" if (item.max_length or 0) > LONG_TEXT else "short"]


def screen_rows(item: Item) -> float:
    """About how many rows one question takes on a phone (see SCREEN_ROWS)."""
    rows = QUESTION_ROWS + (1.0 if item.intro else 0.0)
    if item.type == "scale":
        points = (item.max or 0) - (item.min or 0) + 1
        return rows + (2.0 if points <= 5 else 3.5) + SKIP_ROWS
    if item.type == "text":
        return rows + _text_rows(item)
    rows += sum(_choice_rows(choice.label) for choice in item.choices)
    if item.type in ("single", "yesno_text"):
        rows += SKIP_ROWS
    if item.type == "yesno_text":
        rows += 1.0 + _text_rows(item)
    return rows


@lru_cache(maxsize=64)
def screens(section: Section) -> tuple[tuple[Item, ...], ...]:
    """The screens of one section, in order, so that no screen grows much past two and a
    half phone screens. An item answered in rows (the medicine list) stands on a screen
    of its own: with every row filled it is most of that by itself. The other items keep
    their order and are shared out evenly over as few screens as hold them."""
    runs: list[list[Item]] = []
    for item in section.items:
        if item.item_type.has_rows or not runs or runs[-1][-1].item_type.has_rows:
            runs.append([item])
        else:
            runs[-1].append(item)
    found: list[tuple[Item, ...]] = []
    for run in runs:
        found.extend(_share_out(tuple(run)))
    return tuple(found) or ((),)


def _share_out(items: tuple[Item, ...]) -> list[tuple[Item, ...]]:
    """Items in order over the fewest screens that hold them, the fullest screen as light
    as it can be (a question longer than a screen stands alone)."""
    rows = [screen_rows(item) for item in items]

    def best(start: int, parts: int) -> tuple[float, list[int]]:
        """(the fullest screen, where screens start) for items[start:] on `parts` screens."""
        if parts == 1:
            return sum(rows[start:]), [start]
        choices = []
        for cut in range(start + 1, len(items) - parts + 2):
            rest, starts = best(cut, parts - 1)
            choices.append((max(sum(rows[start:cut]), rest), [start, *starts]))
        return min(choices, key=lambda choice: choice[0])

    parts = max(1, math.ceil(sum(rows) / SCREEN_ROWS))
    while True:
        fullest, starts = best(0, min(parts, len(items)))
        if fullest <= SCREEN_ROWS or parts >= len(items):
            break
        parts += 1
    bounds = [*starts, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def screen_items(section: Section, screen: int | None) -> tuple[Item, ...]:
    """The items on screen ``screen`` (1-based) of a section; None means the whole
    section, as a form posted without a screen number asks it."""
    if screen is None:
        return section.items
    return screens(section)[screen - 1]


@lru_cache(maxsize=128)
def section_form_class(
    section: Section, med_rows: int = 1, screen: int | None = None
) -> type[FlaskForm]:
    """A FlaskForm class for one screen of a section (cached: classes are immutable once
    built)."""
    fields: dict[str, object] = {}
    for item in screen_items(section, screen):
        fields.update(item.item_type.fields(item, med_rows))
    return type(f"Section_{section.id}_{screen or 0}_{med_rows}", (FlaskForm,), fields)


def medicine_rows(answers: dict, item: Item, submitted_rows: int = 0) -> int:
    """How many medicine rows to show: what was typed, or what is stored plus one empty
    row to write in; at least one. "Add another medicine" saves the typed rows, so the
    next screen has exactly one new empty row."""
    filled = len(answers.get(item.id) or [])
    return min(max(1, filled + 1, submitted_rows), item.max_rows)


def form_data(items: tuple[Item, ...], answers: dict) -> dict[str, object]:
    """Stored answers as form data, to fill a screen's form."""
    data: dict[str, object] = {}
    for item in items:
        value = answers.get(item.id)
        if value is not None:
            data.update(item.item_type.form_data(item, value))
    return data


def answers_from(items: tuple[Item, ...], form: FlaskForm) -> dict[str, object]:
    """A validated form's answers by item id; None marks a skipped item."""
    return {item.id: item.item_type.answer(item, form) for item in items}
