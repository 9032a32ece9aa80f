"""Screen lengths, taps and minutes of the patient side, run by hand:  python bench/screens.py

Needs Debian's Chromium (/usr/bin/chromium) and Playwright, driven exactly as the browser
tests drive them (tests/browser/conftest.py: the production server in a subprocess with a
temporary instance folder, a fresh phone-sized context per walk). Prints two tables.

The first, a row per language:

  * tallest: the tallest screen (CSS px, document scrollHeight) among every step screen,
    the welcome and safety pages, with EVERY answer filled (the fullest answers of
    tests/browser/maximal_visit.py), and which screen it is; the review is apart;
  * review (full) / review (typical): the review screen's height for that fullest set and
    for a typical full set (tests/browser/test_patient_screens.full_answers: two choices
    where several fit, a sentence in each text box, two medicines), at 360 and 320 px;
  * taps: the taps from the code entry page to the thank-you page for the typical full
    set. A tap is one press on a choice, a button or a link, or moving into a text box to
    type (typing itself is not counted): type the code (1) and Continue (1), Start (1),
    each choice ticked (1 each), each text box (1), the medicine list as
    test_patient_screens.answer_all counts it, Next on every screen (1 each), and Send
    (1). (Not worrying on the safety question: no safety page.)

The second, "minutes", a row per language and answer set (typical, fullest) at 360 px:
the walk of tests/browser/minutes.py from the welcome page to the review, which backs the
"It takes about N minutes" of the welcome page and the printed slip:

  * screens: the /step/ pages passed through, plus the safety page when it shows (the
    fullest set worries on the safety question);
  * taps: counted as above (Continue on the safety page is one more);
  * words shown: the words of the welcome page and of every question screen's <main>,
    plus half of the review's (skimmed); the language switcher and visually hidden text
    left out; counted with the browser's Intl.Segmenter, so Chinese counts words;
  * chars typed: every text answer and medicine name typed;
  * minutes = words / 200 + taps / 60 + chars / 2.5 / 60.

At 360 px the two minutes walks are the height walks (the same pages, measured when their
answers are filled), so the minutes cost no walk of their own; 320 px walks apart.

  python bench/screens.py --languages en ar --widths 360   limits the run.
  python bench/screens.py --languages en --widths 360 --items   adds what each question
      of the typical walk costs by the same model (its words on its screen, an intro
      above it included, half its words on the review, its taps, what is typed into it),
      the rest ("the frame": the welcome, headings, progress, buttons, the review's own
      words), and how many seconds of questions would have to go for the target (6
      minutes in English, 7 in every other language): the figures a decision to cut
      or shorten questions needs.
  python bench/screens.py --write --widths 360   measures every language and writes the
      minutes to patientapp/questionnaire/minutes.json, the figure the welcome page and
      the slip promise (rounded up; patientapp/questionnaire/timing.py). Commit it;
      tests/browser/test_minutes_promise.py fails when it drifts from a new measurement.

Nothing else is written inside the repository. Not a test module.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the browser tests' helpers, as pytest sees them

from browser import minutes  # noqa: E402
from browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer, Phone  # noqa: E402
from browser.staff_ui import LANGUAGES  # noqa: E402
from browser.test_patient_screens import answer_all, full_answers, screen_heights  # noqa: E402

from patientapp.questionnaire import timing  # noqa: E402

# Taps answer_all does not count: the code entry (tap the box, Continue; answer_all opens
# the invitation link instead) and Send on the review screen.
ENTRY_TAPS = minutes.ENTRY_TAPS
SEND_TAPS = minutes.SEND_TAPS


def _tallest(heights: dict[str, int]) -> str:
    screens = {k: v for k, v in heights.items() if k != "/review"}
    tallest = max(screens, key=screens.get)
    return f"{screens[tallest]} ({tallest.strip('/')})"


def _taps(row: dict, taps: int, width: int) -> None:
    """The typical set's taps; the same at every width (a difference is printed)."""
    if row.setdefault("taps", taps) != taps:
        print(f"{row['language']}: {taps} taps at {width} px, not {row['taps']}", file=sys.stderr)


def measure(server: LiveServer, browser, languages, widths) -> tuple[list[dict], list]:
    """The screens table's rows, and the minutes walks (typical and fullest, at 360 px)."""
    rows, walks = [], []
    for language in languages:
        row: dict = {"language": language}
        phone = Phone(browser, server)
        try:
            typical = minutes.measure(phone, server, language, "typical")
            fullest = minutes.measure(phone, server, language, "fullest")
        finally:
            phone.close()
        walks += [typical, fullest]
        for width in widths:
            if width == minutes.WIDTH:  # the minutes walks are the 360 px walks
                for walk in (typical, fullest):
                    if walk.widest > width:
                        print(f"{language} {walk.answers}: {walk.widest} px wide", file=sys.stderr)
                row[f"tallest {width}"] = _tallest(fullest.heights)
                row[f"review full {width}"] = fullest.review_height
                row[f"review typical {width}"] = typical.review_height
                _taps(row, typical.taps, width)
                continue
            phone = Phone(browser, server)
            try:
                heights = screen_heights(phone, server, language, width)
                row[f"tallest {width}"] = _tallest(heights)
                row[f"review full {width}"] = heights["/review"]
                page = phone.open(width)
                taps = answer_all(page, server.invite().link, full_answers(), language)
                row[f"review typical {width}"] = page.evaluate(
                    "document.documentElement.scrollHeight"
                )
                _taps(row, ENTRY_TAPS + taps + SEND_TAPS, width)
            finally:
                phone.close()
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows, walks


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[n]) for r in cells)) for n, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def minutes_rows(walks: list) -> list[dict]:
    rows = []
    for walk in sorted(walks, key=lambda w: w.answers != "typical"):  # typical first
        row = walk.row()
        if walk.answers == "typical":
            row["promised"] = timing.promised_minutes(walk.language)
        rows.append(row)
    return rows


TARGETS = {"en": 6.0}  # minutes, typical answers (tests/browser/test_minutes_promise.py)
TARGET = 7.0  # every other language


def item_table(walk) -> str:
    """What each question of one walk costs, dearest first, the frame, and the gap to the
    target (see --items)."""
    seconds = walk.item_seconds()
    rows = [
        {
            "item": item_id,
            "words on screen": walk.item_words.get(item_id, 0),
            "words on review": walk.item_review_words.get(item_id, 0),
            "taps": walk.item_taps.get(item_id, 0),
            "chars typed": walk.item_characters.get(item_id, 0),
            "seconds": f"{seconds[item_id]:.1f}",
        }
        for item_id in sorted(seconds, key=seconds.get, reverse=True)
    ]
    total, questions = walk.minutes * 60, sum(seconds.values())
    target = TARGETS.get(walk.language, TARGET)
    over = total - target * 60
    return "\n".join(
        [
            f"{walk.language}, typical: what each question costs, by the model above",
            table(rows),
            f"questions {questions:.0f} s, the frame {total - questions:.0f} s "
            "(welcome, headings, progress, buttons, the review's own words, Next and Send), "
            f"in all {total:.0f} s = {walk.minutes:.2f} min",
            f"target {target:g} min: "
            + (
                f"{over:.0f} s of questions would have to go "
                f"({over / questions:.0%} of what the questions take now)"
                if over > 0
                else "met"
            ),
        ]
    )


def figures(walks: list) -> dict:
    """What minutes.json holds: the model, the day, the minutes per language and set."""
    data: dict = {"measured": date.today().isoformat(), "model": minutes.MODEL}
    for answers in minutes.ANSWER_SETS:
        data[answers] = {w.language: round(w.minutes, 2) for w in walks if w.answers == answers}
    return data


def write(walks: list) -> Path:
    path = timing.MINUTES_PATH
    text = json.dumps(figures(walks), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    timing.typical_minutes.cache_clear()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES))
    parser.add_argument("--widths", nargs="+", type=int, default=[360, 320])
    parser.add_argument(
        "--items",
        action="store_true",
        help="add what each question of the typical walk costs, and the gap to the target",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"write the minutes to {timing.MINUTES_PATH.relative_to(REPO_ROOT)}",
    )
    args = parser.parse_args()
    if args.write and set(args.languages) != set(LANGUAGES):
        print("--write measures every shipped language: leave out --languages", file=sys.stderr)
        return 2
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
            rows, walks = measure(server, browser, args.languages, args.widths)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(table(rows))
    print()
    print(f"minutes at {minutes.WIDTH} px: {minutes.MODEL}")
    if args.write:
        path = write(walks)
        print(f"written: {path.relative_to(REPO_ROOT)}")
    print(table(minutes_rows(walks)))
    print()
    if args.items:
        for walk in walks:
            if walk.answers == "typical":
                print(item_table(walk))
                print()
    print(measure_table())
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


def measure_table() -> str:
    """What each standard measure adds to the promise, by the same model, from its
    official text (questionnaire/timing.py): only where it has one."""
    from patientapp.questionnaire import model

    lines = ["standard measures, added minutes (modelled from the official text):"]
    for instrument in model.default().instruments:
        screens = timing.measure_screens(instrument)
        for language in instrument.wordings:
            added = timing.measure_minutes(instrument, language, screens)
            lines.append(
                f"  {instrument.name:<6} {language:<7} {screens} screens  +{added:.2f} min"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
