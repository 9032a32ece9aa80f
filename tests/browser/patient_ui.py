"""How a patient's phone is driven in the browser tests: taps, typing, and a walk through
every patient page so one check (axe, overflow, tap size, requests) can run on each."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the fixtures skip (or fail in CI) with a clear message
    Page, expect = object, None

from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire

STEPS = len(questionnaire.default().sections)  # the last step: the safety question
# The screens a patient taking medicine meets (the progress line counts these), and the
# steps that open on a screen of their own (a step whose questions all sit on the screen
# before it is never in an address).
# These visits include no standard measure: their screens are not met.
_Q = questionnaire.default()
PAGES = patient_forms.shown_pages(_Q, frozenset(_Q.not_asked({})))
SCREENS = len(PAGES)
OWN_STEPS = sorted({page.number for page in PAGES})


# The one axe rule set aside on patient pages: meta-refresh (WCAG 2.2.1). Pages holding
# answers refresh to the closed page when the clinic's idle limit is up, so a phone left
# behind stops showing them; the server ends the session at that moment anyway, and the
# welcome page says so. Every other rule still applies.
AXE_OPTIONS = {"resultTypes": ["violations"], "rules": {"meta-refresh": {"enabled": False}}}


def exact(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def option(page: Page, scope: str, text: str):
    """The tappable label of one choice, by its visible text, inside a question."""
    return page.locator(f"{scope} label.option").filter(has_text=exact(text))


def on_screen(page: Page, selector: str, limit: int = 6) -> None:
    """A long section has several screens: tap Next (answering nothing more) until the
    question is on the screen; nothing happens when it already is."""
    for _ in range(limit):
        if page.locator(selector).count():
            return
        with page.expect_navigation():
            button(page, "Next").tap()
    raise AssertionError(f"{selector} not reached from {page.url}")


def choose(page: Page, item_id: str, text: str) -> None:
    on_screen(page, f"#q-{item_id}")
    option(page, f"#q-{item_id}", text).tap()


def type_text(page: Page, field_id: str, text: str) -> None:
    """Tap into a text box and type, as with a phone's on-screen keyboard."""
    on_screen(page, f"#{field_id}")
    page.locator(f"#{field_id}").tap()
    page.keyboard.type(text)


def button(page: Page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def expect_step(page: Page, number: int) -> None:
    """On a screen of step `number`; the progress counts screens, not steps."""
    expect(page.locator(".progress p")).to_have_text(re.compile(rf"^Step \d+ of {SCREENS}$"))
    expect(page).to_have_url(re.compile(rf"/step/{number}(\?[^#]*)?(#.*)?$"))


def expect_heading(page: Page, text: str) -> None:
    expect(page.locator("h1")).to_have_text(text)


def current_step(page: Page) -> int | None:
    """The step number of the page shown, None off the questionnaire."""
    found = re.search(r"/step/(\d+)", page.url)
    return int(found.group(1)) if found else None


def tap_next(page: Page, then_step: int | None = None) -> None:
    """Tap Next; with then_step, go on tapping past the step's further screens (a long
    section has several) until that step shows."""
    with page.expect_navigation():
        button(page, "Next").tap()
    if then_step is not None and then_step not in OWN_STEPS:
        # Its questions sit on a screen that starts in an earlier step: that step shows.
        first = questionnaire.default().sections[then_step - 1].items[0]
        then_step = next(p.number for p in PAGES if first in p.items)
    if then_step is not None:
        for _ in range(6):
            step = current_step(page)
            if step is None or step >= then_step or page.locator(".error-summary").count():
                break
            with page.expect_navigation():
                button(page, "Next").tap()
        expect_step(page, then_step)


def next_until(page: Page, item_id: str) -> None:
    """Tap Next (answering nothing more) until the screen with that question shows."""
    on_screen(page, f"#q-{item_id}")


def open_and_start(page: Page, link: str) -> None:
    """Open the invitation link and tap Start: step 1."""
    page.goto(link)
    expect_heading(page, "Before your visit")
    button(page, "Start").tap()
    expect_step(page, 1)


def skip_to_step(page: Page, number: int, current: int = 1) -> None:
    """From step `current`, tap Next without answering until step `number`."""
    for step in range(current + 1, number + 1):
        if step in OWN_STEPS:
            tap_next(page, step)


def translator(language: str):
    """msgid -> what the patient reads in that language."""
    from babel.messages.pofile import read_po

    if language == "en":
        return lambda text: text
    path = Path(__file__).parents[2] / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        messages = read_po(po)
    return lambda text: messages[text].string


# --- one walk through every patient page ----------------------------------------------------

Check = Callable[[Page, str], None]
"""check(page, name): called once on each patient page state, with a readable name."""


def walk_patient_pages(phone, server, check: Check, width: int = 360) -> list[str]:
    """Visit every patient page (and its error states) and call check on each.

    Returns the names visited, so a test can assert that the walk really covered them.
    """
    seen: list[str] = []

    def at(page: Page, name: str) -> None:
        page.wait_for_load_state("load")  # the stylesheet too, not only the text
        seen.append(name)
        check(page, name)

    page = phone.open(width)
    base = server.url

    # Entry by code, the link pages without a session.
    page.goto(f"{base}/start")
    expect_heading(page, "Enter your code")
    at(page, "start")
    type_text(page, "code", "AAAA")
    button(page, "Continue").tap()
    expect(page.locator("#code-error")).to_be_visible()
    at(page, "start (error shown)")
    page.goto(f"{base}/ended")
    expect_heading(page, "This page was closed for your privacy")
    at(page, "ended")
    page.goto(f"{base}/v/not-a-real-invitation-token")
    expect_heading(page, "This link does not work")
    at(page, "link invalid")
    page.goto(f"{base}/no-such-page")
    expect_heading(page, "Sorry")
    at(page, "error (404)")

    # The questionnaire itself.
    invitation = server.invite()
    page.goto(invitation.link)
    expect_heading(page, "Before your visit")
    at(page, "welcome")
    button(page, "Start").tap()
    expect_step(page, 1)
    at(page, "step 1")
    for feeling in ("Calm", "Hopeful", "Worried"):
        choose(page, "T1", feeling)
    # A fourth, ticked as on a phone without script (with script it is taken back at once,
    # tests/browser/test_choices_explain.py): the server's check explains after Next.
    page.locator("#q-T1 input[value=frustrated]").evaluate("box => { box.checked = true; }")
    type_text(page, "T2", "Whether I can lower the dose.")
    tap_next(page)
    expect(page.locator(".error-summary")).to_be_visible()
    expect(page.locator("#T1-error")).to_have_text("Please pick no more than 3.")
    at(page, "step 1 (validation error: 4 feelings)")
    choose(page, "T1", "Calm")
    choose(page, "M0", "Yes")  # taking medicine now? It ends the first screen.
    tap_next(page, 2)
    at(page, "step 2")  # the medicine list, on a screen of its own
    option(page, "fieldset.med-row:has(#M1-0-name)", "Helping").tap()
    tap_next(page)
    expect(page.locator(".error-summary")).to_be_visible()
    at(page, "step 2 (validation error: feeling without a medicine name)")
    type_text(page, "M1-0-name", "Sertraline")
    # Every further screen, each step's later screens (a long section has several) too.
    while True:
        with page.expect_navigation():
            button(page, "Next").tap()
        page.wait_for_load_state("load")
        screen = re.search(r"[?&]screen=(\d+)", page.url)
        number = current_step(page)
        at(page, f"step {number}" + (f" screen {screen.group(1)}" if screen else ""))
        if number == STEPS:
            break
    choose(page, "S1", "Several days")
    tap_next(page)
    expect_heading(page, "Thank you for telling us")
    at(page, "safety")
    page.get_by_role("link", name="Continue").tap()
    expect_heading(page, "Check your answers")
    at(page, "review")
    page.locator("label.hold:has(#hold-T2)").tap()
    button(page, "Send to my psychiatrist").tap()
    expect_heading(page, "Thank you")
    at(page, "thanks")
    page.go_back()
    expect_heading(page, "Your answers were sent")
    at(page, "ended (sent)")
    page.goto(invitation.link)
    expect_heading(page, "Your answers are already sent")
    at(page, "already sent")
    return seen


EVERY_PAGE = {
    "start",
    "start (error shown)",
    "ended",
    "link invalid",
    "welcome",
    *(f"step {n}" for n in OWN_STEPS),
    "review",
    "safety",
    "thanks",
    "ended (sent)",
    "already sent",
}


# The words of an element's text that lie on more than one line (CJK characters aside).
WORDS_BROKEN_IN = """element => {
    const broken = [];
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const word of node.data.matchAll(/[^\\s\\u3000-\\u9fff]+/g)) {
            const range = document.createRange();
            range.setStart(node, word.index);
            range.setEnd(node, word.index + word[0].length);
            const tops = new Set([...range.getClientRects()].map(b => Math.round(b.top)));
            if (tops.size > 1) broken.push(word[0]);
        }
    }
    return broken;
}"""
