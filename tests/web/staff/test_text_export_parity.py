"""The plain-text export for the record says everything the one page says, in its order
(CONTENT.md v3): compared item by item, part by part, for every fixture visit (the
demo's example visits and the fullest one)."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta

import pytest

from patientapp.cli import examples
from patientapp.db import storage
from tests.browser.maximal_visit import maximal_answers, store_submitted
from tests.web.staff.test_staff import plain, summary_in_text, summary_on_page

FIXTURES = {
    "lower the dose": (examples.LOWER_THE_DOSE, "en", None),
    "safety concern": (examples.SAFETY_CONCERN, "en", None),
    "ambivalent": (examples.AMBIVALENT, "en", None),
    "follow-up": (examples.FOLLOW_UP_NOW, "en", examples.FOLLOW_UP_BEFORE),
    "spanish": (examples.SPANISH, "es", None),
    "in person": (examples.IN_PERSON, "en", None),
    "not taking": (examples.NOT_TAKING, "en", None),
    "fullest": (maximal_answers(), "en", None),
}


def store(app, clock, answers, language, ref, days_ago=0) -> int:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        sent = clock() - timedelta(days=days_ago, minutes=5)
        return store_submitted(
            db,
            ref=ref,
            answers=dict(answers),
            appointment=sent + timedelta(minutes=30),
            sent=sent,
            language=language,
        )


@pytest.mark.parametrize("name", list(FIXTURES))
@pytest.mark.parametrize("reader", ["en", "ar"])
def test_the_text_export_says_what_the_page_says(app, clock, psychiatrist, name, reader):
    answers, language, before = FIXTURES[name]
    ref = f"PX-{len(name)}"
    if before is not None:
        store(app, clock, before, language, ref, days_ago=28)
    visit_id = store(app, clock, answers, language, ref)
    suffix = f"?lang={reader}"
    html = psychiatrist.get(f"/staff/visits/{visit_id}/summary{suffix}").get_data(as_text=True)
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt{suffix}").get_data(as_text=True)
    on_page, in_text = summary_on_page(html), summary_in_text(text)
    for part in on_page:  # part by part, so a failure names the part that differs
        if part == "safety" and "banner" in html.split("<article", 1)[1][:4000]:
            continue  # the banner: below
        assert in_text[part] == on_page[part], part
    banner = html.split('<div class="banner" role="alert">', 1)
    if len(banner) > 1:
        # The record's first line shouts SAFETY; the headline's words, the history and
        # the acknowledgement's state are the page's, line by line.
        shown = plain(banner[1].split("<form", 1)[0].split("</div>", 1)[0])
        safety_lines = text.strip().split("\n\n")[1].splitlines()
        headline = safety_lines[0].split(": ", 1)[1]
        assert headline.split(" ", 3)[:3] == shown.split(": ", 1)[1].split(" ", 3)[:3]
        for line in safety_lines[1:]:
            assert line in shown, line
    if before is not None:
        assert on_page["changes"], "the follow-up compares with the visit before"
