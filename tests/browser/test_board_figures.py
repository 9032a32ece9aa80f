"""The board's line of the day's alert figures follows a new alert without a reload, as
the alert box, the tab title and the row's badge do: with the board open, a patient
answers the safety question worryingly, and within board.js's next poll the line reads
the new count and "1 open" (for the front desk as plain text; for a psychiatrist inside
the link to the safety report, which stays a link). The board's poll is moved by a fake
clock, so no real 5 s waits.
"""

from __future__ import annotations

import re

import pytest

from .patient_ui import (
    STEPS,
    choose,
    expect,
    expect_heading,
    open_and_start,
    skip_to_step,
    tap_next,
)
from .staff_ui import StaffUser, acknowledge_all_alerts, create_users, log_in, open_desktop

pytestmark = pytest.mark.browser

DESK = StaffUser("frontdesk", "figures.desk@clinic.example", "Figures Desk")
DOCTOR = StaffUser("psychiatrist", "figures.dr@clinic.example", "Dr. Figures")
POLL_MS = 5_000  # board.js
COUNT = re.compile(r"^Today's alerts: (\d+)")


@pytest.fixture(scope="module")
def users(live_server) -> list[StaffUser]:
    create_users(live_server, [DESK, DOCTOR])
    return [DESK, DOCTOR]


@pytest.fixture
def boards(chromium, live_server, users):
    """The front desk and a psychiatrist signed in, each at a desktop browser; console
    errors and warnings (a CSP refusal, say) are collected."""
    pages, trouble = [], []
    for user in users:
        page = open_desktop(chromium)
        page.on(
            "console",
            lambda m: (
                trouble.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda error: trouble.append(f"page error: {error}"))
        log_in(page, live_server, user)
        pages.append(page)
    yield pages, trouble
    acknowledge_all_alerts(pages[0], live_server)
    for page in pages:
        page.context.close()


def _watch(page, live_server) -> list[str]:
    """Open today's board under a fake clock; the list fills with any navigation."""
    page.clock.install()
    page.goto(f"{live_server.url}/staff/")
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    return navigations


def test_the_figures_line_counts_a_new_alert_without_reload(boards, phone, live_server):
    (desk, doctor), trouble = boards
    acknowledge_all_alerts(desk, live_server)  # earlier tests' alerts: none open now
    invitation = live_server.invite()
    # A visit appearing for today makes board.js reload the board: let the server's next
    # background invitation be made before the boards open.
    live_server._wait_for_spare()
    watched = [(desk, _watch(desk, live_server)), (doctor, _watch(doctor, live_server))]
    desk_line = desk.locator("p.alert-figures")
    doctor_link = doctor.locator("p.alert-figures a")
    before = COUNT.match(desk_line.inner_text())
    assert before, desk_line.inner_text()
    assert " open" not in desk_line.inner_text()
    expect(doctor_link).to_have_text(desk_line.inner_text())
    new_count = int(before.group(1)) + 1

    patient = phone.open(360)
    open_and_start(patient, invitation.link)
    skip_to_step(patient, STEPS)
    choose(patient, "S1", "Several days")
    tap_next(patient)
    expect_heading(patient, "Thank you for telling us")

    for page, _ in watched:
        page.clock.run_for(POLL_MS)
    row = desk.locator("tbody tr.has-alert")
    try:  # what already worked: the alert box and the row, so the poll has come back
        expect(desk.locator("#alerts")).to_be_visible()
        expect(row).to_have_count(1)
    except AssertionError as error:  # not the bug: make it a real failure
        raise RuntimeError(f"the board did not show the alert at all: {error}") from error

    # "Today's alerts: 3 · acknowledged in 2 min (median), longest 4 min · 1 open"
    expected = re.compile(rf"^Today's alerts: {new_count} · (acknowledged in .* · )?1 open$")
    expect(desk_line).to_have_text(expected, timeout=2_000)
    expect(doctor_link).to_have_text(expected, timeout=2_000)
    expect(doctor_link).to_have_attribute("href", re.compile(r"^/staff/safety-report\?day="))
    for page, navigations in watched:
        assert navigations == [], f"{page.url} navigated: {navigations}"
    assert trouble == [], trouble
