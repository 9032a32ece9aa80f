"""Screen length, in Chromium: with every answer filled (the fullest answers of
maximal_visit: every choice that can go together, six medicines with 60-character names,
300-character texts), no patient screen is taller than about two and a half phone screens,
in every shipped language, at 360 x 740 and at 320 px.

The fill goes by the questionnaire definition, not by page wording, so it covers every
item of every type, the items added later included.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from patientapp.questionnaire import model as questionnaire

from .maximal_visit import maximal_answers
from .patient_ui import expect
from .staff_ui import LANGUAGES

pytestmark = pytest.mark.browser

SCREEN_BUDGET = 1900  # CSS px at 360 x 740: about two and a half phone screens
HEIGHTS_FILE = os.environ.get("PATIENTAPP_SCREEN_HEIGHTS")  # optional: append results here
SHOTS = os.environ.get("PATIENTAPP_SCREENSHOTS")  # optional: a folder for full-page shots

FILL_JS = """answers => {
    for (const [name, value] of Object.entries(answers)) {
        const inputs = [...document.querySelectorAll(`[name="${name}"]`)];
        for (const input of inputs) {
            if (input.type === 'checkbox' || input.type === 'radio') {
                input.checked = [].concat(value).map(String).includes(input.value);
            }
        }
    }
}"""


def _form_values(item, value) -> tuple[dict, dict]:
    """(choices by input name, texts by field id) for one item's stored answer."""
    kind = item.type
    if kind in ("single", "multi", "scale"):
        return {item.id: value}, {}
    if kind == "text":
        return {}, {item.id: value}
    if kind == "yesno_text":
        return {item.id: value["choice"]}, {f"{item.id}_text": value["text"]}
    if kind == "medlist":
        choices = {f"{item.id}-{n}-feeling": row["feeling"] for n, row in enumerate(value)}
        texts = {f"{item.id}-{n}-name": row["name"] for n, row in enumerate(value)}
        return choices, texts
    raise AssertionError(f"no fill for item type {kind}")


def fill_screen(page, answers: dict) -> None:
    """Fill every question on the current screen with its fullest answer, adding medicine
    rows one at a time until the list is full."""
    q = questionnaire.default()
    while True:
        present = [i for i in q.item_ids if page.locator(f"#q-{i}, #{i}").count()]
        choices, texts = {}, {}
        for item_id in present:
            more_choices, more_texts = _form_values(q.items[item_id], answers[item_id])
            choices.update(more_choices)
            texts.update(more_texts)
        page.evaluate(FILL_JS, choices)
        for field_id, text in texts.items():
            box = page.locator(f"#{field_id}")
            if box.count():
                box.fill(text)
        add = page.locator("button[value=add]")
        wanted = max((len(answers[i]) for i in present if q.items[i].type == "medlist"), default=0)
        rows = page.locator("fieldset.med-row").count()
        if add.count() and rows < wanted:
            with page.expect_navigation():
                add.click()
            page.wait_for_load_state("load")
            assert page.locator("fieldset.med-row").count() == rows + 1, "add = one row"
            continue
        return


def _primary(page):
    return page.locator("main .nav button.primary, main .nav a.primary").first


def screen_heights(phone, server, language: str, width: int) -> dict[str, int]:
    """Walk every screen with every answer filled; the page height of each, by name."""
    answers = maximal_answers()
    page = phone.open(width)
    page.goto(f"{server.invite().link}?lang={language}")
    heights: dict[str, int] = {}

    def measure(name: str) -> None:
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        heights[name] = page.evaluate("document.documentElement.scrollHeight")
        if SHOTS:
            shot = re.sub(r"\W+", "-", name.strip("/"))
            page.screenshot(path=f"{SHOTS}/{language}-{width}-{shot}.png", full_page=True)

    measure("welcome")
    _primary(page).click()
    for _ in range(30):
        path = page.url.split(server.url, 1)[1]
        if not path.startswith("/step/"):
            break
        fill_screen(page, answers)
        measure(re.sub(r"[?#].*", "", path) + _screen_suffix(page))
        with page.expect_navigation():
            _primary(page).click()
    if re.sub(r"[?#].*", "", page.url).endswith("/safety"):
        measure("/safety")
        with page.expect_navigation():
            _primary(page).click()
    expect(page).to_have_url(re.compile(r"/review$"))
    measure("/review")
    return heights


def _screen_suffix(page) -> str:
    screen = page.locator("input[name=screen]")
    return f" screen {screen.get_attribute('value')}" if screen.count() else ""


@pytest.mark.parametrize("width", [360, 320])
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_screen_is_longer_than_the_budget(phone, live_server, language, width):
    heights = screen_heights(phone, live_server, language, width)
    if HEIGHTS_FILE:
        with open(HEIGHTS_FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps({"language": language, "width": width, "heights": heights}))
            out.write("\n")
    steps = [name for name in heights if name.startswith("/step/")]
    assert len(steps) >= len(questionnaire.default().sections), heights
    too_long = {
        name: height
        for name, height in heights.items()
        if height > SCREEN_BUDGET and name != "/review"
    }
    assert not too_long, f"screens over {SCREEN_BUDGET} px in {language} at {width} px: {too_long}"


# --- the scales ------------------------------------------------------------------------------

SCALE_JS = """id => {
    const rect = el => { const r = el.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                width: r.width, height: r.height}; };
    const q = document.getElementById('q-' + id);
    return {
        rtl: getComputedStyle(q).direction === 'rtl',
        numbers: [...q.querySelectorAll('.options label.option')].map(rect),
        options: rect(q.querySelector('.options')),
        min: rect(q.querySelector('.scale-min')),
        max: rect(q.querySelector('.scale-max')),
        skip: rect(q.querySelector('label.option.skip')),
    };
}"""
NEAR = 2.5  # CSS px


def _start(box, rtl):
    return box["right"] if rtl else box["left"]


def _end(box, rtl):
    return box["left"] if rtl else box["right"]


def scale_problems(layout: dict) -> list[str]:
    """What is wrong with one scale's layout: label positions against the numbers' boxes,
    row lengths, target sizes, the place of "Prefer not to say"."""
    rtl, numbers, low, high = layout["rtl"], layout["numbers"], layout["min"], layout["max"]
    first, last = numbers[0], numbers[-1]
    problems = []
    small = [n for n, box in enumerate(numbers) if box["width"] < 44 or box["height"] < 44]
    if small:
        problems.append(f"numbers under 44 x 44 px: {small}")
    rows: dict[int, int] = {}
    for box in numbers:
        rows[round(box["top"])] = rows.get(round(box["top"]), 0) + 1
    if min(rows.values()) < 2 and len(rows) > 1:
        problems.append(f"a number alone on a row: {sorted(rows.items())}")
    if abs(_start(low, rtl) - _start(first, rtl)) > NEAR or low["bottom"] > first["top"]:
        problems.append(f"low label {low} is not over the first number {first}")
    if abs(_end(high, rtl) - _end(last, rtl)) > NEAR:
        problems.append(f"high label {high} does not end with the last number {last}")
    if len(rows) == 1 and high["bottom"] > last["top"]:
        problems.append("on one row the high label belongs above the numbers")
    if len(rows) > 1 and high["top"] < last["bottom"]:
        problems.append("on several rows the high label belongs below the last row")
    if abs(_end(last, rtl) - _end(layout["options"], rtl)) > NEAR:
        problems.append("the last number does not reach the end of the scale")
    if abs(_start(first, rtl) - _start(layout["options"], rtl)) > NEAR:
        problems.append("the first number does not start the scale")
    if layout["skip"]["top"] < max(last["bottom"], high["bottom"]) + 12:
        problems.append("“Prefer not to say” is not set apart below the scale")
    return problems


def _walk_to(page, item_id: str, limit: int = 15) -> None:
    for _ in range(limit):
        if page.locator(f"#q-{item_id}").count():
            return
        with page.expect_navigation():
            _primary(page).click()
    raise AssertionError(f"never reached {item_id}")


@pytest.mark.parametrize("language", ["en", "es", "ar"])
def test_scales_read_right_from_320_to_430_px(phone, live_server, language):
    q = questionnaire.default()
    scales = [item.id for item in q.items.values() if item.type == "scale"]
    assert {"M4", "R1"} <= set(scales)
    page = phone.open(360)
    page.goto(f"{live_server.invite().link}?lang={language}")
    _primary(page).click()
    problems = {}
    for item_id in scales:
        _walk_to(page, item_id)
        page.wait_for_load_state("load")
        for width in (320, 340, 360, 375, 390, 412, 430):
            page.set_viewport_size({"width": width, "height": 740})
            found = scale_problems(page.evaluate(SCALE_JS, item_id))
            if found:
                problems[f"{item_id} at {width} px"] = found
        page.set_viewport_size({"width": 360, "height": 740})
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


# --- the review ------------------------------------------------------------------------------

# CSS px at 360 x 740, for a typical full answer set. It was about three phone screens
# (2,260) while the "In person" toggle was a 44 px column of 11 px words, and 2,530 in
# English (2,660 to 2,860 in the longer languages) with the toggle at body size while
# each question was cut to one line ending in "..." (25 of 26 in English at 360 px; an
# accessibility walk: a patient could not tell what they were sending or holding back).
# Each question whole, wrapped beside its toggle, the review is 2,630 to 3,515 px at
# 360 (Vietnamese the longest, about 4.8 screens), and the test below holds one more row
# at each size it measures (up to 13 held rows, each with its one-line note).
REVIEW_BUDGET = 3650
# At 320 px every line holds fewer words: 3,850 px in Vietnamese.
REVIEW_BUDGET_320 = 4000
SENTENCE = "Whether the dose is still right, since mornings are hard."
HOPE = "I would go back to my evening classes."


def full_answers() -> dict:
    """Every question answered the way a patient typically would: two choices where
    several fit, the first choice of one, the middle of a scale, a sentence in each text
    box, two medicines; not worrying on the safety question."""
    q = questionnaire.default()
    answers: dict = {}
    for item_id, item in q.items.items():
        choices = [c.id for c in item.choices if not c.exclusive]
        if item.type == "multi":
            answers[item_id] = choices[:2]
        elif item.type == "single":
            answers[item_id] = choices[0]
        elif item.type == "scale":
            answers[item_id] = (item.min + item.max) // 2
        elif item.type == "text":
            answers[item_id] = SENTENCE
        elif item.type == "yesno_text":
            answers[item_id] = {"choice": choices[0], "text": SENTENCE}
        elif item.type == "medlist":
            answers[item_id] = [
                {"name": "Sertraline 50 mg", "feeling": choices[0]},
                {"name": "Lithium", "feeling": choices[1]},
            ]
    answers["S1"] = "not_at_all"
    answers["H1"] = HOPE
    return answers


def answer_taps(q, present: list[str], answers: dict) -> int:
    """The taps answering these questions takes: one a choice, one a text box, per
    medicine its name box, its feeling and "Add another medicine" for each further row."""
    taps = 0
    for item_id in present:
        value = answers[item_id]
        if q.items[item_id].type == "medlist":
            taps += 3 * len(value) + len(value) - 1  # name, feeling, add
        elif isinstance(value, list):
            taps += len(value)
        else:
            taps += 2 if isinstance(value, dict) else 1
    return taps


def answer_all(page, link: str, answers: dict, language: str = "en") -> int:
    """From the invitation to the review screen, every answer filled; the taps it took
    (choices, text boxes, buttons)."""
    page.goto(f"{link}?lang={language}")
    _primary(page).click()
    taps = 1
    q = questionnaire.default()
    for _ in range(30):
        if "/step/" not in page.url:
            break
        present = [i for i in q.item_ids if page.locator(f"#q-{i}, #{i}").count()]
        taps += answer_taps(q, present, answers)
        fill_screen(page, answers)
        with page.expect_navigation():
            _primary(page).click()
        taps += 1
    expect(page).to_have_url(re.compile(r"/review(#.*)?$"))
    return taps


REVIEW_JS = """() => {
    const broken = [];
    for (const hold of document.querySelectorAll('label.hold')) {
        const r = hold.getBoundingClientRect();
        if (r.width < 44 || r.height < 44)
            broken.push(`${hold.htmlFor} is ${r.width} x ${r.height}`);
        if (hold.scrollWidth > hold.clientWidth + 1) broken.push(`${hold.htmlFor} overflows`);
        const text = [...hold.childNodes].find(n => n.nodeType === Node.TEXT_NODE);
        for (const word of text.data.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(text, word.index);
            range.setEnd(text, word.index + word[0].length);
            const tops = new Set([...range.getClientRects()].map(b => Math.round(b.top)));
            if (tops.size > 1) broken.push(`${hold.htmlFor}: "${word[0]}" breaks mid-word`);
        }
    }
    for (const answer of document.querySelectorAll('.answer .a')) {
        if (answer.scrollHeight > answer.clientHeight + 1
                || answer.scrollWidth > answer.clientWidth + 1)
            broken.push(`answer clipped: ${answer.textContent}`);
    }
    return {
        height: document.documentElement.scrollHeight,
        width: document.documentElement.scrollWidth,
        text: document.querySelector('main').innerText,
        broken,
    };
}"""


def test_the_review_of_a_full_answer_set_keeps_within_its_budget(phone, live_server):
    """In every language, at 360 and at 320 px: within the budget, no sideways scroll,
    one whole-word toggle of at least 44 x 44 px per answer, and every answer shown whole
    (the patient's own words are never clipped)."""
    page = phone.open(360)
    answers = full_answers()
    invitation = live_server.invite()
    answer_all(page, invitation.link, answers)
    holds = page.locator("label.hold")
    own = [i for i in questionnaire.default().items.values() if not i.instrument]
    expect(holds).to_have_count(len(own) - 1)  # not S1; this visit asks no measure
    to_hold = iter(
        page.locator("input[name=in_person]").evaluate_all("els => els.map(e => e.value)")
    )
    held = set()
    assert page.locator("label.option").count() == 0  # no wall of boxes
    own_words = [SENTENCE, HOPE, *(row["name"] for row in answers["M1"])]
    heights, problems = {}, {}
    for language in LANGUAGES:
        with page.expect_navigation():
            page.locator(f"button[name=lang][value={language}]").click()
        page.wait_for_load_state("load")
        for width, budget in ((360, REVIEW_BUDGET), (320, REVIEW_BUDGET_320)):
            page.set_viewport_size({"width": width, "height": 740})
            found = page.evaluate(REVIEW_JS)
            heights[f"{language} {width}"] = found["height"]
            wrong = list(found["broken"])
            if found["height"] > budget:
                wrong.append(f"{found['height']} px tall, over {budget}")
            if found["width"] > width:
                wrong.append(f"scrolls sideways: {found['width']} px")
            wrong += [f"not shown whole: {w}" for w in own_words if w not in found["text"]]
            if wrong:
                problems[f"{language} at {width} px"] = wrong
            if SHOTS:
                page.screenshot(path=f"{SHOTS}/review-full-{language}-{width}.png", full_page=True)
            # One tap holds an answer, in every language at both widths.
            item_id = next(to_hold)
            page.locator(f"label.hold:has(#hold-{item_id})").tap()
            expect(page.locator(f"#hold-{item_id}")).to_be_checked()
            held.add(item_id)
        page.set_viewport_size({"width": 360, "height": 740})
    with page.expect_navigation():  # a language button saves the ticks, as "Change" does
        page.locator("button[name=lang][value=en]").click()
    expect(page.locator("input[name=in_person]:checked")).to_have_count(len(held))
    assert live_server.visit(invitation.ref)["in_person"] == held
    if HEIGHTS_FILE:
        with open(HEIGHTS_FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps({"review": heights}) + "\n")
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_one_tap_holds_an_answer_for_in_person_and_the_summary_says_so(
    phone, live_server, chromium
):
    from .staff_ui import StaffUser, create_users, log_in, open_desktop

    page = phone.open(360)
    invitation = live_server.invite()
    answer_all(page, invitation.link, full_answers())
    toggle = page.locator("label.hold:has(#hold-H1)")
    box = toggle.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44, box
    toggle.tap()
    expect(page.locator("#hold-H1")).to_be_checked()
    with page.expect_navigation():
        page.locator("button[value=submit]").tap()
    expect(page.locator("h1")).to_have_text("Thank you")
    visit = live_server.visit(invitation.ref)
    assert visit["in_person"] == {"H1"}

    doctor = StaffUser("psychiatrist", "hold-dr@example.org", "Dr. Hold")
    create_users(live_server, [doctor])
    staff = open_desktop(chromium)
    log_in(staff, live_server, doctor)
    staff.goto(f"{live_server.url}/staff/visits/{visit['id']}/summary")
    summary = staff.locator("main")
    expect(summary).to_contain_text("to discuss in person")
    expect(summary).not_to_contain_text(HOPE)  # held back: only its topic is shown
    staff.context.close()


# --- one medicine row at a time, without JavaScript --------------------------------------


def test_add_another_medicine_adds_one_row_at_a_time_with_javascript_off(chromium, live_server):
    context = chromium.new_context(
        viewport={"width": 320, "height": 740}, java_script_enabled=False, locale="en-US"
    )
    try:
        page = context.new_page()
        page.goto(live_server.invite().link)
        _primary(page).click()
        with page.expect_navigation():  # the first screen, which M0 ends
            _primary(page).click()
        rows = page.locator("fieldset.med-row")
        expect(rows).to_have_count(1)
        for shown in range(1, 6):
            page.fill(f"#M1-{shown - 1}-name", f"Medicine {shown}")
            with page.expect_navigation():
                page.locator("button[value=add]").click()
            expect(rows).to_have_count(shown + 1)  # one new empty row, never two
            expect(page.locator(f"#M1-{shown}-name")).to_have_value("")
        # Six is the most the list takes: no button offers a seventh.
        expect(page.locator("button[value=add]")).to_have_count(0)
    finally:
        context.close()
