"""A safety alert is noticed on a staff page other than the board, in Chromium against the
production server, without a reload (issue 20, part 2): while the front desk has New
invitation open, a patient on a phone gives a worrying answer, and within a few seconds
the tab's title starts with "(1)", the banner shows and the favicon becomes the red badge;
acknowledged from another tab, all three go back. A granted desktop notification carries
exactly "Safety alert at the front desk"; the Settings tone plays when the count rises.

Real time, no fake clock: static/alerts.js polls every 2 s (staff/alerts.py POLL_MS).
"""

from __future__ import annotations

import re
from contextlib import closing

import pytest

from patientapp.db import storage
from patientapp.staff.alerts import POLL_MS

from .patient_ui import (
    STEPS,
    choose,
    expect,
    expect_heading,
    open_and_start,
    skip_to_step,
    tap_next,
)
from .staff_ui import (
    SPY_AUDIO,
    StaffUser,
    acknowledge_all_alerts,
    create_users,
    log_in,
    open_desktop,
)

pytestmark = pytest.mark.browser

DESK = StaffUser("frontdesk", "alerts.desk@clinic.example", "Robin Desk")
SEEN_WITHIN_MS = 10_000  # a 2 s poll, with room for a busy two-core machine
NOTIFICATION = "Safety alert at the front desk"

# Records every desktop notification the page makes (the real constructor is replaced, so
# nothing pops up on the machine running the tests); permission is what the test grants.
SPY_NOTIFICATIONS = """
window.__notes = [];
window.__asked = 0;
(function () {
  const Real = window.Notification;
  if (!Real) return;
  window.Notification = new Proxy(Real, {
    construct(target, args) {
      window.__notes.push({ title: args[0], options: args[1] || {} });
      return { close() {}, onclick: null };
    },
    get(target, key) {
      if (key === "requestPermission") {
        return () => { window.__asked += 1; return Promise.resolve(target.permission); };
      }
      return Reflect.get(target, key);
    },
  });
})();
"""


@pytest.fixture(scope="module")
def desk_user(live_server) -> StaffUser:
    create_users(live_server, [DESK])
    return DESK


@pytest.fixture
def desk(chromium, live_server, desk_user):
    """The front desk signed in at a desktop browser, every earlier alert acknowledged;
    console errors and warnings (a CSP violation, say) are collected in page.__console."""
    page = open_desktop(chromium)
    page.context.add_init_script(SPY_NOTIFICATIONS)
    page.context.add_init_script(SPY_AUDIO)
    console: list[str] = []
    page.context.on(
        "console",
        lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.context.on("weberror", lambda error: console.append(f"page error: {error.error}"))
    log_in(page, live_server, desk_user)
    acknowledge_all_alerts(page, live_server)  # earlier tests' alerts: start from none
    page.console_messages = console
    yield page
    acknowledge_all_alerts(page, live_server)
    page.context.close()


def worrying_answer(phone, server) -> None:
    """A patient on their own phone answers S1 "Several days" and taps Next."""
    patient = phone.open(360)
    open_and_start(patient, server.invite().link)
    skip_to_step(patient, STEPS)
    choose(patient, "S1", "Several days")
    tap_next(patient)
    expect_heading(patient, "Thank you for telling us")


def favicon(page) -> str:
    return page.locator("link[rel=icon]").get_attribute("href")


def test_another_staff_page_shows_the_alert_without_reload(desk, phone, live_server):
    desk.context.grant_permissions(["notifications"], origin=live_server.url)
    desk.goto(f"{live_server.url}/staff/invitations/new")
    bar = desk.locator("#alert-bar")
    expect(desk).to_have_title(re.compile(r"^New invitation · "))
    expect(bar).to_be_hidden()
    assert favicon(desk) == "data:,"
    desk.get_by_label("Patient reference").fill("typed, not sent")  # nothing may reload it
    navigations = []
    desk.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == desk.main_frame else None,
    )
    desk.evaluate("window.__samePage = 'still here'")

    worrying_answer(phone, live_server)

    expect(desk).to_have_title(re.compile(r"^\(1\) New invitation · "), timeout=SEEN_WITHIN_MS)
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("1 safety alert at the front desk")
    expect(bar.get_by_role("link", name="Go to the board")).to_have_attribute(
        "href", "/staff/#alerts"
    )
    badge = favicon(desk)
    assert badge.startswith("data:image/svg+xml,%3Csvg"), badge
    assert "%3E1%3C%2Ftext%3E" in badge  # the count, drawn
    assert "BR-" not in bar.inner_text()  # counts only: no patient reference
    assert navigations == [], f"the page navigated: {navigations}"
    assert desk.evaluate("window.__samePage") == "still here"
    expect(desk.get_by_label("Patient reference")).to_have_value("typed, not sent")
    notes = desk.evaluate("window.__notes")
    assert [note["title"] for note in notes] == [NOTIFICATION], notes
    assert "body" not in notes[0]["options"], notes  # never who
    assert desk.evaluate("window.__beeps") == 0  # the tone is off unless Settings says so

    # Acknowledged in another tab: the first page goes back by itself.
    board = desk.context.new_page()
    acknowledge_all_alerts(board, live_server)
    expect(desk).to_have_title(re.compile(r"^New invitation · "), timeout=SEEN_WITHIN_MS)
    expect(bar).to_be_hidden()
    assert favicon(desk) == "data:,"
    assert navigations == []
    assert desk.console_messages == [], desk.console_messages


def test_the_board_offers_desktop_notifications(desk, live_server):
    desk.goto(f"{live_server.url}/staff/")
    offer = desk.get_by_role("button", name="Show a desktop notification for new alerts")
    assert desk.evaluate("Notification.permission") == "default"
    expect(offer).to_be_visible()
    desk.context.grant_permissions(["notifications"], origin=live_server.url)
    offer.click()
    assert desk.evaluate("window.__asked") == 1
    expect(offer).to_be_hidden()  # granted: nothing more to ask
    desk.goto(f"{live_server.url}/staff/account")  # elsewhere, only beside an open alert
    expect(desk.locator("#alert-notify")).to_be_hidden()


def test_the_settings_tone_plays_when_the_count_rises(desk, phone, live_server):
    """Under a fake clock on the staff page, so a dozen polls take a second or two."""
    with closing(storage.connect(live_server.database)) as db:
        storage.save_settings(db, {"alert_sound": True})
    polls: list[str] = []
    desk.on(
        "requestfinished",
        lambda request: polls.append(request.url) if "/staff/alerts.json" in request.url else None,
    )

    def tick() -> None:
        """One poll interval of the page's clock, and that poll's answer."""
        before = len(polls)
        desk.clock.run_for(POLL_MS)
        for _ in range(100):
            if len(polls) > before:
                break
            desk.wait_for_timeout(50)
        desk.wait_for_timeout(50)  # the answer shown

    try:
        desk.clock.install()
        desk.goto(f"{live_server.url}/staff/account")
        expect(desk.locator("#staff-alerts")).to_have_attribute("data-sound", "1")
        desk.locator("h1").click()  # browsers play sound only once the page was used
        worrying_answer(phone, live_server)
        tick()
        expect(desk).to_have_title(re.compile(r"^\(1\) "))
        assert desk.evaluate("window.__beeps") == 2  # two short beeps
        for _ in range(8):  # 16 s more of polling: the same count, no new tone
            tick()
        assert len(polls) >= 9, polls
        assert desk.evaluate("window.__beeps") == 2
    finally:
        with closing(storage.connect(live_server.database)) as db:
            storage.save_settings(db, {"alert_sound": False})
