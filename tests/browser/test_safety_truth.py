"""Truth before the answer, read in Chromium as a patient reads it (CONTENT.md version 3,
S1): in English, Spanish and Arabic the welcome says that the safety question alerts the
front desk, and the S1 screen names the alert on screen above its choices, readable
(not hidden, not clipped, in the patient's language) before any choice can be tapped.
Outside the clinic's staffed hours both say instead when the answer will be seen.

The walk uses structure (the primary button, the S1 inputs), not English words."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

import pytest
from playwright.sync_api import expect

from .patient_ui import translator

pytestmark = pytest.mark.browser

WELCOME_TRUTH = (
    "Your psychiatrist reads your answers before your visit. One question is about your "
    "safety. If you answer it with anything other than “Not at all”, the front desk is "
    "told right away so someone can check on you."
)


def s1_help() -> str:
    from patientapp.questionnaire import model

    return model.default().items["S1"].help


def _primary(page):
    return page.locator("main .nav button.primary, main .nav a.primary").first


def _visible_text(page) -> str:
    return " ".join(page.locator("main").inner_text().split())


@pytest.mark.parametrize("language", ["en", "es", "ar"])
def test_the_alert_is_named_before_the_choices(phone, live_server, language):
    say = translator(language)
    page = phone.open(360)
    page.goto(f"{live_server.invite().link}?lang={language}")
    assert page.locator("html").get_attribute("lang") == language
    welcome = _visible_text(page)
    assert " ".join(say(WELCOME_TRUTH).split()) in welcome
    with page.expect_navigation():
        _primary(page).tap()
    page.wait_for_load_state("load")
    while not page.locator("input[name=S1]").count():  # Next, unanswered, to the S1 screen
        assert "/step/" in page.url, page.url
        with page.expect_navigation():
            _primary(page).tap()
        page.wait_for_load_state("load")
    hint = page.locator("#S1-hint")
    expect(hint).to_be_visible()
    assert " ".join(hint.inner_text().split()) == " ".join(say(s1_help()).split())
    # Read before the choices: above the first choice on screen, and first in reading
    # (and screen reader) order, whichever way the language runs.
    first_choice = page.locator("input[name=S1]").first.locator("xpath=ancestor::label[1]")
    hint_box, choice_box = hint.bounding_box(), first_choice.bounding_box()
    assert hint_box["y"] + hint_box["height"] <= choice_box["y"] + 1, (hint_box, choice_box)
    order = page.evaluate(
        """() => {
            const hint = document.getElementById('S1-hint');
            const choice = document.querySelector('input[name=S1]');
            return hint.compareDocumentPosition(choice) & Node.DOCUMENT_POSITION_FOLLOWING;
        }"""
    )
    assert order, "the S1 help must come before the choices in the page"
    described = page.locator("input[name=S1]").first.get_attribute("aria-describedby") or ""
    fieldset = page.locator("fieldset:has(input[name=S1])").first
    described += " " + (fieldset.get_attribute("aria-describedby") or "")
    assert "S1-hint" in described.split(), "a screen reader hears the alert with the question"
    # Nothing clips it: the whole sentence is inside the phone's width.
    assert hint_box["x"] >= 0 and hint_box["x"] + hint_box["width"] <= 360 + 0.5


@contextmanager
def clinic_closed_now(live_server):
    """Staffed hours that leave the clinic closed now: one hour, three days ahead (never
    the current minute, whatever the time the suite runs). Yields when it next opens."""
    opens = datetime.combine(date.today() + timedelta(days=3), time(9, 0))
    schedule = [None] * 7
    schedule[opens.weekday()] = ["09:00", "10:00"]
    db = sqlite3.connect(live_server.database, timeout=10)
    try:
        with db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('staffed_hours', ?)",
                (json.dumps(schedule),),
            )
        yield opens
    finally:
        with db:
            db.execute("DELETE FROM settings WHERE key = 'staffed_hours'")
        db.close()


@pytest.mark.parametrize("language", ["en", "es", "ar"])
def test_outside_staffed_hours_the_screens_say_when_it_will_be_seen(phone, live_server, language):
    """At home, after hours: the welcome and the S1 screen say the clinic is closed and
    name when the answer will be seen, above the choices, in the patient's language."""
    from babel.dates import format_datetime, format_time

    from patientapp.questionnaire import model

    say = translator(language)
    with clinic_closed_now(live_server) as opens:
        day = format_datetime(opens, "EEEE", locale=language)
        at = format_time(opens, "short", locale=language)
        page = phone.open(360)
        page.goto(f"{live_server.invite().link}?lang={language}")
        welcome = _visible_text(page)
        closed = say(
            "One question is about your safety. If you answer it with anything other than "
            "“Not at all”, staff will see it when the clinic opens on %(day)s at %(time)s. "
            "If you need help before then, please use the crisis help below."
        )
        assert " ".join((closed % {"day": day, "time": at}).split()) in welcome
        assert " ".join(say(WELCOME_TRUTH).split()) not in welcome
        with page.expect_navigation():
            _primary(page).tap()
        page.wait_for_load_state("load")
        while not page.locator("input[name=S1]").count():
            with page.expect_navigation():
                _primary(page).tap()
            page.wait_for_load_state("load")
        hint = page.locator("#S1-hint")
        expect(hint).to_be_visible()
        expected = say(model.default().items["S1"].help_closed) % {"day": day, "time": at}
        assert " ".join(hint.inner_text().split()) == " ".join(expected.split())
        first_choice = page.locator("input[name=S1]").first.locator("xpath=ancestor::label[1]")
        hint_box, choice_box = hint.bounding_box(), first_choice.bounding_box()
        assert hint_box["y"] + hint_box["height"] <= choice_box["y"] + 1
