"""How staff are driven in the browser tests: accounts made with the real `create-user`
CLI against the server's instance, desktop-sized browser contexts, login through the
form, axe reports, and counting the pages of a PDF."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime

import pyotp

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the fixtures skip (or fail in CI) with a clear message
    Page, expect = object, None

from .conftest import ACTION_TIMEOUT_MS, REPO_ROOT

DESKTOP = {"width": 1280, "height": 800}
PASSWORD = "staff-password-2026"  # test accounts only, on a throwaway instance
LANGUAGES = ("en", "es", "fr", "pt_BR", "zh_Hans", "vi", "ar")
DISCLAIMER = "Patient-reported; not a diagnosis."


@dataclass(frozen=True)
class StaffUser:
    role: str
    email: str
    name: str
    password: str = PASSWORD


def create_users(server, users: list[StaffUser]) -> None:
    """Create each account with `flask --app app create-user`, password on stdin, against
    the server's instance (the same environment as the server). Run side by side: each
    is a new Python process of about half a second."""
    running = []
    for user in users:
        command = server._flask("create-user", "--role", user.role, user.email, "--name", user.name)
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=server.env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        running.append((user, process))
    for user, process in running:
        out, err = process.communicate(user.password + "\n", timeout=60)
        assert process.returncode == 0, f"create-user {user.email} failed:\n{out}\n{err}"
        assert f"Created {user.role} account {user.email}." in out, out


def open_desktop(
    browser, width: int = DESKTOP["width"], height: int = DESKTOP["height"], **options
):
    """A page in a new browser context at desktop size (or another width)."""
    context = browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=1,
        locale="en-US",
        service_workers="block",
        **options,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    return context.new_page()


# Second-factor keys of the accounts that set one up, and the last time step each used:
# a code works once, so a second sign-in within 30 s waits for the next one.
TOTP_SECRETS: dict[str, str] = {}
LAST_STEP: dict[str, int] = {}


def fresh_code(email: str) -> str:
    totp = pyotp.TOTP(TOTP_SECRETS[email])
    while totp.timecode(datetime.now()) <= LAST_STEP.get(email, 0):
        time.sleep(0.5)
    LAST_STEP[email] = totp.timecode(datetime.now())
    return totp.now()


def log_in(page: Page, server, user: StaffUser) -> None:
    """Sign in through the login form, setting up the second factor on the first sign-in
    of an admin or a psychiatrist (as the server requires) and typing its code on later
    ones; ends on the board."""
    page.goto(f"{server.url}/staff/login")
    expect(page.locator("h1")).to_have_text("Staff sign in")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/staff/(account/mfa|login/code)?$"))
    if page.url.endswith("/staff/account/mfa"):
        TOTP_SECRETS[user.email] = page.locator("#mfa-secret").inner_text().replace(" ", "")
        page.get_by_label("Code").fill(fresh_code(user.email))
        page.get_by_role("button", name="Turn on").click()
        expect(page.locator(".recovery-codes li")).to_have_count(10)
        page.get_by_role("link", name="I have kept my codes").click()
    elif page.url.endswith("/staff/login/code"):
        page.get_by_label("Code").fill(fresh_code(user.email))
        page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))


def submit(page: Page) -> None:
    """Press the form's main button, whatever the language."""
    page.locator("main form button[type=submit].primary").click()


def acknowledge_all_alerts(page: Page, server) -> None:
    """From the board, acknowledge every open safety alert, one button at a time."""
    page.goto(f"{server.url}/staff/")
    buttons = page.locator("#alert-list button")
    for _ in range(200):
        if buttons.count() == 0:
            return
        with page.expect_navigation():
            buttons.first.click()
    raise AssertionError("open alerts remain after 200 acknowledgements")


def query(server, sql: str, params=()) -> list[dict]:
    """Read the server's database (read-only use)."""
    db = sqlite3.connect(server.database, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql, params).fetchall()]
    finally:
        db.close()


def user_id(server, email: str) -> int:
    return query(server, "SELECT id FROM users WHERE email = ?", (email,))[0]["id"]


def report(found: dict[str, str], what: str) -> str:
    """One assertion message listing every page that failed a check, and why."""
    return f"{what} on {len(found)} page(s):\n" + "\n".join(
        f"* {name}:\n{detail}" for name, detail in found.items()
    )


def format_violations(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"  - {violation['id']} ({violation.get('impact')}): {violation['help']}"
            f"\n    {violation['helpUrl']}"
        )
        for node in violation["nodes"][:5]:
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"      at {node['target']}: {node['html'][:160]}\n        {summary}")
        if len(violation["nodes"]) > 5:
            lines.append(f"      ... and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


# --- PDF pages ---------------------------------------------------------------------------------

PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def count_pdf_pages(data: bytes) -> int:
    """Pages in a PDF: pypdf when installed, else the page objects counted by regex
    (Chromium writes page dictionaries uncompressed; the regex is checked on a known
    two-page PDF by the tests)."""
    try:
        from pypdf import PdfReader
    except ImportError:
        return len(PAGE_OBJECT.findall(data))
    from io import BytesIO

    return len(PdfReader(BytesIO(data)).pages)


# Paper in CSS px (96 per inch) minus the @page margins of print.css (8 mm top and
# bottom, 9 mm left and right), to measure the spare space of a summary's one page.
MM = 96 / 25.4
PAPER = {"Letter": (8.5 * 96, 11 * 96), "A4": (210 * MM, 297 * MM)}
MARGINS = (9 * MM, 8 * MM)  # inline, block


def printable_area(paper: str) -> tuple[float, float]:
    width, height = PAPER[paper]
    return width - 2 * MARGINS[0], height - 2 * MARGINS[1]


def print_content_height(page: Page, paper: str) -> tuple[float, float]:
    """(content height, printable height) in CSS px for the page laid out as printed on
    ``paper``: print media, the exact printable width. An estimate for reports (within
    about one line of 8 pt text of what Chromium prints); the PDF's page count decides."""
    width, height = printable_area(paper)
    viewport = page.viewport_size
    page.emulate_media(media="print")
    page.set_viewport_size({"width": int(width), "height": int(height)})
    try:
        content = page.evaluate(
            """width => {
            document.documentElement.style.width = width + 'px';
            const bottom = document.querySelector('main').getBoundingClientRect().bottom;
            document.documentElement.style.width = '';
            return bottom + window.scrollY;
        }""",
            width,
        )
    finally:
        page.emulate_media(media=None)
        page.set_viewport_size(viewport)
    return float(content), height


def wait_for_fitting(page: Page) -> int:
    """Wait until static/summary.js has fitted the summary to one sheet; the number of
    texts it shortened for paper."""
    fitted = page.locator("article.summary[data-fitted]")
    expect(fitted).to_have_count(1)
    return int(fitted.get_attribute("data-fitted"))


def write_two_page_pdf(page: Page) -> bytes:
    """A PDF known to have exactly two pages, to check the page counter on."""
    page.set_content("<p>one</p><p style='break-before: page'>two</p>")
    return page.pdf(format="A4")


# Counts the oscillators a staff page starts (each tone is two short beeps), without
# making a sound: an init script for the page's context.
SPY_AUDIO = """
window.__beeps = 0;
(function () {
  const Real = window.AudioContext;
  window.AudioContext = function () {
    const ctx = new Real();
    const make = ctx.createOscillator.bind(ctx);
    ctx.createOscillator = function () {
      const osc = make();
      const start = osc.start.bind(osc);
      osc.start = function (when) { window.__beeps += 1; return start(when); };
      return osc;
    };
    return ctx;
  };
})();
"""
