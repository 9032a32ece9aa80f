"""The standard measures on a phone, in Chromium (issue 25): a patient invited with PHQ-9
and GAD-7 taps through their screens at 320 and 360 px: each begins under its stem, the
progress counts them, every answer is a 44 px target, nothing scrolls sideways, axe finds
nothing, no screen is taller than the others may be, and each screen of a measure
begins under its stem; PHQ-9's item 9 follows on the
safety screen, asked once; the review holds a measure's answer like any other."""

from __future__ import annotations

import re

import pytest

from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire

from .patient_ui import AXE_OPTIONS, expect
from .staff_ui import format_violations
from .test_patient_pages import MIN_TARGET, OVERFLOW_JS, TARGETS_JS

pytestmark = pytest.mark.browser

Q = questionnaire.default()
BOTH = ("gad7", "phq9")
SCREENS = len(patient_forms.shown_pages(Q, frozenset(Q.not_asked({}, BOTH))))
TALLEST = 1900  # px with every answer filled, as every question screen (test_patient_screens)


def _next(page) -> None:
    with page.expect_navigation():
        page.locator("main .nav button.primary").tap()
    page.wait_for_load_state("load")


def _no_axe_violations(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    assert not violations, format_violations(violations)


@pytest.mark.parametrize("width", [320, 360])
def test_a_patient_answers_both_measures_on_a_phone(phone, live_server, width):
    invitation = live_server.invite_with(*BOTH)
    page = phone.open(width)
    page.goto(invitation.link)
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    expect(page.locator(".progress p")).to_have_text(re.compile(rf"^Step 1 of {SCREENS}$"))
    while "Feeling nervous" not in page.locator("main").inner_text():
        _next(page)
    stems = 0
    for _screen in range(6):  # GAD-7's three screens, then PHQ-9's three
        main = page.locator("main").inner_text()
        stems += main.count("Over the last 2 weeks, how often have you been bothered by")
        assert "better off dead" not in main  # item 9 is never on a measure's screen
        for name in page.locator("main input[type=radio][value=several_days]").evaluate_all(
            "els => els.map(e => e.name)"
        ):
            page.locator(f"label.option:has(input[name='{name}'][value=more_than_half])").tap()
        overflow = page.evaluate(OVERFLOW_JS)
        assert overflow["scrollWidth"] <= overflow["innerWidth"], overflow
        assert not page.evaluate(TARGETS_JS, MIN_TARGET)
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height <= TALLEST, (width, page.url, height)
        if _screen in (0, 3):
            _no_axe_violations(page)
        _next(page)
    assert stems == 6  # each measure's stem above its questions, on every screen of it
    # PHQ-9's item 9 is the safety question, on its own screen right after item 8.
    expect(page.locator("main")).to_contain_text("better off dead")
    expect(page.locator(".progress p")).to_have_text(f"Step {SCREENS} of {SCREENS}")
    page.locator("label.option:has(input[name=S1][value=not_at_all])").tap()
    _next(page)
    expect(page).to_have_url(re.compile(r"/review$"))
    expect(page.locator("#p-GAD7_1")).to_have_text("Feeling nervous, anxious or on edge")
    page.locator("label.hold:has(#hold-PHQ9_3)").tap()
    expect(page.locator("#hold-PHQ9_3")).to_be_checked()
    with page.expect_navigation():
        page.locator("button[name=action][value=submit]").tap()
    stored = live_server.visit(invitation.ref)
    assert stored["answers"]["GAD7_7"] == '"more_than_half"'
    assert stored["in_person"] == {"PHQ9_3"}
    assert stored["measures_offered"] == "gad7 phq9"
