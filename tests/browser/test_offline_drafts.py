"""Nothing typed or ticked is lost on bad Wi-Fi, and nothing stays on screen past the idle
limit (static/draft.js), in Chromium against the real server: a reload right after
typing, Next tapped offline, the idle limit reached offline, and the review's "In person"
ticks kept as each one changes."""

from __future__ import annotations

import re
import time

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail in CI) with a clear message
    expect = None

from .patient_ui import (
    button,
    expect_heading,
    expect_step,
    open_and_start,
    option,
    translator,
)
from .test_drafts_tablet import wait_until_complete

pytestmark = pytest.mark.browser

TYPED = "Can I stop the pills before my exam 6021"
OFFLINE = "No connection right now. Your answers are still here. Please try again in a moment."
BACK = "What you typed here last time is back."


def draft_taken(response) -> bool:
    return response.url.endswith("/draft") and response.status == 200


def stored_holds(server, ref: str, expected: set[str], seconds: float = 5) -> set[str]:
    """The visit's stored "In person" ticks once they are `expected` (or the last seen)."""
    deadline = time.monotonic() + seconds
    while True:
        found = server.visit(ref)["in_person"]
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def to_review(page) -> None:
    """Next on every screen, answering nothing more, up to "Check your answers"."""
    while "/step/" in page.url:
        with page.expect_navigation():
            page.locator("main .nav button.primary").tap()
    expect(page).to_have_url(re.compile(r"/review$"))
    wait_until_complete(page)


def hold(page, item_id: str):
    return page.locator(f"label.hold:has(#hold-{item_id})")


def test_a_reload_right_after_typing_brings_the_text_back(phone, live_server):
    """Defect 4: the draft went on "pagehide", after the reload had already asked for
    the page, so the box came back empty. It now goes on "beforeunload" too."""
    page = phone.open(360)
    open_and_start(page, live_server.invite().link)
    typed = ""
    for words in (TYPED, ", and after it", ", and the dose"):  # a race: three times over
        wait_until_complete(page)
        page.locator("#T2").tap()
        page.keyboard.press("Control+End")
        page.keyboard.type(words)  # no pause: the reload comes at once
        typed += words
        page.reload()
        expect_step(page, 1)
        expect(page.locator("#T2")).to_have_value(typed)
        expect(page.locator("main")).to_contain_text(BACK)


@pytest.mark.parametrize(("width", "language"), [(360, "en"), (320, "ar")])
def test_next_tapped_offline_keeps_the_screen_and_says_so(phone, live_server, width, language):
    """Defect 3: offline, Next put the browser's error page in the screen's place and Back
    went to the screen before, the text gone. Now the screen stays, a message by the
    buttons says so, and when the connection is back the draft goes at once."""
    _ = translator(language)
    invitation = live_server.invite()
    page = phone.open(width)
    page.goto(f"{invitation.link}?lang={language}")
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    wait_until_complete(page)
    page.context.set_offline(True)
    page.locator("#T2").tap()
    page.keyboard.type(TYPED)
    page.wait_for_timeout(2000)  # the draft's pause is over; its request fails
    button(page, _("Next")).tap(no_wait_after=True)
    page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"/step/1$"))
    expect(page.locator("#T2")).to_have_value(TYPED)
    note = page.locator(".nav ~ [role=status]")
    expect(note).to_have_text(_(OFFLINE))
    assert note.evaluate("n => n.checkVisibility()")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # The connection is back: the draft goes without a tap, and a reload keeps the text.
    with page.expect_response(draft_taken):
        page.context.set_offline(False)
    page.reload()
    expect(page.locator("#T2")).to_have_value(TYPED)
    # Next now saves it as an answer.
    with page.expect_navigation():
        button(page, _("Next")).tap()
    expect(page).to_have_url(re.compile(r"/step/2$"))
    assert live_server.visit(invitation.ref)["answers"]["T2"] == f'"{TYPED}"'


def test_offline_at_the_idle_limit_the_page_still_closes(phone, live_server):
    """Defect 2: offline when the idle time ran out, the page tried to send the unsaved
    draft and stayed open with the answers on it. It now closes all the same: offline,
    the browser's error page for the closed page shows none of them."""
    invitation = live_server.invite()
    page = phone.open(360)
    page.clock.install()
    open_and_start(page, invitation.link)
    wait_until_complete(page)
    page.locator("#T2").tap()
    page.keyboard.type(TYPED)
    with page.expect_response(draft_taken):
        page.clock.run_for(2000)
    page.context.set_offline(True)
    page.keyboard.type(" and more words")
    page.clock.run_for(2000)  # this draft fails: offline
    page.clock.run_for(15 * 60 * 1000)
    # Offline, the closed page is the browser's error page: no box, no words of theirs.
    expect(page.locator("#T2")).to_have_count(0)
    assert TYPED not in page.content()
    page.context.set_offline(False)
    page.reload()
    expect(page).to_have_url(re.compile(r"/ended\?lang=en$"))
    expect_heading(page, "This page was closed for your privacy")
    assert TYPED not in page.content()
    page.go_back(wait_until="commit")
    wait_until_complete(page)
    assert TYPED not in page.content()


def test_in_person_ticks_are_kept_as_they_change(phone, live_server):
    """Defect 1: ticks were saved only by a button; a Send that never arrived lost them
    and a later Send sent the answer in full. Each tick is now kept as it changes."""
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    option(page, "#q-T1", "Worried").tap()
    page.locator("#T2").fill(TYPED)
    to_review(page)
    hold(page, "T2").tap()
    expect(page.locator("#hold-T2")).to_be_checked()
    assert stored_holds(live_server, invitation.ref, {"T2"}) == {"T2"}

    # Offline, Send keeps the review, the tick and says so.
    page.context.set_offline(True)
    button(page, "Send to my psychiatrist").tap(no_wait_after=True)
    page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"/review$"))
    expect(page.locator(".review-send ~ [role=status]")).to_have_text(OFFLINE)
    page.context.set_offline(False)

    # Bad Wi-Fi the phone does not notice: the tap on Send never arrives, and the browser's
    # error page takes the review's place. Opened again, the review shows the tick.
    page.route(
        "**/review",
        lambda route: (
            route.abort("internetdisconnected")
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    button(page, "Send to my psychiatrist").tap(no_wait_after=True)
    page.wait_for_timeout(1000)
    page.unroute("**/review")
    assert live_server.visit(invitation.ref)["status"] == "in_progress"
    page.goto(f"{live_server.url}/review")
    expect(page.locator("#hold-T2")).to_be_checked()
    wait_until_complete(page)

    # A change of mind is kept too: the link opened on another phone shows it.
    hold(page, "T2").tap()
    hold(page, "T1").tap()
    assert stored_holds(live_server, invitation.ref, {"T1"}) == {"T1"}
    other = phone.open(360)
    other.goto(invitation.link)
    expect(other).to_have_url(re.compile(r"/review$"))
    expect(other.locator("#hold-T1")).to_be_checked()
    expect(other.locator("#hold-T2")).not_to_be_checked()
    with other.expect_navigation():
        button(other, "Send to my psychiatrist").tap()
    expect_heading(other, "Thank you")
    visit = live_server.visit(invitation.ref)
    assert visit["status"] == "submitted" and visit["in_person"] == {"T1"}
