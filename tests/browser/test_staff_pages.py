"""The staff side in Chromium against the production server: the front desk's invitation
and slip, the board's live safety alert (no reload), the psychiatrist's summary, print
and copy, axe-core on every staff page in English and Arabic, the one printed page in
every shipped language on Letter and A4, and no sideways scroll at 320 px.

Accounts are made with the real `create-user` CLI against the server's instance; visits
for the summary are stored through the app's own Python API (see maximal_visit.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import pytest
from babel.dates import format_date

from patientapp.cli import examples
from patientapp.db import storage

from .maximal_visit import maximal_answers, realistic_text, store_maximal_visit, store_submitted
from .patient_ui import (
    STEPS,
    WORDS_BROKEN_IN,
    choose,
    expect,
    expect_heading,
    open_and_start,
    skip_to_step,
    tap_next,
)
from .staff_ui import (
    DESKTOP,
    DISCLAIMER,
    LANGUAGES,
    MM,
    TOTP_SECRETS,
    StaffUser,
    acknowledge_all_alerts,
    count_pdf_pages,
    create_users,
    format_violations,
    fresh_code,
    log_in,
    open_desktop,
    print_content_height,
    query,
    report,
    submit,
    user_id,
    wait_for_fitting,
    write_two_page_pdf,
)

pytestmark = pytest.mark.browser

DESK = StaffUser("frontdesk", "desk@clinic.example", "Sam Front")
DOCTOR = StaffUser("psychiatrist", "dr.okafor@clinic.example", "Dr. Ada Okafor")
ADMIN = StaffUser("admin", "admin@clinic.example", "Alex Admin")
# Psychiatrists who set up their second factor during the accessibility walk, one a language.
NEW_DOCTORS = {
    lang: StaffUser("psychiatrist", f"new.dr.{lang}@clinic.example", f"Dr. New {lang}")
    for lang in ("en", "ar")
}
ALERT_POLL_TIMEOUT_MS = 15_000  # board.js polls every 5 s


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def staff(live_server) -> dict[str, StaffUser]:
    """The three accounts, made once with the create-user CLI."""
    create_users(live_server, [DESK, DOCTOR, ADMIN, *NEW_DOCTORS.values()])
    return {user.role: user for user in (DESK, DOCTOR, ADMIN)}


class Desks:
    """Opens desktop-sized browser contexts, signed in or not; records console errors."""

    def __init__(self, browser, server, states: dict[str, dict]):
        self.browser, self.server = browser, server
        self.states = states  # cookies of each account's first sign-in, shared
        self.pages = []
        self.console: list[str] = []

    def open(self, width: int = DESKTOP["width"], height: int = DESKTOP["height"], **options):
        page = open_desktop(self.browser, width, height, **options)
        page.on(
            "console",
            lambda m: (
                self.console.append(f"{m.type} on {page.url}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))
        self.pages.append(page)
        return page

    def signed_in(self, user: StaffUser, **options):
        """A new context signed in as user (through the form the first time; later
        contexts reuse that session's cookies). Not navigated yet."""
        if user.email not in self.states:
            page = self.open(**options)
            log_in(page, self.server, user)
            self.states[user.email] = page.context.storage_state()
            return page
        return self.open(storage_state=self.states[user.email], **options)

    def close(self) -> None:
        for page in self.pages:
            page.context.close()
        self.pages.clear()


@pytest.fixture(scope="module")
def signed_in_states(staff) -> dict[str, dict]:
    return {}


@pytest.fixture
def desks(chromium, live_server, signed_in_states):
    """A factory of desktop pages; every context it opened closes after the test (an open
    board keeps polling the server)."""
    opened = Desks(chromium, live_server, signed_in_states)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def database(live_server):
    """The server's database, for storing visits through the app's Python API."""
    db = storage.connect(live_server.database)
    yield db
    db.conn.close()


@pytest.fixture(scope="module")
def maximal(live_server, staff, database):
    """Today's fullest summary (alert acknowledged) with a visit four weeks before."""
    doctor = user_id(live_server, DOCTOR.email)
    return store_maximal_visit(
        database,
        "MX-1001",
        psychiatrist_id=doctor,
        created_by=user_id(live_server, DESK.email),
        acknowledged_by=doctor,
    )


def wait_for_background_invitations(server) -> None:
    """The conftest makes the next CLI invitation in the background; a visit appearing
    for today makes board.js reload the board, so let it finish first."""
    server._wait_for_spare()


def create_invitation(page, server, ref: str, at: str = "14:30") -> int:
    """Through the New invitation form, for today; ends on the invitation page."""
    page.goto(f"{server.url}/staff/invitations/new")
    page.get_by_label("Patient reference").fill(ref)
    page.get_by_label("Appointment date").fill(date.today().isoformat())
    page.get_by_label("Appointment time").fill(at)
    page.get_by_label("Psychiatrist").select_option(label=DOCTOR.name)
    page.get_by_role("button", name="Create invitation").click()
    expect(page).to_have_url(re.compile(r"/staff/visits/\d+/invitation$"))
    return int(re.search(r"/visits/(\d+)/", page.url).group(1))


# --- 0. the setup page exists only while there is no account: check it first --------------------


def test_axe_setup_page_while_no_account_exists(chromium, live_server):
    """The one-time setup link is printed by `serve` at start while no account exists.
    This module's other tests create accounts, so this runs first; when accounts already
    exist (another order, or a rerun against a used instance) it skips and says so."""
    from axe_playwright_python.sync_playwright import Axe

    link = re.search(r"/staff/setup/([\w-]+)", live_server.log_path.read_text(errors="replace"))
    accounts = query(live_server, "SELECT COUNT(*) AS n FROM users")[0]["n"]
    if link is None or accounts:
        pytest.skip(
            f"setup page unreachable: {accounts} account(s) exist already "
            f"(setup link printed: {bool(link)})"
        )
    axe, found, seen = Axe(), {}, []
    page = open_desktop(chromium)
    try:
        for lang in ("en", "ar"):
            page.goto(f"{live_server.url}/staff/setup/{link.group(1)}?lang={lang}")
            for state in ("form", "errors shown"):
                if state == "errors shown":
                    page.locator("#email").fill("first.admin@clinic.example")
                    page.locator("#display_name").fill("First Admin")
                    page.locator("#password").fill("long-enough-password")
                    page.locator("#confirm").fill("a-different-password")
                    submit(page)
                    expect(page.locator("#confirm-error")).to_be_visible()
                name = f"setup ({state}) [{lang}]"
                seen.append(name)
                assert page.locator("html").get_attribute("dir") == (
                    "rtl" if lang == "ar" else "ltr"
                ), name
                violations = axe.run(page).response["violations"]
                if violations:
                    found[name] = format_violations(violations)
    finally:
        page.context.close()
    assert query(live_server, "SELECT COUNT(*) AS n FROM users")[0]["n"] == 0
    assert len(seen) == 4
    assert not found, "axe-core violations:\n" + "\n".join(f"* {k}:\n{v}" for k, v in found.items())


# --- 1. front desk: invitation, QR, slip ---------------------------------------------------------


def test_front_desk_creates_an_invitation_and_opens_the_slip(desks, live_server):
    page = desks.open()
    log_in(page, live_server, DESK)
    page.get_by_role("link", name="New invitation", exact=True).first.click()
    expect_heading(page, "New invitation")
    visit_id = create_invitation(page, live_server, "MRN 1234", at="14:30")

    expect_heading(page, "Invitation for MRN 1234")
    code = page.locator("p.code")
    expect(code).to_have_text(re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$"))
    link = page.locator("p.link-line a")
    expect(link).to_have_attribute(
        "href", re.compile(rf"^{re.escape(live_server.url)}/v/[\w-]{{40,}}$")
    )
    expect(page.locator(".qr svg")).to_be_visible()
    expect(page.locator(".qr svg")).to_have_count(1)
    shown_code = code.inner_text().strip()

    page.get_by_role("link", name="Printable slip for the patient").click()
    expect(page).to_have_url(re.compile(rf"/staff/visits/{visit_id}/slip$"))
    expect_heading(page, "Before your visit")
    expect(page.locator(".qr svg")).to_be_visible()
    expect(page.locator("p.code")).to_have_text(shown_code)
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    stored = query(
        live_server,
        "SELECT patient_ref, appointment_at, psychiatrist_id FROM visits WHERE id = ?",
        (visit_id,),
    )[0]
    assert stored["patient_ref"] == "MRN 1234"
    # Stored in UTC with its offset; the server's zone is the clinic's (none set).
    assert stored["appointment_at"] == storage._ts(datetime.combine(date.today(), time(14, 30)))
    assert stored["psychiatrist_id"] == user_id(live_server, DOCTOR.email)


# --- 2. the board shows a new safety alert without a reload --------------------------------------


def test_board_shows_a_safety_alert_without_reload(desks, phone, live_server):
    desk = desks.signed_in(DESK)
    acknowledge_all_alerts(desk, live_server)  # earlier tests' alerts: start from none
    visit_id = create_invitation(desk, live_server, "MRN 2046", at="15:15")
    link = desk.locator("p.link-line a").get_attribute("href")

    wait_for_background_invitations(live_server)
    desk.goto(f"{live_server.url}/staff/")
    alerts = desk.locator("#alerts")
    row = desk.locator(f"tr[data-visit='{visit_id}']")
    expect(alerts).to_be_hidden()
    expect(row.locator("[data-field=status]")).to_have_text("Invited")
    navigations = []
    desk.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == desk.main_frame else None,
    )
    desk.evaluate("window.__sameBoard = 'still here'")

    patient = phone.open(360)
    open_and_start(patient, link)
    skip_to_step(patient, STEPS)
    choose(patient, "S1", "Several days")
    tap_next(patient)
    expect_heading(patient, "Thank you for telling us")

    expect(alerts).to_be_visible(timeout=ALERT_POLL_TIMEOUT_MS)
    expect(alerts.locator("h2")).to_have_text("Safety alerts")
    item = desk.locator(f"#alert-list li[data-visit='{visit_id}']")
    expect(item).to_contain_text("MRN 2046")
    expect(item).to_contain_text("Please check on the patient now.")
    expect(row.locator("[data-field=status]")).to_contain_text("In progress")
    expect(row).to_have_class(re.compile(r"\bhas-alert\b"))
    assert navigations == [], f"the board navigated: {navigations}"
    assert desk.evaluate("window.__sameBoard") == "still here", "the board was reloaded"

    # The item the script added carries the note field too, labelled.
    item.get_by_label("Note (optional)").fill("spoke with the patient at the desk <b>")
    with desk.expect_navigation():
        item.get_by_role("button", name="Acknowledge").click()
    assert desk.url.startswith(f"{live_server.url}/staff/?day=")  # back on the board
    expect(desk.locator(f"#alert-list li[data-visit='{visit_id}']")).to_have_count(0)
    expect(alerts).to_be_hidden()
    expect(row).not_to_have_class(re.compile(r"\bhas-alert\b"))
    expect(row).to_contain_text(f"Alert acknowledged by {DESK.name}")
    expect(row.locator(".ack-note")).to_have_text("Note: spoke with the patient at the desk <b>")
    acknowledged = query(
        live_server,
        "SELECT acknowledged_by, acknowledged_note FROM alerts WHERE visit_id = ?",
        (visit_id,),
    )
    assert acknowledged == [
        {
            "acknowledged_by": user_id(live_server, DESK.email),
            "acknowledged_note": "spoke with the patient at the desk <b>",
        }
    ]


# --- 3. the psychiatrist: summary from the board, print, copy as text ----------------------------


def test_psychiatrist_opens_summary_prints_and_copies(desks, live_server, maximal):
    page = desks.open()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, live_server, DOCTOR)
    page.locator(f"tr[data-visit='{maximal.visit_id}']").get_by_role("link", name="Summary").click()
    expect(page).to_have_url(re.compile(rf"/staff/visits/{maximal.visit_id}/summary$"))
    expect(page.locator("#summary-title")).to_contain_text(maximal.ref)
    expect(page.locator(".banner")).to_contain_text("Nearly every day")

    copy = page.get_by_role("button", name="Copy as text")
    expect(copy).to_be_visible()
    with page.expect_response(re.compile(r"/copied$")) as reported:
        copy.click()
    assert reported.value.status == 204
    expect(page.locator("[data-copy]")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert maximal.ref in copied
    assert DISCLAIMER in copied
    assert "SAFETY:" in copied

    page.get_by_role("link", name="Print", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/staff/visits/{maximal.visit_id}/print$"))
    page.wait_for_load_state("load")  # window.print() on load: a no-op when headless
    expect(page.locator("article.summary[data-autoprint]")).to_be_visible()
    expect(page.locator(".summary-actions .notice")).to_be_visible()
    actions = {
        row["action"]
        for row in query(
            live_server,
            "SELECT a.action FROM audit_log a JOIN users u ON u.id = a.user_id "
            "WHERE a.visit_id = ? AND u.email = ?",
            (maximal.visit_id, DOCTOR.email),
        )
    }
    assert {"summary_viewed", "summary_printed", "summary_exported"} <= actions, actions


def _live_board(desks, server, ref: str, at: str):
    """The front desk makes an invitation, then watches the board with board.js's timer
    under a fake clock (moved by hand: no real 5 s waits). Returns (board, visit_id, link)."""
    desk = desks.signed_in(DESK)
    visit_id = create_invitation(desk, server, ref, at=at)
    link = desk.locator("p.link-line a").get_attribute("href")
    wait_for_background_invitations(server)
    desk.clock.install()
    desk.goto(f"{server.url}/staff/")
    expect(desk.locator(f"tr[data-visit='{visit_id}'] [data-field=status]")).to_have_text("Invited")
    return desk, visit_id, link


def test_board_shows_the_patients_step_without_reload(desks, phone, live_server):
    desk, visit_id, link = _live_board(desks, live_server, "MRN 3071", "16:00")
    status = desk.locator(f"tr[data-visit='{visit_id}'] [data-field=status]")
    patient = phone.open(360)
    open_and_start(patient, link)  # the patient is on step 1 now
    desk.clock.run_for(5_000)
    try:
        expect(status).to_contain_text("In progress")
        polled = desk.evaluate("fetch('/staff/board.json').then(r => r.json())")
        assert [v["progress"] for v in polled["visits"] if v["id"] == visit_id] == [
            "part 1 of 8"
        ], polled
    except AssertionError as error:  # not the bug: make it a real failure, not an xfail
        raise RuntimeError(f"the board did not update the status at all: {error}") from error
    # What the server renders for this row on a reload:
    expect(status).to_contain_text("(part 1 of 8)", timeout=2_000)


def test_board_badges_the_alert_row_without_reload(desks, phone, live_server):
    desk, visit_id, link = _live_board(desks, live_server, "MRN 3072", "16:15")
    row = desk.locator(f"tr[data-visit='{visit_id}']")
    patient = phone.open(360)
    open_and_start(patient, link)
    skip_to_step(patient, STEPS)
    choose(patient, "S1", "Several days")
    tap_next(patient)
    expect_heading(patient, "Thank you for telling us")
    desk.clock.run_for(5_000)
    try:
        expect(desk.locator(f"#alert-list li[data-visit='{visit_id}']")).to_be_visible()
        expect(row).to_have_class(re.compile(r"\bhas-alert\b"))
    except AssertionError as error:  # not the bug: make it a real failure, not an xfail
        raise RuntimeError(f"the board did not show the alert at all: {error}") from error
    # What the server renders for this row on a reload:
    expect(row.locator(".badge.danger")).to_have_text("Alert", timeout=2_000)


# --- 4. axe-core on every staff page, in English and in Arabic -----------------------------------

EMPTY_DAY = "2001-01-01"  # no visits on this day
EVERY_STAFF_PAGE = {
    "login",
    "login (error shown)",
    "board (alert showing)",
    "board (empty)",
    "new invitation",
    "new invitation (validation errors)",
    "invitation with QR",
    "slip",
    "summary (full, safety banner)",
    "admin users",
    "admin user page",
    "settings",
    "settings (error shown)",
    "audit log",
    "integrations",
    "integrations (new token shown)",
    "error page (404)",
    "second factor set-up",
    "second factor set-up (error shown)",
    "recovery codes",
    "second factor on",
    "sign-in code",
    "sign-in code (error shown)",
}


@pytest.fixture(scope="module")
def staff_walk(chromium, live_server, signed_in_states, database):
    """One walk over every staff page in English and in Arabic at desktop size, recording
    axe-core violations, the <html dir> of each page and console errors; the tests below
    each judge one part."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    base = live_server.url
    desks = Desks(chromium, live_server, signed_in_states)
    record = {"axe": {}, "dir": {}, "seen": [], "console": desks.console}
    open_alert = store_maximal_visit(
        database, "AX-2002", psychiatrist_id=user_id(live_server, DOCTOR.email)
    )
    desk_id = user_id(live_server, DESK.email)

    def check(page, name: str, lang: str) -> None:
        page.wait_for_load_state("load")
        key = f"{name} [{lang}]"
        record["seen"].append(key)
        html_dir = page.locator("html").get_attribute("dir")
        if html_dir != ("rtl" if lang == "ar" else "ltr"):
            record["dir"][key] = f"<html dir={html_dir!r}> at {page.url}"
        violations = axe.run(page).response["violations"]
        if violations:
            record["axe"][key] = format_violations(violations)

    try:
        _walk_staff_pages(desks, base, check, open_alert.visit_id, desk_id)
    finally:
        desks.close()
    return record


def _walk_staff_pages(desks, base: str, check, alert_visit_id: int, desk_id: int) -> None:
    admins = {}
    for number, lang in enumerate(("en", "ar"), start=1):
        out = desks.open()
        out.goto(f"{base}/staff/login?lang={lang}")
        check(out, "login", lang)
        out.locator("#email").fill(f"nobody{number}@clinic.example")
        out.locator("#password").fill("not-the-password")
        submit(out)
        expect(out.locator("#password-error")).to_be_visible()
        check(out, "login (error shown)", lang)

        admin = admins[lang] = desks.signed_in(ADMIN)
        admin.goto(f"{base}/staff/?lang={lang}")  # the session keeps the language from here
        expect(admin.locator(f"#alert-list li[data-visit='{alert_visit_id}']")).to_be_visible()
        check(admin, "board (alert showing)", lang)
        admin.goto(f"{base}/staff/invitations/new")
        check(admin, "new invitation", lang)
        submit(admin)  # no reference, no time
        expect(admin.locator("#patient_ref-error")).to_be_visible()
        expect(admin.locator("#time-error")).to_be_visible()
        check(admin, "new invitation (validation errors)", lang)
        admin.locator("#patient_ref").fill(f"MRN 56{number}")
        admin.locator("#time").fill("17:30")
        submit(admin)
        expect(admin.locator(".qr svg")).to_be_visible()
        check(admin, "invitation with QR", lang)
        admin.locator("a[href$='/slip']").click()
        expect(admin.locator(".slip .qr svg")).to_be_visible()
        check(admin, "slip", lang)
        admin.goto(f"{base}/staff/visits/{alert_visit_id}/summary")
        expect(admin.locator(".banner form button")).to_be_visible()  # Acknowledge alert
        check(admin, "summary (full, safety banner)", lang)
        admin.goto(f"{base}/staff/admin/users")
        check(admin, "admin users", lang)
        admin.goto(f"{base}/staff/admin/users/{desk_id}")
        check(admin, "admin user page", lang)
        admin.goto(f"{base}/staff/admin/settings")
        check(admin, "settings", lang)
        admin.locator("#invite_extra_days").fill("99")
        submit(admin)  # refused: nothing is saved
        expect(admin.locator("#invite_extra_days-error")).to_be_visible()
        check(admin, "settings (error shown)", lang)
        admin.goto(f"{base}/staff/admin/audit")
        expect(admin.locator("table.admin-table")).to_be_visible()
        check(admin, "audit log", lang)
        admin.goto(f"{base}/staff/admin/integrations")
        check(admin, "integrations", lang)
        admin.locator("#name").fill(f"Register {number}")
        admin.locator("#name").press("Enter")
        expect(admin.locator("#new-token")).to_be_visible()
        check(admin, "integrations (new token shown)", lang)
        admin.goto(f"{base}/staff/admin/users/999999")  # no such account
        expect(admin.locator("body.staff .staff-nav")).to_be_visible()
        check(admin, "error page (404)", lang)
        admin.goto(f"{base}/staff/account")
        check(admin, "my account", lang)
        admin.locator("#current").fill("not the password")
        admin.locator("#password").fill("short")
        submit(admin)  # refused: a new password too short (and none confirmed)
        expect(admin.locator("#password-error")).to_be_visible()
        check(admin, "my account (errors shown)", lang)

        _walk_second_factor_pages(desks, base, check, lang)

    acknowledge_all_alerts(admins["en"], desks.server)
    for lang, admin in admins.items():
        admin.goto(f"{base}/staff/?day={EMPTY_DAY}")
        expect(admin.locator("#alerts")).to_be_hidden()
        expect(admin.locator("table.board")).to_have_count(0)
        check(admin, "board (empty)", lang)


def _sign_in_with_password(page, base: str, user: StaffUser, lang: str) -> None:
    page.goto(f"{base}/staff/login?lang={lang}")
    page.locator("#email").fill(user.email)
    page.locator("#password").fill(user.password)
    submit(page)


def _walk_second_factor_pages(desks, base: str, check, lang: str) -> None:
    """Setting up the second factor (led there at the first sign-in), then the code step."""
    user = NEW_DOCTORS[lang]
    page = desks.open()
    _sign_in_with_password(page, base, user, lang)
    expect(page).to_have_url(re.compile(r"/staff/account/mfa$"))
    page.goto(f"{base}/staff/account/mfa?lang={lang}")
    expect(page.locator(".qr svg")).to_be_visible()
    check(page, "second factor set-up", lang)
    page.locator("#code").fill("000000")
    submit(page)
    expect(page.locator("#code-error")).to_be_visible()
    check(page, "second factor set-up (error shown)", lang)
    TOTP_SECRETS[user.email] = page.locator("#mfa-secret").inner_text().replace(" ", "")
    page.locator("#code").fill(fresh_code(user.email))
    submit(page)
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    check(page, "recovery codes", lang)
    page.goto(f"{base}/staff/account/mfa?lang={lang}")
    check(page, "second factor on", lang)

    later = desks.open()
    _sign_in_with_password(later, base, user, lang)
    expect(later).to_have_url(re.compile(r"/staff/login/code$"))
    later.goto(f"{base}/staff/login/code?lang={lang}")
    check(later, "sign-in code", lang)
    later.locator("#code").fill("000000")
    submit(later)
    expect(later.locator("#code-error")).to_be_visible()
    check(later, "sign-in code (error shown)", lang)
    later.locator("#code").fill(fresh_code(user.email))
    submit(later)
    expect(later).to_have_url(re.compile(r"/staff/(\?lang=\w+)?$"))


def _expect_walked(walk, lang: str) -> None:
    missing = {f"{name} [{lang}]" for name in EVERY_STAFF_PAGE} - set(walk["seen"])
    assert not missing, f"pages not visited: {sorted(missing)}"


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_axe_finds_no_violations_on_any_staff_page(staff_walk, lang):
    _expect_walked(staff_walk, lang)
    found = {k: v for k, v in staff_walk["axe"].items() if k.endswith(f"[{lang}]")}
    assert not found, report(found, "axe-core violations")


def test_arabic_staff_pages_are_right_to_left(staff_walk):
    _expect_walked(staff_walk, "ar")
    _expect_walked(staff_walk, "en")
    assert not staff_walk["dir"], report(staff_walk["dir"], "Wrong text direction")


def test_no_console_errors_on_staff_pages(staff_walk):
    """A Content-Security-Policy violation (an inline style, say) shows up here."""
    messages = [m for m in staff_walk["console"] if "Failed to load resource" not in m]
    assert not messages, "\n".join(messages)


# --- 5. the fullest summary prints on exactly one page, Letter and A4, every language -----------


def test_pdf_page_counter_counts_a_known_two_page_pdf(desks):
    page = desks.open()
    assert count_pdf_pages(write_two_page_pdf(page)) == 2


def test_fullest_summary_prints_on_one_page_in_every_language(desks, live_server, maximal):
    """Ctrl+P on the summary page itself (page.pdf prints it as the browser would): one
    sheet on Letter and on A4 in every language. Prints the spare space per language and
    paper, and how many texts had to be shortened for paper."""
    page = desks.signed_in(DOCTOR)
    counts: dict[str, dict[str, int]] = {}
    spare: dict[str, dict[str, str]] = {}
    cuts: dict[str, int] = {}
    for lang in LANGUAGES:
        page.goto(f"{live_server.url}/staff/visits/{maximal.visit_id}/summary?lang={lang}")
        page.wait_for_load_state("load")
        assert page.locator("html").get_attribute("lang") == lang.replace("_", "-")
        expect(page.locator(".banner")).to_be_visible()
        expect(page.locator(".banner .safety-history")).to_be_visible()
        # M4, R1, M2, new, gone, stance, and the v2 items last visit was not asked
        expect(page.locator(".changes li")).to_have_count(7)
        expect(page.locator(".flags ol > li")).to_have_count(3)
        expect(page.locator(".also-noted")).to_be_visible()
        expect(page.locator(".meds li")).to_have_count(6)
        expect(page.locator(".previous-hopes")).to_be_visible()
        # Both standard measures, each with its earlier totals and its chart.
        expect(page.locator(".measure")).to_have_count(2)
        expect(page.locator(".measure svg.trend")).to_have_count(2)
        expect(page.locator(".measure svg.trend").first.locator("circle")).to_have_count(5)
        cuts[lang] = wait_for_fitting(page)
        counts[lang], spare[lang] = {}, {}
        for paper in ("Letter", "A4"):
            counts[lang][paper] = count_pdf_pages(page.pdf(format=paper))
            content, printable = print_content_height(page, paper)
            spare[lang][paper] = (
                f"{printable - content:5.0f} px ({(printable - content) / MM:4.0f} mm)"
            )

    lines = [f"{'language':<9} {'pages L/A4':>10}  {'spare Letter':>18}  {'spare A4':>18}  cut"]
    lines += [
        f"{lang:<9} {counts[lang]['Letter']:>5}/{counts[lang]['A4']:<4}  "
        f"{spare[lang]['Letter']:>18}  {spare[lang]['A4']:>18}  {cuts[lang]}"
        for lang in LANGUAGES
    ]
    print("\nFullest summary, printed pages and spare space per language:\n" + "\n".join(lines))
    over = {
        lang: paper_counts
        for lang, paper_counts in counts.items()
        if set(paper_counts.values()) != {1}
    }
    assert not over, "the fullest summary does not print on exactly one page:\n" + "\n".join(lines)


def test_fullest_summary_answered_the_day_before_still_prints_on_one_page(
    desks, live_server, staff, database
):
    """Answered the day before the visit, every time on the banner and in the header
    carries its day in brackets ("at 9:00 AM (Dec 6, 2026)"): the longer lines still fit
    one sheet, Letter and A4, in every language."""
    doctor = user_id(live_server, DOCTOR.email)
    visit = store_maximal_visit(
        database,
        "MX-1002",
        psychiatrist_id=doctor,
        created_by=user_id(live_server, DESK.email),
        acknowledged_by=doctor,
        answered_before=timedelta(days=1),
        now=datetime.combine(date.today(), time(12)),  # never a minute past midnight
    )
    page = desks.signed_in(DOCTOR)
    over = []
    for lang in LANGUAGES:
        page.goto(f"{live_server.url}/staff/visits/{visit.visit_id}/summary?lang={lang}")
        page.wait_for_load_state("load")
        # The four saved answers on the banner, each with the day before in brackets.
        day = format_date(date.today() - timedelta(days=1), "medium", locale=lang)
        expect(page.locator(".banner")).to_contain_text(day)
        assert page.locator(".banner").inner_text().count(day) >= 4
        wait_for_fitting(page)
        for paper in ("Letter", "A4"):
            if count_pdf_pages(page.pdf(format=paper)) != 1:
                over.append(f"{lang} {paper}")
    assert not over, "answered the day before, the fullest page takes two sheets: " + ", ".join(
        over
    )


SIZES = (11, 10.5, 10, 9.5, 9, 8.5, 8)
SPARE_JS = """() => {
    const MM = 96 / 25.4, sheet = document.getElementById('print-css');
    const media = sheet.media, root = document.documentElement.style;
    sheet.media = 'all';
    let spare = Infinity, split = 0;
    for (const [width, height] of [[215.9, 279.4], [210, 297]]) {  // Letter, A4
        root.width = ((width - 18) * MM) + 'px';
        const top = document.documentElement.getBoundingClientRect().top;
        const bottom = document.querySelector('main').getBoundingClientRect().bottom - top;
        spare = Math.min(spare, (height - 16) * MM - bottom);
        split = Math.max(split, [...document.querySelectorAll('.blocks section')]
            .filter(s => s.getClientRects().length > 1).length);
    }
    sheet.media = media; root.width = '';
    return {spare, split};
}"""


# The page as summary.js would lay it out at 8 pt with every text cut to its shortest
# (24 characters and the marker): what it tries before 7.4 pt. Put back afterwards.
AT_8_PT_SHORTEST_JS = """spareJs => {
    const article = document.querySelector('article.summary');
    const kept = [...article.querySelectorAll('[data-fit]')].map(el => [el, el.innerHTML]);
    const pt = article.style.getPropertyValue('--print-pt'), classes = article.className;
    const more = '\u2026 ' + article.getAttribute('data-fit-more');
    article.classList.remove('fit-small', 'keep-sections');
    article.style.setProperty('--print-pt', '8pt');
    for (const [el] of kept) {
        const chars = Array.from(el.textContent.replace(more, ''));
        if (chars.length > 24) el.textContent = chars.slice(0, 24).join('') + more;
    }
    const spare = eval(spareJs)().spare;
    for (const [el, html] of kept) el.innerHTML = html;
    article.style.setProperty('--print-pt', pt);
    article.className = classes;
    return spare;
}"""


def test_print_type_is_the_largest_that_keeps_one_sheet(desks, live_server, maximal, database):
    """v3: on paper the type is the largest from 11 pt down to 8 pt that still fits one
    sheet, before any text is shortened. Prints the size reached per language for a
    typical visit and the fullest one; each prints on one Letter and one A4 page, and
    one size larger would not (unless it is already 11 pt)."""
    now = datetime.now().replace(microsecond=0)
    typical = store_submitted(
        database,
        ref="TY-1001",
        answers=dict(examples.LOWER_THE_DOSE),
        appointment=now + timedelta(minutes=45),
        sent=now - timedelta(minutes=2),
        psychiatrist_id=user_id(live_server, DOCTOR.email),
    )
    page = desks.signed_in(DOCTOR)
    sizes: dict[str, dict[str, float]] = {}
    for lang in LANGUAGES:
        sizes[lang] = {}
        for name, visit_id in (("typical", typical), ("fullest", maximal.visit_id)):
            page.goto(f"{live_server.url}/staff/visits/{visit_id}/summary?lang={lang}")
            cut = wait_for_fitting(page)
            size = float(page.locator("article.summary").get_attribute("data-print-pt"))
            sizes[lang][name] = size
            assert 8 <= size <= 11 or size == 7.4, (lang, name, size)
            if size == 7.4:  # the last resort: even the shortest texts overflow at 8 pt
                spare = page.evaluate(AT_8_PT_SHORTEST_JS, SPARE_JS)
                assert spare < 10, f"[{lang}] {name} would fit at 8 pt cut: {spare:.0f} px"
            # A typical page keeps every section whole in its column: none continues
            # headless in the next (the fullest may need to).
            kept = "keep-sections" in page.locator("article.summary").get_attribute("class")
            if name == "typical":
                assert kept and page.evaluate(SPARE_JS)["split"] == 0, (lang, "split")
            for paper in ("Letter", "A4"):
                assert count_pdf_pages(page.pdf(format=paper)) == 1, (lang, name, paper)
            if size < 11 and cut == 0:
                larger = SIZES[-1] if size == 7.4 else SIZES[SIZES.index(size) - 1]
                page.evaluate(
                    "pt => document.querySelector('article.summary')"
                    ".style.setProperty('--print-pt', pt + 'pt')",
                    larger,
                )
                # summary.js's own measure (print.css on, each paper's printable width
                # and height less its 10 px of slack) says one size more overflows.
                spare = page.evaluate(SPARE_JS)["spare"]
                assert spare < 10, f"[{lang}] {name} would fit at {larger} pt: {spare:.0f} px"
    lines = [f"{'language':<9} {'typical':>8} {'fullest':>8}"]
    lines += [
        f"{lang:<9} {sizes[lang]['typical']:>6g}pt {sizes[lang]['fullest']:>6g}pt"
        for lang in LANGUAGES
    ]
    print("\nPrint type reached (one sheet, Letter and A4 alike):\n" + "\n".join(lines))
    assert all(sizes[lang]["typical"] >= sizes[lang]["fullest"] for lang in LANGUAGES)
    assert all(sizes[lang]["typical"] > 8 for lang in LANGUAGES)  # no longer 8 pt always


QUOTE_150 = {
    "T2": "Whether the dose is still right for me, because the mornings are hard. ",
    "H1": "I would sleep through the night and call my sister again without shame. ",
    "F2": "My grandmother prays for me and says that medicine is a kind of weakness. ",
}


def test_three_150_character_quotes_print_uncut(desks, live_server, staff, database):
    """Quotes print in full when the page fits: nothing is shortened, on either paper."""
    answers = maximal_answers()
    answers["M1"] = [{"name": "Sertraline", "feeling": "helping"}]
    texts = {item_id: realistic_text(sentence, 150) for item_id, sentence in QUOTE_150.items()}
    answers["T2"], answers["H1"] = texts["T2"], texts["H1"]
    answers["F2"] = {"choice": "yes", "text": texts["F2"]}
    answers["S1"] = "not_at_all"
    now = datetime.now().replace(microsecond=0)
    visit_id = store_submitted(
        database,
        ref="Q150-1",
        answers=answers,
        appointment=now + timedelta(minutes=30),
        sent=now - timedelta(minutes=1),
        psychiatrist_id=user_id(live_server, DOCTOR.email),
    )
    page = desks.signed_in(DOCTOR)
    for lang in ("en", "ar"):
        page.goto(f"{live_server.url}/staff/visits/{visit_id}/summary?lang={lang}")
        assert wait_for_fitting(page) == 0
        page.emulate_media(media="print")
        printed = page.locator("article.summary").inner_text()
        page.emulate_media(media=None)
        for text in texts.values():
            assert text in printed, f"[{lang}] not printed whole: {text}"
        assert "(continued on screen)" not in printed
        for paper in ("Letter", "A4"):
            assert count_pdf_pages(page.pdf(format=paper)) == 1


def test_on_paper_each_flag_reads_as_one_run_of_words(desks, live_server, maximal):
    """On paper a flag's title, practice, evidence and opener share one line (no break):
    each part still stands apart from the next by a space, in every language."""
    page = desks.signed_in(DOCTOR)
    for lang in ("en", "ar", "zh_Hans"):
        page.goto(f"{live_server.url}/staff/visits/{maximal.visit_id}/summary?lang={lang}")
        wait_for_fitting(page)
        flags = page.locator(".flags ol > li")
        parts = [
            [
                flag.locator(part).inner_text() if flag.locator(part).count() else ""
                for part in ("strong", ".practice", ".evidence")
            ]
            for flag in flags.all()
        ]
        assert any(evidence for *_, evidence in parts), "no flag with converging evidence"
        page.emulate_media(media="print")
        printed = flags.all_inner_texts()
        page.emulate_media(media=None)
        for (title, practice, evidence), text in zip(parts, printed, strict=True):
            assert "\n" not in text, f"[{lang}] a break on paper: {text!r}"
            shown = " ".join(part for part in (title, practice, evidence) if part)
            assert text.startswith(f"{shown} "), f"[{lang}] run on: {text!r}"
            assert len(text) > len(shown) + 1, f"[{lang}] no opener: {text!r}"


def test_only_what_would_overflow_is_shortened_longest_first(desks, live_server, maximal):
    """Squeezed onto a tiny sheet, the longest texts are cut first, with the marker on
    paper, while the screen still shows every word."""
    page = desks.signed_in(DOCTOR)
    page.goto(f"{live_server.url}/staff/visits/{maximal.visit_id}/summary")
    wait_for_fitting(page)
    whole = page.locator("[data-fit]").all_inner_texts()
    page.evaluate(
        """() => { const a = document.querySelector('article.summary');
                    a.removeAttribute('data-fitted');
                    const big = document.createElement('div');
                    big.style.height = '700px'; big.className = 'filler';
                    a.prepend(big);
                    window.dispatchEvent(new Event('load')); }"""
    )
    cut = wait_for_fitting(page)
    assert cut > 0
    assert page.locator("[data-fit]").all_inner_texts() == whole  # the screen keeps all
    page.emulate_media(media="print")
    printed = page.locator("[data-fit]").all_inner_texts()
    page.emulate_media(media=None)
    shortened = [i for i, text in enumerate(printed) if "(continued on screen)" in text]
    assert len(shortened) == cut
    # Longest first: every text left whole is no longer than the shortest one cut.
    kept = [len(whole[i]) for i in range(len(whole)) if i not in shortened]
    assert max(kept, default=0) <= min(len(whole[i]) for i in shortened)


# --- 6. no sideways scroll at 320 px -------------------------------------------------------------

SCROLL_JS = """() => ({scrollWidth: document.documentElement.scrollWidth,
                       innerWidth: window.innerWidth,
                       wide: [...document.querySelectorAll('body *')]
                         .filter(el => el.getBoundingClientRect().right > innerWidth + 0.5
                                 && !el.closest('.table-wrap'))
                         .map(el => el.tagName.toLowerCase()
                              + (el.className ? '.' + el.className : '')
                              + ' right=' + Math.round(el.getBoundingClientRect().right))
                         .slice(0, 8)})"""


def test_no_sideways_scroll_at_320_px_on_login_and_board(desks, live_server, maximal):
    found = {}

    def check(page, name):
        page.wait_for_load_state("load")
        measured = page.evaluate(SCROLL_JS)
        if measured["innerWidth"] != 320 or measured["scrollWidth"] > measured["innerWidth"]:
            found[name] = (
                f"scrollWidth {measured['scrollWidth']} > innerWidth "
                f"{measured['innerWidth']}; too wide: {measured['wide']}"
            )

    for lang in ("en", "ar"):
        page = desks.open(width=320, height=640)
        page.goto(f"{live_server.url}/staff/login?lang={lang}")
        check(page, f"login [{lang}]")
        for user in (DESK, ADMIN):  # the admin has the longest menu
            page = desks.signed_in(user, width=320, height=640)
            page.goto(f"{live_server.url}/staff/?lang={lang}")
            expect(page.locator(f"tr[data-visit='{maximal.visit_id}']")).to_be_visible()
            check(page, f"board as {user.role} [{lang}]")
    assert not found, "Sideways scroll at 320 px:\n" + "\n".join(
        f"* {name}: {detail}" for name, detail in found.items()
    )


@pytest.mark.parametrize("width", [320, 360])
def test_the_board_on_a_phone_keeps_every_word_whole_without_sideways_scroll(
    desks, live_server, width
):
    """Seen on a screenshot at 360 px in Arabic: the board's table squeezed into the
    screen and broke every word letter by letter (times, references, names, the alert
    badge), because the page lets long words break anywhere. The table keeps its words
    whole; on a phone each visit is two lines, so nothing scrolls sideways either
    (test_staff_layout.py: the status beside the reference)."""
    desk = desks.signed_in(DESK, width=width, height=800)
    create_invitation(desk, live_server, "A-40711", at="15:45")
    desk.goto(f"{live_server.url}/staff/?lang=ar")
    expect(desk.locator("html")).to_have_attribute("dir", "rtl")
    table = desk.locator("table.board")
    expect(table).to_contain_text("A-40711")
    broken = table.evaluate(WORDS_BROKEN_IN)
    assert broken == [], broken
    assert desk.evaluate("document.documentElement.scrollWidth") <= width  # the page itself
    wrap = desk.locator(".table-wrap")
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # nothing hidden sideways
