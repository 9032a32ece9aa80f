"""Answers as people read them: translated choice labels, free text exactly as written.

Shared by the patient's review screen and the psychiatrist's summary, so the patient sees
the words the psychiatrist will see. How each item type reads is its own business
(``item_types``); this module holds the pieces they share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_babel import gettext, pgettext

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


def label(item: Item, choice_id: str | None) -> str:
    choice = item.choice(choice_id) if choice_id else None
    if choice is None:
        return ""
    return pgettext(choice.context, choice.label) if choice.context else gettext(choice.label)


def labels(item: Item, choice_ids) -> list[str]:
    return [label(item, c) for c in choice_ids or () if item.choice(c)]


def show(item: Item, value) -> Shown:
    """How one stored answer reads on screen and on paper."""
    return Shown() if value is None else item.item_type.show(item, value)
