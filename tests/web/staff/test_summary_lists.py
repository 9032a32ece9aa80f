"""The chosen answers on the one page, on paper and in the .txt are listed the reader's
way (CONTENT.md: "lists use the reader's locale"): "副作用、要吃多久" in Chinese, never an
English comma between Chinese or Arabic words; English stays "Side effects, How long"."""

from __future__ import annotations

import html as html_lib
from contextlib import closing
from datetime import timedelta

import pytest
from babel import Locale
from flask_babel import force_locale

from patientapp.db import storage
from patientapp.questionnaire import display
from patientapp.questionnaire import model as questionnaire
from tests.browser.maximal_visit import store_submitted

ANSWERS = {
    "T1": ["worried", "hopeful"],
    "R3": ["side_effects", "how_long"],
    "W1": ["stress", "spiritual"],
}


def _visit(app, clock) -> int:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        sent = clock() - timedelta(minutes=5)
        return store_submitted(
            db,
            ref="LIST-1",
            answers=dict(ANSWERS),
            appointment=sent + timedelta(minutes=30),
            sent=sent,
        )


def _shown(app, code: str) -> dict[str, str]:
    """Each answer's words in the reader's language, joined by the locale's own list
    pattern (CLDR, read from Babel here rather than from the app)."""
    middle = Locale.parse(code).list_patterns["standard"]["middle"]
    q = questionnaire.default()
    with app.test_request_context(), force_locale(code):
        return {
            item_id: middle.format(*display.show(q.items[item_id], value).words)
            for item_id, value in ANSWERS.items()
        }


@pytest.mark.parametrize("code", ["zh_Hans", "ar", "en"])
def test_answer_lists_follow_the_readers_locale_on_the_page_on_paper_and_in_the_text(
    app, clock, psychiatrist, code
):
    visit_id = _visit(app, clock)
    base = f"/staff/visits/{visit_id}"
    page = psychiatrist.get(f"{base}/summary?lang={code}").get_data(as_text=True)
    printed = psychiatrist.get(f"{base}/print?lang={code}").get_data(as_text=True)
    text = psychiatrist.get(f"{base}/summary.txt?lang={code}").get_data(as_text=True)
    article = html_lib.unescape(page.split("<article", 1)[1].split("</article>", 1)[0])
    on_paper = html_lib.unescape(printed.split("<article", 1)[1].split("</article>", 1)[0])
    for item_id, words in _shown(app, code).items():
        assert words in article, item_id
        assert words in on_paper, item_id
        assert words in text, item_id


def test_english_lists_keep_their_comma(app, clock, psychiatrist):
    visit_id = _visit(app, clock)
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt?lang=en").get_data(as_text=True)
    assert "Topics for today: Side effects, How long to take it\n" in text
    assert "- What causes their difficulties: Stress, Spiritual reasons\n" in text


def test_chinese_lists_take_the_enumeration_comma(app, clock, psychiatrist):
    visit_id = _visit(app, clock)
    page = psychiatrist.get(f"/staff/visits/{visit_id}/summary?lang=zh_Hans")
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt?lang=zh_Hans")
    for body in (page.get_data(as_text=True), text.get_data(as_text=True)):
        assert "副作用、要吃多久" in body
        assert "副作用, " not in body


@pytest.mark.parametrize(
    ("code", "colon"), [("zh_Hans", "\uff1a"), ("fr", "\u00a0: "), ("ar", ": "), ("en", ": ")]
)
def test_labels_and_values_are_parted_the_readers_way(app, clock, psychiatrist, code, colon):
    """ "Visit: …", "Topics for today: …" with the colon the language writes (Chinese's
    full-width colon, French's space before it), as its translated sentences already do."""
    visit_id = _visit(app, clock)
    base = f"/staff/visits/{visit_id}"
    page = html_lib.unescape(psychiatrist.get(f"{base}/summary?lang={code}").get_data(as_text=True))
    article = page.split("<article", 1)[1].split("</article>", 1)[0]
    text = psychiatrist.get(f"{base}/summary.txt?lang={code}").get_data(as_text=True)
    q = questionnaire.default()
    with app.test_request_context(), force_locale(code):
        from flask_babel import gettext

        visit, topics = gettext("Visit"), gettext(q.items["R3"].short)
    assert f"{visit}{colon}" in article
    assert f"<strong>{topics}</strong>{colon}" in article
    # A block's rows are a list of terms: on paper the colon comes from the term's own
    # data-colon (print.css), the reader's too.
    printed = psychiatrist.get(f"{base}/print?lang={code}").get_data(as_text=True)
    assert f'<dt data-colon="{colon}">' in html_lib.unescape(printed)
    assert "data-colon" not in html_lib.unescape(printed).replace(f'data-colon="{colon}"', "")
    assert f"{topics}{colon}" in text
    if colon != ": ":
        assert f"{topics}: " not in text and f"{visit}: " not in article
