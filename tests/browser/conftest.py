"""Fixtures for the browser tests: one production server (waitress, via our `serve`
command) for the whole session, one Chromium for the whole session, and a fresh browser
context ("a phone") per test.

Chromium is Debian's /usr/bin/chromium; Playwright's own browser download is never used.
Without it the tests skip, unless PATIENTAPP_REQUIRE_BROWSER=1 (set in CI) makes that a
failure so a broken CI image can't pass silently.
"""

from __future__ import annotations

import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_HEIGHT = 740
SERVER_START_TIMEOUT = 30.0
ACTION_TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    """Skip, or fail when the CI asks for the browser tests to really run."""
    if os.environ.get("PATIENTAPP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (PATIENTAPP_REQUIRE_BROWSER=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_available() -> None:
    if not Path(CHROMIUM).exists():
        _unavailable(
            "Chromium not found at /usr/bin/chromium: install Debian's chromium "
            "to run browser tests"
        )
    try:
        import axe_playwright_python  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed: pip install -e '.[test]' to run browser tests")


# --- the server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Invitation:
    ref: str
    link: str
    code: str


class LiveServer:
    """The app served by `flask --app app serve` (waitress) in a subprocess."""

    def __init__(self, instance: Path):
        self.instance = instance
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = instance / "patientapp.db"
        self.log_path = instance.parent / "server.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PATIENTAPP_", "FLASK_"))
        }
        self.env.update(
            {
                "PATIENTAPP_INSTANCE": str(instance),
                "PATIENTAPP_SECRET_KEY": "test",
                "PATIENTAPP_BASE_URL": self.url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process: subprocess.Popen | None = None
        self._refs = itertools.count(1)
        self._spare: list[Invitation] = []
        self._making: threading.Thread | None = None

    def _flask(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "app", *args]

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._flask("serve", "--host", "127.0.0.1", "--port", str(self.port)),
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/start", timeout=2) as response:
                    if response.status == 200:
                        self._prepare_spare()
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the server did not answer within {SERVER_START_TIMEOUT} s:\n{self.log()}"
        )

    def stop(self) -> None:
        self._wait_for_spare()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no server log)"

    def invite(self) -> Invitation:
        """A fresh invitation made with the `invite` CLI, as the front desk would.

        The CLI takes about half a second (a new Python process), so the next invitation
        is made in the background while the browser works on this one.
        """
        self._wait_for_spare()
        invitation = self._spare.pop() if self._spare else self._run_invite()
        self._prepare_spare()
        return invitation

    def _prepare_spare(self) -> None:
        self._making = threading.Thread(
            target=lambda: self._spare.append(self._run_invite()), daemon=True
        )
        self._making.start()

    def _wait_for_spare(self) -> None:
        if self._making is not None:
            self._making.join()
            self._making = None

    def invite_with(self, *measures: str) -> Invitation:
        """A fresh invitation that includes these standard measures (`invite --measure`)."""
        return self._run_invite(measures)

    def _run_invite(self, measures: tuple[str, ...] = ()) -> Invitation:
        ref = f"BR-{next(self._refs)}"
        # Later today, so the patient is in the waiting room (answering on the visit's own
        # day): an hour ahead, but never past midnight, where the visit would be tomorrow
        # and the pages would speak to a patient at home (a run between 23:00 and 24:00).
        today_end = datetime.now().replace(hour=23, minute=59, second=0, microsecond=0)
        when = min(datetime.now() + timedelta(hours=1), today_end).strftime("%Y-%m-%d %H:%M")
        result = subprocess.run(
            self._flask("invite", ref, "--at", when, *(f"--measure={m}" for m in measures)),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"invite failed:\n{result.stdout}\n{result.stderr}"
        fields = {}
        for line in result.stdout.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        # The printed host:port is PATIENTAPP_BASE_URL; keep only the path to be safe.
        link = self.url + urlsplit(fields["Link"]).path
        code = fields["Code"].split()[0]
        return Invitation(ref=ref, link=link, code=code)

    def visit(self, ref: str) -> dict:
        """The stored visit for a patient reference, with its answers (read-only use)."""
        db = sqlite3.connect(self.database, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            visit = dict(
                db.execute("SELECT * FROM visits WHERE patient_ref = ?", (ref,)).fetchone()
            )
            rows = db.execute(
                "SELECT item_id, value, in_person FROM answers WHERE visit_id = ?", (visit["id"],)
            ).fetchall()
        finally:
            db.close()
        visit["answers"] = {row["item_id"]: row["value"] for row in rows}
        visit["in_person"] = {row["item_id"] for row in rows if row["in_person"]}
        return visit


@pytest.fixture(scope="session")
def live_server(browser_available, tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("browser") / "instance")
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium(browser_available):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_TIMEOUT_MS)  # room for a busy two-core CI machine
    playwright = sync_playwright().start()
    try:
        # Playwright turns the back/forward cache off by default; phones have it on, and
        # "Back after sending shows nothing" must hold with it.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()


class Phone:
    """Opens fresh browser contexts sized like a phone; records every request made."""

    def __init__(self, browser, server: LiveServer):
        self.browser = browser
        self.server = server
        self.contexts = []
        self.requests: list[str] = []
        self.console: list[str] = []  # errors and warnings, e.g. CSP violations

    def open(self, width: int = 360):
        context = self.browser.new_context(
            viewport={"width": width, "height": PHONE_HEIGHT},
            screen={"width": width, "height": PHONE_HEIGHT},
            # Layout is in CSS px whatever the pixel ratio; 1 keeps rasterising cheap.
            has_touch=True,
            is_mobile=True,
            device_scale_factor=1,
            locale="en-US",
            service_workers="block",
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("console", self._console)
        context.on("weberror", lambda error: self.console.append(f"page error: {error.error}"))
        self.contexts.append(context)
        return context.new_page()

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            page = message.page.url if message.page else "?"
            self.console.append(f"{message.type} on {page}: {message.text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def phone(chromium, live_server):
    """A factory: phone.open(width) gives a page in a new, empty browser context."""
    opened = Phone(chromium, live_server)
    yield opened
    opened.close()


@pytest.fixture
def page(phone):
    """One page at 360 x 740, touch, mobile."""
    return phone.open(360)
