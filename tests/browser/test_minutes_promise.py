"""The "about N minutes" the welcome page and the printed slip promise is measured, and
stays measured: in every shipped language, at 360 px, the typical answer set is walked
from the welcome page to the review (tests/browser/minutes.py: words shown at 200 a
minute, half of the review's, 1 s a tap, 2.5 characters a second typed), and

  (a) the figure committed in patientapp/questionnaire/minutes.json is that measurement,
      to within TOLERANCE: a change that adds screens or words without running
      `python bench/screens.py --write` fails here;
  (b) the welcome page in that language shows the promised whole number (the figure
      rounded up, patientapp/questionnaire/timing.py);
  (c) the targets: English within 6 minutes, every language within 7. NOT MET: with the
      26 questions of CONTENT.md version 3 a typical visit reads about 1,400 words, which
      at 200 words a minute is over 7 minutes before a tap or a typed letter. The test is
      a strict expected failure: it records the gap, and turns red the day the target is
      met, so that the mark comes off.
"""

from __future__ import annotations

import json
import re

import pytest

from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire import timing

from .conftest import Phone
from .minutes import measure
from .staff_ui import LANGUAGES

pytestmark = pytest.mark.browser

TOLERANCE = 0.3  # minutes
TARGETS = {"en": 6.0}  # minutes, typical answers
TARGET = 7.0  # every other language
RERUN = (
    "run `python bench/screens.py --write --widths 360` and commit "
    "patientapp/questionnaire/minutes.json"
)


@pytest.fixture(scope="module")
def typical(chromium, live_server):
    """The typical walk in a language, measured once for the module's tests."""
    phone = Phone(chromium, live_server)
    walks: dict = {}

    def walk(language: str):
        if language not in walks:
            walks[language] = measure(phone, live_server, language, "typical")
        return walks[language]

    yield walk
    phone.close()


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(timing.MINUTES_PATH.read_text(encoding="utf-8"))["typical"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_minutes_are_the_measured_ones(typical, committed, language):
    walk = typical(language)
    assert language in committed, f"minutes.json has no figure for {language}: {RERUN}"
    minutes = walk.minutes
    assert abs(committed[language] - minutes) <= TOLERANCE, (
        f"{language}: minutes.json says {committed[language]} minutes, measured "
        f"{minutes:.2f} ({walk.screens} screens, {walk.taps} taps, "
        f"{walk.words:.0f} words, {walk.characters} characters): {RERUN}"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_welcome_promises_the_figure_rounded_up(typical, language):
    promised = timing.promised_minutes(language)
    shown = typical(language).promise
    assert re.findall(r"\d+", shown) == [str(promised)], (
        f"{language}: the welcome says {shown!r}, not {promised} minutes"
    )


@pytest.mark.xfail(
    strict=True,
    reason="the questionnaire's words alone take longer than the target (see the docstring)",
)
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_typical_visit_keeps_within_its_target(typical, language):
    walk = typical(language)
    minutes, target = walk.minutes, TARGETS.get(language, TARGET)
    assert minutes <= target, (
        f"{language}: a typical visit takes {minutes:.2f} minutes, over the target of "
        f"{target}: {walk.screens} screens, {walk.taps} taps, {walk.words:.0f} words read, "
        f"{walk.characters} characters typed"
    )


def test_each_questions_cost_is_counted_once(typical):
    """bench/screens.py --items: what each question costs adds up to no more than the
    whole, every question of the walk has its share, and no word is counted twice."""
    walk = typical("en")
    asked = {i.id for s in questionnaire.default().sections for i in s.items if not i.instrument}
    seconds = walk.item_seconds()
    assert set(seconds) == asked, set(seconds) ^ asked
    assert all(cost > 0 for cost in seconds.values())
    assert sum(walk.item_words.values()) < walk.page_words  # the welcome, headings, buttons
    assert sum(walk.item_review_words.values()) < walk.review_words
    assert sum(walk.item_taps.values()) < walk.taps  # Next, Send and the code are not theirs
    assert sum(walk.item_characters.values()) == walk.characters
    assert 0 < walk.minutes * 60 - sum(seconds.values()) < 0.25 * walk.minutes * 60
