"""Answers as people read them: translated choice labels, free text exactly as written.

Shared by the patient's review screen and the psychiatrist's summary, so the patient sees
the words the psychiatrist will see. How each item type reads is its own business
(``item_types``); this module holds the pieces they share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_babel import LazyString, get_locale, gettext, pgettext

if TYPE_CHECKING:
    from patientapp.questionnaire.model import Item


@dataclass(frozen=True)
class Shown:
    """One displayed answer: translated words, and the patient's own text kept apart."""

    words: tuple[str, ...] = ()
    quote: str = ""
    # A list answer row by row: (the patient's own words, translated words about them).
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def paired(cls, pairs: Iterable[tuple[str, str]]) -> Shown:
        """Rows such as "Sertraline — Mixed": the patient's name for a thing, then ours."""
        pairs = tuple(pairs)
        return cls(tuple(f"{own} — {words}" for own, words in pairs), pairs=pairs)


# --- words: ours through the catalogs; a standard measure's only from its official text --


def _language() -> str:
    return str(get_locale() or "en")


def prompt(item: Item) -> str:
    """An item's question in the reader's language."""
    if item.measure is not None:
        return item.measure.item_text(item.id, _language())
    return gettext(item.prompt)


def intro(item: Item) -> str:
    """The line above an item's question (a measure's stem, on its first item)."""
    if not item.intro:
        return ""
    if item.measure is not None:
        return item.measure.wording(_language()).stem
    return gettext(item.intro)


def stem(item: Item) -> str:
    """A standard measure's stem, in the reader's language (its official text)."""
    return item.measure.wording(_language()).stem if item.measure is not None else ""


def choice_label(item: Item, choice) -> str:
    if item.measure is not None:
        return item.measure.answer_text(choice.id, _language())
    return pgettext(choice.context, choice.label) if choice.context else gettext(choice.label)


def lazy_prompt(item: Item) -> LazyString:
    return LazyString(prompt, item)


def lazy_choice_label(item: Item, choice) -> LazyString:
    return LazyString(choice_label, item, choice)


def language_of(item: Item) -> str:
    """The language a measure's words show in when it is not the page's (a patient who
    switched language after starting in one the measure is offered in); else empty."""
    if item.measure is None or item.measure.offered_in(_language()):
        return ""
    return item.measure.source_language


def label(item: Item, choice_id: str | None) -> str:
    choice = item.choice(choice_id) if choice_id else None
    if choice is None:
        return ""
    return choice_label(item, choice)


def labels(item: Item, choice_ids) -> list[str]:
    return [label(item, c) for c in choice_ids or () if item.choice(c)]


def show(item: Item, value) -> Shown:
    """How one stored answer reads on screen and on paper."""
    return Shown() if value is None else item.item_type.show(item, value)
