"""Answers as people read them: translated choice labels, free text exactly as written.

Shared by the patient's review screen and the psychiatrist's summary, so the patient sees
the words the psychiatrist will see.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import format_decimal, gettext

from .questionnaire import Item


@dataclass(frozen=True)
class Shown:
    """One displayed answer: translated words, and the patient's own text kept apart."""

    words: tuple[str, ...] = ()
    quote: str = ""


def label(item: Item, choice_id: str | None) -> str:
    choice = item.choice(choice_id) if choice_id else None
    return gettext(choice.label) if choice else ""


def labels(item: Item, choice_ids) -> list[str]:
    return [label(item, c) for c in choice_ids or () if item.choice(c)]


def show(item: Item, value) -> Shown:
    """How one stored answer reads on screen and on paper."""
    if value is None:
        return Shown()
    if item.type == "multi":
        return Shown(tuple(labels(item, value)))
    if item.type == "single":
        return Shown((label(item, value),))
    if item.type == "scale":
        return Shown(
            (
                gettext(
                    "%(value)s out of %(max)s",
                    value=format_decimal(value),
                    max=format_decimal(item.max),
                ),
            )
        )
    if item.type == "text":
        return Shown(quote=value)
    if item.type == "yesno_text":
        words = (label(item, value.get("choice")),) if value.get("choice") else ()
        return Shown(words, value.get("text", ""))
    if item.type == "medlist":
        no_feeling = gettext("no feeling picked")
        return Shown(
            tuple(
                f"{row['name']} — {label(item, row.get('feeling')) or no_feeling}" for row in value
            )
        )
    return Shown()
