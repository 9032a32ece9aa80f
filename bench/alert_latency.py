"""How fast a safety alert reaches a staff page other than the board, run by hand:
python bench/alert_latency.py

Needs Debian's Chromium (/usr/bin/chromium) and Playwright, driven as the browser tests
drive them (tests/browser/conftest.py: the production server, `flask --app app serve`,
in a subprocess with a temporary instance folder). The front desk signs in and leaves
New invitation open in one tab; then, for each try, a patient on a fresh phone-sized
context opens a fresh invitation, walks to the safety question, ticks "Several days" and
taps Next. Measured: from just before that tap to the moment the staff tab's title starts
with "(1)" (a MutationObserver on <title> takes Date.now(); both sides run on this
machine's clock). The alert is then acknowledged from a second tab and the title is back
to normal before the next try. A random pause of up to one poll interval before each tap
spreads the taps over the poll's phase, as real patients are.

Also measured, on the same server: GET /staff/alerts.json (what static/alerts.js polls)
and, for comparison, GET /staff/board.json (the board's own 5 s poll), one request after
another with the desk's session cookie: latency p50 / p95 and the server's CPU per request
(utime + stime of the server's processes from /proc), and what polling costs for 10
staff tabs left open.

  --tries N        tries (default 50)
  --poll-ms MS     serve the staff page with this poll interval instead of the shipped one
                   (rewrites data-interval in the page for this browser only), to compare
  --smoke          3 tries and 50 GETs, in under a minute: the numbers mean nothing

Prints ONE table on stdout; progress goes to stderr. Nothing is written inside the
repository. Not a test module.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the browser tests' helpers
sys.path.insert(0, str(REPO_ROOT / "bench"))

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer, Phone  # noqa: E402
from browser.patient_ui import (  # noqa: E402
    STEPS,
    button,
    choose,
    expect_heading,
    open_and_start,
    skip_to_step,
)
from browser.staff_ui import (  # noqa: E402
    StaffUser,
    acknowledge_all_alerts,
    create_users,
    log_in,
    open_desktop,
)
from run import percentile, tree_cpu_seconds  # noqa: E402

from patientapp.staff.alerts import POLL_MS  # noqa: E402

DESK = StaffUser("frontdesk", "bench.desk@clinic.example", "Bench Desk")
SEED = 20  # the pauses before each tap
TABS = 10  # "what polling costs": this many staff tabs left open

WATCH_TITLE = """() => {
  window.__seen = null;
  new MutationObserver(() => {
    if (window.__seen === null && document.title.startsWith("(1)")) window.__seen = Date.now();
  }).observe(document.head, { childList: true, characterData: true, subtree: true });
}"""


def log(message: str) -> None:
    print(f"[alert bench] {message}", file=sys.stderr, flush=True)


def slower_poll(page, poll_ms: int) -> None:
    """Serve this browser's staff pages with another poll interval (only to compare)."""

    def rewrite(route):
        response = route.fetch()
        body = re.sub(r'data-interval="\d+"', f'data-interval="{poll_ms}"', response.text())
        route.fulfill(response=response, body=body)

    page.route(re.compile(r".*/staff/invitations/new$"), rewrite)


def one_try(browser, server, desk, acknowledger, pause: float) -> tuple[float, float]:
    """(ms from the patient's Next to "(1)" on the desk's page, ms until the patient's
    next page had loaded)."""
    phone = Phone(browser, server)
    try:
        patient = phone.open(360)
        open_and_start(patient, server.invite().link)
        skip_to_step(patient, STEPS)
        choose(patient, "S1", "Several days")
        desk.evaluate("window.__seen = null")
        time.sleep(pause)
        tapped = time.time() * 1000
        with patient.expect_navigation():
            button(patient, "Next").tap()
        loaded = time.time() * 1000
        expect_heading(patient, "Thank you for telling us")
        desk.wait_for_function("() => window.__seen !== null", timeout=60_000, polling=50)
        seen = desk.evaluate("window.__seen")
    finally:
        phone.close()
    acknowledge_all_alerts(acknowledger, server)
    desk.wait_for_function("() => !document.title.startsWith('(')", timeout=60_000)
    return seen - tapped, loaded - tapped


def cookie_header(page) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())


def polling_cost(server, cookie: str, path: str, count: int) -> dict:
    """GET path `count` times, one after another on one keep-alive connection."""
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, errors = [], 0
    for _ in range(5):  # warm up: templates, catalogs, the thread's connection
        connection.request("GET", path, headers={"Cookie": cookie})
        connection.getresponse().read()
    before = tree_cpu_seconds(server.process.pid)
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers={"Cookie": cookie})
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1000)
        errors += response.status != 200
    cpu = tree_cpu_seconds(server.process.pid) - before
    connection.close()
    return {
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "cpu_ms": cpu * 1000 / count,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--poll-ms", type=int, default=POLL_MS)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    tries, gets = (3, 50) if args.smoke else (args.tries, 1000)
    if not Path(CHROMIUM).exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    folder = Path(tempfile.mkdtemp(prefix="patientapp-alert-bench-"))
    server = LiveServer(folder / "instance")
    latencies, page_loads = [], []
    started = time.monotonic()
    try:
        server.start()
        create_users(server, [DESK])
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            desk = open_desktop(browser)
            log_in(desk, server, DESK)
            acknowledger = desk.context.new_page()
            if args.poll_ms != POLL_MS:
                slower_poll(desk, args.poll_ms)
            desk.goto(f"{server.url}/staff/invitations/new")
            desk.evaluate(WATCH_TITLE)
            pauses = random.Random(SEED)  # noqa: S311 - timing, not secrets
            for n in range(1, tries + 1):
                pause = pauses.uniform(0, args.poll_ms / 1000)
                latency, page_load = one_try(browser, server, desk, acknowledger, pause)
                latencies.append(latency)
                page_loads.append(page_load)
                log(f"try {n}/{tries}: {latency:.0f} ms (patient's page {page_load:.0f} ms)")
            cookie = cookie_header(desk)
            browser.close()
        log(f"{gets} GETs of each endpoint")
        alerts = polling_cost(server, cookie, "/staff/alerts.json", gets)
        board = polling_cost(server, cookie, "/staff/board.json", gets)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

    kind = "SMOKE RUN (tiny counts: the numbers mean nothing), " if args.smoke else ""
    shipped = "" if args.poll_ms == POLL_MS else f" (shipped: {POLL_MS} ms)"
    print(
        f"Alert latency, {kind}{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, alerts.js polls every {args.poll_ms} ms{shipped}, "
        f"{tries} tries"
    )
    for name, values in (
        ('patient\'s Next -> "(1)" on New invitation', latencies),
        ("patient's Next -> their next page loaded", page_loads),
    ):
        print(
            f"{name:<44} p50 {percentile(values, 50):6.0f} ms   p95 "
            f"{percentile(values, 95):6.0f} ms   max {max(values):6.0f} ms"
        )
    for name, cost, every in (
        ("GET /staff/alerts.json", alerts, args.poll_ms),
        ("GET /staff/board.json (for comparison)", board, 5000),
    ):
        share = cost["cpu_ms"] * TABS / every * 100  # % of one core
        print(
            f"{name:<44} p50 {cost['p50']:6.1f} ms   p95 {cost['p95']:6.1f} ms   "
            f"server CPU {cost['cpu_ms']:.2f} ms/request   {TABS} tabs every {every} ms: "
            f"{share:.2f} % of a core   errors {cost['errors']}"
        )
    print(f"({time.monotonic() - started:.0f} s)")
    return 1 if alerts["errors"] or board["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
