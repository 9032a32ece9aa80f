"""How long the patient side takes, modelled from a walk of the real pages in Chromium.

The welcome page and the printed slip promise "about N minutes"; N comes from this
measurement (bench/screens.py --write writes patientapp/questionnaire/minutes.json, and
tests/browser/test_minutes_promise.py checks it still holds). The agreed model:

  * every word shown is read at 200 words a minute: the words of the welcome page and of
    every question screen's ``main`` (the safety page too, when it shows), plus HALF of
    the review screen's words (it is skimmed). The language switcher (``.languages``)
    and visually hidden text are not shown, so not counted; words are counted by the
    browser's ``Intl.Segmenter(lang, {granularity: 'word'})`` (its word-like segments),
    so Chinese counts words, not characters. A screen is counted as it stands when its
    answers are filled (every medicine row added);
  * 1 s per tap, taps counted as bench/screens.py counts them (its docstring): the code
    entry (2), Start, each choice, each text box, the medicine rows as
    tests/browser/test_patient_screens.answer_all counts them, Next on every screen (and
    Continue on the safety page), and Send;
  * 2.5 characters a second typed: the length of every text answer and medicine name
    typed.

  minutes = words / 200 + taps / 60 + characters / 2.5 / 60

Shared by bench/screens.py (which imports the browser tests' helpers as ``browser.*``)
and the test, so both measure the same walk. Not a test module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from patientapp.questionnaire import model as questionnaire

from .maximal_visit import maximal_answers
from .patient_ui import expect
from .test_patient_screens import (
    _form_values,
    _primary,
    _screen_suffix,
    answer_taps,
    fill_screen,
    full_answers,
)

WORDS_PER_MINUTE = 200
SECONDS_PER_TAP = 1.0
CHARACTERS_PER_SECOND = 2.5
REVIEW_SHARE = 0.5  # the review is skimmed: half its words are read
WIDTH = 360
MODEL = (
    "every word shown read at 200 words a minute (welcome, each question screen's main, "
    "half of the review's words; Intl.Segmenter word-like segments, language switcher and "
    "visually hidden text left out), 1 s a tap, 2.5 characters a second typed; "
    "Chromium at 360 px; bench/screens.py --write"
)

# Taps outside the question screens, as bench/screens.py counts them: the code entry
# (tap the box, Continue; the walk opens the invitation link instead), Start, Send.
ENTRY_TAPS = 2
START_TAPS = 1
SEND_TAPS = 1
MAX_SCREENS = 40

ANSWER_SETS = {"typical": full_answers, "fullest": maximal_answers}

# The words a patient sees in <main>: what innerText gives (rendered text only: no
# display:none, no closed <details>, no <progress> fallback) once the language switcher
# and visually hidden text (the .visually-hidden class, or the same clipping written
# in a stylesheet rule of its own) are set aside for the moment of reading. With the
# page's height and width (CSS px), as bench/screens.py reports them.
WORDS_JS = """() => {
    const main = document.querySelector('main');
    const clipped = el => {
        const style = getComputedStyle(el);
        return style.clipPath === 'inset(50%)' || style.clip === 'rect(0px, 0px, 0px, 0px)';
    };
    const aside = [...main.querySelectorAll('*')].filter(
        el => el.matches('.languages, .visually-hidden') || clipped(el));
    const kept = aside.map(el => el.style.getPropertyValue('display'));
    const priority = aside.map(el => el.style.getPropertyPriority('display'));
    aside.forEach(el => el.style.setProperty('display', 'none', 'important'));
    const text = main.innerText;
    const lang = document.documentElement.lang || 'en';
    const segmenter = new Intl.Segmenter(lang, {granularity: 'word'});
    const count = words => [...segmenter.segment(words)].filter(s => s.isWordLike).length;
    // The words of each question as shown (an intro above it counts as its own), and of
    // each of the review's answers, by item id: what each question costs to read.
    const items = {};
    let intro = 0;
    for (const el of main.querySelectorAll('.question, p.intro, li.answer')) {
        if (el.parentElement.closest('.question, li.answer')) continue;
        const words = count(el.innerText);
        if (el.matches('p.intro')) { intro += words; continue; }
        const asked = el.matches('li.answer') ? el.querySelector('.q[id^="p-"]') : null;
        const field = el.querySelector('[name]');
        const id = asked ? asked.id.slice(2) : el.id.startsWith('q-') ? el.id.slice(2)
            : field && field.name;
        items[id] = (items[id] || 0) + words + intro;
        intro = 0;
    }
    aside.forEach((el, n) => {
        if (kept[n]) el.style.setProperty('display', kept[n], priority[n]);
        else el.style.removeProperty('display');
    });
    return {
        words: count(text),
        text,
        items,
        height: document.documentElement.scrollHeight,
        width: document.documentElement.scrollWidth,
    };
}"""
# The items on the screen, as answer_all finds them (#q-ID or #ID), in one round trip.
PRESENT_JS = """ids => ids.filter(
    id => document.getElementById('q-' + id) || document.getElementById(id))"""


def minutes_for(words: float, taps: int, characters: int) -> float:
    """The model: reading, tapping and typing, in minutes."""
    return (
        words / WORDS_PER_MINUTE
        + taps * SECONDS_PER_TAP / 60
        + characters / CHARACTERS_PER_SECOND / 60
    )


@dataclass(frozen=True)
class Walk:
    """One walk from the welcome page to the review, and what it took."""

    language: str
    answers: str  # "typical" or "fullest"
    screens: int  # /step/ pages passed through, plus the safety page if it showed
    taps: int
    page_words: int  # the welcome and every question screen, read whole
    review_words: int  # the review screen, of which REVIEW_SHARE is read
    characters: int  # typed: text answers and medicine names
    promise: str  # the welcome page's "It takes about N minutes." as shown
    # Each page's height (CSS px, document scrollHeight) as screen_heights names them:
    # "welcome", "/step/N" (+ " screen K"), "/safety", "/review"; and the widest page.
    heights: dict[str, int] = field(default_factory=dict)
    widest: int = 0
    # What each question took, by item id: its words on its screen (an intro above it
    # included) and on the review, its taps and the characters typed into it.
    item_words: dict[str, int] = field(default_factory=dict)
    item_review_words: dict[str, int] = field(default_factory=dict)
    item_taps: dict[str, int] = field(default_factory=dict)
    item_characters: dict[str, int] = field(default_factory=dict)

    @property
    def review_height(self) -> int:
        return self.heights["/review"]

    @property
    def words(self) -> float:
        return self.page_words + REVIEW_SHARE * self.review_words

    @property
    def minutes(self) -> float:
        return minutes_for(self.words, self.taps, self.characters)

    def item_seconds(self) -> dict[str, float]:
        """Each question's share of the modelled time, in seconds, by item id."""
        return {
            item_id: 60
            * minutes_for(
                self.item_words.get(item_id, 0)
                + REVIEW_SHARE * self.item_review_words.get(item_id, 0),
                self.item_taps.get(item_id, 0),
                self.item_characters.get(item_id, 0),
            )
            for item_id in {*self.item_words, *self.item_review_words}
        }

    def row(self) -> dict:
        return {
            "language": self.language,
            "answers": self.answers,
            "screens": self.screens,
            "taps": self.taps,
            "words shown": round(self.words),
            "chars typed": self.characters,
            "minutes": f"{self.minutes:.2f}",
        }


def shown(page) -> dict:
    """The words shown in ``main`` (and the text they were counted in), the page's
    height and width."""
    return page.evaluate(WORDS_JS)


def _screen_taps(page, q, answers: dict) -> tuple[list[str], int]:
    """The items on this screen and the taps answering them takes, counted as
    test_patient_screens.answer_all counts them."""
    present = page.evaluate(PRESENT_JS, list(q.item_ids))
    return present, answer_taps(q, present, answers)


def _typed(page, q, answers: dict, present: list[str]) -> dict[str, int]:
    """Characters typed on this screen, by item id: every text box filled (fill_screen
    fills a box only when it is on the screen)."""
    characters: dict[str, int] = {}
    for item_id in present:
        _choices, texts = _form_values(q.items[item_id], answers[item_id])
        for field_id, text in texts.items():
            if text and page.locator(f"#{field_id}").count():
                characters[item_id] = characters.get(item_id, 0) + len(text)
    return characters


def walk(page, link: str, answers: dict, language: str, name: str = "") -> Walk:
    """From the invitation link through the welcome and every screen to the review,
    every answer in ``answers`` given; what was read, tapped and typed, and how tall each
    page was (measured when its answers are filled, as screen_heights measures)."""
    q = questionnaire.default()
    heights: dict[str, int] = {}
    widest = 0
    item_words: dict[str, int] = {}
    review_words_by_item: dict[str, int] = {}
    item_taps: dict[str, int] = {}
    item_characters: dict[str, int] = {}

    def read(name: str) -> int:
        nonlocal widest
        found = shown(page)
        heights[name] = found["height"]
        widest = max(widest, found["width"])
        into = review_words_by_item if name == "/review" else item_words
        for key, words in found["items"].items():
            item_id = key if key in q.items else key.rsplit("_", 1)[0]  # F2_text: F2
            into[item_id] = into.get(item_id, 0) + words
        return found["words"]

    page.goto(f"{link}?lang={language}")
    page.wait_for_load_state("load")
    promise = page.locator("main .duration")
    promise = promise.inner_text() if promise.count() else ""
    page_words = read("welcome")
    with page.expect_navigation():
        _primary(page).click()
    taps = ENTRY_TAPS + START_TAPS
    screens = characters = 0
    for _ in range(MAX_SCREENS):
        page.wait_for_load_state("load")
        path = urlsplit(page.url).path
        if path.startswith("/step/"):
            present, screen_taps = _screen_taps(page, q, answers)
            taps += screen_taps
            for item_id in present:
                item_taps[item_id] = answer_taps(q, [item_id], answers)
            fill_screen(page, answers)
            page.wait_for_load_state("load")
            typed = _typed(page, q, answers, present)
            characters += sum(typed.values())
            item_characters.update(typed)
            path += _screen_suffix(page)
        elif path != "/safety":
            break
        screens += 1
        page_words += read(path)
        with page.expect_navigation():
            _primary(page).click()
        taps += 1  # Next (Continue on the safety page)
    else:
        raise AssertionError(f"no review after {MAX_SCREENS} screens: at {page.url}")
    expect(page).to_have_url(re.compile(r"/review(#.*)?$"))
    page.wait_for_load_state("load")
    review_words = read("/review")
    return Walk(
        language=language,
        answers=name,
        screens=screens,
        taps=taps + SEND_TAPS,
        page_words=page_words,
        review_words=review_words,
        characters=characters,
        promise=promise,
        heights=heights,
        widest=widest,
        item_words=item_words,
        item_review_words=review_words_by_item,
        item_taps=item_taps,
        item_characters=item_characters,
    )


def measure(phone, server, language: str, answers: str = "typical", width: int = WIDTH) -> Walk:
    """One walk in a fresh phone-sized browser context, with a fresh invitation."""
    page = phone.open(width)
    try:
        return walk(page, server.invite().link, ANSWER_SETS[answers](), language, answers)
    finally:
        page.context.close()
