"""The staff pages as a person sees them on paper, on a phone and in Arabic and Chinese
(a visual walk's findings, 2026-12-07): the printed slip holds only what the patient
needs; the phone board shows each visit's status beside its reference; short Chinese
labels stay on one line; a tick box sits beside its words; technical examples read
left to right in Arabic; stand-alone links are 44 px tall; the alert's two sentences
join the language's way; the alert bar's link shows only where it leads somewhere; an
acknowledgement note reads as a sentence on a phone.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta

import pytest

from patientapp.db import storage

from .maximal_visit import store_submitted
from .patient_ui import expect
from .staff_ui import (
    StaffUser,
    create_users,
    format_violations,
    log_in,
    open_desktop,
    query,
    user_id,
)

pytestmark = pytest.mark.browser

DESK = StaffUser("frontdesk", "layout.desk@clinic.example", "Robin Layout")
DOCTOR = StaffUser("psychiatrist", "layout.dr@clinic.example", "Dr. Maximiliana Featherstonehaugh")
ADMIN = StaffUser("admin", "layout.admin@clinic.example", "Lee Layout")
NEW_DOCTOR = StaffUser("psychiatrist", "layout.new.dr@clinic.example", "Dr. Not Yet Set Up")
NOTE = "Called her at home, she is safe and her sister is with her tonight"
TAP = 44  # px, the smallest tap target


@pytest.fixture(scope="module")
def people(live_server):
    create_users(live_server, [DESK, DOCTOR, ADMIN, NEW_DOCTOR])
    return {}


@pytest.fixture(scope="module")
def board_visits(live_server, people):
    """Today: a visit with an open alert, one acknowledged with a note, one invited."""
    db = storage.connect(live_server.database)
    doctor = user_id(live_server, DOCTOR.email)
    desk = user_id(live_server, DESK.email)
    now = datetime.now().replace(microsecond=0)
    slot = min(now + timedelta(minutes=40), now.replace(hour=23, minute=58))
    made = {}
    try:
        for ref in ("LAY-OPEN", "LAY-ACK"):
            made[ref] = store_submitted(
                db,
                ref=ref,
                answers={"S1": "nearly_every_day"},
                appointment=slot,
                sent=now - timedelta(minutes=2),
                psychiatrist_id=doctor,
                created_by=desk,
            )
        assert storage.acknowledge_alert(db, made["LAY-ACK"], desk, now, note=NOTE)
        db.conn.commit()
        yield made
        storage.acknowledge_alert(db, made["LAY-OPEN"], desk, datetime.now())  # leave none open
        db.conn.commit()
    finally:
        db.conn.close()


class Sessions:
    """Signed-in browser pages, one sign-in per account for the whole module."""

    def __init__(self, browser, server):
        self.browser, self.server = browser, server
        self.states: dict[str, dict] = {}
        self.pages = []

    def open(self, user: StaffUser | None, width: int = 360, height: int = 800):
        options = {}
        if user is not None and user.email in self.states:
            options["storage_state"] = self.states[user.email]
        page = open_desktop(self.browser, width, height, **options)
        self.pages.append(page)
        if user is not None and user.email not in self.states:
            log_in(page, self.server, user)
            self.states[user.email] = page.context.storage_state()
        return page

    def close(self):
        for page in self.pages:
            page.context.close()
        self.pages.clear()


@pytest.fixture(scope="module")
def sessions(chromium, live_server, people):
    opened = Sessions(chromium, live_server)
    yield opened
    opened.close()


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not shown"
    return found


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


# --- 1. the printed slip ---------------------------------------------------------------------


def test_printed_slip_holds_only_what_the_patient_needs(sessions, live_server, tmp_path):
    page = sessions.open(DESK)
    page.goto(f"{live_server.url}/staff/invitations/new")
    page.get_by_label("Patient reference").fill("LAY-SLIP")
    page.get_by_label("Appointment date").fill(date.today().isoformat())
    page.get_by_label("Appointment time").fill("23:50")
    page.get_by_role("button", name="Create invitation").click()
    code = page.locator("p.code").inner_text().strip()
    page.get_by_role("link", name="Printable slip for the patient").click()
    expect(page.get_by_role("button", name="Print")).to_be_visible()  # on screen, it is there
    pdf = tmp_path / "slip.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Before your visit" in text
    assert code in text
    assert "Works until the end of" in text
    assert "Print" not in text, text
    assert "Back to the invitation" not in text, text
    # The PNG of the printed page: one sheet, and no dashed frame around the slip.
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "p")], check=True)
    assert len(list(tmp_path.glob("p*.png"))) == 1
    page.emulate_media(media="print")
    assert page.locator("main.slip").evaluate("m => getComputedStyle(m).borderTopStyle") in (
        "none",
        "hidden",
    )
    assert page.locator(".no-print").is_hidden()


# --- 3, 12. the board on a phone ---------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ar", "zh_Hans"])
def test_phone_board_shows_status_beside_the_reference(sessions, live_server, board_visits, lang):
    page = sessions.open(DESK, width=360)
    page.goto(f"{live_server.url}/staff/?lang={lang}")
    no_sideways_scroll(page)
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth"), "the board scrolls sideways"
    for ref in board_visits:
        row = page.locator("tr", has_text=ref)
        patient, status = box(row.locator("[data-field=patient]")), box(row.locator("td.status"))
        # Within the screen, and on the reference's line (overlapping it vertically).
        assert status["x"] >= 0 and status["x"] + status["width"] <= 360, (ref, status)
        assert status["y"] < patient["y"] + patient["height"], (ref, patient, status)
        assert status["y"] + status["height"] > patient["y"], (ref, patient, status)
        for cell in row.locator("td").all():  # nothing hidden past the edge
            b = box(cell)
            assert b["x"] >= 0 and b["x"] + b["width"] <= 360, (ref, cell.inner_text(), b)


def test_phone_board_passes_axe(sessions, live_server, board_visits):
    from axe_playwright_python.sync_playwright import Axe

    page = sessions.open(DESK, width=360)
    page.goto(f"{live_server.url}/staff/?lang=ar")
    violations = Axe().run(page).response["violations"]
    assert not violations, format_violations(violations)


def test_phone_board_is_a_table_to_screen_readers(sessions, live_server, board_visits):
    page = sessions.open(DESK, width=360)
    page.goto(f"{live_server.url}/staff/?lang=ar")
    table = page.get_by_role("table")
    expect(table).to_have_count(1)
    rows = page.locator("table.board tr").count()  # the visits of the day and the heads
    expect(table.get_by_role("row")).to_have_count(rows)
    expect(table.get_by_role("columnheader")).to_have_count(7)
    for ref in board_visits:
        expect(table.get_by_role("row", name=re.compile(ref)).get_by_role("cell")).to_have_count(7)
    # Written out, not left to the browser: Safari stops reading a table as one when CSS
    # lays its rows out as blocks, as the phone board does.
    missing = page.evaluate(
        """() => [...document.querySelectorAll(
            'table.board, table.board thead, table.board tbody, table.board tr, '
            + 'table.board th, table.board td')].filter(e => !e.getAttribute('role'))
            .map(e => e.tagName)"""
    )
    assert missing == [], missing


def test_desktop_board_keeps_its_columns(sessions, live_server, board_visits):
    page = sessions.open(DESK, width=1280)
    page.goto(f"{live_server.url}/staff/")
    expect(page.locator("table.board thead th").first).to_be_visible()
    row = page.locator("tr", has_text="LAY-OPEN")
    tops = {round(box(cell)["y"]) for cell in row.locator("td").all()}
    assert len(tops) == 1, tops  # one table row, cells side by side
    heads = [box(th)["x"] for th in page.locator("table.board thead th").all()]
    assert heads == sorted(heads)


def test_phone_board_acknowledgement_note_reads_as_a_sentence(sessions, live_server, board_visits):
    page = sessions.open(DESK, width=360)
    page.goto(f"{live_server.url}/staff/?lang=ar")
    note = page.locator("tr", has_text="LAY-ACK").locator(".ack")
    expect(note).to_contain_text(NOTE)
    lines = note.evaluate(
        """n => {
        const r = document.createRange(); r.selectNodeContents(n);
        return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size;
    }"""
    )
    words = len(note.inner_text().split())
    assert words / lines >= 4, f"{words} words on {lines} lines"
    assert box(note)["width"] >= 360 * 0.45


def edge_shade(page, locator, side: str) -> float:
    """How dark, on average (0 white to 255 black), the 6 px at one side of an element
    look on screen: read back from a screenshot through a canvas on a blank page."""
    locator.evaluate("e => e.scrollIntoView({block: 'start'})")
    b = box(locator)
    x = b["x"] if side == "left" else b["x"] + b["width"] - 6
    height = min(b["height"], page.viewport_size["height"] - b["y"], 400)
    png = page.screenshot(clip={"x": x, "y": b["y"], "width": 6, "height": height})
    blank = page.context.new_page()
    try:
        return blank.evaluate(
            """async b64 => {
            const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data; let sum = 0;
            for (let i = 0; i < d.length; i += 4) sum += 255 - (d[i] + d[i + 1] + d[i + 2]) / 3;
            return sum / (d.length / 4);
        }""",
            base64.b64encode(png).decode(),
        )
    finally:
        blank.close()


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_other_wide_tables_show_that_they_scroll(sessions, live_server, people, lang):
    """A shadow at the side where the table runs on, gone once scrolled to its end."""
    page = sessions.open(ADMIN, width=360)
    page.goto(f"{live_server.url}/staff/admin/audit?lang={lang}")
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")
    more, start = ("right", "left") if lang == "en" else ("left", "right")
    before = edge_shade(page, wrap, more), edge_shade(page, wrap, start)
    end = -1 if lang == "ar" else 1  # scrollLeft runs negative in right-to-left
    wrap.evaluate("(w, end) => { w.scrollLeft = end * w.scrollWidth }", end)
    after = edge_shade(page, wrap, more), edge_shade(page, wrap, start)
    assert before[0] > after[0] + 4, f"no shadow where the table runs on: {before} then {after}"
    assert after[1] > before[1] + 4, f"no shadow at the start once scrolled: {before} then {after}"


# --- 4. short Chinese labels on one line -------------------------------------------------------


def one_line(locator) -> bool:
    """Whether the element's visible words lie on one line."""
    return locator.evaluate(
        """e => {
        const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT), tops = new Set();
        while (walker.nextNode()) {
            const n = walker.currentNode;
            if (!n.textContent.trim() || n.parentElement.closest('.visually-hidden')) continue;
            const r = document.createRange(); r.selectNodeContents(n);
            for (const b of r.getClientRects()) tops.add(Math.round(b.top));
        }
        return tops.size === 1;
    }"""
    )


@pytest.mark.parametrize("width", [360, 768])
def test_chinese_short_labels_stay_on_one_line(sessions, live_server, board_visits, width):
    page = sessions.open(ADMIN, width=width)
    page.goto(f"{live_server.url}/staff/?lang=zh_Hans")
    for link in page.locator("td.actions a").all():
        assert one_line(link), link.inner_text()
    for label in page.locator("td.status > span[class^=status-]").all():
        assert one_line(label), label.inner_text()
    page.goto(f"{live_server.url}/staff/admin/users?lang=zh_Hans")
    for row in page.locator("table.admin-table tbody tr").all():
        for cell in row.locator("td").all()[1:]:  # role, status, "Manage"
            assert one_line(cell), cell.inner_text()


# --- 5. tick boxes beside their words ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/staff/admin/settings", "references_are_chart_numbers"),
        ("/staff/admin/settings", "alert_sound"),
        ("/staff/admin/integrations", "in_progress"),
    ],
)
def test_tick_box_settings_sit_beside_their_label(sessions, live_server, people, path, name):
    page = sessions.open(ADMIN, width=360)
    page.goto(f"{live_server.url}{path}")
    tick = page.locator(f"input#{name}")
    label = page.locator(f"label[for={name}]")
    t, w = box(tick), box(label)
    assert t["width"] >= 20 and t["height"] >= 20, t
    # The box inside the label's tap area, on its line; the label's words after it.
    assert w["height"] >= TAP, w
    assert w["y"] <= t["y"] and t["y"] + t["height"] <= w["y"] + w["height"], (t, w)
    words = label.evaluate(
        """l => {
        const walker = document.createTreeWalker(l, NodeFilter.SHOW_TEXT);
        while (walker.nextNode() && !walker.currentNode.textContent.trim());
        const r = document.createRange(); r.selectNodeContents(walker.currentNode);
        return r.getBoundingClientRect().toJSON(); }"""
    )
    assert words["left"] >= t["x"] + t["width"], (words, t)
    assert words["top"] < t["y"] + t["height"] and words["bottom"] > t["y"], (words, t)
    before = tick.is_checked()
    label.click(position={"x": w["width"] - 4, "y": w["height"] - 4})
    assert tick.is_checked() != before


# --- 6. technical words left to right in Arabic ------------------------------------------------


def visual_order(page, container, token: str) -> list[float]:
    """The x of each character of ``token`` inside ``container``, in logical order."""
    return container.evaluate(
        """(el, token) => {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        let text = '', nodes = [];
        while (walker.nextNode()) {
            nodes.push([walker.currentNode, text.length]);
            text += walker.currentNode.textContent;
        }
        const at = text.indexOf(token);
        if (at < 0) return null;
        const xs = [];
        for (let i = at; i < at + token.length; i++) {
            const [node, start] = nodes.filter(([n, s]) => s <= i).pop();
            const r = document.createRange();
            r.setStart(node, i - start);
            r.setEnd(node, i - start + 1);
            xs.push(r.getBoundingClientRect().left);
        }
        return xs;
    }""",
        token,
    )


@pytest.mark.parametrize(
    ("path", "hint", "tokens"),
    [
        ("/staff/admin/messages", "#sms_email_address-hint", ["{number}@sms.example.net"]),
        ("/staff/admin/messages", "#sms_http_url-hint", ["https://"]),
        (
            "/staff/admin/settings",
            "#chart_number_system-hint",
            ["urn:oid:1.2.3.4", "https://hospital.example/mrn"],
        ),
        ("/staff/admin/settings", "#time_zone-hint", ["America/Chicago", "Europe/Paris"]),
    ],
)
def test_arabic_hints_keep_technical_words_left_to_right(
    sessions, live_server, people, path, hint, tokens
):
    page = sessions.open(ADMIN, width=768)
    page.goto(f"{live_server.url}{path}?lang=ar")
    container = page.locator(hint)
    for token in tokens:
        xs = visual_order(page, container, token)
        assert xs is not None, f"{token} not in {container.inner_text()}"
        assert xs == sorted(xs), f"{token} is not read left to right: {xs}"


# --- 9. 44 px tap targets on a phone -----------------------------------------------------------


def test_stand_alone_links_are_44_px_tall_on_a_phone(sessions, live_server, board_visits):
    page = sessions.open(ADMIN, width=360)
    checks = {
        "/staff/invitations/new": "#alert-bar a",
        "/staff/admin/users": "main p > a[href$='/admin/users']",
        "/staff/admin/audit": ".filter-buttons a",
        f"/staff/visits/{board_visits['LAY-ACK']}/summary": "main p > a[href*='/staff/?day=']",
    }
    user = query(live_server, "SELECT id FROM users WHERE email = ?", (DESK.email,))[0]["id"]
    short = {}
    for path, selector in checks.items():
        if path == "/staff/admin/users":
            path = f"/staff/admin/users/{user}"
        page.goto(f"{live_server.url}{path}")
        link = page.locator(selector).first
        height = box(link)["height"]
        if height < TAP:
            short[f"{path} {selector}"] = height
    login = sessions.open(None, width=360)
    login.goto(f"{live_server.url}/staff/login")
    login.get_by_label("Email").fill(ADMIN.email)
    login.get_by_label("Password").fill(ADMIN.password)
    login.get_by_role("button", name="Sign in").click()
    expect(login).to_have_url(re.compile(r"/staff/login/code$"))
    height = box(login.get_by_role("link", name="Start again"))["height"]
    if height < TAP:
        short["Start again"] = height
    assert not short, f"under {TAP} px: {short}"
    desktop = sessions.open(ADMIN, width=1280)
    desktop.goto(f"{live_server.url}/staff/admin/users/{user}")
    back = desktop.locator("main p > a[href$='/admin/users']")
    heading = box(desktop.locator("main h1"))
    assert box(back)["y"] > heading["y"]  # still below the page, not floating over it


@pytest.mark.parametrize("lang", ["zh_Hans", "ar"])
def test_menu_links_are_44_px_both_ways_on_a_phone(sessions, live_server, board_visits, lang):
    """Chinese menu words of two characters ("看板", "用户") were 34 px wide."""
    page = sessions.open(ADMIN, width=360)
    page.goto(f"{live_server.url}/staff/?lang={lang}")
    small = {}
    for link in page.locator(".staff-nav a").all():
        b = box(link)
        if b["width"] < TAP or b["height"] < TAP:
            small[link.inner_text()] = (round(b["width"]), round(b["height"]))
    assert not small, f"under {TAP} px: {small}"
    no_sideways_scroll(page)


# --- 10. two sentences, joined the language's way ---------------------------------------------


def test_chinese_alert_sentences_have_no_space_between(sessions, live_server, board_visits):
    page = sessions.open(DESK, width=768)
    page.goto(f"{live_server.url}/staff/?lang=zh_Hans")
    item = page.locator("#alert-list li", has_text="LAY-OPEN").locator("p")
    text = item.inner_text()
    assert "。" in text and "。 " not in text, text
    template = page.locator("#board").get_attribute("data-alert-text")
    assert "。 " not in template, template
    page.goto(f"{live_server.url}/staff/?lang=en")
    text = page.locator("#alert-list li", has_text="LAY-OPEN").locator("p").inner_text()
    assert "). Please check on the patient now." in text, text


# --- 11. the alert bar's link only where it leads somewhere ------------------------------------


def test_alert_bar_link_only_where_it_helps(sessions, live_server, board_visits):
    page = sessions.open(DESK, width=1280)
    page.goto(f"{live_server.url}/staff/invitations/new")
    expect(page.locator("#alert-bar")).to_be_visible()
    expect(page.locator("#alert-bar").get_by_role("link", name="Go to the board")).to_be_visible()
    page.goto(f"{live_server.url}/staff/")
    expect(page.locator("#alert-bar")).to_be_visible()
    expect(page.locator("#alert-bar a:visible")).to_have_count(0)
    # A psychiatrist who must set up a second factor first cannot open the board yet.
    setup = sessions.open(None, width=1280)
    setup.goto(f"{live_server.url}/staff/login")
    setup.get_by_label("Email").fill(NEW_DOCTOR.email)
    setup.get_by_label("Password").fill(NEW_DOCTOR.password)
    setup.get_by_role("button", name="Sign in").click()
    expect(setup).to_have_url(re.compile(r"/staff/account/mfa$"))
    expect(setup.locator("#alert-bar")).to_be_visible()
    expect(setup.locator("#alert-bar a:visible")).to_have_count(0)


def test_pdftotext_is_installed():
    assert shutil.which("pdftotext") and shutil.which("pdftoppm")
