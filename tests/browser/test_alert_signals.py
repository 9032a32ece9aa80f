"""Staff pages never go quiet when it matters, in Chromium against the production server:

- A new alert signals even when the count does not rise: with alert A open and shown, A is
  acknowledged on another computer and patient B answers worryingly within one 2 s poll.
  The count stays "(1)", but alerts.json's marker of the newest open alert moves on, so
  the tab plays the Settings tone and shows the desktop notification again.
- Signed out by the staff idle timeout (polling is not activity), the board does not
  look live: the bar turns red with "Signed out: alerts not shown" and a sign-in link,
  the tab's title starts with the same words, the icon is a red "!", the tone plays once,
  and the board's alerts, figures and visits are hidden with the reason beside them.
  Other staff pages do the same with their own note.

The pages run under Playwright's fake clock, so a poll is a tick, not a real 2 s wait.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta

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

DESK = StaffUser("frontdesk", "signals.desk@clinic.example", "Sam Signals")
NOTIFICATION = "Safety alert at the front desk"
SIGNED_OUT = "Signed out: alerts not shown"
SIGNED_OUT_NOTE = (
    "You were signed out after a while without activity. Sign in again to keep seeing alerts."
)

# Records the desktop notifications the page makes (nothing pops up on the machine).
SPY_NOTIFICATIONS = """
window.__notes = [];
(function () {
  const Real = window.Notification;
  if (!Real) return;
  window.Notification = new Proxy(Real, {
    construct(target, args) {
      window.__notes.push(args[0]);
      return { close() {}, onclick: null };
    },
  });
})();
"""


@pytest.fixture(scope="module")
def desk_user(live_server) -> StaffUser:
    create_users(live_server, [DESK])
    return DESK


@pytest.fixture
def sound(live_server):
    """Settings: "Play a sound on staff pages when a safety alert arrives"."""
    with closing(storage.connect(live_server.database)) as db:
        storage.save_settings(db, {"alert_sound": True})
    yield
    with closing(storage.connect(live_server.database)) as db:
        storage.save_settings(db, {"alert_sound": False})


@pytest.fixture
def desk(chromium, live_server, desk_user, sound):
    """The front desk signed in at a desktop browser (notifications allowed), every
    earlier alert acknowledged; page errors collected in page.trouble."""
    page = open_desktop(chromium)
    page.context.add_init_script(SPY_NOTIFICATIONS)
    page.context.add_init_script(SPY_AUDIO)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    trouble: list[str] = []
    page.context.on(
        "console",
        lambda m: trouble.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.context.on("weberror", lambda error: trouble.append(f"page error: {error.error}"))
    log_in(page, live_server, desk_user)
    acknowledge_all_alerts(page, live_server)  # earlier tests' alerts: start from none
    page.trouble = trouble
    yield page
    page.context.close()
    tidy = open_desktop(chromium)
    log_in(tidy, live_server, desk_user)
    acknowledge_all_alerts(tidy, live_server)
    tidy.context.close()


class Polls:
    """Moves a page's fake clock one poll at a time and waits for that poll's answer."""

    def __init__(self, page, path: str = "/staff/alerts.json"):
        self.page = page
        self.seen: list[str] = []
        page.on(
            "requestfinished",
            lambda request: self.seen.append(request.url) if path in request.url else None,
        )

    def open(self, url: str) -> None:
        """Open the page on a fake clock that stands still between ticks (installed, it
        would otherwise run on with real time, and poll while the test works elsewhere)."""
        self.page.clock.install()
        self.page.goto(url)
        self.page.clock.pause_at(datetime.now() + timedelta(seconds=1))
        self.page.locator("h1").click()  # browsers play sound only once the page was used

    def tick(self, ms: int = POLL_MS) -> None:
        before = len(self.seen)
        self.page.clock.run_for(ms)
        for _ in range(100):
            if len(self.seen) > before:
                break
            self.page.wait_for_timeout(50)
        self.page.wait_for_timeout(100)  # the answer shown


def worrying_answer(phone, link: str) -> None:
    """A patient on their own phone answers S1 "Nearly every day" and taps Next."""
    patient = phone.open(360)
    open_and_start(patient, link)
    skip_to_step(patient, STEPS)
    choose(patient, "S1", "Nearly every day")
    tap_next(patient)
    expect_heading(patient, "Thank you for telling us")


def favicon(page) -> str:
    return page.locator("link[rel=icon]").get_attribute("href")


# --- a new alert while another is acknowledged ---------------------------------------------


def test_a_new_alert_signals_when_another_is_acknowledged_in_the_same_poll(
    desk, chromium, phone, live_server, desk_user
):
    first, second = live_server.invite(), live_server.invite()
    elsewhere = open_desktop(chromium)  # the front desk's other computer
    log_in(elsewhere, live_server, desk_user)
    polls = Polls(desk)
    polls.open(f"{live_server.url}/staff/account")

    worrying_answer(phone, first.link)
    polls.tick()
    expect(desk).to_have_title(re.compile(r"^\(1\) "))
    assert desk.evaluate("window.__beeps") == 2  # one tone: two short beeps
    assert desk.evaluate("window.__notes") == [NOTIFICATION]

    # Within one poll of this tab: A acknowledged on the other computer, B arrives.
    acknowledge_all_alerts(elsewhere, live_server)
    worrying_answer(phone, second.link)
    polls.tick()
    expect(desk).to_have_title(re.compile(r"^\(1\) "))  # the same count
    assert desk.evaluate("window.__beeps") == 4, "no tone for the new alert"
    assert desk.evaluate("window.__notes") == [NOTIFICATION, NOTIFICATION]

    for _ in range(4):  # the same alert on later polls: no new signal
        polls.tick()
    assert desk.evaluate("window.__beeps") == 4
    assert len(desk.evaluate("window.__notes")) == 2
    assert desk.trouble == [], desk.trouble
    elsewhere.context.close()


# --- signed out by the idle timeout --------------------------------------------------------


def idle_out(server, email: str) -> None:
    """As if nobody had touched the desk's computer for 20 minutes: the staff idle timeout
    (15 by default) ends the session at its next request, the poll's included."""
    with closing(sqlite3.connect(server.database, timeout=10)) as db:
        rows = db.execute(
            """SELECT s.id, s.last_seen_at FROM staff_sessions s JOIN users u ON u.id = s.user_id
               WHERE u.email = ?""",
            (email,),
        ).fetchall()
        for session_id, seen in rows:
            earlier = datetime.fromisoformat(seen) - timedelta(minutes=20)
            db.execute(
                "UPDATE staff_sessions SET last_seen_at = ? WHERE id = ?",
                (earlier.isoformat(), session_id),
            )
        db.commit()


def test_the_board_signed_out_by_the_idle_timeout_is_impossible_to_miss(
    desk, live_server, desk_user
):
    live_server.invite()  # a visit today, so the board has a row to go stale
    live_server._wait_for_spare()  # ...and no new one appearing while it is watched
    polls = Polls(desk)
    polls.open(f"{live_server.url}/staff/")
    bar = desk.locator("#alert-bar")
    expect(desk.locator("p.alert-figures")).to_be_visible()
    expect(desk.locator("table.board")).to_be_visible()
    expect(bar).to_be_hidden()
    polls.tick()
    assert desk.evaluate("window.__beeps") == 0

    idle_out(live_server, desk_user.email)
    polls.tick()

    expect(desk).to_have_title(re.compile(rf"^{SIGNED_OUT} · Board · "))
    expect(bar).to_be_visible()
    expect(bar).to_have_class(re.compile(r"\bescalated\b"))  # solid red
    expect(bar).to_contain_text(SIGNED_OUT)
    sign_in = bar.get_by_role("link", name="Sign in")
    expect(sign_in).to_have_attribute("href", "/staff/login?next=%2Fstaff%2F")
    assert "%3E!%3C" in favicon(desk)  # the red badge with "!"
    assert desk.evaluate("window.__beeps") == 2  # the tone, once
    # Nothing stale is left looking live; the reason stands where it was.
    expect(desk.locator("p.alert-figures")).to_be_hidden()
    expect(desk.locator("table.board")).to_be_hidden()
    expect(desk.locator("#alerts")).to_be_hidden()
    expect(desk.locator("#signed-out")).to_have_text(SIGNED_OUT_NOTE)

    asked = len(polls.seen)
    for _ in range(5):  # 10 s more: no more polls, no more tones
        desk.clock.run_for(POLL_MS)
    desk.wait_for_timeout(300)
    assert len(polls.seen) == asked
    assert desk.evaluate("window.__beeps") == 2
    expect(desk).to_have_title(re.compile(rf"^{SIGNED_OUT} · "))

    with desk.expect_navigation():
        sign_in.click()
    expect(desk.locator("h1")).to_have_text("Staff sign in")
    # The polls' 401 is how the page learns it; nothing else may go wrong.
    assert [t for t in desk.trouble if "status of 401" not in t] == [], desk.trouble


def test_another_staff_page_signed_out_says_so_too(desk, live_server, desk_user):
    polls = Polls(desk)
    polls.open(f"{live_server.url}/staff/invitations/new")
    idle_out(live_server, desk_user.email)
    polls.tick()
    expect(desk).to_have_title(re.compile(rf"^{SIGNED_OUT} · New invitation · "))
    bar = desk.locator("#alert-bar")
    expect(bar).to_be_visible()
    expect(bar).to_have_class(re.compile(r"\bescalated\b"))
    expect(bar.get_by_role("link", name="Go to the board")).to_be_hidden()
    expect(bar.get_by_role("link", name="Sign in")).to_have_attribute(
        "href", "/staff/login?next=%2Fstaff%2Finvitations%2Fnew"
    )
    expect(desk.locator("#alert-signed-out")).to_have_text(SIGNED_OUT_NOTE)
    assert desk.evaluate("window.__beeps") == 2
