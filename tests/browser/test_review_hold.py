"""The review's "In person" toggle, in Chromium: the main privacy control reads at body
size in every shipped language at 320 and 360 px, in whole words, with a 44 x 44 px tap
target well apart from the next one; a held row looks held and says what the
psychiatrist will see; a hold saved by "Change" or by Enter is shown on the next load,
with or without JavaScript; axe finds nothing with a row held.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from .patient_ui import AXE_OPTIONS, expect
from .staff_ui import LANGUAGES, format_violations
from .test_patient_screens import answer_all, full_answers

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("PATIENTAPP_SCREENSHOTS")  # optional: a folder for full-page shots
MEASURES = os.environ.get("PATIENTAPP_HOLD_MEASURES")  # optional: append the numbers here
MIN_TARGET = 44
MIN_GAP = 8
WIDTHS = (320, 360)

# Every toggle on the page, measured; a list of what is wrong, and the smallest numbers.
HOLD_JS = """minimum => {
    const problems = [];
    const body = parseFloat(getComputedStyle(document.body).fontSize);
    const holds = [...document.querySelectorAll('label.hold')];
    const found = {body, font: Infinity, width: Infinity, height: Infinity, gap: Infinity,
                   holds: holds.length};
    const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5
        && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
    let previous = null;
    for (const hold of holds) {
        const name = hold.htmlFor;
        const style = getComputedStyle(hold);
        const font = parseFloat(style.fontSize);
        const r = hold.getBoundingClientRect();
        found.font = Math.min(found.font, font);
        found.width = Math.min(found.width, r.width);
        found.height = Math.min(found.height, r.height);
        if (font < body) problems.push(`${name}: ${font} px text, under the body's ${body}`);
        if (r.width < minimum.target || r.height < minimum.target)
            problems.push(`${name}: ${r.width} x ${r.height} px`);
        if (previous) {
            const gap = r.top - previous.bottom;
            found.gap = Math.min(found.gap, gap);
            if (gap < minimum.gap) problems.push(`${name}: ${gap} px under the one above`);
        }
        previous = r;
        if (hold.scrollWidth > hold.clientWidth) problems.push(`${name}: text overflows`);
        const box = hold.querySelector('input[type=checkbox]').getBoundingClientRect();
        const text = [...hold.childNodes].find(n => n.nodeType === Node.TEXT_NODE);
        if (!text || !text.data.trim()) { problems.push(`${name}: no words`); continue; }
        const whole = document.createRange();
        whole.selectNodeContents(text);
        for (const line of whole.getClientRects())
            if (overlap(box, line)) problems.push(`${name}: the box covers its words`);
        for (const word of text.data.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(text, word.index);
            range.setEnd(text, word.index + word[0].length);
            const rects = [...range.getClientRects()].filter(b => b.width > 0);
            const tops = new Set(rects.map(b => Math.round(b.top)));
            if (tops.size !== 1) problems.push(`${name}: "${word[0]}" is broken over lines`);
            for (const rect of rects)
                if (rect.left < r.left - 0.5 || rect.right > r.right + 0.5)
                    problems.push(`${name}: "${word[0]}" sticks out of its box`);
        }
        if (style.hyphens === 'auto') problems.push(`${name}: may be hyphenated`);
    }
    const scroll = document.documentElement.scrollWidth;
    if (scroll > innerWidth) problems.push(`scrolls sideways: ${scroll} px in ${innerWidth}`);
    return {problems, found};
}"""

# What each row shows of its hold: the box, the row's look, and whether its note is shown
# (and so read out: a note that is display: none is not).
ROWS_JS = """() => [...document.querySelectorAll('li.answer')]
    .filter(row => row.querySelector('label.hold'))
    .map(row => {
        const note = row.querySelector('.held-note');
        const style = getComputedStyle(row);
        return {
            id: row.querySelector('input[name=in_person]').value,
            checked: row.querySelector('input[name=in_person]').checked,
            background: style.backgroundColor,
            edge: parseFloat(style.borderInlineStartWidth),
            noteShown: note.checkVisibility() && getComputedStyle(note).display !== 'none',
            noteText: note.textContent.trim(),
        };
    })"""

PLAIN = "rgba(0, 0, 0, 0)"


def _review(phone, live_server, width: int = 320, language: str = "en"):
    page = phone.open(width)
    invitation = live_server.invite()
    answer_all(page, invitation.link, full_answers(), language)
    return page, invitation


def _switch(page, language: str) -> None:
    """The review's own language buttons (they save the ticks, as "Change" does)."""
    with page.expect_navigation():
        page.locator(f"button[name=lang][value={language}]").click()
    page.wait_for_load_state("load")


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def _held_look(rows: list[dict], held: set[str]) -> list[str]:
    """Rows whose look or note does not match their box."""
    wrong = []
    for row in rows:
        looks_held = row["background"] != PLAIN and row["edge"] >= 4
        if row["checked"] != (row["id"] in held):
            wrong.append(f"{row['id']}: ticked {row['checked']}, expected {row['id'] in held}")
        if looks_held != row["checked"]:
            wrong.append(f"{row['id']}: looks held {looks_held}, ticked {row['checked']}")
        if row["noteShown"] != row["checked"]:
            wrong.append(f"{row['id']}: note shown {row['noteShown']}, ticked {row['checked']}")
    return wrong


def test_the_toggle_is_body_size_whole_words_and_apart_in_every_language(phone, live_server):
    page, _ = _review(phone, live_server)
    problems, numbers = {}, {}
    first = page.locator("input[name=in_person]").first.get_attribute("value")
    for language in LANGUAGES:
        _switch(page, language)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 740})
            result = page.evaluate(HOLD_JS, {"target": MIN_TARGET, "gap": MIN_GAP})
            numbers[f"{language} {width}"] = result["found"]
            assert result["found"]["holds"] > 20, result["found"]  # every answered row
            if result["problems"]:
                problems[f"{language} at {width} px"] = result["problems"]
        # Held, the row grows by its note: the toggles stay apart and whole.
        if language == LANGUAGES[0]:
            page.locator(f"label.hold:has(#hold-{first})").tap()
            expect(page.locator(f"#hold-{first}")).to_be_checked()
    page.set_viewport_size({"width": 320, "height": 740})
    for language in ("zh_Hans", "ar"):
        _switch(page, language)
        _shot(page, f"review-held-{language}-320")
    if MEASURES:
        with open(MEASURES, "a", encoding="utf-8") as out:
            out.write(json.dumps(numbers) + "\n")
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_a_held_row_looks_held_says_so_and_stays_held(phone, live_server, chromium):
    page, invitation = _review(phone, live_server)
    rows = page.evaluate(ROWS_JS)
    assert not _held_look(rows, set()), _held_look(rows, set())
    ids = [row["id"] for row in rows]
    short, long = ids[0], "H1"  # a one-line answer, and a sentence in the patient's words

    # One tap, as a patient would: that row, and only that row, changes.
    page.locator(f"label.hold:has(#hold-{long})").tap()
    expect(page.locator(f"#hold-{long}")).to_be_checked()
    rows = page.evaluate(ROWS_JS)
    assert not _held_look(rows, {long}), _held_look(rows, {long})
    note = page.locator(f"li.answer:has(#hold-{long}) .held-note")
    expect(note).to_be_visible()
    expect(note).to_have_text(re.compile(r"only the topic", re.I))
    expect(page.locator(".held-note:visible")).to_have_count(1)
    # Screen readers: the only note in the accessibility tree is the held row's.
    read_out = page.get_by_role("paragraph").filter(has_text=note.inner_text())
    expect(read_out).to_have_count(1)
    _shot(page, "review-held-en-320")

    # Untick and tick again: the look follows the box both ways.
    page.locator(f"label.hold:has(#hold-{long})").tap()
    assert not _held_look(page.evaluate(ROWS_JS), set())
    page.locator(f"label.hold:has(#hold-{long})").tap()

    # Enter on a box saves the ticks (the hidden save button) and stays on the review.
    with page.expect_navigation():
        page.locator(f"#hold-{long}").press("Enter")
    expect(page).to_have_url(re.compile(r"/review(#.*)?$"))
    assert live_server.visit(invitation.ref)["in_person"] == {long}
    assert not _held_look(page.evaluate(ROWS_JS), {long})

    # A second hold, then "Change" and back: both are shown held as the page loads.
    page.locator(f"label.hold:has(#hold-{short})").tap()
    section = page.locator(f"section.review-section:has(#hold-{short})")
    with page.expect_navigation():
        section.locator("button[name=action][value^=edit-]").click()
    expect(page).to_have_url(re.compile(r"/step/"))
    with page.expect_navigation():
        page.get_by_role("button", name="Back to review", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/review"))
    assert live_server.visit(invitation.ref)["in_person"] == {long, short}
    assert not _held_look(page.evaluate(ROWS_JS), {long, short})
    page.reload()
    assert not _held_look(page.evaluate(ROWS_JS), {long, short})

    # Without JavaScript (the review has none): the same state on load, and a tap still
    # shows the note at once, because the stylesheet alone shows it.
    context = chromium.new_context(
        viewport={"width": 320, "height": 740},
        has_touch=True,
        is_mobile=True,
        java_script_enabled=False,
        locale="en-US",
    )
    try:
        context.add_cookies(page.context.cookies())
        plain = context.new_page()
        plain.goto(f"{live_server.url}/review")
        expect(plain.locator(".held-note:visible")).to_have_count(2)
        expect(plain.locator(f"li.answer:has(#hold-{long}) .held-note")).to_be_visible()
        expect(plain.locator(f"li.answer:has(#hold-{short}) .held-note")).to_be_visible()
        third = ids[1]
        plain.locator(f"label.hold:has(#hold-{third})").tap()
        expect(plain.locator(f"li.answer:has(#hold-{third}) .held-note")).to_be_visible()
        expect(plain.locator(".held-note:visible")).to_have_count(3)
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "ar"])
def test_axe_finds_nothing_on_the_review_with_a_row_held(phone, live_server, language):
    from axe_playwright_python.sync_playwright import Axe

    page, _ = _review(phone, live_server, 320, language)
    page.locator("label.hold:has(#hold-H1)").tap()
    expect(page.locator("#hold-H1")).to_be_checked()
    expect(page.locator("li.answer:has(#hold-H1) .held-note")).to_be_visible()
    violations = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    assert not violations, format_violations(violations)
