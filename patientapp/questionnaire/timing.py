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


def promised_minutes(language: str) -> int:
    """The whole minutes to promise in this language: its typical figure rounded up; the
    largest figure of any language for a language the file does not list."""
    figures = typical_minutes(MINUTES_PATH)
    if not figures:
        return FALLBACK_MINUTES
    figure = figures.get(language)
    if figure is None:
        figure = max(figures.values())
    return max(1, math.ceil(figure))
