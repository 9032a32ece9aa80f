"""Screen lengths and taps of the patient side, run by hand:  python bench/screens.py

Needs Debian's Chromium (/usr/bin/chromium) and Playwright, driven exactly as the browser
tests drive them (tests/browser/conftest.py: the production server in a subprocess with a
temporary instance folder, a fresh phone-sized context per walk). Prints ONE table, a row
per language:

  * tallest: the tallest screen (CSS px, document scrollHeight) among every step screen,
    the welcome and safety pages, with EVERY answer filled (the fullest answers of
    tests/browser/maximal_visit.py), and which screen it is; the review is apart;
  * review (full) / review (typical): the review screen's height for that fullest set and
    for a typical full set (tests/browser/test_patient_screens.full_answers: two choices
    where several fit, a sentence in each text box, two medicines), at 360 and 320 px;
  * taps: the taps from the code entry page to the thank-you page for the typical full
    set. A tap is one press on a choice, a button or a link, or moving into a text box to
    type (typing itself is not counted): type the code (1) and Continue (1), Start (1),
    each choice ticked (1 each), each text box (1), per medicine its name box and its
    feeling (2) plus "Add another medicine" for each further row (1), Next on every screen
    (1 each), and Send (1). (Not worrying on the safety question: no safety page.)

  python bench/screens.py --languages en ar --widths 360   limits the run.

Nothing is written inside the repository. Not a test module.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the browser tests' helpers, as pytest sees them

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer, Phone  # noqa: E402
from browser.staff_ui import LANGUAGES  # noqa: E402
from browser.test_patient_screens import answer_all, full_answers, screen_heights  # noqa: E402

# Taps answer_all does not count: the code entry (tap the box, Continue; answer_all opens
# the invitation link instead) and Send on the review screen.
ENTRY_TAPS = 2
SEND_TAPS = 1


def measure(server: LiveServer, browser, languages, widths) -> list[dict]:
    rows = []
    for language in languages:
        row: dict = {"language": language}
        for width in widths:
            phone = Phone(browser, server)
            try:
                heights = screen_heights(phone, server, language, width)
                screens = {k: v for k, v in heights.items() if k != "/review"}
                tallest = max(screens, key=screens.get)
                row[f"tallest {width}"] = f"{screens[tallest]} ({tallest.strip('/')})"
                row[f"review full {width}"] = heights["/review"]
                page = phone.open(width)
                taps = answer_all(page, server.invite().link, full_answers(), language)
                row[f"review typical {width}"] = page.evaluate(
                    "document.documentElement.scrollHeight"
                )
                row["taps"] = ENTRY_TAPS + taps + SEND_TAPS
            finally:
                phone.close()
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[n]) for r in cells)) for n, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES))
    parser.add_argument("--widths", nargs="+", type=int, default=[360, 320])
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="patientapp-screens-"))
    server = LiveServer(folder / "instance")
    started = time.monotonic()
    try:
        server.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            rows = measure(server, browser, args.languages, args.widths)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(table(rows))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
