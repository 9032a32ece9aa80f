"""A patient on a phone, in Chromium, against the production server: by taps, by
keyboard, with reloads, with the Back button, and through the safety question."""

from __future__ import annotations

import json
import re

import pytest

from .patient_ui import (
    STEPS,
    WORDS_BROKEN_IN,
    button,
    choose,
    expect,
    expect_heading,
    expect_step,
    next_until,
    open_and_start,
    option,
    skip_to_step,
    tap_next,
    translator,
    type_text,
)

pytestmark = pytest.mark.browser

TODAY_TEXT = "Whether I can lower the dose before summer."
FAMILY_TEXT = "My mother says pills are weakness."
HOPE_TEXT = "I would go back to work and see my friends."


def answer_every_step_by_taps(page) -> None:
    """Steps 1 to 8, answering checkboxes, radios, scales and text; ends on review. Each
    question is reached by tapping Next until it shows (choose and type_text do so): a
    screen may end one section and begin the next."""
    # 1 Today: checkboxes and free text.
    choose(page, "T1", "Worried")
    choose(page, "T1", "Tired")
    type_text(page, "T2", TODAY_TEXT)
    expect(page.locator("#T1-2")).to_be_checked()
    # 2 Medicines: taking medicine now (M0, which ends the first screen), a medicine row,
    # a radio, checkboxes, the 0-10 scale. The medicine list has a screen of its own; the
    # other questions follow on one or two.
    choose(page, "M0", "Yes")
    tap_next(page, 2)
    type_text(page, "M1-0-name", "Sertraline")
    option(page, "fieldset.med-row:has(#M1-0-name)", "Mixed").tap()
    for item_id, text in (
        ("M2", "Mixed"),
        ("M3", "Something that keeps me from getting worse"),
        ("M4", "8"),
    ):
        next_until(page, item_id)
        choose(page, item_id, text)
    expect(page.locator("#q-M4 input[value='8']")).to_be_checked()
    next_until(page, "M5")
    choose(page, "M5", "Side effects")
    # 3 How it's going.
    choose(page, "P1", "I chose to skip or change some")
    choose(page, "P2", "When I felt better")
    # 4 Family: yes/no with its text.
    choose(page, "F1", "They are against it")
    choose(page, "F2", "Yes")
    type_text(page, "F2_text", FAMILY_TEXT)
    choose(page, "F3", "I felt pressured or forced")
    # 5 Meaning.
    choose(page, "W1", "Stress")
    choose(page, "W2", "It makes feelings less strong so I can manage")
    # 6 Hopes.
    type_text(page, "H1", HOPE_TEXT)
    choose(page, "H2", "More would be expected of me")
    # 7 You and your psychiatrist: the 0-4 scale.
    choose(page, "R1", "3")
    choose(page, "R2", "We decide together")
    choose(page, "R3", "Side effects")
    # 8 The safety question.
    choose(page, "S1", "Not at all")
    tap_next(page)
    expect_heading(page, "Check your answers")


@pytest.mark.parametrize("width", [360, 320])
def test_whole_questionnaire_by_taps(phone, live_server, width):
    invitation = live_server.invite()
    page = phone.open(width)
    open_and_start(page, invitation.link)
    answer_every_step_by_taps(page)

    review = page.locator("main")
    for shown in (
        "Worried, Tired",
        TODAY_TEXT,
        "Sertraline — Mixed",
        "Something that keeps me from getting worse",
        "8 out of 10",
        "I chose to skip or change some",
        "They are against it",
        FAMILY_TEXT,
        "It makes feelings less strong so I can manage",
        HOPE_TEXT,
        "3 out of 4",
        "We decide together",
        "Not at all",
    ):
        expect(review).to_contain_text(shown)
    hold = page.locator("#hold-F2")
    expect(hold).not_to_be_checked()
    page.locator("label.hold:has(#hold-F2)").tap()
    expect(hold).to_be_checked()
    # The safety answer can't be held back for in person.
    expect(page.locator("#hold-S1")).to_have_count(0)
    button(page, "Send to my psychiatrist").tap()
    expect_heading(page, "Thank you")

    stored = live_server.visit(invitation.ref)
    assert stored["status"] == "submitted"
    assert stored["in_person"] == {"F2"}
    assert json.loads(stored["answers"]["T1"]) == ["worried", "tired"]
    assert json.loads(stored["answers"]["M4"]) == 8
    assert json.loads(stored["answers"]["R1"]) == 3
    assert json.loads(stored["answers"]["F2"]) == {"choice": "yes", "text": FAMILY_TEXT}
    assert json.loads(stored["answers"]["M1"]) == [{"name": "Sertraline", "feeling": "mixed"}]
    assert stored["safety"] == "not_endorsed"


def test_reload_mid_way_resumes_with_answers(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    choose(page, "T1", "Worried")
    type_text(page, "T2", TODAY_TEXT)
    tap_next(page, 2)
    next_until(page, "M2")
    choose(page, "M2", "Good about it")
    next_until(page, "M4")
    choose(page, "M4", "7")
    tap_next(page, 3)

    page.reload()
    expect_step(page, 3)
    # Back to a step answered earlier: reload keeps the step, its screen and its answers.
    button(page, "Back").tap()
    expect_step(page, 2)
    page.reload()
    expect_step(page, 2)
    while not page.locator("#q-M4").count():  # Back lands on the step's last screen
        with page.expect_navigation():
            button(page, "Back").tap()
        expect_step(page, 2)
    expect(page.locator("#q-M4 input[value='7']")).to_be_checked()
    expect(page.locator("#q-M2 input[value='positive']")).to_be_checked()
    while not page.locator("#q-M0").count():  # M0 ends the first screen, step 1's
        with page.expect_navigation():
            button(page, "Back").tap()
        page.wait_for_load_state("load")
    expect_step(page, 1)
    page.reload()
    expect_step(page, 1)
    expect(page.locator("#q-T1 input[value='worried']")).to_be_checked()
    expect(page.locator("#T2")).to_have_value(TODAY_TEXT)

    # Opening the link again, even on another phone, resumes where the patient was.
    other = phone.open(360)
    other.goto(invitation.link)
    expect_step(other, 1)
    expect(other.locator("#T2")).to_have_value(TODAY_TEXT)


def test_back_button_after_sending_shows_no_answers(phone, live_server):
    secret = "Only-my-psychiatrist-should-read-this 4711"
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    choose(page, "T1", "Sad")
    type_text(page, "T2", secret)
    tap_next(page, 2)
    type_text(page, "M1-0-name", "Lithium")
    skip_to_step(page, STEPS, current=2)
    tap_next(page)
    expect_heading(page, "Check your answers")
    expect(page.locator("main")).to_contain_text(secret)
    button(page, "Send to my psychiatrist").tap()
    expect_heading(page, "Thank you")

    visited = []
    for _ in range(STEPS + 4):  # back through review, every step, welcome and beyond
        page.go_back()
        page.wait_for_load_state()
        visited.append(page.url)
        html = page.content()
        for private in (secret, "Lithium"):
            assert private not in html, f"'{private}' shown after Back at {page.url}"
        expect(page.locator("input:checked")).to_have_count(0)
        if page.url.endswith("/ended"):
            # Sent, not "closed": nothing suggests the answers might not have gone.
            expect_heading(page, "Your answers were sent")
            expect(page.locator("main")).not_to_contain_text("Enter my code")
    assert any(url.endswith("/ended") for url in visited), visited


def test_change_on_the_review_screen_stays_one_word_at_320_px(phone, live_server):
    page = phone.open(320)
    open_and_start(page, live_server.invite().link)
    skip_to_step(page, STEPS)
    tap_next(page)
    expect_heading(page, "Check your answers")
    broken = {}
    for code in page.locator("button[name=lang]").evaluate_all("els => els.map(e => e.value)"):
        with page.expect_navigation():
            page.locator(f"button[name=lang][value={code}]").tap()
        lines = page.evaluate(
            """() => [...document.querySelectorAll('.review-head button.link')].map(el => {
                const range = document.createRange();
                range.selectNodeContents(el);
                return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
            })"""
        )
        if not lines or set(lines) != {1}:
            broken[code] = lines
    assert not broken, broken


def test_a_text_box_grows_with_its_text(phone, live_server):
    page = phone.open(360)
    open_and_start(page, live_server.invite().link)
    box = page.locator("#T2")
    before = box.bounding_box()["height"]
    type_text(page, "T2", "\n".join(f"Line {n} of what I want to say." for n in range(12)))
    after = box.bounding_box()["height"]
    assert after > before + 100, (before, after)


PHONES = [(360, "en"), (320, "es"), (320, "ar")]


def _start_in(page, link: str, language: str) -> None:
    page.goto(f"{link}?lang={language}")
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))


@pytest.mark.parametrize(("width", "language"), PHONES)
def test_language_link_at_the_top_keeps_what_was_typed(phone, live_server, width, language):
    page = phone.open(width)
    _start_in(page, live_server.invite().link, language)
    type_text(page, "T2", TODAY_TEXT)
    jump = page.locator("header.site .lang-jump a")
    assert jump.bounding_box()["y"] < 60, "the language control is at the top"
    jump.tap()
    assert page.url.endswith("#language")
    expect(page.locator("#language")).to_be_in_viewport()
    expect(page.locator("#T2")).to_have_value(TODAY_TEXT)
    other = "fr" if language == "en" else "en"
    with page.expect_navigation():
        page.locator(f"button[name=lang][value={other}]").tap()
    expect(page.locator("html")).to_have_attribute("lang", other)
    expect(page.locator("#T2")).to_have_value(TODAY_TEXT)


@pytest.mark.parametrize(("width", "language"), PHONES)
def test_the_endings_say_what_happens_next(phone, live_server, width, language):
    """Thanks says what happens next (wait, the front desk, the crisis text), with no
    word broken; Back after sending says the answers were sent and shows none of them."""
    _ = translator(language)
    secret = "Only-my-psychiatrist-should-read-this 4713"
    page = phone.open(width)
    _start_in(page, live_server.invite().link, language)
    page.fill("#T2", secret)
    while "/step/" in page.url:
        with page.expect_navigation():
            page.locator("main .nav button.primary").tap()
    expect(page).to_have_url(re.compile(r"/review$"))
    with page.expect_navigation():
        page.locator("button[value=submit]").tap()
    expect(page).to_have_url(re.compile(r"/thanks$"))
    main = page.locator("main")
    expect_heading(page, _("Thank you"))
    for text in (
        "What happens next",
        "Please wait here. Someone will call you for your visit.",
    ):
        expect(main).to_contain_text(_(text))
    # What to do when unsafe is said once, by the crisis text.
    expect(main.locator("p.crisis:not(.crisis-numbers)")).to_have_count(1)
    expect(main.locator(".notice p")).to_have_count(2)
    expect(main.locator(".crisis")).not_to_be_empty()
    assert page.locator("main").evaluate(WORDS_BROKEN_IN) == [], "a word breaks mid-word"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.go_back()
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"/ended"))
    expect_heading(page, _("Your answers were sent"))
    expect(main).not_to_contain_text(_("Enter my code"))
    assert secret not in page.content()


def test_add_another_medicine_adds_an_empty_row(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    tap_next(page, 2)
    next_until(page, "M1")  # past M0, on a screen of its own
    rows = page.locator("fieldset.med-row")
    expect(rows).to_have_count(1)
    type_text(page, "M1-0-name", "Lithium")
    with page.expect_navigation():
        button(page, "Add another medicine").tap()
    page.wait_for_load_state()
    expect_step(page, 2)
    assert rows.count() == 2, "not exactly one empty row was added"
    expect(page.locator("#M1-0-name")).to_have_value("Lithium")
    expect(page.locator("#M1-1-name")).to_be_in_viewport()
    expect(page.locator("#M1-1-name")).to_be_focused()  # ready for the next name
    # The new row's anchor leaves the address, so it never follows to later screens.
    assert "#" not in page.url, page.url
    tap_next(page)
    assert "#" not in page.url, page.url


def test_code_typed_on_the_start_page_opens_the_visit(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(320)
    page.goto(f"{live_server.url}/start")
    # Typed the forgiving way: lower case, a space instead of the dash.
    type_text(page, "code", invitation.code.lower().replace("-", " "))
    button(page, "Continue").tap()
    expect_heading(page, "Before your visit")
    button(page, "Start").tap()
    expect_step(page, 1)


def test_safety_screen_when_last_question_is_several_days(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(320)
    open_and_start(page, invitation.link)
    skip_to_step(page, STEPS)
    choose(page, "S1", "Several days")
    tap_next(page)
    expect(page).to_have_url(re.compile(r"/safety$"))
    expect_heading(page, "Thank you for telling us")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The front desk has been told")
    expect(alert).to_contain_text("emergency number")
    page.get_by_role("link", name="Continue").tap()
    expect_heading(page, "Check your answers")
    expect(page.locator("main")).to_contain_text("Several days")
    stored = live_server.visit(invitation.ref)
    assert stored["safety"] == "endorsed"


# --- keyboard only ---------------------------------------------------------------------------


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches selector; check the focus is visible."""
    trail = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """s => {
            const el = document.activeElement;
            if (!el || el === document.body) return {match: false, what: 'body'};
            const style = getComputedStyle(el);
            return {match: el.matches(s), what: el.outerHTML.slice(0, 80),
                    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
        }""",
            selector,
        )
        trail.append(focused["what"])
        if focused["match"]:
            assert focused["outline"], f"no visible focus outline on {focused['what']}"
            return
    raise AssertionError(
        f"Tab never reached {selector!r} on {page.url}; focus went through:\n"
        + "\n".join(trail[-15:])
    )


def test_keyboard_only_from_welcome_to_thanks(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    page.goto(invitation.link)  # the patient followed the link; from here on, keys only
    expect_heading(page, "Before your visit")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    expect_step(page, 1)

    # Step 1: checkboxes with Space, free text typed.
    tab_to(page, "#T1-0")
    page.keyboard.press("Space")
    tab_to(page, "#T1-2")
    page.keyboard.press("Space")
    tab_to(page, "#T2")
    page.keyboard.type(TODAY_TEXT)
    # Taking medicine now (M0) ends the first screen.
    tab_to(page, "#M0-0")  # Yes
    page.keyboard.press("Space")
    tab_to(page, "button[value=next]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    expect_step(page, 2)

    # Step 2: a medicine row, a radio group, the scale.
    tab_to(page, "#M1-0-name")
    page.keyboard.type("Sertraline")
    tab_to(page, "#M1-0-feeling-0")
    page.keyboard.press("Space")
    for first in ("#M2-0", "#M4-0"):
        while not page.locator(first).count():  # the section's next screen
            tab_to(page, "button[value=next]")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            page.wait_for_load_state("load")
        tab_to(page, first)
        page.keyboard.press("Space")
    tab_to(page, "button[value=next]")
    with page.expect_navigation():
        page.keyboard.press("Space")
    while "/step/2" in page.url:  # any further screen of the medicines step
        page.wait_for_load_state("load")
        tab_to(page, "button[value=next]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
    expect_step(page, 3)

    # Steps 3 to 7: the first answer of each section's first question, reached by Next
    # (a screen may end one section and begin the next).
    def next_by_keys():
        tab_to(page, "button[value=next]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_load_state("load")

    for first in ("#P1-0", "#F1-0", "#W1-0", "#H1", "#R1-0", "#S1-0"):
        while not page.locator(first).count():
            next_by_keys()
        if first == "#S1-0":
            break
        tab_to(page, first)
        if first == "#H1":
            page.keyboard.type(HOPE_TEXT)
        else:
            page.keyboard.press("Space")

    tab_to(page, "#S1-0")  # Not at all
    page.keyboard.press("Space")
    tab_to(page, "button[value=next]")
    page.keyboard.press("Enter")
    expect_heading(page, "Check your answers")
    expect(page.locator("main")).to_contain_text(HOPE_TEXT)

    tab_to(page, "#hold-T2")
    page.keyboard.press("Space")
    tab_to(page, "button[value=submit]")
    page.keyboard.press("Enter")
    expect_heading(page, "Thank you")

    stored = live_server.visit(invitation.ref)
    assert stored["status"] == "submitted"
    assert stored["in_person"] == {"T2"}
    assert json.loads(stored["answers"]["T1"]) == ["calm", "worried"]
    assert json.loads(stored["answers"]["M1"]) == [{"name": "Sertraline", "feeling": "helping"}]
    assert json.loads(stored["answers"]["M4"]) == 0
    assert json.loads(stored["answers"]["S1"]) == "not_at_all"
