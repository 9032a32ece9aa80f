"""How long the questionnaire takes: the figure the welcome page and the printed slip
promise ("It takes about N minutes").

The figure is measured, not guessed: `python bench/screens.py --write` walks the real
pages in Chromium at 360 px in every shipped language with a typical answer set and
writes the modelled minutes to ``minutes.json`` beside this module (the model: every word
shown read at 200 words a minute, half of the review's words, 1 s a tap, 2.5 characters
a second typed; tests/browser/minutes.py). tests/browser/test_minutes_promise.py
fails when the committed figures drift from a new measurement.

The promise is the typical figure rounded UP to a whole minute, never less than
measured. A language the file does not list gets the largest figure of any language. A
missing or unreadable file must not stop the app: the promise is then
``FALLBACK_MINUTES`` and a log line says so.
"""

from __future__ import annotations

import json
import logging
import math
from functools import lru_cache
from pathlib import Path

MINUTES_PATH = Path(__file__).with_name("minutes.json")
# Only when minutes.json is missing or holds no usable figure: longer than any language
# has measured, so the promise errs long, never short.
FALLBACK_MINUTES = 15

log = logging.getLogger(__name__)


def _figure(value) -> float | None:
    """A usable number of minutes, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


@lru_cache(maxsize=4)
def typical_minutes(path: Path = MINUTES_PATH) -> dict[str, float]:
    """The measured minutes of a typical answer set, by language code; read once per
    file. Empty when the file is missing or malformed (logged, once)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning(
            "questionnaire minutes: %s is missing; promising %d minutes "
            "(run bench/screens.py --write)",
            path,
            FALLBACK_MINUTES,
        )
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning(
            "questionnaire minutes: %s is unreadable (%s); promising %d minutes "
            "(run bench/screens.py --write)",
            path,
            type(exc).__name__,
            FALLBACK_MINUTES,
        )
        return {}
    typical = data.get("typical") if isinstance(data, dict) else None
    if not isinstance(typical, dict):
        log.warning(
            'questionnaire minutes: %s has no "typical" figures; promising %d minutes '
            "(run bench/screens.py --write)",
            path,
            FALLBACK_MINUTES,
        )
        return {}
    figures = {str(code): _figure(value) for code, value in typical.items()}
    usable = {code: value for code, value in figures.items() if value is not None}
    ignored = sorted(code for code, value in figures.items() if value is None)
    if not usable:
        log.warning(
            "questionnaire minutes: %s has no usable figure; promising %d minutes "
            "(run bench/screens.py --write)",
            path,
            FALLBACK_MINUTES,
        )
    elif ignored:
        log.warning(
            "questionnaire minutes: %s has no usable figure for %s; those languages "
            "get the largest figure",
            path,
            ", ".join(ignored),
        )
    return usable


# The model tests/browser/minutes.py measures the reflection with, for a standard
# measure's screens: every word shown read at 200 words a minute, half of its review
# lines, 1 s a tap (one answer per question, Next on each screen).
WORDS_PER_MINUTE = 200
TAP_SECONDS = 1.0
SKIP_WORDS = 4  # "Prefer not to say", under every question


def measure_minutes(instrument, language: str, screens: int) -> float:
    """The modelled minutes a standard measure adds, from its official text in
    ``language``: its stem, each of its own questions with every answer and the skip
    (an item asked as one of ours, PHQ-9's item 9 as S1, is already counted), half its
    review lines, and a tap per answer and per screen."""
    words = instrument.wording(language)
    own = [n for n, item in enumerate(instrument.items) if not item.asked_as]
    answers = sum(len(text.split()) for text in words.scale) + SKIP_WORDS
    longest = max(len(text.split()) for text in words.scale)
    shown = len(words.stem.split())
    shown += sum(len(words.items[n].split()) + answers for n in own)
    review = sum(len(words.items[n].split()) + longest for n in own) / 2
    taps = len(own) + screens
    return (shown + review) / WORDS_PER_MINUTE + taps * TAP_SECONDS / 60


# A phone shows three of a measure's questions a screen (patient/forms.py's rows model:
# four answers and the skip; tests/unit/test_measures.py checks the two agree).
MEASURE_QUESTIONS_PER_SCREEN = 3


def measure_screens(instrument) -> int:
    own = sum(1 for item in instrument.items if not item.asked_as)
    return math.ceil(own / MEASURE_QUESTIONS_PER_SCREEN)


def promised_minutes(language: str, measures=()) -> int:
    """The whole minutes to promise in this language: its typical figure rounded up; the
    largest figure of any language for a language the file does not list. ``measures``:
    the standard measures the patient will be asked (instruments), whose modelled
    minutes are added."""
    figures = typical_minutes(MINUTES_PATH)
    figure = figures.get(language) if figures else FALLBACK_MINUTES
    if figure is None:
        figure = max(figures.values())
    for instrument in measures:
        figure += measure_minutes(instrument, language, measure_screens(instrument))
    return max(1, math.ceil(figure))
