"""The standard measures of a visit (PHQ-9, GAD-7): its scores, and their trend.

Scores exist only for instruments (``Instrument.score``); the reflective items are never
added up. This module picks the instruments a visit offered and scores them the same way
for the one page, its text, the CSV and FHIR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from patientapp.questionnaire.instruments import Instrument, Score
from patientapp.questionnaire.model import Questionnaire


def scores(
    definition: Questionnaire,
    offered: Iterable[str],
    answers: Mapping,
    held: Iterable[str] = (),
    reached: set[str] | None = None,
) -> list[Score]:
    """The score of every instrument the visit offered, in the order they were asked.
    A held answer's value is never used (``held``: the items kept for in person)."""
    offered, held = set(offered), frozenset(held)
    return [
        instrument.score(answers, held, reached)
        for instrument in definition.instruments
        if instrument.id in offered
    ]


@dataclass(frozen=True)
class Point:
    """One earlier total of the same patient reference's visits."""

    day: str  # ISO date of the appointment
    label: str  # the date as the reader reads it
    total: int
    visit_id: int = 0  # the visit it is from (its read is audited with the page's)


@dataclass(frozen=True)
class Trend:
    """A measure's total now and at earlier visits (oldest first), for the page."""

    instrument: Instrument
    now: Score
    earlier: tuple[Point, ...] = ()

    @property
    def change(self) -> int | None:
        """The change since the last earlier total, when both exist."""
        if self.now.total is None or not self.earlier:
            return None
        return self.now.total - self.earlier[-1].total


# --- the Measures line of the one page ------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 100.0, 30.0, 3.0
EARLIER_SHOWN = 4  # earlier totals shown beside today's (and on the chart)


@dataclass(frozen=True)
class Chart:
    """A small line chart of the totals, drawn by the template as inline SVG: black
    line and dots, dashed band limits; no script, prints in black and white."""

    points: tuple[tuple[float, float], ...]  # in a CHART_WIDTH x CHART_HEIGHT box
    limits: tuple[float, ...]  # the y of each band's lower limit above the minimum
    label: str  # what a screen reader says: the totals in order

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


def chart(totals: list[int], instrument: Instrument, label: str) -> Chart | None:
    """The chart of two or more totals, oldest first, on the instrument's full range."""
    if len(totals) < 2:
        return None
    top = instrument.maximum
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD

    def y(value: float) -> float:
        return CHART_PAD + inner_h * (1 - value / top)

    step = inner_w / (len(totals) - 1)
    points = tuple((CHART_PAD + n * step, y(total)) for n, total in enumerate(totals))
    limits = tuple(y(band.low) for band in instrument.bands[1:])
    return Chart(points, limits, label)


@dataclass(frozen=True)
class MeasureLine:
    """One instrument on the page's Measures line, in the reader's language."""

    name: str
    total: int | None = None
    maximum: int = 0
    band: str = ""  # translated band label, when there is a total
    why_none: str = ""  # why there is no total, when there is none
    prorated: str = ""  # how a prorated total was reached
    earlier: str = ""  # "earlier: 24, 16 (from 3/2/26)", oldest first
    change: str = ""  # "-2": since the last visit, with a true minus sign (change_long
    # when the last earlier total is from another visit than the one "since last visit"
    # compares with)
    change_long: str = ""  # "-2 since 3/2/26": the same with that visit's date
    chart: Chart | None = None
    not_offered: str = ""  # "PHQ-9 not offered in Tiếng Việt": the whole line
    shown_from: tuple[int, ...] = ()  # the earlier visits whose totals the line shows

    @property
    def score_text(self) -> str:
        if self.total is None:
            return self.why_none
        words = f"{self.total}/{self.maximum}"
        return f"{words} ({self.band})" if self.band else words
