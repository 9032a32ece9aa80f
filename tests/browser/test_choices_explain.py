"""Choices that explain themselves (static/choices.js), as a patient meets them on a phone:
a fourth feeling where three are allowed is taken back with a message, a choice that goes
alone ("No worries") unticks the others and says which, and without JavaScript the
server's check after Next still explains. And the scale's "Prefer not to say" looks like
every other question's."""

from __future__ import annotations

import pytest

from .patient_ui import AXE_OPTIONS
from .staff_ui import format_violations

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail in CI) with a clear message
    expect = None

pytestmark = pytest.mark.browser

FEELINGS = ("calm", "sad", "tired", "numb")
MAX_MESSAGE = "You can pick up to %(n)s. Untick one to pick a different one."


def _primary(page):
    return page.locator("main .nav button.primary, main .nav a.primary").first


def _start(page, link: str, language: str) -> None:
    page.goto(f"{link}?lang={language}")
    _primary(page).tap()
    expect(page.locator("#q-T1")).to_be_visible()


def _walk_to(page, item_id: str, limit: int = 8) -> None:
    """Next (in any language), answering nothing, until the question is on the screen."""
    for _ in range(limit):
        if page.locator(f"#q-{item_id}").count():
            page.wait_for_load_state("load")
            return
        with page.expect_navigation():
            _primary(page).tap()
    raise AssertionError(f"never reached {item_id}")


def _choice(page, item_id: str, value: str):
    return page.locator(f"#q-{item_id} label.option:has(input[value='{value}'])")


def _box(page, item_id: str, value: str):
    return page.locator(f"#q-{item_id} input[value='{value}']")


def _note(page, item_id: str):
    return page.locator(f"#q-{item_id} [role=status]")


def _no_axe_violations(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    assert not violations, format_violations(violations)


def _translated(app, language: str, text: str, **variables) -> str:
    """What the app's own gettext makes of a message in that language (the compiled
    catalog; English until the message is translated)."""
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale(language):
        return gettext(text, **variables)


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_fourth_feeling_is_taken_back_and_explained(phone, live_server, app, language):
    page = phone.open(360)
    _start(page, live_server.invite().link, language)
    note = _note(page, "T1")
    expect(note).to_have_attribute("aria-live", "polite")
    expect(note).to_be_empty()
    for value in FEELINGS:
        _choice(page, "T1", value).tap()
    expect(page.locator("#q-T1 input:checked")).to_have_count(3)
    expect(_box(page, "T1", "numb")).not_to_be_checked()  # the one just ticked
    expect(note).to_be_visible()
    expect(note).to_contain_text("3")
    expect(note).to_contain_text(_translated(app, language, MAX_MESSAGE, n=3))
    assert note.evaluate("e => e.closest('fieldset').id") == "q-T1"
    size = note.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    _no_axe_violations(page)  # the message's contrast, the live region inside the group
    # Fewer than three: the message goes; another feeling can be picked.
    _choice(page, "T1", "sad").tap()
    expect(note).to_be_empty()
    _choice(page, "T1", "numb").tap()
    expect(_box(page, "T1", "numb")).to_be_checked()
    expect(page.locator("#q-T1 input:checked")).to_have_count(3)
    expect(note).to_be_empty()
    assert not phone.console, phone.console


@pytest.mark.parametrize("language", ["en", "ar"])
def test_no_worries_and_a_worry_untick_each_other_and_say_so(phone, live_server, language):
    page = phone.open(360)
    _start(page, live_server.invite().link, language)
    _walk_to(page, "M5")
    note = _note(page, "M5")
    label = {
        value: _choice(page, "M5", value).inner_text().strip()
        for value in ("side_effects", "long_term_harm", "none")
    }
    _choice(page, "M5", "side_effects").tap()
    _choice(page, "M5", "long_term_harm").tap()
    expect(note).to_be_empty()
    _choice(page, "M5", "none").tap()
    expect(_box(page, "M5", "none")).to_be_checked()
    expect(page.locator("#q-M5 input:checked")).to_have_count(1)
    expect(note).to_be_visible()
    expect(note).to_contain_text(label["side_effects"])
    expect(note).to_contain_text(label["long_term_harm"])
    if language == "en":
        expect(note).to_have_text(
            "Your other answers were unticked: Side effects and Harm over a long time."
        )
    _no_axe_violations(page)
    # A worry after "No worries": "No worries" goes, and the message names it.
    _choice(page, "M5", "cost_access").tap()
    expect(_box(page, "M5", "none")).not_to_be_checked()
    expect(_box(page, "M5", "cost_access")).to_be_checked()
    expect(note).to_contain_text(label["none"])
    expect(note).not_to_contain_text(label["side_effects"])
    if language == "en":
        expect(note).to_have_text("“No worries” was unticked.")
    # A tick that unticks nothing clears the message.
    _choice(page, "M5", "dependent").tap()
    expect(note).to_be_empty()
    expect(page.locator("#q-M5 input:checked")).to_have_count(2)
    assert not phone.console, phone.console


def test_without_javascript_the_server_still_explains_after_next(chromium, live_server):
    context = chromium.new_context(
        viewport={"width": 360, "height": 740}, java_script_enabled=False, locale="en-US"
    )
    try:
        page = context.new_page()
        page.goto(live_server.invite().link)
        _primary(page).click()
        for value in FEELINGS:
            _choice(page, "T1", value).click()
        expect(page.locator("#q-T1 input:checked")).to_have_count(4)
        expect(_note(page, "T1")).to_be_empty()
        with page.expect_navigation():
            _primary(page).click()
        expect(page.locator(".error-summary")).to_be_visible()
        expect(page.locator("#T1-error")).to_have_text("Please pick no more than 3.")
        expect(page.locator("#q-T1 input:checked")).to_have_count(4)  # all kept, as sent
    finally:
        context.close()


SKIP_STYLE_JS = """id => {
    const label = document.querySelector(`#q-${id} label.option.skip`);
    const style = getComputedStyle(label), box = label.getBoundingClientRect();
    const keys = ['display', 'flexDirection', 'alignItems', 'justifyContent', 'borderStyle',
                  'fontWeight', 'color', 'gap', 'paddingInlineStart', 'marginBlockStart'];
    return {style: Object.fromEntries(keys.map(k => [k, style[k]])), height: box.height,
            inputFirst: label.firstElementChild.tagName === 'INPUT',
            scrollWidth: document.documentElement.scrollWidth, width: innerWidth};
}"""


# Every shipped language on the narrowest phone; right-to-left Arabic at 360 px too.
SKIP_CASES = [(language, 320) for language in ("en", "es", "fr", "pt_BR", "vi", "zh_Hans", "ar")]


@pytest.mark.parametrize(("language", "width"), [*SKIP_CASES, ("ar", 360)])
def test_the_scales_prefer_not_to_say_looks_like_every_other(phone, live_server, language, width):
    page = phone.open(width)
    _start(page, live_server.invite().link, language)
    _walk_to(page, "M0")  # a single choice
    single = page.evaluate(SKIP_STYLE_JS, "M0")
    _walk_to(page, "M4")  # a scale
    scale = page.evaluate(SKIP_STYLE_JS, "M4")
    assert scale["style"]["borderStyle"] == "dashed"
    assert scale["style"] == single["style"]
    assert scale["inputFirst"] and single["inputFirst"]
    assert scale["height"] >= 44, scale
    assert scale["scrollWidth"] <= scale["width"] == width, scale
    # Chosen the same way too: a tap on the words ticks it.
    page.locator("#q-M4 label.option.skip").tap()
    expect(page.locator("#q-M4 label.option.skip input")).to_be_checked()
